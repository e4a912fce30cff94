"""CSV imports: an `Importer` checks every row of a file, reports errors by row and column, writes all rows or none."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from flask import Response, abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from core.admin import SecuredView
from core.csv_files import Errors, decode, read_rows
from core.db import db
from core.permissions import has_permission
from core.validation import ValidationError

MAX_ROWS = 5000

Problem = tuple[int, str, str]


@dataclass(frozen=True)
class Column:
    """A column of an import: its header name, whether every file needs it, and what to write in it (for the page)."""

    name: str
    help: Any = ""
    required: bool = False
    example: str = ""


@dataclass(frozen=True)
class Template:
    """A CSV to download and fill in: the columns and example rows of one layout of an import."""

    name: str
    label: Any
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    file_name: str = ""

    @property
    def download_name(self) -> str:
        return self.file_name or f"copydesk-{self.name}.csv"

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.header)
        writer.writerows(self.rows)
        return out.getvalue()


@dataclass
class Row:
    """One row of the file: its line number (the header is line 1) and its trimmed cells by column."""

    line: int
    cells: dict[str, str]


@dataclass(frozen=True)
class Written:
    """What writing one entry did: whether it stored something new, and notes for the user (held, warnings)."""

    new: bool = True
    notes: tuple[str, ...] = ()


@dataclass
class ImportResult:
    """What an import found: rows read, entries written (0 unless committed), errors and notes by row and column."""

    rows: int = 0
    written: int = 0
    errors: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def header_problems(missing: Iterable[str], unknown: Iterable[str]) -> list[Problem]:
    """The header row's errors: required columns the file lacks, and columns no layout of the import has."""
    missing, unknown = list(missing), list(unknown)
    problems = []
    if missing:
        problems.append((1, ", ".join(missing), _("Required columns are missing.")))
    if unknown:
        problems.append((1, ", ".join(unknown), _("Unknown columns (see the template).")))
    return problems


class Importer:
    """One kind of import. A subclass names its columns and templates and writes one entry through the services.

    `run` reads the file (core.csv_files.read_rows: any line ending and delimiter, bounded cells, no formulas), checks
    the header, then writes the entries one after the other in one transaction, so an entry sees those before it (a
    serial twice in the file is caught). An entry whose `write` raises core.validation.ValidationError adds its field
    errors, each placed on a row and column by `place`. At the end the whole transaction is committed only when no
    row failed and `commit` was asked, and rolled back otherwise: all rows or none.
    """

    kind: ClassVar[str]
    title: ClassVar[Any]
    permission: ClassVar[str]
    columns: ClassVar[tuple[Column, ...]]
    templates: ClassVar[tuple[Template, ...]]
    description: ClassVar[Any] = ""
    max_rows: ClassVar[int] = MAX_ROWS

    def __init__(self, user_id: int | None = None) -> None:
        self.user_id = user_id

    @classmethod
    def imported_message(cls, count: int) -> str:
        return _("%(count)d rows imported.", count=count)

    def check_header(self, header: list[str]) -> list[Problem]:
        names = {column.name for column in self.columns}
        missing = [column.name for column in self.columns if column.required and column.name not in header]
        return header_problems(missing, [name for name in header if name and name not in names])

    def entries(self, header: list[str], rows: list[Row], errors: Errors) -> Iterable[Any]:
        """What `write` takes, one by one: a row each unless rows make one entry together (errors go to `errors`)."""
        return rows

    def write(self, entry: Any) -> Written | None:
        raise NotImplementedError

    def place(self, entry: Any, name: str, message: str) -> Problem:
        """Where a field error of `entry` shows: its row, and the column named like the field."""
        return entry.line, name, message

    def run(self, text: str, commit: bool) -> ImportResult:
        """Check (and with `commit`, write) the file's entries; nothing is written when any row has an error."""
        result = ImportResult()
        header, cells = read_rows(text, result.errors)
        result.errors += self.check_header(header)
        if result.ok:
            rows = list(self._bounded(cells, result))
            result.rows = len(rows)
            for entry in self.entries(header, rows, result.errors):
                try:
                    written = self.write(entry) or Written()
                except ValidationError as error:
                    result.errors += [self.place(entry, name, message) for name, message in error.errors.items()]
                    continue
                result.written += written.new
                result.notes += [(entry.line, "", note) for note in written.notes]
        if commit and result.ok:
            db.session.commit()
        else:
            db.session.rollback()
            result.written = 0
        return result

    def _bounded(self, cells: Iterable[tuple[int, dict[str, str]]], result: ImportResult) -> Iterator[Row]:
        for count, (line, row) in enumerate(cells):
            if count >= self.max_rows:
                result.errors.append((line, "", _("At most %(max)d rows per file.", max=self.max_rows)))
                return
            yield Row(line, row)


class ImportView(SecuredView):
    """The import page of a module: upload a CSV, see every row's errors (preview), then confirm to write them all.

    A subclass lists its `importers`; each shows to users with its permission. The confirm step posts the checked
    text back, so what is written is what was previewed.
    """

    importers: ClassVar[tuple[type[Importer], ...]]
    heading: ClassVar[Any] = _l("Import from a spreadsheet")

    def _allowed(self) -> list[type[Importer]]:
        return [importer for importer in self.importers if has_permission(current_user, importer.permission)]

    def _page(self, result: ImportResult | None = None, importer: type[Importer] | None = None, content: str = ""):
        importers = self._allowed()
        if not importers:
            abort(403)
        return self.render(
            "admin/csv_import.html",
            heading=self.heading,
            importers=importers,
            result=result,
            importer=importer,
            content=content,
        )

    @expose("/")
    def index(self):
        return self._page()

    @expose("/template/<template_name>.csv")
    def template(self, template_name: str):
        for importer in self._allowed():
            for template in importer.templates:
                if template.name == template_name:
                    return Response(
                        template.csv(),
                        mimetype="text/csv",
                        headers={"Content-Disposition": f"attachment; filename={template.download_name}"},
                    )
        abort(404)

    @expose("/run/", methods=("POST",))
    def run(self):
        allowed = {importer.kind: importer for importer in self._allowed()}
        # A page with a single import needs no kind in its form.
        default = self.importers[0].kind if len(self.importers) == 1 else ""
        importer = allowed.get(request.form.get("kind") or default)
        if importer is None:
            abort(403)
        upload = request.files.get("file")
        content = decode(upload.read()) if upload and upload.filename else request.form.get("content", "")
        if not content.strip():
            flash(_("Choose a CSV file."), "error")
            return redirect(url_for(".index"))
        commit = request.form.get("step") == "import"
        result = importer(user_id=current_user.id).run(content, commit=commit)
        if commit and result.ok:
            flash(importer.imported_message(result.written), "success")
            return redirect(url_for(".index"))
        return self._page(result, importer, content)
