"""Place arrivals between rebuilds, in the spirit of hdbscan's approximate_predict.

An approximation, said plainly: it can only put a document into a story the last
rebuild found, never create one. The rule (measured at 96-97% agreement
with a full refit): among the arrival's nearest fitted documents, take the closest in
mutual reachability, max(d, own core distance, neighbour's core distance), that sits in a
story; accept it when that distance is no looser than the loosest link the story
accepted itself (its largest internal MST edge), otherwise the arrival is noise and waits
in the noise pool for the next rebuild. An exact duplicate of a fitted document takes
that document's result as it is, so predicting on the fitted documents reproduces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..domain import NOISE
from ..sorted_keys import find_rows, find_sorted

DUPLICATE_DISTANCE = 1e-6


@dataclass(frozen=True)
class PredictionState:
    """What a rebuild leaves behind for placing arrivals: per fitted document and per story (the cluster_* fields: one entry per story)."""

    doc_ids: np.ndarray  # (n,) int64, Milvus primary keys of the fitted documents
    labels: np.ndarray  # (n,) int64 story ids (persistent ids once matched), NOISE for noise
    probabilities: np.ndarray  # (n,) float32
    outlier_scores: np.ndarray  # (n,) float32
    core_distances: np.ndarray  # (n,) float32
    cluster_ids: np.ndarray  # (c,) int64
    cluster_max_edge: np.ndarray  # (c,) float32
    cluster_min_core: np.ndarray  # (c,) float32
    min_samples: int
    topics: np.ndarray | None = None  # (n,) int64 persistent topic id of each fitted document, NOISE for none
    cluster_topics: np.ndarray | None = None  # (c,) int64 the topic each story sits in

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id in the fitted arrays, -1 for documents the rebuild did not see."""
        if len(self.doc_ids) == 0:
            return np.full(ids.shape, -1, np.int64)
        order, sorted_ids = self._id_order
        at, found = find_sorted(sorted_ids, ids)
        return np.where(found, order[at], -1)

    # Derived once per state (the app keeps one a run), not for every arriving batch: sorting a million fitted ids, or
    # each story's members by probability, costs a batch tenths of a second at 1M documents.
    @cached_property
    def _id_order(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.doc_ids)
        return order, self.doc_ids[order]

    @cached_property
    def member_rows(self) -> np.ndarray:
        """Each fitted document's row in the cluster_* arrays, -1 for noise."""
        return _story_rows(self, self.labels)

    @cached_property
    def sparsest_member_core(self) -> np.ndarray:
        return _sparsest_member_core(self, self.member_rows)

    @cached_property
    def weakest_quarter(self) -> np.ndarray:
        return _weakest_quarter(self, self.member_rows)


@dataclass(frozen=True)
class Placement:
    labels: np.ndarray  # (m,) int64 story ids or NOISE
    probabilities: np.ndarray  # (m,) float32
    outlier_scores: np.ndarray  # (m,) float32


def place(state: PredictionState, neighbour_pos: np.ndarray, neighbour_dist: np.ndarray, min_vote: float = 0.0,
          density_dist: np.ndarray | None = None) -> Placement:
    """neighbour_pos: (m, k) rows into the state's fitted arrays (-1 = none), closest first.

    density_dist (m, k'): the arrival's distances to every stored neighbour, fitted or not (the other arrivals
    too; itself left out, inf for none). Its own core distance is then measured among them, as the next rebuild
    will measure it, instead of among the fitted documents alone. Why: arrivals of a running story come in
    groups; among fitted documents only, an arrival whose nearest neighbours are its fellow arrivals looked sparse,
    and its mutual reachability failed the story's threshold though its nearest fitted neighbours sat in the story.
    Story file streamed in 10 chunks: of the arrivals the rebuild put into an existing story, 61% -> 83% placed at
    once, 99.7% -> 98.9% of placed ones kept (bench/quality.py; AG News in the README).

    When density_dist's columns are the same stored neighbours as neighbour_pos (the fitted ones with a row, the
    others -1), an arrival inside a story's body may also join by a looser link: when at least half of its
    2 * min_samples nearest stored documents, fitted or not, are fitted members of the story, its mutual
    reachability need only be within the story's sparsest member's core distance (the capped threshold guards
    against arrivals of a story new in their batch, whose nearest documents are their fellow arrivals, never the
    story's members). Why: at a story's sparse edge an arrival's own core distance is looser than 90% of the story's
    members though the rebuild keeps it in the story. Story file, 10 files (bench/quality.py): of the arrivals the
    rebuild put into an existing story, placed at once 0.824 -> 0.87 (a rebuild after every file) and 0.700 -> 0.86
    (after every second file), placed kept 0.996 / 0.991 unchanged.

    An arrival must have, among its fetched neighbours in the story, at least one member as strong as the story's
    weakest quarter (membership probability at or above the story's 25% quantile, over the members the fit put
    there): one whose neighbours there are all fringe waits for the rebuild. Why: a handful of early headlines of a new event, clustered into a nearby story at its edge, drew the
    event's later arrivals into that story, and the rebuild then set them apart as a new story (story file
    shuffled in blocks of 200 rows, a rebuild after every second file: 59 of 69 placed arrivals the rebuild moved
    came in through such members; no arrival the rebuild kept did, in any of the orders measured).

    min_vote > 0 also asks the neighbourhood: the chosen story must hold at least that share
    of the fitted neighbours' weight (1 / mutual reachability; noise neighbours vote too), so an
    arrival between stories, or at the edge of noise, waits for the rebuild instead of guessing.
    """
    m = neighbour_pos.shape[0]
    labels = np.full(m, NOISE, np.int64)
    probs = np.zeros(m, np.float32)
    outlier = np.ones(m, np.float32)
    if m == 0 or neighbour_pos.shape[1] == 0 or len(state.doc_ids) == 0 or len(state.cluster_ids) == 0:
        return Placement(labels, probs, outlier)

    valid = neighbour_pos >= 0
    pos = np.where(valid, neighbour_pos, 0)
    dist = np.where(valid, neighbour_dist, np.inf).astype(np.float32)
    # keep neighbours sorted by distance: the store's order may differ after filtering
    order = np.argsort(dist, axis=1, kind="stable")
    pos, dist, valid = (np.take_along_axis(a, order, axis=1) for a in (pos, dist, valid))

    col = min(state.min_samples, dist.shape[1]) - 1
    own_core = dist[:, col]
    if density_dist is not None and density_dist.shape[1]:
        around = np.sort(np.where(np.isfinite(density_dist), density_dist, np.inf).astype(np.float32), axis=1)
        own_core = np.minimum(own_core, around[:, min(state.min_samples, around.shape[1]) - 1])
    mr = np.maximum(np.maximum(dist, own_core[:, None]), state.core_distances[pos])
    mr[~valid] = np.inf
    nb_label = np.where(valid, state.labels[pos], NOISE)

    label_row = _story_rows(state, nb_label)
    in_story = label_row >= 0
    mr_in_story = np.where(in_story, mr, np.inf)
    best = np.argmin(mr_in_story, axis=1)
    rows = np.arange(m)
    best_mr = mr_in_story[rows, best]
    best_row = label_row[rows, best]
    has = np.isfinite(best_mr)
    threshold = np.where(has, state.cluster_max_edge[np.maximum(best_row, 0)], 0.0)
    accept = has & (best_mr <= threshold)
    if density_dist is not None and density_dist.shape == neighbour_pos.shape:
        body = _in_story_body(state, neighbour_pos, density_dist, state.labels[pos[rows, best]])
        sparsest = np.where(has, state.sparsest_member_core[np.maximum(best_row, 0)], 0.0)
        accept |= has & body & (best_mr <= sparsest)
    chosen = state.labels[pos[rows, best]]
    touched = np.where(valid & (nb_label == chosen[:, None]), state.probabilities[pos], -np.inf).max(axis=1)
    accept &= touched >= np.where(has, state.weakest_quarter[np.maximum(best_row, 0)], np.inf)
    if min_vote > 0:
        accept &= _vote_share(mr, nb_label, state.labels[pos[rows, best]]) >= min_vote

    densest = np.where(has, state.cluster_min_core[np.maximum(best_row, 0)], np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = np.clip(np.where(has, densest / best_mr, 0.0), 0.0, 1.0)
        nearest_any = mr.min(axis=1)
        outlier_raw = np.clip(np.where(np.isfinite(nearest_any) & has, 1.0 - densest / nearest_any, 1.0), 0.0, 1.0)

    labels[accept] = state.labels[pos[rows, best]][accept]
    probs[accept] = strength[accept]
    outlier[:] = outlier_raw

    duplicate = valid[:, 0] & (dist[:, 0] <= DUPLICATE_DISTANCE)
    twin = pos[:, 0]
    labels[duplicate] = state.labels[twin[duplicate]]
    probs[duplicate] = state.probabilities[twin[duplicate]]
    outlier[duplicate] = state.outlier_scores[twin[duplicate]]
    return Placement(labels, probs.astype(np.float32), outlier.astype(np.float32))


def place_topics(state: PredictionState, neighbour_pos: np.ndarray, story_labels: np.ndarray, min_share: float = 0.5) -> np.ndarray:
    """An arrival's topic: its story's, when it joined one; else the topic that at least min_share of its
    fitted neighbours hold (the rebuild's own rule for spreading topics over the graph), else NOISE."""
    m = len(story_labels)
    topics = np.full(m, NOISE, np.int64)
    if state.topics is None or state.cluster_topics is None or m == 0:
        return topics
    story_topic = dict(zip(state.cluster_ids.tolist(), state.cluster_topics.tolist()))
    in_story = story_labels != NOISE
    topics[in_story] = [story_topic.get(int(c), NOISE) for c in story_labels[in_story]]
    valid = neighbour_pos >= 0
    if valid.shape[1] == 0:
        return topics
    nb = np.where(valid, state.topics[np.maximum(neighbour_pos, 0)], NOISE)
    n_valid = np.maximum(valid.sum(axis=1), 1)
    for row in np.flatnonzero(~in_story):
        votes = nb[row][nb[row] != NOISE]
        if votes.size:
            values, counts = np.unique(votes, return_counts=True)
            best = int(np.argmax(counts))
            if counts[best] >= min_share * n_valid[row]:
                topics[row] = values[best]
    return topics


def _story_rows(state: PredictionState, labels: np.ndarray) -> np.ndarray:
    """Row in the state's cluster_* arrays of each story id, -1 for noise and unknown ids."""
    if len(state.cluster_ids) == 0:
        return np.full(labels.shape, -1, np.int64)
    rows, found = find_rows(state.cluster_ids, labels)
    return np.where(found, rows, -1)


def _sparsest_member_core(state: PredictionState, rows: np.ndarray) -> np.ndarray:
    """(c,) each story's largest core distance among the members the fit put in it (rows: _story_rows of
    state.labels): the sparsest point the fit kept in it. Members held in from noise (probability 0) and cores over
    too few neighbours (inf) are left out: else a loosely held member loosens the next ceiling, and so on."""
    out = np.zeros(len(state.cluster_ids), np.float32)
    member = (rows >= 0) & (state.probabilities > 0) & np.isfinite(state.core_distances)
    np.maximum.at(out, rows[member], state.core_distances[member])
    return out


def _weakest_quarter(state: PredictionState, rows: np.ndarray, q: float = 0.25) -> np.ndarray:
    """(c,) each story's q-quantile (lower: for 4 members or fewer, the weakest) of the membership probabilities of
    the members the fit put in it (rows: _story_rows of state.labels). Members held in from noise (probability 0) are
    left out, so they always count as fringe: counted, a quarter of them would bring the quantile to 0."""
    member = np.flatnonzero((rows >= 0) & (state.probabilities > 0))
    c = len(state.cluster_ids)
    out = np.zeros(c, np.float32)
    if member.size == 0:
        return out
    order = member[np.lexsort((state.probabilities[member], rows[member]))]
    lab = rows[order]
    start = np.searchsorted(lab, np.arange(c))
    size = np.bincount(lab, minlength=c)
    at = np.minimum(start + np.clip(np.floor(q * (size - 1)).astype(np.int64), 0, None), len(order) - 1)
    return np.where(size > 0, state.probabilities[order[at]], 0.0).astype(np.float32)


def _in_story_body(state: PredictionState, neighbour_pos: np.ndarray, density_dist: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Whether at least half of each arrival's 2 * min_samples nearest stored documents (density_dist, columns as
    neighbour_pos) are fitted members of its chosen story: the arrival sits among the story's own documents."""
    near = 2 * state.min_samples
    d = np.where(np.isfinite(density_dist), density_dist, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :near]
    nb = np.take_along_axis(neighbour_pos, order, axis=1)
    listed = np.isfinite(np.take_along_axis(d, order, axis=1)) & (nb >= 0)
    member = listed & (state.labels[np.maximum(nb, 0)] == chosen[:, None]) & (chosen[:, None] != NOISE)
    return 2 * member.sum(axis=1) >= near


def _vote_share(mr: np.ndarray, nb_label: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Share of each row's neighbour weight (1 / mutual reachability) that sits in the chosen story."""
    with np.errstate(divide="ignore"):
        weight = np.where(np.isfinite(mr), 1.0 / np.maximum(mr, 1e-6), 0.0)
    total = weight.sum(axis=1)
    mine = (weight * (nb_label == chosen[:, None])).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, mine / total, 0.0)


def dense_groups(neigh, min_samples: int, radius: float, min_size: int) -> np.ndarray:
    """Groups of at least min_size documents linked at mutual-reachability distance <= radius; NOISE elsewhere.

    For the noise pool: HDBSCAN on the pool alone cannot call the whole pool one story (it never
    selects the root), so this is DBSCAN at the scale of the stories the last rebuild found.
    """
    from scipy.sparse.csgraph import connected_components

    from .graph import core_distances, mutual_reachability, symmetric_graph

    n = neigh.indices.shape[0]
    labels = np.full(n, NOISE, np.int64)
    if n < min_size or neigh.k == 0:
        return labels
    mr = symmetric_graph(neigh, mutual_reachability(neigh, core_distances(neigh, min_samples)))
    mr.data[mr.data > radius] = 0
    mr.eliminate_zeros()
    _, component = connected_components(mr, directed=False)
    sizes = np.bincount(component)
    big = np.flatnonzero(sizes >= min_size)
    keep = np.isin(component, big)
    labels[keep] = np.searchsorted(big, component[keep])
    return labels
