"""Sparse distance graph -> labels, membership probabilities, GLOSH outlier scores, prediction state.

HDBSCAN runs on the sparse graph itself through fast_hdbscan's precomputed path, which
keeps explicit zeros (duplicate headlines) and bridges disconnected components instead
of failing as hdbscan's sparse path does. Memory is O(edges).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..domain import NOISE


@dataclass(frozen=True)
class HdbscanParams:
    min_cluster_size: int = 0  # 0: scaled with n by scaled_min_cluster_size
    min_samples: int = 3
    selection: str = "leaf"  # "leaf" or "eom"
    max_cluster_share: float = 0.2  # eom only: a cluster above this share of documents means collapse; fall back to leaf


def scaled_min_cluster_size(n: int) -> int:
    """Stories grow with the stream; a fixed size either shatters small data or drowns stories in big data."""
    return int(max(5, min(100, round(math.sqrt(max(n, 1)) / 3))))


@dataclass(frozen=True)
class Fit:
    labels: np.ndarray  # (n,) int64, 0..c-1 or NOISE, in the order clusters appear in the tree
    probabilities: np.ndarray  # (n,) float32 in [0, 1]
    outlier_scores: np.ndarray  # (n,) float32 in [0, 1], GLOSH
    core_distances: np.ndarray  # (n,) float32, min_samples-th neighbour in the graph
    cluster_max_edge: np.ndarray  # (c,) largest mutual-reachability MST edge inside each cluster
    cluster_min_core: np.ndarray  # (c,) smallest core distance inside each cluster (its densest point)
    min_cluster_size: int

    @property
    def n_clusters(self) -> int:
        return len(self.cluster_max_edge)


def fit_hdbscan(graph: sp.csr_matrix, params: HdbscanParams) -> Fit:
    from fast_hdbscan.hdbscan import fast_hdbscan

    n = graph.shape[0]
    mcs = params.min_cluster_size or scaled_min_cluster_size(n)
    if n < max(2, mcs) or graph.nnz == 0:
        return _all_noise(n, mcs)

    def run(selection: str):
        return fast_hdbscan(
            graph,
            metric="precomputed",
            min_samples=int(params.min_samples),
            min_cluster_size=int(mcs),
            cluster_selection_method=selection,
            return_trees=True,
        )

    result = run(params.selection)
    if params.selection == "eom" and _largest_share(result[0]) > params.max_cluster_share:
        result = run("leaf")
    labels, probabilities, _slt, condensed, mst, _neigh, core = result
    labels = np.asarray(labels, dtype=np.int64)
    core = np.asarray(core, dtype=np.float32)
    c = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    return Fit(
        labels=labels,
        probabilities=np.asarray(probabilities, dtype=np.float32),
        outlier_scores=glosh_scores(condensed, n),
        core_distances=core,
        cluster_max_edge=_cluster_max_edge(np.asarray(mst), labels, c),
        cluster_min_core=_cluster_min_core(core, labels, c),
        min_cluster_size=int(mcs),
    )


def _all_noise(n: int, mcs: int) -> Fit:
    return Fit(
        labels=np.full(n, NOISE, np.int64),
        probabilities=np.zeros(n, np.float32),
        outlier_scores=np.ones(n, np.float32),
        core_distances=np.full(n, np.inf, np.float32),
        cluster_max_edge=np.zeros(0, np.float32),
        cluster_min_core=np.zeros(0, np.float32),
        min_cluster_size=mcs,
    )


def _largest_share(labels: np.ndarray) -> float:
    clustered = labels[labels >= 0]
    return 0.0 if clustered.size == 0 else np.bincount(clustered).max() / len(labels)


def _cluster_max_edge(mst: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    """The threshold for placing arrivals: the loosest link the cluster already accepted."""
    out = np.zeros(c, np.float32)
    if c == 0 or mst.size == 0:
        return out
    a, b, w = mst[:, 0].astype(np.int64), mst[:, 1].astype(np.int64), mst[:, 2]
    inside = (labels[a] == labels[b]) & (labels[a] >= 0) & np.isfinite(w)
    np.maximum.at(out, labels[a[inside]], w[inside].astype(np.float32))
    return out


def _cluster_min_core(core: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    out = np.full(c, np.inf, np.float32)
    member = labels >= 0
    np.minimum.at(out, labels[member], core[member])
    return out


def glosh_scores(condensed, n: int) -> np.ndarray:
    """GLOSH: 1 - λ(point leaves) / λmax(the cluster it leaves, with its subtree)."""
    parent = np.asarray(condensed.parent, dtype=np.int64)
    child = np.asarray(condensed.child, dtype=np.int64)
    lam = np.asarray(condensed.lambda_val, dtype=np.float64)
    scores = np.ones(n, np.float32)
    if parent.size == 0:
        return scores
    lam = np.where(np.isfinite(lam), lam, np.finfo(np.float64).max / 4)
    top = int(max(parent.max(), child.max())) + 1
    deaths = np.zeros(top, np.float64)
    np.maximum.at(deaths, parent, lam)
    is_cluster = child >= n
    # children carry larger ids than their parents: sweep deepest first to fold subtrees up
    for i in np.flatnonzero(is_cluster)[np.argsort(-child[is_cluster], kind="stable")]:
        deaths[parent[i]] = max(deaths[parent[i]], deaths[child[i]])
    points = ~is_cluster
    p, pl = child[points], lam[points]
    dmax = deaths[parent[points]]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(dmax > 0, (dmax - pl) / dmax, 0.0)
    scores[p] = np.clip(s, 0.0, 1.0)
    return scores
