"""Search benchmark: `newsclust search` at 10k and 100k documents, the way it runs beside a serving process.

    python bench/search.py [--sizes 10000 100000] [--queries 100]

For each size: synthetic news-shaped vectors and their document rows are written through the service's
own write path (the vector cache beside a real Milvus Lite file, and SQLite), then, in this process
with the model loaded once, `usecases.search` answers 100 queries (real headlines embedded by the
bundled MiniLM). Prints median and p95 milliseconds per query, with two baselines measured in the same
run: plain numpy over the same vectors held in memory (the floor), and Milvus Lite's own search (what
search would cost if it opened Milvus instead of reading the copy). Target: median <= 200 ms at 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.synthetic import news_like_vectors  # noqa: E402

QUERIES = [
    "central bank raises interest rates", "wildfire forces evacuations", "election results announced", "earthquake kills dozens",
    "chipmaker agrees to merger", "team wins the cup final", "lunar lander touches down", "bird flu spreads on farms",
    "steel tariffs escalate", "rail workers strike over pay",
]


def build_home(home: Path, n: int, embedder) -> object:
    from service.bootstrap import App
    from service.config import load_settings
    from service.domain import Headline

    app = App(load_settings(home=home, env={}), embedder=embedder)
    vectors, _ = news_like_vectors(n, seed=1)
    step = 5000
    now = datetime(2026, 1, 1)
    for s in range(0, n, step):
        heads = [Headline(key=f"guid:syn{i}", title=f"Synthetic headline {i}", description="", url=None, published_at=now)
                 for i in range(s, min(n, s + step))]
        ids = np.array([h.id for h in heads], np.int64)
        app.open_store().upsert(ids, vectors[s : s + len(heads)], np.zeros(len(heads), np.int64), np.zeros(len(heads), np.int64))
        app.ledger.add_documents(heads, None, now)
    return app, vectors


def timed(fn, queries) -> list[float]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms: list[float]) -> dict:
    return {"median_ms": round(float(np.median(ms)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=100)
    args = ap.parse_args()

    from service import usecases
    from service.adapters.embedders import MiniLMEmbedder

    embedder = MiniLMEmbedder()
    queries = [QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}") for i in range(args.queries)]
    embedder.embed(queries[:2])  # the model is loaded before timing: the target is per query after loading
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="newsclust-search-") as tmp:
            t0 = time.perf_counter()
            app, vectors = build_home(Path(tmp) / "home", n, embedder)
            built = time.perf_counter() - t0
            ours = timed(lambda q: usecases.search(app, q, k=10, serving=True), queries)
            qv = embedder.embed(queries)
            floor = timed(lambda i: np.argpartition(-(vectors @ qv[i]), 10)[:10], range(len(queries)))
            milvus = timed(lambda i: app.open_store().store.search(qv[i : i + 1], 10), range(min(20, len(queries))))
            app.close()
        print(json.dumps({"n": n, "build_s": round(built, 1), "ours_search": summary(ours),
                          "baseline_numpy_in_memory_no_embedding": summary(floor), "baseline_milvus_lite_search_no_embedding": summary(milvus),
                          "target_median_ms_at_100k": 200}))


if __name__ == "__main__":
    main()
