"""What the two-level fit (two_level.py) and settle (levels.py) share about an HDBSCAN fit.

- scaled_min_cluster_size: the coarse (topic-size) cut's min_cluster_size, sqrt(n)/2.
- Anchor: the previous run's stories, for hysteresis (identity.stabilize).
- The state for placing arrivals, measured in the original 384-d space where arrivals' Milvus
  neighbours live: per story its loosest internal mutual-reachability MST edge (cluster_max_edges)
  and its densest core (cluster_min_core); GLOSH outlier scores over a condensed tree (glosh_scores).

The rebuild runs HDBSCAN on the raw kNN graph only (two_level.py says why: no UMAP). The one-level
engine that lived here (UMAP seeded from our graph, then HDBSCAN) is a baseline in bench/stories.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import minimum_spanning_tree

from . import defaults
from .graph import Neighbours, mutual_reachability, symmetric_graph


def scaled_min_cluster_size(n: int) -> int:
    """The coarse cut grows with the stream: a fixed size shatters big data or drowns small groups. sqrt(n)/2 won the
    one-level harness; two_level.py uses it for the topic-size cut (stories keep a fixed size)."""
    return int(max(5, min(200, round(math.sqrt(max(n, 1)) / 2))))


@dataclass(frozen=True)
class Anchor:
    """The previous run's labels, for hysteresis (identity.stabilize): doc ids sorted, persistent labels."""

    doc_ids: np.ndarray
    labels: np.ndarray
    new_doc_ids: np.ndarray
    hold_margin: float = defaults.HOLD_MARGIN
    placed: tuple[np.ndarray, np.ndarray] | None = None  # arrivals placed since: (doc ids, persistent ids)


def cluster_max_edges(neigh: Neighbours, core: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    """The threshold for placing arrivals: the loosest link each cluster accepted among its own members.

    Measured on the minimum spanning forest of the mutual-reachability kNN graph restricted
    to edges inside one cluster, in the original space.
    """
    out = np.zeros(c, np.float32)
    if c == 0:
        return out
    # links leaving a cluster dropped before the graph is made symmetric: only the inside is ever built
    own = labels[np.maximum(neigh.indices, 0)]
    inside = (neigh.indices >= 0) & (own == labels[:, None]) & (labels[:, None] >= 0)
    del own
    mr = symmetric_graph(Neighbours(np.where(inside, neigh.indices, -1), neigh.distances), mutual_reachability(neigh, core))
    forest = minimum_spanning_tree(mr).tocoo()
    np.maximum.at(out, labels[forest.row], forest.data.astype(np.float32))
    return out


def cluster_min_core(core: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    """The densest core distance inside each cluster (a placed arrival's strength is measured against it)."""
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
