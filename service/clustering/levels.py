"""A fit's two levels, settled against the last run: stories held steady, topics made whole again, ids made persistent.

Pure functions over arrays: the rebuild's chain is fit (two_level) -> settle (here: hysteresis on
stories, then each story back in one topic) -> match (identity) -> name (naming).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..domain import NOISE, ClusterEvent
from .graph import Neighbours
from .hdbscan_fit import Anchor, cluster_max_edges
from .identity import stabilize
from .two_level import TwoLevelFit, _one_topic_per_story


@dataclass(frozen=True)
class Levels:
    """Stories and topics of one rebuild, numbered 0..s-1 and 0..t-1 (NOISE for none)."""

    story_labels: np.ndarray
    story_probabilities: np.ndarray
    story_outlier_scores: np.ndarray
    topic_labels: np.ndarray
    topic_probabilities: np.ndarray
    story_topic: np.ndarray  # (s,) the one topic of each story
    story_max_edge: np.ndarray  # (s,) for placing arrivals
    story_min_core: np.ndarray  # (s,)

    @property
    def n_stories(self) -> int:
        return len(self.story_topic)

    @property
    def n_topics(self) -> int:
        return int(self.topic_labels.max()) + 1 if (self.topic_labels >= 0).any() else 0


def settle(fit: TwoLevelFit, neigh: Neighbours, vectors: np.ndarray, anchor: Anchor | None) -> Levels:
    """Hysteresis on stories (identity.stabilize: what users saw stays put unless new documents ask), then every
    story back inside one topic, since the held documents may have crossed a topic border."""
    stories = fit.story_labels
    if anchor is None:
        return Levels(stories, fit.story_probabilities, fit.story_outlier_scores, fit.topic_labels, fit.topic_probabilities,
                      fit.story_topic, fit.story_max_edge, fit.story_min_core)
    stories = stabilize(anchor.doc_ids, anchor.labels, anchor.new_doc_ids, stories, vectors=vectors, hold_margin=anchor.hold_margin,
                        placed=anchor.placed)
    story_topic, topics, topic_prob = _one_topic_per_story(stories, fit.topic_labels, fit.topic_probabilities)
    s = len(story_topic)
    return Levels(stories, fit.story_probabilities, fit.story_outlier_scores, topics, topic_prob, story_topic,
                  cluster_max_edges(neigh, fit.core_distances, stories, s), _min_core(fit.core_distances, stories, s))


def persistent(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Labels 0..c-1 -> the persistent ids matching gave them (NOISE stays NOISE)."""
    if len(ids) == 0:
        return np.full(len(labels), NOISE, np.int64)
    return np.where(labels >= 0, ids[np.maximum(labels, 0)], NOISE).astype(np.int64)


def story_moves(before: dict[int, int], story_ids: np.ndarray, story_topic_ids: np.ndarray) -> list[ClusterEvent]:
    """A story that sits in another topic than in the last run moved: an event of its own."""
    events = []
    for sid, tid in zip(story_ids.tolist(), story_topic_ids.tolist()):
        old = before.get(int(sid))
        if old is not None and old != NOISE and tid != NOISE and old != tid:
            events.append(ClusterEvent("moved", int(sid), parents=(int(old),), children=(int(tid),)))
    return events


def _min_core(core: np.ndarray, labels: np.ndarray, c: int) -> np.ndarray:
    out = np.full(c, np.inf, np.float32)
    member = labels >= 0
    np.minimum.at(out, labels[member], core[member])
    return out
