"""CSV import of readings: long and wide files, errors by row and column before anything is written, all or none."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from modules.metering.imports import import_readings, template_csv
from modules.metering.models import Reading
from modules.metering.tests import support as s


@pytest.fixture
def devices(db_session):
    customer = s.customer()
    colour, mono = s.device("KY1234567"), s.device("W8A12345", meters=("bw",))
    s.contract(customer.id, [(colour, {"bw": 10_000, "color": 2_000}), (mono, {"bw": 40_000})])
    db_session.commit()
    return colour, mono


def stored(db_session) -> list[tuple[str, dict]]:
    readings = db_session.scalars(sa.select(Reading).order_by(Reading.id)).all()
    return [(reading.device.serial, reading.counters) for reading in readings]


def test_long_file_groups_rows_of_one_device_and_time_into_one_reading(devices, db_session):
    text = (
        "serial,taken_at,meter,value\n"
        "KY1234567,2026-02-02 09:30,bw,11850\n"
        "KY1234567,2026-02-02 09:30,color,2310\n"
        "w8a 12345,2026-02-03,bw,40210\n"
    )
    result = import_readings(text, commit=True)
    assert (result.ok, result.rows, result.written) == (True, 3, 2)
    assert stored(db_session) == [("KY1234567", {"bw": 11_850, "color": 2_310}), ("W8A12345", {"bw": 40_210})]
    assert {r.source for r in db_session.scalars(sa.select(Reading))} == {"csv"}


def test_wide_file_with_semicolons_and_toner_levels(devices, db_session):
    text = "serial;taken_at;bw;color;toner_black\nKY1234567;2026-02-02 09:30;11850;;40\nW8A12345;2026-02-03;40210;;\n"
    result = import_readings(text, commit=True)
    assert result.ok and result.written == 2
    assert any("color" in message for _row, _column, message in result.notes)
    reading = db_session.scalars(sa.select(Reading).order_by(Reading.id)).first()
    assert reading.supply_levels == {"black": 40}


def test_errors_are_listed_by_row_and_column_and_nothing_is_written(devices, db_session):
    text = (
        "serial,taken_at,bw,color\n"
        "KY1234567,2026-02-02 09:30,11850,2310\n"
        "KY1234567,2026-03-02 09:30,9000,2400\n"
        "NOPE,2026-02-02,1,1\n"
        "W8A12345,soon,40210,5\n"
    )
    result = import_readings(text, commit=True)
    assert not result.ok and result.written == 0
    places = {(row, column) for row, column, _message in result.errors}
    assert places == {(3, "bw"), (4, "serial"), (5, "taken_at"), (5, "color")}
    assert stored(db_session) == []


def test_long_file_errors_point_at_the_value_row(devices, db_session):
    text = "serial,taken_at,meter,value\nKY1234567,2026-02-02,bw,11850\nKY1234567,2026-02-02,color,-5\n"
    result = import_readings(text, commit=True)
    assert [(row, column) for row, column, _message in result.errors] == [(3, "value")]


def test_check_writes_nothing_even_when_every_row_is_right(devices, db_session):
    result = import_readings("serial,taken_at,bw\nW8A12345,2026-02-03,40210\n", commit=False)
    assert result.ok and result.rows == 1 and result.written == 0
    assert stored(db_session) == []


def test_missing_and_unknown_columns_are_reported_on_the_header_row(devices):
    result = import_readings("serial,when,bw,colour\nW8A12345,2026-02-03,1,2\n", commit=True)
    assert {(row, column) for row, column, _message in result.errors} == {(1, "taken_at"), (1, "when, colour")}


def test_templates_import_cleanly_once_their_devices_exist(devices):
    for kind in ("long", "wide"):
        result = import_readings(template_csv(kind), commit=False)
        assert result.ok, result.errors


def test_file_with_cr_only_line_endings_imports_like_any_other(devices, db_session):
    text = "serial,taken_at,meter,value\rKY1234567,2026-02-02 09:30,bw,11850\rW8A12345,2026-02-03,bw,40210\r"

    result = import_readings(text, commit=True)

    assert (result.ok, result.rows, result.written) == (True, 2, 2), result.errors
    assert stored(db_session) == [("KY1234567", {"bw": 11_850}), ("W8A12345", {"bw": 40_210})]


def test_cell_over_131072_characters_is_an_error_naming_row_and_column(devices, db_session):
    text = f"serial,taken_at,bw,color\nW8A12345,2026-02-03,40210,\nKY1234567,2026-02-02,11850,{'9' * 131_073}\n"

    result = import_readings(text, commit=True)

    assert [(row, column) for row, column, _message in result.errors] == [(3, "color")]
    assert "10000" in result.errors[0][2]
    assert stored(db_session) == []


def test_formulas_in_text_cells_are_refused_by_row_and_column(devices, db_session):
    text = (
        "serial,taken_at,bw,color\n"
        "=1+2,2026-02-02,11850,2310\n"
        'KY1234567,"=HYPERLINK(""http://evil.example"",""click"")",11850,2310\n'
        "W8A12345,2026-02-03,@SUM(A1),\n"
    )

    result = import_readings(text, commit=True)

    assert [(row, column) for row, column, _message in result.errors] == [(2, "serial"), (3, "taken_at"), (4, "bw")]
    assert all("formula" in message for _row, _column, message in result.errors)
    assert stored(db_session) == []
