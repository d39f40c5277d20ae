"""One kNN graph -> stories (a fine cut of one HDBSCAN hierarchy) inside topics (communities of those stories).

Why a coarse cut of the same tree still runs: HDBSCAN's single-linkage tree over the
mutual-reachability MST holds every scale at once, and its coarse (topic-size) selection rules
the story cut (no story may contain it, see below). Spanning tree computed once; each cut O(n).

Why the raw 384-d graph, and no UMAP: stories are near-duplicate wordings of one event, where
raw cosine is meaningful. On the shared story file the raw graph beats UMAP (BERTopic's recipe)
at story level (bench/stories.py).

Topics, the communities of these stories, are topics.py's.

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

Why a cut story must hang together (story_min_cohesion, loose_to_noise; needs the vectors): on a small
corpus with no stories the story cut can select one loose dense region as a story. AG News's first rebuild (400
headlines) made one of 100 over three classes, the rescue grew it to 257, and that blob became a topic of 64% which
the share guard then broke up over the next rebuilds (topic kept-id 0.583, 0.783). Its members' mean unit vector
is 0.33 long (the mean cosine to its centre); real stories are near-duplicate wordings, 0.59 and up on the story
file and the franchise stream, small AG News groups 0.47 and up. A cut story under 0.4 goes back to noise before
the rescue, and the rescue, the leftover pass and the topic step take its headlines as they take any noise.
Streamed (bench/quality.py): AG News topic kept-id min 0.583 -> 0.770 (0.770, 0.772, 0.917, 0.901, then >= 0.97),
AMI 0.484 -> 0.502, largest 21.3% -> 22.9% (costs: the fifth rebuild's kept-id 0.982 -> 0.901, the second's arrivals
keeping their topic 0.551 -> 0.409, pooled 0.873 -> 0.870); the story file, the franchise stream and the synthetic
topic_structured corpus unchanged (no story there is that loose). Tried and dropped: 0.5 (also took AG News's
0.46-0.49 groups of 114-199; the first rebuild then had 5 topics and the second 13, kept-id 0.553); capping the
rescue's growth at 1.5x the cut story (kept-id min 0.713, but the franchise stream fell to pairwise F1 0.884,
BCubed 0.925).

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

Why that last rescue round counts a small story's votes against its members (vote_rounds' small_groups): most
leftover stories hold five to seven headlines (80% of 12k at 1M), and a straggler lists at most that many of them
among its nine nearest, so five of nine votes asked it to list nearly every member and nothing else. There a strict
majority of the story's members is enough (three of five, four of six or seven); a story of eight or more still
needs five of nine. Measured (bench/scale.py graphs, the fit alone; bench/quality.py streamed): story AMI at 1M
documents 0.8496 -> 0.8510 (story headlines left as noise 6.0% -> 5.8%; topic AMI 0.3675 -> 0.3635), at 100k
0.8758 -> 0.8761 (topic 0.4638 -> 0.4668); AG News topics 0.542 -> 0.580 (its story level 0.347 -> 0.349); the story
file (three orders), the franchise stream unchanged; topic_structured topics, seeds 0-3, 0.697 0.684 0.681 0.676 ->
0.696 0.679 0.684 0.680. On the demo stream it let two early swimming headlines into a fragment of the football
story; the swimming story, born from it, was then told only once alerts stopped reading lineage as "not news"
(usecases.alerts). Tried and dropped: a reach limit on the first rescue (a noise document within 1.3x the story's
placing threshold of its nearest voter): 1M story AMI 0.852, but the franchise stream's story level 0.994 -> 0.986
and topic_structured topics 0.697 -> 0.690, 0.684 -> 0.671 (the documents it left out formed stories of their own
in the leftover tree: one event split); at 1.4x-1.5x it no longer lifted 1M.

Probabilities: HDBSCAN membership strength where the cut (or the leftover tree) placed the document; for a document
placed by vote, the vote's share times the mean strength of the voters; a topic's: the share of its
story's (or headline's) links that stay inside the topic. Outlier scores are GLOSH over each cut's
condensed tree (the topic level's over the coarse cut).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..domain import NOISE
from . import defaults
from .centres import group_sums
from .identity import compact_labels
from .graph import Neighbours, check_neighbours, core_distances, subgraph, symmetric_graph
from .hdbscan_fit import glosh_scores, scaled_min_cluster_size
from .topics import TopicParams, topics_over_stories
from .votes import vote_rounds

UNLINKED_DISTANCE = float(np.sqrt(2.0))  # unit vectors at cosine 0: unrelated headlines


@dataclass(frozen=True)
class TwoLevelParams:
    story_min_cluster_size: int = defaults.STORY_MIN_SIZE  # fixed: never grows with the corpus
    topic_min_cluster_size: int = defaults.TOPIC_MIN_SIZE  # 0: scaled with n (hdbscan_fit.scaled_min_cluster_size)
    min_samples: int = defaults.MIN_SAMPLES
    story_rescue_rounds: int = 2  # noise documents joining a story by a strict majority of their nearest neighbours...
    story_rescue_neighbours: int = 9  # ...this many of them (at most the graph's k)
    story_min_cohesion: float = 0.4  # a cut story whose members' mean unit vector is shorter is a blob, not a story
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


def fit_two_levels(neigh: Neighbours, params: TwoLevelParams = TwoLevelParams(), vectors: np.ndarray | None = None) -> TwoLevelFit:
    """Stories and topics from one kNN graph (neigh: each document's k nearest others, sqrt(2-2cos); checked)."""
    check_neighbours(neigh)
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
    if vectors is not None:
        story, story_prob = loose_to_noise(story, story_prob, vectors, params.story_min_cohesion)
    rescue_m = min(params.story_rescue_neighbours, neigh.k)
    story, story_prob = _rescue(neigh, story, story_prob, rescue_m, params.story_rescue_rounds)
    if params.leftover_min_samples > 0:
        story, story_prob = leftover_stories(neigh, story, story_prob, s_mcs, params.leftover_min_samples, params.leftover_max_size)
        story, story_prob = _rescue(neigh, story, story_prob, rescue_m, rounds=1, small_stories=True)

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
    mst = precomputed_mst(symmetric_graph(neigh), int(min_samples))
    w = mst[:, 2]
    bridge = ~np.isfinite(w)
    if bridge.any():
        w[bridge] = max(UNLINKED_DISTANCE, float(w[~bridge].max(initial=0.0)))
    return mst


def precomputed_mst(sym, min_samples: int) -> np.ndarray:
    """fast_hdbscan.precomputed.compute_mst_from_precomputed_sparse, minus its first step.

    That step makes any sparse input symmetric (min over both directions) with a lexsort of every
    edge: 40% of the spanning tree's time at 100k. Our symmetric_graph already is that matrix (the
    same minima, floored above zero, no diagonal), so the steps after it run on it directly. The
    steps are fast_hdbscan's own functions; tests/clustering/test_two_level.py checks the result equals the
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


def _rescue(neigh: Neighbours, labels: np.ndarray, prob: np.ndarray, m: int, rounds: int, small_stories: bool = False):
    """Noise documents join the story a strict majority of their m nearest listed neighbours hold, or (small_stories)
    of the story's members where it has too few to give that many votes (module docstring)."""
    return vote_rounds(neigh, labels, prob, m, rounds, m // 2 + 1, weigh_by_voters=True, small_groups=small_stories)


def loose_to_noise(labels: np.ndarray, prob: np.ndarray, vectors: np.ndarray, min_cohesion: float):
    """(labels, prob) with every group whose members' mean unit vector is shorter than min_cohesion back to noise."""
    if min_cohesion <= 0 or not (labels >= 0).any():
        return labels, prob
    c = int(labels.max()) + 1
    sums, n = group_sums(vectors, labels, c, unit=True)
    cohesion = np.linalg.norm(sums, axis=1) / np.maximum(n, 1)
    loose = cohesion < min_cohesion
    if not loose.any():
        return labels, prob
    drop = (labels >= 0) & loose[np.maximum(labels, 0)]
    labels = compact_labels(np.where(drop, NOISE, labels))
    prob = np.where(drop, 0.0, prob).astype(np.float32)
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


def _all_noise(n: int, core: np.ndarray, s_mcs: int, t_mcs: int) -> TwoLevelFit:
    noise, zero, one = np.full(n, NOISE, np.int64), np.zeros(n, np.float32), np.ones(n, np.float32)
    return TwoLevelFit(noise, zero, one, noise.copy(), zero.copy(), np.zeros(0, np.int64), core, s_mcs, t_mcs)
