"""The demo dealer for tests that read it: `flask demo load` once per database and clock, copied back in afterwards.

A full demo load takes 5 to 15 seconds; copying its rows back into the emptied tables takes well under one. The
first test that asks loads the demo for real (through the CLI, as a dealer would) into the emptied database and keeps
every table's rows; the next ones on the same database and clock get those rows back, with PostgreSQL's id sequences
moved past them. Tests
of the demo loaders themselves (what a load adds, that a second adds nothing) call `flask demo load` directly.

A snapshot taken at the real clock (`at=None`) is as old as the test session: tests that need "now" to be exactly
the load's moment pass a fixed `at`, as they did before.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
import time_machine
from flask import Flask

# The tables `wipe_rows` keeps between tests (conftest.KEEP_TABLES): the schema's own bookkeeping, never copied.
UNTOUCHED = {"alembic_version", "core_module"}


@dataclass
class _Snapshot:
    output: str
    rows: dict[str, list[dict]]


_snapshots: dict[tuple[str, dt.datetime | None], _Snapshot] = {}


def load_demo(app: Flask, at: dt.datetime | None = None) -> str:
    """The app's database holding the demo dealer alone, as `flask demo load` run at `at` leaves an empty one; the
    command's output. What the test added before is gone: ask for the demo first."""
    from conftest import wipe_rows

    wipe_rows(app)
    key = (app.config["SQLALCHEMY_DATABASE_URI"], at)
    snapshot = _snapshots.get(key)
    if snapshot is None:
        snapshot = _snapshots[key] = _load_and_keep(app, at)
    else:
        _restore(app, snapshot)
    return snapshot.output


def _tables(app: Flask) -> list[sa.Table]:
    from core.db import db

    with app.app_context():
        existing = set(sa.inspect(db.engine).get_table_names())
    return [table for table in db.metadata.sorted_tables if table.name in existing and table.name not in UNTOUCHED]


def _load_and_keep(app: Flask, at: dt.datetime | None) -> _Snapshot:
    from core.db import db

    if at is None:
        result = app.test_cli_runner().invoke(args=["demo", "load"])
    else:
        with time_machine.travel(at, tick=False):
            result = app.test_cli_runner().invoke(args=["demo", "load"])
    assert result.exit_code == 0, result.output
    with app.app_context(), db.engine.connect() as conn:
        rows = {table.name: [dict(row) for row in conn.execute(sa.select(table)).mappings()] for table in _tables(app)}
    return _Snapshot(result.output, rows)


def _restore(app: Flask, snapshot: _Snapshot) -> None:
    from core.db import db

    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            # Foreign keys that point both ways (a statement line and its payment) are checked once all rows are in.
            if db.engine.dialect.name == "postgresql":
                conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            else:
                conn.execute(sa.text("PRAGMA defer_foreign_keys = ON"))
            for table in _tables(app):
                rows = snapshot.rows.get(table.name)
                if rows:
                    conn.execute(table.insert(), rows)
            if db.engine.dialect.name == "postgresql":
                _move_sequences(conn, snapshot)


def _move_sequences(conn: sa.Connection, snapshot: _Snapshot) -> None:
    """Each serial column's sequence past the ids copied in, so the next insert does not collide with them."""
    serials = conn.execute(
        sa.text(
            "SELECT table_name, column_name, pg_get_serial_sequence(quote_ident(table_name), column_name) "
            "FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL"
        )
    ).all()
    for table, column, sequence in serials:
        values = [row[column] for row in snapshot.rows.get(table, ()) if row.get(column) is not None]
        if values:
            conn.execute(sa.text("SELECT setval(:sequence, :value)"), {"sequence": sequence, "value": max(values)})
