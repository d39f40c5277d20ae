"""The rebuild's commit stage (runs.commit_run) on a stream's second run, given the previous run's levels as the
rebuild read them (now) against reading that run's rows again (before), on copies of one SQLite history.

    python bench/commit.py [--n 100000] [--repeat 3]

Run 1 holds n documents; run 2 the same documents, 5% of them in another story (the changed-rows-only writes of a
steady stream). Each trial commits run 2 on a fresh copy of the history after run 1, both ways interleaved; the
written tables are checked equal. Prints one JSON line: commit_s (given the levels), commit_before_s (reading
them again), ratio, and same_rows.
"""

from __future__ import annotations

import argparse
import json
import shutil
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
    from service.adapters.sql.runs import SqlRunHistory

    from service.domain import Headline

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.n

    def commit(runs, run, ids, story, previous=None):
        alive = sorted(set(story[story >= 0].tolist()))
        runs.commit_run(run, doc_ids=ids, labels=story, probabilities=np.where(story >= 0, 0.95, 0.0), outlier_scores=np.zeros(n),
                        names={c: (f"story {c}", ["w"], [int(ids[0])]) for c in alive}, events=[], timings={}, params={},
                        topics=np.where(story >= 0, story // 10, -1), story_topics={c: c // 10 for c in alive},
                        topic_names={t: (f"topic {t}", ["w"], []) for t in {c // 10 for c in alive}}, previous=previous)

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.sqlite"
        engine = make_engine(f"sqlite:///{base}")
        upgrade(engine)
        t0 = datetime(2026, 1, 1)
        SqlLedger(engine).add_documents([Headline(f"k{i}", f"headline {i}", "", None, t0 + timedelta(seconds=i)) for i in range(n)], None, t0)
        with engine.connect() as c:
            ids = np.asarray([r[0] for r in c.execute(text("SELECT id FROM documents ORDER BY id"))], np.int64)
        story = rng.integers(-1, n // 30, n)
        runs = SqlRunHistory(engine)
        commit(runs, runs.start_run({}), ids, story)
        engine.dispose()
        story2 = np.where(rng.random(n) < 0.05, rng.integers(-1, n // 30, n), story)
        seconds: dict[str, list[float]] = {"before": [], "now": []}
        tables: dict[str, list] = {}
        same = True
        for trial in range(args.repeat):
            for way in ("before", "now"):
                path = Path(tmp) / f"{way}{trial}.sqlite"
                shutil.copy(base, path)
                engine = make_engine(f"sqlite:///{path}")
                runs = SqlRunHistory(engine)
                prev = runs.latest_run()
                levels = runs.run_levels(prev.id)  # the settle stage's read, before the commit in both ways
                run = runs.start_run({})
                t = time.perf_counter()
                commit(runs, run, ids, story2, previous=levels if way == "now" else None)
                seconds[way].append(time.perf_counter() - t)
                with engine.connect() as c:
                    tables[way] = [sorted(map(tuple, c.execute(text(sql)).fetchall())) for sql in (
                        "SELECT id, document_id, run_id, cluster_id, topic_id, probability FROM assignments",
                        "SELECT document_id, run_id FROM assignment_exits", "SELECT id, rebuild_rows_from FROM runs")]
                engine.dispose()
            same = same and tables["before"] == tables["now"]
    before, now = min(seconds["before"]), min(seconds["now"])
    print(json.dumps({"n": n, "commit_before_s": round(before, 3), "commit_s": round(now, 3), "ratio": round(now / before, 2),
                      "same_rows": same}))


if __name__ == "__main__":
    main()
