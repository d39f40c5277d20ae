"""Reads for people: search, a story, a topic, the CSV export, status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import SafeCsvWriter, atomic_open
from ..views import format_status  # noqa: F401 — re-exported: usecases.format_status

if TYPE_CHECKING:
    from ..bootstrap import App


# a title can be a whole article pasted into the title column (184 KB seen), past the csv module's default field limit
# (131,072 characters): the export carries its start, the history keeps all of it
EXPORT_TITLE_CHARS = 1000
EXPORT_COLUMNS = ["guid", "title", "story_id", "story_name", "topic_id", "topic_name", "probability", "outlier_score", "assigned_by",
                  "run_id", "cluster_id"]


def search(app: App, query: str, k: int = 10, serving: bool = False) -> list[dict]:
    """The headlines nearest to `query`, with their story and topic. Beside a running serve (which holds a Milvus
    Lite file) it reads the writer's vector copy under HOME/state/, never opening Milvus as a second writer."""
    from ..adapters.vector_cache import CacheReader

    s = app.settings
    vector = app.embedder.embed([query])
    fetch = 2 * k + 8  # over-fetch: a vector whose document row is not written yet is dropped
    folder = s.state_dir / f"vectors-{s.collection}"
    reader = CacheReader(folder, app.embedder.dim, source=_copy_source(folder, s.resolved_milvus_uri, s.collection))
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


def _copy_source(folder: Path, uri: str, collection: str) -> str:
    """The source a vector copy must name to be read: ours, or the writer's spelling of the same Lite file (serve
    started with `--home h`, search with `--home /abs/h`: one file, two strings)."""
    ours = f"{uri}#{collection}"
    if uri.startswith(("http://", "https://", "tcp://")):
        return ours
    try:
        written = json.loads((folder / "source.json").read_text()).get("source", "")
    except (OSError, ValueError):
        return ours
    path, _, coll = written.rpartition("#")
    return written if coll == collection and path and Path(path).resolve() == Path(uri).resolve() else ours


def story_detail(app: App, story_id: int) -> dict | None:
    return app.reader.story(story_id)


def topic_detail(app: App, topic_id: int) -> dict | None:
    return app.reader.topic(topic_id)


def export_csv(app: App, out) -> int:
    """One row per document (titles cut to EXPORT_TITLE_CHARS); noise is -1 at either level; a document no rebuild or prediction has placed yet has empty
    fields. cluster_id repeats story_id for scripts written before topics existed."""
    w = SafeCsvWriter(out)
    w.writerow(EXPORT_COLUMNS)
    n = 0
    blank = lambda v: "" if v is None else v  # noqa: E731
    for r in app.repo.export_rows():
        guid = r.key.split(":", 1)[1] if r.key.startswith(("guid:", "url:")) else r.key
        title = r.title if len(r.title or "") <= EXPORT_TITLE_CHARS else r.title[: EXPORT_TITLE_CHARS - 1] + "…"
        w.writerow([guid, title, blank(r.cluster_id), blank(r.story_name), blank(r.topic_id), blank(r.topic_name),
                    "" if r.probability is None else f"{r.probability:.4f}", "" if r.outlier_score is None else f"{r.outlier_score:.4f}",
                    r.assigned_by or "", r.run_id or "", blank(r.cluster_id)])
        n += 1
    return n


def export_csv_file(app: App, out: Path) -> int:
    """export_csv into a file, whole or not at all; a missing folder is made, as `report --out` does."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(out) as fh:
        return export_csv(app, fh)


def status(app: App, serving_pid: int | None = None, live: dict | None = None) -> dict:
    """The history's counts, plus what the serving process alone knows (files it is retrying, a rebuild's backoff,
    where its query API listens): `live` when asked inside serve, else read from the status file serve writes."""
    st = app.repo.status()
    run_id = st["last_rebuild_run"]
    st["stories"] = st["clusters"]  # "clusters" is the name scripts written before topics read
    st["noise_headlines"] = st["noise"]
    st["topics"] = len(app.repo.run_topics(run_id)) if run_id else 0
    inbox = app.settings.inbox
    st["inbox_backlog"] = sum(1 for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")) if inbox.exists() else 0
    st["serving_pid"] = serving_pid
    if live is None and serving_pid:
        live = _serving_status(app.settings.state_dir / "service.json")
    st["api_url"] = (live or {}).get("api_url")
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

