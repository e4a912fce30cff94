"""core.db.on_commit: work runs after the real commit only, never after a rollback, savepoints followed."""

from __future__ import annotations

import pytest

from core.db import db, on_commit
from core.settings import get_setting, set_setting


@pytest.fixture
def ran(db_session):
    return []


def write(key: str) -> None:
    set_setting(key, "written")
    db.session.flush()


def test_callback_runs_once_after_commit_and_not_before(ran):
    write("on_commit.a")
    on_commit(lambda: ran.append("a"))
    db.session.flush()
    assert ran == []
    db.session.commit()
    db.session.commit()
    assert ran == ["a"]


def test_callback_never_runs_after_a_rollback(ran):
    write("on_commit.a")
    on_commit(lambda: ran.append("a"))
    db.session.rollback()
    db.session.commit()
    assert ran == []
    assert get_setting("on_commit.a") is None


def test_released_savepoint_waits_for_the_outer_commit(ran):
    savepoint = db.session.begin_nested()
    write("on_commit.a")
    on_commit(lambda: ran.append("a"))
    savepoint.commit()
    assert ran == []
    db.session.commit()
    assert ran == ["a"]


def test_released_savepoint_runs_nothing_when_the_outer_transaction_rolls_back(ran):
    write("on_commit.outer")
    savepoint = db.session.begin_nested()
    inner = db.session.begin_nested()
    write("on_commit.a")
    on_commit(lambda: ran.append("a"))
    inner.commit()
    savepoint.commit()
    db.session.rollback()
    db.session.commit()
    assert ran == []
    assert get_setting("on_commit.a") is None


def test_rolled_back_savepoint_drops_only_its_own_callbacks(ran):
    write("on_commit.outer")
    on_commit(lambda: ran.append("outer"))
    savepoint = db.session.begin_nested()
    write("on_commit.a")
    on_commit(lambda: ran.append("undone"))
    savepoint.rollback()
    kept = db.session.begin_nested()
    on_commit(lambda: ran.append("kept"))
    kept.commit()
    db.session.commit()
    assert ran == ["outer", "kept"]


def test_a_failing_callback_does_not_stop_the_others(ran):
    def fail():
        raise RuntimeError("receiver broke")

    write("on_commit.a")
    on_commit(fail)
    on_commit(lambda: ran.append("after"))
    with pytest.raises(RuntimeError, match="receiver broke"):
        db.session.commit()
    assert ran == ["after"]
    assert get_setting("on_commit.a") == "written"


def test_callback_registered_before_any_query_runs_after_commit(ran):
    on_commit(lambda: ran.append("a"))
    write("on_commit.a")
    db.session.commit()
    assert ran == ["a"]
