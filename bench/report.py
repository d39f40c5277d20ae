"""Report benchmark: write the HTML report for N documents (default 100k) from a real SQLite history.

    python bench/report.py [--n 100000]

Builds a home with synthetic news-shaped vectors in Milvus Lite and synthetic headlines in SQLite,
rebuilds, then times the 2-D layout and the page writing, and prints the page size (plotly.js beside it) and the
size of the --standalone page (plotly.js inline);
beside it, the tutorial's single Plotly scatter of the same points with the same hover text.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.synthetic import news_like_vectors  # noqa: E402

WORDS = "storm rates election quake merger final lander flu tariffs strike layoffs oil bill breach open drought".split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    from service import usecases
    from service.adapters.milvus import MilvusStore
    from service.bootstrap import App
    from service.config import load_settings
    from service.domain import Headline, document_key

    home = Path(tempfile.mkdtemp(prefix="newsclust-report-"))
    settings = load_settings(home=home, env={}, recipe="graph")
    settings.ensure_dirs()
    vectors, story = news_like_vectors(args.n, seed=1)
    store = MilvusStore(settings.resolved_milvus_uri, settings.collection, vectors.shape[1])
    app = App(settings, store=store)
    start = datetime(2026, 1, 1)
    heads = [
        Headline(key=document_key(f"b{i}", None, "", ""), title=f"{WORDS[s % len(WORDS)].title()} story {s} headline {i} <b>with</b> text",
                 description="", url=None, published_at=start + timedelta(minutes=i % 20000), extra={})
        for i, s in enumerate(story)
    ]
    ids = np.array([h.id for h in heads], np.int64)
    for s in range(0, args.n, 10_000):
        store.upsert(ids[s : s + 10_000], vectors[s : s + 10_000], np.zeros(min(10_000, args.n - s), np.int64), np.zeros(min(10_000, args.n - s), np.int64))
        app.ledger.add_documents(heads[s : s + 10_000], None, datetime(2026, 2, 1))
    r = usecases.rebuild(app, write_report_after=True)
    page = Path(r.report)
    t0 = time.perf_counter()
    usecases.write_report(app, r.run_id, home / "again.html")
    report_s = time.perf_counter() - t0
    from service.report.page import render_report
    from service.state import load_layout as _load

    t0 = time.perf_counter()
    standalone = render_report(app.stories, app.runs.run(r.run_id), _load(settings.state_dir, r.run_id), standalone=True)
    standalone_s = time.perf_counter() - t0

    import plotly.express as px

    from service.clustering.layout import layout_2d  # noqa: F401  (same layout as ours: only the page differs)
    from service.state import load_layout

    doc_ids, xy = load_layout(settings.state_dir, r.run_id)
    t0 = time.perf_counter()
    titles = {h.id: h.title for h in heads}
    fig = px.scatter(x=xy[:, 0], y=xy[:, 1], hover_name=[titles[int(i)] for i in doc_ids])
    fig.write_html(home / "tutorial.html")
    tutorial_s = time.perf_counter() - t0
    result = {
        "n": args.n, "clusters": r.stories, "rebuild_s": round(sum(v for k, v in r.seconds.items() if k not in ("layout", "report")), 1),
        "layout_s": r.seconds.get("layout"), "report_s": round(report_s, 2), "report_mb": round(page.stat().st_size / 2**20, 2),
        "standalone_s": round(standalone_s, 2), "standalone_mb": round(len(standalone.encode()) / 2**20, 2),
        "plotly_js_mb_beside": round((settings.reports_dir / "plotly.min.js").stat().st_size / 2**20, 2),
        "tutorial_scatter_s": round(tutorial_s, 2), "tutorial_scatter_mb": round((home / "tutorial.html").stat().st_size / 2**20, 2),
    }
    print(json.dumps(result))
    app.close()


if __name__ == "__main__":
    main()
