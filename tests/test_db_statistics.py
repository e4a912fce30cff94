"""core.db.refresh_statistics: a table a job filled is analyzed once its PostgreSQL statistics are stale."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from core.db import STALE_ROWS, db, refresh_statistics
from core.models import Setting


def estimated_rows(table: str) -> float:
    return db.session.scalar(sa.text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table})


def add_settings(count: int, prefix: str) -> None:
    db.session.execute(sa.insert(Setting), [{"key": f"{prefix}.{n}", "value": str(n)} for n in range(count)])
    db.session.commit()


def test_postgresql_statistics_follow_the_rows_a_job_added(app, db_session):
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("statistics are PostgreSQL's")
    refresh_statistics("core_setting")  # whatever earlier tests left
    add_settings(STALE_ROWS + 500, "stats")
    analyzed, deadline = [], time.monotonic() + 15
    while not analyzed and time.monotonic() < deadline:  # the server counts the inserts within a second or so
        analyzed = refresh_statistics("core_setting")
        time.sleep(0.2)
    assert analyzed == ["core_setting"]
    assert estimated_rows("core_setting") >= STALE_ROWS + 500
    assert refresh_statistics("core_setting") == []  # fresh now: nothing to do until enough rows change again
