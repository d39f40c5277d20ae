"""A service left alone for a week: our environment failing is retried, never the file's fault; nothing is stranded.

Each test is one case of issue 12's list, on the real components (MiniLM, Milvus Lite, SQLite).
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from service import usecases
from service.files import neutralise

from ..conftest import CLI, STORY_ROWS, env_for, ingest_copies, wait_for, write_csv

ROWS = [
    {"guid": "r1", "title": "Wildfire forces thousands to evacuate in California", "description": "Crews fight the blaze"},
    {"guid": "r2", "title": "Central bank raises interest rates again", "description": "Inflation stays high"},
    {"guid": "r3", "title": "Wildfire smoke blankets the bay area", "description": "Air quality alerts"},
]


def drop(app, name: str, rows: list[dict]) -> Path:
    return write_csv(app.settings.inbox / name, rows)


def ledger(app) -> list[tuple]:
    with sqlite3.connect(app.settings.sqlite_path) as c:
        return c.execute("SELECT name, state, attempts, rows_stored, rows_updated FROM ingested_files ORDER BY id").fetchall()


@pytest.fixture
def locked(make_app):
    """Another program holding SQLite's write lock past our busy timeout (a backup, a long transaction)."""
    holders = []

    def hold(app):
        c = sqlite3.connect(app.settings.sqlite_path, timeout=5, isolation_level=None)
        c.execute("BEGIN EXCLUSIVE")
        holders.append(c)
        return c

    yield hold
    for c in holders:
        c.close()


def test_a_locked_database_leaves_a_good_file_in_the_inbox_to_retry(make_app, locked):
    app = make_app(db_busy_timeout_s=0.3)
    path = drop(app, "good.csv", ROWS)
    holder = locked(app)
    r = usecases.ingest_file(app, path)
    assert r.state == "retrying" and r.transient and "locked" in r.reason, r
    assert path.exists() and not any(app.settings.failed_dir.iterdir())
    holder.rollback()
    holder.close()
    r = usecases.ingest_file(app, path)
    assert r.state == "processed" and r.stored == 3
    assert ledger(app) == [("good.csv", "processed", 1, 3, 0)]  # one row per file, however often it was tried


def test_an_unreachable_vector_store_is_retried_and_a_file_cut_halfway_leaves_no_phantom(make_app):
    app = make_app(failpoint="outages")
    switch = app.settings.home / "faults" / "vector-store-down"
    switch.parent.mkdir()
    switch.touch()
    path = drop(app, "good.csv", ROWS)
    r = usecases.ingest_file(app, path)
    assert r.state == "retrying" and r.transient and "unreachable" in r.reason, r
    switch.unlink()
    assert usecases.ingest_file(app, path).state == "processed"

    # a write cut between Milvus and SQLite: vectors with no document row must never be clustered
    rng = np.random.default_rng(0)
    phantom = rng.normal(size=(40, app.embedder.dim)).astype(np.float32)
    phantom /= np.linalg.norm(phantom, axis=1, keepdims=True)
    phantom_ids = np.arange(10**12, 10**12 + 40, dtype=np.int64)
    app.open_store().upsert(phantom_ids, phantom, np.zeros(40, np.int64), np.zeros(40, np.int64))
    more = [{"guid": f"m{i}", "title": f"Wildfire update number {i} from the fire lines", "description": ""} for i in range(30)]
    usecases.ingest_file(app, drop(app, "more.csv", more))
    r = usecases.rebuild(app, write_report_after=False)
    assert r.documents == 33
    with sqlite3.connect(app.settings.sqlite_path) as c:
        orphans = c.execute("SELECT COUNT(*) FROM assignments a LEFT JOIN documents d ON d.id = a.document_id WHERE d.id IS NULL").fetchone()[0]
    assert orphans == 0


def test_a_document_whose_vector_was_lost_is_embedded_again(make_app):
    app = make_app(vector_cache=False)
    usecases.ingest_file(app, drop(app, "good.csv", ROWS))
    from service.domain import document_id

    app.open_store().client.delete(app.settings.collection, ids=[document_id("guid:" + ROWS[0]["guid"])])  # a store reset, in small
    assert app.open_store().count() == 2
    assert usecases.restore_missing_vectors(app) == 1
    assert app.open_store().count() == 3


def test_one_bad_cell_rejects_or_repairs_its_row_not_the_file(make_app, tmp_path):
    app = make_app()
    body = (
        "guid,title,description,published_at\n"
        "d1,Dam bursts after storm,,0001-01-01T00:00:00+05:00\n"
        "d2,Storm hits the coast,,9999-12-31T23:00:00-05:00\n"
        "d3,\u200b\u200b\u2060,invisible title,2026-11-01\n"
        "d4,Coast guard rescues fishermen,a NUL\x00 inside,2026-11-01\n"
        "d5,Ferry service resumes,,2026-11-02T08:00:00Z\n"
    )
    path = app.settings.inbox / "cells.csv"
    path.write_bytes(body.encode("utf-8"))
    r = usecases.ingest_file(app, path)
    assert r.state == "processed" and r.stored == 4 and r.rejected == 1, r
    rejects = list(csv.DictReader((app.settings.failed_dir / "cells.csv.rejects.csv").open()))
    assert [(x["line"], x["guid"]) for x in rejects] == [("4", "d3")] and "invisible" in rejects[0]["reason"]
    with sqlite3.connect(app.settings.sqlite_path) as c:
        rows = dict(c.execute("SELECT key, published_at FROM documents").fetchall())
        desc = c.execute("SELECT description FROM documents WHERE key='guid:d4'").fetchone()[0]
    assert rows["guid:d1"] is None and rows["guid:d2"] is None and rows["guid:d5"].startswith("2026-11-02")
    assert desc == "a NUL inside"


def test_truncated_derived_state_is_rebuilt_not_fatal(make_app, demo_days):
    files, _ = demo_days
    app = make_app()

    ingest_copies(app, files[:2])
    r = usecases.rebuild(app)
    for f in app.settings.state_dir.glob(f"*-{r.run_id}.npz"):
        f.write_bytes(f.read_bytes()[:100])
    app.forget_prediction_state()
    [later] = ingest_copies(app, files[2:3])
    assert later.state == "processed" and later.predicted == 0  # nothing to place in until the next rebuild
    page = usecases.write_report(app)  # no layout: the page says so instead of a traceback
    assert "No map" in page.read_text()
    # a read only reads: the damaged file stays, reads as missing, and the next rebuild writes its own run's file
    assert list(app.settings.state_dir.glob(f"run-{r.run_id}.npz")) and app.run_files.load_prediction_state(r.run_id) is None
    r2 = usecases.rebuild(app, write_report_after=False)
    assert app.prediction_state(r2.run_id) is not None


def test_a_correction_keeps_the_newest_text_and_the_old_one_in_revisions(make_app):
    app = make_app()
    usecases.ingest_file(app, drop(app, "first.csv", ROWS))
    usecases.rebuild(app, write_report_after=False)
    fixed = [dict(ROWS[0], title="Wildfire forces 20,000 to evacuate in Northern California"), ROWS[1]]
    r = usecases.ingest_file(app, drop(app, "fix.csv", fixed))
    assert (r.state, r.stored, r.updated, r.duplicates) == ("processed", 0, 1, 1), r
    assert usecases.ingest_file(app, drop(app, "again.csv", fixed)).updated == 0  # the same text again: nothing
    with sqlite3.connect(app.settings.sqlite_path) as c:
        title = c.execute("SELECT title, id FROM documents WHERE key='guid:r1'").fetchone()
        revisions = c.execute("SELECT title FROM document_revisions WHERE document_id=?", (title[1],)).fetchall()
        placed = c.execute("SELECT COUNT(*) FROM assignments WHERE document_id=? AND assigned_by='predict'", (title[1],)).fetchone()[0]
    assert title[0].startswith("Wildfire forces 20,000") and revisions == [(ROWS[0]["title"],)] and placed == 1
    stored = app.open_store().vectors_of(np.array([title[1]]))[0]
    expected = app.embedder.embed([fixed[0]["title"] + ". " + fixed[0]["description"]])[0]
    assert float(stored @ expected) > 0.999
    assert app.open_store().count() == 3


def test_csv_cells_that_would_run_as_formulas_are_neutralised(make_app):
    assert neutralise("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")" and neutralise("@SUM(A1)") == "'@SUM(A1)"
    assert neutralise("-1") == "-1" and neutralise("+3.5") == "+3.5" and neutralise("plain") == "plain"
    app = make_app()
    path = app.settings.inbox / "evil.csv"
    path.write_text('guid,title\n=cmd|calc,Markets rally\n+evil," "\n-2+3,Bonds slip\n')
    usecases.ingest_file(app, path)
    out = io.StringIO()
    usecases.export_csv(app, out)
    cells = [row[0] for row in csv.reader(io.StringIO(out.getvalue()))][1:]
    assert sorted(cells) == sorted(["'-2+3", "'=cmd|calc"])
    rejects = (app.settings.failed_dir / "evil.csv.rejects.csv").read_text()
    assert "'+evil" in rejects


def test_a_long_name_is_archived_under_a_short_one_and_repeated_failures_are_parked(make_app):
    from workers.serve import PARK_AFTER, Service

    app = make_app()
    long_name = "x" * 240 + ".csv"
    r = usecases.ingest_file(app, drop(app, long_name, ROWS[:1]))
    assert r.state == "processed" and len(Path(r.moved_to).name) <= usecases.MAX_NAME_BYTES
    # failed/ unusable (a file stands where the folder should be): the bad file is retried with backoff, then parked
    app.settings.failed_dir.rmdir()
    app.settings.failed_dir.write_text("not a folder")
    service = Service(app)
    bad = app.settings.inbox / "bad.csv"
    bad.write_text("heading\nno title column\n")
    verdicts = [service.take_file(bad) for _ in range(PARK_AFTER)]
    assert verdicts[:-1] == [2.0, 4.0, 8.0] and verdicts[-1] == float("inf"), verdicts
    assert bad.exists()
    rows = [row for row in ledger(app) if row[0] == "bad.csv"]
    assert len(rows) == 1, rows


def test_the_watcher_recreates_a_removed_inbox_and_survives_its_handler(tmp_path):
    import shutil

    from workers.watcher import InboxWatcher

    inbox = tmp_path / "inbox"
    seen, lock = [], threading.Lock()

    def handle(path: Path):
        with lock:
            seen.append(path.name)
        if path.name.startswith("boom"):
            raise RuntimeError("a bug in the handler")
        path.unlink()
        return None

    w = InboxWatcher(inbox, handle, stable_wait_s=0.1, rescan_s=0.5)
    w.start()
    try:
        (inbox / "boom.csv").write_text("title\nx\n")
        wait_for(lambda: "boom.csv" in seen, timeout=10, what="the first file")
        shutil.rmtree(inbox)
        time.sleep(1.5)
        wait_for(lambda: inbox.is_dir(), timeout=10, what="the inbox to be created again")
        (inbox / "after.csv").write_text("title\ny\n")
        wait_for(lambda: "after.csv" in seen, timeout=10, what="a file dropped in the new inbox")
        assert w.alive()
    finally:
        w.stop()


def test_cli_help_settings_home_anywhere_and_missing_files(tmp_path):
    env = env_for()
    out = subprocess.run([*CLI, "--help-settings"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "knn_k" in out.stdout, out.stderr
    home = tmp_path / "home"
    out = subprocess.run([*CLI, "status", "--home", str(home), "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no home at" in out.stderr and not home.exists(), out.stderr  # a read creates nothing
    out = subprocess.run([*CLI, "ingest", str(tmp_path / "nope.csv"), "--home", str(home)], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "no such file" in out.stdout and "None" not in out.stdout, out.stdout
    out = subprocess.run([*CLI, "status", "--home", str(home), "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and (home / "newsclust.sqlite").exists(), out.stderr
    assert '"documents": 0' in out.stdout


def _writers(inbox: Path, every_s: float) -> dict[str, list[str]]:
    """Three writers that do not rename into the inbox (issue 25's probes); returns the guids each file must yield."""
    import threading as th

    def held():  # one open handle under the final name, a row every `every_s`
        with (inbox / "held.csv").open("w", newline="") as fh:
            fh.write("guid,title,description\n")
            for i in range(5):
                fh.write(f"h{i},Held open writer row {i} about wildfires,desc {i}\n")
                fh.flush()
                time.sleep(every_s)

    def append():  # header first, then reopened to append a row every `every_s`
        (inbox / "append.csv").write_text("guid,title,description\n")
        for i in range(5):
            time.sleep(every_s)
            with (inbox / "append.csv").open("a") as fh:
                fh.write(f"a{i},Appending writer row {i} about interest rates,desc {i}\n")

    def cut():  # stops mid-row for a while, then finishes it
        path = inbox / "cut.csv"
        path.write_text("guid,title,description\nc0,Streaming service outage angers fans,desc\nc1,HBO GO problems hit 'True Detec")
        time.sleep(2 * every_s)
        with path.open("a") as fh:
            fh.write("tive' finale,viewers locked out\n")

    threads = [th.Thread(target=f) for f in (held, append, cut)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"held.csv": [f"h{i}" for i in range(5)], "append.csv": [f"a{i}" for i in range(5)], "cut.csv": ["c0", "c1"]}


def test_files_written_in_place_arrive_whole_and_once(make_app):
    """Issue 25: a row every 1 s (longer than stable_wait_s), held open or reopened to append, or cut mid-row:
    every row arrives once, and the cut row is never stored half."""
    from workers.serve import Service

    app = make_app(settle_s=3.0)
    app.open_store()
    service = Service(app)
    service.watcher.start()
    try:
        expected = _writers(app.settings.inbox, every_s=1.0)
        wait_for(lambda: not any(app.settings.inbox.glob("*.csv")), timeout=120, what="the inbox to empty")
    finally:
        service.watcher.stop()
    with sqlite3.connect(app.settings.sqlite_path) as c:
        rows = c.execute("SELECT key, title FROM documents").fetchall()
    keys = sorted(k for k, _ in rows)
    assert keys == sorted(f"guid:{g}" for guids in expected.values() for g in guids), rows
    assert ("guid:c1", "HBO GO problems hit 'True Detective' finale") in rows
    assert sorted(p.name for p in app.settings.processed_dir.iterdir()) == ["append.csv", "cut.csv", "held.csv"]
    assert not list(app.settings.failed_dir.glob("*")), list(app.settings.failed_dir.iterdir())


def test_the_same_text_in_other_bytes_is_one_document(make_app):
    """Issue 25: NFC vs NFD accents, a zero-width space, doubled or odd whitespace: one document, no corrections."""
    import unicodedata

    app = make_app()
    titles = ["Pokémon café reopens in Zürich after the flood", "Ruée vers l'or: les prix s'envolent à Genève"]
    spellings = [
        lambda t: unicodedata.normalize("NFC", t),
        lambda t: unicodedata.normalize("NFD", t),
        lambda t: t.replace(" ", " \u200b", 1),
        lambda t: "\ufeff" + t.replace(" ", "\u00a0 ", 1) + "\t",
    ]
    for n, spell in enumerate(spellings):
        rows_guid = [{"guid": f"u{i}", "title": spell(t), "description": spell("Récit détaillé")} for i, t in enumerate(titles)]
        rows_text = [{"title": spell(t), "description": spell("Récit détaillé")} for t in titles]
        with_guid = usecases.ingest_file(app, drop(app, f"guid{n}.csv", rows_guid))
        without = usecases.ingest_file(app, drop(app, f"text{n}.csv", rows_text))
        assert (with_guid.stored, with_guid.updated) == ((2, 0) if n == 0 else (0, 0)), (n, with_guid)
        assert (without.stored, without.updated) == ((2, 0) if n == 0 else (0, 0)), (n, without)
    with sqlite3.connect(app.settings.sqlite_path) as c:
        assert c.execute("SELECT count(*) FROM documents").fetchone()[0] == 4
        assert c.execute("SELECT count(*) FROM document_revisions").fetchone()[0] == 0
        stored = {r[0] for r in c.execute("SELECT title FROM documents")}
    assert stored == {unicodedata.normalize("NFC", t) for t in titles}


def test_a_row_dated_2999_is_kept_honest_in_the_summary_the_alert_times_and_the_page(make_app):
    """Issue 25: stored as 'no published time' and drawn at ingest time, it stretched the page to today and stamped alerts."""
    from datetime import datetime

    from service.adapters.sql.report_queries import report_documents

    app = make_app(story_min_size=2)
    texts = [(r["title"] + suffix, r["description"]) for suffix in ("", " today", ": latest", " again") for r in STORY_ROWS]
    rows = [{"guid": f"d{i}", "title": t, "description": d, "published_at": f"2014-03-{10 + i % 3:02d} 0{i % 10}:00"}
            for i, (t, d) in enumerate(texts)]
    rows.append({"guid": "future", "title": "Wildfire crews contain the valley blaze", "description": "Evacuations lifted",
                 "published_at": "2999-01-01 00:00"})
    r = usecases.ingest_file(app, drop(app, "dated.csv", rows))
    assert r.stored == 25 and any("1 date more than 2 days ahead (e.g. '2999-01-01 00:00' on line 26)" in w for w in r.warnings), r
    assert "2999" in ledger_reason(app, "dated.csv")
    run = usecases.rebuild(app, write_report_after=False).run_id
    _, times = app.alerts.story_times(run, None)
    assert len(times) and max(times) < datetime(2015, 1, 1).timestamp(), times  # the ingest time (today) stands in for no row
    docs = report_documents(app.engine, run)
    claimed = {int(i): str(t) for i, t in zip(docs.ids, docs.future) if not np.isnat(t)}
    assert list(claimed.values()) == ["2999-01-01T00:00:00"], claimed


def ledger_reason(app, name: str) -> str:
    with sqlite3.connect(app.settings.sqlite_path) as c:
        return c.execute("SELECT reason FROM ingested_files WHERE name = ?", (name,)).fetchone()[0] or ""


FULL_DISK_SCRIPT = r'''
import json, os, sqlite3, subprocess, sys
from pathlib import Path
mount = Path(sys.argv[1])
mount.mkdir(parents=True, exist_ok=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
from service.bootstrap import App
from service.config import load_settings
from service.state import read_status
from workers.serve import Service
app = App(load_settings(home=mount / "home", env={}, retry_first_s=0.1, settle_s=0))
app.open_store()
service = Service(app)
service.write_status()
inbox = app.settings.inbox
(inbox / "news.csv").write_text("guid,title\ng1,Wildfire forces evacuations in the valley\ng2,Central bank raises interest rates\n")
filler = mount / "filler"
fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
for size in (65536, 4096, 512, 1):  # fill the disk to the last byte
    try:
        while True:
            os.write(fd, b"\0" * size)
    except OSError:
        pass
os.close(fd)
verdicts = [service.take_file(inbox / "news.csv") for _ in range(3)]
full = read_status(service.status_path())
filler.unlink()
verdicts.append(service.take_file(inbox / "news.csv"))
after = read_status(service.status_path())
with sqlite3.connect(app.settings.sqlite_path) as c:
    ledger = c.execute("SELECT state, attempts, rows_stored FROM ingested_files WHERE name = 'news.csv'").fetchall()
app.close()
print("RESULT " + json.dumps({"verdicts": verdicts, "full": full, "after": after, "ledger": ledger}))
'''


def test_a_full_disk_is_told_by_status_and_every_try_is_counted(tmp_path):
    """Issue 25: the status file could not be written on a full disk, so status showed no error; the ledger said 2 tries for 7."""
    import json
    import os
    import shutil
    import sys

    if os.geteuid() != 0 or not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"]).returncode:
        pytest.skip("needs root and unshare to mount a small tmpfs")
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK_SCRIPT)
    out = subprocess.run(["unshare", "-m", sys.executable, str(script), str(tmp_path / "mnt")], env=env_for(),
                         capture_output=True, text=True, timeout=600)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    assert line, out.stdout[-3000:] + out.stderr[-3000:]
    got = json.loads(line[len("RESULT "):])
    full = got["full"]
    assert full["last_error"] and "disk" in full["last_error"]["what"] and "full" in full["last_error"]["what"], full
    assert str(tmp_path / "mnt" / "home") in full["last_error"]["what"], full
    assert full["files_waiting"]["news.csv"]["attempts"] == 3, full
    assert got["verdicts"][-1] is None and got["after"]["files_waiting"] == {}, got
    assert got["ledger"] == [["processed", 4, 2]], got  # the three tries on the full disk count


def _one_line_exit_2(args: list[str], *, prefix: list[str] | None = None) -> str:
    out = subprocess.run([*(prefix or []), *CLI, *args], env=env_for(), capture_output=True, text=True, timeout=300)
    lines = [l for l in (out.stdout + out.stderr).splitlines() if l.strip()]
    assert out.returncode == 2 and len(lines) == 1, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    return lines[0]


def test_broken_stores_are_one_line_and_exit_2_with_nothing_touched(tmp_path):
    """Issue 25: a corrupt newsclust.sqlite gave a 144-line traceback and exit 1; a Milvus Lite store that is a file, 'try again shortly'."""
    import os

    home = tmp_path / "bad-db"
    home.mkdir()
    garbage = bytes(range(256)) * 20
    (home / "newsclust.sqlite").write_bytes(garbage)
    for command in (["status", "--json"], ["serve"]):
        line = _one_line_exit_2([*command, "--home", str(home)])
        assert str(home / "newsclust.sqlite") in line and "not an SQLite database" in line and "backup" in line, line
    assert (home / "newsclust.sqlite").read_bytes() == garbage and sorted(os.listdir(home)) == ["newsclust.sqlite"]

    home = tmp_path / "bad-pages"  # a true header over damaged pages: SQLite's own words, the file named
    home.mkdir()
    damaged = b"SQLite format 3\x00" + garbage
    (home / "newsclust.sqlite").write_bytes(damaged)
    line = _one_line_exit_2(["status", "--home", str(home)])
    assert str(home / "newsclust.sqlite") in line and "not a database" in line, line
    assert (home / "newsclust.sqlite").read_bytes() == damaged

    home = tmp_path / "bad-milvus"
    home.mkdir()
    (home / "milvus.db").write_text("not a milvus store\n")
    line = _one_line_exit_2(["serve", "--home", str(home)])
    assert str(home / "milvus.db") in line and "not a Milvus Lite store" in line, line
    assert (home / "milvus.db").read_text() == "not a milvus store\n"


def test_a_home_that_is_not_writable_is_one_line_and_exit_2(tmp_path):
    import shutil

    if os.geteuid() != 0 or not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"]).returncode:
        pytest.skip("needs root and unshare to mount a read-only folder")
    home = tmp_path / "ro"
    home.mkdir()
    mount = ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o ro,size=1m tmpfs {home} && exec \"$@\"", "sh"]
    for command in (["status"], ["serve"]):
        line = _one_line_exit_2([*command, "--home", str(home)], prefix=mount)
        assert str(home) in line and "not writable" in line and "write access" in line, line


def test_webhook_deliveries_carry_an_id_and_survive_a_restart_in_the_outbox(make_app, tmp_path):
    """Issue 25: a receiver that timed out got each alert 3 times with nothing to tell repeats apart; alerts still
    queued at SIGTERM were dropped without a word and never sent."""
    import http.server
    import json
    import socket

    got: list[tuple[str, int]] = []
    mode = {"slow": True}

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got.append((self.headers["Idempotency-Key"], body["id"]))
            if mode["slow"]:
                time.sleep(0.6)  # past the sender's timeout: it tries again
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path / "home"
    app = make_app(home=home, webhook_url=f"http://127.0.0.1:{port}/hook")
    try:
        hook = app.webhook
        hook.timeout_s, hook.first_backoff_s = 0.3, 0.05
        for i in (1, 2):
            hook.post({"id": i, "kind": "new", "title": f"story {i}"})
        wait_for(lambda: len(got) >= 6, timeout=30, what="three tries of each alert")
        by_key: dict[str, set[int]] = {}
        for key, alert_id in got:
            by_key.setdefault(key, set()).add(alert_id)
        assert len(by_key) == 2 and all(len(ids) == 1 for ids in by_key.values()), got  # repeats share one key per alert
        assert all(key.startswith("newsclust:") and key.endswith(f":alert:{i}") for key, (i,) in ((k, tuple(v)) for k, v in by_key.items()))
        # gave up on both after 3 tries (each answer came after the timeout): both stay in the outbox
        wait_for(lambda: _outbox(app) == [(1, 3), (2, 3)], timeout=30, what="the give-ups recorded")
        server.shutdown()  # the endpoint goes away; five more alerts are queued when the service stops
        for i in range(3, 8):
            hook.post({"id": i, "kind": "surging", "title": f"story {i}"})
        app.close()
        assert [i for i, _ in _outbox(app)] == [1, 2, 3, 4, 5, 6, 7]
    finally:
        server.server_close()
    # the restart: a receiver that answers at once gets every undelivered alert, once, and the outbox empties
    got.clear()
    mode["slow"] = False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        again = make_app(home=home, webhook_url=f"http://127.0.0.1:{port}/hook")
        again.resume_webhook()
        wait_for(lambda: not _outbox(again), timeout=30, what="the outbox to be sent")
        assert sorted({i for _, i in got}) == [1, 2, 3, 4, 5, 6, 7], got
    finally:
        server.shutdown()
        server.server_close()


def _outbox(app) -> list[tuple[int, int]]:
    with sqlite3.connect(app.settings.sqlite_path) as c:
        return c.execute("SELECT alert_id, tries FROM webhook_outbox ORDER BY alert_id").fetchall()


def test_a_committed_run_whose_page_a_stop_cut_off_is_written_at_the_next_start(make_app, tmp_path):
    """Issue 25: SIGTERM during the map said 'abandoned the rebuild in progress' though the run was committed and
    current; its page was never written and latest.html stayed a run behind."""
    from service.state import stop_message

    from ..conftest import start_serve, stop_serve

    home = tmp_path / "home"
    app = make_app(home=home)
    texts = [(r["title"] + suffix, r["description"]) for suffix in ("", " today", ": latest") for r in STORY_ROWS]
    usecases.ingest_file(app, drop(app, "news.csv", [{"guid": f"p{i}", "title": t, "description": d} for i, (t, d) in enumerate(texts)]))
    run = usecases.rebuild(app, write_report_after=False).run_id  # committed; the stop came before its map and page
    app.close()
    assert not (home / "reports" / f"run-{run}.html").exists()
    proc = start_serve(home)
    try:
        wait_for(lambda: (home / "reports" / f"run-{run}.html").exists(), timeout=120, what="the cut-off page")
    finally:
        stop_serve(proc)
    assert (home / "reports" / "latest.html").read_text() == (home / "reports" / f"run-{run}.html").read_text()
    # what a stop during a rebuild says: the run that is current, whether or not the rebuild had committed
    assert stop_message(0, run) == f"the rebuild had committed: run {run} is current; its page is written at the next start if the stop cut it off"
    assert stop_message(1, 3) == "abandoned the rebuild in progress (marked failed); run 3 stays current"
    assert stop_message(1, None) == "abandoned the rebuild in progress (marked failed); no run is current yet"


def test_the_status_file_stays_valid_json_however_much_is_waiting(tmp_path):
    """Sixty files waiting with long reasons overflow the preallocated status file: it is shortened, never cut mid-JSON."""
    from service.state import StatusBoard, read_status

    board = StatusBoard(tmp_path / "service.json", tmp_path)
    waiting = {f"f{i}.csv": {"file": f"f{i}.csv", "state": "retrying", "attempts": 2, "reason": "x" * 2000} for i in range(60)}
    board.publish({"pid": 1, "files_waiting": waiting, "last_error": {"at": "now", "what": "y" * 90_000}})
    st = read_status(tmp_path / "service.json")
    assert st is not None and st["files_waiting_cut"] and st["pid"] == 1 and st["files_waiting"]
    assert board.snapshot()["files_waiting"] == st["files_waiting"]
