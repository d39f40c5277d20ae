"""Quality harness: stream a labeled CSV in time-ordered chunks through the real ingest -> predict -> rebuild path.

    python bench/quality.py [--csv FILE] [--label topic] [--chunks 10] [--json OUT]

The label column is dropped before ingest: it is used only to score. Prints, for our
engine and for two baselines on the same embeddings (the tutorial's dense kNN matrix and
BERTopic's UMAP-5d -> HDBSCAN), AMI/ARI (all documents, noise as one label; and clustered
only), pairwise precision/recall/F1, noise share and cluster count; plus, per rebuild, the
share of documents that keep their cluster id (and pooled over documents), the agreement (ARI)
between each arrival's predicted label and its label after the next rebuild, and the share of
arrivals placed in a cluster at once (the rest wait in the noise pool for the rebuild).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.metrics import scores  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "agnews_4k_labeled.csv"


def tutorial_recipe(vectors: np.ndarray) -> np.ndarray:
    """The tutorial: each row's 50 nearest distances in a dense n×n matrix -> hdbscan precomputed.

    Symmetrised (np.minimum(D, D.T)): without it hdbscan aborts or segfaults at this size (design.md).
    """
    import hdbscan

    from service.clustering.graph import knn

    n = len(vectors)
    neigh = knn(vectors, min(50, n - 1))
    d = np.full((n, n), 2.0, np.float64)  # far for unlisted pairs: the max distance between unit vectors
    rows = np.repeat(np.arange(n), neigh.k)
    d[rows, neigh.indices.ravel()] = neigh.distances.ravel()
    d = np.minimum(d, d.T)
    np.fill_diagonal(d, 0.0)
    return hdbscan.HDBSCAN(metric="precomputed", min_cluster_size=3, min_samples=3).fit(d).labels_


def bertopic_recipe(vectors: np.ndarray, seed: int = 42) -> np.ndarray:
    """BERTopic's default: UMAP to 5-d (n_neighbors=15, cosine) -> HDBSCAN min_cluster_size=10, eom."""
    import hdbscan
    import umap

    low = umap.UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed, n_jobs=1).fit_transform(vectors)
    return hdbscan.HDBSCAN(min_cluster_size=10, metric="euclidean", cluster_selection_method="eom").fit(low).labels_


def run(csv_path: Path, label_col: str, chunks: int, overrides: dict) -> dict:
    from service import usecases
    from service.bootstrap import build_app
    from service.config import load_settings

    with csv_path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        fields = [f for f in reader.fieldnames if f != label_col]
    truth_by_guid = {r["guid"]: r[label_col] for r in rows}
    home = Path(tempfile.mkdtemp(prefix="newsclust-quality-"))
    app = build_app(load_settings(home=home, env={}, **overrides))
    per_run, timings = [], {"ingest": 0.0, "rebuild": 0.0}
    prev_labels: dict[int, int] = {}
    size = (len(rows) + chunks - 1) // chunks
    for i in range(chunks):
        part = rows[i * size : (i + 1) * size]
        if not part:
            break
        path = home / "inbox" / f"chunk-{i + 1:02d}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(part)
        t0 = time.perf_counter()
        usecases.ingest_file(app, path)
        timings["ingest"] += time.perf_counter() - t0
        predicted = _predictions(app)
        t0 = time.perf_counter()
        r = usecases.rebuild(app, write_report_after=False)
        timings["rebuild"] += time.perf_counter() - t0
        ids, labels = app.repo.run_labels(r.run_id)
        now = dict(zip(ids.tolist(), labels.tolist()))
        entry = {"run": r.run_id, "documents": r.documents, "clusters": r.clusters, "noise": r.noise, "events": r.events}
        both = [d for d in prev_labels if prev_labels[d] >= 0 and now.get(d, -1) >= 0]
        if both:
            entry["kept_id_share"] = round(float(np.mean([prev_labels[d] == now[d] for d in both])), 4)
            entry["clustered_in_both"] = len(both)
        pboth = [d for d, l in predicted.items() if l >= 0 and now.get(d, -1) >= 0]
        if pboth:
            entry["arrival_vs_rebuild_ari"] = round(float(adjusted_rand_score([predicted[d] for d in pboth], [now[d] for d in pboth])), 4)
            entry["arrivals_clustered_in_both"] = len(pboth)
            entry["arrivals"] = len(predicted)
            entry["arrivals_placed_share"] = round(sum(1 for l in predicted.values() if l >= 0) / len(predicted), 4)
        per_run.append(entry)
        print(json.dumps(entry), flush=True)
        prev_labels = now

    doc_ids, vectors = app.store.all_vectors()
    keys = {i: k for i, k in ((int(r.id), r.key) for r in app.repo.export_rows())}
    truth_names = np.array([truth_by_guid[keys[int(d)].split(":", 1)[1]] for d in doc_ids])
    _, truth = np.unique(truth_names, return_inverse=True)
    ours = np.array([prev_labels[int(d)] for d in doc_ids])
    result = {"n": len(doc_ids), "chunks": chunks, "ours": scores(truth, ours), "seconds": {k: round(v, 1) for k, v in timings.items()}}
    for name, recipe in (("tutorial", tutorial_recipe), ("bertopic", bertopic_recipe)):
        t0 = time.perf_counter()
        result[name] = scores(truth, np.asarray(recipe(vectors)))
        result["seconds"][name] = round(time.perf_counter() - t0, 1)
    kept = [e["kept_id_share"] for e in per_run if "kept_id_share" in e]
    agree = [e["arrival_vs_rebuild_ari"] for e in per_run if "arrival_vs_rebuild_ari" in e]
    result["kept_id_share_min"] = min(kept) if kept else None
    result["kept_id_share_mean"] = round(float(np.mean(kept)), 4) if kept else None
    weights = [e["clustered_in_both"] for e in per_run if "kept_id_share" in e]
    result["kept_id_share_pooled"] = round(float(np.average(kept, weights=weights)), 4) if kept else None  # over all documents and runs
    result["kept_id_share_per_run"] = kept
    result["arrival_vs_rebuild_ari_mean"] = round(float(np.mean(agree)), 4) if agree else None
    placed = [e["arrivals_placed_share"] for e in per_run if "arrivals_placed_share" in e]
    result["arrivals_placed_share_mean"] = round(float(np.mean(placed)), 4) if placed else None  # the rest wait as noise
    best = max(result["tutorial"]["ami_all"], result["bertopic"]["ami_all"])
    result["ami_margin_over_best_baseline"] = round(result["ours"]["ami_all"] - best, 4)
    result["per_run"] = per_run
    app.close()
    return result


def _predictions(app) -> dict[int, int]:
    """Labels given by prediction to the arrivals since the last rebuild."""
    run = app.repo.latest_run()
    if run is None:
        return {}
    with app.repo.engine.connect() as c:
        from sqlalchemy import text

        rows = c.execute(text("SELECT document_id, cluster_id FROM assignments WHERE run_id=:r AND assigned_by='predict'"), {"r": run.id})
        return {int(d): int(l) for d, l in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--label", default="topic")
    ap.add_argument("--chunks", type=int, default=10)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting, e.g. --set min_cluster_size=20")
    args = ap.parse_args()
    overrides = dict(kv.split("=", 1) for kv in args.set)
    from service.config import _coerce

    overrides = {k: _coerce(k, v) for k, v in overrides.items()}
    result = run(args.csv, args.label, args.chunks, overrides)
    table = ["recipe     ami_all ari_all ami_clu pair_f1 noise  clusters"]
    for name in ("ours", "tutorial", "bertopic"):
        s = result[name]
        table.append(f"{name:10} {s['ami_all']:.3f}   {s['ari_all']:.3f}   {s['ami_clustered']:.3f}   {s['pair_f1']:.3f}   {s['noise_share']:.2f}   {s['clusters']}")
    print("\n".join(table))
    print(f"kept-id share per rebuild: {result['kept_id_share_per_run']} (min {result['kept_id_share_min']}, mean {result['kept_id_share_mean']}, "
          f"pooled over documents {result['kept_id_share_pooled']}); "
          f"arrival vs next rebuild ARI mean {result['arrival_vs_rebuild_ari_mean']} "
          f"(arrivals placed at once: {result['arrivals_placed_share_mean']}); "
          f"AMI margin over best baseline {result['ami_margin_over_best_baseline']:+.3f}")
    line = json.dumps({k: v for k, v in result.items() if k != "per_run"})
    print(line)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
