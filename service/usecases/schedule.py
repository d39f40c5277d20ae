"""When to rebuild: the serve process's decision, its state in one object, apart from the threads that act on it.

serve (workers/serve.py) runs one rebuild job at a time on a timer (APScheduler: max_instances=1) and
asks for an early one when arrivals call for it. What it promises (README, Robustness):
- every rebuild asked is answered: one asked while a rebuild runs is run right after it, never dropped;
- a failing rebuild backs off (exponentially) instead of looping;
- early rebuilds (a new story in the noise pool, a full pool) keep rebuild_min_gap_s between them; a
  user's `newsclust rebuild` does not wait for that gap;
- the schedule (new documents since the last run) is asked once per tick: documents that arrive during
  a rebuild (other workers keep ingesting) wait for the next tick, not rebuild after rebuild.

RebuildPlan holds that state; its methods are pure (they return the next plan and what to do), so the
decision is tested without threads or clocks (tests/faces/test_serve_requests.py drives the real process).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..faults import Backoff

if TYPE_CHECKING:
    from ..ports import App

# what a job does next: return, rebuild (and say why), or ask the schedule first
WAIT, ASKED, SCHEDULED, CHECK = "wait", "asked", "scheduled", "check"


@dataclass(frozen=True)
class RebuildPlan:
    min_gap_s: float = 0.0  # between early rebuilds (settings.rebuild_min_gap_s)
    backoff: Backoff = Backoff()  # after failed rebuilds (settings.retry_first_s, retry_max_s)
    owed: bool = False  # a rebuild is owed: asked, a new story, a full noise pool, a lost prediction state
    running: bool = False  # a rebuild job is in progress (it loops while rebuilds are owed)
    failures: int = 0  # failed rebuilds in a row
    not_before: float = 0.0  # unix time: backing off after a failure until then
    last_end: float = 0.0  # unix time the last rebuild ended
    gap_until: float = 0.0  # unix time: early rebuilds wait until then
    user_waiting: bool = False  # a user's request already started (or scheduled) the job it waits for

    def asked(self, now: float, by_user: bool = False) -> tuple[RebuildPlan, float | None]:
        """A rebuild is owed; the answer is when to start a job (None: one is scheduled already or running, and loops
        once more). A user's request starts an idle job even if an early rebuild already waits for the gap."""
        plan = replace(self, owed=True, user_waiting=self.user_waiting or by_user)
        if self.running or (self.owed and (not by_user or self.user_waiting)):
            return plan, None  # (the request poller asks again every 0.05 s while a user's request waits)
        return plan, max(now, self.not_before)

    def job_started(self, leading: bool) -> RebuildPlan:
        """With several workers only the leader rebuilds; a request seen by another must not stay owed for ever."""
        return replace(self, running=True) if leading else replace(self, owed=False, user_waiting=False)

    def decide(self, now: float, requests: bool, due: bool | None) -> tuple[RebuildPlan, str]:
        """One turn of the running job: WAIT (return), rebuild because it was ASKED or SCHEDULED, or CHECK: ask the
        schedule (new documents since the last run? a database read, so the caller asks it outside its lock) and
        decide again with the answer.

        requests: users' `newsclust rebuild` requests wait unanswered; due: the schedule's answer, None while not asked.
        The job asks it on its first turn only (False after): documents that arrive during a rebuild (other workers
        keep ingesting) wait for the next tick instead of starting rebuild after rebuild."""
        owed = self.owed or requests
        if now < self.not_before:  # backing off after a failure: keep what is owed
            return replace(self, owed=owed), WAIT
        if not owed:
            return (self, CHECK) if due is None else (self, SCHEDULED if due else WAIT)
        gap_left = self.last_end + self.min_gap_s - now
        # an early rebuild keeps the minimum gap; a user's request does not, also when the poller saw its file before
        # this job's look at the requests did (asked during the job's last turn: it waited the whole gap, 60 s)
        if not (requests or self.user_waiting) and gap_left > 0:
            return replace(self, owed=True, gap_until=now + gap_left), WAIT
        return replace(self, owed=False, user_waiting=False), ASKED

    def rebuilt(self, now: float, ok: bool) -> tuple[RebuildPlan, float]:
        """A rebuild ended; after a failure the answer is the backoff (s) before the next try, which is owed."""
        if ok:
            return replace(self, failures=0, not_before=0.0, last_end=now), 0.0
        failures = self.failures + 1
        delay = self.backoff.delay(failures)
        return replace(self, failures=failures, not_before=now + delay, owed=True, last_end=now), delay

    def job_ended(self, now: float) -> tuple[RebuildPlan, float | None]:
        """The job returns; if a rebuild is still owed, when to run it (+1 s: this job must have returned first)."""
        plan = replace(self, running=False)
        return plan, (max(now + 1.0, self.not_before, self.gap_until) if self.owed else None)


def plan_for(settings) -> RebuildPlan:
    return RebuildPlan(min_gap_s=float(settings.rebuild_min_gap_s), backoff=Backoff(settings.retry_first_s, settings.retry_max_s))


NO_CLUSTERING, STATE_MISSING, POOL_FULL, NEW_STORY = ("no clustering to place arrivals in yet", "the saved prediction state is missing",
                                                      "the noise pool is full", "a new story in the noise pool")


def after_arrivals(app: App, on_alert: Callable[[dict], None]) -> tuple[str | None, int | None]:
    """Why the documents just stored call for a rebuild now rather than at the hour (None: they don't), and the latest
    run. Surges found by the growth between rebuilds are raised on the way (on_alert for each)."""
    from .alerts import raise_alerts_safely
    from .arrivals import new_story_in_noise_pool

    run = app.runs.latest_run()
    if run is None:
        return NO_CLUSTERING, None
    if app.prediction_state(run.id) is None:
        return STATE_MISSING, run.id
    if app.runs.noise_pool_size(run.id) >= app.settings.noise_pool_trigger:
        return POOL_FULL, run.id
    with app.write_lock:
        for alert in raise_alerts_safely(app):
            on_alert(alert)
        story = new_story_in_noise_pool(app)
    return (NEW_STORY if story else None), run.id
