"""What a follower of a story sees across a rebuild (issue 22): arrivals placed in a story stay there unless the
rebuild has a reason, and fragments of an announced story are not announced again."""

from __future__ import annotations

import numpy as np

from service.clustering.identity import stabilize
from service.domain import NOISE

from ..conftest import unit_vectors


def _around(rng: np.random.Generator, centre: np.ndarray, n: int, spread: float) -> np.ndarray:
    x = centre + rng.normal(scale=spread, size=(n, len(centre)))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_arrivals_placed_in_a_story_come_back_to_it_when_the_fit_cuts_them_off_as_a_group():
    rng = np.random.default_rng(3)
    x, _ = unit_vectors(rng, 2, 20, spread=0.05)  # story 7 (rows 0-19), and a new event's 20 headlines (20-39)
    story, other = x[:20], x[20:]
    arrivals = _around(rng, story.mean(0), 40, 0.05)  # 40 arrivals of story 7, all placed in it as they came
    vectors = np.vstack([story, arrivals, other])
    doc_ids = np.arange(len(vectors), dtype=np.int64)
    prev_docs, prev_labels = doc_ids[:20], np.full(20, 7, np.int64)
    placed = (doc_ids[20:60], np.full(40, 7, np.int64))
    # the fit keeps the story with half the arrivals, cuts the other half off as a group, and finds the new event
    fit = np.concatenate([np.zeros(40), np.ones(20), np.full(20, 2)]).astype(np.int64)

    got = stabilize(prev_docs, prev_labels, doc_ids, fit, vectors=vectors, placed=placed)
    assert len(set(got[:60].tolist())) == 1  # users saw all 60 in story 7: they stay in one story
    assert len(set(got[60:].tolist())) == 1 and got[60] != got[0]  # the unplaced new event still stands apart
    unplaced = stabilize(prev_docs, prev_labels, doc_ids, fit, vectors=vectors)
    assert unplaced[40] != unplaced[0]  # without the placements the cut-off group is a new story (what users saw decides)


def test_a_placed_arrival_the_fit_calls_noise_stays_only_when_it_sits_among_the_story():
    rng = np.random.default_rng(4)
    centre = rng.normal(size=32)
    centre /= np.linalg.norm(centre)
    story = _around(rng, centre, 30, 0.05)
    near = _around(rng, centre, 5, 0.02)  # placed, as close to the centre as the story's members
    far = _around(rng, -centre, 1, 0.05)  # placed (wrongly), nowhere near the story
    vectors = np.vstack([story, near, far])
    doc_ids = np.arange(36, dtype=np.int64)
    fit = np.concatenate([np.zeros(30), np.full(6, NOISE)]).astype(np.int64)  # the fit's cut left all arrivals as noise

    got = stabilize(doc_ids[:30], np.full(30, 4, np.int64), doc_ids, fit, vectors=vectors,
                    placed=(doc_ids[30:], np.full(6, 4, np.int64)))
    assert (got[30:35] == got[0]).all()
    assert got[35] == NOISE
    # arrivals no one placed stay noise: only what users saw is held
    assert (stabilize(doc_ids[:30], np.full(30, 4, np.int64), doc_ids, fit, vectors=vectors)[30:] == NOISE).all()


def test_parts_of_one_event_born_in_one_rebuild_are_told_once_but_a_close_neighbour_of_an_older_story_is_news():
    from service.clustering.alerts import NewStoryRule, fragment_home, story_profiles
    from service.clustering.graph import knn

    rng = np.random.default_rng(5)
    a, b, u, w = np.linalg.qr(rng.normal(size=(32, 4)))[0].T  # orthonormal directions
    # story 1 told in an earlier run; born in this rebuild: 2, a part of it 3 (cosine 0.6), and 4 beside story 1 (0.6)
    centres = {1: a, 2: b, 3: 0.6 * b + 0.8 * u, 4: 0.6 * a + 0.8 * w}
    sizes = {1: 30, 2: 30, 3: 8, 4: 8}
    vectors = np.vstack([_around(rng, centres[s], sizes[s], 0.03) for s in centres])
    stories = np.repeat(list(centres), list(sizes.values()))
    profiles = story_profiles(vectors, stories, knn(vectors, 15))
    rule = NewStoryRule(min_size=6)
    # the larger part told now; the smaller, as close as a story's parts, is the same event (kNN links or not)
    assert fragment_home(3, 8, profiles, np.array([1, 2]), {}, {1, 2}, rule, born_with=np.array([2])) == 2
    assert fragment_home(3, 8, story_profiles(vectors, stories), np.array([1, 2]), {}, {1, 2}, rule, born_with=np.array([2])) == 2
    # as close to a story told in an earlier run, but story 1's members do not list it (not its satellite): news, as a
    # new event of the same franchise is
    assert profiles.links.share_in(profiles.of(1), profiles.of(4)) == 0
    assert fragment_home(4, 8, profiles, np.array([1, 2, 3]), {}, {1, 2}, rule, born_with=np.array([2, 3])) is None
    # not born together (or born together but not told now): news
    assert fragment_home(3, 8, profiles, np.array([1, 2]), {}, {1, 2}, rule) is None


def _links(members: dict[int, int], slots: dict[int, dict[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """A hand-made kNN graph: members {story index: rows} (-1: noise); slots {story index: {story index its members
    list: how many each}}. Returns (each row's story index, each row's neighbour rows)."""
    group = np.concatenate([np.full(n, s) for s, n in members.items()]).astype(np.int64)
    rows = {s: np.flatnonzero(group == s) for s in members}
    k = max(sum(v.values()) for v in slots.values())
    indices = np.full((len(group), k), -1, np.int64)
    for s, to in slots.items():
        for r in rows[s]:
            listed = [int(rows[t][(r + j) % len(rows[t])]) for t, n in to.items() for j in range(n)]
            indices[r, : len(listed)] = listed
    return group, indices


def test_a_satellite_of_an_announced_story_does_not_alert_but_a_new_event_beside_it_does():
    """SATELLITE_LINK_SHARE: a small story leaning on a told one that lists it back is a late part of that event; a
    bulk new event beside it (it leans little and is not listed back) and a leaner that is not listed back are news."""
    from service.clustering.alerts import (
        NewStoryRule,
        StoryLinks,
        StoryProfiles,
        fragment_home,
    )

    a, b, c, d = np.eye(8)[:4]
    # row groups are indices into story_ids [1, 2, 3, 4]: 1 told earlier; 2 its satellite (6 of 15 slots in 1, listed
    # back by 1); 3 a bulk event beside 1 (1 slot of 15 in it); 4 leans like 2 but 1 never lists it
    members = {0: 30, 1: 6, 2: 30, 3: 6, -1: 5}
    slots = {0: {0: 14, 1: 1}, 1: {1: 5, 0: 6, -1: 4}, 2: {2: 14, 0: 1}, 3: {3: 5, 0: 6, -1: 4}, -1: {-1: 4}}
    group, indices = _links(members, slots)
    links = StoryLinks.of_graph(group, indices, 4)
    centres = np.stack([a, 0.6 * a + 0.8 * b, 0.77 * a + np.sqrt(1 - 0.77**2) * c, 0.6 * a + 0.8 * d]).astype(np.float32)
    profiles = StoryProfiles(np.array([1, 2, 3, 4]), centres, np.full(4, 0.8, np.float32), links=links)
    assert links.share_in(1, 0) == 0.4 and links.share_in(0, 1) > 0 and links.share_in(0, 3) == 0
    rule = NewStoryRule(min_size=6)
    told = np.array([1])
    assert fragment_home(2, 6, profiles, told, {}, {1}, rule) == 1
    assert fragment_home(3, 30, profiles, told, {}, {1}, rule) is None  # the franchise's next event, in bulk
    assert fragment_home(4, 6, profiles, told, {}, {1}, rule) is None  # story 1's members do not list it: not inside it
    # a satellite of a story no one was told about (born now, not announced) is news; of one announced now it is not
    assert fragment_home(2, 6, profiles, told, {}, set(), rule) is None
    assert fragment_home(2, 6, profiles, told, {}, set(), rule, born_with=np.array([1])) == 1
    # further than a story's parts: news, however it leans
    far = StoryProfiles(profiles.story_ids, np.stack([a, 0.3 * a + np.sqrt(1 - 0.09) * b, centres[2], centres[3]]).astype(np.float32),
                        profiles.cohesion, links=links)
    assert fragment_home(2, 6, far, told, {}, {1}, rule) is None
