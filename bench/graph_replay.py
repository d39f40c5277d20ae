"""Kept-graph recall and upkeep cost without Milvus: the writer's insert replayed in memory.

    python bench/graph_replay.py --n 100000 [--batch 5000] [--k 15] [--probes P] [--exact-max N] [--refine/--no-refine]
        [--train-per-list T] [--train-iterations I] [--retrain-iterations R] [--retrain-growth G]

Story-shaped vectors (bench/synthetic.py) go through the real CachedVectorStore in batches, as bench/scale.py's insert
does, over a store that keeps nothing (so only the cache's own work is timed). Prints one JSON line: insert_s (the
cache's upkeep: live index, searches, list merges; insert_cpu_s its CPU time, steadier on a shared machine;
index_build_s the seconds spent building the live index: IVF training and adding every row, each time it doubles,
in a background thread beside the insert since the retrain moved there), read_s (neighbour_graph, what a rebuild reads), recall (the kept
graph against exact search over a sample, as bench/scale.py's graph_recall), and the recall of rows inserted before and
after the exact range ends (graph.EXACT_SEARCH_MAX_N), to tell the index's misses from the lists' upkeep.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class _Nothing:
    """The vector store's slot: counts what it was given, keeps nothing (the cache holds the vectors)."""

    def __init__(self):
        self.n = 0

    def upsert(self, ids, vectors, published_ts, ingested_ts):
        self.n += len(ids)

    def count(self):
        return self.n

    def iter_rows(self, batch_size=5000, since_ts=None, by="published", without=None):
        return iter(())

    def close(self):
        pass


def recall_by_row(vecs: np.ndarray, indices: np.ndarray, k: int, rows: np.ndarray) -> np.ndarray:
    out = []
    for part in np.array_split(rows, max(1, len(rows) // 25)):
        sims = vecs[part] @ vecs.T
        sims[np.arange(len(part)), part] = -np.inf
        exact = np.argpartition(-sims, k, axis=1)[:, :k]
        out += [len(set(exact[i]) & set(indices[r])) / k for i, r in enumerate(part)]
    return np.array(out)


def main() -> None:
    from bench.synthetic import story_shaped_vectors
    from service.adapters.vector_cache import CachedVectorStore

    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--probes", type=int, default=None, help="graph.IVF_PROBES for this run (default: the shipped one)")
    ap.add_argument("--exact-max", type=int, default=None, help="graph.EXACT_SEARCH_MAX_N for this run")
    ap.add_argument("--refine", action=argparse.BooleanOptionalAction, default=None, help="vector_cache.REFINE_NEW_ROWS for this run")
    ap.add_argument("--refine-width", type=int, default=None, help="graph.REFINE_WIDTH for this run")
    ap.add_argument("--revisit", type=int, default=None, help="vector_cache.REVISIT_PER_NEW for this run (0: no revisit of older rows)")
    ap.add_argument("--train-per-list", type=int, default=None, help="graph.TRAIN_PER_LIST for this run")
    ap.add_argument("--train-iterations", type=int, default=None, help="graph.TRAIN_ITERATIONS for this run")
    ap.add_argument("--retrain-iterations", type=int, default=None, help="graph.RETRAIN_ITERATIONS for this run")
    ap.add_argument("--retrain-growth", type=float, default=None, help="live_index.RETRAIN_GROWTH for this run")
    ap.add_argument("--join-threads", type=int, default=None, help="graph.JOIN_THREADS for this run")
    ap.add_argument("--profile", type=int, default=0, help="print the insert's N costliest functions (cProfile, own time) to stderr")
    args = ap.parse_args()
    from service.adapters import live_index, vector_cache
    from service.clustering import graph

    overrides = {  # option -> the constants it sets for this run
        "exact_max": [(graph, "EXACT_SEARCH_MAX_N"), (vector_cache, "EXACT_SEARCH_MAX_N")],
        "refine_width": [(graph, "REFINE_WIDTH")], "refine": [(vector_cache, "REFINE_NEW_ROWS")],
        "revisit": [(vector_cache, "REVISIT_PER_NEW")], "probes": [(graph, "IVF_PROBES")],
        "join_threads": [(graph, "JOIN_THREADS")], "train_per_list": [(graph, "TRAIN_PER_LIST")],
        "train_iterations": [(graph, "TRAIN_ITERATIONS")],
        "retrain_iterations": [(graph, "RETRAIN_ITERATIONS")], "retrain_growth": [(live_index, "RETRAIN_GROWTH")],
    }
    for option, targets in overrides.items():
        if getattr(args, option) is not None:
            for module, name in targets:
                setattr(module, name, getattr(args, option))
    builds = []  # seconds of each live index build (IVF training and adding every row), part of insert_s

    def timed_build(*a, **kw):
        t = time.perf_counter()
        index = graph.build_index(*a, **kw)
        builds.append(time.perf_counter() - t)
        return index

    vector_cache.build_index = timed_build
    vecs = story_shaped_vectors(args.n, seed=args.seed)[0]
    ids = np.arange(1, args.n + 1, dtype=np.int64)
    ts = np.zeros(args.n, np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        cache = CachedVectorStore(_Nothing(), Path(tmp) / "cache", vecs.shape[1], source="replay", knn_k=args.k)
        profiler = cProfile.Profile() if args.profile else None
        t0, cpu0 = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        for s in range(0, args.n, args.batch):
            cache.upsert(ids[s : s + args.batch], vecs[s : s + args.batch], ts[s : s + args.batch], ts[s : s + args.batch])
        insert_s, insert_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
        if profiler:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(args.profile)
        t0 = time.perf_counter()
        _, _, neigh = cache.neighbour_graph()
        read_s = time.perf_counter() - t0
    rows = np.random.default_rng(1).choice(args.n, size=min(args.sample, args.n), replace=False)
    rec = recall_by_row(vecs, neigh.indices, args.k, rows)
    early = rows < graph.EXACT_SEARCH_MAX_N
    print(json.dumps({"n": args.n, "probes": graph.IVF_PROBES, "exact_max": graph.EXACT_SEARCH_MAX_N, "refine": vector_cache.REFINE_NEW_ROWS, "refine_width": graph.REFINE_WIDTH, "revisit": vector_cache.REVISIT_PER_NEW, "insert_s": round(insert_s, 2), "insert_cpu_s": round(insert_cpu_s, 2), "join_threads": graph.JOIN_THREADS,
                      "index_builds": len(builds), "index_build_s": round(sum(builds), 2), "read_s": round(read_s, 2), "recall": round(float(rec.mean()), 3),
                      "recall_rows_exact_range": round(float(rec[early].mean()), 3) if early.any() else None,
                      "recall_rows_after": round(float(rec[~early].mean()), 3) if (~early).any() else None}))


if __name__ == "__main__":
    main()
