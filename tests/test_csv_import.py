"""core.csv_import: a module's importer gets errors by row and column, bounded files and all-or-nothing writes."""

from __future__ import annotations

import sqlalchemy as sa

from core.csv_import import Column, Importer, Row
from core.db import db
from core.models import Partner
from core.validation import fail


class CustomerImporter(Importer):
    """What a new module writes: its columns and how one row is written."""

    kind = "customers"
    title = "Customers"
    permission = "partners.edit"
    columns = (Column("name", required=True), Column("city"))
    templates = ()

    def write(self, entry: Row) -> None:
        name = entry.cells["name"]
        if not name:
            fail("name", "A name is required.")
        if db.session.scalar(sa.select(Partner.id).where(Partner.name == name)):
            fail("name", f"{name} exists already.")
        db.session.add(Partner(name=name, city=entry.cells.get("city") or None, is_customer=True))
        db.session.flush()


class SmallImporter(CustomerImporter):
    max_rows = 2


def names() -> list[str]:
    return list(db.session.scalars(sa.select(Partner.name).order_by(Partner.name)))


def test_a_bad_row_writes_nothing_of_the_file_and_is_named_by_row_and_column(db_session):
    result = CustomerImporter().run("name,city\nRossi Srl,Milano\n,Roma\nBianchi Spa,Torino\n", commit=True)

    assert (result.rows, result.written, result.errors) == (3, 0, [(3, "name", "A name is required.")])
    assert names() == []


def test_a_row_sees_the_rows_before_it_in_the_same_transaction(db_session):
    result = CustomerImporter().run("name\nRossi Srl\nVerdi Snc\nRossi Srl\n", commit=True)

    assert result.errors == [(4, "name", "Rossi Srl exists already.")]
    assert names() == []


def test_a_file_without_errors_is_written_whole_and_a_preview_writes_nothing(db_session):
    text = "name;city\nRossi Srl;Milano\nVerdi Snc;\n"

    preview = CustomerImporter().run(text, commit=False)
    assert (preview.ok, preview.rows, preview.written, names()) == (True, 2, 0, [])

    done = CustomerImporter().run(text, commit=True)
    assert (done.ok, done.written, names()) == (True, 2, ["Rossi Srl", "Verdi Snc"])


def test_missing_and_unknown_columns_are_errors_of_the_header_row(db_session):
    result = CustomerImporter().run("city,phone\nMilano,02 1234\n", commit=True)

    assert result.errors == [
        (1, "name", "Required columns are missing."),
        (1, "phone", "Unknown columns (see the template)."),
    ]
    assert result.rows == 0 and names() == []


def test_rows_beyond_the_limit_are_refused_and_nothing_is_written(db_session):
    result = SmallImporter().run("name\nA\nB\nC\n", commit=True)

    assert result.errors == [(4, "", "At most 2 rows per file.")]
    assert names() == []
