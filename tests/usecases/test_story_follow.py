"""A story keeps meaning one event: ids follow content, arrivals join running stories, alerts are worth reading."""

from __future__ import annotations

import numpy as np

from service.clustering.identity import match_clusters, previous_clusters, split_drifted
from service.domain import NOISE


def _event_vectors(rng, centre, n, spread=0.05):
    x = centre + rng.normal(scale=spread, size=(n, len(centre)))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _two_events(rng, dim=32, cos=0.5):
    """Two event centres at the given cosine: one franchise, two events."""
    a = rng.normal(size=dim)
    a /= np.linalg.norm(a)
    b = rng.normal(size=dim)
    b -= (b @ a) * a
    b /= np.linalg.norm(b)
    return a, cos * a + np.sqrt(1 - cos**2) * b


def test_a_second_event_arriving_in_bulk_does_not_take_the_first_events_id():
    rng = np.random.default_rng(0)
    a, b = _two_events(rng)
    old_a, new_a, new_b = _event_vectors(rng, a, 30), _event_vectors(rng, a, 8), _event_vectors(rng, b, 80)
    vectors = np.vstack([old_a, new_a, new_b])
    doc_ids = np.arange(len(vectors), dtype=np.int64)
    prev_doc_ids, prev_labels = doc_ids[:30], np.full(30, 14, np.int64)  # last run: story 14 = event a
    fit = np.zeros(len(vectors), np.int64)  # this fit joined both events in one cluster
    prev_ids, old_of = previous_clusters(prev_doc_ids, prev_labels, doc_ids)

    labels, checks = split_drifted(fit, old_of, prev_ids, vectors, min_size=5)

    assert (labels[:38] == labels[0]).all(), "the first event, old and new headlines, stays together"
    assert (labels[38:] != labels[0]).all() and (labels[38:] >= 0).all()
    [check] = checks
    assert check.old_id == 14 and check.old_members == 30 and check.new_members == 88 and check.split_label == labels[38]
    assert check.cosine < 0.8
    m = match_clusters(prev_doc_ids, prev_labels, doc_ids, labels, next_id=100,
                       drifted_from={check.split_label: check.old_id})
    assert m.ids[labels[0]] == 14, "the id stays with the event it was born with"
    born = [e for e in m.events if e.kind == "born"]
    assert [(e.cluster_id, e.parents) for e in born] == [(100, (14,))]


def test_a_story_that_grows_within_its_event_keeps_one_cluster():
    rng = np.random.default_rng(1)
    a, _ = _two_events(rng)
    vectors = np.vstack([_event_vectors(rng, a, 20), _event_vectors(rng, a, 200)])
    doc_ids = np.arange(len(vectors), dtype=np.int64)
    prev_ids, old_of = previous_clusters(doc_ids[:20], np.full(20, 3, np.int64), doc_ids)
    labels, checks = split_drifted(np.zeros(len(vectors), np.int64), old_of, prev_ids, vectors, min_size=5)
    assert (labels == 0).all()
    assert len(checks) == 1 and checks[0].split_label == NOISE and checks[0].cosine > 0.9


def test_arrivals_in_a_group_beside_a_running_story_are_placed_by_their_density_among_all_stored():
    from service.clustering.assign import PredictionState, place

    # one story of 5 fitted documents, each 0.2 from its 5th neighbour; threshold 0.45
    state = PredictionState(doc_ids=np.arange(5), labels=np.full(5, 7), probabilities=np.ones(5, np.float32),
                            outlier_scores=np.zeros(5, np.float32), core_distances=np.full(5, 0.2, np.float32),
                            cluster_ids=np.array([7]), cluster_max_edge=np.array([0.45], np.float32),
                            cluster_min_core=np.array([0.2], np.float32), min_samples=5)
    # an arrival 0.3-0.6 from the fitted members, with four fellow arrivals at 0.1: among the fitted alone it looks sparse
    pos = np.array([[0, 1, 2, 3, 4]])
    dist = np.array([[0.30, 0.40, 0.45, 0.55, 0.60]], np.float32)
    assert place(state, pos, dist, 0.5).labels.tolist() == [NOISE]
    around = np.array([[0.1, 0.1, 0.1, 0.1, 0.30, 0.40]], np.float32)
    assert place(state, pos, dist, 0.5, density_dist=around).labels.tolist() == [7]
    # alone, far from every stored document, it still waits for the rebuild
    assert place(state, pos, dist + 0.5, 0.5, density_dist=around + 0.5).labels.tolist() == [NOISE]


def test_an_arrival_next_to_a_running_story_is_placed_at_once(make_app, tmp_path):
    import random

    from service import usecases
    from service.demo import Story, headline
    from sqlalchemy import text

    from ..conftest import write_csv

    rng = random.Random(4)
    rows = [{"guid": f"g{t}{i}", "title": " — ".join(headline(rng, Story(t, 0, 1, 1.0))), "published_at": f"2026-03-0{1 + i % 3}T10:00"}
            for t in ("wildfire", "rates", "quake", "climate") for i in range(14)]
    app = make_app()
    (app.settings.inbox).mkdir(parents=True, exist_ok=True)
    usecases.ingest_file(app, write_csv(app.settings.inbox / "a.csv", rows))
    usecases.rebuild(app, write_report_after=False)
    ids, labels = app.runs.run_labels(app.runs.latest_run().id)
    arrivals = [{"guid": f"late{i}", "title": " — ".join(headline(rng, Story("quake", 0, 1, 1.0))), "published_at": "2026-03-04T10:00"}
                for i in range(6)]
    usecases.ingest_file(app, write_csv(app.settings.inbox / "b.csv", arrivals))
    with app.engine.connect() as c:
        placed = [r[0] for r in c.execute(text("SELECT cluster_id FROM assignments WHERE assigned_by='predict'"))]
    quake_story = {int(l) for i, l in zip(ids.tolist(), labels.tolist()) if l >= 0 and app.ledger.document_texts([i])[i][0] in
                   {r["title"] for r in rows if r["guid"].startswith("gquake")}}
    assert len(quake_story) == 1
    assert sum(p in quake_story for p in placed) >= 5, placed


def _commit(app, doc_ids, labels, born, parents=()):
    from service.domain import ClusterEvent

    run_id = app.runs.start_run({})
    names = {int(c): (f"story {c}", [], []) for c in np.unique(labels[labels >= 0])}
    app.runs.commit_run(run_id, doc_ids=doc_ids, labels=labels, probabilities=np.ones(len(doc_ids), np.float32),
                        outlier_scores=np.zeros(len(doc_ids), np.float32), names=names,
                        events=[ClusterEvent("born", c, parents=tuple(parents), size_after=int((labels == c).sum())) for c in born],
                        timings={}, params={})
    return run_id


def test_a_fragment_of_an_announced_story_does_not_alert_again_and_a_loose_bag_does_not_alert(make_app, tmp_path):
    from service import usecases
    from service.clustering.alerts import StoryProfiles

    from ..conftest import write_csv

    app = make_app()
    app.settings.inbox.mkdir(parents=True, exist_ok=True)
    rows = [{"guid": f"g{i}", "title": f"headline number {i}", "published_at": f"2026-03-01T10:{i:02d}"} for i in range(50)]
    usecases.ingest_file(app, write_csv(app.settings.inbox / "a.csv", rows))
    doc_ids = np.sort(app.ledger.all_document_ids())
    labels = np.full(len(doc_ids), NOISE, np.int64)
    labels[:10] = 1
    first = _commit(app, doc_ids, labels, born=[1])
    assert usecases.raise_alerts(app, first) == []  # the first rebuild sets the baseline: story 1 counts as told

    labels[10:20], labels[20:30], labels[30:40] = 2, 3, 4
    second = _commit(app, doc_ids, labels, born=[2, 3, 4])
    rng = np.random.default_rng(0)
    a, b, c = (v / np.linalg.norm(v) for v in rng.normal(size=(3, 16)))
    near_a = 0.95 * a + np.sqrt(1 - 0.95**2) * b  # story 2: the same event as announced story 1 (cosine 0.95)
    profiles = StoryProfiles(np.array([1, 2, 3, 4]), np.stack([a, near_a, b, c]).astype(np.float32),
                             np.array([0.8, 0.8, 0.8, 0.4], np.float32))  # story 4: a loose bag of one-offs
    alerts = usecases.raise_alerts(app, second, profiles)
    assert [(x["kind"], x["story_id"]) for x in alerts] == [("new", 3)]

    # story 1's headlines come back under a new id, its content looking elsewhere: its members were told already
    labels[:10] = 6
    third = _commit(app, doc_ids, labels, born=[6])
    d = rng.normal(size=16)
    profiles = StoryProfiles(np.array([2, 3, 4, 6]), np.stack([near_a, b, c, d / np.linalg.norm(d)]).astype(np.float32),
                             np.array([0.8, 0.8, 0.4, 0.8], np.float32))
    assert usecases.raise_alerts(app, third, profiles) == []

    # six of told story 3's members split off under a new id, whatever its content: a part of a story told, not news
    labels[20:26] = 7
    fourth = _commit(app, doc_ids, labels, born=[7], parents=[3])
    e = rng.normal(size=16)
    profiles = StoryProfiles(np.array([2, 3, 4, 6, 7]), np.vstack([profiles.centres, e / np.linalg.norm(e)]).astype(np.float32),
                             np.array([0.8, 0.8, 0.4, 0.8, 0.8], np.float32))
    assert usecases.raise_alerts(app, fourth, profiles) == []

    # new headlines born with story 3 as their parent (lineage: they split off it, or its content left them), their
    # content elsewhere: a new event, told; the lineage does not hide it
    labels[40:50] = 8
    fifth = _commit(app, doc_ids, labels, born=[8], parents=[3])
    f = rng.normal(size=16)
    profiles = StoryProfiles(np.append(profiles.story_ids, 8), np.vstack([profiles.centres, f / np.linalg.norm(f)]).astype(np.float32),
                             np.append(profiles.cohesion, 0.8).astype(np.float32))
    assert [(x["kind"], x["story_id"]) for x in usecases.raise_alerts(app, fifth, profiles)] == [("new", 8)]


def test_alerts_per_rebuild_are_bounded_keeping_the_largest():
    from service.usecases.alerts import bounded

    raised = [{"kind": "new", "story_id": i, "size": s, "details": {}} for i, s in enumerate([5, 50, 7, 30])]
    kept = bounded(raised, 2)
    assert [a["story_id"] for a in kept] == [1, 3] and all(a["details"]["held_back"] == 2 for a in kept)


def test_history_reads_as_people_read_it(make_app, demo_days):
    """No story under story_min_size in any run; lineage once per link; events in words."""
    import sqlite3

    from service import usecases

    from ..conftest import ingest_copies

    files, _ = demo_days
    app = make_app()
    for f in files:
        ingest_copies(app, [f])
        usecases.rebuild(app, write_report_after=False)
    with sqlite3.connect(app.settings.sqlite_path) as c:
        assert c.execute("SELECT MIN(size) FROM cluster_snapshots").fetchone()[0] >= app.settings.story_min_size
        events = [e for (e,) in c.execute("SELECT events FROM cluster_life WHERE events IS NOT NULL")]
        story_ids = [s for (s,) in c.execute("SELECT story_id FROM story_current")]
    assert events and not any("[" in e or ">[" in e for e in events)
    assert any(e.startswith(("born", "grew")) for e in events)
    for sid in story_ids:
        detail = usecases.story_detail(app, sid)
        links = [(x["run_id"], x["parent_id"], x["child_id"]) for x in detail["lineage"]]
        assert len(links) == len(set(links))
        probs = [h["probability"] for h in detail["headlines"]]
        assert probs == sorted(probs, reverse=True)


def test_the_first_events_id_stays_on_it_when_a_second_event_of_the_franchise_arrives_in_bulk(make_app):
    """bench/synthetic.franchise_stream through the real pipeline (bundled model), a rebuild per day."""
    import collections

    from bench.synthetic import franchise_stream
    from service import usecases
    from service.domain import document_id

    from ..conftest import write_csv

    rows = franchise_stream(seed=2, days=5, bulk_day=3, trailer_per_day=12, bulk=80, others_per_day=5)
    truth = {document_id("guid:" + r["guid"]): r["story"] for r in rows}
    app = make_app()
    app.settings.inbox.mkdir(parents=True, exist_ok=True)
    first_trailer_id = None
    for day in sorted({r["published_at"][:10] for r in rows}):
        part = [{k: v for k, v in r.items() if k != "story"} for r in rows if r["published_at"].startswith(day)]
        usecases.ingest_file(app, write_csv(app.settings.inbox / f"{day}.csv", part))
        run = usecases.rebuild(app, write_report_after=False)
        ids, labels = app.runs.run_labels(run.run_id)
        events = collections.defaultdict(collections.Counter)
        for d, l in zip(ids.tolist(), labels.tolist()):
            if l >= 0:
                events[l][truth[d]] += 1
        if first_trailer_id is None:
            first_trailer_id = next(l for l, c in events.items() if c.most_common(1)[0][0] == "trailer")
        members = events[first_trailer_id]
        assert members.most_common(1)[0][0] == "trailer", (day, dict(members))
        assert members["gameshow"] <= 0.1 * sum(members.values()), (day, dict(members))


def test_the_new_story_rule_is_a_pure_function_beside_the_surge_rule():
    from service.clustering.alerts import NewStoryRule, StoryProfiles, fragment_home, worth_announcing

    rule = NewStoryRule(min_size=6)
    assert worth_announcing(10, 3, False, rule)
    assert not worth_announcing(10, 0, False, rule)  # no headline in the last window: no news
    assert not worth_announcing(5, 5, False, rule) and not worth_announcing(10, 3, True, rule)
    a, b = np.eye(8)[0], np.eye(8)[1]
    profiles = StoryProfiles(np.array([1, 2, 3]), np.stack([a, a, b]).astype(np.float32), np.full(3, 0.8, np.float32))
    assert fragment_home(2, 10, profiles, np.array([1]), {}, {1}, rule) == 1  # the same event as told story 1
    assert fragment_home(3, 10, profiles, np.array([1]), {}, {1}, rule) is None  # news
    assert fragment_home(3, 10, profiles, np.array([1]), {1: 5}, {1}, rule) == 1  # half its members sat in story 1
    assert fragment_home(3, 10, None, np.array([1]), {1: 4}, {1}, rule) is None


def test_a_new_story_of_arrivals_users_saw_placed_in_an_announced_story_is_its_fragment():
    from service.clustering.alerts import NewStoryRule, StoryProfiles, fragment_home, placed_homes

    # this run: docs 10-18 form new story 9; 8 of them were placed in announced story 7 as they arrived
    doc_ids = np.arange(20, dtype=np.int64)
    stories = np.where(doc_ids >= 10, 9, NOISE)[:19].tolist() + [NOISE]
    homes = placed_homes(doc_ids, np.array(stories), np.arange(10, 19), np.array([7] * 8 + [NOISE]))
    assert homes == {9: {7: 8}}
    rule = NewStoryRule(min_size=6)
    assert fragment_home(9, 9, None, np.array([7]), homes[9], {7}, rule) == 7
    # inside one topic a closer-than-a-story's-parts neighbour is the same story; across topics it is not
    a = np.eye(8)[0]
    near = 0.6 * a + 0.8 * np.eye(8)[1]  # cosine 0.6: under the same-event figure, over the same-topic one
    profiles = StoryProfiles(np.array([1, 2]), np.stack([a, near]).astype(np.float32), np.full(2, 0.9, np.float32))
    assert fragment_home(2, 10, profiles.with_topics({1: 5, 2: 5}), np.array([1]), {}, {1}, rule) == 1
    assert fragment_home(2, 10, profiles.with_topics({1: 5, 2: 6}), np.array([1]), {}, {1}, rule) is None


def test_only_a_story_announced_in_this_rebuild_hides_the_parts_born_with_it(make_app, tmp_path):
    """usecases.alerts' told_now: a part born with a larger story hides behind it only when that story was told in this
    rebuild; if the larger one was not told (no recent headline), the part is the news. A satellite born later (it
    leans on the told story, which lists it back: clustering.alerts.satellite_of) does not alert again."""
    from service import usecases
    from service.clustering.alerts import StoryLinks, StoryProfiles
    from service.domain import document_id

    from ..conftest import write_csv

    rng = np.random.default_rng(7)
    a, b, c, d = np.linalg.qr(rng.normal(size=(16, 4)))[0].T
    centres = {1: a, 2: b, 3: 0.6 * b + 0.8 * c, 4: 0.6 * b + 0.8 * d}  # 3 and 4: parts of 2 (cosine 0.6)
    guids = {1: range(10), 2: range(10, 30), 3: range(30, 38), 4: range(38, 46)}

    def stream(big_is_recent: bool) -> list[list[tuple[str, int]]]:
        app = make_app(home=tmp_path / f"recent-{big_is_recent}")
        app.settings.inbox.mkdir(parents=True, exist_ok=True)
        day = {1: "01", 2: "05" if big_is_recent else "01", 3: "05", 4: "05"}
        rows = [{"guid": f"g{i}", "title": f"headline number {i}", "published_at": f"2026-03-{day[s]}T10:{i:02d}"}
                for s, r in guids.items() for i in r]
        usecases.ingest_file(app, write_csv(app.settings.inbox / "a.csv", rows))
        doc_ids = np.sort(app.ledger.all_document_ids())
        story_of = {document_id(f"guid:g{i}"): s for s, r in guids.items() for i in r}
        full = np.array([story_of[int(x)] for x in doc_ids], np.int64)

        def rebuild(stories: list[int], born: list[int]) -> list[tuple[str, int]]:
            labels = np.where(np.isin(full, stories), full, NOISE)
            run_id = _commit(app, doc_ids, labels, born=born)
            ids = np.array(sorted(stories), np.int64)
            group = np.searchsorted(ids, labels)
            group[labels == NOISE] = -1
            # the kNN graph: every member lists its own story, a part's members list story 2 too; story 2's members
            # list story 4 (4 sits inside 2's spread) but not story 3
            rows_of = {s: np.flatnonzero(labels == s) for s in stories}
            indices = np.full((len(labels), 6), -1, np.int64)
            for s, rows in rows_of.items():
                for j, r in enumerate(rows):
                    own = [rows[(j + m) % len(rows)] for m in range(1, 4)]
                    other = []
                    if s in (3, 4):
                        other = [rows_of[2][(j + m) % len(rows_of[2])] for m in range(3)]
                    elif s == 2 and 4 in rows_of:
                        other = [rows_of[4][j % len(rows_of[4])]]
                    indices[r, : len(own) + len(other)] = own + other
            profiles = StoryProfiles(ids, np.stack([centres[s] for s in ids]).astype(np.float32), np.full(len(ids), 0.8, np.float32),
                                     links=StoryLinks.of_graph(group, indices, len(ids)))
            return [(x["kind"], x["story_id"]) for x in usecases.raise_alerts(app, run_id, profiles)]

        return [rebuild([1], [1]), rebuild([1, 2, 3], [2, 3]), rebuild([1, 2, 3, 4], [4])]

    # story 2 told now: its part 3, born with it and linked to it, is not told again; nor is its later satellite 4
    assert stream(big_is_recent=True) == [[], [("new", 2)], []]
    # story 2 has no recent headline, so it is not told: its part 3 is the news. Story 2 is still marked at its birth
    # (it had its chance, as every story born in a rebuild): a later satellite of it is its late part, not news
    assert stream(big_is_recent=False) == [[], [("new", 3)], []]
