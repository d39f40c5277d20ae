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

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SurgeRule:
    window_s: float = 6 * 3600.0
    factor: float = 3.0
    min_recent: int = 5


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
class StoryProfiles:
    """Each story's unit centroid and cohesion (mean cosine of its members to that centroid), from one rebuild."""

    story_ids: np.ndarray  # (s,)
    centres: np.ndarray  # (s, d) unit
    cohesion: np.ndarray  # (s,)
    sizes: np.ndarray | None = None  # (s,) members; given, cosines are between the centres members were drawn from

    def of(self, story_id: int) -> int:
        at = int(np.searchsorted(self.story_ids, story_id))
        return at if at < len(self.story_ids) and self.story_ids[at] == story_id else -1


def story_profiles(vectors: np.ndarray, story_ids: np.ndarray) -> StoryProfiles:
    """story_ids: one per row of vectors (unit rows), NOISE (-1) for none. O(n x d), one sparse product."""
    import scipy.sparse as sp

    member = np.flatnonzero(story_ids >= 0)
    ids, inverse = np.unique(story_ids[member], return_inverse=True)
    if len(ids) == 0:
        return StoryProfiles(ids, np.zeros((0, vectors.shape[1]), np.float32), np.zeros(0, np.float32))
    sums = sp.csr_matrix((np.ones(len(member), np.float32), (inverse, np.arange(len(member)))), shape=(len(ids), len(member))) \
        @ np.asarray(vectors[member], np.float32)
    sums = np.asarray(sums, np.float32)
    norm = np.linalg.norm(sums, axis=1)
    size = np.bincount(inverse, minlength=len(ids))
    return StoryProfiles(ids, sums / np.maximum(norm, 1e-12)[:, None], (norm / np.maximum(size, 1)).astype(np.float32), size)


def fragment_of(profiles: StoryProfiles, story_id: int, announced: np.ndarray, min_cosine: float) -> int | None:
    """The announced story (other than itself) whose centroid is within min_cosine of this story's: the same event,
    already told; None if there is none."""
    me = profiles.of(story_id)
    announced = np.asarray(announced, np.int64)
    announced = announced[announced != story_id]
    if me < 0 or len(announced) == 0 or len(profiles.story_ids) == 0:
        return None
    rows = np.minimum(np.searchsorted(profiles.story_ids, announced), len(profiles.story_ids) - 1)
    rows = rows[profiles.story_ids[rows] == announced]
    if rows.size == 0:
        return None
    sims = profiles.centres[rows] @ profiles.centres[me]
    if profiles.sizes is not None:  # as identity._centroid_cosine: a small story's mean is shorter than its centre
        n, r = profiles.sizes.astype(np.float64), profiles.cohesion.astype(np.float64)
        rho = np.sqrt(np.clip((n * r**2 - 1) / np.maximum(n - 1, 1), 1e-6, None))
        sims = np.clip(sims * r[rows] * r[me] / (rho[rows] * rho[me]), -1.0, 1.0)
    best = int(np.argmax(sims))
    return int(profiles.story_ids[rows[best]]) if sims[best] >= min_cosine else None


def loose(cohesion: float, typical: float, ratio: float) -> bool:
    """A story whose members sit much further from their centre than the stream's typical story's is a bag of
    unrelated one-offs, not an event (the demo's filler headlines made one and it 'surged')."""
    return cohesion < ratio * typical
