"""Where alerts go besides SQLite: an Atom feed any reader opens, and a webhook that never holds anything up.

The webhook posts from its own thread with a timeout and a few retries with backoff; a dead
endpoint costs a log line, never a blocked ingest or rebuild. The queue is bounded: when an
endpoint is down for long, the oldest undelivered alerts are dropped (they stay in SQLite and the feed).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from ..files import atomic_write

log = logging.getLogger("newsclust.alerts")

ATOM = "http://www.w3.org/2005/Atom"


def write_atom_feed(path: Path, alerts: Sequence[dict], feed_id: str, title: str = "newsclust alerts") -> None:
    """alerts: newest first, each with id, at, kind, story_id, title, size, recent, topic_name (may be None)."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    ET.SubElement(feed, f"{{{ATOM}}}id").text = feed_id
    ET.SubElement(feed, f"{{{ATOM}}}title").text = title
    updated = alerts[0]["at"] if alerts else datetime.now(timezone.utc).replace(tzinfo=None)
    ET.SubElement(feed, f"{{{ATOM}}}updated").text = _rfc3339(updated)
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    ET.SubElement(author, f"{{{ATOM}}}name").text = "newsclust"
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="alternate", href="latest.html")
    for a in alerts:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        ET.SubElement(entry, f"{{{ATOM}}}id").text = f"{feed_id}:alert:{a['id']}"
        ET.SubElement(entry, f"{{{ATOM}}}title").text = f"{_headline(a)}: {a['title']}"
        ET.SubElement(entry, f"{{{ATOM}}}updated").text = _rfc3339(a["at"])
        ET.SubElement(entry, f"{{{ATOM}}}link", rel="alternate", href="latest.html")
        ET.SubElement(entry, f"{{{ATOM}}}category", term=a["kind"])
        ET.SubElement(entry, f"{{{ATOM}}}summary").text = describe(a)
    atomic_write(path, b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(feed, encoding="utf-8"))


def describe(a: dict) -> str:
    topic = f" in topic {a['topic_name']!r}" if a.get("topic_name") else ""
    if a["kind"] == "new":
        return f"New story {a['story_id']}{topic}: {a['size']} headlines. {a['title']}"
    return (f"Story {a['story_id']}{topic} is surging: {a['recent']} headlines in the last window of news time, "
            f"{a['size']} in all. {a['title']}")


def _headline(a: dict) -> str:
    return "New story" if a["kind"] == "new" else "Surging"


def _rfc3339(at) -> str:
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return at.replace(tzinfo=timezone.utc, microsecond=0).isoformat().replace("+00:00", "Z")


class Webhook:
    """POSTs each alert as JSON to `url` from a background thread: timeout, retries with backoff, bounded queue."""

    def __init__(self, url: str, timeout_s: float = 5.0, tries: int = 3, first_backoff_s: float = 1.0, max_queue: int = 1000):
        self.url = url
        self.timeout_s = timeout_s
        self.tries = tries
        self.first_backoff_s = first_backoff_s
        self._queue: queue.Queue[dict | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def post(self, payload: dict) -> None:
        """Never blocks: a full queue drops its oldest alert."""
        while True:
            try:
                self._queue.put_nowait(payload)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                    log.warning("webhook queue full: dropped alert %s", (dropped or {}).get("id"))
                except queue.Empty:
                    pass

    def close(self, wait_s: float = 2.0) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(wait_s)

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            self._deliver(payload)

    def _deliver(self, payload: dict) -> None:
        body = json.dumps(payload, default=str).encode("utf-8")
        for attempt in range(1, self.tries + 1):
            request = urllib.request.Request(self.url, data=body, method="POST", headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if 200 <= response.status < 300:
                        return
                    reason = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt < self.tries:
                time.sleep(self.first_backoff_s * 2 ** (attempt - 1))
        log.warning("webhook %s: alert %s not delivered after %d tries (%s)", self.url, payload.get("id"), self.tries, reason)
