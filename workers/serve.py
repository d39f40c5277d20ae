"""`newsclust serve`: the inbox watcher and the rebuild schedule in one process, until told to stop."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from service import usecases

from .scheduler import RebuildSchedule
from .watcher import InboxWatcher

log = logging.getLogger("newsclust.serve")

REBUILD_REQUEST = "rebuild.request"


class Service:
    def __init__(self, app, on_event=None):
        self.app = app
        self.on_event = on_event or (lambda kind, payload: log.info("%s %s", kind, payload))
        s = app.settings
        self.watcher = InboxWatcher(s.inbox, self._ingest, stable_wait_s=s.stable_wait_s, poll=s.poll_inbox)
        self.schedule = RebuildSchedule(self._scheduled_rebuild, s.rebuild_interval_s)
        self._stopping = threading.Event()
        self.rebuilding = threading.Event()

    def _ingest(self, path: Path) -> None:
        with self.app.write_lock:
            result = usecases.ingest_file(self.app, path, should_stop=self._stopping.is_set)
        self.on_event("ingest", result)
        run = self.app.repo.latest_run()
        if run is None or self.app.repo.noise_pool_size(run.id) >= self.app.settings.noise_pool_trigger:
            self.schedule.run_soon()
            return
        with self.app.write_lock:
            story = usecases.new_story_in_noise_pool(self.app)
        if story:
            self.on_event("new_story", {"run": run.id})
            self.schedule.run_soon()

    def _scheduled_rebuild(self) -> None:
        request = self.app.settings.home / REBUILD_REQUEST
        requested = request.exists()
        st = self.app.repo.status()
        if not requested and (st["documents"] == 0 or st["pending_arrivals"] < self.app.settings.rebuild_min_pending):
            return
        self.rebuilding.set()
        try:
            with self.app.write_lock:
                result = usecases.rebuild(self.app)
        finally:
            self.rebuilding.clear()
        request.unlink(missing_ok=True)
        self.on_event("rebuild", result)

    def _watch_requests(self, stop: threading.Event) -> None:
        request = self.app.settings.home / REBUILD_REQUEST
        while not stop.wait(1.0):
            if request.exists():
                self.schedule.run_soon()

    def open(self) -> None:
        """Load the model and open Milvus before taking files, so the first file is not slow and failures show at start."""
        self.app.store  # noqa: B018 — opening the store loads the embedder for its dimension

    def run(self, stop: threading.Event) -> None:
        self.watcher.start()
        self.schedule.start()
        poller = threading.Thread(target=self._watch_requests, args=(stop,), daemon=True)
        poller.start()
        try:
            stop.wait()
        finally:
            self._stopping.set()  # a file in progress stops at its next batch and stays in the inbox
            self.watcher.stop(timeout=5)  # the current batch ends within that; a worker waiting on a rebuild is let go
            # a rebuild in progress is abandoned, not awaited (minutes at scale): it commits in one
            # transaction, so the previous clustering stays whole; its run is marked failed now, not at the next start
            self.schedule.stop(wait=False)
            if self.rebuilding.is_set():
                self.app.repo.abandon_running_runs("stopped during the rebuild")


def install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum, _frame):
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
