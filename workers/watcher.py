"""The inbox watcher: start-up scan, file events (or polling), a stability wait, then one ingest at a time.

A file is handed on only when it looks whole: size and mtime held still for stable_wait_s, no process holds
it open for writing (Linux tells: see files.writer_holds_open; a close-write event retakes it at once), and
its last row ends with a line end, or the file held still settle_s without one (a writer that never ends
its last line). A writer that appends under the final name is thus never cut mid-row.

Event handlers only enqueue paths; a single worker thread does the work, so a slow embed
never blocks the observer and files are ingested one by one in arrival order.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from service.files import TEMP_SUFFIXES, ends_with_line_end, writer_holds_open

log = logging.getLogger("newsclust.watcher")



def is_candidate(path: Path) -> bool:
    """Files still being written use temporary names: they are skipped until renamed."""
    name = path.name
    return not (name.startswith(".") or name.startswith("~") or name.endswith(TEMP_SUFFIXES))


class _Enqueue(FileSystemEventHandler):
    def __init__(self, push: Callable[[Path], None]):
        self.push = push

    def on_created(self, event: FileSystemEvent) -> None:
        self.push(Path(event.src_path))

    def on_moved(self, event: FileSystemEvent) -> None:
        self.push(Path(event.dest_path))

    def on_modified(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.push(Path(event.src_path))

    def on_closed(self, event: FileSystemEvent) -> None:  # inotify close-write: a writer let go of the file
        if not event.is_directory:
            self.push(Path(event.src_path), closed=True)


# `handle` answers None when done with a file, else the seconds until it is taken again (math.inf: parked
# until the file changes). Retries never block the queue: other files flow while one waits.


class InboxWatcher:
    def __init__(self, inbox: Path, handle: Callable[[Path], float | None], stable_wait_s: float = 1.0, poll: bool = False,
                 rescan_s: float = 5.0, settle_s: float = 10.0):
        self.inbox = inbox
        self.handle = handle
        self.stable_wait_s = stable_wait_s
        self.settle_s = settle_s
        self.rescan_s = rescan_s
        self.poll = poll
        self._queue: queue.Queue[Path] = queue.Queue()
        self._pending: set[Path] = set()
        self._later: dict[Path, tuple[float, tuple[int, int] | None]] = {}  # path -> (when to retake, signature then)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._observer = None
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def push(self, path: Path, closed: bool = False) -> None:
        if path.parent != self.inbox or not is_candidate(path):
            return
        with self._lock:
            if path in self._pending:
                return
            later = self._later.get(path)
            if later is not None:
                when, sig = later
                if time.monotonic() < when and _signature(path) == sig and not (closed and math.isfinite(when)):
                    return  # waiting out its backoff, or parked, and unchanged since (a writer closing it ends a wait)
                del self._later[path]
            self._pending.add(path)
        self._queue.put(path)

    def scan(self) -> None:
        self._ensure_inbox()
        entries = []
        for p in self.inbox.iterdir():
            try:
                entries.append((p.lstat().st_mtime, p.name, p))
            except FileNotFoundError:
                continue
        for _, _, path in sorted(entries):
            self.push(path)

    def start(self) -> None:
        self._ensure_inbox()
        self._start_observer()
        self.scan()
        self._start_worker()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def restart(self) -> None:
        """A worker that died (it should not: its loop catches everything) is started again by the service."""
        self.restarts += 1
        self._start_worker()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def _start_worker(self) -> None:
        self._thread = threading.Thread(target=self._work, name="inbox-worker", daemon=True)
        self._thread.start()

    def _start_observer(self) -> None:
        """File events are a shortcut; the periodic rescan is what guarantees that every file is seen."""
        try:
            if self._observer is not None:
                self._observer.stop()
            self._observer = PollingObserver(timeout=1) if self.poll else Observer()
            self._observer.schedule(_Enqueue(self.push), str(self.inbox), recursive=False)
            self._observer.start()
        except Exception:  # noqa: BLE001 — without events the rescan still finds every file
            log.warning("inbox file events unavailable; relying on the rescan every %.0fs", self.rescan_s, exc_info=True)

    def _ensure_inbox(self) -> None:
        if not self.inbox.is_dir():
            log.warning("inbox %s is missing: created again", self.inbox)
            self.inbox.mkdir(parents=True, exist_ok=True)
            self._start_observer()  # events of the removed folder are gone with it

    def _work(self) -> None:
        last_scan = time.monotonic()
        while not self._stop.is_set():
            try:
                last_scan = self._step(last_scan)
            except Exception:  # noqa: BLE001 — the watcher outlives any one failure
                log.exception("inbox watcher: unexpected error; going on")
                time.sleep(1.0)

    def _step(self, last_scan: float) -> float:
        try:
            path = self._queue.get(timeout=0.2)
        except queue.Empty:
            now = time.monotonic()
            self._push_due(now)
            if now - last_scan > self.rescan_s:  # events can be missed (mounts, overflow)
                self.scan()
                return now
            return last_scan
        verdict = None
        try:
            if self._wait_stable(path):
                verdict = self._not_whole_yet(path)
                if verdict is None:
                    verdict = self.handle(path)
        except Exception:  # noqa: BLE001 — handle should answer, not raise; if it raises, try the file again later
            log.exception("handling %s failed", path)
            verdict = 30.0
        finally:
            with self._lock:
                self._pending.discard(path)
                if verdict is not None and not self._stop.is_set():
                    self._later[path] = (time.monotonic() + verdict, _signature(path))
        return last_scan

    def _push_due(self, now: float) -> None:
        with self._lock:
            due = [p for p, (when, _) in self._later.items() if when <= now]
        for path in due:
            self.push(path)

    def _wait_stable(self, path: Path) -> bool:
        """True once size and mtime held still for stable_wait_s; False if the file went away or we are stopping."""
        last = None
        since = time.monotonic()
        while not self._stop.is_set():
            sig = _signature(path)
            if sig is None:
                return False
            if sig != last:
                last, since = sig, time.monotonic()
            elif time.monotonic() - since >= self.stable_wait_s:
                return True
            time.sleep(min(0.2, self.stable_wait_s / 2 or 0.05))
        return False


    def _not_whole_yet(self, path: Path) -> float | None:
        """Seconds until the file is looked at again while it is not whole; None once it is."""
        if writer_holds_open(path):
            log.debug("%s: still open for writing; waiting", path.name)
            return max(self.stable_wait_s, 0.5)  # a close-write event (where the platform gives it) comes sooner
        if not ends_with_line_end(path):
            try:
                quiet = time.time() - path.stat().st_mtime
            except OSError:
                return None  # gone: the handler says so
            if quiet < self.settle_s:
                log.debug("%s: last row has no line end yet; waiting up to %.0fs", path.name, self.settle_s - quiet)
                return self.settle_s - quiet
        return None


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)
