"""How query answers read for people: plain functions over the dicts the use cases and serve's API return.

Kept apart from the use cases (and free of numpy and the engine) so a query answered by `serve` prints
without importing them.
"""

from __future__ import annotations

# a title can be a whole article pasted into the title column (184 KB seen): the terminal gets a line
TITLE_CHARS = 200


def clip(text: str | None, limit: int = TITLE_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def describe_alert(a: dict) -> str:
    """An alert in one line: the console prints it, the Atom feed and the webhook carry it (adapters/notify.py)."""
    topic = f" in topic {a['topic_name']!r}" if a.get("topic_name") else ""
    if a["kind"] == "new":
        return f"New story {a['story_id']}{topic}: {a['size']} headlines. {a['title']}"
    return (f"Story {a['story_id']}{topic} is surging: {a['recent']} headlines in the last window of news time, "
            f"{a['size']} in all. {a['title']}")


def format_status(st: dict) -> str:
    """`newsclust status` for people: a few lines, the problems last."""
    files = st["files"]
    serving = "no (serve is not running)"
    if st["serving_pid"]:
        serving = f"pid {st['serving_pid']}" + (f", queries at {st['api_url']}" if st.get("api_url") else "")
    stories = st.get("stories", st["clusters"])
    lines = [
        f"serving          {serving}",
        f"documents        {st['documents']:,}",
        f"stories          {stories:,} in {st.get('topics', 0):,} topics; {st['noise']:,} headlines in no story "
        f"(run {st['last_rebuild_run'] or '-'} at {st['last_rebuild_at'] or 'never'})",
        f"pending          {st['pending_arrivals']:,} arrivals since that rebuild; inbox backlog {st['inbox_backlog']} file(s)",
        "files            " + (", ".join(f"{n} {k}" for k, n in sorted(files.items())) or "none yet"),
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


def format_hits(hits: list[dict]) -> str:
    lines = []
    for h in hits:
        when = str(h["published_at"] or "")[:16] or "-"
        story = f"story {h['story_id']}" if h["story_id"] not in (None, -1) else "no story"
        topic = f"topic {h['topic_id']} ({clip(h['topic_name'], 80)})" if h["topic_id"] not in (None, -1) else "no topic"
        lines.append(f"{h['similarity']:.3f}  {when:16}  {clip(h['title'])}\n        {story}: {clip(h['story_name']) or '-'}  |  {topic}")
    return "\n".join(lines)


def format_story(detail: dict, limit: int | None) -> str:
    """A story; `limit` of its headlines core first (None: all of them), the five newest beside.

    Core first: a stray member placed last is the newest, and newest first put it on top of the story."""
    lines = [f"story {detail['story_id']} ({detail['status']}): {clip(detail['title'])}",
             f"  topic      {detail['topic_id']} {clip(detail['topic_name'], 80)}",
             f"  keywords   {', '.join(detail['keywords'])}",
             "  size       " + ", ".join(f"run {r['run_id']}: {r['size']}" for r in detail["sizes"])]
    for link in detail["lineage"]:
        lines.append(f"  lineage    run {link['run_id']}: {link['kind']} {link['parent_id']} -> {link['child_id']}")
    for move in detail["moves"]:
        lines.append(f"  moved      run {move['run_id']}: topic {move['from_topic_id']} -> {move['to_topic_id']}")
    newest = detail.get("newest") or []
    if newest:
        lines.append(f"  newest     the last {min(5, len(newest))} of {len(newest)}:")
        lines.extend(f"    {str(h['published_at'] or h['ingested_at'])[:16]}  {clip(h['title'])}" for h in newest[:5])
    headlines = detail["headlines"]
    shown = headlines if limit is None else headlines[:limit]
    more = f" (the {len(shown)} most central shown; --all or --headlines N for more)" if len(shown) < len(headlines) else ", core first"
    lines.append(f"  headlines  {len(headlines)}{more}:")
    for h in shown:
        lines.append(f"    {str(h['published_at'] or h['ingested_at'])[:16]}  {clip(h['title'])}")
    return "\n".join(lines)


def format_topic(detail: dict) -> str:
    lines = [f"topic {detail['topic_id']} ({detail['status']}): {detail['name']}  — {detail['size']} headlines in {detail['n_stories']} stories",
             f"  keywords   {', '.join(detail['keywords'])}",
             "  size       " + ", ".join(f"run {r['run_id']}: {r['size']}" for r in detail["sizes"])]
    for st in detail["stories"]:
        lines.append(f"  story {st['story_id']:>6}  {st['size']:>5}  {clip(st['title'])}")
    return "\n".join(lines)
