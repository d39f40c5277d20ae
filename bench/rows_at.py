"""The changed-rows read (runs.rebuild_rows_at) timed on a window sliding over a stream, from the run's oldest held
row (what commits read now) against every rebuild row at or before the run (before), same answer checked.

    python bench/rows_at.py [--window 100000 --step 25000 --runs 6]

SQLite in a temporary folder; each run holds the last `window` documents, 5% of those it shares with the previous run
change story. Prints one JSON line: rows each read returned and read, and seconds for both reads of the last run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from sqlalchemy import text

    from service.adapters.sql.engine import make_engine, upgrade
    from service.adapters.sql.ledger import SqlLedger
    from service.adapters.sql.runs import SqlRunHistory, rebuild_rows_at
    from service.domain import Headline

    ap = argparse.ArgumentParser()
    ap.add_argument("--window", type=int, default=100_000)
    ap.add_argument("--step", type=int, default=25_000)
    ap.add_argument("--runs", type=int, default=6)
    args = ap.parse_args()
    n = args.window + args.step * (args.runs - 1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'h.sqlite'}")
        upgrade(engine)
        ledger, runs = SqlLedger(engine), SqlRunHistory(engine)
        t0 = datetime(2026, 1, 1)
        ledger.add_documents([Headline(f"k{i}", f"headline {i}", "", None, t0 + timedelta(seconds=i)) for i in range(n)], None, t0)
        with engine.connect() as c:
            ids = np.asarray([r[0] for r in c.execute(text("SELECT id FROM documents ORDER BY id"))], np.int64)
        story = rng.integers(-1, n // 30, n)
        for r in range(args.runs):
            lo = r * args.step
            docs = np.arange(lo, lo + args.window)
            story = np.where(rng.random(n) < 0.05, rng.integers(-1, n // 30, n), story)
            labels = story[docs]
            run = runs.start_run({})
            alive = sorted(set(labels[labels >= 0].tolist()))
            runs.commit_run(run, doc_ids=ids[docs], labels=labels, probabilities=np.where(labels >= 0, 0.95, 0.0),
                            outlier_scores=np.zeros(len(docs)), names={c: ("s", ["w"], []) for c in alive}, events=[],
                            timings={}, params={}, topics=np.where(labels >= 0, labels // 10, -1))
        with engine.connect() as c:
            out = {"window": args.window, "step": args.step, "runs": args.runs,
                   "rebuild_rows": c.execute(text("SELECT COUNT(*) FROM assignments")).scalar_one()}
            start = c.execute(text(f"SELECT rebuild_rows_from FROM runs WHERE id = {run}")).scalar_one()
            out["rows_read_now"] = c.execute(text(f"SELECT COUNT(*) FROM assignments WHERE id >= {start} AND run_id <= {run}")).scalar_one()
            for name, full in (("before", True), ("now", False), ("before_again", True), ("now_again", False)):
                t = time.perf_counter()
                held = rebuild_rows_at(c, run, from_start=full)
                out[f"{name}_s"] = round(time.perf_counter() - t, 3)
                out[f"{name}_rows_held"] = len(held["document_id"])
            same = rebuild_rows_at(c, run, from_start=True)
            out["same_answer"] = all(np.array_equal(same[k], held[k]) for k in same)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
