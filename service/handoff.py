"""The home's one writer, and how the others hand it their work: requests and answers as files under HOME/requests/.

Milvus Lite and SQLite allow one writer: a process writes a home while it holds its lock
(HOME/writer.lock, an flock the OS drops when the process dies, even by SIGKILL). A command that
finds the lock taken (`newsclust ingest`, `newsclust rebuild` beside a running `serve`) hands its
work to the holder. Each request has its own token, so nothing overwrites anything; the answer is
written beside it, so the command can wait for the outcome and print it. A shared home (PostgreSQL
+ a Milvus server) has no lock: its serve workers arbitrate through the database, and one-off
commands hand their work to them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .files import TEMP_SUFFIXES, atomic_write

if TYPE_CHECKING:
    from .bootstrap import App
    from .config import Settings

REBUILD = "rebuild"
INGEST = "ingest"
ANSWER_TTL_S = 7 * 86400  # answers nobody collected are removed after a week


class HomeLock:
    """One writer per home: an exclusive flock that the OS drops when the process dies, even by SIGKILL."""

    def __init__(self, home: Path):
        self.path = home / "writer.lock"
        self._fh = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return True

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class Busy(Exception):
    """Another process writes this home: str() names it (a pid, or "the workers of this shared home")."""

    def who(self) -> str:
        holder = str(self)
        return f"pid {holder}" if holder.isdigit() or holder == "?" else holder


@contextmanager
def writer(app: App, worker: bool = False) -> Iterator[dict]:
    """This process writes the home until the block ends, or Busy is raised (hand the work over). Yields what was
    recovered from an interrupted run ({"files": n, "runs": n}: files to take again, rebuilds marked failed).
    A shared home has no lock: only its serve workers (worker=True) write it."""
    if app.settings.shared:
        if not worker:
            raise Busy("the workers of this shared home")
        yield {}
        return
    lock = HomeLock(app.settings.home)
    if not lock.acquire():
        raise Busy(lock.holder())
    try:
        from .usecases import recover

        yield recover(app)
    finally:
        lock.release()


def serving_pid(settings: Settings) -> int | None:
    """The pid of the process serving this home, if one is alive (a shared home's workers are not tracked: -1)."""
    if settings.shared:  # workers are not tracked by a lock: any live worker status file counts
        from .state import status_path  # here: the state files bring numpy, which a command that only asks need not load

        return -1 if any(settings.state_dir.glob(status_path(settings.state_dir, "*").name)) else None
    try:
        pid = int(HomeLock(settings.home).holder())
        os.kill(pid, 0)
        return pid
    except (ValueError, OSError):
        return None


def requests_dir(home: Path) -> Path:
    folder = home / "requests"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _token() -> str:
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def ask_rebuild(home: Path, wait: bool) -> str:
    token = _token()
    atomic_write(requests_dir(home) / f"{REBUILD}-{token}.ask", json.dumps({"wait": wait, "pid": os.getpid()}))
    return token


def hand_over(home: Path, inbox: Path, source: Path, wait: bool) -> str:
    """Copy `source` into the inbox under a name of its own (two files called x.csv both arrive); returns that name."""
    stem, suffix = source.stem.lstrip(".~") or "handed", source.suffix
    if suffix.lower() in ("", *TEMP_SUFFIXES):
        suffix = ".csv"  # a name the watcher takes (it skips temporary and hidden names)
    name = f"{stem}.{_token()}{suffix}"
    # asked even without --wait: the request also tells the watcher the file arrived whole (handed_over), so it is
    # moved out of the inbox at once instead of being watched for rows a writer might still append
    atomic_write(requests_dir(home) / f"{INGEST}-{name}.ask", json.dumps({"wait": wait, "pid": os.getpid()}))
    staged = inbox / (name + ".part")
    shutil.copy2(source, staged)
    os.replace(staged, inbox / name)
    return name


def hand_over_files(home: Path, inbox: Path, files: list[Path], wait: bool) -> list[tuple[Path, str | None]]:
    """Each file copied into the writer's inbox: (file, its name there), or (file, None) if it is no file to hand."""
    return [(f, hand_over(home, inbox, f, wait) if f.is_file() else None) for f in files]


def not_a_file(path: Path) -> str:
    return f"{path}: {'a directory, not a CSV file' if path.is_dir() else 'no such file'}"


def handed_over(home: Path, name: str) -> bool:
    """A file `newsclust ingest` copied into the inbox (under a temporary name, then renamed): whole by construction."""
    return awaited(home, INGEST, name)


def rebuild_requests(home: Path) -> list[str]:
    """Tokens of the rebuilds asked and not yet answered, oldest first."""
    folder = requests_dir(home)
    return sorted(p.name[len(REBUILD) + 1 : -len(".ask")] for p in folder.glob(f"{REBUILD}-*.ask"))


def awaited(home: Path, kind: str, key: str) -> bool:
    return (requests_dir(home) / f"{kind}-{key}.ask").exists()


def answer(home: Path, kind: str, key: str, outcome: dict) -> None:
    """The outcome for whoever asked; the request is consumed, so a failing job is not asked again and again."""
    folder = requests_dir(home)
    ask = folder / f"{kind}-{key}.ask"
    try:
        wanted = json.loads(ask.read_text()).get("wait", True)
    except (OSError, ValueError):
        wanted = True
    if wanted:
        atomic_write(folder / f"{kind}-{key}.answer", json.dumps(outcome, default=str))
    ask.unlink(missing_ok=True)
    _sweep(folder)


def await_answer(home: Path, kind: str, key: str, still_serving: Callable[[], bool], poll_s: float = 0.3,
                 timeout_s: float | None = None) -> dict | None:
    """The answer once written; None when the serving process went away first or the timeout passed."""
    path = requests_dir(home) / f"{kind}-{key}.answer"
    end = None if timeout_s is None else time.monotonic() + timeout_s
    checks = 0
    while True:
        if path.exists():
            try:
                outcome = json.loads(path.read_text())
            except ValueError:
                time.sleep(poll_s)
                continue
            path.unlink(missing_ok=True)
            return outcome
        checks += 1
        if checks % 10 == 0 and not still_serving():
            return None
        if end is not None and time.monotonic() > end:
            return None
        time.sleep(poll_s)


def answer_from_server(settings: Settings, kind: str, key: str, poll_s: float = 0.3) -> dict | None:
    """The answer to one request once written; None if the serving process stopped first (a handed file stays in its
    inbox)."""
    return await_answer(settings.home, kind, key, lambda: serving_pid(settings) is not None, poll_s)


def _sweep(folder: Path) -> None:
    cutoff = time.time() - ANSWER_TTL_S
    for p in folder.glob("*.answer"):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
        except OSError:
            pass
