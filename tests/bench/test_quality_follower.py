"""bench/quality.py's follower figures (issue 22): what a reader of the alerts sees, counted against the labels."""

from __future__ import annotations

from bench.quality import Follower


def test_the_follower_counts_the_labels_told_as_new_against_those_born_after_the_first_rebuild():
    truth = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    f = Follower()
    f.after_rebuild({}, {1: 10, 2: 10}, {}, truth)  # the first rebuild: label a is the baseline
    f.after_rebuild({1: 10, 2: 10}, {1: 10, 2: 10, 3: 11, 4: 12, 5: 13}, {}, truth,
                    [{"kind": "new", "story_id": 11, "recent": 1}, {"kind": "new", "story_id": 12, "recent": 1}])
    out = f.summary()
    assert out["new_alerts"] == 2 and out["new_alert_precision"] == 0.5  # b told twice
    assert out["alerted_stories"] == 1 and out["tellable_stories"] == 2  # b told, c never


def test_the_follower_says_where_the_rebuild_moved_placed_arrivals():
    truth = {d: "a" for d in range(1, 8)}
    f = Follower()
    f.after_rebuild({}, {1: 10, 2: 10, 3: 11}, {}, truth)
    # arrivals 4-7 were placed in story 10; the rebuild keeps 4, leaves 5 as noise, puts 6 in a new story 12, 7 in story 11
    f.after_rebuild({1: 10, 2: 10, 3: 11}, {1: 10, 2: 10, 3: 11, 4: 10, 6: 12, 7: 11}, {4: 10, 5: 10, 6: 10, 7: 10}, truth)
    out = f.summary()
    assert out["placed"] == 4 and out["placed_kept"] == 0.25
    assert (out["moved_to_noise"], out["moved_to_new_story"], out["moved_to_old_story"]) == (1, 1, 1)


def test_the_follower_lists_the_alerts_of_labels_told_more_than_once():
    truth = {1: "a", 2: "b", 3: "b", 4: "c"}
    f = Follower()
    f.after_rebuild({}, {1: 10}, {}, truth)
    f.after_rebuild({1: 10}, {1: 10, 2: 11, 3: 12, 4: 13}, {}, truth,
                    [{"kind": "new", "story_id": s, "recent": 1, "size": 1, "title": f"t{s}"} for s in (11, 12, 13)])
    repeated = f.summary()["repeated"]
    assert [(a["story_id"], a["label"], a["rebuild"]) for a in repeated] == [(11, "b", 2), (12, "b", 2)]


def test_a_shuffled_stream_keeps_every_row_and_moves_rows_only_inside_their_block():
    from bench.quality import _shuffled

    rows = [{"i": i} for i in range(23)]
    assert _shuffled(rows, 0, 1) == rows and _shuffled(rows, 1, 1) == rows
    got = _shuffled(rows, 5, 1)
    assert sorted(r["i"] for r in got) == list(range(23)) and got != rows
    assert all(r["i"] // 5 == at // 5 for at, r in enumerate(got))  # late and early arrivals, never across a block
    assert got == _shuffled(rows, 5, 1) and got != _shuffled(rows, 5, 2)  # the seed decides
