"""When serve rebuilds (usecases/schedule.py): the decision as plain values, no threads, no clock."""

from __future__ import annotations

from service.faults import Backoff
from service.usecases.schedule import ASKED, CHECK, SCHEDULED, WAIT, RebuildPlan


def test_a_request_starts_an_idle_job_once_and_a_request_during_a_rebuild_runs_right_after_it():
    plan, when = RebuildPlan().asked(100.0)
    assert when == 100.0 and plan.owed
    plan, again = plan.asked(101.0)
    assert again is None  # one job is scheduled already
    plan = plan.job_started(leading=True)
    plan, step = plan.decide(102.0, requests=False, due=None)
    assert step == ASKED and not plan.owed  # owed: the schedule is not asked
    plan, during = plan.asked(103.0)  # asked while the rebuild runs: not handed to the scheduler...
    assert during is None and plan.owed
    plan, _ = plan.rebuilt(110.0, ok=True)
    plan, step = plan.decide(110.0, requests=False, due=False)
    assert step == ASKED  # ...the running job loops once more
    plan, _ = plan.rebuilt(120.0, ok=True)
    plan, step = plan.decide(120.0, requests=False, due=False)
    assert step == WAIT
    plan, when = plan.job_ended(120.0)
    assert when is None and not plan.running and not plan.owed


def test_the_schedule_is_asked_only_when_nothing_is_owed_and_its_answer_decides():
    plan = RebuildPlan().job_started(leading=True)
    same, step = plan.decide(0.0, requests=False, due=None)
    assert step == CHECK and same == plan  # the caller asks the schedule (a database read) and decides again
    plan, step = plan.decide(0.0, requests=False, due=True)
    assert step == SCHEDULED
    plan, _ = plan.rebuilt(5.0, ok=True)
    plan, step = plan.decide(5.0, requests=False, due=False)  # later turns: the schedule is not asked again this tick
    assert step == WAIT
    _, step = plan.decide(6.0, requests=False, due=False)
    assert step == WAIT
    owed, _ = plan.asked(7.0)  # asked between the CHECK and the answer: the request wins over "not due"
    _, step = owed.decide(7.0, requests=False, due=False)
    assert step == ASKED


def test_a_failing_rebuild_backs_off_exponentially_and_stays_owed():
    plan = RebuildPlan(backoff=Backoff(2.0, 300.0)).job_started(leading=True)
    plan, delay = plan.rebuilt(100.0, ok=False)
    assert delay == 2.0 and plan.owed and plan.not_before == 102.0
    plan, step = plan.decide(101.0, requests=True, due=False)
    assert step == WAIT and plan.owed  # not before the backoff ends, even when a user asks
    plan, when = plan.job_ended(101.0)
    assert when == 102.0  # the job's end schedules the retry at the end of the backoff
    plan, step = plan.decide(102.0, requests=False, due=None)
    assert step == ASKED
    plan, delay = plan.rebuilt(103.0, ok=False)
    assert delay == 4.0 and plan.failures == 2
    plan, _ = plan.rebuilt(200.0, ok=True)
    assert plan.failures == 0 and plan.not_before == 0.0


def test_early_rebuilds_keep_the_minimum_gap_and_a_users_request_does_not_wait_for_it():
    plan = RebuildPlan(min_gap_s=60.0, last_end=1000.0)
    plan, when = plan.asked(1010.0)  # a new story in the noise pool
    assert when == 1010.0
    plan = plan.job_started(leading=True)
    plan, step = plan.decide(1010.0, requests=False, due=None)
    assert step == WAIT and plan.owed and plan.gap_until == 1060.0
    plan, when = plan.job_ended(1010.0)
    assert when == 1060.0
    plan, when = plan.asked(1020.0, by_user=True)  # `newsclust rebuild`: an idle job starts now
    assert when == 1020.0
    plan = plan.job_started(leading=True)
    _, step = plan.decide(1020.0, requests=True, due=None)
    assert step == ASKED


def test_a_worker_that_does_not_lead_forgets_what_it_was_asked():
    plan, _ = RebuildPlan().asked(0.0)
    plan = plan.job_started(leading=False)
    assert not plan.owed and not plan.running


def test_a_user_request_pulls_an_early_rebuild_forward_once_not_at_every_poll():
    plan, when = RebuildPlan(backoff=Backoff(2.0, 300.0)).asked(100.0)  # an early rebuild, scheduled
    plan, by_user = plan.asked(101.0, by_user=True)
    assert by_user == 101.0  # a user's request does not wait behind it
    plan, again = plan.asked(101.2, by_user=True)
    assert again is None  # the request poller's next look: scheduled already
    plan = plan.job_started(leading=True)
    plan, step = plan.decide(102.0, requests=True, due=None)
    assert step == ASKED and not plan.user_waiting
    plan, _ = plan.rebuilt(110.0, ok=True)
    plan, _ = plan.job_ended(110.0)
    _, later = plan.asked(200.0, by_user=True)
    assert later == 200.0  # a new request after that rebuild starts a job again


def test_a_user_request_seen_by_the_poller_during_the_jobs_last_turn_does_not_wait_for_the_gap():
    """The request file appeared after the job listed the requests, and the poller saw it while the job still ran."""
    plan = RebuildPlan(min_gap_s=60.0).job_started(leading=True)
    plan, step = plan.decide(100.0, requests=True, due=None)
    assert step == ASKED
    plan, _ = plan.rebuilt(110.0, ok=True)
    plan, when = plan.asked(111.0, by_user=True)  # the poller: the job is still running, so it loops once more
    assert when is None and plan.owed and plan.user_waiting
    plan, step = plan.decide(111.0, requests=False, due=False)  # the job had listed no request yet
    assert step == ASKED and not plan.user_waiting
    plan, when = RebuildPlan(min_gap_s=60.0, last_end=110.0).asked(111.0)  # an early rebuild still keeps the gap
    _, step = plan.job_started(leading=True).decide(111.0, requests=False, due=None)
    assert step == WAIT
