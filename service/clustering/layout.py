"""Vectors -> 2-D map coordinates for the report.

UMAP is fitted on a bounded sample and the rest is transformed into that map, so the
cost stays flat as the stream grows; a fixed seed makes the same data give the same map.
"""

from __future__ import annotations

import numpy as np

FIT_SAMPLE = 20_000


def layout_2d(vectors: np.ndarray, seed: int = 42, fit_sample: int = FIT_SAMPLE) -> np.ndarray:
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if n < 5:
        # too few for a neighbour graph: spread them on a line by their first principal direction
        centred = vectors - vectors.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False) if n > 1 else (None, None, np.eye(1, vectors.shape[1]))
        x = centred @ vt[0]
        return np.column_stack([x, np.zeros(n)]).astype(np.float32)
    import umap

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, fit_sample), replace=False))
    reducer = umap.UMAP(
        n_components=2, n_neighbors=min(15, len(sample) - 1), min_dist=0.1, metric="cosine",
        random_state=seed, n_jobs=1, init="random" if len(sample) < 50 else "spectral",
    )
    xy = np.empty((n, 2), np.float32)
    xy[sample] = reducer.fit_transform(vectors[sample])
    rest = np.setdiff1d(np.arange(n), sample)
    if len(rest):
        xy[rest] = reducer.transform(vectors[rest])
    return xy
