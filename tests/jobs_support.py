"""Job functions for the job tests (module-level, JSON arguments, effects read back in core_setting); a burst worker."""

from __future__ import annotations

import os
import signal

import sqlalchemy as sa

from core import jobs
from core.db import db
from core.settings import get_setting, set_setting


def store_value(key: str, value: object) -> None:
    set_setting(key, value)
    db.session.commit()


def count_run(key: str = "jobs_test.runs") -> None:
    set_setting(key, (get_setting(key) or 0) + 1)
    db.session.commit()


def flaky(key: str, failures: int) -> None:
    """Fails its first `failures` runs, then succeeds; the run count is committed before failing."""
    runs = (get_setting(key) or 0) + 1
    set_setting(key, runs)
    db.session.commit()
    if runs <= failures:
        raise RuntimeError(f"run {runs} of {key} failed on purpose")


def write_then_fail(key: str) -> None:
    set_setting(key, "half-written")
    db.session.flush()
    raise ValueError(f"{key} could not be finished")


def store_connection_pid(key: str) -> None:
    """Store the PostgreSQL backend pid of the job's own connection."""
    set_setting(key, db.session.scalar(sa.text("SELECT pg_backend_pid()")))
    db.session.commit()


def crash() -> None:
    """Die the way an out-of-memory kill does: no exception, no cleanup."""
    os.kill(os.getpid(), signal.SIGKILL)


def work_burst(app) -> None:
    """Run a real RQ worker (scheduler on, so retries run) until the queue is empty; its signal handlers undone."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        jobs.build_worker(app).work(burst=True, with_scheduler=True)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
