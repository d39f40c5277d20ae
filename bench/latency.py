"""What a user waits for, beside a running `serve`: each command in a fresh process, as typed.

    python bench/latency.py --n 10000 [--repeat 7] [--code DIR] [--json FILE]

The home holds n synthetic story-shaped documents (bench/scale.py's insert: SQLite rows, vectors through the vector
cache into Milvus Lite, no embedding), clustered once in this process; then `newsclust serve` starts on it and each
figure is measured from outside, with the wall clock:

- search_s: `newsclust search TEXT` (process start, imports, the answer);
- api_search_ms: GET /search?q=TEXT&k=10 on serve's API with a real HTTP client (null where serve has none);
- story_s, status_s: `newsclust story ID`, `newsclust status`;
- file_searchable_s / file_placed_s: a 300-row CSV dropped into the inbox until one of its titles is the top hit of
  a search (the API where there is one, else `newsclust search`) / until serve prints its ingest line (placed by
  prediction); file_embed_s is the embedding time that line reports, the part no API can shorten;
- rebuild_s: `newsclust rebuild` asked beside serve until it returns with the report written; rebuild_stages_s is the
  sum of the stages it printed (graph .. report), rebuild_cluster_s the clustering stages alone (graph .. commit).

--code DIR runs the CLI (and serve) of another checkout, so the same command gives the "before" line on older
code. Prints one JSON line: medians and p95 of each, n, repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUERIES = ["wildfire forces evacuations", "central bank raises rates", "cup final penalty shootout", "election results contested",
           "earthquake shakes the coast", "chip maker merger approved", "moon lander touches down", "bird flu outbreak on farms"]
CLUSTER_STAGES = ("graph", "cluster", "settle", "match", "name", "save_state", "commit")


def stats(values: list[float], scale: float = 1.0, digits: int = 3) -> dict | None:
    if not values:
        return None
    v = np.asarray(values) * scale
    return {"median": round(float(np.median(v)), digits), "p95": round(float(np.percentile(v, 95)), digits), "n": len(v)}


def build_home(home: Path, n: int, seed: int) -> None:
    from bench.scale import _app, insert_phase
    from service import usecases

    insert_phase(argparse.Namespace(n=n, arrivals=0, seed=seed, shape="stories", profile=False, k=15), home)
    app = _app(home, 15)
    try:
        usecases.rebuild(app, write_report_after=False)
    finally:
        app.close()
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(app.settings.resolved_milvus_uri)


class Serve:
    def __init__(self, home: Path, env: dict):  # env's PYTHONPATH is the checkout measured: it runs from there
        self.lines: list[tuple[float, str]] = []
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "workers.console", "--home", str(home), "serve"], env=env,
                                     cwd=env["PYTHONPATH"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        import threading

        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(600):
            raise SystemExit("serve did not start: " + "\n".join(line for _, line in self.lines[-20:]))

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line.rstrip()))
            if line.startswith("serving"):
                self.ready.set()

    def wait_line(self, pattern: str, after: float, timeout: float = 600) -> tuple[float, str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for t, line in list(self.lines):
                if t >= after and re.search(pattern, line):
                    return t, line
            time.sleep(0.05)
        raise SystemExit(f"no line matching {pattern!r} from serve")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def cli(home: Path, env: dict, *args: str) -> tuple[float, str]:
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "workers.console", "--home", str(home), *args], env=env, capture_output=True, text=True,
                         timeout=900, cwd=env["PYTHONPATH"])
    wall = time.monotonic() - t0
    if out.returncode != 0:
        raise SystemExit(f"newsclust {' '.join(args)} failed ({out.returncode}): {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return wall, out.stdout


def api_url(home: Path) -> str | None:
    try:
        return json.loads((home.resolve() / "state" / "api.json").read_text())["url"]
    except (OSError, ValueError, KeyError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=7, help="runs of each one-shot command")
    ap.add_argument("--api-repeat", type=int, default=40, help="API searches")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--code", type=Path, default=ROOT, help="checkout whose CLI and serve are measured (default: this one)")
    ap.add_argument("--skip", default="", help="comma-separated parts to leave out: search,api,story,status,file,rebuild")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--serve-log", type=Path, help="write serve's output here, each line with its second since serve started")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    import httpx

    home = Path(tempfile.mkdtemp(prefix="newsclust-latency-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSCLUST_")}
    env.update({"PYTHONPATH": str(args.code.resolve()), "HF_HUB_OFFLINE": "1", "CI": "1", "NEWSCLUST_REBUILD_INTERVAL_S": "86400",
                "NEWSCLUST_STABLE_WAIT_S": "0.3", "NEWSCLUST_NOISE_POOL_TRIGGER": "100000"})
    result: dict = {"n": args.n, "code": "this checkout" if args.code.resolve() == ROOT else str(args.code), "repeat": args.repeat}
    serve = None
    try:
        t0 = time.monotonic()
        build_home(home, args.n, args.seed)
        result["build_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        serve = Serve(home, env)
        result["serve_start_s"] = round(time.monotonic() - t0, 1)
        url = api_url(home)
        result["api"] = url is not None
        story_id = None
        if "search" not in skip:
            walls = []
            for i in range(args.repeat):
                wall, out = cli(home, env, "search", QUERIES[i % len(QUERIES)], "--json")
                walls.append(wall)
                story_id = story_id or next((h["story_id"] for h in json.loads(out) if h["story_id"] not in (None, -1)), None)
            result["search_s"] = stats(walls)
        if url and "api" not in skip:
            with httpx.Client(base_url=url, timeout=60) as http:
                http.get("/search", params={"q": "warm up", "k": 10})
                times = []
                for i in range(args.api_repeat):
                    t0 = time.monotonic()
                    r = http.get("/search", params={"q": f"{QUERIES[i % len(QUERIES)]} {i}", "k": 10})
                    times.append(time.monotonic() - t0)
                    r.raise_for_status()
            result["api_search_ms"] = stats(times, 1000.0, 1)
        if "story" not in skip:
            if story_id is None:
                import sqlite3

                with sqlite3.connect(home / "newsclust.sqlite") as c:
                    story_id = c.execute("SELECT cluster_id FROM cluster_snapshots ORDER BY size DESC LIMIT 1").fetchone()[0]
            result["story_s"] = stats([cli(home, env, "story", str(story_id))[0] for _ in range(args.repeat)])
        if "status" not in skip:
            result["status_s"] = stats([cli(home, env, "status")[0] for _ in range(args.repeat)])
        if "file" not in skip:
            result.update(drop_a_file(home, env, serve, url))
        if "rebuild" not in skip:
            wait_idle(home)  # a rebuild the dropped file set off (a new story in the noise pool) is not the user's
            walls, staged, clustered, each = [], [], [], []
            for _ in range(max(1, args.repeat // 3)):
                asked_at = time.monotonic() - serve.started  # on the clock of --serve-log's lines
                wall, out = cli(home, env, "rebuild")
                stages = dict((k, float(v)) for k, v in re.findall(r"(\w+) ([\d.]+)s", out.split("stages:", 1)[1].splitlines()[0]))
                walls.append(wall)
                staged.append(sum(stages.values()))
                clustered.append(sum(v for k, v in stages.items() if k in CLUSTER_STAGES))
                each.append({"wall_s": round(wall, 2), "cluster_s": round(clustered[-1], 2), "stages": stages, "load": os.getloadavg()[0],
                             "asked_at": round(asked_at, 2)})
                assert "report:" in out, out
            result["rebuild_s"], result["rebuild_stages_s"], result["rebuild_cluster_s"] = stats(walls), stats(staged), stats(clustered)
            result["rebuilds"] = each  # each rebuild: its wall, its clustering stages, every stage, the 1-min load average after it
    finally:
        if serve:
            serve.stop()
            if args.serve_log:  # what serve said meanwhile (its ingest line's stages, rebuilds it set off)
                args.serve_log.write_text("\n".join(f"{t - serve.started:8.2f} {line}" for t, line in serve.lines) + "\n")
        shutil.rmtree(home, ignore_errors=True)
    line = json.dumps(result)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")


def wait_idle(home: Path, timeout: float = 900) -> None:
    """Until serve's status file has shown no rebuild in progress for two seconds."""
    end, quiet_since = time.monotonic() + timeout, None
    while time.monotonic() < end:
        from service.state import read_status, status_path

        running = (read_status(status_path(home / "state")) or {}).get("rebuild_running_since")
        quiet_since = None if running else (quiet_since or time.monotonic())
        if quiet_since and time.monotonic() - quiet_since >= 2.0:
            return
        time.sleep(0.2)


def drop_a_file(home: Path, env: dict, serve: Serve, url: str | None) -> dict:
    """300 new rows dropped into the inbox (written aside, then renamed in): until searchable, until placed."""
    import csv

    import httpx

    rng = np.random.default_rng(7)
    words = ["harbour", "strike", "vote", "storm", "merger", "trial", "summit", "drought", "rocket", "vaccine", "border", "festival"]
    rows = [{"guid": f"drop-{i}", "title": f"{' '.join(rng.choice(words, 4))} latency probe {i}", "description": ""} for i in range(300)]
    part = home / "inbox" / "probe.csv.part"
    with part.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["guid", "title", "description"])
        w.writeheader()
        w.writerows(rows)
    probe = rows[123]["title"]
    t0 = time.monotonic()
    part.rename(home / "inbox" / "probe.csv")
    searchable = None
    deadline = t0 + 900
    while time.monotonic() < deadline:
        if url:
            hits = httpx.get(f"{url}/search", params={"q": probe, "k": 1}, timeout=60).json()["hits"]
        else:
            hits = json.loads(cli(home, env, "search", probe, "--k", "1", "--json")[1])
        if hits and hits[0]["title"] == probe:
            searchable = time.monotonic() - t0
            break
        time.sleep(0.1)
    placed_at, line = serve.wait_line(r"^probe\.csv: 300 rows", t0)
    embed = re.search(r"embed ([\d.]+)s", line)
    return {"file_searchable_s": None if searchable is None else round(searchable, 2), "file_placed_s": round(placed_at - t0, 2),
            "file_embed_s": float(embed.group(1)) if embed else None}


if __name__ == "__main__":
    main()
