"""Which stories to tell people about: new ones, and ones growing well above their usual pace.

Pure functions over arrays of news time (published, else ingested), never the wall clock, so a
replayed stream alerts as the live one did. A story *surges* when the headlines of its last
window (the newest `window_s` of stream time) are at least `factor` times what it usually gets
in a window (its own past rate, measured since it began) and at least `factor` times the
stream's typical story (the median of those rates), and at least `min_recent` headlines: a
quiet story that doubles from one to two headlines is not news, a big story at its usual pace
is not a surge, and a story that suddenly draws a crowd is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..domain import Neighbours
from ..sorted_keys import find_sorted
from . import defaults
from .centres import centre_cosine, group_sums, unit_rows
from .identity import DRIFT_MIN_COSINE


@dataclass(frozen=True)
class SurgeRule:
    window_s: float = defaults.SURGE_WINDOW_H * 3600.0
    factor: float = defaults.SURGE_FACTOR
    min_recent: int = defaults.SURGE_MIN_HEADLINES


@dataclass(frozen=True)
class StoryPace:
    story_id: int
    size: int
    recent: int  # headlines in the last window
    usual: float  # its own past headlines per window
    typical: float  # the stream's median story, headlines per window
    surging: bool


def story_paces(story_ids: np.ndarray, times: np.ndarray, rule: SurgeRule = SurgeRule()) -> list[StoryPace]:
    """story_ids, times: one entry per clustered headline (unix seconds of news time). One pace per story."""
    if len(story_ids) == 0:
        return []
    now = float(times.max())
    cut = now - rule.window_s
    stories, inverse = np.unique(story_ids, return_inverse=True)
    size = np.bincount(inverse)
    recent = np.bincount(inverse, weights=times > cut).astype(np.int64)
    first = np.full(len(stories), np.inf)
    np.minimum.at(first, inverse, times)
    past = size - recent
    # the story's life before the window, in windows (at least one: a story one hour old has had one window)
    windows = np.maximum((cut - first) / rule.window_s, 1.0)
    usual = np.where(past > 0, past / windows, 0.0)
    typical = float(np.median(usual[past > 0])) if (past > 0).any() else 0.0
    surging = (recent >= rule.min_recent) & (past > 0) & (recent >= rule.factor * np.maximum(usual, 1.0)) & \
        (recent >= rule.factor * max(typical, 1.0))
    return [StoryPace(int(s), int(n), int(r), float(u), typical, bool(g))
            for s, n, r, u, g in zip(stories, size, recent, usual, surging)]


@dataclass(frozen=True)
class StoryLinks:
    """Which stories hold the kNN neighbours of a story's members, read per story when asked (the alerts ask about the
    few stories born in a rebuild): one sort of the rows by story, O(n log n), then O(members x k) per story."""

    group: np.ndarray  # (n,) each row's story (index into StoryProfiles.story_ids), -1 for none
    indices: np.ndarray  # (n, k) each row's kNN rows, -1 for none
    order: np.ndarray  # rows sorted by group
    start: np.ndarray  # (s + 1,) where each story's rows begin in order

    @classmethod
    def of_graph(cls, group: np.ndarray, indices: np.ndarray, stories: int) -> StoryLinks:
        order = np.argsort(group, kind="stable")
        return cls(group, indices, order, np.searchsorted(group[order], np.arange(stories + 1)))

    def slots(self, at: int) -> np.ndarray:
        """The story of each kNN slot of story `at`'s members (-1: noise)."""
        nb = self.indices[self.order[self.start[at] : self.start[at + 1]]].ravel()
        return self.group[nb[nb >= 0]]

    def share_in(self, at: int, other: int) -> float:
        """The share of story `at`'s members' kNN slots that sit in story `other` (0 when `at` has none)."""
        slots = self.slots(at)
        return float((slots == other).mean()) if len(slots) else 0.0


@dataclass(frozen=True)
class StoryProfiles:
    """Each story's unit centroid and cohesion (mean cosine of its members to that centroid), from one rebuild."""

    story_ids: np.ndarray  # (s,)
    centres: np.ndarray  # (s, d) unit
    cohesion: np.ndarray  # (s,)
    sizes: np.ndarray | None = None  # (s,) members; given, cosines are between the centres members were drawn from
    topics: np.ndarray | None = None  # (s,) each story's topic (NOISE for none); given, fragments are looked for in it too
    links: StoryLinks | None = None  # given, a new story leaning on an announced one is looked for (satellite_of)

    def of(self, story_id: int) -> int:
        at, found = find_sorted(self.story_ids, story_id)
        return int(at) if found else -1

    def with_topics(self, topic_of: dict[int, int | None]) -> StoryProfiles:
        """The same profiles with each story's topic (story id -> topic id; None or absent: no topic)."""
        topics = np.array([-1 if topic_of.get(int(s)) is None else int(topic_of[int(s)]) for s in self.story_ids], np.int64)
        return replace(self, topics=topics)


def story_profiles(vectors: np.ndarray, story_ids: np.ndarray, neigh: Neighbours | None = None) -> StoryProfiles:
    """story_ids: one per row of vectors (unit rows), NOISE (-1) for none. O(n x d), one sparse product; given the
    kNN lists of the same rows (neigh), the links between stories too (StoryLinks, read per story when asked)."""
    member = story_ids >= 0
    ids, inverse = np.unique(story_ids[member], return_inverse=True)
    group = np.full(len(story_ids), -1, np.int64)
    group[member] = inverse
    sums, size = group_sums(vectors, group, len(ids))
    norm = np.linalg.norm(sums, axis=1)
    links = StoryLinks.of_graph(group, neigh.indices, len(ids)) if neigh is not None else None
    return StoryProfiles(ids, unit_rows(sums), (norm / np.maximum(size, 1)).astype(np.float32), size, links=links)


def fragment_of(profiles: StoryProfiles, story_id: int, announced: np.ndarray, min_cosine: float) -> int | None:
    """The announced story (other than itself) whose centroid is within min_cosine of this story's: the same event,
    already told; None if there is none. With sizes, the cosine is between the centres the members were drawn from
    (centres.centre_cosine: a small story's mean is shorter than its centre)."""
    me = profiles.of(story_id)
    announced = np.asarray(announced, np.int64)
    announced = announced[announced != story_id]
    if me < 0 or len(announced) == 0 or len(profiles.story_ids) == 0:
        return None
    rows, found = find_sorted(profiles.story_ids, announced)
    rows = rows[found]
    if rows.size == 0:
        return None
    if profiles.sizes is None:
        sims = profiles.centres[rows] @ profiles.centres[me]
    else:  # the sums back from unit centre x cohesion x size
        n = profiles.sizes.astype(np.float64)
        sums = profiles.centres * (profiles.cohesion * n)[:, None]
        sims = centre_cosine(sums[rows], n[rows], sums[me], n[me])
    best = int(np.argmax(sims))
    return int(profiles.story_ids[rows[best]]) if sims[best] >= min_cosine else None


# Two stories whose centroids are this close are one event (the same figure that keeps an id on its event).
SAME_EVENT_COSINE = DRIFT_MIN_COSINE
# An alert needs a story at least this cohesive relative to the run's median story (cohesion: mean cosine of the
# members to their centre). The demo's filler headlines (one-offs of 24 kinds in 6 towns) made a story at 0.63-0.73
# of the median; the demo's real stories sat at 0.80 and above, the story file's 25 labelled stories at 0.80-1.2.
MIN_COHESION_RATIO = 0.75
# A new story half of whose members sat in one announced story in one of the last runs is that story, reborn.
FORMER_HOME_SHARE = 0.5
# Inside one topic, a new story as close to an announced one as the parts of one story are to each other is part of
# it: levels.BORDER_SAME_STORY_COSINE, the figure that keeps a held story whole across a topic border. On the story
# file, stories of one label born apart (two Apple TV stories, a Missouri bill beside Colorado's marijuana taxes)
# sat at 0.53-0.68 in one topic; distinct labels in one topic at 0.46 and below.
SAME_TOPIC_FRAGMENT_COSINE = 0.5
# A new story that leans on a told one (at least this share of its members' kNN slots in it), that story's members
# listing some of its members back (the new headlines sit inside the old story's spread), and as close as a story's
# parts (SAME_TOPIC_FRAGMENT_COSINE), is that story's satellite: a late part of the event. On the story file a TV host's
# remarks on a dating show (9 headlines, one label with the show told two runs before) put 47% of their slots in the
# show, which listed them back 22 times, at centre cosine 0.58; new stories of another label within 0.45 of a told one
# put at most 5% of their slots there (the story file in 10 orderings and file splits), and the one of another label
# that leaned as much (47%, listed back twice) sat at 0.42: the cosine keeps it news. The generated franchise stream's
# show (a new event of the trailer's franchise, 15 headlines at birth) put 21% of its slots in the trailer at 0.77,
# and no trailer headline listed it back.
SATELLITE_LINK_SHARE = 1 / 3


@dataclass(frozen=True)
class NewStoryRule:
    """When a story born in a rebuild is announced as new (the rule beside SurgeRule; built from settings)."""

    min_size: int = defaults.ALERT_NEW_MIN_SIZE
    same_event_cosine: float = SAME_EVENT_COSINE
    same_topic_cosine: float = SAME_TOPIC_FRAGMENT_COSINE
    former_home_share: float = FORMER_HOME_SHARE
    satellite_link_share: float = SATELLITE_LINK_SHARE


def worth_announcing(size: int, recent: int, is_bag: bool, rule: NewStoryRule) -> bool:
    """A new story is told only with at least rule.min_size headlines, some of them in the last window (a story
    re-formed from old headlines is no news), and when it is an event, not a loose bag of one-offs."""
    return size >= rule.min_size and recent > 0 and not is_bag


def satellite_of(profiles: StoryProfiles, story_id: int, announced: np.ndarray, rule: NewStoryRule) -> int | None:
    """The announced story this new one is a satellite of (SATELLITE_LINK_SHARE), None if none: at least
    rule.satellite_link_share of its members' kNN slots in it, some of its members' kNN slots back in this one, and
    the centres within rule.same_topic_cosine. Needs profiles.links."""
    me = profiles.of(story_id)
    if profiles.links is None or me < 0:
        return None
    slots = profiles.links.slots(me)
    if not len(slots):
        return None
    held = np.bincount(slots[slots >= 0], minlength=len(profiles.story_ids))
    leaned_on = profiles.story_ids[held >= rule.satellite_link_share * len(slots)]  # a handful at most: counted once, not per announced story
    for other in np.asarray(announced, np.int64)[np.isin(announced, leaned_on)]:
        at = profiles.of(int(other))
        if at < 0 or at == me or profiles.links.share_in(at, me) == 0:
            continue
        if fragment_of(profiles, story_id, np.array([other]), rule.same_topic_cosine) is not None:
            return int(other)
    return None


def fragment_home(story_id: int, size: int, profiles: StoryProfiles | None, told: np.ndarray,
                  homes: dict[int, int], ever_told: set[int], rule: NewStoryRule, born_with: np.ndarray = ()) -> int | None:
    """The announced story this new one is part of, None if it is news: its centroid within rule.same_event_cosine
    of a story told (fragment_of; told: the stories announced so far, the larger ones of this run included), or within
    rule.same_topic_cosine of a told story in its own topic (profiles.topics), or of a larger story born with it and
    told in this rebuild (born_with), or it is a satellite of a story announced before this run or now (satellite_of:
    it leans on that story, which lists it back; needs profiles.links), or at least rule.former_home_share of its
    members sat in one announced story in one of the last runs (homes: earlier story -> members of this one it held;
    the same event reborn under a new id after a run as noise or in another story).

    Why born_with: a bulk event the fit cuts into parts (wording groups) in the rebuild it arrives in, each in a topic
    of its own, was told once per part: the franchise stream in 3 chunks told its show 3 times more (its parts at
    centre cosine 0.64-0.80, most of them with no kNN link between them). Born together, stories of distinct labels sat
    at 0.47 and below (the story file in 10 orderings and file splits). Against a story told in an earlier run, a
    neighbour as close is as often a new event of the same franchise or company (the franchise's show against its
    trailer story, 0.77) as a late part of the old one (the story file's TV host's remarks on a dating show, 0.58):
    how the two lean on each other in the kNN graph tells them apart (satellite_of), the cosine does not.
    A part told now hides nothing: a larger story born with it but not told (no recent headline, a fragment itself)
    leaves the part as the news."""
    born_with = np.asarray(born_with, np.int64)
    told = np.asarray(told, np.int64)
    if profiles is not None:
        part_of = fragment_of(profiles, story_id, told, rule.same_event_cosine)
        me = profiles.of(story_id)
        if part_of is None and profiles.topics is not None and me >= 0 and profiles.topics[me] >= 0 and len(told):
            at, found = find_sorted(profiles.story_ids, told)
            beside = told[found & (profiles.topics[at] == profiles.topics[me])]
            part_of = fragment_of(profiles, story_id, beside, rule.same_topic_cosine)
        if part_of is None and len(born_with):
            part_of = fragment_of(profiles, story_id, born_with, rule.same_topic_cosine)
        if part_of is None:
            announced = np.union1d(told[np.isin(told, list(ever_told))], born_with)
            part_of = satellite_of(profiles, story_id, announced, rule)
        if part_of is not None:
            return part_of
    for earlier, n in sorted(homes.items(), key=lambda kv: -kv[1]):
        if earlier in ever_told and n >= rule.former_home_share * size:
            return earlier
    return None


def placed_homes(doc_ids: np.ndarray, stories: np.ndarray, placed_doc_ids: np.ndarray, placed_stories: np.ndarray) -> dict[int, dict[int, int]]:
    """This run's story -> {the story its members were placed in as they arrived: how many}. Users saw those members in
    that story: a new story made of them is its fragment (the franchise stream's show came back as two small stories
    of 9 and 6 headlines, 8 and 6 of them placed in the announced show as they arrived, and both were told as new).
    doc_ids/stories: this run's rows and persistent story ids (NOISE for none); placed_*: the arrivals placed since
    the last run (document ids, persistent story ids or NOISE)."""
    doc_ids, placed_doc_ids = np.asarray(doc_ids, np.int64), np.asarray(placed_doc_ids, np.int64)
    _, mine, theirs = np.intersect1d(doc_ids, placed_doc_ids, return_indices=True)
    now, then = np.asarray(stories)[mine], np.asarray(placed_stories)[theirs]
    both = (now >= 0) & (then >= 0)
    out: dict[int, dict[int, int]] = {}
    if both.any():
        pairs, counts = np.unique(np.column_stack([now[both], then[both]]), axis=0, return_counts=True)
        for (story, earlier), n in zip(pairs.tolist(), counts.tolist()):
            out.setdefault(int(story), {})[int(earlier)] = int(n)
    return out


def loose(cohesion: float, typical: float, ratio: float) -> bool:
    """A story whose members sit much further from their centre than the stream's typical story's is a bag of
    unrelated one-offs, not an event (the demo's filler headlines made one and it 'surged')."""
    return cohesion < ratio * typical
