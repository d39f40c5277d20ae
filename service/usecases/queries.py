"""Reads for people: search, a story, a topic, the CSV export, status."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

from ..domain import HistoryStatus
from ..files import SafeCsvWriter, atomic_open
from ..ports import App


# a title can be a whole article pasted into the title column (184 KB seen), past the csv module's default field limit
# (131,072 characters): the export carries its start, the history keeps all of it
EXPORT_TITLE_CHARS = 1000
EXPORT_COLUMNS = ["guid", "title", "story_id", "story_name", "topic_id", "topic_name", "probability", "outlier_score", "assigned_by",
                  "run_id", "cluster_id"]


def search(app: App, query: str, k: int = 10, serving: bool = False) -> list[dict]:
    """The headlines nearest to `query`, with their story and topic. Beside a running serve (which holds a Milvus
    Lite file) the App's search index is the writer's vector copy, never the store opened as a second writer."""
    index = app.search_index(serving)
    fetch = 2 * k + 8  # over-fetch: a vector whose document row is not written yet is dropped
    ids, dist = index.search(app.embedder.embed([query]), fetch)
    sims = 1.0 - dist.astype(np.float64) ** 2 / 2.0
    found = [(int(i), float(sim)) for i, sim in zip(ids[0], sims[0]) if i >= 0]
    docs = app.stories.documents([i for i, _ in found])
    out = []
    for doc_id, sim in found:
        if doc_id in docs:
            d = docs[doc_id]
            out.append({"similarity": round(sim, 4), "document_id": doc_id, "title": d["title"], "published_at": d["published_at"],
                        "story_id": d["story_id"], "story_name": d["story_name"], "topic_id": d["topic_id"], "topic_name": d["topic_name"]})
    return out[:k]


def story_detail(app: App, story_id: int) -> dict | None:
    return app.stories.story(story_id)


def topic_detail(app: App, topic_id: int) -> dict | None:
    return app.stories.topic(topic_id)


def export_csv(app: App, out) -> int:
    """One row per document (titles cut to EXPORT_TITLE_CHARS); noise is -1 at either level; a document no rebuild or prediction has placed yet has empty
    fields. cluster_id repeats story_id for scripts written before topics existed."""
    w = SafeCsvWriter(out)
    w.writerow(EXPORT_COLUMNS)
    n = 0
    blank = lambda v: "" if v is None else v  # noqa: E731
    for r in app.stories.export_rows():
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
    """The history's counts, plus what the serving processes alone know (files they are retrying, a rebuild's backoff,
    where the query API listens): `live` when asked inside serve, else what they published (RunFiles.serving_statuses:
    the one server's, or every worker's on a shared home)."""
    h = app.stories.status()
    st = {
        "documents": h.documents,
        "clusters": h.stories,  # "clusters" is the name scripts written before topics read
        "noise": h.noise,
        "pending_arrivals": h.pending_arrivals,
        "last_rebuild_run": h.last_run_id,
        "last_rebuild_at": _when(h.last_run_at),
        "rebuild_running_since": _when(h.running_since),
        "last_error": _last_error(h),
        "files": h.files,
        "files_waiting": [{"file": w.name, "state": w.state, "attempts": w.attempts, "reason": w.reason} for w in h.files_waiting],
    }
    st["stories"] = h.stories
    st["noise_headlines"] = h.noise
    st["topics"] = len(app.stories.run_topics(h.last_run_id)) if h.last_run_id else 0
    inbox = app.settings.inbox
    st["inbox_backlog"] = sum(1 for p in inbox.iterdir() if p.is_file() and not p.name.startswith(".")) if inbox.exists() else 0
    st["serving_pid"] = serving_pid
    lives = [live] if live is not None else (app.run_files.serving_statuses() if serving_pid else [])
    lives = [x for x in lives if x]
    st["api_url"] = next((x["api_url"] for x in lives if x.get("api_url")), None)
    for live in lives:
        st["rebuild_running_since"] = live.get("rebuild_running_since") or st["rebuild_running_since"]
        st["rebuild_backoff_until"] = live.get("rebuild_backoff_until") or st.get("rebuild_backoff_until")
        if live.get("last_error") and (st["last_error"] is None or (live["last_error"]["at"] or "") >= (st["last_error"]["at"] or "")):
            st["last_error"] = live["last_error"]
        waiting = {w["file"]: w for w in st["files_waiting"]}
        for name, entry in live.get("files_waiting", {}).items():
            waiting[name] = {"file": name, "state": entry.get("state"), "attempts": entry.get("attempts"), "reason": entry.get("reason"),
                             "next_try_at": entry.get("next_try_at")}
        st["files_waiting"] = list(waiting.values())
    return st


def _when(at: datetime | None) -> str | None:
    return at.isoformat(sep=" ", timespec="seconds") if at is not None else None


def _last_error(h: HistoryStatus) -> dict | None:
    """The later of the latest failed rebuild and the latest failed (or retried) file."""
    errors = []
    if h.failed_run is not None:
        errors.append((h.failed_run.at, f"rebuild run {h.failed_run.run_id} failed: {h.failed_run.error}"))
    if h.failed_file is not None:
        errors.append((h.failed_file.at, h.failed_file.reason or f"{h.failed_file.name}: failed"))
    if not errors:
        return None
    at, what = max(errors, key=lambda e: e[0] or datetime.min)
    return {"at": _when(at), "what": what}
