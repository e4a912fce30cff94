"""Background jobs: inline and on a real Redis with a forking RQ worker, retries, periodic jobs and the Jobs page."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
from flask import session
from flask.testing import FlaskClient
from rq import Queue
from rq.serializers import JSONSerializer

from core import jobs
from core.auth.sessions import log_in
from core.config import ROOT
from core.context import PeriodicJob
from core.db import db
from core.models import JobRecord, Partner, User
from core.settings import get_setting
from tests import jobs_support

JOBS_PAGE = "/admin/core_jobs/"


def record(app, job_id: str) -> JobRecord | None:
    with app.app_context():
        found = db.session.get(JobRecord, job_id)
        db.session.expunge_all()
        return found


def setting(app, key: str):
    with app.app_context():
        return get_setting(key)


def enqueue(app, *args, **kwargs) -> str:
    with app.app_context():
        return jobs.enqueue(*args, **kwargs)


def logged_in_client(app, role: str) -> FlaskClient:
    """A test client whose session is logged in as a new user with `role`, as `login_user` would leave it."""
    client = app.test_client()
    # The same address and browser as the client's requests, or session protection would end the session.
    with app.test_request_context(environ_base=client.environ_base):
        customer = None
        if role.startswith("customer"):
            customer = Partner(name="Studio Rossi", is_customer=True)
            db.session.add(customer)
            db.session.flush()
        user = User(email=f"{role}@example.com", name=role, role=role, customer_id=customer and customer.id)
        db.session.add(user)
        db.session.commit()
        log_in(user)
        db.session.commit()
        logged_in = dict(session)
    with client.session_transaction() as client_session:
        client_session.update(logged_in)
    return client


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture
def redis_app(app, redis_url, monkeypatch):
    """The app with REDIS_URL set: enqueue goes to a real RQ queue; retries back off by one second."""
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    monkeypatch.setitem(app.config, "JOB_RETRY_INTERVALS", [1])
    return app


@pytest.fixture
def periodic(app, monkeypatch):
    """The only periodic job: counting its runs in the setting jobs_test.runs, every five minutes (the modules' own
    jobs, each at its own minute, would run in the windows these tests open)."""
    job = PeriodicJob("jobs_test.count", jobs_support.count_run, "*/5 * * * *", "tests")
    monkeypatch.setattr(app.extensions["copydesk"], "periodic_jobs", {job.name: job})
    return job


def queued_count(app) -> int:
    with app.app_context():
        return Queue(app.config["JOB_QUEUE"], connection=jobs.redis_connection(), serializer=JSONSerializer).count


def work_burst(app) -> None:
    """Run a real forking RQ worker with its scheduler until the queue is empty, as `flask worker --burst` does."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        jobs.build_worker(app).work(burst=True, with_scheduler=True)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


# --- inline (no Redis) ---------------------------------------------------------------------------------------------


def test_inline_job_runs_at_once_and_is_recorded_done(app):
    job_id = enqueue(app, jobs_support.store_value, "jobs_test.greeting", "ciao")

    assert setting(app, "jobs_test.greeting") == "ciao"
    done = record(app, job_id)
    assert (done.status, done.attempts, done.func) == ("done", 1, "tests.jobs_support:store_value")
    assert done.args == ["jobs_test.greeting", "ciao"]
    assert done.ended_at is not None


def test_inline_failure_is_recorded_with_its_error_and_its_writes_rolled_back(app):
    job_id = enqueue(app, jobs_support.write_then_fail, "jobs_test.half")

    failed = record(app, job_id)
    assert failed.status == "failed"
    assert failed.error.splitlines()[0] == "ValueError: jobs_test.half could not be finished"
    assert "Traceback" in failed.error and "write_then_fail" in failed.error
    assert setting(app, "jobs_test.half") is None


def test_job_enqueued_from_after_commit_hook_runs(app):
    with app.app_context():
        session = db.session()

        @sa.event.listens_for(session, "after_commit", once=True)
        def _enqueue_after_commit(_session):
            jobs.enqueue(jobs_support.store_value, "jobs_test.after_commit", "sent", job_id="after-commit")

        jobs_support.store_value("jobs_test.trigger", 1)

    assert setting(app, "jobs_test.after_commit") == "sent"
    assert record(app, "after-commit").status == "done"


def test_finished_job_id_enqueued_again_runs_again(app):
    enqueue(app, jobs_support.count_run, "jobs_test.reruns", job_id="count:reruns")
    enqueue(app, jobs_support.count_run, "jobs_test.reruns", job_id="count:reruns")

    assert setting(app, "jobs_test.reruns") == 2
    assert record(app, "count:reruns").attempts == 2


def test_nested_function_or_orm_argument_is_refused(app):
    def nested() -> None:
        pass

    with app.app_context(), pytest.raises(ValueError, match="module-level"):
        jobs.enqueue(nested)
    with app.app_context(), pytest.raises(TypeError, match="JSON values"):
        jobs.enqueue(jobs_support.store_value, "jobs_test.partner", Partner(name="Acme"))
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(JobRecord)) == 0


# --- the Jobs admin page -------------------------------------------------------------------------------------------


def test_failed_job_is_listed_with_its_error_and_retry_reruns_it(app):
    job_id = enqueue(app, jobs_support.flaky, "jobs_test.flaky", 1, job_id="flaky:admin")
    client = logged_in_client(app, "back_office")

    page = client.get(f"{JOBS_PAGE}?status=failed")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-job-id="flaky:admin"' in html
    assert "RuntimeError: run 1 of jobs_test.flaky failed on purpose" in html

    response = client.post(
        f"{JOBS_PAGE}retry", data={"job_id": job_id, "csrf_token": csrf_token(html)}, follow_redirects=True
    )
    assert response.status_code == 200
    assert "ran again and succeeded" in response.get_data(as_text=True)
    rerun = record(app, job_id)
    assert (rerun.status, rerun.attempts, rerun.error) == ("done", 2, None)
    assert setting(app, "jobs_test.flaky") == 2


def test_retry_without_csrf_token_is_refused(app):
    job_id = enqueue(app, jobs_support.flaky, "jobs_test.flaky", 1)
    client = logged_in_client(app, "back_office")

    response = client.post(f"{JOBS_PAGE}retry", data={"job_id": job_id})

    assert response.status_code == 400
    assert record(app, job_id).status == "failed"


def test_jobs_page_refuses_customer_users(app):
    client = logged_in_client(app, "customer_admin")
    assert client.get(JOBS_PAGE).status_code == 403


def test_jobs_page_sends_anonymous_visitors_to_login(client):
    response = client.get(JOBS_PAGE)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


# --- real Redis and a forking RQ worker ----------------------------------------------------------------------------


def test_worker_runs_queued_job_in_a_forked_process(redis_app):
    app = redis_app
    job_id = enqueue(app, jobs_support.store_value, "jobs_test.greeting", "hello")
    assert record(app, job_id).status == "queued"
    assert setting(app, "jobs_test.greeting") is None

    work_burst(app)

    assert setting(app, "jobs_test.greeting") == "hello"
    done = record(app, job_id)
    assert (done.status, done.attempts) == ("done", 1)


def test_forked_job_uses_its_own_database_connection(redis_app):
    app = redis_app
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("connection identity is a PostgreSQL matter")
    backends = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    with app.app_context():
        jobs.enqueue(jobs_support.store_connection_pid, "jobs_test.pid")
        jobs.enqueue(jobs_support.store_connection_pid, "jobs_test.pid2")
        parent_pid = db.session.scalar(sa.text("SELECT pg_backend_pid()"))
        existing = set(db.session.scalars(backends))
        db.session.commit()  # back to the pool, where a careless fork would pick it up

    work_burst(app)

    with app.app_context():
        job_pids = {get_setting("jobs_test.pid"), get_setting("jobs_test.pid2")}
        assert None not in job_pids
        assert not job_pids & existing
        # The web process's own connection survived the forks.
        assert parent_pid in set(db.session.scalars(backends))


def test_same_job_id_is_queued_once_until_it_has_run(redis_app):
    app = redis_app
    first = enqueue(app, jobs_support.count_run, "jobs_test.once", job_id="invoice:42")
    second = enqueue(app, jobs_support.count_run, "jobs_test.once", job_id="invoice:42")

    assert first == second == "invoice:42"
    assert queued_count(app) == 1
    work_burst(app)
    assert setting(app, "jobs_test.once") == 1

    enqueue(app, jobs_support.count_run, "jobs_test.once", job_id="invoice:42")
    work_burst(app)
    assert setting(app, "jobs_test.once") == 2


def test_job_failing_once_succeeds_on_retry_with_two_attempts(redis_app):
    app = redis_app
    job_id = enqueue(app, jobs_support.flaky, "jobs_test.flaky", 1, retries=2)

    work_burst(app)
    waiting = record(app, job_id)
    assert (waiting.status, waiting.attempts) == ("queued", 1)
    assert "failed on purpose" in waiting.error

    deadline = time.monotonic() + 10
    while record(app, job_id).status != "done" and time.monotonic() < deadline:
        time.sleep(0.3)  # the retry is scheduled one second later; the worker's scheduler enqueues it
        work_burst(app)

    done = record(app, job_id)
    assert (done.status, done.attempts, done.error) == ("done", 2, None)
    assert setting(app, "jobs_test.flaky") == 2


def test_job_out_of_retries_is_failed_and_admin_retry_queues_it_again(redis_app):
    app = redis_app
    job_id = enqueue(app, jobs_support.flaky, "jobs_test.flaky", 1, retries=0)
    work_burst(app)
    assert record(app, job_id).status == "failed"

    client = logged_in_client(app, "dealer_admin")
    token = csrf_token(client.get(JOBS_PAGE).get_data(as_text=True))
    response = client.post(f"{JOBS_PAGE}retry", data={"job_id": job_id, "csrf_token": token}, follow_redirects=True)
    assert "is queued again" in response.get_data(as_text=True)
    assert record(app, job_id).status == "queued"

    work_burst(app)
    assert (record(app, job_id).status, record(app, job_id).attempts) == ("done", 2)


def test_job_whose_process_is_killed_is_recorded_failed(redis_app):
    app = redis_app
    job_id = enqueue(app, jobs_support.crash, retries=0)

    work_burst(app)

    killed = record(app, job_id)
    assert killed.status == "failed"
    assert killed.error.startswith("Work horse terminated unexpectedly")


def test_flask_worker_burst_command_runs_queued_jobs(redis_app, tmp_path):
    app = redis_app
    job_id = enqueue(app, jobs_support.store_value, "jobs_test.cli", "from the worker")
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app.config["REDIS_URL"],
        "JOB_QUEUE": app.config["JOB_QUEUE"],
    }

    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Worker on queue(s) copydesk" in result.stdout
    assert setting(app, "jobs_test.cli") == "from the worker"
    assert record(app, job_id).status == "done"


# --- periodic jobs -------------------------------------------------------------------------------------------------

FIRED = dt.datetime(2025, 3, 3, 10, 5, 30, tzinfo=dt.UTC)


def test_periodic_firing_is_enqueued_once_by_two_schedulers(redis_app, periodic):
    app = redis_app
    since = FIRED - dt.timedelta(minutes=1)
    with app.app_context():
        first = jobs.run_due_periodic_jobs(since, FIRED)
        second = jobs.run_due_periodic_jobs(since, FIRED)

    assert first == ["periodic:jobs_test.count:2025-03-03T10:05"]
    assert second == []
    assert queued_count(app) == 1

    work_burst(app)
    with app.app_context():
        assert jobs.run_due_periodic_jobs(since, FIRED) == []
    work_burst(app)
    assert setting(app, "jobs_test.runs") == 1
    assert record(app, first[0]).status == "done"


def test_periodic_job_waits_for_its_cron_minute(redis_app, periodic):
    app = redis_app
    with app.app_context():
        assert jobs.run_due_periodic_jobs(FIRED, FIRED + dt.timedelta(minutes=4)) == []
        assert jobs.run_due_periodic_jobs(FIRED, FIRED + dt.timedelta(minutes=5)) == [
            "periodic:jobs_test.count:2025-03-03T10:10"
        ]


def test_periodic_job_runs_inline_once_without_redis(app, periodic):
    since = FIRED - dt.timedelta(minutes=1)
    with app.app_context():
        assert jobs.run_due_periodic_jobs(since, FIRED) == ["periodic:jobs_test.count:2025-03-03T10:05"]
        assert jobs.run_due_periodic_jobs(since, FIRED) == []

    assert setting(app, "jobs_test.runs") == 1


def test_worker_without_redis_runs_periodic_jobs_due_now(app, monkeypatch):
    job = PeriodicJob("jobs_test.every_minute", jobs_support.count_run, "* * * * *", "tests")
    monkeypatch.setitem(app.extensions["copydesk"].periodic_jobs, job.name, job)

    result = app.test_cli_runner().invoke(args=["worker", "--burst"])

    assert result.exit_code == 0, result.output
    assert "REDIS_URL is not set" in result.output
    assert "periodic job started: periodic:jobs_test.every_minute:" in result.output
    assert setting(app, "jobs_test.runs") == 1


def test_run_periodic_command_starts_the_job_now_and_jobs_list_shows_it(app, periodic):
    runner = app.test_cli_runner()

    started = runner.invoke(args=["jobs", "run-periodic", "jobs_test.count"])
    listed = runner.invoke(args=["jobs", "list"])
    unknown = runner.invoke(args=["jobs", "run-periodic", "nope"])

    assert started.exit_code == 0 and started.output.strip().endswith(": done")
    assert setting(app, "jobs_test.runs") == 1
    assert "periodic:jobs_test.count:manual:" in listed.output and "done" in listed.output
    assert unknown.exit_code != 0 and "no periodic job named 'nope'" in unknown.output
