"""One kNN graph -> stories (a fine cut of one HDBSCAN hierarchy) inside topics (communities of those stories).

Why a coarse cut of the same tree still runs: HDBSCAN's single-linkage tree over the
mutual-reachability MST holds every scale at once, and its coarse (topic-size) selection rules
the story cut (no story may contain it, see below). Spanning tree computed once; each cut O(n).

Why the raw 384-d graph, and no UMAP: stories are near-duplicate wordings of one event, where
raw cosine is meaningful. On the shared story file the raw graph beats UMAP (BERTopic's recipe)
at story level (bench/stories.py).

Why topics are communities of stories (topics_over_stories), no longer that coarse cut with its
cores spread over the kNN graph: the spreading flooded a held-out 29-category stream from one
core (one topic held 95% of the documents) and split a real story stream into one topic per
story; on the story-shaped corpus it left 77% of documents in no topic (AMI 0.23 at 100k). Leiden
on the kNN graph with each story contracted into one node keeps stories whole, lets a story join
others only when its links reach them, and two guards re-cut what would collapse or fragment:
AG News 0.484 -> 0.53 streamed, the generated topic-structured stream 0.45 -> 0.71 and the
story-shaped one 0.23 -> 0.46 at 100k (0% topic noise; bench/quality.py --level topic,
--synthetic). One recipe from 1k to 1M documents, O(n k) memory.

Why the story size is fixed (5) and the coarse cut's size scales (sqrt(n)/2, hdbscan_fit's rule):
a story has a natural size independent of the corpus (five headlines about one event are a story
at 1k and at 1M documents), a topic does not.

Why stories never swallow a topic: eom at story size compares a node's stability with the sum
of its children's, and a dense topic of many small stories could win, becoming one story. Two
causes, two rules (both in _story_cut / _spanning_tree):
- fast_hdbscan joins the parts of a disconnected kNN graph with +inf edges, so a part that is a
  whole topic is born at lambda 0 and its stability counts every level from infinitely far;
  the bridges now weigh what unrelated headlines are apart (cosine 0, sqrt(2)), or the loosest
  real link if that is larger.
- The topic cut is read first and rules the story cut: no story strictly contains a selected
  topic, and a topic whose story-size leaves hold most of its documents with none holding most
  of those is a group of stories, never one story. Topics that are single stories (most of
  them on the real story file) are left to eom.
On the synthetic 15-stories-of-8-in-a-topic data either rule alone recovers every story.

Why stories rescue noise in two rounds by a strict majority of the document's 9 nearest
neighbours: HDBSCAN at min_cluster_size 5 leaves ~8% of real story headlines as noise (their
core distance is looser than the story's). A noise document whose neighbourhood is mostly one
story joins it. The second round lets a document whose neighbours were rescued in the first
join too, which is what an arrival gets between rebuilds anyway (one vote over fitted labels
that already include the first round). Rounds until nothing changes chain through unrelated
headlines (an earlier measurement: ~20% of AG documents pulled into stories), so the count
stays small and fixed. The vote was first taken over min_samples (5) neighbours, where 3 votes
win: in a crowded corpus a one-off headline's few nearest neighbours often sit in one big story
(hubness), so half of the synthetic corpus's background headlines were pulled into stories.
Over 9 neighbours 5 votes are needed: on 100k story-shaped documents story AMI 0.740 -> 0.792
(background in stories 51% -> 38%, story headlines left as noise 17% -> 13%); the story file
streamed pairwise F1 0.956 -> 0.955, BCubed 0.945 -> 0.947, AMI 0.947 -> 0.950; AG News topics
AMI 0.478 -> 0.480 (three rounds instead of two gave 0.80 on the synthetic corpus but cost AG
News topics 0.045 AMI, so two stay).

Why stories are looked for again among what is left (leftover_stories): in a crowded corpus a
story of five to nine headlines seldom stands out in the first tree, since its members' core
distances (their fifth nearest others) reach strangers. With the stories that do stand out and
their rescued stragglers taken away, the leftover documents list mostly their own story mates,
and the leaves of HDBSCAN over that subgraph (core rank 2) are the small stories; one more
rescue round follows. Measured on story-shaped synthetic corpora (cached kNN graphs, the fit
alone): story AMI 0.792 -> 0.856 at 100k documents, 0.735 -> 0.815 at 1M (through the service,
bench/scale.py: 0.725 -> 0.821; stories of 5 left as noise ~81% -> ~38%, of 6-9 ~45% -> ~17%);
the story file streamed kept its scores (pairwise F1 0.955 -> 0.953, BCubed 0.947 -> 0.946; AG
News topics 0.480 -> 0.484, with levels.keep_within_topics). Tried with it and dropped: a rescue that also asks a
document to sit within 1.45x the story's median core distance of its voters. It kept most
background out of stories on the synthetic corpus (+0.02 AMI at both sizes) but left real
stragglers out on the story file (noise 1.6% -> 4.3%, pairwise F1 0.954 -> 0.940).

Probabilities: HDBSCAN membership strength where the cut (or the leftover tree) placed the document; for a document
placed by vote, the vote's share times the mean strength of the voters; a topic's: the share of its
story's (or headline's) links that stay inside the topic. Outlier scores are GLOSH over each cut's
condensed tree (the topic level's over the coarse cut).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from ..domain import NOISE
from .graph import Neighbours, core_distances, subgraph, symmetric_graph
from .hdbscan_fit import glosh_scores, scaled_min_cluster_size

log = logging.getLogger("newsclust")

STORY_MIN_CLUSTER_SIZE = 5
UNLINKED_DISTANCE = float(np.sqrt(2.0))  # unit vectors at cosine 0: unrelated headlines


@dataclass(frozen=True)
class TopicParams:
    resolution: float = 1.0  # modularity resolution of the first cut; the guards move it
    max_share: float = 0.25  # guard: no topic holds more of the documents than this...
    share_guard_min_docs: int = 0  # ...on a stream at least this long
    min_median_stories: float = 2.0  # guard: the median topic holds at least this many stories...
    median_guard_min_stories: int = 20  # ...where there are at least this many stories
    max_recuts: int = 8  # resolutions tried before the best cut found is shipped
    attach_share: float = 1 / 3  # a headline in no story takes the topic at least this share of its neighbours hold...
    attach_rounds: int = 2  # ...in this many rounds (a second lets its neighbours' new topics count)
    with_unstoried: bool = True  # headlines in no story are nodes of the graph too (story_graph)
    iterations: int = 2  # Leiden iterations (-1: until one no longer improves the cut: 2-3x the time, the same AMI on AG News and both generated streams)
    internal_weight: float = 1.0  # how much of a story's inside links count in its weight (1: modularity of the document graph)
    seed: int = 0


@dataclass(frozen=True)
class TwoLevelParams:
    story_min_cluster_size: int = STORY_MIN_CLUSTER_SIZE  # fixed: never grows with the corpus
    topic_min_cluster_size: int = 0  # 0: scaled with n (hdbscan_fit.scaled_min_cluster_size)
    min_samples: int = 5
    story_rescue_rounds: int = 2  # noise documents joining a story by a strict majority of their nearest neighbours...
    story_rescue_neighbours: int = 9  # ...this many of them (at most the graph's k)
    leftover_min_samples: int = 2  # stories among what the cut left: core distance rank there (0: no such pass)...
    leftover_max_size: int = 19  # ...and the most headlines such a story may hold (larger leaves there are blobs)
    max_cluster_share: float = 0.5  # an eom cluster above this share of documents is a collapse: re-select by leaf
    topics: TopicParams = TopicParams()  # the topic level, over the stories (topics_over_stories)


@dataclass(frozen=True)
class TwoLevelFit:
    story_labels: np.ndarray  # (n,) int64, 0..s-1 or NOISE
    story_probabilities: np.ndarray  # (n,) float32 in [0, 1]
    story_outlier_scores: np.ndarray  # (n,) float32 in [0, 1], GLOSH over the story tree
    topic_labels: np.ndarray  # (n,) int64, 0..t-1 or NOISE; equal to story_topic[story] for every story member
    topic_probabilities: np.ndarray  # (n,) float32
    story_topic: np.ndarray  # (s,) int64, the one topic of each story (NOISE only if no member reached a topic)
    core_distances: np.ndarray  # (n,) float32, original space (levels.settle measures the placing thresholds of the
    # stories it ships from them: once per rebuild, on the settled stories; here they were measured twice more, for the
    # fit's stories and for topics nothing read, 1.0 of the 3.5 s of fit + settle at 100k)
    story_min_cluster_size: int
    topic_min_cluster_size: int

    @property
    def n_stories(self) -> int:
        return len(self.story_topic)

    @property
    def n_topics(self) -> int:
        return int(self.topic_labels.max()) + 1 if (self.topic_labels >= 0).any() else 0


def fit_two_levels(neigh: Neighbours, params: TwoLevelParams = TwoLevelParams()) -> TwoLevelFit:
    """Stories and topics from one kNN graph (neigh: each document's k nearest others, sqrt(2-2cos))."""
    n = neigh.indices.shape[0]
    s_mcs = int(params.story_min_cluster_size)
    t_mcs = int(params.topic_min_cluster_size or scaled_min_cluster_size(n))
    core = core_distances(neigh, params.min_samples)
    if n < max(2, s_mcs) or neigh.k == 0:
        return _all_noise(n, core, s_mcs, t_mcs)
    mst = _spanning_tree(neigh, params.min_samples)
    linkage = _linkage(mst)

    topic_cut, topic_prob, topic_tree, topic_nodes = _cut(linkage, t_mcs, params.max_cluster_share)
    story, story_prob, story_tree = _story_cut(linkage, s_mcs, params.max_cluster_share, topic_tree, topic_nodes, topic_cut)
    rescue_m = min(params.story_rescue_neighbours, neigh.k)
    story, story_prob = _vote(neigh, story, story_prob, rescue_m, params.story_rescue_rounds)
    if params.leftover_min_samples > 0:
        story, story_prob = leftover_stories(neigh, story, story_prob, s_mcs, params.leftover_min_samples, params.leftover_max_size)
        story, story_prob = _vote(neigh, story, story_prob, rescue_m, rounds=1)

    grouped = topics_over_stories(neigh, story, params=params.topics)
    topic, topic_prob, story_topic = grouped.topic_labels, grouped.topic_probabilities, grouped.story_topic

    return TwoLevelFit(
        story_labels=story,
        story_probabilities=story_prob,
        story_outlier_scores=glosh_scores(story_tree, n),
        topic_labels=topic,
        topic_probabilities=topic_prob,
        story_topic=story_topic,
        core_distances=core,
        story_min_cluster_size=s_mcs,
        topic_min_cluster_size=t_mcs,
    )


def _spanning_tree(neigh: Neighbours, min_samples: int) -> np.ndarray:
    """fast_hdbscan's precomputed path on our symmetric graph; disconnected parts bridged at a finite weight.

    fast_hdbscan bridges the parts of a disconnected graph with +inf edges, so each part is born
    at lambda 0 and its stability counts every level from "infinitely far" down: a part that is a
    whole topic (its stories listing only each other) then outweighs its stories and the fine cut
    takes the topic as one story. Documents that list no link between them are at least as far
    apart as unrelated headlines (cosine 0: sqrt(2)), and no closer than the loosest real link, so
    the bridges get that finite weight; the parts still join last, as before.
    """
    mst = _precomputed_mst(symmetric_graph(neigh), int(min_samples))
    w = mst[:, 2]
    bridge = ~np.isfinite(w)
    if bridge.any():
        w[bridge] = max(UNLINKED_DISTANCE, float(w[~bridge].max(initial=0.0)))
    return mst


def _precomputed_mst(sym, min_samples: int) -> np.ndarray:
    """fast_hdbscan.precomputed.compute_mst_from_precomputed_sparse, minus its first step.

    That step makes any sparse input symmetric (min over both directions) with a lexsort of every
    edge: 40% of the spanning tree's time at 100k. Our symmetric_graph already is that matrix (the
    same minima, floored above zero, no diagonal), so the steps after it run on it directly. The
    steps are fast_hdbscan's own functions; tests/test_two_level.py checks the result equals the
    public path's edge for edge, which guards this against a fast_hdbscan release that moves them.
    """
    from fast_hdbscan.core_graph import CoreGraph, boruvka_mst
    from fast_hdbscan.precomputed import _build_core_graph_csr, _core_distances_csr, _patch_mst_weights, bridge_forest_with_inf

    n = sym.shape[0]
    data = sym.data.astype(np.float64)
    indices, indptr = sym.indices.astype(np.int32, copy=False), sym.indptr.astype(np.int32, copy=False)
    _nearest, core = _core_distances_csr(data, indices, indptr, min_samples)
    del _nearest
    weights, distances, cg_indices = _build_core_graph_csr(data, indices, indptr, core)
    n_components, component_labels, edges = boruvka_mst(CoreGraph(weights, distances, cg_indices, indptr))
    del weights, distances, cg_indices
    if n_components > 1:
        edges = bridge_forest_with_inf(edges, component_labels, n)
    patched = _patch_mst_weights(edges, data, indices, indptr, core)
    return np.column_stack([edges[:, :2], patched]).astype(np.float64)


def _linkage(mst: np.ndarray) -> np.ndarray:
    """The single-linkage tree of the spanning tree, sorted as fast_hdbscan sorts it: shared by both cuts."""
    from fast_hdbscan.cluster_trees import mst_to_linkage_tree

    order = np.lexsort((mst[:, 1], mst[:, 0], mst[:, 2]))
    return mst_to_linkage_tree(mst[order])


def _labels(condensed, selected: np.ndarray, n: int):
    from fast_hdbscan.cluster_trees import get_cluster_label_vector, get_point_membership_strength_vector

    selected = np.asarray(selected, np.int64)
    if selected.size == 0:
        return np.full(n, NOISE, np.int64), np.zeros(n, np.float32)
    labels = get_cluster_label_vector(condensed, selected, 0.0, n)
    prob = get_point_membership_strength_vector(condensed, selected, labels)
    return np.asarray(labels, np.int64), np.asarray(prob, np.float32)


def _cut(linkage: np.ndarray, mcs: int, max_share: float):
    """One flat selection of the tree: eom, or leaf where eom collapses into one giant cluster."""
    from fast_hdbscan.cluster_trees import cluster_tree_from_condensed_tree, cluster_tree_leaves, condense_tree, extract_eom_clusters

    n = linkage.shape[0] + 1
    condensed = condense_tree(linkage, min_cluster_size=int(mcs))
    cluster_tree = cluster_tree_from_condensed_tree(condensed)
    if cluster_tree.parent.shape[0] == 0:
        return np.full(n, NOISE, np.int64), np.zeros(n, np.float32), condensed, np.zeros(0, np.int64)
    selected = extract_eom_clusters(condensed, cluster_tree)
    labels, prob = _labels(condensed, selected, n)
    if _largest_share(labels) > max_share:
        selected = cluster_tree_leaves(cluster_tree, n)
        labels, prob = _labels(condensed, selected, n)
    return labels, prob, condensed, np.asarray(selected, np.int64)


def _story_cut(linkage: np.ndarray, mcs: int, max_share: float, topic_tree, topic_selected: np.ndarray, topic_labels: np.ndarray):
    """Excess of mass at story size, never above a topic selected from the same tree.

    - A story never strictly contains a topic: every ancestor of a selected topic is blocked
      (not selectable; eom takes its children instead).
    - A topic whose story-size leaves (clusters with no sub-cluster of story size, its densest
      groups) hold most of its documents, none of them most of those, is a group of stories and
      is blocked too: eom alone took a dense topic of many small stories as one story.
    - Otherwise eom decides: a topic that is one story (a leaf, or a core shedding its fringe)
      stays selectable, as on the real story file, where most topics are single stories.
    (Tried and dropped: selecting a topic as one story when one leaf holds most of it. It
    re-joined a real story's split-off satellite (+0.003 pairwise F1 on the story file) but also
    swallowed a distinct 6-headline story beside a 20-headline one, which tests/ keeps separate.)
    """
    from fast_hdbscan.cluster_trees import cluster_tree_from_condensed_tree, cluster_tree_leaves, condense_tree

    n = linkage.shape[0] + 1
    condensed = condense_tree(linkage, min_cluster_size=int(mcs))
    tree = _Tree(condensed, n)
    if tree.m <= 1:
        return np.full(n, NOISE, np.int64), np.zeros(n, np.float32), condensed
    blocked = np.zeros(tree.m, bool)
    for node in _topic_nodes(tree, topic_tree, topic_selected, topic_labels, n):
        leaves, largest = tree.leaf_mass[node], tree.largest_leaf[node]
        if 2 * leaves > tree.size[node] and 2 * largest < leaves:
            blocked[node] = True
        up = tree.up[node]
        while up > 0 and not blocked[up]:  # the root is never selected anyway
            blocked[up] = True
            up = tree.up[up]
    labels, prob = _labels(condensed, tree.eom(blocked) + n, n)
    if _largest_share(labels) > max_share:
        labels, prob = _labels(condensed, cluster_tree_leaves(cluster_tree_from_condensed_tree(condensed), n), n)
    return labels, prob, condensed


class _Tree:
    """The cluster nodes of a condensed tree, numbered 0..m-1 (0 = root), children after parents."""

    def __init__(self, condensed, n: int):
        parent = np.asarray(condensed.parent, np.int64) - n
        child = np.asarray(condensed.child, np.int64)
        lam = np.asarray(condensed.lambda_val, np.float64)
        size = np.asarray(condensed.child_size, np.float64)
        self.m = int(parent.max(initial=-1)) + 1
        m = max(self.m, 1)
        cl = child >= n
        self.child_rows = np.flatnonzero(cl)  # cluster rows, in id order
        c, p = child[cl] - n, parent[cl]
        self.up = np.full(m, -1, np.int64)
        self.up[c] = p
        self.size = np.full(m, float(n))
        self.size[c] = size[cl]
        birth = np.zeros(m)
        birth[c] = lam[cl]
        lam_f = np.where(np.isfinite(lam), lam, 0.0)
        # stability: sum over what leaves each node (points and child clusters) of (lambda - birth) * size
        self.stability = np.maximum(np.bincount(parent, weights=lam_f * size, minlength=m) - birth * self.size, 0.0)
        self.point_parent = np.full(n, -1, np.int64)
        self.point_parent[child[~cl]] = parent[~cl]
        self.is_leaf = np.ones(m, bool)
        self.is_leaf[p] = False
        self.n_leaves = self.is_leaf.astype(np.int64)
        self.leaf_mass = np.where(self.is_leaf, self.size, 0.0)
        self.largest_leaf = self.leaf_mass.copy()
        for ci, pi in zip(c[::-1].tolist(), p[::-1].tolist()):  # deepest first
            self.n_leaves[pi] += self.n_leaves[ci]
            self.leaf_mass[pi] += self.leaf_mass[ci]
            self.largest_leaf[pi] = max(self.largest_leaf[pi], self.largest_leaf[ci])
        self.c, self.p = c, p

    def eom(self, blocked: np.ndarray) -> np.ndarray:
        """Excess-of-mass selection below the root (fast_hdbscan's extract_eom_clusters, same
        choices when nothing is blocked); a blocked node is never selected, its children are."""
        m = self.m
        below = np.zeros(m)  # the best total its children's subtrees reach
        has_children = ~self.is_leaf
        value = np.zeros(m)
        chosen = np.zeros(m, bool)
        stab = self.stability.tolist()
        for ci, pi in zip(self.c[::-1].tolist(), self.p[::-1].tolist()):  # deepest first
            if has_children[ci] and (blocked[ci] or below[ci] > stab[ci]):
                value[ci] = below[ci]
            else:
                value[ci] = stab[ci]
                chosen[ci] = True
            below[pi] += value[ci]
        covered = np.zeros(m, bool)
        for ci, pi in zip(self.c.tolist(), self.p.tolist()):  # top down: nothing under a chosen node stays chosen
            if chosen[pi] or covered[pi]:
                covered[ci] = True
        return np.flatnonzero(chosen & ~covered)


def _topic_nodes(tree: _Tree, topic_tree, topic_selected: np.ndarray, topic_labels: np.ndarray, n: int) -> list[int]:
    """Each selected topic's node in the story tree.

    Both trees condense one linkage tree, and a split with both sides at topic size has both
    sides at story size too, so the topic's own node is in the story tree with the same
    documents: climb from one member until the size matches.
    """
    t_child = np.asarray(topic_tree.child, np.int64)
    t_size = dict(zip(t_child.tolist(), np.asarray(topic_tree.child_size, np.float64).tolist()))
    members = np.flatnonzero(topic_labels >= 0)
    first = np.full(len(topic_selected), -1, np.int64)
    first[topic_labels[members][::-1]] = members[::-1]  # labels number the sorted selected nodes
    out = []
    for node, doc in zip(np.sort(topic_selected).tolist(), first.tolist()):
        if doc < 0 or node not in t_size:
            continue
        s = int(tree.point_parent[doc])
        while s > 0 and tree.size[s] < t_size[node]:
            s = int(tree.up[s])
        if s > 0 and tree.size[s] == t_size[node]:
            out.append(s)
    return out


def _largest_share(labels: np.ndarray) -> float:
    clustered = labels[labels >= 0]
    return float(np.bincount(clustered).max() / len(labels)) if clustered.size else 0.0


def _vote(neigh: Neighbours, labels: np.ndarray, prob: np.ndarray, m: int, rounds: int):
    """Noise documents join the label a strict majority of their m nearest listed neighbours hold.

    Synchronous rounds (each reads the previous round's labels, so the result does not depend
    on row order), until nothing changes or `rounds` is spent. Only noise rows are ever touched.
    """
    labels, prob = labels.copy(), prob.copy()
    if m <= 0 or not (labels >= 0).any():
        return labels, prob
    changed = None  # rows labelled in the last round: only a row voted on by one of them can be won now
    for _ in range(max(0, rounds)):
        rows = np.flatnonzero(labels < 0)
        if changed is not None:
            near = neigh.indices[rows, :m]
            rows = rows[changed[np.maximum(near, 0)].any(axis=1)]
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
        changed = np.zeros(len(labels), bool)
        changed[rows] = True
    return labels, prob


def leftover_stories(neigh: Neighbours, labels: np.ndarray, prob: np.ndarray, mcs: int, min_samples: int, max_size: int):
    """New stories among the documents the cut and the rescue left as noise, as the leaves of their own tree.

    Why a second tree: a story of five to nine headlines in a crowded corpus seldom stands out in
    the first one. Its members' fifth nearest others are strangers (the story has only four to
    eight others, and a tenth of headlines share no wording), so their core distances are the
    crowd's and the story is never denser than its surroundings. Once the stories that do stand
    out are taken away, the leftover documents, among themselves, list mostly their own story
    mates; HDBSCAN over that subgraph with a small core rank finds them. Its leaves, not eom:
    what is left has no large structure, and eom there merged unrelated headlines into blobs
    (measured on 100k story-shaped documents: leaves 0.79 -> 0.85 story AMI, eom 0.81 with two
    thirds of background headlines clustered). Leaves above max_size stay noise: the first tree
    finds a story that large if it is one, and on AG News (no stories, two thirds left over) the
    largest leftover leaves were blobs of 60-560 mixed headlines; on the synthetic corpora nearly
    all leftover stories hold 5-19.
    """
    from fast_hdbscan.cluster_trees import cluster_tree_from_condensed_tree, cluster_tree_leaves, condense_tree

    rows = np.flatnonzero(labels < 0)
    if len(rows) < max(2, mcs):
        return labels, prob
    sub = subgraph(neigh, rows, len(labels))
    if sub.k == 0 or not np.isfinite(sub.distances[:, 0]).any():
        return labels, prob
    condensed = condense_tree(_linkage(_spanning_tree(sub, min_samples)), min_cluster_size=int(mcs))
    tree = cluster_tree_from_condensed_tree(condensed)
    if tree.parent.shape[0] == 0:
        return labels, prob
    found, strength = _labels(condensed, cluster_tree_leaves(tree, len(rows)), len(rows))
    sizes = np.bincount(found[found >= 0])
    small = np.flatnonzero((sizes > 0) & (sizes <= max_size))
    renumber = np.full(len(sizes) + 1, NOISE, np.int64)  # one slot past the labels, never a kept one: what found = -1 reads
    renumber[small] = np.arange(len(small))
    found = renumber[found]
    hit = found >= 0
    labels, prob = labels.copy(), prob.copy()
    labels[rows[hit]] = int(labels.max(initial=-1)) + 1 + found[hit]
    prob[rows[hit]] = strength[hit]
    return labels, prob


def _agreement_counts(voters: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """For each (row, column): how many of the row's voters hold that column's label (0 for noise voters)."""
    counts = np.zeros(voters.shape, np.int32)
    for s in range(0, len(voters), chunk):  # m x m booleans per row: chunked so a 1M-row round stays small
        v = voters[s:s + chunk]
        counts[s:s + chunk] = (v[:, :, None] == v[:, None, :]).sum(axis=2)
    counts[voters < 0] = 0
    return counts


def majority_topics(story: np.ndarray, topic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the topic most of each story's members hold, NOISE where none holds one; that topic's share of them)."""
    s = int(story.max()) + 1 if (story >= 0).any() else 0
    story_topic, share = np.full(s, NOISE, np.int64), np.zeros(s)
    both = (story >= 0) & (topic >= 0)
    if s and both.any():
        counts = np.zeros((s, int(topic.max()) + 1), np.int64)  # s x t is small (stories x topics), never n x n
        np.add.at(counts, (story[both], topic[both]), 1)
        has = counts.sum(axis=1) > 0
        story_topic[has] = counts[has].argmax(axis=1)
        share = np.where(has, counts.max(axis=1) / np.maximum(counts.sum(axis=1), 1), 0.0)
    return story_topic, share


def _one_topic_per_story(story: np.ndarray, topic: np.ndarray, topic_prob: np.ndarray):
    """Each story takes the topic most of its members hold; its members all move there.

    The two cuts nest in the tree, but spreading and rescue act per document, so a story can
    straddle a border; the story, the finer and tighter unit, decides. Topics left empty are
    dropped and the rest renumbered in order.
    """
    story_topic, share = majority_topics(story, topic)
    topic, topic_prob = topic.copy(), topic_prob.copy()
    if (story_topic >= 0).any():
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



def _all_noise(n: int, core: np.ndarray, s_mcs: int, t_mcs: int) -> TwoLevelFit:
    noise, zero, one = np.full(n, NOISE, np.int64), np.zeros(n, np.float32), np.ones(n, np.float32)
    return TwoLevelFit(noise, zero, one, noise.copy(), zero.copy(), np.zeros(0, np.int64), core, s_mcs, t_mcs)


# ---- the topic level: communities of stories ---------------------------------------------------------------------


@dataclass(frozen=True)
class StoryTopics:
    topic_labels: np.ndarray  # (n,) int64 0..t-1 or NOISE
    topic_probabilities: np.ndarray  # (n,) float32
    story_topic: np.ndarray  # (s,) int64, the topic of each story (never NOISE)
    resolution: float  # the modularity resolution the shipped cut used
    guard: str  # "" when the first cut held every guard; else which guard acted (and whether it could be met)


def story_graph(neigh: Neighbours, stories: np.ndarray, with_unstoried: bool = False) -> tuple[sp.csr_matrix, np.ndarray]:
    """(graph, node of each document): the kNN graph with each story contracted into one node.

    Entry (a, b) counts the kNN links between the documents of node a and of node b (both directions), the
    diagonal the links inside a story (an undirected edge listed both ways counts 2, as in the document graph).
    Nodes 0..s-1 are the stories; with_unstoried, each headline in no story is a node of its own after them (its
    links are what ties many stories together on a stream of few stories), else it is left out (node -1)."""
    n = len(stories)
    s = int(stories.max()) + 1 if (stories >= 0).any() else 0
    node = stories.astype(np.int64, copy=True)
    if with_unstoried:
        loose = node < 0
        node[loose] = s + np.arange(int(loose.sum()))
    size = int(node.max()) + 1 if (node >= 0).any() else 0
    rows = np.repeat(np.arange(n), neigh.k)
    cols = neigh.indices.ravel()
    ok = cols >= 0
    a, b = node[rows[ok]], node[cols[ok]]
    both = (a >= 0) & (b >= 0)
    c = sp.coo_matrix((np.ones(int(both.sum()), np.float64), (a[both], b[both])), shape=(size, size)).tocsr()
    return (c + c.T).tocsr(), node


def topics_over_stories(neigh: Neighbours, stories: np.ndarray, previous: np.ndarray | None = None,
                        params: TopicParams = TopicParams()) -> StoryTopics:
    """Topics as groups of stories: Leiden communities (modularity) of the story graph, then headlines in no story.

    Why over stories: a topic is a set of related events. Cutting the document tree at a scaled size (the former
    recipe) had no notion of a story, and its spreading over the kNN graph could flood from one core: on a held-out
    29-category stream one topic took 95% of the documents, on a real story stream 19 of 30 topics held one story.
    On the story graph a story moves as a whole (never split across topics), modularity weighs each story's links
    against what its size alone would give, so a story with nothing near it stays a topic of its own while one linked
    to others joins them, and no story can be in two places.
    Guards (params): a cut where one topic holds more than max_share of the documents (streams of
    share_guard_min_docs or more) is re-cut at a higher resolution; one whose median topic holds fewer than
    min_median_stories stories (median_guard_min_stories or more) at a lower one; bisected, at most max_recuts
    times, and which guard acted is logged and returned. Headlines in no story then take the topic at least
    attach_share of their listed neighbours hold (attach_rounds rounds), or none.
    previous: the last run's topic of each document (any integer ids, NOISE for none): each story starts in the
    topic most of its members had, so the optimiser starts from what users saw and topic ids carry over.
    """
    n = len(stories)
    noise = np.full(n, NOISE, np.int64)
    s = int(stories.max()) + 1 if (stories >= 0).any() else 0
    if s == 0:
        return StoryTopics(noise, np.zeros(n, np.float32), np.zeros(0, np.int64), params.resolution, "")
    w, node = story_graph(neigh, stories, True)
    if not params.with_unstoried:  # stories only, linked through the headlines in no story too (each spreads its links)
        deg = np.maximum(np.asarray(w[s:].sum(axis=1)).ravel(), 1e-12)
        w = (w[:s, :s] + w[:s, s:] @ sp.diags(1.0 / deg) @ w[s:, :s]).tocsr()
        node = np.where(node < s, node, -1)
    init = _initial_membership(node, previous, w.shape[0])
    if w.shape[0] > s:  # a headline in no story starts where most of its links go, if that is a story: fewer moves to make
        links = w[s:, :s].tocsr()
        has = np.diff(links.indptr) > 0
        fresh = np.bincount(init, minlength=init.max() + 1)[init[s:]] == 1  # started alone (no previous topic)
        pick = np.flatnonzero(has & fresh)
        if pick.size:
            init[s + pick] = init[np.asarray(links[pick].argmax(axis=1)).ravel()]
            init = np.unique(init, return_inverse=True)[1].astype(np.int64)
    story_docs = np.bincount(stories[stories >= 0], minlength=s)
    lo, hi, res = 0.0, np.inf, float(params.resolution)
    best, guard = None, ""
    for attempt in range(params.max_recuts + 1):
        cut = _leiden(w, res, init, params.seed, params.internal_weight, params.iterations)
        labels, prob, membership = _attach(neigh, stories, node, cut, w, params)
        too_big, too_fine = _guards(labels, membership, story_docs, n, params)
        if too_big and params.attach_rounds:  # the vote can flood a topic the cut kept small: the same cut without it
            alone = _attach(neigh, stories, node, cut, w, replace(params, attach_rounds=0))
            if _guards(alone[0], alone[2], story_docs, n, params)[0] < too_big:
                labels, prob, membership = alone
                too_big, too_fine = _guards(labels, membership, story_docs, n, params)
        score = (too_big > 0, too_fine > 0, too_big, too_fine)  # lower is better: the share guard first
        if best is None or score < best[0]:
            best = (score, membership, labels, prob, res)
        if not too_big and not too_fine:
            break
        if too_big and too_fine:
            guard = "both guards fail at every resolution tried" if attempt == params.max_recuts else "both"
            break  # finer splits more single stories off, coarser merges the giant: no resolution helps
        if too_big:
            lo = res
            guard = "largest topic share"
        else:
            hi = res
            guard = "median stories per topic"
        res = res * 2 if hi == np.inf else (res / 2 if lo == 0 else float(np.sqrt(lo * hi)))
    score, membership, labels, prob, res = best
    if previous is not None and (previous >= 0).any():
        membership, labels, prob = _held(stories, previous, membership, labels, prob, story_docs, n, params, score)
    if guard:
        held = not (score[0] or score[1])
        log.info("topic guard acted (%s): resolution %.3g, %s", guard, res, "both guards hold" if held else
                 f"shipped the best cut found (largest share over by {score[2]:.3f}, median stories short by {score[3]:.2f})")
        if not held:
            guard += " (not met)"
    return StoryTopics(labels, prob, membership, res, guard)


def _held(stories, previous, membership, labels, prob, story_docs, n, params, score):
    """Hysteresis on topics, as on stories (identity.stabilize over the documents: splits and merges that only
    reshuffle documents the last run had are undone, small moves of old documents held), then each story back in
    the one topic most of its members hold. Shipped only if it breaks no guard the cut held."""
    from .identity import stabilize

    rows = np.arange(n)
    held = stabilize(rows, previous, rows, labels)
    story_topic, held, held_prob = _one_topic_per_story(stories, held, np.where(held == labels, prob, 0.5).astype(np.float32))
    if len(story_topic) != len(membership) or (story_topic < 0).any():
        return membership, labels, prob
    over, under = _guards(held, story_topic, story_docs, n, params)
    if over > score[2] or under > score[3]:
        return membership, labels, prob
    return story_topic, held, held_prob


def _initial_membership(stories: np.ndarray, previous: np.ndarray | None, s: int) -> np.ndarray:
    """Each story's community to start from: the previous topic most of its members had; a story none of whose
    members had one starts alone."""
    init = np.full(s, -1, np.int64)
    if previous is not None:
        both = (stories >= 0) & (previous >= 0)
        if both.any():
            _, prev = np.unique(previous[both], return_inverse=True)
            keys, counts = np.unique(stories[both] * (int(prev.max()) + 1) + prev, return_counts=True)
            story, topic = keys // (int(prev.max()) + 1), keys % (int(prev.max()) + 1)
            order = np.lexsort((-counts, story))
            first = order[np.r_[True, np.diff(story[order]) != 0]]
            init[story[first]] = topic[first]
    fresh = init < 0
    init[fresh] = int(init.max(initial=-1)) + 1 + np.arange(int(fresh.sum()))
    return np.unique(init, return_inverse=True)[1].astype(np.int64)


def _leiden(w: sp.csr_matrix, resolution: float, init: np.ndarray, seed: int, internal_weight: float = 1.0, iterations: int = -1) -> np.ndarray:
    """Leiden (igraph's C implementation) maximising modularity at `resolution` on the weighted graph, from `init`,
    until an iteration no longer improves it; communities renumbered 0..t-1 by their smallest node, so equal input
    gives equal labels.

    igraph's own Leiden, not the leidenalg package: on the same 3k-node story graph (20k documents) leidenalg took
    0.9 s for two iterations, igraph 0.06 s. igraph draws its random numbers from one process-wide generator: it is
    set to a generator seeded here for the call and put back after, so the cut depends on its input alone.
    """
    import random

    import igraph as ig

    if w.nnz == 0 or not w.sum() > 0:  # no link anywhere: nothing is near anything
        return np.arange(w.shape[0], dtype=np.int64)
    up = sp.triu(w, k=1).tocoo()  # an undirected graph, each edge once; a story's inside links count in its node weight
    inside = w.diagonal()
    node_weight = np.asarray(w.sum(axis=1)).ravel() - (1.0 - internal_weight) * inside
    g = ig.Graph(n=w.shape[0])
    g.add_edges(np.column_stack([up.row, up.col]).astype(np.int64))  # numpy straight in: 4x faster than Graph(edges=...)
    g.es["weight"] = up.data
    ig.set_random_number_generator(random.Random(seed))
    try:
        found = g.community_leiden(objective_function="modularity", weights="weight", resolution=float(resolution),
                                   node_weights=node_weight.tolist(), initial_membership=init.tolist(), n_iterations=iterations)
    finally:
        ig.set_random_number_generator(random)
    membership = np.asarray(found.membership, np.int64)
    first = np.full(membership.max() + 1, len(membership), np.int64)
    np.minimum.at(first, membership, np.arange(len(membership)))
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[membership]


def _attach(neigh: Neighbours, stories: np.ndarray, node: np.ndarray, membership: np.ndarray, w: sp.csr_matrix, params: TopicParams):
    """Document topics, (labels, probabilities, each story's topic): communities holding a story are the topics
    (renumbered 0..t-1), and every document of their nodes takes it (probability: the share of its node's links
    that stay in the topic); a headline still in none takes the topic at least attach_share of its listed
    neighbours hold (probability: that share), in attach_rounds synchronous rounds, else none."""
    n = len(stories)
    s = int(stories.max()) + 1 if (stories >= 0).any() else 0
    kept = np.unique(membership[:s])  # a community of headlines in no story is no topic
    topic_of = np.full(int(membership.max()) + 1, NOISE, np.int64)
    topic_of[kept] = np.arange(len(kept))
    node_topic = topic_of[membership]
    placed = node >= 0
    labels = np.full(n, NOISE, np.int64)
    labels[placed] = node_topic[node[placed]]
    wc = w.tocoo()
    inside = np.bincount(wc.row, weights=wc.data * (membership[wc.row] == membership[wc.col]), minlength=w.shape[0])
    strength = np.maximum(np.asarray(w.sum(axis=1)).ravel(), 1e-12)
    prob = np.zeros(n, np.float32)
    prob[placed] = (inside / strength)[node[placed]].astype(np.float32)
    prob[labels < 0] = 0.0
    m = neigh.k
    need = max(1, int(np.ceil(params.attach_share * m - 1e-9)))
    for _ in range(params.attach_rounds):
        rows = np.flatnonzero(labels < 0)
        if rows.size == 0 or m == 0:
            break
        idx = neigh.indices[rows]
        voters = np.where(idx >= 0, labels[np.maximum(idx, 0)], NOISE)
        counts = _agreement_counts(voters)
        best = counts.argmax(axis=1)
        votes = counts[np.arange(len(rows)), best]
        won = votes >= need
        if not won.any():
            break
        new = labels.copy()
        new[rows[won]] = voters[np.flatnonzero(won), best[won]]
        prob[rows[won]] = (votes[won] / m).astype(np.float32)
        labels = new
    return labels, prob, node_topic[:s]


def _guards(labels: np.ndarray, membership: np.ndarray, story_docs: np.ndarray, n: int, params: TopicParams) -> tuple[float, float]:
    """(how far the largest topic's share is over max_share, how far the median stories per topic is under
    min_median_stories); 0.0 where a guard holds or does not apply."""
    over = 0.0
    if n >= params.share_guard_min_docs and (labels >= 0).any():
        sizes = np.bincount(labels[labels >= 0])
        largest = int(sizes.argmax())
        # a story too large by itself is split by no cut of stories: its own documents do not count against the guard
        alone = story_docs[membership == largest].sum() if (membership == largest).sum() == 1 else 0
        over = max(0.0, float((sizes[largest] - max(alone - params.max_share * n, 0)) / n - params.max_share))
    under = 0.0
    if len(membership) >= params.median_guard_min_stories:
        under = max(0.0, float(params.min_median_stories - np.median(np.bincount(membership))))
    return over, under
