"""Alerts: new stories after a rebuild, surges after arrivals; recorded once per change, then told (feed, log, webhook)."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ..clustering.alerts import SurgeRule, story_paces

if TYPE_CHECKING:
    from ..bootstrap import App

log = logging.getLogger("newsclust")


def raise_alerts(app: App, run_id: int | None = None) -> list[dict]:
    """After a rebuild (run_id: new stories and surges) or after arrivals (surges only): decide, record once per
    story and state change, then tell: the Atom feed, one log line each, the webhook."""
    s = app.settings
    run = app.repo.latest_run()
    if run is None:
        return []
    rule = SurgeRule(window_s=s.surge_window_h * 3600.0, factor=s.surge_factor, min_recent=s.surge_min_headlines)
    newest = app.repo.newest_time("published")
    since = newest - timedelta(seconds=rule.window_s * 30) if newest is not None else None  # a month of 6-h windows is plenty of past
    story_ids, times = app.alerts.story_times(run.id, since)
    paces = {p.story_id: p for p in story_paces(story_ids, times, rule)}
    cards = app.alerts.story_cards(run.id)
    states = app.alerts.states()
    announce_new = run_id == run.id and app.alerts.first_done_run() != run.id  # the first rebuild sets the baseline
    born = app.alerts.born_stories(run.id) if run_id == run.id else set()
    stream_time = datetime.fromtimestamp(times.max(), timezone.utc).replace(tzinfo=None) if len(times) else None
    raised, changed = [], {}
    for sid, card in cards.items():
        announced, surging = states.get(sid, (False, False))
        pace = paces.get(sid)
        now_new = sid in born and not announced
        if now_new:
            announced = True
            if announce_new and card["size"] >= s.alert_new_min_size:
                raised.append(_alert("new", sid, card, pace, run_id, stream_time))
        now_surging = bool(pace and pace.surging) and not now_new
        if now_surging and not surging:
            raised.append(_alert("surging", sid, card, pace, run_id, stream_time))
        if (announced, now_surging) != states.get(sid, (False, False)):
            changed[sid] = (announced, now_surging)
    recorded = app.alerts.record(raised, changed) if (raised or changed) else []
    if recorded:
        _tell(app, recorded)
    return recorded


def _alert(kind: str, sid: int, card: dict, pace, run_id: int | None, stream_time) -> dict:
    details = {"usual_per_window": round(pace.usual, 2), "typical_per_window": round(pace.typical, 2)} if pace else {}
    return {"kind": kind, "story_id": sid, "topic_id": card["topic_id"], "topic_name": card["topic_name"], "title": card["title"],
            "size": card["size"], "recent": pace.recent if pace else 0, "run_id": run_id, "stream_time": stream_time, "details": details}


def _tell(app: App, recorded: list[dict]) -> None:
    from ..adapters.notify import describe, write_atom_feed

    for a in recorded:
        log.info("ALERT %s", describe(a))  # info: serve and demo print each alert once themselves
        if app.webhook is not None:
            app.webhook.post({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in a.items()})
    s = app.settings
    s.reports_dir.mkdir(parents=True, exist_ok=True)
    write_atom_feed(s.reports_dir / "alerts.xml", app.alerts.latest(100), feed_id=f"urn:newsclust:{hashlib.sha256(str(s.home.resolve()).encode()).hexdigest()[:16]}")


def raise_alerts_safely(app: App, run_id: int | None = None) -> list[dict]:
    """Alerts never fail what they follow: a rebuild stays committed, a file stays ingested."""
    try:
        return raise_alerts(app, run_id)
    except Exception as exc:  # noqa: BLE001
        log.warning("alerts not raised (%s: %s)", type(exc).__name__, exc)
        return []
