"""Where alerts go besides SQLite: an Atom feed any reader opens, and a webhook that never holds anything up.

The webhook posts from its own thread with a timeout and a few retries with backoff; a dead
endpoint costs a log line, never a blocked ingest or rebuild. Each POST carries the alert's id and an
Idempotency-Key; undelivered alerts wait in an outbox table and are sent again after a restart.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from ..views import describe_alert

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


describe = describe_alert  # the one-line text of an alert, shared with the console (views.py)


def _headline(a: dict) -> str:
    return "New story" if a["kind"] == "new" else "Surging"


def _rfc3339(at) -> str:
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return at.replace(tzinfo=timezone.utc, microsecond=0).isoformat().replace("+00:00", "Z")


class Teller:
    """ports.Notifier: each alert one log line and a webhook POST (when a webhook is set), then the feed rewritten.

    webhook: a callable giving the poster, or None where no webhook_url is set; called on the first alert only, so a
    home that never alerts never starts the poster's thread."""

    def __init__(self, feed_path: Path, feed_id: str, webhook=None):
        self.feed_path, self.feed_id, self._webhook = feed_path, feed_id, webhook

    def tell(self, recorded: list[dict], feed: list[dict]) -> None:
        poster = self._webhook() if self._webhook is not None and recorded else None
        for a in recorded:
            logging.getLogger("newsclust").info("ALERT %s", describe(a))  # info: serve and demo print each alert once themselves
            if poster is not None:
                poster.post({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in a.items()})
        self.feed_path.parent.mkdir(parents=True, exist_ok=True)
        write_atom_feed(self.feed_path, feed, feed_id=self.feed_id)


class Outbox(Protocol):
    """Where undelivered alerts wait (the history database's webhook_outbox table; sql/outbox.py)."""

    def add(self, alert_id: int, payload: dict) -> None: ...
    def pending(self) -> list[dict]: ...
    def delivered(self, alert_id: int) -> None: ...
    def failed(self, alert_id: int, tries: int, reason: str) -> None: ...


class Webhook:
    """POSTs each alert as JSON to `url` from a background thread: timeout, retries with backoff, bounded queue.

    Each POST carries the alert's id (in the body, and as the Idempotency-Key header, unique per home), so a
    receiver can drop the repeats a timeout causes (a receiver that answers after our timeout gets the alert
    again). With an outbox, an alert is kept there from its posting until a 2xx answer: alerts still queued at
    a stop, or given up on after `tries`, are sent again at the next start (one log line per give-up).
    """

    def __init__(self, url: str, timeout_s: float = 5.0, tries: int = 3, first_backoff_s: float = 1.0, max_queue: int = 1000,
                 outbox: Outbox | None = None, key_prefix: str = "newsclust"):
        self.url = url
        self.timeout_s = timeout_s
        self.tries = tries
        self.first_backoff_s = first_backoff_s
        self.outbox = outbox
        self.key_prefix = key_prefix
        self._queue: queue.Queue[dict | None] = queue.Queue(maxsize=max_queue)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()
        if outbox is not None:
            try:
                waiting = outbox.pending()
            except Exception as exc:  # noqa: BLE001 — the database is away: they are sent at the next start
                log.warning("webhook outbox not read (%s: %s)", type(exc).__name__, exc)
                waiting = []
            if waiting:
                log.warning("webhook %s: sending %d alert(s) left undelivered before (outbox)", url, len(waiting))
            for payload in waiting:
                self._enqueue(payload)

    def idempotency_key(self, payload: dict) -> str:
        return f"{self.key_prefix}:alert:{payload.get('id')}"

    def post(self, payload: dict) -> None:
        """Never blocks on the endpoint: the alert goes to the outbox, then the queue (a full queue drops its oldest
        alert from memory; with an outbox it is still sent at the next start)."""
        if self.outbox is not None and payload.get("id") is not None:
            try:
                self.outbox.add(int(payload["id"]), payload)
            except Exception as exc:  # noqa: BLE001 — the alert itself is recorded; only its resend after a stop is lost
                log.warning("alert %s not put in the webhook outbox (%s: %s)", payload.get("id"), type(exc).__name__, exc)
        self._enqueue(payload)

    def _enqueue(self, payload: dict) -> None:
        while True:
            try:
                self._queue.put_nowait(payload)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                    log.warning("webhook queue full: alert %s dropped from memory%s", (dropped or {}).get("id"),
                                "; it stays in the outbox for the next start" if self.outbox is not None else "")
                except queue.Empty:
                    pass

    def close(self, wait_s: float = 2.0) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(wait_s)
        self._closed.set()  # what is left is not sent by this process (it stays in the outbox)
        left = self._queue.qsize()
        if left and self.outbox is not None:
            log.warning("webhook %s: %d alert(s) not sent before the stop stay in the outbox; sent at the next start", self.url, left)

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None or self._closed.is_set():
                return
            self._deliver(payload)

    def _deliver(self, payload: dict) -> None:
        body = json.dumps(payload, default=str).encode("utf-8")
        headers = {"Content-Type": "application/json", "Idempotency-Key": self.idempotency_key(payload),
                   "X-Newsclust-Alert-Id": str(payload.get("id"))}
        reason = ""
        for attempt in range(1, self.tries + 1):
            request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    if 200 <= response.status < 300:
                        self._settle(payload, None)
                        return
                    reason = f"HTTP {response.status}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt < self.tries:
                if self._closed.wait(self.first_backoff_s * 2 ** (attempt - 1)):
                    return  # stopped: the alert stays in the outbox
        kept = "; it stays in the outbox and is sent again at the next start" if self.outbox is not None else ""
        log.warning("webhook %s: gave up on alert %s after %d tries (%s)%s", self.url, payload.get("id"), self.tries, reason, kept)
        self._settle(payload, reason)

    def _settle(self, payload: dict, failure: str | None) -> None:
        if self.outbox is None or payload.get("id") is None:
            return
        try:
            if failure is None:
                self.outbox.delivered(int(payload["id"]))
            else:
                self.outbox.failed(int(payload["id"]), self.tries, failure)
        except Exception as exc:  # noqa: BLE001 — at worst the receiver sees the alert again (same Idempotency-Key)
            log.warning("webhook outbox not updated for alert %s (%s: %s)", payload.get("id"), type(exc).__name__, exc)
