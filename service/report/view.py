"""What every section of a run's page shares: the stories ordered by topic and growth, their colours and numbers."""

from __future__ import annotations

import numpy as np

from ..domain import ReportDocs, StoryRow, TopicRow
from . import model


class ReportView:
    """Everything the sections share: orderings, colours, per-story numbers."""

    def __init__(self, docs: ReportDocs, stories: dict[int, StoryRow], topics: dict[int, TopicRow], st, stats):
        self.docs, self.stories, self.topics, self.st, self.stats = docs, stories, topics, st, stats
        at = stats.index()
        self.row = {sid: at[sid] for sid in stories if sid in at}
        by_topic: dict[int, list[int]] = {}
        for sid in self.row:
            tid = stories[sid].topic_id if stories[sid].topic_id in topics else -1
            by_topic.setdefault(tid, []).append(sid)
        for sids in by_topic.values():
            sids.sort(key=lambda s: (-stats.recent[self.row[s]], -stats.size[self.row[s]], s))
        recent = {t: int(sum(stats.recent[self.row[s]] for s in sids)) for t, sids in by_topic.items()}
        size = {t: int(sum(stats.size[self.row[s]] for s in sids)) for t, sids in by_topic.items()}
        self.topic_order = sorted(by_topic, key=lambda t: (t == -1, -recent[t], -size[t], t))
        self.by_topic, self.topic_recent, self.topic_size = by_topic, recent, size
        self.story_order = [s for t in self.topic_order for s in by_topic[t]]
        hues = model.topic_colours([t for t in self.topic_order if t != -1])
        self.topic_hue = {t: hues.get(t, 0.0) for t in self.topic_order}
        self.colour = {s: model.shade(self.topic_hue[t], i, saturated=t != -1) for t in self.topic_order for i, s in enumerate(by_topic[t])}

    def story_label(self, sid: int) -> str:
        return self.stories[sid].title if sid in self.stories else ("noise" if sid < 0 else f"story {sid}")

    def topic_name(self, tid: int) -> str:
        return self.topics[tid].name if tid in self.topics else "stories in no topic"


def fmt_time(t) -> str:
    if t is None or np.isnat(np.datetime64(t, "s")):
        return "—"
    return str(np.datetime64(t, "m")).replace("T", " ")


def fmt_day(t) -> str:
    return "—" if t is None or np.isnat(np.datetime64(t, "s")) else str(np.datetime64(t, "D"))
