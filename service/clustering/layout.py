"""Vectors -> 2-D map coordinates for the report.

UMAP is fitted on a bounded sample and the rest is placed into that map at the weighted mean
of its kNN-graph neighbours (spread outward from the sample over the graph the rebuild already
has), so the cost stays flat as the stream grows: UMAP's own transform of 80k documents took
~190 s of a 100k rebuild. A fixed seed makes the same data give the same map. The
previous run's coordinates seed the new layout (documents seen before start where they
were, new ones at their neighbours' mean: quick_layout, which is also the map the page shows
until the refined one is ready), so clusters do not jump between reports.
"""

from __future__ import annotations

import warnings

import numpy as np

from .graph import Neighbours

FIT_SAMPLE = 20_000


def quick_layout(vectors: np.ndarray, neigh: Neighbours, previous: np.ndarray | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """A map in well under a second, for the page published with the rebuild's commit: documents the last map had
    stay where readers saw them, new ones go to the mean of their placed neighbours (plus a little jitter), outward
    over the graph. Without a last map (or with under 5 of these documents on it): the first two principal
    directions. Returns (xy, seeded by the last map)."""
    n = len(vectors)
    known = np.zeros(n, bool) if previous is None else ~np.isnan(previous[:, 0])
    if known.sum() >= 5 and n >= 16:
        return spread_over_graph(np.nan_to_num(previous).astype(np.float32), known, neigh, rng).astype(np.float32), True
    return _principal_plane(vectors, rng), False


def _principal_plane(vectors: np.ndarray, rng: np.random.Generator, sample: int = 20_000, chunk: int = 16_384) -> np.ndarray:
    """The first two principal directions of a sample, from its d x d covariance (an eigendecomposition of 384 x 384)
    rather than an SVD of the sample itself: 4.2 -> 0.1 s on 20k x 384 on 2 busy cores, the same plane. Each
    direction's sign is fixed (its largest component positive), so the same data always gives the same map.

    On one BLAS thread: the work is small, and BLAS's threads waiting on each other beside other busy processes made
    it 1.2-3.7 s at 100k (load 8 on 2 cores) instead of 0.4-0.6 s; the eigenvectors (last bits) no longer depend on the
    machine's core count either. Rows are projected in chunks (no float64 copy of every vector)."""
    from threadpoolctl import threadpool_limits

    n = len(vectors)
    out = np.zeros((n, 2), np.float32)
    if n == 0:
        return out
    rows = np.arange(n) if n <= sample else np.sort(rng.choice(n, size=sample, replace=False))
    with threadpool_limits(1, user_api="blas"):
        x = np.asarray(vectors[rows], dtype=np.float64)
        mean = x.mean(axis=0)
        x -= mean
        _, eigvecs = np.linalg.eigh(x.T @ x)
        take = min(2, x.shape[1], max(n - 1, 1))
        top = eigvecs[:, ::-1][:, :take]
        top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(take)])
        for s in range(0, n, chunk):
            out[s : s + chunk, :take] = (np.asarray(vectors[s : s + chunk], np.float64) - mean) @ top
    return out


def spread_over_graph(xy: np.ndarray, placed: np.ndarray, neigh: Neighbours, rng: np.random.Generator) -> np.ndarray:
    """Unplaced rows take the distance-weighted mean of their placed neighbours, round by round
    outward over the graph; rows the graph never reaches go beside a random placed row."""
    xy, placed = xy.copy(), placed.copy()
    valid = neigh.indices >= 0
    idx = np.where(valid, neigh.indices, 0)
    weight = np.where(valid, 1.0 / (neigh.distances + 1e-3), 0.0)
    spread = 1e-2 * (np.std(xy[placed]) + 1e-9)
    while not placed.all():
        todo = np.flatnonzero(~placed)
        usable = weight[todo] * placed[idx[todo]]
        reached = usable.sum(axis=1) > 0
        if not reached.any():
            break
        rows, w = todo[reached], usable[reached]
        xy[rows] = (w[:, :, None] * xy[idx[rows]]).sum(axis=1) / w.sum(axis=1)[:, None]
        xy[rows] += rng.normal(scale=spread, size=(len(rows), 2))  # twins with the same neighbours do not stack
        placed[rows] = True
    lost = np.flatnonzero(~placed)
    if len(lost):
        xy[lost] = xy[rng.choice(np.flatnonzero(placed), size=len(lost))] + rng.normal(scale=spread, size=(len(lost), 2))
    return xy


def fit_sample_rows(n: int, seed: int = 42, fit_sample: int = FIT_SAMPLE) -> np.ndarray:
    """The rows UMAP is fitted on (all up to fit_sample): a caller that keeps the vectors for a later layout keeps
    only these (a map refined after the page, at 1M documents: 31 MB instead of 1.5 GB)."""
    if n <= fit_sample:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=fit_sample, replace=False))


def layout_2d(vectors: np.ndarray, seed: int = 42, init: np.ndarray | None = None, fit_sample: int = FIT_SAMPLE,
              neigh: Neighbours | None = None, sample: np.ndarray | None = None) -> np.ndarray:
    """(n, 2) map coordinates. sample: the rows (fit_sample_rows) whose vectors `vectors` holds, when the caller
    kept only those; the other rows are then placed over `neigh`, which covers all n."""
    if sample is not None and len(sample) < len(vectors):
        raise ValueError("layout_2d: fewer sample rows than vectors")
    n = len(vectors) if sample is None else len(neigh.indices)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if n < 16:
        # too few for a neighbour graph: spread them along their first two principal directions
        centred = vectors - vectors.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        out = np.zeros((n, 2), np.float32)
        take = min(2, vt.shape[0])
        out[:, :take] = centred @ vt[:take].T
        return out
    import umap
    from numba.core.errors import NumbaWarning

    from .warmup import cache_layout_code

    cache_layout_code()
    rng = np.random.default_rng(seed)
    fitted = vectors if sample is not None else None
    if sample is None:
        sample = fit_sample_rows(n, seed, fit_sample)
        fitted = vectors[sample]
    reducer = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed, n_jobs=1,
                        init=init[sample] if init is not None else "spectral")
    xy = np.zeros((n, 2), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", NumbaWarning)  # a function numba cannot cache is compiled as before
        xy[sample] = reducer.fit_transform(fitted)
        rest = np.setdiff1d(np.arange(n), sample)
        if len(rest) and neigh is not None:
            placed = np.zeros(n, dtype=bool)
            placed[sample] = True
            return spread_over_graph(xy, placed, neigh, rng).astype(np.float32)
        if len(rest):
            xy[rest] = reducer.transform(vectors[rest])
    return xy
