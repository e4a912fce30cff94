"""Background jobs: `enqueue` (RQ on Redis, else inline), job records, periodic jobs, `flask worker`, the admin page."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import json
import logging
import re
import threading
import traceback
import uuid
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import click
import redis
import sqlalchemy as sa
from croniter import croniter
from flask import Flask, current_app, flash, has_app_context, redirect, request, url_for
from flask.cli import AppGroup, with_appcontext
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from rq import Queue, Retry, Worker, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import JOB_ID_PATTERN, Job
from rq.serializers import JSONSerializer
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import ServiceUnavailable

from core.admin import SecuredView
from core.db import db, utcnow
from core.models import JobRecord

STATUSES = ("queued", "waiting", "running", "done", "failed")
ACTIVE = ("queued", "running")
RESULT_TTL = 24 * 3600
FAILURE_TTL = 7 * 24 * 3600
DEFAULT_RETRY_INTERVALS = (10, 60, 300)
PERIODIC_GUARD_TTL = 2 * 24 * 3600
RQ_ALIVE = {b"queued", b"started", b"scheduled", b"deferred"}
RECENT_DONE = 50
PAGE_LIMIT = 200
# A queued job missing from Redis this long after it was queued was lost with Redis's memory: it is queued again.
LOST_AFTER = dt.timedelta(minutes=2)
SWEEP_BATCH = 500

log = logging.getLogger(__name__)

# The app a worker process built once; forked work horses inherit it.
_worker_app: Flask | None = None
# Set when this process found Redis unreachable: its next successful push also sends the jobs left waiting.
_redis_was_down = threading.Event()


class JobNotStored(ServiceUnavailable):
    """Neither the job queue (Redis) nor the database could take the job: nothing was stored, nothing will run."""

    def __init__(self) -> None:
        super().__init__(
            _(
                "Background work cannot be started right now: the job queue and the database are unreachable. "
                "Nothing was started; try again in a minute."
            )
        )


# --- what a job is -------------------------------------------------------------------------------------------------


def resolve_function(path: str) -> Callable:
    """The function named by "package.module:function"."""
    module_name, _sep, name = path.partition(":")
    if not module_name or not name:
        raise ValueError(f"job function path {path!r} must look like 'package.module:function'")
    func = getattr(importlib.import_module(module_name), name, None)
    if not callable(func):
        raise ValueError(f"job function path {path!r} does not name a function")
    return func


def function_path(func: Callable | str) -> str:
    """The dotted path a worker imports; only module-level functions can be found again there."""
    if isinstance(func, str):
        resolve_function(func)
        return func
    module, name = getattr(func, "__module__", None), getattr(func, "__qualname__", "")
    if not module or module == "__main__" or "." in name or "<" in name:
        raise ValueError(f"job function {func!r} must be a module-level function of an importable module")
    path = f"{module}:{name}"
    if resolve_function(path) is not func:
        raise ValueError(f"job function {func!r} is not reachable as {path}")
    return path


def _json_args(args: tuple | list) -> list:
    try:
        return json.loads(json.dumps(list(args)))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"job arguments must be JSON values (ids, strings, ISO dates), not objects: {exc}") from exc


def rq_job_id(job_id: str) -> str:
    """The id RQ accepts for `job_id`: unchanged when it is already letters, digits, _ and -."""
    if JOB_ID_PATTERN.fullmatch(job_id):
        return job_id
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", job_id).strip("-")[:150]
    # The hash keeps ids apart that differ only in the characters replaced above.
    return f"{safe}-{hashlib.sha1(job_id.encode()).hexdigest()[:10]}"


def _describe(exc: BaseException) -> str:
    """The exception's last line first (what the admin list shows), then the full traceback."""
    summary = traceback.format_exception_only(exc)[-1].strip()
    return f"{summary}\n{''.join(traceback.format_exception(exc))}"


# --- job records, kept in their own short transactions ----------------------------------------------------------


def _engine(app: Flask) -> sa.Engine:
    with app.app_context():
        return db.engine


def _claim(app: Flask, job_id: str, path: str, args: list, *, rerun_finished: bool, stale: Callable[[], bool]) -> bool:
    """Mark the job queued; False when it is already queued or running (or finished, unless `rerun_finished`)."""
    with Session(_engine(app)) as session:
        record = session.get(JobRecord, job_id)
        if record is None:
            session.add(JobRecord(id=job_id, func=path, args=args, status="queued", attempts=0, enqueued_at=utcnow()))
            try:
                session.commit()
            except IntegrityError:
                return False  # another process enqueued the same id first
            return True
        # "waiting" is not active: the first to try claims the job and hands it to Redis (or runs it inline).
        if record.status in ACTIVE and not stale():
            return False
        if record.status not in ACTIVE and not rerun_finished:
            return False
        claimed = session.execute(
            sa.update(JobRecord)
            .where(JobRecord.id == job_id, JobRecord.status == record.status)
            .values(
                status="queued", func=path, args=args, error=None, enqueued_at=utcnow(), started_at=None, ended_at=None
            )
        )
        session.commit()
        return claimed.rowcount == 1


def _update_record(app: Flask, job_id: str, *, new_attempt: bool = False, **values: Any) -> None:
    with Session(_engine(app)) as session:
        record = session.get(JobRecord, job_id)
        if record is None:  # enqueued by something that bypassed `enqueue`: keep track of it anyway
            record = JobRecord(id=job_id, func=values.pop("func", "?"), args=values.pop("args", []), attempts=0)
            session.add(record)
        if new_attempt:
            record.attempts = (record.attempts or 0) + 1
        for key, value in values.items():
            setattr(record, key, value)
        session.commit()


def _execute(
    app: Flask, path: str, args: list, job_id: str, *, retry_pending: Callable[[], bool]
) -> BaseException | None:
    """Run one try of the job in a fresh app context of `app`; return its exception, if any, after recording it."""
    _update_record(
        app, job_id, new_attempt=True, status="running", started_at=utcnow(), ended_at=None, func=path, args=args
    )
    try:
        # A context of its own gives the job its own session: its rollback leaves the caller's session alone.
        with app.app_context():
            resolve_function(path)(*args)
    except BaseException as exc:
        status = "queued" if retry_pending() else "failed"
        _update_record(app, job_id, status=status, error=_describe(exc), ended_at=utcnow())
        return exc
    _update_record(app, job_id, status="done", error=None, ended_at=utcnow())
    return None


# --- enqueueing ----------------------------------------------------------------------------------------------------


def redis_connection(app: Flask | None = None) -> redis.Redis:
    """The Redis client for the app's REDIS_URL (one per app and URL)."""
    app = app or current_app._get_current_object()
    url = app.config["REDIS_URL"]
    if not url:
        raise RuntimeError("REDIS_URL is not configured")
    cached = app.extensions.get("copydesk.redis")
    if cached is None or cached[0] != url:
        cached = (url, redis.Redis.from_url(url))
        app.extensions["copydesk.redis"] = cached
    return cached[1]


def _queue(app: Flask, name: str | None = None) -> Queue:
    return Queue(name or app.config["JOB_QUEUE"], connection=redis_connection(app), serializer=JSONSerializer)


def workers_taking_jobs(app: Flask | None = None) -> int | None:
    """How many RQ workers listen on the app's queue; None without REDIS_URL, where jobs run inline and need none.

    A worker that died without deregistering drops out when its heartbeat key expires; Redis not answering counts 0.
    """
    app = app or current_app._get_current_object()
    if not app.config.get("REDIS_URL"):
        return None
    try:
        return len(Worker.all(queue=_queue(app)))
    except redis.RedisError:
        return 0


def _rq_job_alive(app: Flask, job_id: str) -> bool:
    """Whether Redis holds the job queued, running or scheduled; when Redis cannot tell, assume it does."""
    try:
        status = redis_connection(app).hget(Job.key_for(rq_job_id(job_id)), "status")
    except redis.RedisError:
        return True
    return status in RQ_ALIVE


def _push(app: Flask, path: str, args: list, job_id: str, retries: int | None, timeout: int | None) -> None:
    if retries is None:  # a function may set its own policy, e.g. mail, which keeps its own retry schedule
        retries = getattr(resolve_function(path), "job_retries", None)
    max_retries = app.config["JOB_RETRIES"] if retries is None else retries
    retry = None
    if max_retries > 0:
        intervals = list(app.config.get("JOB_RETRY_INTERVALS", DEFAULT_RETRY_INTERVALS))[:max_retries]
        retry = Retry(max=max_retries, interval=intervals)
    queue = _queue(app)
    rq_id = rq_job_id(job_id)
    with suppress(NoSuchJobError):  # a finished run under the same id: drop it and its registry entries
        Job.fetch(rq_id, connection=queue.connection, serializer=JSONSerializer).delete()
    queue.enqueue_call(
        run_job,
        args=(path, args, job_id),
        job_id=rq_id,
        retry=retry,
        timeout=timeout or app.config["JOB_TIMEOUT"],
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=f"{path} [{job_id}]",
    )


def _submit(
    app: Flask,
    path: str,
    args: list,
    job_id: str,
    *,
    retries: int | None = None,
    timeout: int | None = None,
    rerun_finished: bool = True,
) -> bool:
    """Queue (Redis) or run (inline) the job unless it is already pending; True when this call started it."""
    if app.config.get("REDIS_URL"):
        try:
            claimed = _claim(
                app, job_id, path, args, rerun_finished=rerun_finished, stale=lambda: not _rq_job_alive(app, job_id)
            )
        except sa.exc.OperationalError as exc:
            raise JobNotStored() from exc
        if not claimed:
            return False
        try:
            _push(app, path, args, job_id, retries, timeout)
        except redis.RedisError as exc:
            _wait_for_redis(app, job_id, exc)
            return True
        except Exception as exc:
            _update_record(app, job_id, status="failed", error=_describe(exc), ended_at=utcnow())
            raise
        if _redis_was_down.is_set():
            _redis_was_down.clear()
            try:
                push_waiting(app)
            except Exception:  # this job is queued; what still waits is the worker's sweep's to push
                log.exception("jobs waiting for Redis were not pushed")
        return True
    if not _claim(app, job_id, path, args, rerun_finished=rerun_finished, stale=lambda: False):
        return False
    exc = _execute(app, path, args, job_id, retry_pending=lambda: False)
    if exc is not None and (not isinstance(exc, Exception) or app.config.get("JOB_INLINE_RAISE")):
        raise exc
    return True


def _wait_for_redis(app: Flask, job_id: str, exc: redis.RedisError) -> None:
    """Record the job as waiting, for the worker's sweep (or this process's next push) to hand to Redis later."""
    _redis_was_down.set()
    log.warning("job %s waits: the job queue (Redis) is unreachable: %s", job_id, exc)
    try:
        _update_record(app, job_id, status="waiting", error=_describe(exc), ended_at=None)
    except sa.exc.OperationalError as db_exc:
        log.error("job %s was not stored either: %s", job_id, db_exc)
        raise JobNotStored() from db_exc


def push_waiting(app: Flask | None = None, now: dt.datetime | None = None) -> list[str]:
    """Hand Redis the jobs left waiting, and those it lost (queued, but gone from a restarted Redis); return their ids.

    Stops at the first push that fails (Redis still unreachable): the rest wait for the next sweep. Each job is
    claimed with a conditional update first, so two sweeping processes never push the same job twice.
    """
    app = app or current_app._get_current_object()
    if not app.config.get("REDIS_URL"):
        return []
    now = now or utcnow()
    with Session(_engine(app)) as session:
        candidates = session.execute(
            sa.select(JobRecord.id, JobRecord.func, JobRecord.args, JobRecord.status, JobRecord.enqueued_at)
            .where(
                sa.or_(
                    JobRecord.status == "waiting",
                    sa.and_(JobRecord.status == "queued", JobRecord.enqueued_at <= now - LOST_AFTER),
                )
            )
            .order_by(JobRecord.enqueued_at)
            .limit(SWEEP_BATCH)
        ).all()
    pushed = []
    for job_id, path, args, status, enqueued_at in candidates:
        try:
            if status == "queued" and _rq_job_alive(app, job_id):
                continue
            with Session(_engine(app)) as session:
                claimed = session.execute(
                    sa.update(JobRecord)
                    .where(JobRecord.id == job_id, JobRecord.status == status, JobRecord.enqueued_at == enqueued_at)
                    .values(status="queued", error=None, enqueued_at=utcnow())
                )
                session.commit()
            if claimed.rowcount != 1:
                continue
            _push(app, path, args, job_id, None, None)
        except redis.RedisError as exc:
            _wait_for_redis(app, job_id, exc)
            break
        pushed.append(job_id)
    return pushed


def job_status(job_id: str) -> str | None:
    """The status of the job's record, read in a transaction of its own (None: no such job)."""
    with Session(_engine(current_app._get_current_object())) as session:
        return session.scalar(sa.select(JobRecord.status).where(JobRecord.id == job_id))


def enqueue(
    func: Callable | str, *args: Any, job_id: str | None = None, retries: int | None = None, timeout: int | None = None
) -> str:
    """Run `func(*args)` in the background (RQ when REDIS_URL is set, else inline now); return the job id.

    `func` is a module-level function (or its "package.module:function" path) and `args` are JSON values: ids, never
    ORM objects. A `job_id` already queued or running is not enqueued twice; a finished one runs again. Enqueue after
    the caller's commit (`core.db.on_commit` is the place): the job reads the database, not the caller's session, and
    inline failures are recorded on the job (status failed), not raised, unless JOB_INLINE_RAISE is set.
    With Redis unreachable the job is recorded as waiting and handed to Redis once it is back; JobNotStored (a 503)
    is raised only when that record cannot be written either.
    """
    app = current_app._get_current_object()
    path = function_path(func)
    payload = _json_args(args)
    job_id = job_id or uuid.uuid4().hex
    if len(job_id) > JobRecord.id.type.length:
        raise ValueError(f"job_id must be at most {JobRecord.id.type.length} characters")
    _submit(app, path, payload, job_id, retries=retries, timeout=timeout)
    return job_id


RETRYABLE = ("failed", "waiting")


def retry_job(job_id: str) -> str:
    """Run a failed or waiting job again with its function and arguments; return its status afterwards."""
    app = current_app._get_current_object()
    with Session(_engine(app)) as session:
        record = session.get(JobRecord, job_id)
        if record is None or record.status not in RETRYABLE:
            raise ValueError(f"job {job_id!r} is not a failed or waiting job")
        path, args = record.func, record.args
    _submit(app, path, args, job_id)
    with Session(_engine(app)) as session:
        return session.get(JobRecord, job_id).status


# --- inside the worker ---------------------------------------------------------------------------------------------


def _job_app() -> Flask:
    global _worker_app
    if _worker_app is None:
        if has_app_context():
            return current_app._get_current_object()
        from core.app import create_app

        _worker_app = create_app()
    return _worker_app


def run_job(path: str, args: list, job_id: str) -> None:
    """What RQ runs: the job's function in the worker's app, with its record kept up to date."""
    rq_job = get_current_job()
    exc = _execute(_job_app(), path, args, job_id, retry_pending=lambda: bool(rq_job and rq_job.should_retry))
    if exc is not None:
        raise exc


def _work_horse_killed(job: Job, retpid: int, ret_val: int, rusage: Any) -> None:
    """A horse killed by a signal or the hard timeout never got to record its failure: do it from the worker."""
    path, _args, job_id = job.args
    error = f"Work horse terminated unexpectedly (wait status {ret_val}) while running {path}"
    status = "queued" if job.should_retry else "failed"
    _update_record(_job_app(), job_id, status=status, error=error, ended_at=utcnow())


def build_worker(app: Flask, queue_names: list[str] | None = None) -> Worker:
    """An RQ forking worker for the app's queues; the app is built once here and inherited by each job's fork."""
    global _worker_app
    _worker_app = app
    queues = [_queue(app, name) for name in (queue_names or [app.config["JOB_QUEUE"]])]
    return Worker(
        queues,
        connection=redis_connection(app),
        serializer=JSONSerializer,
        work_horse_killed_handler=_work_horse_killed,
    )


# --- periodic jobs -------------------------------------------------------------------------------------------------


def _minute(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def last_firing(cron: str, now: dt.datetime) -> dt.datetime:
    """The latest minute at or before `now` (UTC) matching `cron`."""
    return croniter(cron, _minute(now) + dt.timedelta(minutes=1)).get_prev(dt.datetime)


def run_due_periodic_jobs(since: dt.datetime, now: dt.datetime) -> list[str]:
    """Enqueue each periodic job whose cron fired in (since, now] (its latest firing only); return the ids started.

    A firing has a deterministic job id and, with Redis, a SET NX guard, so two schedulers never start it twice.
    Raises after trying every job when some could not be started, so the caller keeps `since` and tries them again.
    """
    app = current_app._get_current_object()
    conn = redis_connection(app) if app.config.get("REDIS_URL") else None
    started, failed = [], []
    for job in app.extensions["copydesk"].periodic_jobs.values():
        fired = last_firing(job.cron, now)
        if fired <= since:
            continue
        job_id = f"periodic:{job.name}:{fired:%Y-%m-%dT%H:%M}"
        guard = f"{app.config['JOB_QUEUE']}:guard:{job_id}"
        try:
            if conn is not None and not conn.set(guard, "1", nx=True, ex=PERIODIC_GUARD_TTL):
                continue
            if _submit(app, function_path(job.func), [], job_id, rerun_finished=False):
                started.append(job_id)
        except Exception:
            app.logger.exception("periodic job %s could not be started", job_id)
            if conn is not None:
                with suppress(redis.RedisError):
                    conn.delete(guard)
            failed.append(job_id)
    if failed:
        raise RuntimeError(f"periodic jobs not started: {', '.join(failed)}")
    return started


def add_sweep(app: Flask, func: Callable[[], Any]) -> None:
    """Have `flask worker` call `func()` each minute in an app context, in its own process (Redis or not)."""
    app.extensions.setdefault("copydesk.sweeps", []).append(func)


def run_sweeps(app: Flask) -> None:
    """One round of the sweeps: jobs waiting for Redis first, then those the app added (mail retries)."""
    for sweep in (push_waiting, *app.extensions.get("copydesk.sweeps", ())):
        try:
            with app.app_context():
                sweep()
        except Exception:  # Redis or the database still away: the next round tries again
            app.logger.exception("sweep %s failed, trying again next minute", getattr(sweep, "__qualname__", sweep))


def _schedule_periodic_jobs(app: Flask, stop: threading.Event, burst: bool) -> None:
    """Each minute, run the sweeps and start the periodic jobs that came due; in burst mode, only those due now."""
    since = _minute(utcnow()) - dt.timedelta(seconds=1)
    while True:
        now = utcnow()
        run_sweeps(app)
        try:
            with app.app_context():
                for job_id in run_due_periodic_jobs(since, now):
                    click.echo(f"{now:%Y-%m-%d %H:%M:%S} periodic job started: {job_id}")
            since = now
        except Exception:  # a Redis or database hiccup must not stop the schedule; the next tick catches up
            app.logger.exception("periodic jobs: scheduling failed, trying again next minute")
        if burst:
            return
        next_minute = _minute(now) + dt.timedelta(minutes=1, seconds=1)
        if stop.wait((next_minute - utcnow()).total_seconds()):
            return


def run_worker(app: Flask, *, burst: bool = False, queue_names: list[str] | None = None) -> None:
    """Process jobs and periodic jobs until stopped (or, with `burst`, until nothing is left)."""
    periodic = app.extensions["copydesk"].periodic_jobs
    stop = threading.Event()
    if not app.config.get("REDIS_URL"):
        click.echo(
            "REDIS_URL is not set: jobs run inline where they are enqueued; this worker runs periodic jobs only."
        )
        click.echo(f"Periodic jobs: {', '.join(f'{j.name} ({j.cron})' for j in periodic.values()) or 'none'}.")
        with suppress(KeyboardInterrupt):
            _schedule_periodic_jobs(app, stop, burst)
        return
    worker = build_worker(app, queue_names)
    click.echo(f"Worker on queue(s) {', '.join(worker.queue_names())}, {len(periodic)} periodic job(s).")
    if burst:
        _schedule_periodic_jobs(app, stop, burst=True)
        worker.work(burst=True, with_scheduler=True)
        return
    scheduler = threading.Thread(target=_schedule_periodic_jobs, args=(app, stop, False), daemon=True)
    scheduler.start()
    try:
        worker.work(with_scheduler=True)
    finally:
        stop.set()


# --- command line --------------------------------------------------------------------------------------------------


@click.command("worker")
@click.option("--burst", is_flag=True, help="Process what is queued (and periodic jobs due now), then exit.")
@click.option("--queue", "queues", multiple=True, help="Queue to listen on (repeatable; default JOB_QUEUE).")
@with_appcontext
def worker_command(burst: bool, queues: tuple[str, ...]) -> None:
    """Run background jobs and the periodic jobs declared by modules."""
    run_worker(current_app._get_current_object(), burst=burst, queue_names=list(queues) or None)


jobs_cli = AppGroup("jobs", help="Background job records and periodic jobs.")


@jobs_cli.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only jobs in this state.")
@click.option("--limit", default=20, show_default=True, help="How many of the most recent jobs.")
def list_jobs(status: str | None, limit: int) -> None:
    """The most recent job records, newest first."""
    query = sa.select(JobRecord).order_by(JobRecord.enqueued_at.desc()).limit(limit)
    if status:
        query = query.where(JobRecord.status == status)
    for record in db.session.scalars(query):
        error = (record.error or "").split("\n", 1)[0]
        click.echo(
            f"{record.enqueued_at:%Y-%m-%d %H:%M:%S}  {record.status:<7} {record.attempts}  {record.id}  "
            f"{record.func}{'  ' + error if error else ''}"
        )


@jobs_cli.command("run-periodic")
@click.argument("name")
def run_periodic(name: str) -> None:
    """Start the periodic job NAME now, outside its schedule."""
    periodic = current_app.extensions["copydesk"].periodic_jobs
    if name not in periodic:
        known = ", ".join(sorted(periodic)) or "none"
        raise click.ClickException(f"there is no periodic job named {name!r}; known: {known}")
    job_id = enqueue(periodic[name].func, job_id=f"periodic:{name}:manual:{utcnow():%Y-%m-%dT%H:%M:%S}")
    status = db.session.scalar(sa.select(JobRecord.status).where(JobRecord.id == job_id))
    click.echo(f"{job_id}: {status}")


# --- admin page ----------------------------------------------------------------------------------------------------

STATUS_LABELS = {
    "queued": _l("queued"),
    "waiting": _l("waiting for the queue"),
    "running": _l("running"),
    "done": _l("done"),
    "failed": _l("failed"),
}


def job_records(status: str | None) -> list[JobRecord]:
    """The jobs the admin page lists: one status, or everything not done plus the most recent done ones."""
    newest = JobRecord.enqueued_at.desc()
    if status:
        query = sa.select(JobRecord).where(JobRecord.status == status).order_by(newest).limit(PAGE_LIMIT)
        return list(db.session.scalars(query))
    pending = db.session.scalars(
        sa.select(JobRecord).where(JobRecord.status != "done").order_by(newest).limit(PAGE_LIMIT)
    )
    done = db.session.scalars(
        sa.select(JobRecord).where(JobRecord.status == "done").order_by(newest).limit(RECENT_DONE)
    )
    return sorted([*pending, *done], key=lambda record: record.enqueued_at, reverse=True)


class JobsView(SecuredView):
    """Queued, running, failed and recent done jobs, with their errors and a Retry button for failed ones."""

    permission = "jobs.manage"

    @expose("/")
    def index(self):
        status = request.args.get("status")
        status = status if status in STATUSES else None
        counts = dict(db.session.execute(sa.select(JobRecord.status, sa.func.count()).group_by(JobRecord.status)).all())
        return self.render(
            "admin/jobs.html", records=job_records(status), status=status, counts=counts, labels=STATUS_LABELS
        )

    @expose("/retry", methods=["POST"])
    def retry(self):
        job_id = request.form.get("job_id", "")
        record = db.session.get(JobRecord, job_id)
        if record is None:
            flash(_("There is no job %(id)s.", id=job_id), "error")
        elif record.status not in RETRYABLE:
            flash(
                _(
                    "Only failed or waiting jobs can be retried; job %(id)s is %(status)s.",
                    id=job_id,
                    status=STATUS_LABELS[record.status],
                ),
                "warning",
            )
        else:
            try:
                status = retry_job(job_id)
            except (ValueError, redis.RedisError) as exc:
                flash(_("Job %(id)s could not be retried: %(error)s", id=job_id, error=exc), "error")
            else:
                messages = {
                    "done": (_("Job %(id)s ran again and succeeded.", id=job_id), "success"),
                    "failed": (_("Job %(id)s ran again and failed again.", id=job_id), "error"),
                    "waiting": (_("Job %(id)s still waits: the job queue is unreachable.", id=job_id), "warning"),
                }
                flash(*messages.get(status, (_("Job %(id)s is queued again.", id=job_id), "success")))
        status_filter = request.form.get("status")
        return redirect(url_for(".index", status=status_filter if status_filter in STATUSES else None))


def init_app(app: Flask) -> None:
    app.cli.add_command(worker_command)
    app.cli.add_command(jobs_cli)
    app.extensions["copydesk"].admin.add_view(JobsView(name=_l("Jobs"), endpoint="core_jobs", category=_l("Settings")))
