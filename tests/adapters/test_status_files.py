"""The serving processes' status files: named in one place (state.status_path), read by `status` from there.

A shared home's workers each publish service-WORKER.json; `status` used to read only service.json, so on a shared
home it showed no worker's files waiting, backoff, API address or running rebuild.
"""

from __future__ import annotations

import numpy as np

from service import usecases
from service.state import StatusBoard, status_path


def _publish(path, **data):
    board = StatusBoard(path)
    board.publish(data)
    board.close()


def test_status_reads_every_workers_file_on_a_shared_home(make_app):
    app = make_app()
    state = app.settings.state_dir
    _publish(status_path(state, "w1"), pid=1, api_url="http://127.0.0.1:8001",
             files_waiting={"a.csv": {"state": "retrying", "attempts": 2, "reason": "database is locked"}})
    _publish(status_path(state, "w2"), pid=2, rebuild_running_since="2026-12-04 10:00:00",
             last_error={"at": "2026-12-04 09:00:00", "what": "vector store unavailable: down"},
             files_waiting={"b.csv": {"state": "retrying", "attempts": 1, "reason": "disk full"}})
    st = usecases.status(app, serving_pid=-1)  # a shared home's workers hold no lock: -1 says "some are alive"
    assert {w["file"] for w in st["files_waiting"]} == {"a.csv", "b.csv"}
    assert st["api_url"] == "http://127.0.0.1:8001"
    assert st["rebuild_running_since"] == "2026-12-04 10:00:00"
    assert st["last_error"]["what"] == "vector store unavailable: down"


def test_status_reads_the_one_servers_file(make_app):
    app = make_app()
    _publish(status_path(app.settings.state_dir), pid=7, api_url="http://127.0.0.1:9000", rebuild_backoff_until="2026-12-04 11:00:00")
    st = usecases.status(app, serving_pid=7)
    assert st["api_url"] == "http://127.0.0.1:9000" and st["rebuild_backoff_until"] == "2026-12-04 11:00:00"
    assert usecases.status(app)["api_url"] is None  # nobody serving: the file of a stopped server is not read


def test_a_damaged_run_file_reads_as_missing_and_stays(make_app):
    """A read only reads: a run file cut short is None to its readers and is left for the next rebuild to replace."""
    app = make_app()
    app.settings.state_dir.mkdir(parents=True, exist_ok=True)
    app.run_files.save_layout(3, np.arange(4), np.zeros((4, 2), np.float32))
    path = next(app.settings.state_dir.glob("layout-3.npz"))
    path.write_bytes(path.read_bytes()[:50])
    assert app.run_files.load_layout(3) is None and path.exists()


def test_the_schedules_two_counts_agree_with_the_status(database_url):
    """rebuild_due reads just (documents, arrived since the latest rebuild); the status counts the same."""
    from datetime import timedelta

    from service.adapters.sql.engine import make_engine, upgrade
    from service.adapters.sql.ledger import SqlLedger
    from service.adapters.sql.reads import SqlStoryReads
    from service.adapters.sql.runs import SqlRunHistory
    from service.domain import Headline, utcnow

    engine = make_engine(database_url)
    upgrade(engine)
    ledger, runs, reads = SqlLedger(engine), SqlRunHistory(engine), SqlStoryReads(engine)
    try:
        assert runs.arrival_counts() == (0, 0)
        t0 = utcnow() - timedelta(hours=1)
        ledger.add_documents([Headline(f"guid:a{i}", f"a {i}", "", None, None) for i in range(5)], None, t0)
        assert runs.arrival_counts() == (5, 5)  # no rebuild yet: everything is pending
        ids = np.sort(ledger.all_document_ids())
        run = runs.start_run({})
        runs.commit_run(run, doc_ids=ids, labels=np.zeros(5, np.int64), probabilities=np.ones(5), outlier_scores=np.zeros(5),
                        names={0: ("a", [], [])}, events=[], timings={}, params={})
        ledger.add_documents([Headline(f"guid:b{i}", f"b {i}", "", None, None) for i in range(2)], None, utcnow() + timedelta(seconds=1))
        st = reads.status()
        assert runs.arrival_counts() == (7, 2) == (st.documents, st.pending_arrivals)
    finally:
        engine.dispose()
