"""Every request to a running serve is answered: hand-offs under unique names, rebuilds asked mid-rebuild, outages retried."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from ..conftest import CLI, env_for, start_serve, stop_serve, wait_for, write_csv

pytestmark = pytest.mark.slow

TOPICS = ["Wildfire spreads near the coast", "Central bank lifts rates", "Striking dock workers reach a deal", "Comet visible tonight"]


def rows(prefix: str, n: int) -> list[dict]:
    return [{"guid": f"{prefix}{i}", "title": f"{TOPICS[i % len(TOPICS)]}: update {prefix}{i}", "description": ""} for i in range(n)]


def cli(home: Path, *args: str, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--home", str(home), *args], env=env_for(**env), capture_output=True, text=True, timeout=timeout)


def live_status(home: Path) -> dict:
    from service.state import read_status, status_path

    return read_status(status_path(home / "state")) or {}


def test_serve_answers_every_request_and_retries_through_an_outage(tmp_path):
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    proc = start_serve(home, NEWSCLUST_REBUILD_INTERVAL_S="3600", NEWSCLUST_FAILPOINT="outages", NEWSCLUST_RETRY_FIRST_S="0.5",
                       NEWSCLUST_RETRY_MAX_S="2")
    try:
        # three files with one name, from three folders: each is ingested, and the command waits for each outcome
        sources = []
        for i, folder in enumerate("abc"):
            (tmp_path / folder).mkdir()
            sources.append(str(write_csv(tmp_path / folder / "x.csv", rows(folder, 20))))
        out = cli(home, "ingest", *sources)
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.count("20 stored") == 3, out.stdout

        # a rebuild asked while one runs gets a run of its own, after it
        first = subprocess.Popen([*CLI, "--home", str(home), "rebuild"], env=env_for(), stdout=subprocess.PIPE, text=True)
        wait_for(lambda: live_status(home).get("rebuild_running_since"), timeout=120, what="the first rebuild to start")
        second = cli(home, "rebuild")
        first_out, _ = first.communicate(timeout=300)
        assert first.returncode == 0 and second.returncode == 0, (first_out, second.stdout, second.stderr)
        run_1 = int(first_out.split("rebuild run ")[1].split(":")[0])
        run_2 = int(second.stdout.split("rebuild run ")[1].split(":")[0])
        assert run_2 > run_1
        third = cli(home, "rebuild")  # the next run: no rebuild set off by the last request while its answer was written
        assert int(third.stdout.split("rebuild run ")[1].split(":")[0]) == run_2 + 1, third.stdout

        # the vector store goes away: a good file waits in the inbox (status says why), then goes through
        switch = home / "faults" / "vector-store-down"
        switch.parent.mkdir()
        switch.touch()
        handed = cli(home, "ingest", "--no-wait", str(write_csv(tmp_path / "during.csv", rows("d", 5))))
        assert handed.returncode == 0 and "handed 1 file(s)" in handed.stdout
        wait_for(lambda: any("unreachable" in (w.get("reason") or "") for w in live_status(home).get("files_waiting", {}).values()),
                 timeout=60, what="the file to be reported as retrying")
        status = cli(home, "status")
        assert "retrying" in status.stdout and "unreachable" in status.stdout, status.stdout
        switch.unlink()
        wait_for(lambda: any(p.name.startswith("during.") for p in (home / "processed").iterdir()), timeout=60, what="the retried file")
        assert not any((home / "failed").iterdir())
    finally:
        output = stop_serve(proc)
    assert "Traceback" not in output, output
    with sqlite3.connect(home / "newsclust.sqlite") as c:
        assert c.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 65
        runs = c.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        files = c.execute("SELECT COUNT(*), SUM(attempts > 1) FROM ingested_files").fetchone()
    assert runs <= 7, runs  # three asked, plus the early rebuilds that arrivals pulled forward (no clustering yet)
    assert files[0] == 4 and files[1] >= 1
