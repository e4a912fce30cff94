"""Gapless document numbers per type and year, safe when two people post at once."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.db import db
from core.models import Sequence


def next_number(code: str, year: int) -> int:
    """Take the next number of `code` in `year` inside the caller's transaction.

    The row is locked until the caller commits, so a rolled-back posting gives its number back and no two
    transactions get the same one: the numbers stay gapless.
    """
    dialect = db.session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]
    db.session.execute(
        insert(Sequence)
        .values(code=code, year=year, last_value=0)
        .on_conflict_do_nothing(index_elements=["code", "year"])
    )
    # UPDATE ... RETURNING takes the row lock on PostgreSQL and the write lock on SQLite in one statement.
    return db.session.execute(
        sa.update(Sequence)
        .where(Sequence.code == code, Sequence.year == year)
        .values(last_value=Sequence.last_value + 1)
        .returning(Sequence.last_value)
    ).scalar_one()


def format_number(number: int, year: int) -> str:
    return f"{number}/{year}"


def peek_next(code: str, year: int) -> int:
    """The number `next_number` would give now, taking nothing (for a confirmation; someone may post first)."""
    last = db.session.scalar(sa.select(Sequence.last_value).where(Sequence.code == code, Sequence.year == year))
    return (last or 0) + 1
