"""The console script as a user runs it: serve picks up dropped files, reads work beside it, SIGTERM stops it."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ..conftest import CLI, STORY_ROWS as ROWS, env_for, wait_for, write_csv


def done_runs(home: Path) -> int:
    db = home / "newsclust.sqlite"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as c:
        try:
            return c.execute("SELECT COUNT(*) FROM runs WHERE status='done'").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


@pytest.mark.slow
def test_serve_picks_up_dropped_files_and_stops_on_sigterm(tmp_path):
    home = tmp_path / "home"
    env = env_for(NEWSCLUST_REBUILD_INTERVAL_S="2", NEWSCLUST_STABLE_WAIT_S="0.3")
    (home / "inbox").mkdir(parents=True)
    early = write_csv(home / "inbox" / "before-start.csv", ROWS[:3])
    proc = subprocess.Popen([*CLI, "--home", str(home), "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: (home / "processed" / early.name).exists(), what="the file present at start")
        # the recommended way to drop: write under a temporary name, then rename into the inbox
        part = write_csv(home / "inbox" / "later.csv.part", ROWS[3:])
        time.sleep(1.0)
        assert part.exists(), "a .part file must not be taken"
        part.rename(home / "inbox" / "later.csv")
        wait_for(lambda: (home / "processed" / "later.csv").exists(), what="the dropped file")
        wait_for(lambda: done_runs(home) >= 1, what="a scheduled rebuild")

        # reads work while serve owns the home; a second writer hands its file over instead
        out = subprocess.run([*CLI, "--home", str(home), "status"], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "documents" in out.stdout
        extra = write_csv(tmp_path / "handed.csv", [{"guid": "h1", "title": "Volcano erupts again", "description": ""}])
        out = subprocess.run([*CLI, "--home", str(home), "ingest", str(extra)], env=env, capture_output=True, text=True, timeout=60)
        assert "handed 1 file(s) to its inbox" in out.stdout and "1 stored" in out.stdout, out.stdout  # it waited for the outcome
        assert any(p.name.startswith("handed.") for p in (home / "processed").iterdir())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, output
    assert "stopped" in output
    with sqlite3.connect(home / "newsclust.sqlite") as c:
        assert c.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 7


@pytest.mark.slow
def test_demo_command_ends_with_a_report(tmp_path):
    home = tmp_path / "home"
    proc = subprocess.Popen([*CLI, "--home", str(home), "demo", "--days", "4", "--rebuild-every", "2"], env=env_for(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    stamped = [(time.monotonic(), "start")] + [(time.monotonic(), line) for line in proc.stdout]
    assert proc.wait(timeout=600) == 0, "".join(line for _, line in stamped)
    output = "".join(line for _, line in stamped[1:])
    assert "report:" in output
    # never silent for long (a step past a few seconds says what it does), and each alert told once
    gaps = [(b[0] - a[0], b[1]) for a, b in zip(stamped, stamped[1:])]
    assert max(gaps)[0] < 10.5, max(gaps)
    alerts = [line.split("ALERT", 1)[1] for line in output.splitlines() if "ALERT" in line]  # a log line would repeat one
    assert len(alerts) == len(set(alerts)), alerts
    again = subprocess.run([*CLI, "--home", str(home), "demo", "--days", "1"], env=env_for(), capture_output=True, text=True, timeout=600)
    assert "use a new home" in again.stdout
    page = (home / "reports" / "latest.html").read_text()
    assert "plotly.min.js" in page and (home / "reports" / "plotly.min.js").exists()
    assert not re.search(r'src="https?://', page)  # works offline: no script from a CDN (base64 data can spell "cdn")
    export = subprocess.run([*CLI, "--home", str(home), "export"], env=env_for(), capture_output=True, text=True, timeout=120)
    lines = export.stdout.strip().splitlines()
    assert lines[0] == "guid,title,story_id,story_name,topic_id,topic_name,probability,outlier_score,assigned_by,run_id,cluster_id"
    assert len(lines) > 100
