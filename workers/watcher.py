"""The inbox watcher: start-up scan, file events (or polling), a stability wait, then one ingest at a time.

Event handlers only enqueue paths; a single worker thread does the work, so a slow embed
never blocks the observer and files are ingested one by one in arrival order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

log = logging.getLogger("newsclust.watcher")

TEMP_SUFFIXES = (".part", ".tmp", ".crdownload", ".swp", ".partial")


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


class InboxWatcher:
    def __init__(self, inbox: Path, handle: Callable[[Path], None], stable_wait_s: float = 1.0, poll: bool = False, rescan_s: float = 5.0):
        self.inbox = inbox
        self.handle = handle
        self.stable_wait_s = stable_wait_s
        self.rescan_s = rescan_s
        self._queue: queue.Queue[Path] = queue.Queue()
        self._pending: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._observer = PollingObserver(timeout=1) if poll else Observer()
        self._thread = threading.Thread(target=self._work, name="inbox-worker", daemon=True)

    def push(self, path: Path) -> None:
        if path.parent != self.inbox or not is_candidate(path):
            return
        with self._lock:
            if path in self._pending:
                return
            self._pending.add(path)
        self._queue.put(path)

    def scan(self) -> None:
        for path in sorted(self.inbox.iterdir(), key=lambda p: (p.stat().st_mtime if p.exists() else 0, p.name)):
            self.push(path)

    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        self._observer.schedule(_Enqueue(self.push), str(self.inbox), recursive=False)
        self._observer.start()
        self.scan()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._observer.stop()
        self._observer.join(timeout)
        self._thread.join(timeout)

    def idle(self) -> bool:
        with self._lock:
            return not self._pending

    def _work(self) -> None:
        last_scan = time.monotonic()
        while not self._stop.is_set():
            try:
                path = self._queue.get(timeout=0.2)
            except queue.Empty:
                if time.monotonic() - last_scan > self.rescan_s:  # events can be missed (mounts, overflow)
                    last_scan = time.monotonic()
                    self.scan()
                continue
            try:
                if self._wait_stable(path):
                    self.handle(path)
            except Exception:  # noqa: BLE001 — the watcher outlives any one file
                log.exception("handling %s failed", path)
            finally:
                with self._lock:
                    self._pending.discard(path)

    def _wait_stable(self, path: Path) -> bool:
        """True once size and mtime held still for stable_wait_s; False if the file went away or we are stopping."""
        last = None
        since = time.monotonic()
        while not self._stop.is_set():
            try:
                st = path.lstat()
            except FileNotFoundError:
                return False
            sig = (st.st_size, st.st_mtime_ns)
            if sig != last:
                last, since = sig, time.monotonic()
            elif time.monotonic() - since >= self.stable_wait_s:
                return True
            time.sleep(min(0.2, self.stable_wait_s / 2 or 0.05))
        return False
