"""Search a whole database for a text: every column of every table there, read as text (secrets, hidden names)."""

from __future__ import annotations

import sqlalchemy as sa

from core.db import db


def places_holding(text: str) -> list[str]:
    """`table.column` of every column, of every table the database has (not only the models'), holding `text`."""
    db.session.flush()
    inspector = sa.inspect(db.session.connection())
    found = []
    for table in inspector.get_table_names():
        for column in inspector.get_columns(table):
            quoted = f'"{table}"."{column["name"]}"'
            query = sa.text(f'SELECT COUNT(*) FROM "{table}" WHERE CAST({quoted} AS TEXT) LIKE :pattern')
            if db.session.execute(query, {"pattern": f"%{text}%"}).scalar():
                found.append(f"{table}.{column['name']}")
    return found
