"""Jobs enqueued while Redis is unreachable wait in core_job and reach Redis once it is back: nothing is lost."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core import jobs
from core.db import db, utcnow
from core.models import JobRecord
from tests import jobs_support
from tests.test_jobs import JOBS_PAGE, csrf_token, enqueue, logged_in_client, queued_count, record, setting, work_burst


@pytest.fixture
def redis_app(app, own_redis, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", own_redis.url)
    monkeypatch.setitem(app.config, "JOB_RETRY_INTERVALS", [1])
    monkeypatch.setattr(jobs, "_redis_was_down", jobs.threading.Event())
    return app


def sweep(app) -> None:
    """One round of the worker's sweeps, as `flask worker` runs each minute."""
    jobs.run_sweeps(app)


def test_job_enqueued_while_redis_is_down_waits_and_runs_after_the_worker_sweeps(redis_app, own_redis):
    app = redis_app
    own_redis.stop()

    job_id = enqueue(app, jobs_support.store_value, "jobs_test.waited", "delivered")

    waiting = record(app, job_id)
    assert waiting.status == "waiting"
    assert "Connection refused" in waiting.error or "Error" in waiting.error
    own_redis.start()
    sweep(app)
    assert record(app, job_id).status == "queued"
    assert queued_count(app) == 1
    work_burst(app)
    assert setting(app, "jobs_test.waited") == "delivered"
    assert record(app, job_id).status == "done"
    sweep(app)  # nothing left to push: the job does not run twice
    assert queued_count(app) == 0


def test_next_job_queued_after_redis_returns_takes_the_waiting_ones_along(redis_app, own_redis):
    app = redis_app
    own_redis.stop()
    first = enqueue(app, jobs_support.count_run, "jobs_test.first")
    own_redis.start()

    second = enqueue(app, jobs_support.count_run, "jobs_test.second")

    assert record(app, first).status == "queued"
    assert record(app, second).status == "queued"
    work_burst(app)
    assert (setting(app, "jobs_test.first"), setting(app, "jobs_test.second")) == (1, 1)


def test_job_lost_with_the_memory_of_a_restarted_redis_is_queued_again(redis_app, own_redis):
    app = redis_app
    job_id = enqueue(app, jobs_support.count_run, "jobs_test.lost")
    own_redis.stop()  # without persistence: the queued job is gone with it
    own_redis.start()
    assert queued_count(app) == 0

    with app.app_context():
        assert jobs.push_waiting(now=utcnow()) == []  # just queued: perhaps still on its way to Redis
        assert jobs.push_waiting(now=utcnow() + jobs.LOST_AFTER + dt.timedelta(seconds=1)) == [job_id]
    work_burst(app)
    assert setting(app, "jobs_test.lost") == 1


def test_jobs_page_shows_waiting_jobs_and_retry_hands_them_to_redis(redis_app, own_redis):
    app = redis_app
    own_redis.stop()
    job_id = enqueue(app, jobs_support.store_value, "jobs_test.page", "retried")
    client = logged_in_client(app, "dealer_admin")
    page = client.get(JOBS_PAGE).get_data(as_text=True)
    assert 'data-status="waiting"' in page
    assert "waiting for the queue" in page

    still_down = client.post(JOBS_PAGE + "retry", data={"csrf_token": csrf_token(page), "job_id": job_id})
    assert "still waits" in client.get(still_down.location).get_data(as_text=True)
    own_redis.start()
    client.post(JOBS_PAGE + "retry", data={"csrf_token": csrf_token(page), "job_id": job_id})
    assert record(app, job_id).status == "queued"
    work_burst(app)
    assert setting(app, "jobs_test.page") == "retried"


def test_waiting_status_is_allowed_by_the_database(app):
    with app.app_context():
        db.session.add(JobRecord(id="w", func="tests.jobs_support:count_run", args=[], status="waiting"))
        db.session.commit()
        assert db.session.scalar(sa.select(JobRecord.status).where(JobRecord.id == "w")) == "waiting"
