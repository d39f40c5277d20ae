"""Name-stage benchmark: the rebuild's "name" stage on n story-shaped synthetic headlines, against the stage as it was.

    python bench/names.py --n 100000 [--n 1000000] [--json FILE]
    python bench/names.py --csv HEADLINES.csv [--label story]    # real text: only whether the names are the same

Headlines and labels as bench/scale.py builds them (its corpus and _titles: two words of the story, one of the topic,
three common ones); the clusters are the generator's stories (background = noise), the topics its topics. The
documents are written to a SQLite history first, so the stage reads its texts as the rebuild does. Then, in the same
process, the stage runs as the rebuild runs it (service.usecases.rebuild.name_levels: naming over token ids) and as a
baseline close to how it ran before (every text read into a dict, each text tokenized, cut and counted as lists of
words, and each story's representatives read row by row: naming's batched=False, the reference), and the names of the
two are compared: they must be equal.

Prints one JSON line per n: n, stories, topics, setup_s (corpus and SQLite), names_s (the stage now, wall seconds, best
of --repeat interleaved runs), names_before_s (the baseline), speedup, names_cpu_s / names_cpu_before_s (the same in
process CPU seconds: steadier on a shared machine), same_names (every story and topic name equal).
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


def corpus_home(n: int, seed: int, home: Path):
    """(app, document ids sorted, vectors, story label per document, topic label per story): a SQLite history of
    n synthetic headlines."""
    from bench.scale import _app, _titles, corpus
    from service.domain import Headline

    vectors, story, topic = corpus(n, seed, "stories")
    titles = _titles(story, topic, np.random.default_rng(seed + 1))
    base = datetime(2024, 1, 1)
    heads = [Headline(key=f"bench:{i}", title=t, description="", url=None, published_at=base + timedelta(seconds=i))
             for i, t in enumerate(titles)]
    ids = np.array([h.id for h in heads], np.int64)
    app = _app(home, 15)
    for s in range(0, n, 20_000):
        app.ledger.add_documents(heads[s : s + 20_000], None, datetime(2024, 2, 1))
    del heads, titles
    order = np.argsort(ids)  # the rebuild's documents come sorted by id
    n_stories = int(story.max()) + 1
    story_topic = np.full(n_stories, -1, np.int64)
    story_topic[story[story >= 0]] = topic[story >= 0]
    return app, ids[order], vectors[order], story[order], story_topic


def names_before(app, doc_ids, vectors, story_labels, story_topic, story_ids, topic_ids):
    """The baseline: every text read into a dict, then each story's representatives read row by row."""
    from service.clustering.naming import name_clusters, name_topics
    from service.usecases.rebuild import STORY_NAME_DOCS, _story_name, _topic_name

    texts_by_id = app.ledger.document_texts(doc_ids)
    pairs = [texts_by_id.get(i, ("", "")) for i in doc_ids.tolist()]
    titles, texts = [p[0] for p in pairs], [" ".join(p) for p in pairs]
    by_story = name_clusters(texts, story_labels, vectors, titles=titles, max_keyword_docs=STORY_NAME_DOCS, batched=False)
    story_names = {int(story_ids[label]): _story_name(name, titles, doc_ids) for label, name in by_story.items()}
    story_sizes = np.bincount(story_labels[story_labels >= 0], minlength=len(story_topic))
    topic_names = {int(topic_ids[label]): _topic_name(name, doc_ids, int(topic_ids[label]))
                   for label, name in name_topics(by_story, story_topic, story_sizes, titles=titles).items()}
    return story_names, topic_names


def run(n: int, seed: int, repeat: int) -> dict:
    from service.clustering.naming import stop_words
    from service.usecases.rebuild import name_levels

    stop_words()  # scikit-learn's import, paid once at start (warmup.py)
    with tempfile.TemporaryDirectory(prefix="newsclust-names-") as tmp:
        t0 = time.perf_counter()
        app, doc_ids, vectors, story_labels, story_topic = corpus_home(n, seed, Path(tmp))
        setup_s = time.perf_counter() - t0
        story_ids = np.arange(len(story_topic), dtype=np.int64) + 1  # persistent ids as the match would give them
        topic_ids = np.arange(int(story_topic.max()) + 1, dtype=np.int64) + 1
        args = (app, doc_ids, vectors, story_labels, story_topic, story_ids, topic_ids)
        wall: dict[str, list[float]] = {"before": [], "now": []}
        cpu: dict[str, list[float]] = {"before": [], "now": []}
        got = {}
        for _ in range(repeat):  # interleaved, best of each: the machine is shared
            for key, stage in (("before", names_before), ("now", name_levels)):
                t0, c0 = time.perf_counter(), time.process_time()
                got[key] = stage(*args)
                wall[key].append(time.perf_counter() - t0)
                cpu[key].append(time.process_time() - c0)
        app.close()
    before_s, now_s = min(wall["before"]), min(wall["now"])
    return {"n": n, "stories": len(story_topic), "topics": len(topic_ids), "setup_s": round(setup_s, 1),
            "names_before_s": round(before_s, 2), "names_s": round(now_s, 2), "speedup": round(before_s / max(now_s, 1e-9), 2),
            "names_cpu_before_s": round(min(cpu["before"]), 2), "names_cpu_s": round(min(cpu["now"]), 2),
            "same_names": got["before"] == got["now"]}


def real_set(path: Path, label: str | None) -> dict:
    """A real headline file named both ways (no timing: whether the names are the same on real text, with its outlet
    suffixes, separators, entities and non-ASCII). Groups: the label column, else each headline's nearest of sqrt(n)
    headlines drawn at random; topics: every fifth group together. Vectors: the bundled MiniLM."""
    import csv
    from dataclasses import astuple

    from service.adapters.embedders import MiniLMEmbedder
    from service.clustering.naming import name_clusters, name_topics
    from service.domain import Headline

    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    titles = [r["title"] for r in rows]
    descriptions = [r.get("description") or "" for r in rows]
    texts = [" ".join(p) for p in zip(titles, descriptions)]  # as the rebuild joins them
    vectors = np.asarray(MiniLMEmbedder().embed([Headline("", t, d, None, None).text for t, d in zip(titles, descriptions)]), np.float32)
    if label and rows and label in rows[0]:
        labels = np.unique([r[label] for r in rows], return_inverse=True)[1].ravel()
    else:
        seeds = np.random.default_rng(0).choice(len(rows), int(np.sqrt(len(rows))), replace=False)
        labels = np.argmax(vectors @ vectors[seeds].T, axis=1)
    story_topic = np.arange(int(labels.max()) + 1) % max(1, (int(labels.max()) + 1) // 5)
    sizes = np.bincount(labels)
    out = {}
    for key, batched in (("before", False), ("now", True)):
        stories = name_clusters(texts, labels, vectors, titles=titles, descriptions=descriptions if batched else None,
                                max_keyword_docs=30, batched=batched)
        named = {"stories": stories, "topics": name_topics(stories, story_topic, sizes, titles=titles)}
        out[key] = {level: {k: astuple(v) for k, v in names.items()} for level, names in named.items()}
    keywords, _, title_row = out["now"]["stories"][0]
    return {"csv": path.name, "documents": len(rows), "stories": len(out["now"]["stories"]), "topics": len(out["now"]["topics"]),
            "same_names": out["before"] == out["now"], "example": {"title": titles[title_row], "keywords": list(keywords)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="documents (repeatable; default 100000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each, interleaved; the best counts")
    ap.add_argument("--csv", type=Path, action="append", help="a real headline CSV: only check the names are the same")
    ap.add_argument("--label", help="the CSVs' group column, where a CSV has it (else groups made from the vectors)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    for path in args.csv or []:
        results.append(real_set(path, args.label))
        print(json.dumps(results[-1]), flush=True)
    for n in args.n or ([] if args.csv else [100_000]):
        results.append(run(n, args.seed, args.repeat))
        print(json.dumps(results[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
