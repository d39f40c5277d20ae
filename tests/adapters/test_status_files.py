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
