"""One suite, both databases: migrations, the pipeline, alerts and the README's SQL on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import io

import numpy as np
from sqlalchemy import create_engine, inspect, text

from service import usecases

from ..conftest import ingest_copies, readme_queries


def test_migrations_go_up_down_and_up_again(database_url):
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from service.adapters.sql.engine import MIGRATIONS, make_engine, upgrade

    views = {"document_current", "story_current", "topic_current", "cluster_lineage", "story_moves", "alert_feed"}
    engine = make_engine(database_url)
    upgrade(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"documents", "runs", "clusters", "assignments"} <= tables and views <= set(inspect(engine).get_view_names())
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    down = inspect(engine)
    assert set(down.get_table_names()) <= {"alembic_version"} and not views & set(down.get_view_names())
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) == tables
    with engine.connect() as conn:
        for view in sorted(views):
            assert conn.execute(text(f"SELECT * FROM {view}")).fetchall() == []  # a fresh history: every view reads, empty
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == ScriptDirectory.from_config(cfg).get_current_head()
    engine.dispose()


def test_the_pipeline_alerts_reads_and_readme_queries_on_both(make_app, demo_days, database_url):
    files, _ = demo_days
    app = make_app(database_url=database_url)
    for f in files[:-1]:
        ingest_copies(app, [f])
        r = usecases.rebuild(app, write_report_after=False)
    assert r.stories >= 5 and r.topics >= 1
    (last,) = ingest_copies(app, files[-1:])
    assert last.state == "processed" and last.predicted == last.stored > 0
    out = io.StringIO()
    assert usecases.export_csv(app, out) == len(app.ledger.all_document_ids())
    st = usecases.status(app)
    assert st["documents"] > 0 and st["last_rebuild_run"] == r.run_id
    ids, stories = app.runs.run_labels(r.run_id)
    story_id = int(stories[stories >= 0][0])
    assert usecases.story_detail(app, story_id)["headlines"]
    topic_id = app.runs.story_topics(r.run_id)[story_id]
    assert usecases.topic_detail(app, topic_id)["stories"]
    page = usecases.write_report(app, r.run_id)
    assert page.exists()

    engine = create_engine(database_url)
    with engine.connect() as c:
        lineage_child = c.execute(text("SELECT child_id FROM cluster_lineage ORDER BY run_id DESC LIMIT 1")).scalar()
        some_topic = c.execute(text("SELECT MAX(topic_id) FROM topic_life")).scalar()
        for q in readme_queries():
            q = q.replace(":cluster_id", str(lineage_child)).replace(":topic_id", str(some_topic)).replace(":since", "'2000-01-01'")
            assert c.execute(text(q)).fetchall(), f"README query returned nothing on {engine.dialect.name}:\n{q}"
    engine.dispose()
    assert np.all(np.diff(ids) > 0)
