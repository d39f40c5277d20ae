"""Topics: communities of stories (Leiden on the kNN graph with each story contracted into one node), guarded.

Why topics are communities of stories, no longer the coarse HDBSCAN cut of two_level with its
cores spread over the kNN graph: the spreading flooded a held-out 29-category stream from one
core (one topic held 95% of the documents) and split a real story stream into one topic per
story; on the story-shaped corpus it left 77% of documents in no topic (AMI 0.23 at 100k). Leiden
on the kNN graph with each story contracted into one node keeps stories whole, lets a story join
others only when its links reach them, and two guards re-cut what would collapse or fragment:
AG News 0.484 -> 0.53 streamed, the generated topic-structured stream 0.45 -> 0.71 and the
story-shaped one 0.23 -> 0.46 at 100k (0% topic noise; bench/quality.py --level topic,
--synthetic). One recipe from 1k to 1M documents, O(n k) memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from ..domain import NOISE
from .graph import Neighbours
from .identity import stabilize
from .votes import vote_rounds

log = logging.getLogger("newsclust")


@dataclass(frozen=True)
class TopicParams:
    resolution: float = 1.0  # modularity resolution of the first cut; the guards move it
    max_share: float = 0.25  # guard: no topic holds more of the documents than this...
    share_guard_min_docs: int = 0  # ...on a stream at least this long
    min_median_stories: float = 2.0  # guard: the median topic holds at least this many stories...
    median_guard_min_stories: int = 20  # ...where there are at least this many stories
    max_recuts: int = 8  # resolutions tried before the best cut found is shipped
    recut_tolerance: float = 1.1  # once the share guard's re-cut holds, bisect back down until the bracket is this narrow
    attach_share: float = 1 / 3  # a headline in no story takes the topic at least this share of its neighbours hold...
    attach_rounds: int = 2  # ...in this many rounds (a second lets its neighbours' new topics count)
    with_unstoried: bool = True  # headlines in no story are nodes of the graph too (story_graph)
    iterations: int = 2  # Leiden iterations (-1: until one no longer improves the cut: 2-3x the time, the same AMI on AG News and both generated streams)
    internal_weight: float = 1.0  # how much of a story's inside links count in its weight (1: modularity of the document graph)
    seed: int = 0


@dataclass(frozen=True)
class StoryTopics:
    topic_labels: np.ndarray  # (n,) int64 0..t-1 or NOISE
    topic_probabilities: np.ndarray  # (n,) float32
    story_topic: np.ndarray  # (s,) int64, the topic of each story (never NOISE)
    resolution: float  # the modularity resolution the shipped cut used
    guard: str  # "" when the first cut held every guard; else which guard acted (and whether it could be met)


def story_graph(neigh: Neighbours, stories: np.ndarray, with_unstoried: bool = False,
                directed: bool = False) -> tuple[sp.csr_matrix, np.ndarray]:
    """(graph, node of each document): the kNN graph with each story contracted into one node.

    Entry (a, b) counts the kNN links between the documents of node a and of node b (both directions), the
    diagonal the links inside a story (an undirected edge listed both ways counts 2, as in the document graph);
    directed: only node a's documents listing node b's (how much a story leans on another).
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
    return (c if directed else (c + c.T).tocsr()), node


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
    times. Once a re-cut for the share guard holds, the search bisects back down until the bracket is within
    recut_tolerance, so the cut shipped splits no more than the guard needs (AG News streamed: the second rebuild's
    re-cut 1 -> 2 made 15 topics of the first's 5, topic kept-id 0.770; at 1.09, 7 topics, 0.973). The median
    guard's re-cut ships the first that holds: bisected back up, its groups sat at the guard's edge and came apart
    again as stories arrived (story file, from the rebuild where it first acted: kept-id 0.82, 0.82, 0.69 against
    0.69, 0.97, 0.96). Which guard acted is logged and returned. Headlines in no story then take the topic at least
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
    best, guard, up, held = None, "", None, False
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
        holds = not too_big and not too_fine
        if best is None or score < best[0] or (holds and held):  # bisecting: each cut that holds is nearer the start
            best = (score, membership, labels, prob, res)
        if holds and not up:
            break  # the first cut held every guard, or the median guard's re-cut holds (see the docstring)
        if too_big and too_fine and not held:
            guard = "both guards fail at every resolution tried" if attempt == params.max_recuts else "both"
            break  # finer splits more single stories off, coarser merges the giant: no resolution helps
        if up is None:
            up = bool(too_big)
            guard = "largest topic share" if up else "median stories per topic"
        held |= holds
        if held:  # a re-cut for the share guard held: bisect back down, to split no more than the guard needs
            if holds:
                hi = res
            else:
                lo = res
            if hi / max(lo, 1e-300) <= params.recut_tolerance:
                break
            res = float(np.sqrt(lo * hi))
            continue
        if too_big:
            lo = res
        else:
            hi = res
        res = res * 2 if hi == np.inf else (res / 2 if lo == 0 else float(np.sqrt(lo * hi)))
    score, membership, labels, prob, res = best
    if previous is not None and (previous >= 0).any():
        membership, labels, prob = _held(stories, previous, membership, labels, prob, story_docs, n, params, score, w, node)
    if guard:
        held = not (score[0] or score[1])
        log.info("topic guard acted (%s): resolution %.3g, %s", guard, res, "both guards hold" if held else
                 f"shipped the best cut found (largest share over by {score[2]:.3f}, median stories short by {score[3]:.2f})")
        if not held:
            guard += " (not met)"
    return StoryTopics(labels, prob, membership, res, guard)


def _held(stories, previous, membership, labels, prob, story_docs, n, params, score, w, node):
    """Hysteresis on topics, as on stories (identity.stabilize over the documents: splits and merges that only
    reshuffle documents the last run had are undone, small moves of old documents held), then each story back in
    the one topic most of its members hold; a held topic over the share guard sheds its loosest members (_trim).
    Shipped only if it breaks no guard the cut held."""
    rows = np.arange(n)
    held = stabilize(rows, previous, rows, labels)
    story_topic, held, held_prob = one_topic_per_story(stories, held, np.where(held == labels, prob, 0.5).astype(np.float32))
    if len(story_topic) != len(membership) or (story_topic < 0).any():
        return membership, labels, prob
    over, under = _guards(held, story_topic, story_docs, n, params)
    trimmed = 0
    if over > score[2]:
        before = held
        story_topic, held, held_prob = _trim(stories, held, held_prob, w, node, story_docs, n, params, score[2])
        over, under = _guards(held, story_topic, story_docs, n, params)
        trimmed = int((held != before).sum())
    if over > score[2] or under > score[3]:
        log.info("topic guard acted on the hold (%s): the last run's topics given up for this run's cut",
                 "largest topic share" if over > score[2] else "median stories per topic")
        return membership, labels, prob
    if trimmed:
        log.info("topic guard acted on the hold (largest topic share): %d documents moved to the topic they link to most", trimmed)
    return story_topic, held, held_prob


def _trim(stories, held, held_prob, w, node, story_docs, n, params, allowed, max_rounds: int = 8):
    """The hold made a topic too large for the share guard: its members least tied to it (whole nodes of the story
    graph: a story, or a headline in no story) move to the topic they have most links to, the loosest first, until
    it fits (probability: the share of the node's links that go there). Returns what _held ships.

    Why not give the guard the cut: on AG News (4 topics of 25% each) a held topic a few documents over 25%
    threw the whole hold away, and the cut's own split of that topic in halves changed the topic id of 11-21% of
    the documents in one rebuild. Trimmed, the topic keeps its id and sheds only the documents it must."""
    held, held_prob = held.copy(), held_prob.copy()
    placed = node >= 0
    node_size = np.bincount(node[placed], minlength=w.shape[0])
    self_links = w.diagonal()
    for _ in range(max_rounds):
        story_topic = majority_topics(stories, held)[0]
        if _guards(held, story_topic, story_docs, n, params)[0] <= allowed:
            break
        sizes = np.bincount(held[held >= 0])
        big = int(sizes.argmax())
        need = sizes[big] - int(np.floor(params.max_share * n))
        node_topic = np.full(w.shape[0], NOISE, np.int64)
        node_topic[node[placed]] = held[placed]
        units = np.flatnonzero(node_topic == big)
        links = w[units].tocoo()
        to = node_topic[links.col]
        home = to == big
        inside = np.bincount(links.row[home], weights=links.data[home], minlength=len(units)) - self_links[units]
        away = (to >= 0) & ~home
        per = sp.csr_matrix((links.data[away], (links.row[away], to[away])), shape=(len(units), len(sizes)))
        other = np.asarray(per.argmax(axis=1)).ravel()
        out_links = np.asarray(per.max(axis=1).todense()).ravel()
        share_out = out_links / np.maximum(out_links + inside, 1e-12)
        order = np.argsort(-share_out, kind="stable")
        order = order[out_links[order] > 0]
        if order.size == 0:
            break
        take = order[: int(np.searchsorted(np.cumsum(node_size[units[order]]), need)) + 1]
        dest = np.full(w.shape[0], NOISE, np.int64)
        dest[units[take]] = other[take]
        gain = np.zeros(w.shape[0], np.float32)
        gain[units[take]] = share_out[take]
        rows = np.flatnonzero(placed & (dest[np.maximum(node, 0)] >= 0))
        held[rows] = dest[node[rows]]
        held_prob[rows] = gain[node[rows]]
    return majority_topics(stories, held)[0], held, held_prob


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
    need = int(np.ceil(params.attach_share * neigh.k - 1e-9))
    labels, prob = vote_rounds(neigh, labels, prob, neigh.k, params.attach_rounds, need, weigh_by_voters=False)
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


def one_topic_per_story(story: np.ndarray, topic: np.ndarray, topic_prob: np.ndarray):
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
