"""History in SQL on a real database produced by the pipeline: the README's queries, lineage consistency, the window."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from service import usecases

from .conftest import ingest_copies

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture(scope="module")
def history_db(tmp_path_factory, embedder, demo_days):
    """The demo stream, a rebuild after each day: a real history to query."""
    from service.bootstrap import build_app
    from service.config import load_settings

    files, truth = demo_days
    home = tmp_path_factory.mktemp("history")
    app = build_app(load_settings(home=home, env={}), embedder=embedder)
    runs = []
    for f in files:
        ingest_copies(app, [f])
        runs.append(usecases.rebuild(app, write_report_after=False))
    yield app, runs
    app.close()


def readme_queries() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), flags=re.S)
    queries = []
    for block in blocks:
        queries += [q.strip() for q in block.split(";") if q.strip() and not all(l.strip().startswith("--") for l in q.strip().splitlines())]
    return queries


def test_readme_queries_run_and_answer(history_db):
    app, runs = history_db
    queries = readme_queries()
    assert len(queries) >= 5
    with sqlite3.connect(app.settings.sqlite_path) as c:
        c.execute("PRAGMA query_only = 1")
        for q in queries:
            rows = c.execute(q.replace(":cluster_id", str(_some_cluster(c))).replace(":since", "'2000-01-01'")).fetchall()
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
                "SELECT cluster_id FROM cluster_events WHERE run_id=? AND kind IN ('died','merged','split')", (cur.run_id,))}
            assert before - after <= explained
            born = {r[0] for r in c.execute("SELECT cluster_id FROM cluster_events WHERE run_id=? AND kind='born'", (cur.run_id,))}
            assert after - before == born
        dead = {r[0] for r in c.execute("SELECT id FROM clusters WHERE status='dead'")}
        alive_now = {r[0] for r in c.execute("SELECT cluster_id FROM cluster_snapshots WHERE run_id=?", (runs[-1].run_id,))}
        assert not dead & alive_now


def test_names_are_kept_per_run(history_db):
    app, runs = history_db
    with sqlite3.connect(app.settings.sqlite_path) as c:
        n = c.execute("SELECT COUNT(DISTINCT run_id) FROM cluster_snapshots").fetchone()[0]
        reps = c.execute("SELECT representatives, keywords FROM cluster_snapshots LIMIT 1").fetchone()
    assert n == len([r for r in runs if r.clusters]) and reps[0].startswith("[") and reps[1].startswith("[")


def test_time_window_clusters_only_recent_documents(make_app, demo_days):
    files, _ = demo_days
    app = make_app(window_days=2.0)
    ingest_copies(app, files)
    r = usecases.rebuild(app, write_report_after=False)
    total = app.repo.count_documents()
    assert 0 < r.documents < total
    ids, _ = app.repo.run_labels(r.run_id)
    times = app.repo.document_times(app.repo.all_document_ids())
    newest = max(p for p, _ in times.values())
    assert all((newest - times[int(i)][0]).total_seconds() <= 2 * 86400 + 1 for i in ids)
