"""Ask and be told: search finds headlines (also beside a running serve); new and surging stories raise alerts once."""

from __future__ import annotations

import csv
import http.server
import json
import random
import socket
import sqlite3
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from service import usecases
from service.clustering.alerts import SurgeRule, story_paces
from service.demo import THEMES

from ..conftest import ingest_copies


def headlines(rng: random.Random, theme: str, n: int, start: datetime, span_h: float, tag: str) -> list[dict]:
    subjects, actions, details = THEMES[theme]
    rows = []
    for i in range(n):
        at = start + timedelta(hours=span_h * (i + rng.random()) / n)
        rows.append({"guid": f"{tag}-{theme}-{i}", "title": f"{rng.choice(subjects)} {rng.choice(actions)}",
                     "description": rng.choice(details), "published_at": at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    return rows


def write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["guid", "title", "description", "published_at"])
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: r["published_at"]))
    return path


STEADY = ("rates", "election", "chips", "oil", "tariffs")


def stream(folder: Path) -> list[Path]:
    """Three quiet days (five steady stories, one slow one), then half a day in which one story appears
    (lunar, 12 headlines) and the slow one surges (quake, 15 headlines in the last six hours)."""
    rng = random.Random(7)
    t0 = datetime(2026, 3, 1)
    files = []
    for day in range(3):
        start = t0 + timedelta(days=day)
        rows = [r for th in STEADY for r in headlines(rng, th, 12, start, 24, f"d{day}")]
        rows += headlines(rng, "quake", 3, start, 24, f"d{day}")
        files.append(write(folder / f"day{day}.csv", rows))
    start = t0 + timedelta(days=3)
    rows = [r for th in STEADY for r in headlines(rng, th, 6, start, 12, "d3")]
    rows += headlines(rng, "quake", 15, start + timedelta(hours=6.5), 5.5, "d3")
    rows += headlines(rng, "lunar", 12, start + timedelta(hours=2), 10, "d3")
    files.append(write(folder / "day3.csv", rows))
    return files


class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_surge_rule_on_plain_arrays():
    day = 86400.0
    ids = np.array([1] * 30 + [2] * 10 + [2] * 12)
    times = np.concatenate([np.linspace(0, 3 * day, 30), np.linspace(0, 2.7 * day, 10), np.linspace(3 * day - 3600, 3 * day, 12)])
    paces = {p.story_id: p for p in story_paces(ids, times, SurgeRule())}
    assert not paces[1].surging and paces[2].surging and paces[2].recent == 12


def test_a_new_story_and_a_surge_raise_exactly_those_alerts_once(make_app, tmp_path):
    import feedparser

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Hook.received = []
    app = make_app(webhook_url=f"http://127.0.0.1:{port}/hook")
    raised = []
    try:
        for f in stream(tmp_path):
            ingest_copies(app, [f])
            raised += usecases.rebuild(app, write_report_after=False).alerts
        raised += usecases.rebuild(app, write_report_after=False).alerts  # nothing new: nothing more
        app.webhook.close(wait_s=10)
    finally:
        server.shutdown()
    kinds = sorted((a["kind"], a["title"].split()[0]) for a in raised)
    assert [k for k, _ in kinds] == ["new", "surging"], raised
    titles = {a["kind"]: a["title"] for a in raised}
    assert "Aurora" in titles["new"] or "lunar" in titles["new"].lower() or "Moon" in titles["new"], titles
    assert any(w in titles["surging"] for w in ("Severin", "quake", "Earthquake", "Aftershocks", "Rescue")), titles
    with sqlite3.connect(app.settings.sqlite_path) as c:
        assert c.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 2
        assert c.execute("SELECT COUNT(*) FROM alert_feed").fetchone()[0] == 2
    feed = feedparser.parse(str(app.settings.reports_dir / "alerts.xml"))
    assert not feed.bozo, feed.bozo_exception
    assert len(feed.entries) == 2 and {e.tags[0].term for e in feed.entries} == {"new", "surging"}
    assert sorted(p["kind"] for p in Hook.received) == ["new", "surging"]


def test_a_dead_webhook_neither_blocks_nor_crashes(make_app, tmp_path):
    from service.adapters.notify import Webhook

    dead = Webhook(f"http://127.0.0.1:{free_port()}/nobody", timeout_s=0.5, tries=3, first_backoff_s=0.2)
    t0 = time.monotonic()
    for i in range(5):
        dead.post({"id": i, "kind": "new"})
    assert time.monotonic() - t0 < 0.5  # posting only queues
    dead.close(wait_s=0.1)  # gives up waiting at once; the thread is a daemon


def test_a_headline_finds_itself_first_and_story_and_topic_answer(make_app, demo_days):
    files, _ = demo_days
    app = make_app()
    ingest_copies(app, files[:3])
    run = usecases.rebuild(app, write_report_after=False)
    with sqlite3.connect(app.settings.sqlite_path) as c:
        doc_id, story_id, topic_id = c.execute(
            "SELECT document_id, story_id, topic_id FROM document_current WHERE story_id >= 0 ORDER BY document_id LIMIT 1").fetchone()
        title, description = c.execute("SELECT title, description FROM documents WHERE id = ?", (doc_id,)).fetchone()
    hits = usecases.search(app, f"{title}. {description}" if description else title, k=5)  # the text that was embedded
    assert hits[0]["document_id"] == doc_id and hits[0]["similarity"] > 0.99 and hits[0]["story_id"] == story_id
    assert [h["similarity"] for h in hits] == sorted((h["similarity"] for h in hits), reverse=True)
    story = usecases.story_detail(app, story_id)
    assert story["title"] and story["topic_id"] == topic_id and len(story["headlines"]) == story["size"]
    times = [h["published_at"] for h in story["newest"]]
    assert times == sorted(times, reverse=True)
    core = [h["probability"] for h in story["headlines"]]  # core first: by membership
    assert core == sorted(core, reverse=True) and len(story["newest"]) == len(story["headlines"])
    topic = usecases.topic_detail(app, topic_id)
    assert story_id in {s["story_id"] for s in topic["stories"]} and topic["sizes"][-1]["run_id"] == run.run_id


@pytest.mark.slow
def test_search_works_beside_a_running_serve(tmp_path, demo_days):
    from ..conftest import CLI, env_for, start_serve, stop_serve

    files, _ = demo_days
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    import shutil

    for f in files[:2]:
        shutil.copy(f, home / "inbox" / Path(f).name)
    proc = start_serve(home, NEWSCLUST_REBUILD_INTERVAL_S="3600")
    try:
        deadline = time.monotonic() + 240
        while len(list((home / "processed").glob("*.csv"))) < 2:
            assert time.monotonic() < deadline, "files not processed"
            time.sleep(0.5)
        with Path(files[0]).open() as fh:
            row = next(csv.DictReader(fh))
        title = row["title"]
        text = f"{title}. {row['description']}" if row.get("description") else title  # the text that was embedded
        out = subprocess.run([*CLI, "--home", str(home), "search", text, "--json", "--k", "3"], env=env_for(), capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        hits = json.loads(out.stdout)
        assert hits and hits[0]["title"] == title and hits[0]["similarity"] > 0.99
    finally:
        stop_serve(proc)


def test_the_alerts_of_a_rebuild_time_the_labels_it_holds_as_the_history_reads_them(make_app, tmp_path):
    """The rebuild hands its story labels to the alerts (not read back): the same (story, time) pairs as the history's
    rows give, run after run, with documents leaving the window and arrivals placed between rebuilds."""
    app = make_app(window_days=2)
    handed = []
    read = app.alerts.story_times

    def story_times(run_id, since, held=None):
        if held is not None:
            handed.append((run_id, since, (held[0].copy(), held[1].copy())))
        return read(run_id, since, held)

    app.alerts.story_times = story_times
    files = stream(tmp_path)
    ingest_copies(app, files[:1])
    for f in files[1:]:
        usecases.rebuild(app, write_report_after=False)
        ingest_copies(app, [f])  # placed between rebuilds, then clustered by the next
    usecases.rebuild(app, write_report_after=False)
    assert len(handed) == len(files)
    for run_id, since, held in handed:
        given, stored = read(run_id, since, held), read(run_id, since)
        assert len(stored[0]) and sorted(zip(*given)) == sorted(zip(*stored)), run_id
