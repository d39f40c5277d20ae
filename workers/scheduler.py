"""APScheduler 3.x: the periodic rebuild, never overlapping (max_instances=1, coalesce), plus early rebuilds on demand."""

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

    def run_soon(self) -> None:
        """Pull the next rebuild forward to now (a new story in the noise pool, or a user's request)."""
        self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(timezone.utc))

    def stop(self, wait: bool = True) -> None:
        self._scheduler.shutdown(wait=wait)
