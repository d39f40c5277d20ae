"""Reads for people: search, a story, a topic, the CSV export, status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import SafeCsvWriter, atomic_open

if TYPE_CHECKING:
    from ..bootstrap import App


EXPORT_COLUMNS = ["guid", "title", "story_id", "story_name", "topic_id", "topic_name", "probability", "outlier_score", "assigned_by",
                  "run_id", "cluster_id"]


def search(app: App, query: str, k: int = 10, serving: bool = False) -> list[dict]:
    """The headlines nearest to `query`, with their story and topic. Beside a running serve (which holds a Milvus
    Lite file) it reads the writer's vector copy under HOME/state/, never opening Milvus as a second writer."""
    from ..adapters.vector_cache import CacheReader

    s = app.settings
    vector = app.embedder.embed([query])
    fetch = 2 * k + 8  # over-fetch: a vector whose document row is not written yet is dropped
    reader = CacheReader(s.state_dir / f"vectors-{s.collection}", app.embedder.dim, source=f"{s.resolved_milvus_uri}#{s.collection}")
    if reader.usable:
        ids, sims = reader.search(vector, fetch)
    elif not serving or s.resolved_milvus_uri.startswith(("http://", "https://", "tcp://")):
        ids, dist = app.store.search(vector, fetch)
        sims = 1.0 - dist.astype(np.float64) ** 2 / 2.0
    else:
        raise LookupError("search beside a running serve reads its vector copy under HOME/state/, and there is none "
                          "(vector_cache = false): stop serve, or use a Milvus server")
    found = [(int(i), float(sim)) for i, sim in zip(ids[0], sims[0]) if i >= 0]
    docs = app.reader.documents([i for i, _ in found])
    out = []
    for doc_id, sim in found:
        if doc_id in docs:
            d = docs[doc_id]
            out.append({"similarity": round(sim, 4), "document_id": doc_id, "title": d["title"], "published_at": d["published_at"],
                        "story_id": d["story_id"], "story_name": d["story_name"], "topic_id": d["topic_id"], "topic_name": d["topic_name"]})
    return out[:k]


def story_detail(app: App, story_id: int) -> dict | None:
    return app.reader.story(story_id)


def topic_detail(app: App, topic_id: int) -> dict | None:
    return app.reader.topic(topic_id)


def export_csv(app: App, out) -> int:
    """One row per document; noise is -1 at either level; a document no rebuild or prediction has placed yet has empty
    fields. cluster_id repeats story_id for scripts written before topics existed."""
    w = SafeCsvWriter(out)
    w.writerow(EXPORT_COLUMNS)
    n = 0
    blank = lambda v: "" if v is None else v  # noqa: E731
    for r in app.repo.export_rows():
        guid = r.key.split(":", 1)[1] if r.key.startswith(("guid:", "url:")) else r.key
        w.writerow([guid, r.title, blank(r.cluster_id), blank(r.story_name), blank(r.topic_id), blank(r.topic_name),
                    "" if r.probability is None else f"{r.probability:.4f}", "" if r.outlier_score is None else f"{r.outlier_score:.4f}",
                    r.assigned_by or "", r.run_id or "", blank(r.cluster_id)])
        n += 1
    return n


def export_csv_file(app: App, out: Path) -> int:
    """export_csv into a file, whole or not at all."""
    with atomic_open(out) as fh:
        return export_csv(app, fh)


def status(app: App, serving_pid: int | None = None) -> dict:
    """The history's counts, plus what the serving process alone knows (files it is retrying, a rebuild's backoff)."""
    st = app.repo.status()
    inbox = app.settings.inbox
    st["inbox_backlog"] = sum(1 for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")) if inbox.exists() else 0
    st["serving_pid"] = serving_pid
    live = _serving_status(app.settings.state_dir / "service.json") if serving_pid else None
    if live:
        st["rebuild_running_since"] = live.get("rebuild_running_since") or st["rebuild_running_since"]
        st["rebuild_backoff_until"] = live.get("rebuild_backoff_until")
        if live.get("last_error") and (st["last_error"] is None or (live["last_error"]["at"] or "") >= (st["last_error"]["at"] or "")):
            st["last_error"] = live["last_error"]
        waiting = {w["file"]: w for w in st["files_waiting"]}
        for name, entry in live.get("files_waiting", {}).items():
            waiting[name] = {"file": name, "state": entry.get("state"), "attempts": entry.get("attempts"), "reason": entry.get("reason"),
                             "next_try_at": entry.get("next_try_at")}
        st["files_waiting"] = list(waiting.values())
    return st


def _serving_status(path: Path) -> dict | None:
    from ..state import read_status

    return read_status(path)


def format_status(st: dict) -> str:
    """`newsclust status` for people: a few lines, the problems last."""
    files = st["files"]
    lines = [
        f"serving          {'pid ' + str(st['serving_pid']) if st['serving_pid'] else 'no (serve is not running)'}",
        f"documents        {st['documents']:,}",
        f"stories          {st['clusters']:,} (noise {st['noise']:,}) in run {st['last_rebuild_run'] or '-'} at {st['last_rebuild_at'] or 'never'}",
        f"pending          {st['pending_arrivals']:,} arrivals since that rebuild; inbox backlog {st['inbox_backlog']} file(s)",
        f"files            " + (", ".join(f"{n} {k}" for k, n in sorted(files.items())) or "none yet"),
    ]
    if st.get("rebuild_running_since"):
        lines.append(f"rebuilding       since {st['rebuild_running_since']} UTC")
    if st.get("rebuild_backoff_until"):
        lines.append(f"rebuild backoff  next try at {st['rebuild_backoff_until']} UTC")
    for w in st["files_waiting"]:
        when = f", next try {w['next_try_at']} UTC" if w.get("next_try_at") else ""
        lines.append(f"{w['state']:16} {w['file']} (tries {w['attempts']}{when}): {w['reason']}")
    if st.get("last_error"):
        lines.append(f"last error       {st['last_error']['at']} UTC: {st['last_error']['what']}")
    return "\n".join(lines)
