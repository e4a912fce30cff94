"""CSV files in and out: uploads decoded and read for the importers, and spreadsheet formulas kept from running."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from flask_babel import gettext as _

# OWASP "CSV injection": a spreadsheet runs a cell starting with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# No column of any import holds more; a longer cell is refused by row and column.
MAX_CELL_CHARS = 10_000
NUMBER_RE = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)$")
LINE_END_RE = re.compile(r"\r\n|\r|\n")
CSV_FIELD_LIMIT = 2**31 - 1

Errors = list[tuple[int, str, str]]


def decode(raw: bytes) -> str:
    """Spreadsheets save UTF-8 (with or without BOM) or Windows-1252."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def neutralise_formula(text: str) -> str:
    """`text` for a spreadsheet cell: one that would start a formula gets a leading `'`, so it shows as text."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def read_rows(text: str, errors: Errors) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header (trimmed, lower case) and the rows of a CSV as (line, {column: trimmed cell}), blank rows skipped.

    Any line ending (CR LF, LF, CR alone) and delimiter (`,` `;` or tab, the most frequent in the first line) is read.
    A row with a cell longer than MAX_CELL_CHARS, or with text a spreadsheet would run as a formula (`=1+2`; a number
    such as `-5` is fine), is not yielded: its errors go to `errors` as (line, column, message), the import fails.
    """
    # Python's csv module refuses fields over 131,072 characters with an error that names no row or column; the
    # whole text is in memory already, so lift that limit and check the length per cell below, with a clear message.
    csv.field_size_limit(CSV_FIELD_LIMIT)
    first_line = LINE_END_RE.split(text, maxsplit=1)[0]
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader, [])]
    for position, name in enumerate(header, start=1):
        if len(name) > MAX_CELL_CHARS:
            errors.append((1, _("column %(number)d", number=position), _("This column name is too long.")))
            header[position - 1] = ""
    return header, _rows(reader, header, errors)


def _rows(reader, header: list[str], errors: Errors) -> Iterator[tuple[int, dict[str, str]]]:
    for cells in reader:
        cells += [""] * (len(header) - len(cells))
        row = {name: value.strip() for name, value in zip(header, cells, strict=False) if name}
        if not any(row.values()):
            continue
        line = reader.line_num
        problems = [(line, name, message) for name, value in row.items() if (message := _cell_problem(value))]
        if problems:
            errors.extend(problems)
            continue
        yield line, row


def _cell_problem(value: str) -> str | None:
    if len(value) > MAX_CELL_CHARS:
        return _("At most %(max)d characters.", max=MAX_CELL_CHARS)
    if len(value) > 1 and value.startswith(FORMULA_STARTS) and not NUMBER_RE.match(value):
        return _("Must not start with =, +, - or @: a spreadsheet would run it as a formula.")
    return None
