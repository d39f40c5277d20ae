"""Changed-rows-only assignments: the same stream of rebuilds and arrivals written with every row (the full-row
schema) and with changed rows only; every view and reader answers the same, and the table grows by the changed
documents only. On SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from service.adapters.sql.dialect import views_of
from service.adapters.sql.alerts import SqlAlertHistory
from service.adapters.sql.engine import make_engine, upgrade
from service.adapters.sql.ledger import SqlLedger
from service.adapters.sql.reads import SqlStoryReads
from service.adapters.sql.runs import SqlRunHistory, probability_band
from service.domain import Headline

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"


@pytest.fixture(params=["sqlite", "postgresql"])
def two_databases(request, tmp_path):
    if request.param == "sqlite":
        return [f"sqlite:///{tmp_path / f'{name}.sqlite'}" for name in ("full", "changed")]
    new = request.getfixturevalue("postgres_server")
    return [new(), new()]


def assignment_stream(seed: int, n_docs: int = 600, n_runs: int = 7):
    """A stream shaped like news: documents arrive in order, a window of 300 slides over them, ~95% of the
    documents a run held keep their story and topic, a few revised documents are placed again."""
    rng = np.random.default_rng(seed)
    steps = []
    story = rng.integers(-1, 20, n_docs)
    prob = rng.uniform(0.0, 1.0, n_docs)
    for run in range(n_runs):
        hi = min(n_docs, 200 + run * 70)
        lo = max(0, hi - 300)
        in_run = np.arange(lo, hi)
        moved = rng.random(n_docs) < 0.04
        story = np.where(moved, rng.integers(-1, 22, n_docs), story)
        prob = np.where(rng.random(n_docs) < 0.05, rng.uniform(0, 1, n_docs), prob)
        prob = np.where(story < 0, 0.0, np.where(prob == 0, 0.7, prob))
        arrivals = np.arange(hi, min(n_docs, hi + 40))
        revised = rng.choice(in_run, 3, replace=False)
        steps.append((in_run, story[in_run].copy(), prob[in_run].copy(), arrivals, revised))
    return steps


class _History:
    """The SQL adapters of one database, as bootstrap wires them."""

    def __init__(self, engine, every_row: bool = False):
        self.engine = engine
        self.ledger, self.runs = SqlLedger(engine), SqlRunHistory(engine, every_row=every_row)
        self.stories, self.alerts = SqlStoryReads(engine), SqlAlertHistory(engine)


def play_history(url: str, every_row: bool, steps, hand_over: bool = False) -> tuple[_History, list[int]]:
    """hand_over: each commit is given the levels of a done run as the rebuild reads them before it clusters: the
    latest's at even runs, an older one's (not to be used) at odd runs."""
    engine = make_engine(url)
    upgrade(engine)
    repo = _History(engine, every_row=every_row)
    t0 = datetime(2026, 1, 1)
    n = max(int(s[0].max()) for s in steps) + 100
    headlines = [Headline(f"k{i}", f"headline {i}", "", None, t0 + timedelta(hours=i)) for i in range(n)]
    repo.ledger.add_documents(headlines, None, t0)
    ids = np.array([h.id for h in headlines], np.int64)  # the stream's document i is ids[i]
    run_ids = []
    for step, (in_run, stories, probs, arrivals, revised) in enumerate(steps):
        previous = None
        if hand_over and run_ids:
            previous = repo.runs.run_levels(run_ids[-1] if step % 2 == 0 else run_ids[0])
        run = repo.runs.start_run({})
        topics = np.where(stories >= 0, stories // 5, -1)
        alive = sorted(set(stories[stories >= 0].tolist()))
        order = np.argsort(ids[in_run])  # a rebuild's documents come in id order
        in_run, stories, probs, topics = in_run[order], stories[order], probs[order], topics[order]
        repo.runs.commit_run(run, doc_ids=ids[in_run], labels=stories, probabilities=probs, outlier_scores=1 - probs,
                        names={c: (f"story {c}", ["w"], []) for c in alive}, events=[], timings={}, params={}, topics=topics,
                        story_topics={c: c // 5 for c in alive}, topic_names={t: (f"topic {t}", ["w"], []) for t in {c // 5 for c in alive}},
                        previous=previous)
        placed = ids[np.r_[arrivals, revised]]
        labels = (np.r_[arrivals, revised] % 7).astype(np.int64)
        repo.runs.record_predictions(run, placed, labels, np.full(len(placed), 0.6), np.full(len(placed), 0.4), labels // 5)
        run_ids.append(run)
    return repo, run_ids


def _rows(engine, sql: str) -> list[tuple]:
    with engine.connect() as c:
        return sorted(tuple(r) for r in c.execute(text(sql)).fetchall())


def test_changed_rows_only_answers_as_the_full_rows_did(two_databases):
    steps = assignment_stream(seed=7)
    full, run_ids = play_history(two_databases[0], True, steps)
    changed, same_runs = play_history(two_databases[1], False, steps)
    assert run_ids == same_runs
    dialect = full.engine.dialect.name
    old = views_of(MIGRATIONS / "0004_stories_and_topics.py", dialect)  # the views as the full-row schema had them

    history_cols = "document_id, run_id, assigned_by, cluster_id, story_id, cluster_name, topic_id, topic_name"
    before = _rows(full.engine, f"SELECT {history_cols}, probability FROM ({old['document_history']}) v")
    assert before == _rows(full.engine, f"SELECT {history_cols}, probability FROM document_history")
    banded = lambda rows: [(*r[:-1], int(probability_band(r[-1]))) for r in rows]  # noqa: E731
    assert banded(before) == banded(_rows(changed.engine, f"SELECT {history_cols}, probability FROM document_history"))

    current_cols = "document_id, key, cluster_id, story_id, topic_id, assigned_by, run_id"
    before = _rows(full.engine, f"SELECT {current_cols} FROM ({old['document_current']}) v")
    assert before == _rows(full.engine, f"SELECT {current_cols} FROM document_current")
    assert before == _rows(changed.engine, f"SELECT {current_cols} FROM document_current")

    for run in run_ids:
        for read in ("run_labels", "run_topic_labels", "placed_labels"):
            a, b = getattr(full.runs, read)(run), getattr(changed.runs, read)(run)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), (read, run)
        a, b = full.stories.report_documents(run), changed.stories.report_documents(run)
        for field in ("ids", "story", "topic", "predicted"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), (field, run)
        assert full.stories.lineage(run).flows == changed.stories.lineage(run).flows
        ta, tb = full.alerts.story_times(run, None), changed.alerts.story_times(run, None)
        assert sorted(zip(*ta)) == sorted(zip(*tb))
    strip = lambda rows: [(r.key, r.cluster_id, r.topic_id, r.assigned_by, r.run_id, r.story_name) for r in rows]  # noqa: E731
    assert strip(full.stories.export_rows()) == strip(changed.stories.export_rows())
    some_story = int(full.runs.run_labels(run_ids[-1])[1].max())
    assert full.stories.story(some_story)["headlines"] == changed.stories.story(some_story)["headlines"]


def test_the_table_grows_by_the_changed_documents_only(two_databases):
    steps = assignment_stream(seed=11)
    changed, run_ids = play_history(two_databases[1], False, steps)
    with changed.engine.connect() as c:
        written = dict(c.execute(text("SELECT run_id, COUNT(*) FROM assignments WHERE assigned_by = 'rebuild' GROUP BY run_id")).all())
    kept_share = []
    for k in range(1, len(steps)):
        (prev_docs, prev_story, prev_prob, _, revised), (docs, story, prob, _, _) = steps[k - 1], steps[k]
        was = dict(zip(prev_docs.tolist(), zip(prev_story.tolist(), probability_band(prev_prob).tolist())))
        now = dict(zip(docs.tolist(), zip(story.tolist(), probability_band(prob).tolist())))
        same_story = [d for d in now if d in was and was[d][0] == now[d][0]]
        kept_share.append(len(same_story) / len([d for d in now if d in was]))
        changed_docs = [d for d in now if d not in was or was[d] != now[d] or d in set(revised.tolist())]
        assert written.get(run_ids[k], 0) <= len(changed_docs), k
        assert written.get(run_ids[k], 0) < len(docs) / 3
    assert min(kept_share) >= 0.9


def test_a_story_reborn_after_runs_standing_still_finds_its_earlier_home(tmp_path):
    """A story that sat still for more runs than the fragment check looks back has one old row per member (rebuilds
    write changed rows only): the check still finds where its members were, so the rebirth is no 'new' story."""
    from service.domain import NOISE, ClusterEvent, Headline, utcnow

    engine = make_engine(tmp_path / "h.sqlite")
    upgrade(engine)
    history = _History(engine)
    repo, alerts = history.runs, history.alerts
    history.ledger.add_documents([Headline(key=f"guid:g{i}", title=f"t{i}", description="", url=None, published_at=None) for i in range(40)],
                       None, utcnow())
    ids = np.sort(history.ledger.all_document_ids())

    def commit(labels, born):
        run = repo.start_run({})
        names = {int(c): (f"s{c}", [], []) for c in np.unique(labels[labels >= 0])}
        repo.commit_run(run, doc_ids=ids, labels=labels, probabilities=np.ones(len(ids)), outlier_scores=np.zeros(len(ids)),
                        names=names, events=[ClusterEvent("born", c, size_after=int((labels == c).sum())) for c in born],
                        timings={}, params={})
        return run

    labels = np.full(len(ids), NOISE, np.int64)
    labels[:10] = 1
    for k in range(5):
        commit(labels, [1] if k == 0 else [])
    reborn = labels.copy()
    reborn[:10] = 6
    run = commit(reborn, [6])
    assert alerts.earlier_homes(run, [6]) == {6: {1: 10}}


def test_a_runs_rows_are_read_from_its_oldest_held_row_with_the_same_answer(two_databases):
    """rebuild_rows_at reads from the run's rebuild_rows_from, not the first row ever written: the same rows as the
    read from the start, on a stream whose window slides (documents leave, rows are replaced), written both ways."""
    from service.adapters.sql.runs import rebuild_rows_at

    steps = assignment_stream(seed=5, n_docs=900, n_runs=9)
    for url, every_row in zip(two_databases, (True, False)):
        repo, run_ids = play_history(url, every_row, steps)
        with repo.engine.connect() as c:
            for run in run_ids:
                bounded, full = rebuild_rows_at(c, run), rebuild_rows_at(c, run, from_start=True)
                assert full.keys() == bounded.keys()
                for name in full:
                    assert np.array_equal(full[name], bounded[name]), (every_row, run, name)
            start = c.execute(text(f"SELECT rebuild_rows_from FROM runs WHERE id = {run_ids[-1]}")).scalar_one()
            before = c.execute(text(f"SELECT COUNT(*) FROM assignments WHERE assigned_by = 'rebuild' AND id < {start}")).scalar_one()
        assert before > 0  # the last run's read skips the rows of documents that left and of replaced rows


def test_a_commit_given_the_previous_runs_levels_writes_what_it_writes_reading_them(two_databases):
    """commit_run(previous=run_levels(...)) skips reading the previous run's rows again; the rows, exits and each run's
    rebuild_rows_from are those of a commit that reads them, and levels of another run than the previous are ignored."""
    steps = assignment_stream(seed=11)
    reading, run_ids = play_history(two_databases[0], False, steps)
    handed, same_runs = play_history(two_databases[1], False, steps, hand_over=True)
    assert run_ids == same_runs
    for sql in ("SELECT id, document_id, run_id, assigned_by, cluster_id, topic_id, probability, outlier_score FROM assignments",
                "SELECT document_id, run_id FROM assignment_exits", "SELECT id, rebuild_rows_from FROM runs"):
        assert _rows(reading.engine, sql) == _rows(handed.engine, sql), sql


@pytest.mark.parametrize("n_docs", [40, 3_000])  # looked up by id / read in one scan of the table
def test_document_text_columns_are_in_the_ids_order(database_url, n_docs):
    engine = make_engine(database_url)
    upgrade(engine)
    ledger = SqlLedger(engine)
    t0 = datetime(2026, 1, 1)
    heads = [Headline(f"k{i}", f"title {i}", f"about {i}" if i % 3 else "", None, t0) for i in range(n_docs)]
    ledger.add_documents(heads, None, t0)
    ids = np.sort(np.array([h.id for h in heads], np.int64))
    by_id = ledger.document_texts(ids)
    assert ledger.document_text_columns(ids) == ([by_id[i][0] for i in ids.tolist()], [by_id[i][1] for i in ids.tolist()])
    some = np.r_[ids[::-3], [12345]]  # any order, and an id without a row
    titles, descriptions = ledger.document_text_columns(some)
    assert titles == [by_id.get(i, ("", ""))[0] for i in some.tolist()]
    assert descriptions == [by_id.get(i, ("", ""))[1] for i in some.tolist()]
    window = ids[::-1][: max(1, n_docs * 5 // 6)]  # most of the table (a window): read in one scan, kept only for its ids
    titles, descriptions = ledger.document_text_columns(window)
    assert titles == [by_id[i][0] for i in window.tolist()] and descriptions == [by_id[i][1] for i in window.tolist()]


@pytest.mark.parametrize("joiner_in_a_text", [False, True])
def test_a_whole_table_read_joined_in_sqlite_equals_reading_row_by_row(tmp_path, monkeypatch, joiner_in_a_text):
    """SQLite joins each text column of a block of rows into one string (ledger._whole_text_columns): the columns are
    those of a row-by-row read, over blocks of rowids with gaps, empty texts and ones holding separators, newlines and
    commas; a text holding the joining character itself is read row by row."""
    import service.adapters.sql.ledger as ledger_module

    monkeypatch.setattr(ledger_module, "TEXT_CHUNK", 700)  # several blocks
    engine = make_engine(f"sqlite:///{tmp_path / 'history.sqlite'}")
    upgrade(engine)
    ledger = SqlLedger(engine)
    t0 = datetime(2026, 1, 1)
    odd = ["", ",", "a,b\nc", " - Reuters", "\x02", "x\x1fy" if joiner_in_a_text else "x y", "日本語"]
    heads = [Headline(f"k{i}", f"title {i} {odd[i % len(odd)]}", odd[(i * 3) % len(odd)], None, t0) for i in range(3_000)]
    ledger.add_documents(heads, None, t0)
    with engine.begin() as c:  # gaps in the rowids
        c.execute(text("DELETE FROM documents WHERE rowid % 97 = 5"))
    ids = np.sort(np.array([h.id for h in heads], np.int64))
    by_id = ledger.document_texts(ids)
    assert len(by_id) < len(ids)
    assert (ledger._whole_text_columns(ids) is None) == joiner_in_a_text  # white-box: which path read it
    for asked in (ids, ids[::-1][: len(ids) * 5 // 6]):  # the whole table, and a window of it
        titles, descriptions = ledger.document_text_columns(asked)
        assert titles == [by_id.get(i, ("", ""))[0] for i in asked.tolist()]
        assert descriptions == [by_id.get(i, ("", ""))[1] for i in asked.tolist()]
    if not joiner_in_a_text:  # a window's read holds its own rows only, not the whole table's texts
        window = ids[:2_100]  # past SCAN_MIN, fewer than the table holds
        held = ledger._whole_text_columns(window)[0]
        assert sorted(held.tolist()) == sorted(set(window.tolist()) & set(by_id))
