"""Alerts: new stories after a rebuild, surges after arrivals; recorded once per change, then told (feed, log, webhook)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import numpy as np

from ..clustering.alerts import MIN_COHESION_RATIO, NewStoryRule, StoryProfiles, SurgeRule, fragment_home, loose, story_paces, worth_announcing

if TYPE_CHECKING:
    from ..ports import App

log = logging.getLogger("newsclust")

def raise_alerts(app: App, run_id: int | None = None, profiles: StoryProfiles | None = None,
                 placed: dict[int, dict[int, int]] | None = None, labels: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """After a rebuild (run_id: new stories and surges) or after arrivals (surges only): decide, record once per
    story and state change, then tell: the Atom feed, one log line each, the webhook.

    Worth reading: a 'new' story needs headlines in the last window and must not be a fragment of a story already
    announced (clustering.alerts: worth_announcing, fragment_home; profiles given by the rebuild); a story that is a loose bag of one-offs alerts neither way;
    at most alert_max_per_rebuild alerts, the largest stories first, the number held back in each one's details.
    labels: run_id's story labels (document ids, story ids) as the rebuild holds them, so its alerts do not read them back."""
    s = app.settings
    run = app.runs.latest_run()
    if run is None:
        return []
    rule = SurgeRule(window_s=s.surge_window_h * 3600.0, factor=s.surge_factor, min_recent=s.surge_min_headlines)
    new_rule = NewStoryRule(min_size=s.alert_new_min_size)
    newest = app.ledger.newest_time("published")
    since = newest - timedelta(seconds=rule.window_s * 30) if newest is not None else None  # a month of 6-h windows is plenty of past
    story_ids, times = app.alerts.story_times(run.id, since, labels if run_id == run.id else None)
    paces = {p.story_id: p for p in story_paces(story_ids, times, rule)}
    cards = app.alerts.story_cards(run.id)
    states = app.alerts.states()
    announce_new = run_id == run.id and app.alerts.first_done_run() != run.id  # the first rebuild sets the baseline
    # every story born in the run, split off an older one or not: a part of a told story is found by its content and
    # its members' homes (fragment_home). Lineage alone hid real events: a swimming story born with three of its ten
    # headlines out of a football story that had taken them in was told as a split, not as news.
    born = app.alerts.born_stories(run.id) if run_id == run.id else set()
    stream_time = datetime.fromtimestamp(times.max(), timezone.utc).replace(tzinfo=None) if len(times) else None
    cohesion = _cohesion(app, run.id, profiles)
    typical = float(np.median(list(cohesion.values()))) if cohesion else 0.0
    def bag(sid: int) -> bool:  # a bag of unrelated one-offs, not an event
        return sid in cohesion and loose(cohesion[sid], typical, MIN_COHESION_RATIO)

    told = [sid for sid, (announced, _) in states.items() if announced and sid in cards]
    ever_told = {sid for sid, (announced, _) in states.items() if announced}
    candidates = [sid for sid in born if sid in cards and not states.get(sid, (False, False))[0]] if announce_new else []
    homes = app.alerts.earlier_homes(run.id, candidates)  # where the members of each new story sat in the last runs
    for sid in candidates:  # ... and where users saw them placed as they arrived (placed: clustering.alerts.placed_homes)
        for earlier, n in (placed or {}).get(sid, {}).items():
            homes.setdefault(sid, {})[earlier] = max(homes.get(sid, {}).get(earlier, 0), n)
    if profiles is not None and candidates:  # each story's topic beside its centre: fragments are looked for in it too
        profiles = profiles.with_topics({sid: card["topic_id"] for sid, card in cards.items()})
    raised, changed, told_now = [], {}, []
    for sid, card in sorted(cards.items(), key=lambda kv: -kv[1]["size"]):  # largest first: a fragment defers to its bigger part
        announced, surging = states.get(sid, (False, False))
        pace = paces.get(sid)
        now_new = sid in born and not announced
        if now_new:
            announced = True
            if announce_new and worth_announcing(card["size"], pace.recent if pace else 0, bag(sid), new_rule):
                part_of = fragment_home(sid, card["size"], profiles, np.array(told, np.int64), homes.get(sid, {}), ever_told, new_rule,
                                        np.array(told_now, np.int64))
                if part_of is None:
                    raised.append(_alert("new", sid, card, pace, run_id, stream_time))
                    told_now.append(sid)  # only a story told now hides its fragments born with it
                else:
                    log.info("story %d is not announced: a fragment of story %d, announced already", sid, part_of)
            told.append(sid)
        now_surging = bool(pace and pace.surging) and not now_new and not bag(sid)
        if now_surging and not surging:
            raised.append(_alert("surging", sid, card, pace, run_id, stream_time))
        if (announced, now_surging) != states.get(sid, (False, False)):
            changed[sid] = (announced, now_surging)
    raised = bounded(raised, s.alert_max_per_rebuild)
    recorded = app.alerts.record(raised, changed) if (raised or changed) else []
    if recorded:
        _tell(app, recorded)
    return recorded


def _cohesion(app: App, run_id: int, profiles: StoryProfiles | None) -> dict[int, float]:
    """story id -> cohesion: the rebuild's profiles, else what the rebuild saved for the surges between rebuilds."""
    if profiles is not None:
        return dict(zip(profiles.story_ids.tolist(), profiles.cohesion.tolist()))
    saved = app.run_files.load_story_cohesion(run_id)
    return dict(zip(saved[0].tolist(), saved[1].tolist())) if saved is not None else {}


def bounded(raised: list[dict], limit: int) -> list[dict]:
    """The `limit` largest alerts, each saying how many were held back (those stories stay marked as told)."""
    if len(raised) <= limit:
        return raised
    kept = sorted(raised, key=lambda a: -a["size"])[:limit]
    held = len(raised) - len(kept)
    log.warning("%d alert(s) held back: at most %d per rebuild, the largest stories told", held, limit)
    return [{**a, "details": {**a["details"], "held_back": held}} for a in kept]


def _alert(kind: str, sid: int, card: dict, pace, run_id: int | None, stream_time) -> dict:
    details = {"usual_per_window": round(pace.usual, 2), "typical_per_window": round(pace.typical, 2)} if pace else {}
    return {"kind": kind, "story_id": sid, "topic_id": card["topic_id"], "topic_name": card["topic_name"], "title": card["title"],
            "size": card["size"], "recent": pace.recent if pace else 0, "run_id": run_id, "stream_time": stream_time, "details": details}


def _tell(app: App, recorded: list[dict]) -> None:
    app.notifier.tell(recorded, feed=app.alerts.latest(100))


def raise_alerts_safely(app: App, run_id: int | None = None, profiles: StoryProfiles | None = None,
                        placed: dict[int, dict[int, int]] | None = None, labels: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """Alerts never fail what they follow: a rebuild stays committed, a file stays ingested."""
    try:
        return raise_alerts(app, run_id, profiles, placed, labels)
    except Exception as exc:  # noqa: BLE001
        log.warning("alerts not raised (%s: %s)", type(exc).__name__, exc)
        return []
