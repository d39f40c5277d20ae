"""Per-run files beside the SQLite history: the prediction state and the report layout.

Written to a temporary name and renamed, so a crash never leaves half a file under the real name.

Everything here is derived from Milvus and SQLite: a file that is missing, truncated or from
another version reads as missing (with a log line) and is made again by the next rebuild.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

import numpy as np

from .clustering.assign import PredictionState
from .files import atomic_write

log = logging.getLogger("newsclust.state")


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write(path, buf.getvalue())


def _load_npz(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The named arrays, or None when the file is missing or not whole. A read only reads: a damaged file stays
    until the next rebuild writes the run's file again (under the same name, atomically) or pruning removes it."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {n: z[n] for n in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("derived state %s is unreadable (%s: %s): ignored; the next rebuild writes it again", path.name, type(exc).__name__, exc)
        return None


def state_path(state_dir: Path, run_id: int) -> Path:
    return state_dir / f"run-{run_id}.npz"


def layout_path(state_dir: Path, run_id: int) -> Path:
    return state_dir / f"layout-{run_id}.npz"


def save_prediction_state(state_dir: Path, run_id: int, s: PredictionState) -> None:
    _atomic_savez(
        state_path(state_dir, run_id),
        doc_ids=s.doc_ids, labels=s.labels, probabilities=s.probabilities, outlier_scores=s.outlier_scores,
        core_distances=s.core_distances, cluster_ids=s.cluster_ids, cluster_max_edge=s.cluster_max_edge,
        cluster_min_core=s.cluster_min_core, min_samples=np.array(s.min_samples),
        topics=s.topics if s.topics is not None else np.full(len(s.doc_ids), -1, np.int64),
        cluster_topics=s.cluster_topics if s.cluster_topics is not None else np.full(len(s.cluster_ids), -1, np.int64),
    )


def load_prediction_state(state_dir: Path, run_id: int) -> PredictionState | None:
    z = _load_npz(state_path(state_dir, run_id), ("doc_ids", "labels", "probabilities", "outlier_scores", "core_distances",
                                                  "cluster_ids", "cluster_max_edge", "cluster_min_core", "min_samples", "topics",
                                                  "cluster_topics"))
    if z is None:
        return None
    return PredictionState(
        doc_ids=z["doc_ids"], labels=z["labels"], probabilities=z["probabilities"], outlier_scores=z["outlier_scores"],
        core_distances=z["core_distances"], cluster_ids=z["cluster_ids"], cluster_max_edge=z["cluster_max_edge"],
        cluster_min_core=z["cluster_min_core"], min_samples=int(z["min_samples"]), topics=z["topics"], cluster_topics=z["cluster_topics"],
    )


def save_layout(state_dir: Path, run_id: int, doc_ids: np.ndarray, xy: np.ndarray) -> None:
    _atomic_savez(layout_path(state_dir, run_id), doc_ids=doc_ids, xy=xy)


def load_layout(state_dir: Path, run_id: int) -> tuple[np.ndarray, np.ndarray] | None:
    z = _load_npz(layout_path(state_dir, run_id), ("doc_ids", "xy"))
    return None if z is None else (z["doc_ids"], z["xy"])


def save_story_cohesion(state_dir: Path, run_id: int, story_ids: np.ndarray, cohesion: np.ndarray) -> None:
    """Each story's cohesion (mean cosine to its centre) for the surge check between rebuilds; tiny, one per run."""
    _atomic_savez(state_dir / f"cohesion-{run_id}.npz", story_ids=story_ids, cohesion=cohesion)
    for old in state_dir.glob("cohesion-*.npz"):
        if old.name != f"cohesion-{run_id}.npz":
            old.unlink(missing_ok=True)


def load_story_cohesion(state_dir: Path, run_id: int) -> tuple[np.ndarray, np.ndarray] | None:
    z = _load_npz(state_dir / f"cohesion-{run_id}.npz", ("story_ids", "cohesion"))
    return None if z is None else (z["story_ids"], z["cohesion"])


def _fitted_status(data: dict, size: int) -> str:
    """The status as JSON of at most `size` bytes: long reasons shortened, then the list of waiting files halved
    until it fits (serialised JSON is never cut: a reader must always get valid JSON)."""
    text = json.dumps(data, default=str)
    if len(text.encode()) <= size:
        return text
    waiting = {k: {**v, "reason": str(v.get("reason") or "")[:300]} if isinstance(v, dict) else v
               for k, v in (data.get("files_waiting") or {}).items()}
    error = data.get("last_error")
    if isinstance(error, dict):
        error = {**error, "what": str(error.get("what") or "")[:1000]}
    while True:
        text = json.dumps({**data, "files_waiting": waiting, "files_waiting_cut": True, "last_error": error}, default=str)
        if len(text.encode()) <= size or not waiting:
            return text if len(text.encode()) <= size else json.dumps({"status_cut": True, "pid": data.get("pid")})
        waiting = dict(list(waiting.items())[: len(waiting) // 2])


class StatusBoard:
    """What only the serving process knows (files it retries, a rebuild's backoff, the last error), for
    `newsclust status` and anything else that asks (`snapshot`).

    Kept in memory, and mirrored to a file that is preallocated when the board opens and then rewritten in
    place: overwriting blocks a file already holds needs no free space, so a full disk cannot silence the
    one report that says the disk is full (a temporary file and a rename, as before, failed with ENOSPC and
    `status` showed no error at all). A reader may catch a rewrite half done: it reads again (read_status).
    """

    SIZE = 64 * 1024  # status JSON; past it the list of waiting files is cut (and says so)

    def __init__(self, path: Path, home: Path | None = None):
        self.path = path
        self.home = home
        self._data: dict = {}
        self._fd: int | None = None
        self._lock = threading.Lock()

    def snapshot(self) -> dict:
        with self._lock:
            return json.loads(json.dumps(self._data, default=str))

    def publish(self, data: dict) -> None:
        text = _fitted_status(data, self.SIZE)
        with self._lock:
            self._data = json.loads(text)
            try:
                fd = self._open()
                os.pwrite(fd, text.encode().ljust(self.SIZE), 0)
            except OSError as exc:
                log.warning("status file %s not written: %s", self.path, exc)

    def disk_note(self, what: str) -> str:
        """A disk-full error names the disk and how much is free (SQLite's message names neither)."""
        if "full" not in what.lower() or self.home is None:
            return what
        try:
            free = shutil.disk_usage(self.home).free
        except OSError:
            return what
        return f"{what} [disk full: {free / 2**20:.1f} MiB free on the disk of {self.home}]"

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size < self.SIZE:
                    os.pwrite(fd, b" " * self.SIZE, 0)  # the blocks are ours from now on
                    os.fsync(fd)
            except OSError:
                os.close(fd)
                raise
            self._fd = fd
        return self._fd


def read_status(path: Path, tries: int = 5) -> dict | None:
    """The serving process's status file, or None; a read that met a rewrite half done is read again."""
    for _ in range(tries):
        try:
            text = path.read_text()
        except OSError:
            return None
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            time.sleep(0.05)
    return None


STATUS_FILE = "service.json"  # one serving process per home; a shared home's workers each write service-WORKER.json


def status_path(state_dir: Path, worker: str | None = None) -> Path:
    """Where a serving process publishes its status: the home's one server, or (shared home) one worker of it."""
    return state_dir / (f"service-{worker}.json" if worker else STATUS_FILE)


def serving_statuses(state_dir: Path) -> list[dict]:
    """What the serving processes of a home published: the one server's file, else every worker's."""
    one = read_status(status_path(state_dir))
    if one is not None:
        return [one]
    return [st for p in sorted(state_dir.glob(status_path(state_dir, "*").name)) if (st := read_status(p)) is not None]


class StateFolder:
    """The run files of one home (HOME/state/): ports.RunFiles."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir

    def save_prediction_state(self, run_id: int, state: PredictionState) -> None:
        save_prediction_state(self.state_dir, run_id, state)

    def load_prediction_state(self, run_id: int) -> PredictionState | None:
        return load_prediction_state(self.state_dir, run_id)

    def save_layout(self, run_id: int, doc_ids: np.ndarray, xy: np.ndarray) -> None:
        save_layout(self.state_dir, run_id, doc_ids, xy)

    def load_layout(self, run_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        return load_layout(self.state_dir, run_id)

    def save_story_cohesion(self, run_id: int, story_ids: np.ndarray, cohesion: np.ndarray) -> None:
        save_story_cohesion(self.state_dir, run_id, story_ids, cohesion)

    def load_story_cohesion(self, run_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        return load_story_cohesion(self.state_dir, run_id)

    def serving_statuses(self) -> list[dict]:
        return serving_statuses(self.state_dir)


def stop_message(abandoned: int, current_run_id: int | None) -> str:
    """What `serve` says when SIGTERM comes during a rebuild: which run is current, and what happens to the cut one.

    abandoned: runs the stop marked failed (0 when the rebuild had committed and was drawing its map or page)."""
    if abandoned:
        stays = f"run {current_run_id} stays current" if current_run_id is not None else "no run is current yet"
        return f"abandoned the rebuild in progress (marked failed); {stays}"
    current = f"run {current_run_id}" if current_run_id is not None else "no run"
    return (f"the rebuild had committed: {current} is current; its page is written at the next start if the stop cut it off")
