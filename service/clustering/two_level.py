"""One kNN graph -> stories inside topics: two flat cuts of one HDBSCAN hierarchy.

Why two cuts of one tree: HDBSCAN's single-linkage tree over the mutual-reachability MST
holds every scale at once. min_cluster_size only decides which branches count as clusters
when the tree is condensed, so condensing the *same* MST twice gives two selections whose
clusters are subtrees of one tree: a story (fine cut) and a topic (coarse cut) are either
nested or disjoint, never crossing. Spanning tree computed once; each cut costs O(n).

Why the raw 384-d graph for both levels, and no UMAP:
- Stories are near-duplicate wordings of one event, where raw cosine is meaningful. On the
  shared story file the raw graph beats UMAP (BERTopic's recipe) at story level (bench/stories.py).
- Topics on the raw graph alone are poor (on AG News the coarse cut keeps ~4 real clusters but
  calls ~70% of documents noise: density in 384-d is flat). What the coarse cut gets right
  is its *cores*; spreading those labels over the kNN graph (a document joins the topic that a
  strict majority of its listed neighbours hold, repeated until nothing changes) recovers the
  rest, and then each story pulls its members into one topic. Measured on AG News this beats
  UMAP (seeded from our graph) -> HDBSCAN, so one recipe holds from 1k to 1M documents with no
  size switch, and nothing costs more than O(n k) memory.

Why the story size is fixed (5) and the topic size scales (sqrt(n)/2, hdbscan_fit's rule): a
story has a natural size independent of the corpus (five headlines about one event are a story
at 1k and at 1M documents), a topic does not.

Why stories rescue noise only once, from the document's own min_samples neighbours: HDBSCAN
at min_cluster_size 5 leaves ~8% of real story headlines as noise (their core distance is
looser than the story's). A noise document whose core neighbourhood is mostly one story
joins it; one round only, because repeated rounds chain through unrelated headlines (measured:
mixing AG News into the story file, three rounds pulled ~20% of AG documents into stories).
One round from fitted neighbours is also what an arrival gets between rebuilds.

Probabilities: HDBSCAN membership strength where the cut placed the document; for a document
placed by vote, the vote's share times the mean strength of the voters. Outlier scores are
GLOSH over each level's condensed tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..domain import NOISE
from .graph import Neighbours, core_distances, directed_graph
from .hdbscan_fit import cluster_max_edges, glosh_scores, scaled_min_cluster_size

STORY_MIN_CLUSTER_SIZE = 5


@dataclass(frozen=True)
class TwoLevelParams:
    story_min_cluster_size: int = STORY_MIN_CLUSTER_SIZE  # fixed: never grows with the corpus
    topic_min_cluster_size: int = 0  # 0: scaled with n (hdbscan_fit.scaled_min_cluster_size)
    min_samples: int = 5
    max_cluster_share: float = 0.5  # an eom cluster above this share of documents is a collapse: re-select by leaf
    max_spread_rounds: int = 100  # topic label spreading stops earlier once nothing changes


@dataclass(frozen=True)
class TwoLevelFit:
    story_labels: np.ndarray  # (n,) int64, 0..s-1 or NOISE
    story_probabilities: np.ndarray  # (n,) float32 in [0, 1]
    story_outlier_scores: np.ndarray  # (n,) float32 in [0, 1], GLOSH over the story tree
    topic_labels: np.ndarray  # (n,) int64, 0..t-1 or NOISE; equal to story_topic[story] for every story member
    topic_probabilities: np.ndarray  # (n,) float32
    topic_outlier_scores: np.ndarray  # (n,) float32, GLOSH over the topic tree
    story_topic: np.ndarray  # (s,) int64, the one topic of each story (NOISE only if no member reached a topic)
    core_distances: np.ndarray  # (n,) float32, original space
    story_max_edge: np.ndarray  # (s,) loosest mutual-reachability MST edge inside each story
    story_min_core: np.ndarray  # (s,) smallest core distance inside each story
    topic_max_edge: np.ndarray  # (t,) the same per topic
    story_min_cluster_size: int
    topic_min_cluster_size: int

    @property
    def n_stories(self) -> int:
        return len(self.story_topic)

    @property
    def n_topics(self) -> int:
        return len(self.topic_max_edge)


def fit_two_levels(neigh: Neighbours, params: TwoLevelParams = TwoLevelParams()) -> TwoLevelFit:
    """Stories and topics from one kNN graph (neigh: each document's k nearest others, sqrt(2-2cos))."""
    n = neigh.indices.shape[0]
    s_mcs = int(params.story_min_cluster_size)
    t_mcs = int(params.topic_min_cluster_size or scaled_min_cluster_size(n))
    core = core_distances(neigh, params.min_samples)
    if n < max(2, s_mcs) or neigh.k == 0:
        return _all_noise(n, core, s_mcs, t_mcs)
    mst = _spanning_tree(neigh, params.min_samples)

    story, story_prob, story_tree = _cut(mst, s_mcs, params.max_cluster_share)
    story, story_prob = _vote(neigh, story, story_prob, min(params.min_samples, neigh.k), rounds=1)

    topic, topic_prob, topic_tree = _cut(mst, t_mcs, params.max_cluster_share)
    topic, topic_prob = _vote(neigh, topic, topic_prob, neigh.k, rounds=params.max_spread_rounds)
    story_topic, topic, topic_prob = _one_topic_per_story(story, topic, topic_prob)

    s, t = len(story_topic), int(topic.max()) + 1 if (topic >= 0).any() else 0
    return TwoLevelFit(
        story_labels=story,
        story_probabilities=story_prob,
        story_outlier_scores=glosh_scores(story_tree, n),
        topic_labels=topic,
        topic_probabilities=topic_prob,
        topic_outlier_scores=glosh_scores(topic_tree, n),
        story_topic=story_topic,
        core_distances=core,
        story_max_edge=cluster_max_edges(neigh, core, story, s),
        story_min_core=_min_core(core, story, s),
        topic_max_edge=cluster_max_edges(neigh, core, topic, t),
        story_min_cluster_size=s_mcs,
        topic_min_cluster_size=t_mcs,
    )


def _spanning_tree(neigh: Neighbours, min_samples: int) -> np.ndarray:
    """fast_hdbscan's precomputed path: symmetrises by the smaller direction, bridges disconnected parts."""
    from fast_hdbscan.hdbscan import compute_minimum_spanning_tree

    mst, _neighbours, _core = compute_minimum_spanning_tree(directed_graph(neigh), min_samples=int(min_samples), metric="precomputed")
    return mst


def _cut(mst: np.ndarray, mcs: int, max_share: float):
    """One flat selection of the tree: eom, or leaf where eom collapses into one giant cluster."""
    from fast_hdbscan.hdbscan import clusters_from_spanning_tree

    labels, prob, _slt, condensed, _ = clusters_from_spanning_tree(mst, min_cluster_size=int(mcs), cluster_selection_method="eom")
    clustered = labels[labels >= 0]
    if clustered.size and np.bincount(clustered).max() / len(labels) > max_share:
        labels, prob, _slt, condensed, _ = clusters_from_spanning_tree(mst, min_cluster_size=int(mcs), cluster_selection_method="leaf")
    return np.asarray(labels, np.int64), np.asarray(prob, np.float32), condensed


def _vote(neigh: Neighbours, labels: np.ndarray, prob: np.ndarray, m: int, rounds: int):
    """Noise documents join the label a strict majority of their m nearest listed neighbours hold.

    Synchronous rounds (each reads the previous round's labels, so the result does not depend
    on row order), until nothing changes or `rounds` is spent. Only noise rows are ever touched.
    """
    labels, prob = labels.copy(), prob.copy()
    if m <= 0 or not (labels >= 0).any():
        return labels, prob
    for _ in range(max(0, rounds)):
        rows = np.flatnonzero(labels < 0)
        if rows.size == 0:
            break
        idx = neigh.indices[rows, :m]
        voters = np.where(idx >= 0, labels[np.maximum(idx, 0)], NOISE)
        # votes for each column's label within its row: m x m compares per row, m <= k (15)
        counts = _agreement_counts(voters)
        best = counts.argmax(axis=1)
        won = 2 * counts[np.arange(len(rows)), best] > m
        if not won.any():
            break
        rows, idx, voters, best = rows[won], idx[won], voters[won], best[won]
        winner = voters[np.arange(len(rows)), best]
        agree = voters == winner[:, None]
        share = agree.sum(axis=1) / m
        strength = np.where(agree, prob[np.maximum(idx, 0)], 0.0).sum(axis=1) / agree.sum(axis=1)
        labels[rows] = winner  # after all reads of this round: synchronous
        prob[rows] = (share * strength).astype(np.float32)
    return labels, prob


def _agreement_counts(voters: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """For each (row, column): how many of the row's voters hold that column's label (0 for noise voters)."""
    counts = np.zeros(voters.shape, np.int32)
    for s in range(0, len(voters), chunk):  # m x m booleans per row: chunked so a 1M-row round stays small
        v = voters[s:s + chunk]
        counts[s:s + chunk] = (v[:, :, None] == v[:, None, :]).sum(axis=2)
    counts[voters < 0] = 0
    return counts


def _one_topic_per_story(story: np.ndarray, topic: np.ndarray, topic_prob: np.ndarray):
    """Each story takes the topic most of its members hold; its members all move there.

    The two cuts nest in the tree, but spreading and rescue act per document, so a story can
    straddle a border; the story, the finer and tighter unit, decides. Topics left empty are
    dropped and the rest renumbered in order.
    """
    s = int(story.max()) + 1 if (story >= 0).any() else 0
    story_topic = np.full(s, NOISE, np.int64)
    both = (story >= 0) & (topic >= 0)
    topic, topic_prob = topic.copy(), topic_prob.copy()
    if s and both.any():
        t = int(topic.max()) + 1
        counts = np.zeros((s, t), np.int64)  # s x t is small (stories x topics), never n x n
        np.add.at(counts, (story[both], topic[both]), 1)
        has = counts.sum(axis=1) > 0
        story_topic[has] = counts[has].argmax(axis=1)
        share = np.where(has, counts.max(axis=1) / np.maximum(counts.sum(axis=1), 1), 0.0)
        member = story >= 0
        target = story_topic[np.maximum(story, 0)]
        moved = member & (target >= 0) & (topic != target)
        topic[moved] = target[moved]
        topic_prob[moved] = share[story[moved]].astype(np.float32)
    if (topic >= 0).any():  # renumber 0..t-1, keeping order
        kept = np.unique(topic[topic >= 0])
        new = np.full(int(kept.max()) + 1, NOISE, np.int64)
        new[kept] = np.arange(len(kept))
        topic = np.where(topic >= 0, new[np.maximum(topic, 0)], NOISE)
        story_topic = np.where(story_topic >= 0, new[np.maximum(story_topic, 0)], NOISE)
    return story_topic, topic, topic_prob


def _min_core(core: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    out = np.full(c, np.inf, np.float32)
    member = labels >= 0
    np.minimum.at(out, labels[member], core[member])
    return out


def _all_noise(n: int, core: np.ndarray, s_mcs: int, t_mcs: int) -> TwoLevelFit:
    noise, zero, one = np.full(n, NOISE, np.int64), np.zeros(n, np.float32), np.ones(n, np.float32)
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return TwoLevelFit(noise, zero, one, noise.copy(), zero.copy(), one.copy(), empty_i, core, empty_f, empty_f.copy(), empty_f.copy(),
                       s_mcs, t_mcs)
