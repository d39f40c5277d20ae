"""Per-run files beside the SQLite history: the prediction state and the report layout.

Written to a temporary name and renamed, so a crash never leaves half a file under the real name.

Everything here is derived from Milvus and SQLite: a file that is missing, truncated or from
another version reads as missing (with a log line) and is made again by the next rebuild.
"""

from __future__ import annotations

import io
import logging
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
    """The named arrays, or None (and the damaged file removed) when the file is not whole."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {n: z[n] for n in names}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("derived state %s is unreadable (%s: %s): ignored; the next rebuild writes it again", path.name, type(exc).__name__, exc)
        try:
            path.unlink()
        except OSError:
            pass
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
