"""Past one machine: two ingest workers and a rebuild leader on one inbox, a real Milvus server and PostgreSQL.

Needs the embedded Milvus server (NEWSCLUST_TEST_MILVUS_SERVER, see README) and Debian's PostgreSQL.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from ..conftest import CLI, env_for, unique_rows, write_csv

pytestmark = pytest.mark.slow


def start(home: Path, worker: str, role: str, **env) -> subprocess.Popen:
    proc = subprocess.Popen([*CLI, "--home", str(home), "serve", "--role", role], env=env_for(NEWSCLUST_WORKER_NAME=worker, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in proc.stdout:
        if line.startswith("serving"):
            return proc
    raise AssertionError(f"{worker} did not start")


def test_two_workers_one_killed_mid_file_every_row_once_one_rebuild_at_a_time(tmp_path, milvus_server, postgres_server):
    from service.adapters.milvus import MilvusStore

    url = postgres_server()
    collection = f"workers_{int(time.time()) % 10**6}"
    env = {"NEWSCLUST_DATABASE_URL": url, "NEWSCLUST_MILVUS_URI": milvus_server, "NEWSCLUST_COLLECTION": collection,
           "NEWSCLUST_CLAIM_LEASE_S": "6", "NEWSCLUST_REBUILD_INTERVAL_S": "4", "NEWSCLUST_STABLE_WAIT_S": "0.3",
           "NEWSCLUST_EMBED_BATCH_SIZE": "16"}
    home = tmp_path / "home"
    (home / "inbox").mkdir(parents=True)
    files, keys = unique_rows(10, 300, seed=5)
    workers = {"w1": start(home, "w1", "all", **env), "w2": start(home, "w2", "ingest", **env), "w3": start(home, "w3", "rebuild", **env)}
    engine = create_engine(url)
    try:
        for i, rows in enumerate(files):
            write_csv(home / "inbox" / f"part-{i:02d}.csv.part", rows).rename(home / "inbox" / f"part-{i:02d}.csv")
        # kill w2 while it holds an unfinished claim (mid-file)
        deadline = time.monotonic() + 240
        while True:
            with engine.connect() as c:
                held = c.execute(text("SELECT COUNT(*) FROM file_claims WHERE worker = 'w2' AND done = 0")).scalar()
            if held:
                break
            assert time.monotonic() < deadline, "w2 never claimed a file"
            time.sleep(0.2)
        workers["w2"].send_signal(signal.SIGKILL)
        workers["w2"].wait(timeout=30)
        deadline = time.monotonic() + 600
        while any((home / "inbox").glob("*.csv")):
            assert time.monotonic() < deadline, f"inbox did not drain: {sorted(p.name for p in (home / 'inbox').iterdir())}"
            time.sleep(1)
        time.sleep(6)  # a rebuild or two after the last file
    finally:
        outputs = {}
        for name, proc in workers.items():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            outputs[name] = proc.communicate(timeout=120)[0]
    with engine.connect() as c:
        stored = {r[0] for r in c.execute(text("SELECT key FROM documents"))}
        runs = c.execute(text("SELECT started_at, finished_at FROM runs WHERE status = 'done' ORDER BY started_at")).fetchall()
        claims = c.execute(text("SELECT COUNT(*), SUM(done) FROM file_claims")).fetchone()
    engine.dispose()
    assert stored == {f"guid:{k}" for k in keys}
    assert runs, outputs["w1"][-3000:] + outputs["w3"][-3000:]
    for (_, end), (start_next, _) in zip(runs, runs[1:]):
        assert end <= start_next, "two rebuilds overlapped"
    assert tuple(claims) == (len(files), len(files))  # every file claimed and finished, the killed worker's by another
    store = MilvusStore(milvus_server, collection, 384)
    try:
        assert store.count() == len(keys)
    finally:
        store.client.drop_collection(collection)
        store.close()
