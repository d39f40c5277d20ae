"""History in SQL on a real database produced by the pipeline: the README's queries, lineage consistency, the window."""

from __future__ import annotations

import sqlite3

import pytest

from service import usecases

from ..conftest import ingest_copies, readme_queries


@pytest.fixture(scope="module")
def history_db(tmp_path_factory, embedder, demo_days):
    """The demo stream, a rebuild after each day: a real history to query."""
    from service.bootstrap import App
    from service.config import load_settings

    files, truth = demo_days
    home = tmp_path_factory.mktemp("history")
    app = App(load_settings(home=home, env={}), embedder=embedder)
    runs = []
    for f in files:
        ingest_copies(app, [f])
        runs.append(usecases.rebuild(app, write_report_after=False))
    yield app, runs
    app.close()


def test_readme_queries_run_and_answer(history_db):
    app, runs = history_db
    queries = readme_queries()
    assert len(queries) >= 5
    with sqlite3.connect(app.settings.sqlite_path) as c:
        c.execute("PRAGMA query_only = 1")
        for q in queries:
            q = q.replace(":cluster_id", str(_some_cluster(c))).replace(":since", "'2000-01-01'")
            rows = c.execute(q.replace(":topic_id", str(c.execute("SELECT MAX(topic_id) FROM topic_life").fetchone()[0]))).fetchall()
            assert rows, f"README query returned nothing:\n{q}"


def _some_cluster(c) -> int:
    """A cluster with a past: a child of some split, merge or birth out of an older cluster."""
    return c.execute("SELECT child_id FROM cluster_lineage ORDER BY run_id DESC LIMIT 1").fetchone()[0]


def test_sqlite_is_in_wal_mode(history_db):
    app, _ = history_db
    with sqlite3.connect(app.settings.sqlite_path) as c:
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_every_vanished_id_has_an_event(history_db):
    app, runs = history_db
    with sqlite3.connect(app.settings.sqlite_path) as c:
        for prev, cur in zip(runs, runs[1:]):
            before = {r[0] for r in c.execute("SELECT cluster_id FROM cluster_snapshots WHERE run_id=?", (prev.run_id,))}
            after = {r[0] for r in c.execute("SELECT cluster_id FROM cluster_snapshots WHERE run_id=?", (cur.run_id,))}
            explained = {r[0] for r in c.execute(
                "SELECT cluster_id FROM cluster_events WHERE run_id=? AND level='story' AND kind IN ('died','merged','split')", (cur.run_id,))}
            assert before - after <= explained
            born = {r[0] for r in c.execute("SELECT cluster_id FROM cluster_events WHERE run_id=? AND level='story' AND kind='born'", (cur.run_id,))}
            assert after - before == born
        dead = {r[0] for r in c.execute("SELECT id FROM clusters WHERE status='dead'")}
        alive_now = {r[0] for r in c.execute("SELECT cluster_id FROM cluster_snapshots WHERE run_id=?", (runs[-1].run_id,))}
        assert not dead & alive_now


def test_names_are_kept_per_run(history_db):
    app, runs = history_db
    with sqlite3.connect(app.settings.sqlite_path) as c:
        n = c.execute("SELECT COUNT(DISTINCT run_id) FROM cluster_snapshots").fetchone()[0]
        reps = c.execute("SELECT representatives, keywords FROM cluster_snapshots LIMIT 1").fetchone()
    assert n == len([r for r in runs if r.stories]) and reps[0].startswith("[") and reps[1].startswith("[")


def test_time_window_clusters_only_recent_documents(make_app, demo_days):
    files, _ = demo_days
    app = make_app(window_days=2.0)
    ingest_copies(app, files)
    r = usecases.rebuild(app, write_report_after=False)
    total = app.stories.status().documents
    assert 0 < r.documents < total
    ids, _ = app.runs.run_labels(r.run_id)
    times = app.ledger.document_times(app.ledger.all_document_ids())
    newest = max(p for p, _ in times.values())
    assert all((newest - times[int(i)][0]).total_seconds() <= 2 * 86400 + 1 for i in ids)


def test_every_story_sits_in_exactly_one_topic_and_both_levels_are_queryable(history_db):
    app, runs = history_db
    last = runs[-1].run_id
    with sqlite3.connect(app.settings.sqlite_path) as c:
        per_story = c.execute(
            "SELECT cluster_id, COUNT(DISTINCT topic_id) FROM run_assignments WHERE run_id=? AND assigned_by='rebuild' AND cluster_id >= 0 "
            "GROUP BY cluster_id", (last,)).fetchall()
        snapshot_topic = dict(c.execute("SELECT cluster_id, topic_id FROM cluster_snapshots WHERE run_id=?", (last,)).fetchall())
        doc_topic = dict(c.execute("SELECT cluster_id, MIN(topic_id) FROM run_assignments WHERE run_id=? AND assigned_by='rebuild' "
                                   "AND cluster_id >= 0 GROUP BY cluster_id", (last,)).fetchall())
        stories = c.execute("SELECT story_id, title, topic_id, topic_name, size FROM story_current").fetchall()
        topics = c.execute("SELECT topic_id, name, size, n_stories FROM topic_current").fetchall()
        life = c.execute("SELECT topic_id, run_id, size FROM topic_life").fetchall()
        c.execute("SELECT run_id, story_id, from_topic_id, to_topic_id FROM story_moves").fetchall()
        current = c.execute("SELECT story_id, topic_id FROM document_current WHERE story_id >= 0").fetchall()
    assert per_story and all(n == 1 for _, n in per_story)
    assert snapshot_topic == doc_topic
    assert len(stories) == runs[-1].stories and all(title for _, title, *_ in stories)
    assert sum(n for *_, n in topics) == sum(1 for s in stories if s[2] >= 0) and life
    assert all(t is not None for _, t in current)


def test_an_old_home_upgrades_in_place(tmp_path):
    """A home written before topics existed (schema 0003) opens with the current code and keeps its history."""
    from alembic import command
    from alembic.config import Config

    from service.adapters.sql.engine import MIGRATIONS, make_engine, upgrade

    engine = make_engine(tmp_path / "old.sqlite")
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO runs (id, started_at, finished_at, status) VALUES (1, '2026-01-01', '2026-01-01', 'done')")
        conn.exec_driver_sql("INSERT INTO clusters VALUES (7, 1, 1, '2026-01-01', '2026-01-01', 'alive')")
        conn.exec_driver_sql("INSERT INTO cluster_snapshots VALUES (1, 7, 12, 'old story', '[]', '[]')")
        conn.exec_driver_sql("INSERT INTO cluster_events (run_id, at, kind, cluster_id, parents, children, size_before, size_after) "
                             "VALUES (1, '2026-01-01', 'born', 7, '[]', '[]', 0, 12)")
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT story_id, title, size, topic_id FROM story_current").fetchall() == [(7, "old story", 12, None)]
        assert conn.exec_driver_sql("SELECT level FROM cluster_events").fetchall() == [("story",)]
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM cluster_life").scalar() == 1
    engine.dispose()
