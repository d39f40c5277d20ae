"""Soak test of `newsclust serve` (issue 12): files at random moments, faults at random moments, then an audit.

    .venv/bin/python bench/soak.py [--minutes 10] [--seed 1] [--home DIR] [--settle 240] [--verbose] [--snapshot]

Runs `python -m workers.console --home HOME serve` (output in HOME/serve.log) with NEWSCLUST_FAILPOINT=outages
and short timeouts, and for the given minutes:

- a generator drops a file every 2-15 s: good files (20-150 synthetic headlines of a few made-up stories,
  written as NAME.part and renamed into the inbox), several files all called x.csv handed over in one
  `newsclust ingest --no-wait`, corrections (guids sent before with a changed title, plus a few identical
  repeats), files with bad rows (blank title, a title of zero-width spaces, published_at
  0001-01-01T00:00:00+05:00, a NUL in a description) and bad files (empty, header only, no title column,
  semicolon-delimited, broken quoting, binary junk). Every row sent is kept in a ledger;
- an injector, at random moments: holds SQLite's write lock for 5-40 s, makes the vector store unreachable
  for 5-30 s (HOME/faults/vector-store-down, read by the `outages` failpoint), truncates a file under
  HOME/state/;
- every ~20 s, `newsclust status --json` (must exit 0).

At the end: injections stop, the inbox is given a few minutes to drain (files left must be listed by status
with a reason), `newsclust rebuild` is asked of the running serve, serve gets SIGTERM. Then the audit:
rows in SQLite exactly once with the newest title, rejected rows in a rejects CSV with their reason,
Milvus ids == SQLite ids, every file in processed/, failed/ (with a reason) or waiting with a reason,
no assignment without its document, runs bounded by requests + schedule + arrivals + failures, no dead
thread, serve exit 0. Prints a table and one JSON line (prefix `SOAK_RESULT `); exits 1 when a check fails.
Artifacts: HOME/serve.log, HOME/soak/{injections,status,commands}.jsonl, HOME/soak/result.json.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CLI = [sys.executable, "-m", "workers.console"]
HEADER = ["guid", "title", "description", "published_at"]
SERVE_SETTINGS = {
    "NEWSCLUST_FAILPOINT": "outages",
    "NEWSCLUST_DB_BUSY_TIMEOUT_S": "2",
    "NEWSCLUST_RETRY_FIRST_S": "1",
    "NEWSCLUST_RETRY_MAX_S": "20",
    "NEWSCLUST_REBUILD_INTERVAL_S": "60",
    "NEWSCLUST_STABLE_WAIT_S": "0.3",
    "CI": "1",
}
REBUILD_INTERVAL_S = int(SERVE_SETTINGS["NEWSCLUST_REBUILD_INTERVAL_S"])
RETRY_FIRST_S = float(SERVE_SETTINGS["NEWSCLUST_RETRY_FIRST_S"])

# ---- synthetic headlines ------------------------------------------------------------------------------
PLACES = ["Varnhold", "Port Elsin", "Mirrowdale", "Kestrel Bay", "Oskarvik", "Lundmere", "Tavrin", "Hollowcrest"]
STORIES = [
    ("wildfire",
     ["Wildfire spreads toward {place} as winds pick up", "Firefighters battle blaze in hills above {place}",
      "Evacuations ordered in {place} as wildfire nears homes", "Smoke from {place} wildfire closes {n} schools",
      "Crews contain part of the {place} wildfire after {n} days"],
     ["Crews worked through the night as dry winds pushed the fire toward {place}.",
      "Officials said {n} homes were threatened and roads out of {place} were closed."]),
    ("central bank",
     ["Central bank of {place} raises interest rates by {n} basis points", "Inflation in {place} cools as rate rises bite",
      "{place} central bank signals pause in rate hikes", "Mortgage costs climb in {place} after rate decision",
      "Markets in {place} rally on softer inflation figures"],
     ["The bank's board voted {n} to 2 to lift borrowing costs again.",
      "Economists in {place} expect one more increase before the summer."]),
    ("football cup",
     ["{place} United reach cup final after {n}-1 win", "Striker scores twice as {place} knock out holders",
      "{place} fans celebrate first cup final in {n} years", "Injury doubt for {place} captain ahead of cup final",
      "Cup final tickets sell out in {n} minutes in {place}"],
     ["The semi-final was decided by a late goal in front of a record crowd in {place}.",
      "The manager praised his squad after {n} matches unbeaten."]),
    ("mars probe",
     ["Mars probe launched from {place} spaceport reaches orbit", "Scientists in {place} receive first images from Mars probe",
      "Mars probe finds signs of ancient water, {place} team says", "Mars lander built in {place} survives dust storm",
      "{place} mission control extends Mars probe by {n} months"],
     ["The probe travelled {n} million kilometres before entering orbit.",
      "Engineers in {place} said every instrument is working as planned."]),
    ("earthquake",
     ["Magnitude {n} earthquake shakes {place}", "Rescuers search rubble in {place} after earthquake",
      "Aftershocks rattle {place} a day after deadly quake", "Aid arrives in {place} as quake death toll rises",
      "Schools in {place} reopen {n} weeks after earthquake"],
     ["Buildings collapsed across the old town of {place} and power lines came down.",
      "Seismologists recorded {n} aftershocks overnight."]),
    ("chip plant",
     ["Chipmaker to build {n} billion plant near {place}", "{place} chip plant delayed by equipment shortage",
      "Thousands of jobs promised by new {place} chip factory", "Union talks stall at {place} semiconductor plant",
      "{place} chip plant starts production ahead of schedule"],
     ["The factory will make processors for cars and phones, the company said.",
      "Local officials in {place} approved {n} million in tax breaks."]),
]
BAD_ROW_KINDS = ("blank_title", "zw_title", "ancient_date", "nul_description")
REJECTED_KINDS = {"blank_title": "blank title", "zw_title": "invisible"}  # expected reason (substring)
REPAIRABLE_KINDS = ("ancient_date", "nul_description")  # repaired (stored) or rejected with a reason: never lost
BAD_FILE_KINDS = ("empty", "header_only", "no_title_column", "semicolon", "broken_quoting", "binary")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())


@dataclass
class Row:
    guid: str
    title: str
    description: str
    published_at: str
    kind: str = "good"  # good, correction, repeat, blank_title, zw_title, ancient_date, nul_description, in_bad_file
    line: int = 0  # physical line in its file (header is line 1)


@dataclass
class SentFile:
    seq: int
    kind: str  # good, handoff, correction, badrows, badfile
    name: str  # the name we gave it (hand-offs: x.csv; the inbox name is x.<token>.csv)
    sha256: str
    size: int
    sent_at: float
    rows: list[Row] = field(default_factory=list)
    bad_kind: str | None = None
    handed: bool = True  # hand-offs: whether the ingest command said it handed them
    where: str | None = None  # processed, failed, waiting, missing (after the run)
    final_name: str | None = None
    note: str = ""

    @property
    def stem(self) -> str:
        return Path(self.name).stem


def csv_bytes(rows: list[Row], header: list[str] = HEADER, delimiter: str = ",") -> bytes:
    buf = io.StringIO(newline="")
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(header)
    for i, r in enumerate(rows):
        r.line = i + 2
        w.writerow([r.guid, r.title, r.description, r.published_at])
    return buf.getvalue().encode("utf-8")


# ---- the run --------------------------------------------------------------------------------------
class Soak:
    def __init__(self, args):
        self.args = args
        self.home: Path = args.home
        self.minutes = args.minutes
        self.t0 = time.monotonic()
        self.stop = threading.Event()  # stop generating and injecting
        self.lock = threading.Lock()
        self.files: list[SentFile] = []
        self.guid_counter = 0
        self.injections: list[dict] = []
        self.statuses: list[dict] = []
        self.commands: list[dict] = []  # ingest hand-offs and the final rebuild
        self.harness_errors: list[str] = []
        self.slow_writers: list[threading.Thread] = []  # gen_slow's writers, joined before the inbox settles
        self.gen_rng = random.Random(args.seed)
        self.inj_rng = random.Random(args.seed * 7919 + 1)
        self.row_rng = random.Random(args.seed * 104729 + 2)
        self.soak_dir = self.home / "soak"
        self.src = ROOT  # where serve and the commands run from (a copy with --snapshot)
        self.tmp = Path(tempfile.mkdtemp(prefix="newsclust-soak-handoff-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSCLUST_")}
        self.env.update(SERVE_SETTINGS)
        self.env.update({"HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
        self.serve: subprocess.Popen | None = None
        self.serve_rc: int | None = None
        self.serve_died_early = False
        self.run_started = self.run_ended = 0.0
        self.serve_started = self.serve_stopped = 0.0
        self.final_status: dict | None = None
        self.rebuild_requests = 0
        self._hash_cache: dict[tuple, str] = {}

    # -- small helpers ------------------------------------------------------------------
    def t(self) -> float:
        return time.monotonic() - self.t0

    def say(self, msg: str) -> None:
        print(f"[{self.t():7.1f}s] {msg}", flush=True)

    def record(self, name: str, entry: dict) -> None:
        with (self.soak_dir / name).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")

    def cli(self, *args: str, timeout: float = 180) -> tuple[int, str, float]:
        t0 = time.monotonic()
        try:
            p = subprocess.run([*CLI, "--home", str(self.home), *args], cwd=self.src, env=self.env, capture_output=True,
                               text=True, timeout=timeout)
            return p.returncode, p.stdout + p.stderr, time.monotonic() - t0
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode("utf-8", "replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            return 124, out + f"\n(timed out after {timeout}s)", time.monotonic() - t0

    def sha_of(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except OSError:
            return None
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key not in self._hash_cache:
            try:
                self._hash_cache[key] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                return None
        return self._hash_cache[key]

    def index(self) -> dict[str, list[tuple[str, str]]]:
        """sha256 -> [(place, name)] of the data files in processed/, failed/ and inbox/."""
        out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for place in ("processed", "failed", "inbox"):
            folder = self.home / place
            if not folder.is_dir():
                continue
            for p in sorted(folder.iterdir()):
                n = p.name
                if not p.is_file() or n.endswith((".reason.txt", ".rejects.csv", ".tmp", ".part")) or n.startswith("."):
                    continue
                sha = self.sha_of(p)
                if sha:
                    out[sha].append((place, n))
        return out

    @staticmethod
    def name_matches(f: SentFile, name: str) -> bool:
        return name == f.name or name.startswith(f.stem + ".")

    # -- serve --------------------------------------------------------------------------
    def start_serve(self) -> None:
        log = (self.home / "serve.log").open("w", encoding="utf-8")
        cmd = [*CLI, "--home", str(self.home)] + (["--verbose"] if self.args.verbose else []) + ["serve"]
        self.serve = subprocess.Popen(cmd, cwd=self.src, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.serve_started = time.monotonic()
        self.say(f"serve started (pid {self.serve.pid}): {' '.join(cmd[1:])}")
        end = time.monotonic() + 300
        while time.monotonic() < end:
            if self.serve.poll() is not None:
                raise RuntimeError(f"serve exited at start with {self.serve.returncode}: see {self.home / 'serve.log'}")
            if "serving " in (self.home / "serve.log").read_text(encoding="utf-8", errors="replace"):
                self.say("serve is ready")
                return
            time.sleep(0.5)
        raise RuntimeError("serve did not say 'serving' within 300 s")

    def serve_alive(self) -> bool:
        return self.serve is not None and self.serve.poll() is None

    # -- generator ----------------------------------------------------------------------
    def next_guid(self) -> str:
        self.guid_counter += 1
        return f"soak{self.args.seed}-{self.guid_counter:06d}"

    def headline(self, kind: str = "good") -> Row:
        rng = self.row_rng
        _, titles, descs = rng.choice(STORIES)
        place, n = rng.choice(PLACES), rng.randint(2, 90)
        title = rng.choice(titles).format(place=place, n=n)
        desc = rng.choice(descs).format(place=place, n=n)
        published = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - rng.randint(0, 5 * 86400)))
        return Row(self.next_guid(), title, desc, published, kind)

    def good_rows(self, lo: int = 20, hi: int = 150) -> list[Row]:
        return [self.headline() for _ in range(self.gen_rng.randint(lo, hi))]

    def drop(self, kind: str, data: bytes, rows: list[Row], bad_kind: str | None = None) -> SentFile:
        seq = len(self.files) + 1
        name = f"{seq:04d}-{kind}{'-' + bad_kind if bad_kind else ''}.csv"
        part = self.home / "inbox" / (name + ".part")
        part.write_bytes(data)
        os.replace(part, self.home / "inbox" / name)
        f = SentFile(seq, kind, name, hashlib.sha256(data).hexdigest(), len(data), self.t(), rows, bad_kind)
        with self.lock:
            self.files.append(f)
        self.say(f"drop {name}: {len(rows)} rows")
        return f

    def gen_good(self) -> None:
        rows = self.good_rows()
        self.drop("good", csv_bytes(rows), rows)

    def gen_slow(self) -> None:
        """A writer that does not rename (issue 25): the file grows under its final name in the inbox, a row every
        0.5-3 s (longer than stable_wait_s), held open or reopened to append, sometimes stopping mid-row for a while."""
        rows = self.good_rows(4, 12)
        data = csv_bytes(rows)
        with self.lock:
            seq = len(self.files) + 1
            name = f"{seq:04d}-slow.csv"
            self.files.append(SentFile(seq, "slow", name, hashlib.sha256(data).hexdigest(), len(data), self.t(), rows))
        hold = self.gen_rng.random() < 0.5
        pauses = [self.gen_rng.uniform(0.5, 3.0) for _ in rows]
        cut = self.gen_rng.random() < 0.5
        writer = threading.Thread(target=self._write_slowly, args=(self.home / "inbox" / name, data.splitlines(keepends=True), pauses, hold, cut),
                                  name=f"slow-{name}", daemon=True)
        writer.start()
        self.slow_writers.append(writer)
        self.say(f"slow {name}: {len(rows)} rows, {'held open' if hold else 'reopened for each row'}{', cut mid-row once' if cut else ''}")

    def _write_slowly(self, path: Path, lines: list[bytes], pauses: list[float], hold: bool, cut: bool) -> None:
        try:
            fh = path.open("wb")
            fh.write(lines[0])
            fh.flush()
            for i, (line, pause) in enumerate(zip(lines[1:], pauses)):
                time.sleep(pause)
                if not hold:
                    fh.close()
                    fh = path.open("ab")
                if cut and i == len(pauses) // 2:  # half a row, a pause, then the rest
                    fh.write(line[: len(line) // 2])
                    fh.flush()
                    time.sleep(pause)
                    line = line[len(line) // 2:]
                fh.write(line)
                fh.flush()
            fh.close()
        except Exception as exc:  # noqa: BLE001 — the harness's own failure: reported, not hidden
            self.harness_errors.append(f"slow writer {path.name}: {type(exc).__name__}: {exc}")

    def gen_handoff(self) -> None:
        k = self.gen_rng.randint(2, 4)
        batch = []
        for _ in range(k):
            folder = Path(tempfile.mkdtemp(dir=self.tmp))
            rows = self.good_rows()
            data = csv_bytes(rows)
            (folder / "x.csv").write_bytes(data)
            batch.append((folder / "x.csv", data, rows))
        rc, out, secs = self.cli("ingest", "--no-wait", *[str(p) for p, _, _ in batch], timeout=120)
        handed = rc == 0 and f"handed {k} file(s)" in out
        with self.lock:
            for _, data, rows in batch:
                seq = len(self.files) + 1
                self.files.append(SentFile(seq, "handoff", "x.csv", hashlib.sha256(data).hexdigest(), len(data), self.t(), rows,
                                           handed=handed))
        entry = {"t": round(self.t(), 1), "at": now_iso(), "command": "ingest --no-wait", "files": k, "rc": rc,
                 "seconds": round(secs, 2), "output": out.strip()[-2000:]}
        self.commands.append(entry)
        self.record("commands.jsonl", entry)
        self.say(f"hand-off of {k} files called x.csv: rc {rc} in {secs:.1f}s: {out.strip().splitlines()[-1] if out.strip() else ''}")

    def correctable(self) -> list[tuple[Row, str]]:
        """Good guids whose latest carrying file is in processed/ (so the correction arrives after it): (row, current title)."""
        idx = self.index()
        processed = {sha for sha, places in idx.items() if any(p == "processed" for p, _ in places)}
        latest: dict[str, tuple[SentFile, Row]] = {}
        with self.lock:
            files = list(self.files)
        for f in files:
            if f.kind not in ("good", "handoff", "correction"):
                continue
            for r in f.rows:
                latest[r.guid] = (f, r)
        return [(r, r.title) for f, r in latest.values() if f.sha256 in processed]

    def gen_correction(self) -> None:
        pool = self.correctable()
        if len(pool) < 5:
            self.gen_good()
            return
        rng = self.gen_rng
        chosen = rng.sample(pool, min(len(pool), rng.randint(20, 150)))
        rows = []
        for r, title in chosen:
            if rng.random() < 0.15:  # the same text again: a no-op
                rows.append(Row(r.guid, title, r.description, r.published_at, "repeat"))
            else:
                base = title.split(" [rev ")[0]
                rev = int(title.split(" [rev ")[1].rstrip("]")) + 1 if " [rev " in title else 1
                rows.append(Row(r.guid, f"{base} [rev {rev}]", r.description, r.published_at, "correction"))
        self.drop("correction", csv_bytes(rows), rows)

    def gen_badrows(self) -> None:
        rng = self.gen_rng
        rows = self.good_rows(20, 100)
        for _ in range(rng.randint(1, 4)):
            kind = rng.choice(BAD_ROW_KINDS)
            bad = self.headline(kind)
            if kind == "blank_title":
                bad.title = rng.choice(["", "   "])
            elif kind == "zw_title":
                bad.title = "\u200b" * rng.randint(1, 4)
            elif kind == "ancient_date":
                bad.published_at = "0001-01-01T00:00:00+05:00"
            else:
                cut = rng.randint(1, len(bad.description) - 1)
                bad.description = bad.description[:cut] + "\x00" + bad.description[cut:]
            rows.insert(rng.randint(0, len(rows)), bad)
        self.drop("badrows", csv_bytes(rows), rows)

    def gen_badfile(self) -> None:
        rng = self.gen_rng
        kind = rng.choice(BAD_FILE_KINDS)
        rows: list[Row] = []
        if kind == "empty":
            data = b""
        elif kind == "header_only":
            data = (",".join(HEADER) + "\n").encode()
        elif kind == "no_title_column":
            rows = self.good_rows(5, 20)
            data = csv_bytes(rows, header=["guid", "heading", "summary", "published_at"])
        elif kind == "semicolon":
            rows = self.good_rows(5, 20)
            data = csv_bytes(rows, delimiter=";")
        elif kind == "broken_quoting":
            rows = self.good_rows(5, 20)
            broken = self.headline()
            data = csv_bytes(rows) + f'{broken.guid},"{broken.title} "quoted" badly",{broken.description},{broken.published_at}\n'.encode()
            rows.append(broken)
        else:
            data = rng.randbytes(rng.randint(2048, 8192))
        for r in rows:
            r.kind = "in_bad_file"
        self.drop("badfile", data, rows, bad_kind=kind)

    def generator(self) -> None:
        deadline = self.run_started + self.minutes * 60
        actions = [(self.gen_good, 0.24), (self.gen_handoff, 0.12), (self.gen_correction, 0.20), (self.gen_badrows, 0.14),
                   (self.gen_badfile, 0.18), (self.gen_slow, 0.12)]
        first = True
        while not self.stop.is_set():
            wait = self.gen_rng.uniform(0.5, 2) if first else self.gen_rng.uniform(2, 15)
            if first:  # every soak has at least one file written slowly inside the inbox
                first = False
                self.gen_slow()
                continue
            first = False
            if self.stop.wait(wait) or time.monotonic() >= deadline:
                for writer in self.slow_writers:  # a file still being written is finished: its rows count
                    writer.join(timeout=120)
                return
            action = self.gen_rng.choices([a for a, _ in actions], [w for _, w in actions])[0]
            try:
                action()
            except Exception as exc:  # noqa: BLE001 — the harness's own failure: reported, not hidden
                self.harness_errors.append(f"generator {action.__name__}: {type(exc).__name__}: {exc}")
                self.say(f"HARNESS ERROR in generator: {type(exc).__name__}: {exc}")

    # -- injector -----------------------------------------------------------------------
    def inject(self, kind: str, **detail) -> dict:
        entry = {"t": round(self.t(), 1), "at": now_iso(), "kind": kind, **detail}
        self.injections.append(entry)
        self.record("injections.jsonl", entry)
        self.say(f"inject {kind}: {json.dumps(detail, default=str)}")
        return entry

    def inj_lock(self) -> None:
        hold = self.inj_rng.uniform(5, 40)
        t0 = time.monotonic()
        c = sqlite3.connect(self.home / "newsclust.sqlite", timeout=30, isolation_level=None)
        try:
            c.execute("BEGIN EXCLUSIVE")
            entry = self.inject("sqlite_lock", hold_s=round(hold, 1), waited_for_lock_s=round(time.monotonic() - t0, 2))
            self.stop.wait(hold)
            c.execute("ROLLBACK")
        finally:
            c.close()
        entry["released_t"] = round(self.t(), 1)
        self.say("  sqlite lock released")

    def inj_outage(self) -> None:
        hold = self.inj_rng.uniform(5, 30)
        switch = self.home / "faults" / "vector-store-down"
        switch.parent.mkdir(parents=True, exist_ok=True)
        switch.write_text("soak\n")
        try:
            entry = self.inject("vector_store_down", hold_s=round(hold, 1))
            self.stop.wait(hold)
        finally:
            switch.unlink(missing_ok=True)
        entry["released_t"] = round(self.t(), 1)
        self.say("  vector store back")

    def inj_truncate(self) -> None:
        state = self.home / "state"
        candidates = sorted([*state.glob("run-*.npz"), *state.glob("layout-*.npz"), *state.glob("vectors-headlines/*.f32"),
                             *state.glob("vectors-headlines/*.i64")])
        candidates = [p for p in candidates if p.is_file() and p.stat().st_size > 1]
        if not candidates:
            self.inject("truncate_state", skipped="no state file yet")
            return
        target = self.inj_rng.choice(candidates)
        size = target.stat().st_size
        new = self.inj_rng.randint(0, size - 1)
        with target.open("r+b") as fh:
            fh.truncate(new)
        self.inject("truncate_state", file=str(target.relative_to(self.home)), size=size, truncated_to=new)

    def injector(self) -> None:
        deadline = self.run_started + self.minutes * 60
        kinds = [(self.inj_lock, 0.4), (self.inj_outage, 0.35), (self.inj_truncate, 0.25)]
        if self.stop.wait(self.inj_rng.uniform(5, 15)):
            return
        while not self.stop.is_set() and time.monotonic() < deadline:
            action = self.inj_rng.choices([a for a, _ in kinds], [w for _, w in kinds])[0]
            try:
                action()
            except Exception as exc:  # noqa: BLE001
                self.harness_errors.append(f"injector {action.__name__}: {type(exc).__name__}: {exc}")
                self.say(f"HARNESS ERROR in injector: {type(exc).__name__}: {exc}")
            if self.stop.wait(self.inj_rng.uniform(3, 20)):
                return

    # -- status poller ------------------------------------------------------------------
    def status(self) -> dict:
        rc, out, secs = self.cli("status", "--json", timeout=120)
        entry = {"t": round(self.t(), 1), "at": now_iso(), "rc": rc, "seconds": round(secs, 2)}
        try:
            st = json.JSONDecoder().raw_decode(out[out.index("{"):])[0] if rc == 0 else None
        except ValueError:  # no JSON object in the output
            st = None
        if st is None:
            entry["output"] = out[-3000:]
        else:
            entry.update(documents=st.get("documents"), inbox_backlog=st.get("inbox_backlog"), files=st.get("files"),
                         waiting=[(w.get("file"), w.get("state"), w.get("attempts")) for w in st.get("files_waiting") or []],
                         rebuild_running_since=st.get("rebuild_running_since"), last_error=st.get("last_error"))
        self.statuses.append(entry)
        self.record("status.jsonl", entry)
        entry["_json"] = st
        return entry

    def poller(self) -> None:
        while not self.stop.wait(20):
            try:
                e = self.status()
                self.say(f"status: rc {e['rc']} in {e['seconds']}s, {e.get('documents')} documents, backlog {e.get('inbox_backlog')}, "
                         f"waiting {len(e.get('waiting') or [])}" + ("" if e["rc"] == 0 else f"\n{e.get('output', '')}"))
            except Exception as exc:  # noqa: BLE001
                self.harness_errors.append(f"status poller: {type(exc).__name__}: {exc}")

    # -- the whole run ------------------------------------------------------------------
    def run(self) -> int:
        (self.home / "inbox").mkdir(parents=True, exist_ok=True)
        self.soak_dir.mkdir(parents=True, exist_ok=True)
        if self.args.snapshot:
            self.src = self.tmp / "src"
            shutil.copytree(ROOT, self.src, ignore=shutil.ignore_patterns(".venv", ".git", "out", "__pycache__", "*.egg-info",
                                                                          ".pytest_cache", ".hypothesis", "newsclust-home",
                                                                          "*.db", "*.sqlite", "test-output"))
            sys.path.insert(0, str(self.src))  # the audit reads ids and Milvus with the same code
        self.say(f"soak: {self.minutes} min, seed {self.args.seed}, home {self.home}, code from {self.src}")
        self.start_serve()
        self.run_started = time.monotonic()
        threads = [threading.Thread(target=fn, name=fn.__name__, daemon=True) for fn in (self.generator, self.injector, self.poller)]
        for th in threads:
            th.start()
        deadline = self.run_started + self.minutes * 60
        while time.monotonic() < deadline:
            if not self.serve_alive():
                self.serve_died_early = True
                self.say(f"serve EXITED during the soak with {self.serve.returncode}")
                break
            time.sleep(1)
        self.run_ended = time.monotonic()
        self.say("time is up: no more files, no more injections")
        self.stop.set()
        for th in threads:
            th.join(timeout=120)
            if th.is_alive():
                self.harness_errors.append(f"thread {th.name} did not stop")
        (self.home / "faults" / "vector-store-down").unlink(missing_ok=True)

        if self.serve_alive():
            self.settle()
            self.say("asking serve to rebuild (`newsclust rebuild`, waits for the answer)")
            self.rebuild_requests += 1
            rc, out, secs = self.cli("rebuild", timeout=900)
            entry = {"t": round(self.t(), 1), "at": now_iso(), "command": "rebuild", "rc": rc, "seconds": round(secs, 2),
                     "output": out.strip()[-3000:]}
            self.commands.append(entry)
            self.record("commands.jsonl", entry)
            self.say(f"rebuild: rc {rc} in {secs:.1f}s\n{out.strip()}")
            self.final_status = self.status().get("_json")
            self.say("SIGTERM to serve")
            self.serve.send_signal(signal.SIGTERM)
            try:
                self.serve_rc = self.serve.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.say("serve did not stop within 120 s of SIGTERM: killed")
                self.serve.kill()
                self.serve.wait()
                self.serve_rc = "killed after 120 s"
        else:
            self.serve_rc = self.serve.returncode
        self.serve_stopped = time.monotonic()
        self.say(f"serve exited with {self.serve_rc}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self.audit()

    def settle(self) -> None:
        """Until the inbox is empty, or holds only files status lists with a reason (parked, or still failing a minute after the faults ended)."""
        end = time.monotonic() + self.args.settle
        calm_since = time.monotonic()
        while True:
            inbox = sorted(p.name for p in (self.home / "inbox").iterdir() if p.is_file() and not p.name.startswith("."))
            if not inbox:
                self.say("inbox empty")
                return
            st = self.status().get("_json") or {}
            waiting = {w["file"]: w for w in st.get("files_waiting") or [] if w.get("reason")}
            listed = all(n in waiting for n in inbox)
            parked = listed and all(waiting[n].get("state") == "parked" for n in inbox)
            if parked or (listed and time.monotonic() - calm_since > 60):
                self.say(f"inbox holds {len(inbox)} file(s), each listed by status with a reason: {inbox}")
                return
            if time.monotonic() > end:
                self.say(f"inbox did not settle within {self.args.settle}s: {inbox}")
                return
            self.say(f"waiting for the inbox to drain: {len(inbox)} file(s) {inbox[:6]}{'...' if len(inbox) > 6 else ''}")
            time.sleep(5)

    # -- audit --------------------------------------------------------------------------
    def audit(self) -> int:
        from service.domain import document_id

        checks: list[tuple[str, bool, str]] = []

        def check(name: str, ok: bool, detail: str = "") -> None:
            checks.append((name, bool(ok), detail))

        home = self.home
        waiting_final = {w["file"]: w for w in (self.final_status or {}).get("files_waiting") or []}

        # where each file ended
        idx = self.index()
        used: set[tuple[str, str]] = set()
        order = {"processed": 0, "failed": 1, "inbox": 2}
        for f in self.files:
            cands = sorted((c for c in idx.get(f.sha256, []) if c not in used and self.name_matches(f, c[1])), key=lambda c: order[c[0]])
            if not cands:
                f.where = "missing" if f.handed else "not handed"
                continue
            place, name = cands[0]
            used.add(cands[0])
            f.final_name = name
            if place == "processed":
                f.where = "processed"
            elif place == "failed":
                f.where = "failed"
                if not (home / "failed" / (name + ".reason.txt")).is_file():
                    f.note = "no .reason.txt"
            else:
                w = waiting_final.get(name)
                f.where = "waiting" if w and w.get("reason") else "inbox, not listed"
                f.note = (w or {}).get("reason") or ""

        by_where = Counter(f.where for f in self.files)
        good_kinds = ("good", "handoff", "correction", "badrows", "slow")
        good_failed = [f for f in self.files if f.kind in good_kinds and f.where == "failed"]
        bad_not_failed = [f for f in self.files if f.kind == "badfile" and f.where not in ("failed", "waiting")]
        lost = [f for f in self.files if f.where in ("missing", "inbox, not listed")]
        no_reason = [f for f in self.files if f.where == "failed" and f.note]
        check("every file in processed/, failed/ or waiting", not lost,
              f"{len(self.files)} files: " + ", ".join(f"{n} {k}" for k, n in sorted(by_where.items()))
              + (f"; lost: {[(f.name, f.final_name, f.where) for f in lost][:5]}" if lost else ""))
        check("failed/ files have a reason", not no_reason, f"{len(no_reason)} without NAME.reason.txt: {[f.final_name for f in no_reason][:5]}")
        check("no good file in failed/", not good_failed,
              "; ".join(f"{f.name} -> {f.final_name}: {self._reason(f)}" for f in good_failed[:5]))
        check("every bad file in failed/", not bad_not_failed, "; ".join(f"{f.name} ({f.bad_kind}): {f.where}" for f in bad_not_failed[:5]))
        check("hand-off commands exit 0", all(c["rc"] == 0 for c in self.commands if c["command"].startswith("ingest")),
              f"{sum(1 for c in self.commands if c['command'].startswith('ingest'))} calls; rc " +
              str(Counter(c["rc"] for c in self.commands if c["command"].startswith("ingest"))))
        not_handed = [f for f in self.files if not f.handed]

        # rows: expected newest titles from the files that were processed, in the order sent
        expected: dict[str, str] = {}
        sent_good_guids: set[str] = set()
        rejected_expected: list[tuple[SentFile, Row]] = []
        repairable: list[tuple[SentFile, Row]] = []
        bad_file_rows: list[Row] = []
        n_rows = Counter()
        for f in self.files:
            for r in f.rows:
                n_rows[r.kind] += 1
            if f.kind == "badfile":
                bad_file_rows += f.rows
                continue
            for r in f.rows:
                if r.kind in REJECTED_KINDS:
                    if f.where == "processed":
                        rejected_expected.append((f, r))
                elif r.kind in REPAIRABLE_KINDS:
                    if f.where == "processed":
                        repairable.append((f, r))
                else:
                    sent_good_guids.add(r.guid)
                    if f.where == "processed":
                        expected[r.guid] = r.title

        with sqlite3.connect(home / "newsclust.sqlite") as c:
            docs = {k: (i, t, d, p) for i, k, t, d, p in c.execute("SELECT id, key, title, description, published_at FROM documents")}
            n_docs = c.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            sqlite_ids = [r[0] for r in c.execute("SELECT id FROM documents")]
            orphans = c.execute("SELECT COUNT(*) FROM assignments a LEFT JOIN documents d ON d.id=a.document_id WHERE d.id IS NULL").fetchone()[0]
            runs = dict(c.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
            run_rows = c.execute("SELECT id, started_at, finished_at, status, n_documents FROM runs ORDER BY id").fetchall()
            file_states = c.execute("SELECT state, COUNT(*), MAX(attempts) FROM ingested_files GROUP BY state").fetchall()
            ledger_sums = c.execute("SELECT COALESCE(SUM(rows_stored),0), COALESCE(SUM(rows_updated),0), COALESCE(SUM(rows_rejected),0), "
                                    "COALESCE(SUM(rows_duplicate),0), COALESCE(MAX(attempts),0) FROM ingested_files").fetchone()
            ledger_dupes = c.execute("SELECT name, COUNT(*) FROM ingested_files GROUP BY name HAVING COUNT(*) > 1").fetchall()
            revisions = c.execute("SELECT COUNT(*) FROM document_revisions").fetchone()[0]
            latest_done = c.execute("SELECT id, n_documents FROM runs WHERE status='done' ORDER BY id DESC LIMIT 1").fetchone()

        missing_rows = [g for g in expected if "guid:" + g not in docs]
        wrong_title = [(g, expected[g], docs["guid:" + g][1]) for g in expected if "guid:" + g in docs and docs["guid:" + g][1] != expected[g]]
        wrong_id = [g for g in expected if "guid:" + g in docs and docs["guid:" + g][0] != document_id("guid:" + g)]
        repair_keys = {"guid:" + r.guid for _, r in repairable}
        expected_keys = {"guid:" + g for g in expected} | repair_keys
        extra = sorted(k for k in docs if k not in expected_keys)
        check("every good row stored once, newest title", not (missing_rows or wrong_title or wrong_id),
              f"{len(expected)} guids expected, {len(missing_rows)} missing {missing_rows[:3]}, {len(wrong_title)} wrong title {wrong_title[:2]}, "
              f"{len(wrong_id)} wrong id")
        slow = [f for f in self.files if f.kind == "slow"]
        slow_rows = [r.guid for f in slow for r in f.rows]
        slow_missing = [g for g in slow_rows if "guid:" + g not in docs]
        check("files written slowly inside the inbox: every row once, whole", bool(slow) and not slow_missing
              and all(f.where == "processed" for f in slow),
              f"{len(slow)} files, {len(slow_rows)} rows, {len(slow_missing)} missing {slow_missing[:3]}; "
              + ", ".join(f"{f.name} {f.where}" for f in slow[:4]))
        check("no unexpected documents", not extra, f"{len(extra)} keys nobody sent as a good row: {extra[:5]}")

        # rejects CSVs
        rejects: dict[str, list[dict]] = defaultdict(list)
        for p in sorted((home / "failed").glob("*.rejects.csv")):
            with p.open(encoding="utf-8", newline="") as fh:
                for rec in csv.DictReader(fh):
                    rec["_file"] = p.name
                    rejects[(rec.get("guid") or "").lstrip("'")].append(rec)
        bad_rejects = []
        for f, r in rejected_expected:
            recs = [x for x in rejects.get(r.guid, []) if x["_file"] == f.final_name + ".rejects.csv"]
            if not recs or not (recs[0].get("reason") or "").strip():
                bad_rejects.append((f.final_name, r.guid, r.kind, "not in its rejects CSV"))
            elif str(recs[0].get("line")) != str(r.line):
                bad_rejects.append((f.final_name, r.guid, r.kind, f"line {recs[0].get('line')} != {r.line}"))
            elif "guid:" + r.guid in docs:
                bad_rejects.append((f.final_name, r.guid, r.kind, "rejected and also stored"))
        check("every bad row in a rejects CSV with its reason", not bad_rejects,
              f"{len(rejected_expected)} expected rejected; problems {bad_rejects[:4]}")
        repaired = rejected_repairable = 0
        bad_repairs = []
        for f, r in repairable:
            key = "guid:" + r.guid
            recs = [x for x in rejects.get(r.guid, []) if (x.get("reason") or "").strip()]
            if key in docs and not recs:
                repaired += 1
                _, title, desc, pub = docs[key]
                if title != r.title or "\x00" in (desc or ""):
                    bad_repairs.append((r.guid, r.kind, "stored text differs", title, desc))
            elif recs and key not in docs:
                rejected_repairable += 1
            else:
                bad_repairs.append((r.guid, r.kind, "stored" if key in docs else "lost", f"{len(recs)} reject record(s)"))
        check("odd-cell rows repaired or rejected, never lost", not bad_repairs,
              f"{len(repairable)} rows: {repaired} repaired and stored, {rejected_repairable} rejected; problems {bad_repairs[:3]}")
        leaked = [r.guid for r in bad_file_rows if "guid:" + r.guid in docs]
        check("rows of bad files not stored", not leaked, f"{len(bad_file_rows)} rows in bad files, {len(leaked)} stored {leaked[:3]}")

        # Milvus against SQLite
        try:
            from service.adapters.milvus import MilvusStore

            store = MilvusStore(str(home / "milvus.db"), "headlines", 384)
            try:
                milvus_ids = [int(i) for i in store.all_vectors()[0]]
            finally:
                store.close()
            ms, ss = set(milvus_ids), set(sqlite_ids)
            only_m, only_s = ms - ss, ss - ms
            waiting_ids = {document_id("guid:" + r.guid) for f in self.files if f.where == "waiting" for r in f.rows}
            check("Milvus ids == SQLite document ids", not only_m and not only_s and len(milvus_ids) == len(ms),
                  f"Milvus {len(milvus_ids)} ({len(ms)} distinct), SQLite {len(ss)}; only in Milvus {len(only_m)} "
                  f"({len(only_m & waiting_ids)} from files still waiting), only in SQLite {len(only_s)}")
        except Exception as exc:  # noqa: BLE001
            milvus_ids = []
            check("Milvus ids == SQLite document ids", False, f"could not read Milvus: {type(exc).__name__}: {exc}")

        check("no assignment without its document", orphans == 0, f"{orphans} orphan assignment rows")
        if latest_done:
            check("final rebuild saw every document", latest_done[1] == n_docs, f"run {latest_done[0]}: {latest_done[1]} documents, SQLite {n_docs}")
        else:
            check("final rebuild saw every document", False, "no finished rebuild at all")

        # runs bounded by requests + schedule + arrivals + failures
        duration = (self.serve_stopped or time.monotonic()) - self.serve_started  # the schedule ticks while serve lives
        ticks = int(duration // REBUILD_INTERVAL_S) + 1
        arrivals = sum(1 for f in self.files if f.where == "processed")
        total_runs = sum(runs.values())
        bound = self.rebuild_requests + ticks + arrivals + runs.get("failed", 0)
        stale = [(r[0], str(r[1])) for r in run_rows if r[3] == "running"]
        check("no run left 'running' after serve stopped", not stale,
              f"{len(stale)} run(s) still 'running' (id, started_at): {stale[:5]}")
        check("runs bounded by requests + schedule", total_runs <= bound,
              f"runs {dict(runs)}; bound {bound} = {self.rebuild_requests} asked + {ticks} ticks ({duration:.0f}s/{REBUILD_INTERVAL_S}s) "
              f"+ {arrivals} files taken + {runs.get('failed', 0)} failures")
        starts = sorted(r[1] for r in run_rows if r[1])
        # a failed rebuild must back off: no burst of runs; at most 5 runs started within any 10 s
        burst = self._max_in_window(starts, 10.0)
        check("no rebuild loop", burst <= 5, f"most runs started within 10 s: {burst}")

        log = (home / "serve.log").read_text(encoding="utf-8", errors="replace")
        dead = log.count("Exception in thread")
        fatal = log.count("Fatal Python error")
        check("no thread died in serve", dead == 0 and fatal == 0,
              f"'Exception in thread' x{dead}, 'Fatal Python error' x{fatal}, 'Traceback' x{log.count('Traceback')} in serve.log")
        check("serve ran the whole soak and exited 0", self.serve_rc == 0 and not self.serve_died_early, f"exit {self.serve_rc}")
        bad_status = [s for s in self.statuses if s["rc"] != 0]
        check("status --json always exit 0", not bad_status,
              f"{len(self.statuses)} calls, {len(bad_status)} failed" + (f": {bad_status[0].get('output', '')[-300:]!r}" if bad_status else "")
              + f"; slowest {max((s['seconds'] for s in self.statuses), default=0):.1f}s")
        rb = [c for c in self.commands if c["command"] == "rebuild"]
        check("final `newsclust rebuild` answered, exit 0", bool(rb) and rb[-1]["rc"] == 0,
              (f"rc {rb[-1]['rc']}: " + " | ".join(rb[-1]["output"].splitlines()[1:3])[:300]) if rb else "not run (serve had exited)")
        # a file written slowly inside the inbox is taken each time it grew: a row per version it had
        slow_names = {f.name for f in self.files if f.kind == "slow"}
        ledger_dupes = [(n, k) for n, k in ledger_dupes if n not in slow_names]
        check("ledger holds one row per file", not ledger_dupes, f"{len(ledger_dupes)} names with several rows: {ledger_dupes[:3]}")
        check("soak harness ran cleanly", not self.harness_errors and not not_handed,
              "; ".join(self.harness_errors[:3]) + (f"; {len(not_handed)} hand-off files not confirmed" if not_handed else ""))

        # ---- print ----
        inj = Counter(i["kind"] for i in self.injections if not i.get("skipped"))
        inj_skipped = sum(1 for i in self.injections if i.get("skipped"))
        corrections_sent = n_rows["correction"]
        counts = {
            "minutes": self.minutes,
            "seed": self.args.seed,
            "home": str(home),
            "rows_sent": sum(n_rows.values()),
            "good_rows_sent": n_rows["good"],
            "corrections_sent": corrections_sent,
            "identical_repeats_sent": n_rows["repeat"],
            "bad_rows_sent": {k: n_rows[k] for k in BAD_ROW_KINDS},
            "rows_in_bad_files": n_rows["in_bad_file"],
            "distinct_good_guids_sent": len(sent_good_guids),
            "documents_stored": n_docs,
            "documents_expected": len(expected) + repaired,
            "rows_updated_ledger": ledger_sums[1],
            "revisions": revisions,
            "rows_rejected_ledger": ledger_sums[2],
            "rows_in_rejects_csvs": sum(len(v) for v in rejects.values()),
            "rows_duplicate_ledger": ledger_sums[3],
            "milvus_ids": len(milvus_ids),
            "files_sent": len(self.files),
            "files_sent_by_kind": dict(Counter(f.kind for f in self.files)),
            "files_by_outcome": dict(by_where),
            "files_waiting_at_end": [(f.final_name, f.note) for f in self.files if f.where == "waiting"],
            "ingested_files_by_state": {s: n for s, n, _ in file_states},
            "max_attempts_by_state": {s: m for s, _, m in file_states},
            "max_attempts": ledger_sums[4],
            "runs_by_status": dict(runs),
            "runs_bound": bound,
            "injections": dict(inj),
            "injections_skipped": inj_skipped,
            "status_calls": len(self.statuses),
            "serve_exit": self.serve_rc,
            "tracebacks_in_log": log.count("Traceback"),
        }
        ok = all(passed for _, passed, _ in checks)
        print()
        print(f"{'check':48} {'result':6} detail")
        print("-" * 120)
        for name, passed, detail in checks:
            print(f"{name:48} {'PASS' if passed else 'FAIL':6} {detail}")
        print("-" * 120)
        width = max(len(k) for k in counts)
        for k, v in counts.items():
            print(f"{k:{width}}  {v}")
        print("-" * 120)
        print("injections:")
        for i in self.injections:
            print("  " + json.dumps(i, default=str))
        print()
        result = {"ok": ok, "failed_checks": [n for n, p, _ in checks if not p], "counts": counts,
                  "checks": [{"check": n, "pass": p, "detail": d} for n, p, d in checks]}
        (self.soak_dir / "result.json").write_text(json.dumps(result, indent=1, default=str))
        print("SOAK_RESULT " + json.dumps(result, default=str))
        print(f"soak {'PASSED' if ok else 'FAILED'}: {len(checks) - len(result['failed_checks'])}/{len(checks)} checks; artifacts in {self.soak_dir}")
        return 0 if ok else 1

    def _reason(self, f: SentFile) -> str:
        try:
            return (self.home / "failed" / (f.final_name + ".reason.txt")).read_text().strip()[:300]
        except OSError:
            return "(no reason file)"

    @staticmethod
    def _max_in_window(starts, window_s: float) -> int:
        from datetime import datetime

        ts = sorted(datetime.fromisoformat(str(s)).timestamp() for s in starts)
        best, j = 0, 0
        for i, t in enumerate(ts):
            while t - ts[j] > window_s:
                j += 1
            best = max(best, i - j + 1)
        return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long files and faults keep coming (default 10)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the files and the faults")
    ap.add_argument("--home", type=Path, default=None, help="service home, new or empty (default: a new temporary folder, kept)")
    ap.add_argument("--settle", type=float, default=240.0, help="seconds the inbox gets to drain at the end (default 240)")
    ap.add_argument("--verbose", action="store_true", help="run serve with --verbose (INFO log lines in serve.log)")
    ap.add_argument("--snapshot", action="store_true",
                    help="run serve and every command from a copy of the source taken at start (in a temporary folder), so edits to the "
                         "working tree during the soak do not mix code versions")
    args = ap.parse_args(argv)
    if args.home is None:
        args.home = Path(tempfile.mkdtemp(prefix="newsclust-soak-"))
    args.home = args.home.resolve()
    if args.home.exists() and any(args.home.iterdir()):
        print(f"{args.home} is not empty: the audit needs a home that only this soak has written", file=sys.stderr)
        return 2
    soak = Soak(args)
    try:
        return soak.run()
    finally:
        if soak.serve is not None and soak.serve.poll() is None:
            soak.serve.kill()
            soak.serve.wait()
        shutil.rmtree(soak.tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
