"""Real components on small data: the bundled MiniLM, Milvus Lite files, SQLite files, Alembic migrations."""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
README = Path(__file__).resolve().parents[1] / "README.md"
CLI = [sys.executable, "-m", "workers.console"]

# six headlines of three stories, two each
STORY_ROWS = [
    {"guid": f"g{i}", "title": t, "description": d}
    for i, (t, d) in enumerate(
        [("Wildfire forces evacuations in the valley", "Crews fight flames"), ("Firefighters battle wildfire near homes", "Smoke everywhere"),
         ("Central bank raises interest rates", "Inflation stays high"), ("Interest rate hike rattles bond markets", "Yields climb"),
         ("Striker scores twice in cup final", "Fans celebrate"), ("Cup final ends in penalty shootout", "Keeper saves two")]
    )
]


def env_for(**extra):
    """The environment of a console-script run: no NEWSCLUST_ setting of ours leaks in, the model stays offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSCLUST_")}
    env.update({"HF_HUB_OFFLINE": "1", "CI": "1", **extra})
    return env


def wait_for(predicate, timeout=180.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def start_serve(home: Path, **env):
    proc = subprocess.Popen([*CLI, "--home", str(home), "serve"], env=env_for(NEWSCLUST_STABLE_WAIT_S="0.3", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    for line in proc.stdout:  # the model and Milvus are open once this is printed
        if line.startswith("serving"):
            return proc
    raise AssertionError("serve did not start: " + (proc.stdout.read() if proc.stdout else ""))


def stop_serve(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out


def unique_rows(n_files: int, per_file: int, seed: int) -> tuple[list[list[dict]], set[str]]:
    rng = random.Random(seed)
    topics = ["wildfire", "interest rates", "election", "earthquake", "chip merger", "cup final", "moon lander", "bird flu"]
    files, keys = [], set()
    for f in range(n_files):
        rows = []
        for i in range(per_file):
            g = f"k{f:02d}-{i:04d}"
            rows.append({"guid": g, "title": f"{rng.choice(topics).title()} update {g}", "description": f"Report {i} on {rng.choice(topics)}"})
            keys.add(g)
        if f:  # every file repeats a few rows of the one before: stored once all the same
            rows += files[-1][:10]
        files.append(rows)
    return files, keys


def readme_queries() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), flags=re.S)
    queries = []
    for block in blocks:
        queries += [q.strip() for q in block.split(";") if q.strip() and not all(l.strip().startswith("--") for l in q.strip().splitlines())]
    return queries


@pytest.fixture(scope="session")
def embedder():
    from service.adapters.embedders import MiniLMEmbedder

    return MiniLMEmbedder()


@pytest.fixture
def make_app(tmp_path, embedder):
    from service.bootstrap import App
    from service.config import load_settings

    apps = []

    def make(home: Path | None = None, store=None, **overrides):
        settings = load_settings(home=home or tmp_path / "home", env={}, stable_wait_s=0.3, **overrides)
        app = App(settings, embedder=embedder, store=store)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def write_csv(path: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or list(rows[0].keys())
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="session")
def demo_days(tmp_path_factory):
    """The generated demo stream: (day files, truth by guid)."""
    from service.demo import generate

    out = tmp_path_factory.mktemp("demo")
    files = generate(out, days=6, seed=3)
    truth = {}
    for f in sorted((out / "truth").glob("*.csv")):
        with f.open() as fh:
            for r in csv.DictReader(fh):
                truth[r["guid"]] = r["story"]
    return files, truth


def unit_vectors(rng: np.random.Generator, centres: int, per: int, dim: int = 32, spread: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    c = rng.normal(size=(centres, dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    x = np.repeat(c, per, axis=0) + rng.normal(scale=spread, size=(centres * per, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(centres), per)


def ingest_copies(app, files) -> list:
    """Drop a copy of each file into the app's inbox and ingest it, as the watcher would; the results in order."""
    import shutil

    from service import usecases

    return [usecases.ingest_file(app, Path(shutil.copy(f, app.settings.inbox / Path(f).name))) for f in files]


def _postgres_bin(name: str) -> str | None:
    import glob
    import shutil

    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A throw-away PostgreSQL cluster (Debian's postgresql package) on a free loopback port; yields a URL maker."""
    import pwd
    import shutil
    import socket
    import subprocess

    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (Debian package postgresql); ./run.sh test installs it where it can")
    import tempfile

    # not under pytest's tmp folder: it is private to root, and the server may run as another user
    folder = Path(tempfile.mkdtemp(prefix="newsclust-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as the package's own user
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        shutil.chown(folder, pw.pw_uid, pw.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "newsclust", "--no-sync", "-E", "UTF8"],
                   check=True, capture_output=True)
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(folder / "log"), "-w", "start"], check=True,
                   capture_output=True)
    import psycopg

    counter = iter(range(10**6))

    def new_database() -> str:
        name = f"t{next(counter)}"
        with psycopg.connect(f"host=127.0.0.1 port={port} user=newsclust dbname=postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://newsclust@127.0.0.1:{port}/{name}"

    yield new_database
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """One suite, both databases: an empty SQLite file, or a fresh database on the throw-away PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite'}"
    return request.getfixturevalue("postgres_server")()


# -- a real Milvus server: the PyPI `milvus` embedded server (opt-in, NEWSCLUST_TEST_MILVUS_SERVER) ----------------
import shutil  # noqa: E402
import socket  # noqa: E402
import urllib.request  # noqa: E402


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _clear_stale_pid_file(pid_file) -> None:
    """The embedded server keeps a pid file; after a SIGKILL the next start trips over it."""
    try:
        pid = int(pid_file.read_text().strip() or 0)
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pid_file.unlink(missing_ok=True)


def _start_server(exe: str):
    """One try: (process, data dir) once healthy, else None. Its embedded etcd sometimes loses a leader
    election at start and the server never becomes healthy: a fresh start fixes it."""
    import tempfile

    _clear_stale_pid_file(Path("/run/milvus/standalone.pid"))
    data = Path(tempfile.mkdtemp(prefix="mv"))  # short: the embedded etcd fails to start under pytest's long tmp paths
    log = (data / "server.log").open("w")
    proc = subprocess.Popen([exe, "--data", str(data / "d")], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    end = time.monotonic() + 40
    while time.monotonic() < end:
        try:
            if urllib.request.urlopen("http://127.0.0.1:9091/healthz", timeout=2).read().strip() == b"OK" and not _free(19530):
                return proc, data
        except OSError:
            pass
        time.sleep(1)
    _stop_server(proc, data)
    return None


def _stop_server(proc, data) -> None:
    os.killpg(proc.pid, signal.SIGKILL)  # its graceful stop hangs
    proc.wait(timeout=30)
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def milvus_server():
    exe = os.environ.get("NEWSCLUST_TEST_MILVUS_SERVER")
    if not exe or not os.path.exists(exe):
        pytest.skip("no milvus-server executable (set NEWSCLUST_TEST_MILVUS_SERVER)")
    if not _free(19530):
        pytest.skip("port 19530 is taken")
    for _ in range(4):
        started = _start_server(exe)
        if started:
            break
    else:
        pytest.fail("milvus server did not become healthy in 4 starts")
    yield "http://127.0.0.1:19530"
    _stop_server(*started)


