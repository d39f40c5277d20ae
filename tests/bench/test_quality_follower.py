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
