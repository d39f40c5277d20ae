"""Scale benchmark: a story-shaped synthetic corpus in a real Milvus Lite file, one two-level rebuild, a batch of arrivals.

    python bench/scale.py --n 100000 [--json FILE] [--shape news_like]

Corpus (bench/synthetic.py story_shaped_vectors, the default): many small stories of 5-300 headlines (heavy-tailed
sizes) inside a few hundred topics (sqrt(n)/3, 10..500), plus 10% background headlines, 384-d unit vectors whose
within-story and between-story cosines are matched to the real story set ../shared/data/stories_2k_labeled.csv
(its titles embedded with MiniLM, cached in bench/out/; its `story` column used only to measure those cosines).
Both cosine profiles are printed side by side on stderr and kept under "profiles" in --json. `--shape news_like` is
the older corpus (Zipf-sized blobs, no topics).

The insert runs in this process as the service's writer does: document rows into SQLite, vectors through the
vector cache into Milvus Lite (keeping the kNN graph up to date). The rebuild runs in a fresh child process, as after
a restart, through the real use case (service.usecases.rebuild: graph -> fit_two_levels -> settle -> ids -> names
-> SQLite commit; no map or page), so its peak memory is its own. Labels are read back from SQLite
(repo.run_labels / run_topic_labels) and scored against the generator's truth.

Prints one JSON line: n, insert_s (vectors through the cache), insert_vector_store_s (the Milvus writes' own time: part of
insert_s for Lite, beside the graph's upkeep for a server), docs_insert_s (SQLite rows), insert_peak_rss_mb,
warm_up_s (what serve pays once at start: clustering/warmup.py, done before the clock starts; rebuild_s_cold adds it
back, as a one-shot `newsclust rebuild` pays it),
rebuild_again_s / rebuild_again_stages (a second rebuild on the same data, as serve's next one: it also settles against
the first and matches its ids; rebuild_again_same_story_id is the share of clustered documents keeping their story id;
rebuild_again_rows_written the assignments rows it wrote: documents whose story, topic or probability band changed),
rebuild_s (the use case end to end) = read_graph_s + fit_s (fit_two_levels) + rest_s (settle, match, names,
prediction state, commit, alerts; each in stages), peak_rss_mb (the rebuild process; Milvus Lite open shown as
milvus_open_rss_mb), stories, story_noise, topics, topic_noise, story_ami / topic_ami (noise = one label, the
generator's background is -1 at both levels), story_pair_f1 / story_bcubed_f1 (noise as singletons), graph_recall (the
kept graph against exact search), live_index_load_s / live_index_build_s (the writer's live index read back from
its file / built from the vectors), assign_per_s (arrivals placed per second through the writer's
live index, both levels, no embedding; assign_per_s_milvus_search through Milvus search), and as baselines in the
same run scratch_graph_s (the graph built from scratch, n <= 200,000 unless --scratch-graph) and the tutorial recipe
(n <= 10,000; null above, where its n x n matrix dies).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.metrics import peak_rss_mb  # noqa: E402

REAL_STORIES = ROOT.parent / "shared" / "data" / "stories_2k_labeled.csv"
OUT = ROOT / "bench" / "out"
DIM = 384


def corpus(n: int, seed: int, shape: str):
    """(vectors, story truth, topic truth); -1 = background."""
    from bench.synthetic import news_like_vectors, story_shaped_vectors

    if shape == "news_like":
        v, story = news_like_vectors(n, dim=DIM, seed=seed)
        return v, story, np.where(story >= 0, 0, -1)
    return story_shaped_vectors(n, dim=DIM, seed=seed)


def real_profile() -> dict | None:
    """The real story set's cosine profile: its titles embedded once with MiniLM (cached in bench/out/)."""
    from bench.synthetic import cosine_profile

    if not REAL_STORIES.exists():
        return None
    with REAL_STORIES.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    titles = [r["title"] for r in rows]
    key = hashlib.sha1("\n".join(titles).encode()).hexdigest()[:16]
    path = OUT / f"stories_2k_titles.minilm-{key}.npy"
    if path.exists():
        vectors = np.load(path)
    else:
        from service.adapters.embedders import MiniLMEmbedder

        vectors = np.asarray(MiniLMEmbedder().embed(titles), np.float32)
        OUT.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    story = np.unique([r["story"] for r in rows], return_inverse=True)[1]
    return cosine_profile(vectors, story)


def tutorial_in_subprocess(n: int, seed: int, shape: str) -> dict:
    """The tutorial's dense matrix in its own process, so its memory is measured apart from ours."""
    import subprocess

    code = (
        "import sys,time,json; sys.path.insert(0,%r)\n"
        "from bench.scale import corpus; from bench.quality import tutorial_recipe; from bench.metrics import peak_rss_mb\n"
        "v=corpus(%d,%d,%r)[0]; t=time.perf_counter(); tutorial_recipe(v)\n"
        "print(json.dumps({'s':time.perf_counter()-t,'mb':peak_rss_mb()}))"
    ) % (str(ROOT), n, seed, shape)
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


class _Dim:
    """The embedder slot of the App: the bench brings its own vectors, the store only asks the dimension."""

    name = "synthetic"
    dim = DIM

    def embed(self, texts):  # pragma: no cover - never called by insert or rebuild
        raise RuntimeError("the scale bench does not embed")


def _app(home: Path, k: int):
    from service.bootstrap import App
    from service.config import load_settings

    return App(load_settings(home=home, env={}, knn_k=k), embedder=_Dim())


def _titles(story: np.ndarray, topic: np.ndarray, rng) -> list[str]:
    """Headline-ish text per row (names run over it): two words of its story, one of its topic, three common ones."""
    common = np.array(["says", "new", "report", "update", "after", "over", "may", "plan", "deal", "court", "shares", "week"])
    c = common[rng.integers(0, len(common), (len(story), 3))]
    out = []
    for i, (s, t) in enumerate(zip(story.tolist(), topic.tolist())):
        head = f"s{s}a s{s}b t{t}" if s >= 0 else f"bg{i} misc{i % 997}"
        out.append(f"{head} {c[i, 0]} {c[i, 1]} {c[i, 2]}")
    return out


def insert_phase(args, home: Path) -> dict:
    """As the service's writer does: document rows into SQLite, vectors through the vector cache into Milvus Lite."""
    from bench.synthetic import cosine_profile, print_profiles
    from service.domain import Headline

    t0 = time.perf_counter()
    vectors, story, topic = corpus(args.n + args.arrivals, args.seed, args.shape)
    gen_s = time.perf_counter() - t0
    fitted = vectors[: args.n]
    profiles = None
    if args.profile:
        real = real_profile()
        synth = cosine_profile(fitted, story[: args.n])
        if real:
            print_profiles(real, synth)
        profiles = {"real": real, "synthetic": synth}
    rng = np.random.default_rng(args.seed + 1)
    titles = _titles(story[: args.n], topic[: args.n], rng)
    base = datetime(2024, 1, 1)
    offsets = rng.integers(0, 30 * 86_400, args.n)
    heads = [Headline(key=f"bench:{i}", title=t, description="", url=None, published_at=base + timedelta(seconds=int(o)))
             for i, (t, o) in enumerate(zip(titles, offsets.tolist()))]
    ids = np.array([h.id for h in heads], np.int64)
    pub = np.array([int((h.published_at - datetime(1970, 1, 1)).total_seconds()) for h in heads], np.int64)
    np.save(home / "arrivals.npy", vectors[args.n :])
    np.savez(home / "truth.npz", ids=ids, story=story[: args.n], topic=topic[: args.n])
    app = _app(home, args.k)
    now = datetime(2024, 2, 1)
    t0 = time.perf_counter()
    for s in range(0, args.n, 20_000):
        app.ledger.add_documents(heads[s : s + 20_000], None, now)
    docs_s = time.perf_counter() - t0
    del heads, titles
    store = app.open_store()
    ing = np.full(args.n, int((now - datetime(1970, 1, 1)).total_seconds()), np.int64)
    inner_s = _timed_inner_upsert(store)
    t0 = time.perf_counter()
    for s in range(0, args.n, 5_000):
        store.upsert(ids[s : s + 5_000], fitted[s : s + 5_000], pub[s : s + 5_000], ing[s : s + 5_000])
        if (s + 5_000) % 100_000 == 0:
            print(f"inserted {s + 5_000:,} rows in {time.perf_counter() - t0:.1f} s (vector store {inner_s[0] if inner_s else 0:.1f} s)",
                  file=sys.stderr, flush=True)
    insert_s = time.perf_counter() - t0
    app.close()
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(app.settings.resolved_milvus_uri)  # Lite's lock, for the child process
    return {"generate_s": round(gen_s, 2), "docs_insert_s": round(docs_s, 2), "insert_s": round(insert_s, 2),
            "insert_vector_store_s": round(inner_s[0], 2) if inner_s else None,
            "insert_peak_rss_mb": round(peak_rss_mb(), 1), "profiles": profiles}


def _timed_inner_upsert(store) -> list[float] | None:
    """Seconds spent in the vector store behind the cache (Milvus), kept in the returned list as the insert runs. Lite
    is written before the new rows are joined (part of insert_s); a server in a background thread beside the join
    (then this is the write's own duration, not time added to insert_s)."""
    inner = getattr(store, "store", None)
    if inner is None:
        return None
    spent = [0.0]
    upsert = inner.upsert

    def timed(*a, **kw):
        t0 = time.perf_counter()
        try:
            return upsert(*a, **kw)
        finally:
            spent[0] += time.perf_counter() - t0

    inner.upsert = timed
    return spent


def _labels_for(ids: np.ndarray, got: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Labels of ids (in order) from SQLite's (document ids, cluster ids), NOISE where absent or null."""
    from service.sorted_keys import find_sorted

    doc, lab = got
    out = np.full(len(ids), -1, np.int64)
    pos, hit = find_sorted(doc, ids)
    out[hit] = lab[pos[hit]]
    return np.where(out >= 0, out, -1)


def rebuild_phase(args, home: Path) -> dict:
    """A fresh process, as a restarted service: open SQLite, Milvus and the cache, run the rebuild use case, place arrivals."""
    from service import usecases
    from service.clustering.assign import place, place_topics
    from service.clustering.graph import knn
    from bench.metrics import scores

    from service.clustering.warmup import warm_up

    app = _app(home, args.k)
    store = app.open_store()
    open_mb = peak_rss_mb()
    warm_s = warm_up()  # as serve does at start (numba's compiled code, scikit-learn's import); reported apart
    t0 = time.perf_counter()
    r = usecases.rebuild(app, write_report_after=False)
    rebuild_s = time.perf_counter() - t0
    rebuild_mb = peak_rss_mb()
    sec = dict(r.seconds)
    read_s, fit_s = sec.get("graph", 0.0), sec.get("cluster", 0.0)
    result = {"rebuild_s": round(rebuild_s, 2), "warm_up_s": round(warm_s, 2), "rebuild_s_cold": round(rebuild_s + warm_s, 2),
              "read_graph_s": round(read_s, 2), "fit_s": round(fit_s, 2),
              "rest_s": round(rebuild_s - read_s - fit_s, 2), "stages": {k: round(v, 2) for k, v in sec.items()},
              "peak_rss_mb": round(rebuild_mb, 1), "milvus_open_rss_mb": round(open_mb, 1),
              "documents": r.documents, "stories": r.stories, "story_noise": r.noise, "topics": r.topics, "topic_noise": r.topic_noise}
    truth = np.load(home / "truth.npz")
    order = np.argsort(truth["ids"])
    ids = truth["ids"][order]
    story_labels = _labels_for(ids, app.runs.run_labels(r.run_id))
    topic_labels = _labels_for(ids, app.runs.run_topic_labels(r.run_id))
    st = scores(truth["story"][order], story_labels)
    tp = scores(truth["topic"][order], topic_labels)
    result.update({"story_ami": st["ami_all"], "topic_ami": tp["ami_all"], "story_pair_f1": st["pair_f1"], "story_bcubed_f1": st["bcubed_f1"],
                   "story_noise_share": st["noise_share"], "topic_pair_f1": tp["pair_f1"], "topic_noise_share": tp["noise_share"],
                   "true_stories": int(len(np.unique(truth["story"][truth["story"] >= 0]))),
                   "true_topics": int(len(np.unique(truth["topic"][truth["topic"] >= 0])))})
    # the rebuild's own figures, written before the slower extras, so a run cut short still has them
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"scale-rebuild-{args.n}.json").write_text(json.dumps(result) + "\n")

    store = app.open_store()  # the rebuild let go of Milvus Lite's copy (App.set_store_aside): opened again, as serve's next write does
    doc_ids, vecs, neigh = store.neighbour_graph()
    result["graph_recall"] = round(graph_recall(vecs, neigh, args.k), 3)
    arrivals = np.load(home / "arrivals.npy")
    pstate = app.prediction_state(r.run_id)
    kq, min_vote = app.settings.assign_neighbours, app.settings.assign_min_vote

    def place_both(nb_ids, nb_dist):
        pos = pstate.positions(nb_ids.ravel()).reshape(nb_ids.shape)
        pos[nb_ids < 0] = -1
        placed = place(pstate, pos, nb_dist, min_vote)
        return placed, place_topics(pstate, pos, placed.labels)

    # the writer keeps a live index over the cache, saved beside it: read back after a restart (serve does it at start,
    # in the background); built from the vectors where no saved one fits (the first start after an upgrade)
    from service.clustering.graph import build_index

    t0 = time.perf_counter()
    store.warm_up()
    result["live_index_load_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    build_index(np.asarray(vecs, dtype=np.float32), args.k)
    result["live_index_build_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    placed, placed_topics = place_both(*store.search(arrivals, kq))
    result["assign_per_s"] = round(len(arrivals) / (time.perf_counter() - t0), 1)
    if args.milvus_search:
        # a process without it (a CLI `ingest` while no serve runs) searches Milvus
        t0 = time.perf_counter()
        placed_m, _ = place_both(*store.store.search(arrivals, kq))
        result["assign_per_s_milvus_search"] = round(len(arrivals) / (time.perf_counter() - t0), 1)
        result["assign_paths_agree"] = round(float(np.mean(placed.labels == placed_m.labels)), 4)
    result["arrivals_in_story"] = round(float((placed.labels >= 0).mean()), 3)
    result["arrivals_in_topic"] = round(float((placed_topics >= 0).mean()), 3)
    if args.scratch_graph:
        # the baseline: the same graph built from scratch at rebuild time, as before the graph was kept
        t0 = time.perf_counter()
        knn(vecs, args.k)
        result["scratch_graph_s"] = round(time.perf_counter() - t0, 2)
        result["rebuild_s_with_scratch_graph"] = round(result["scratch_graph_s"] + result["rebuild_s"], 2)
    del doc_ids, vecs, neigh
    # the steady state: serve's next rebuild, which also settles against the last run and matches its ids
    t0 = time.perf_counter()
    again = usecases.rebuild(app, write_report_after=False)
    result["rebuild_again_s"] = round(time.perf_counter() - t0, 2)
    result["rebuild_again_stages"] = {k: round(v, 2) for k, v in again.seconds.items()}
    first, second = _labels_for(ids, app.runs.run_labels(r.run_id)), _labels_for(ids, app.runs.run_labels(again.run_id))
    clustered = first >= 0
    result["rebuild_again_same_story_id"] = round(float((second[clustered] == first[clustered]).mean()), 4) if clustered.any() else None
    from sqlalchemy import text

    with app.engine.connect() as c:  # changed-rows-only assignments: what the second rebuild wrote, of its documents
        result["rebuild_again_rows_written"] = c.execute(text(
            "SELECT COUNT(*) FROM assignments WHERE run_id = :r AND assigned_by = 'rebuild'"), {"r": again.run_id}).scalar()
    result["rebuild_again_documents"] = len(app.runs.run_labels(again.run_id)[0])
    app.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--arrivals", type=int, default=2_000)
    ap.add_argument("--shape", default="stories", choices=["stories", "news_like"], help="stories: story-shaped corpus (default)")
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True, help="print real vs synthetic cosine profiles")
    ap.add_argument("--scratch-graph", action=argparse.BooleanOptionalAction, default=None,
                    help="also time a from-scratch kNN graph as the baseline (default: for n <= 200,000)")
    ap.add_argument("--milvus-search", action=argparse.BooleanOptionalAction, default=None,
                    help="also place the arrivals through Milvus search (default: for n <= 300,000; slow in Milvus Lite above)")
    ap.add_argument("--keep-home", action="store_true", help="keep the temporary home (SQLite, Milvus Lite file) for inspection")
    ap.add_argument("--rebuild-in", type=Path, help=argparse.SUPPRESS)  # the child process's half
    args = ap.parse_args()

    if args.scratch_graph is None:
        args.scratch_graph = args.n <= 200_000
    if args.milvus_search is None:
        args.milvus_search = args.n <= 300_000
    if args.rebuild_in:
        print(json.dumps(rebuild_phase(args, args.rebuild_in)))
        return
    import shutil
    import subprocess

    home = Path(tempfile.mkdtemp(prefix="newsclust-scale-"))
    try:
        inserted = insert_phase(args, home)
        profiles = inserted.pop("profiles")
        result = {"n": args.n, "shape": args.shape, "k": args.k, **inserted}
        child = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--k", str(args.k), "--rebuild-in", str(home),
                                "--scratch-graph" if args.scratch_graph else "--no-scratch-graph",
                                "--milvus-search" if args.milvus_search else "--no-milvus-search"], capture_output=True, text=True)
        if child.returncode != 0:
            sys.exit(f"rebuild phase failed: {child.stderr.strip()[-3000:]}")
        result.update(json.loads(child.stdout.strip().splitlines()[-1]))
    finally:
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
    if args.n <= 10_000:
        tut = tutorial_in_subprocess(args.n, args.seed, args.shape)
        result.update({"tutorial_s": round(tut["s"], 2) if tut.get("s") else None, "tutorial_peak_mb": round(tut["mb"], 1) if tut.get("mb") else None})
        if result["tutorial_s"]:
            result["speedup_vs_tutorial"] = round(result["tutorial_s"] / max(result["rebuild_s"], 1e-9), 1)
    else:
        result.update({"tutorial_s": None, "tutorial_peak_mb": None})
    line = json.dumps(result)
    print(line)
    if args.json:
        args.json.write_text(json.dumps({**result, "profiles": profiles}) + "\n")


if __name__ == "__main__":
    main()
