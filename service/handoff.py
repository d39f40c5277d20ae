"""Requests from a command to the running `serve`, and their answers, as files under HOME/requests/.

Milvus Lite and SQLite allow one writer, so `newsclust ingest` and `newsclust rebuild` beside a
running `serve` hand their work to it. Each request has its own token, so nothing overwrites
anything; the answer is written beside it, so the command can wait for the outcome and print it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .files import TEMP_SUFFIXES, atomic_write

REBUILD = "rebuild"
INGEST = "ingest"
ANSWER_TTL_S = 7 * 86400  # answers nobody collected are removed after a week


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


def _sweep(folder: Path) -> None:
    cutoff = time.time() - ANSWER_TTL_S
    for p in folder.glob("*.answer"):
        try:
            if p.stat().st_mtime < cutoff:
                p.unlink()
        except OSError:
            pass
