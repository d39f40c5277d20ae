"""APScheduler 3.x: the periodic rebuild, never overlapping (max_instances=1, coalesce), plus rebuilds on demand.

A request while the job runs is not handed to APScheduler (it would drop it as 'maximum number of
running instances reached'): the service remembers it and the running job loops once more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger("newsclust.scheduler")

JOB_ID = "rebuild"


class RebuildSchedule:
    def __init__(self, job: Callable[[], None], interval_s: int):
        self._scheduler = BackgroundScheduler(timezone=timezone.utc)
        self._scheduler.add_job(job, "interval", seconds=max(1, interval_s), id=JOB_ID, max_instances=1, coalesce=True,
                                misfire_grace_time=None)

    def start(self) -> None:
        self._scheduler.start()

    def run_at(self, unix_time: float) -> None:
        """Pull the next rebuild to `unix_time` (now, or the end of a failure's backoff)."""
        try:
            self._scheduler.modify_job(JOB_ID, next_run_time=datetime.fromtimestamp(unix_time, timezone.utc))
        except Exception:  # noqa: BLE001 — the scheduler is shutting down
            log.debug("rebuild not rescheduled", exc_info=True)

    def stop(self, wait: bool = True) -> None:
        self._scheduler.shutdown(wait=wait)
