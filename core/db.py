"""The SQLAlchemy handle shared by core and every module, with a stable constraint naming convention."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction

log = logging.getLogger(__name__)

# A table's planner statistics are stale once this many rows, plus this share of the rows it had, changed since.
STALE_ROWS = 1000
STALE_SHARE = 0.2

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


def contains(column: Any, text: str) -> sa.ColumnElement[bool]:
    """`column` contains `text`, ignoring case; `%`, `_` and `\\` in `text` match themselves, not as wildcards."""
    return column.icontains(text, autoescape=True)


def _dispose_pools_in_child() -> None:
    # A forked job process must open its own connections: drop the parent's pool
    # without closing the parent's sockets.
    engines = getattr(db, "_app_engines", {})
    for per_app in list(engines.values()):
        for engine in list(per_app.values()):
            engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_pools_in_child)


SQLITE_BUSY_TIMEOUT_MS = 5000  # a writer waits this long for another one before "database is locked"
_SQLITE_READS = ("SELECT", "WITH", "PRAGMA", "EXPLAIN")


@event.listens_for(Engine, "connect")
def _sqlite_connected(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite: WAL (readers and the writer do not block each other), a busy timeout, and our own BEGIN.

    pysqlite's own BEGIN comes only before INSERT/UPDATE/DELETE, so a SAVEPOINT opening the transaction became the
    outermost one, committed on release (SQLAlchemy's "Serializable isolation / Savepoints / Transactional DDL").
    """
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    dbapi_connection.isolation_level = None
    dbapi_connection.execute("PRAGMA journal_mode = WAL")
    dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


@event.listens_for(Engine, "before_cursor_execute")
def _sqlite_begin_before_writing(conn, cursor, statement, parameters, context, executemany) -> None:
    """SQLite: BEGIN IMMEDIATE before a transaction's first write (DML, DDL, SAVEPOINT); reads before it autocommit.

    Not a deferred BEGIN when the session begins: a transaction that read and then finds another writer committed
    meanwhile cannot write (SQLITE_BUSY_SNAPSHOT, "database is locked" at once, no wait), which concurrent requests
    (each reads its user first) would hit. Taking the write lock first, writers wait for each other instead, and
    reads see the last commit, as PostgreSQL's READ COMMITTED does.
    """
    if conn.dialect.name != "sqlite":
        return
    dbapi_connection = conn.connection.dbapi_connection
    if dbapi_connection.in_transaction:
        return
    writes = context is not None and (context.isinsert or context.isupdate or context.isdelete or context.isddl)
    if writes or not statement.lstrip(" \t\n(").upper().startswith(_SQLITE_READS):
        dbapi_connection.execute("BEGIN IMMEDIATE")


def insert_once(table: sa.Table, values: dict[str, Any]) -> None:
    """INSERT the row unless its key exists, in a transaction of its own, so what it creates (a singleton created on
    first use: the device CA, the licence installation) lasts whatever the caller's transaction does and holds no
    lock for the rest of the caller's request. SQLite: inside the caller's write transaction when one is open
    (another connection would wait for its lock); writers there are serialised anyway."""
    dialect = db.engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table).values(**values).on_conflict_do_nothing()
    connection = db.session.connection()
    if dialect == "sqlite" and connection.connection.dbapi_connection.in_transaction:
        connection.execute(statement)
        return
    with db.engine.begin() as own:
        own.execute(statement)


_ON_COMMIT = "core_on_commit"  # session.info key: {SessionTransaction: [callbacks]}, root and savepoints
_COMMITTED = "core_on_commit_due"  # session.info key: the callbacks of a root transaction that has committed


def on_commit(fn: Callable[[], Any]) -> None:
    """Run `fn()` once the current transaction of `db.session` really commits; never if it rolls back.

    Registered inside a savepoint, `fn` follows it: dropped when the savepoint rolls back, handed to the enclosing
    transaction when it is released, so a released savepoint whose outer transaction rolls back runs nothing.
    `fn` runs once the committed transaction is closed (a query in it starts a new one). Every callback runs; the
    first error is raised afterwards, from `commit()`, the commit itself standing.
    """
    session = db.session()
    if not session.in_transaction():
        session.begin()
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(_ON_COMMIT, {}).setdefault(transaction, []).append(fn)


def _enclosing(transaction: SessionTransaction) -> SessionTransaction:
    """The savepoint or root transaction a released savepoint's callbacks move to (skipping flush subtransactions)."""
    parent = transaction.parent
    while not parent.nested and parent.parent is not None:
        parent = parent.parent
    return parent


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    pending = session.info.get(_ON_COMMIT)
    if not pending:
        return
    # SQLAlchemy calls after_commit for a released savepoint too, while it is still the current transaction.
    transaction = session.get_nested_transaction() or session.get_transaction()
    callbacks = pending.pop(transaction, [])
    if transaction.nested:
        pending.setdefault(_enclosing(transaction), []).extend(callbacks)
    else:
        session.info[_COMMITTED] = callbacks


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    # Released savepoints have handed their callbacks on: what is left of an ending transaction was rolled back.
    if transaction.parent is not None:
        session.info.get(_ON_COMMIT, {}).pop(transaction, None)
        return
    session.info.pop(_ON_COMMIT, None)
    errors = []
    for callback in session.info.pop(_COMMITTED, []):
        try:
            callback()
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


def refresh_statistics(*tables: str) -> list[str]:
    """ANALYZE those of `tables` whose PostgreSQL statistics are stale (never taken, or STALE_ROWS plus STALE_SHARE
    of their rows changed since); returns their names. Nothing to do on SQLite.

    For jobs that fill the tables they then look up, a billing run above all: with statistics that say a table is
    empty the planner scans it whole for each lookup and the job gets slower as it goes. Autovacuum refreshes them
    too, but at most once a minute and never where it is off. Runs on a connection of its own, outside the caller's
    transaction; a table the database user may not analyze is logged and left to autovacuum. The server counts a
    transaction's changes within a second or so of its commit.
    """
    bind = db.session.get_bind()
    if bind.dialect.name != "postgresql" or not tables:
        return []
    analyzed = []
    with bind.connect() as connection:  # not the session's: its transaction would see the statistics as they were
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        counts = connection.execute(
            sa.text(
                "SELECT c.relname, s.n_mod_since_analyze, c.reltuples FROM pg_class c "
                "JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = ANY(:names)"
            ),
            {"names": list(tables)},
        ).all()
        for name, changed, rows in counts:
            if rows >= 0 and changed <= STALE_ROWS + STALE_SHARE * rows:
                continue
            try:
                connection.execute(sa.text(f'ANALYZE "{name}"'))
            except sa.exc.DBAPIError:
                log.warning("could not analyze %s; its statistics are left to autovacuum", name, exc_info=True)
            else:
                analyzed.append(name)
    return analyzed
