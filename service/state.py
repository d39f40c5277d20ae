"""Per-run files beside the SQLite history: the prediction state and the report layout.

Written to a temporary name and renamed, so a crash never leaves half a file under the real name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .clustering.assign import PredictionState


def _atomic_savez(path: Path, **arrays: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
    )


def load_prediction_state(state_dir: Path, run_id: int) -> PredictionState | None:
    path = state_path(state_dir, run_id)
    if not path.exists():
        return None
    with np.load(path) as z:
        return PredictionState(
            doc_ids=z["doc_ids"], labels=z["labels"], probabilities=z["probabilities"], outlier_scores=z["outlier_scores"],
            core_distances=z["core_distances"], cluster_ids=z["cluster_ids"], cluster_max_edge=z["cluster_max_edge"],
            cluster_min_core=z["cluster_min_core"], min_samples=int(z["min_samples"]),
        )


def save_layout(state_dir: Path, run_id: int, doc_ids: np.ndarray, xy: np.ndarray) -> None:
    _atomic_savez(layout_path(state_dir, run_id), doc_ids=doc_ids, xy=xy)


def load_layout(state_dir: Path, run_id: int) -> tuple[np.ndarray, np.ndarray] | None:
    path = layout_path(state_dir, run_id)
    if not path.exists():
        return None
    with np.load(path) as z:
        return z["doc_ids"], z["xy"]
