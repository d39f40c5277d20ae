"""Scale benchmark: synthetic news-shaped vectors in a real Milvus Lite file, one rebuild, a batch of arrivals.

    python bench/scale.py --n 100000 [--recipe auto|graph|umap] [--json FILE]

The insert runs in this process, through the vector cache as the service's writer does, so it
includes keeping the kNN graph up to date (adapters/vector_cache.py); the rebuild runs in a fresh
child process, as after a restart, so each phase's peak memory is its own (Milvus Lite is a
pure-Python engine inside the process: its insert peak is not the rebuild's).
Prints one JSON line: n, insert_s, insert_peak_rss_mb, read_graph_s, graph_recall (of the kept graph
against exact search), cluster_s, rebuild_s (graph read + clustering, end to end), peak_rss_mb (the
rebuild process, Milvus Lite's share shown as milvus_open_rss_mb), live_index_build_s (the writer's
index after a restart), assign_per_s (arrivals placed per second through it, no embedding;
assign_per_s_milvus_search through Milvus search), clusters, noise, ami_vs_truth; as baselines in the
same run, scratch_graph_s (the graph built from scratch at rebuild time, n <= 200,000 unless
--scratch-graph) and the tutorial recipe's seconds and peak memory where it can run (n <= 10,000;
null above, where its n×n matrix dies).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.metrics import peak_rss_mb  # noqa: E402
from bench.synthetic import news_like_vectors  # noqa: E402


def tutorial_in_subprocess(n: int, seed: int) -> dict:
    """The tutorial's dense matrix in its own process, so its memory is measured apart from ours."""
    import subprocess

    code = (
        "import sys,time,json; sys.path.insert(0,%r)\n"
        "from bench.synthetic import news_like_vectors; from bench.quality import tutorial_recipe; from bench.metrics import peak_rss_mb\n"
        "v,_=news_like_vectors(%d,seed=%d); t=time.perf_counter(); tutorial_recipe(v)\n"
        "print(json.dumps({'s':time.perf_counter()-t,'mb':peak_rss_mb()}))"
    ) % (str(Path(__file__).resolve().parents[1]), n, seed)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return {"s": None, "mb": None, "error": out.stderr.strip().splitlines()[-1:] or [f"exit {out.returncode}"]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def graph_recall(vecs: np.ndarray, neigh, k: int, sample: int = 500) -> float:
    """Share of the true k nearest neighbours (exact search) the graph found, over a sample of rows."""
    rows = np.random.default_rng(1).choice(len(vecs), size=min(sample, len(vecs)), replace=False)
    found = []
    for part in np.array_split(rows, max(1, len(rows) // 25)):  # 25 rows at a time: a 25 x n block, not 500 x n
        sims = vecs[part] @ vecs.T
        sims[np.arange(len(part)), part] = -np.inf
        exact = np.argpartition(-sims, k, axis=1)[:, :k]
        found += [len(set(exact[i]) & set(neigh.indices[r])) / k for i, r in enumerate(part)]
    return float(np.mean(found))


def insert_phase(args, home: Path) -> dict:
    """As the service's writer does: upsert into Milvus Lite through the vector cache."""
    from service.adapters.milvus import MilvusStore
    from service.adapters.vector_cache import CachedVectorStore

    vectors, truth = news_like_vectors(args.n + args.arrivals, seed=args.seed)
    np.save(home / "arrivals.npy", vectors[args.n :])
    np.save(home / "truth.npy", truth[: args.n])
    fitted = vectors[: args.n]
    ids = np.arange(1, args.n + 1, dtype=np.int64)
    milvus = MilvusStore(str(home / "milvus.db"), "bench", vectors.shape[1])
    store = CachedVectorStore(milvus, home / "cache", vectors.shape[1], source="bench", knn_k=args.k)
    zeros = np.zeros(args.n, np.int64)
    t0 = time.perf_counter()
    for s in range(0, args.n, 5_000):
        store.upsert(ids[s : s + 5_000], fitted[s : s + 5_000], zeros[s : s + 5_000], zeros[s : s + 5_000])
    insert_s = time.perf_counter() - t0
    store.close()
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(str(home / "milvus.db"))  # Lite's lock, for the child process
    return {"insert_s": round(insert_s, 2), "insert_peak_rss_mb": round(peak_rss_mb(), 1)}


def rebuild_phase(args, home: Path) -> dict:
    """A fresh process, as a restarted service: open Milvus and the cache, read the kept graph, cluster, place arrivals."""
    from service.adapters.milvus import MilvusStore
    from service.adapters.vector_cache import CachedVectorStore
    from service.clustering.assign import PredictionState, place
    from service.clustering.graph import knn
    from service.clustering.hdbscan_fit import HdbscanParams, fit_clusters
    from bench.metrics import scores

    arrivals = np.load(home / "arrivals.npy")
    milvus = MilvusStore(str(home / "milvus.db"), "bench", arrivals.shape[1])
    store = CachedVectorStore(milvus, home / "cache", arrivals.shape[1], source="bench", knn_k=args.k)
    open_mb = peak_rss_mb()
    t0 = time.perf_counter()
    doc_ids, vecs, neigh = store.neighbour_graph()
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = fit_clusters(neigh, vecs, HdbscanParams(recipe=args.recipe))
    cluster_s = time.perf_counter() - t0
    rebuild_mb = peak_rss_mb()
    recall = graph_recall(vecs, neigh, args.k)
    result = {"read_graph_s": round(read_s, 2), "graph_recall": round(recall, 3), "cluster_s": round(cluster_s, 2),
              "rebuild_s": round(read_s + cluster_s, 2), "peak_rss_mb": round(rebuild_mb, 1), "milvus_open_rss_mb": round(open_mb, 1),
              "recipe_used": fit.recipe, "clusters": fit.n_clusters, "noise": int((fit.labels < 0).sum()),
              "ami_vs_truth": scores(np.load(home / "truth.npy"), fit.labels)["ami_all"]}  # ids 1..n were inserted in row order

    state = PredictionState(doc_ids=doc_ids, labels=fit.labels, probabilities=fit.probabilities, outlier_scores=fit.outlier_scores,
                            core_distances=fit.core_distances, cluster_ids=np.arange(fit.n_clusters), cluster_max_edge=fit.cluster_max_edge,
                            cluster_min_core=fit.cluster_min_core, min_samples=5)
    # the writer keeps a live index over the cache (built once after a restart) and places arrivals through it
    t0 = time.perf_counter()
    store._live_index(len(doc_ids))
    result["live_index_build_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    nb_ids, nb_dist = store.search(arrivals, 20)
    placed = place(state, state.positions(nb_ids.ravel()).reshape(nb_ids.shape), nb_dist)
    result["assign_per_s"] = round(len(arrivals) / (time.perf_counter() - t0), 1)
    # a process without it (a CLI `ingest` while no serve runs) searches Milvus
    t0 = time.perf_counter()
    nb_ids, nb_dist = milvus.search(arrivals, 20)
    placed_milvus = place(state, state.positions(nb_ids.ravel()).reshape(nb_ids.shape), nb_dist)
    result["assign_per_s_milvus_search"] = round(len(arrivals) / (time.perf_counter() - t0), 1)
    result["assign_paths_agree"] = round(float(np.mean(placed.labels == placed_milvus.labels)), 4)
    result["arrivals_clustered"] = round(float((placed.labels >= 0).mean()), 3)
    if args.scratch_graph:
        # the baseline: the same graph built from scratch at rebuild time, as before the graph was kept
        t0 = time.perf_counter()
        knn(vecs, args.k)
        result["scratch_graph_s"] = round(time.perf_counter() - t0, 2)
        result["rebuild_s_with_scratch_graph"] = round(result["scratch_graph_s"] + result["rebuild_s"], 2)
    store.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--arrivals", type=int, default=2_000)
    ap.add_argument("--recipe", default="auto", choices=["auto", "graph", "umap"], help="auto: as the service does (umap up to 50k documents, graph above)")
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--scratch-graph", action=argparse.BooleanOptionalAction, default=None,
                    help="also time a from-scratch kNN graph as the baseline (default: for n <= 200,000)")
    ap.add_argument("--rebuild-in", type=Path, help=argparse.SUPPRESS)  # the child process's half
    args = ap.parse_args()

    if args.scratch_graph is None:
        args.scratch_graph = args.n <= 200_000
    if args.rebuild_in:
        print(json.dumps(rebuild_phase(args, args.rebuild_in)))
        return
    import shutil
    import subprocess

    home = Path(tempfile.mkdtemp(prefix="newsclust-scale-"))
    try:
        result = {"n": args.n, "recipe": args.recipe, "k": args.k, **insert_phase(args, home)}
        child = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--recipe", args.recipe, "--k", str(args.k),
                                "--rebuild-in", str(home), "--scratch-graph" if args.scratch_graph else "--no-scratch-graph"], capture_output=True, text=True)
        if child.returncode != 0:
            sys.exit(f"rebuild phase failed: {child.stderr.strip()[-2000:]}")
        result.update(json.loads(child.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if args.n <= 10_000:
        tut = tutorial_in_subprocess(args.n, args.seed)
        result.update({"tutorial_s": round(tut["s"], 2) if tut.get("s") else None, "tutorial_peak_mb": round(tut["mb"], 1) if tut.get("mb") else None})
        if result["tutorial_s"]:
            result["speedup_vs_tutorial"] = round(result["tutorial_s"] / max(result["rebuild_s"], 1e-9), 1)
    else:
        result.update({"tutorial_s": None, "tutorial_peak_mb": None})
    line = json.dumps(result)
    print(line)
    if args.json:
        args.json.write_text(line + "\n")


if __name__ == "__main__":
    main()
