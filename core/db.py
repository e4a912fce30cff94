"""The SQLAlchemy handle shared by core and every module, with a stable constraint naming convention."""

from __future__ import annotations

import datetime as dt
import os

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def utcnow() -> dt.datetime:
    """Timezone-aware now in UTC; every stored timestamp is UTC."""
    return dt.datetime.now(dt.UTC)


def _dispose_pools_in_child() -> None:
    # A forked job process must open its own connections: drop the parent's pool
    # without closing the parent's sockets.
    engines = getattr(db, "_app_engines", {})
    for per_app in list(engines.values()):
        for engine in list(per_app.values()):
            engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_pools_in_child)


def savepoint_committed(session) -> bool:
    """In an `after_commit` hook: True when only a savepoint was released and the real transaction is still open.

    SQLAlchemy runs `after_commit` for savepoints too; work meant for after the real commit must wait.
    """
    return session.in_nested_transaction()
