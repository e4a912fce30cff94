"""Counting the SQL statements a block sends, to prove a page or an API list does not query once per row (N+1)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from flask import Flask

from core.db import db


class Queries(list[str]):
    """The statements sent, in order."""

    def __str__(self) -> str:
        return f"{len(self)} statements:\n" + "\n".join(f"  {sql.splitlines()[0][:160]}" for sql in self)


@contextmanager
def count_queries(app: Flask) -> Iterator[Queries]:
    """Every statement sent to `app`'s database inside the block, from any session or connection of its engine."""
    with app.app_context():
        engine = db.engine
    queries = Queries()

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        queries.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield queries
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def assert_not_growing(few: Queries, many: Queries, slack: int = 0) -> None:
    """The statements for many rows are no more than those for few rows (plus `slack`): nothing is queried per row."""
    assert len(many) <= len(few) + slack, f"with few rows: {few}\nwith three times as many: {many}"
