"""Transactions on the embedded SQLite default behave as on PostgreSQL: savepoints nest, writers wait for each other."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from core.db import db
from core.models import Setting
from core.settings import get_setting, set_setting


def test_savepoint_opening_the_transaction_is_undone_by_the_outer_rollback(db_session):
    set_setting("sqlite.kept", "before")
    db.session.commit()

    assert get_setting("sqlite.kept") == "before"  # only a read so far
    with db.session.begin_nested():
        set_setting("sqlite.savepoint", "written")
    db.session.rollback()

    assert get_setting("sqlite.savepoint") is None
    assert get_setting("sqlite.kept") == "before"


def test_session_that_read_before_another_committed_can_still_write(app, db_session):
    """Two requests at once, each reading first: the later writer is not refused for having read an older state."""
    set_setting("sqlite.first", "old")
    db.session.commit()
    assert get_setting("sqlite.first") == "old"  # this session has read
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with app.app_context():
                set_setting("sqlite.first", "new")
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(timeout=30)
    set_setting("sqlite.second", "written")
    db.session.commit()

    assert errors == []
    assert db.session.scalar(sa.select(Setting.value).where(Setting.key == "sqlite.first")) == "new"
    assert get_setting("sqlite.second") == "written"


def test_writer_waits_for_another_writer_instead_of_failing(app, db_session):
    if app.config["TEST_BACKEND"] != "sqlite":
        pytest.skip("PostgreSQL writers of different rows do not wait for each other")
    set_setting("sqlite.first", "held")
    db.session.flush()  # this session now holds SQLite's write lock
    started, errors = threading.Event(), []

    def write() -> None:
        try:
            with app.app_context():
                started.set()
                set_setting("sqlite.second", "waited")
                db.session.commit()
                db.session.remove()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    started.wait(timeout=10)
    thread.join(timeout=1)
    assert thread.is_alive()  # waiting for the lock, not failed
    db.session.commit()
    thread.join(timeout=30)

    assert errors == []
    db.session.rollback()
    assert (get_setting("sqlite.first"), get_setting("sqlite.second")) == ("held", "waited")


def test_schema_change_of_a_rolled_back_transaction_leaves_no_trace(db_session):
    """A migration failing halfway leaves the schema as it was: DDL is transactional on SQLite too."""
    try:
        assert get_setting("sqlite.kept") is None
        db.session.execute(sa.text("CREATE TABLE scratch_half_done (id INTEGER PRIMARY KEY)"))
        db.session.rollback()

        assert "scratch_half_done" not in sa.inspect(db.engine).get_table_names()
    finally:
        db.session.rollback()
        with db.engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE IF EXISTS scratch_half_done"))
