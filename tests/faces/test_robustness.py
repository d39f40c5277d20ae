"""Nothing lost, nothing doubled: bad files into a running service, SIGKILL at random points, reads beside the writer."""

from __future__ import annotations

import csv
import os
import random
import resource
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from service.ingest import read_headlines

from ..conftest import CLI, env_for, start_serve, stop_serve, unique_rows, wait_for, write_csv

pytestmark = pytest.mark.slow


def drop(inbox: Path, name: str, data: bytes) -> Path:
    """The recommended way: write under a temporary name, then rename into the inbox."""
    tmp = inbox / (name + ".part")
    tmp.write_bytes(data)
    tmp.rename(inbox / name)
    return inbox / name


def test_each_bad_input_goes_to_failed_with_a_reason_and_the_service_goes_on(tmp_path):
    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    proc = start_serve(home, NEWSCLUST_REBUILD_INTERVAL_S="3600")
    expected_failed = {
        "empty.csv": (b"", "empty file"),
        "header-only.csv": (b"title,description\n", "header only"),
        "no-title.csv": (b"heading,body\nx,y\n", "no 'title' column"),
        "semicolons.csv": (b"title;description\nRates rise;Again\n", "semicolon-delimited"),
        "quotes.csv": (b'title,description\n"Never closed,oops\nmore text\n', "quoting"),
        "junk.csv": (os.urandom(4096) + b"\x00" * 64, "binary"),
    }
    try:
        for name, (data, _) in expected_failed.items():
            drop(inbox, name, data)
        (inbox / "a-folder").mkdir()
        target = tmp_path / "elsewhere.csv"
        target.write_text("title\nLinked headline\n")
        (inbox / "link.csv").symlink_to(target)
        drop(inbox, "latin1.csv", "title,description\nCaf\u00e9 prices soar,Cr\u00e8me br\u00fbl\u00e9e too\n".encode("latin-1"))
        drop(inbox, "long-title.csv", ("title\n" + "Endless " * 12_500 + "\nShort one\n").encode())
        drop(inbox, "blanks.csv", b"guid,title\nb1,First\nb2,   \nb3,Third\n")
        wait_for(lambda: not any(p for p in inbox.iterdir()), timeout=120, what="the inbox to empty")
        drop(inbox, "good.csv", b"title\nVolcano erupts\nBridge reopens\n")
        wait_for(lambda: (home / "processed" / "good.csv").exists(), what="a good file after the bad ones")
    finally:
        out = stop_serve(proc)
    failed = home / "failed"
    for name, (_, reason) in expected_failed.items():
        assert (failed / name).exists(), out
        text = (failed / f"{name}.reason.txt").read_text()
        assert name in text and reason in text, text
    for odd in ("a-folder", "link.csv"):
        assert (failed / odd).exists() or (failed / odd).is_symlink()
        assert odd in (failed / f"{odd}.reason.txt").read_text()
    assert target.exists()  # the symlink's target is not touched
    rejects = list(csv.DictReader((failed / "blanks.csv.rejects.csv").open()))
    assert [(r["line"], r["reason"], r["guid"]) for r in rejects] == [("3", "blank title", "b2")]
    with sqlite3.connect(home / "newsclust.sqlite") as c:
        enc = c.execute("SELECT encoding FROM ingested_files WHERE name='latin1.csv'").fetchone()[0]
        long_title = c.execute("SELECT length(title) FROM documents WHERE title LIKE 'Endless%'").fetchone()[0]
        titles = {r[0] for r in c.execute("SELECT title FROM documents")}
    assert enc.startswith("latin-1") and "Caf\u00e9 prices soar" in titles
    assert long_title == len(("Endless " * 12_500).strip())  # kept whole; only the embedded text is cut
    assert {"First", "Third", "Volcano erupts", "Short one"} <= titles
    assert "stopped" in out


def test_a_big_file_is_parsed_in_bounded_memory(tmp_path):
    path = tmp_path / "big.csv"
    row = "title,description\n" + "".join(f"Headline number {i} about markets,{'words ' * 30}\n" for i in range(2000))
    with path.open("w") as fh:
        fh.write(row)
        body = row.split("\n", 1)[1]
        for _ in range(60):  # ~30 MB
            fh.write(body)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _, chunks = read_headlines(path, chunk_rows=5000)
    rows = sum(len(c.headlines) for c in chunks)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert rows == 2000 * 61
    assert grown_mb < 60, f"parsing grew memory by {grown_mb:.0f} MB for a {path.stat().st_size >> 20} MB file"


def test_sigkill_in_every_phase_and_at_random_loses_and_doubles_nothing(tmp_path):
    """Ten kills: one in each phase through failpoints (the process SIGKILLs itself there), then at random moments."""
    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    files, keys = unique_rows(14, 250, seed=11)
    for i, rows in enumerate(files):
        write_csv(inbox / f"batch-{i:02d}.csv", rows)
    kills = []
    for phase in ("parse:2", "embed:1", "milvus:2", "sqlite:1", "move:1", "rebuild:1"):
        proc = start_serve(home, NEWSCLUST_REBUILD_INTERVAL_S="2", NEWSCLUST_FAILPOINT=phase)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"failpoint {phase} was never reached")
        assert proc.returncode == -signal.SIGKILL, (phase, proc.returncode)
        kills.append(phase)
    rng = random.Random(5)
    for _ in range(4):
        proc = start_serve(home, NEWSCLUST_REBUILD_INTERVAL_S="3600")
        delay = rng.uniform(0.3, 3.0)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills.append(f"random {delay:.1f}s")
    proc = start_serve(home, NEWSCLUST_REBUILD_INTERVAL_S="3600")
    try:
        wait_for(lambda: not any(inbox.iterdir()), timeout=240, what="the inbox to drain after the kills")
    finally:
        stop_serve(proc)
    print("kills:", kills)
    assert len(kills) >= 10
    names = {p.name.split(".")[0] for p in (home / "processed").iterdir()} | {p.name.split(".")[0] for p in (home / "failed").iterdir()}
    assert {f"batch-{i:02d}" for i in range(len(files))} <= names
    with sqlite3.connect(home / "newsclust.sqlite") as c:
        stored = {r[0] for r in c.execute("SELECT key FROM documents")}
        states = dict(c.execute("SELECT state, COUNT(*) FROM ingested_files GROUP BY state").fetchall())
        retaken = c.execute("SELECT COUNT(*) FROM ingested_files WHERE attempts > 1").fetchone()[0]
        rows_per_file = c.execute("SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM ingested_files GROUP BY name, sha256)").fetchone()[0]
        assert c.execute("SELECT COUNT(*) FROM runs WHERE status='failed'").fetchone()[0] >= 1  # the rebuild killed midway
        assert c.execute("SELECT COUNT(*) FROM runs WHERE status='running'").fetchone()[0] == 0
    assert stored == {f"guid:{k}" for k in keys}
    # a file cut by a kill is taken again at the restart and continues its own ledger row: one row per file
    assert retaken >= 1 and rows_per_file == 1 and "processing" not in states

    from service.adapters.milvus import MilvusStore

    store = MilvusStore(str(home / "milvus.db"), "headlines", 384)
    try:
        assert store.count() == len(keys)
        ids, _ = store.all_vectors()
        assert len(set(ids.tolist())) == len(keys)
    finally:
        store.close()


def test_reads_beside_a_writing_service_never_wait(tmp_path):
    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    files, keys = unique_rows(16, 400, seed=3)
    proc = start_serve(home, NEWSCLUST_REBUILD_INTERVAL_S="5", NEWSCLUST_EMBED_BATCH_SIZE="32")
    slow, errors, reads = [], [], 0
    try:
        for i, rows in enumerate(files):
            write_csv(inbox / f"load-{i:02d}.csv.part", rows).rename(inbox / f"load-{i:02d}.csv")
        end = time.monotonic() + 60
        cli_calls = 0
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                with sqlite3.connect(f"file:{home / 'newsclust.sqlite'}?mode=ro", uri=True, timeout=1.0) as c:
                    c.execute("SELECT COUNT(*) FROM documents").fetchone()
                    c.execute("SELECT cluster_id, COUNT(*) FROM document_current GROUP BY cluster_id").fetchall()
                reads += 1
            except sqlite3.Error as exc:
                errors.append(repr(exc))
            took = time.monotonic() - t0
            if took > 1.0:
                slow.append(took)
            if cli_calls < 6 and reads % 40 == 0:
                cmd = "status" if cli_calls % 2 == 0 else "export"
                out = subprocess.run([*CLI, "--home", str(home), cmd], env=env_for(), capture_output=True, text=True, timeout=120)
                if out.returncode != 0:
                    errors.append(f"{cmd}: {out.stderr[-500:]}")
                cli_calls += 1
            time.sleep(0.05)
    finally:
        stop_serve(proc)
    assert not errors, errors
    assert not slow, f"{len(slow)} reads waited over a second: {max(slow):.2f}s"
    assert reads > 100 and cli_calls == 6


def test_a_1gb_file_streams_through_the_service_in_bounded_memory(tmp_path):
    """1 GiB of rows, most of them repeats of a few hundred stories: all of it is parsed, in chunks,
    and only the unique rows are embedded, so the test takes seconds, not hours."""
    home = tmp_path / "home"
    inbox = home / "inbox"
    inbox.mkdir(parents=True)
    rows = "".join(f"g{i % 300},Story {i % 300} develops further,{'detail ' * 40}\n" for i in range(3000))
    block = rows.encode()
    part = inbox / "huge.csv.part"
    with part.open("wb") as fh:
        fh.write(b"guid,title,description\n")
        written = 0
        while written < (1 << 30):
            fh.write(block)
            written += len(block)
    proc = start_serve(home, NEWSCLUST_REBUILD_INTERVAL_S="3600")
    peak_kb = 0
    try:
        part.rename(inbox / "huge.csv")
        end = time.monotonic() + 400
        while not (home / "processed" / "huge.csv").exists():
            assert time.monotonic() < end, "the 1 GiB file was not processed in time"
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak_kb = max(peak_kb, int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]))
            time.sleep(0.5)
    finally:
        out = stop_serve(proc)
    assert "huge.csv:" in out and "300 stored" in out, out[-2000:]
    assert peak_kb < 3 * 1024 * 1024, f"serve peaked at {peak_kb >> 10} MB for a 1 GiB file"
    with sqlite3.connect(home / "newsclust.sqlite") as c:
        seen, stored = c.execute("SELECT rows_seen, rows_stored FROM ingested_files WHERE name='huge.csv'").fetchone()
    assert stored == 300 and seen >= (1 << 30) // len(block) * 3000
