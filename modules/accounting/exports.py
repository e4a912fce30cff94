"""The VAT registers and the accounting reports as files: CSV for spreadsheets, PDF (xhtml2pdf) for the books.

Each report becomes a `Table` (a title, column headings, rows, total rows) that both writers lay out, so the CSV and
the PDF of a report always hold the same figures as its page. The VAT registers have their own PDF layout (one line
per document and rate, the summary per rate), the one an Italian accountant prints and keeps.

CSV: UTF-8 with a BOM, comma-separated, headers in the user's language, amounts with a decimal point and no
thousands separator, dates in ISO form, text a spreadsheet would run as a formula neutralised (core.csv_files).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Response, render_template
from flask_babel import format_date, format_decimal
from flask_babel import gettext as _
from xhtml2pdf import pisa

from core.csv_files import neutralise_formula
from core.db import db
from core.models import Company
from core.partners import vat_display
from modules.accounting import reports, vat

ROWS_PER_TABLE = 40  # xhtml2pdf lays long tables out slowly: the PDF prints them in tables of this many rows


class PdfError(Exception):
    """xhtml2pdf could not lay the document out."""


@dataclass
class Row:
    cells: list[Any]
    kind: str = ""  # "" a line, "heading" a section's title, "total" a total
    account: Any = None  # the account the row is about: its page links the code to its general ledger


@dataclass
class Table:
    title: str
    subtitle: str
    name: str  # the file name's stem, ASCII
    headers: list[str]
    numeric: set[int]  # columns of amounts, right-aligned
    rows: list[Row] = field(default_factory=list)


def download(content: bytes, mimetype: str, name: str) -> Response:
    """A file to save (the back office's and the API's downloads alike)."""
    return Response(content, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


def money(value: Decimal | None) -> str:
    return "" if value is None else format_decimal(value, format="#,##0.00;-#,##0.00")


def rate_text(value: Decimal) -> str:
    return format_decimal(value, format="#,##0.##") + "%"


def ascii_name(*words: str) -> str:
    text = "_".join(words)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().replace(" ", "_").replace("/", "-")


def _company() -> Company | None:
    return db.session.scalar(sa.select(Company).order_by(Company.id).limit(1))


# Writers


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return neutralise_formula(str(value))


def csv_text(headers: list[str], rows: list[list[Any]]) -> str:
    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\r\n")
    writer.writerow([str(header) for header in headers])
    for row in rows:
        writer.writerow([_csv_cell(value) for value in row])
    return "\ufeff" + output.getvalue()


def table_csv(table: Table) -> str:
    """Every row of the table (headings and totals too, as rows), cells as they are."""
    return csv_text(table.headers, [row.cells for row in table.rows])


def _pdf_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return money(value)
    if isinstance(value, dt.date):
        return format_date(value, "short")
    return str(value)


def render_pdf(template: str, **context: Any) -> bytes:
    html = render_template(template, company=_company(), vat=vat_display, **context)
    output = io.BytesIO()
    result = pisa.CreatePDF(html, dest=output, encoding="utf-8")
    if result.err:
        raise PdfError(f"{template}: xhtml2pdf reported {result.err} error(s)")
    return output.getvalue()


def table_pdf(table: Table, landscape: bool = False) -> bytes:
    rows = [Row([_pdf_cell(value) for value in row.cells], row.kind) for row in table.rows]
    chunks = [rows[start : start + ROWS_PER_TABLE] for start in range(0, len(rows), ROWS_PER_TABLE)] or [[]]
    return render_pdf("accounting/pdf/report.html", table=table, chunks=chunks, landscape=landscape)


# Reports as tables


def _account_cells(account) -> list[str]:
    return [account.code, account.name()]


def trial_balance_table(report: reports.TrialBalance) -> Table:
    table = Table(
        _("Trial balance"),
        _("At %(date)s", date=format_date(report.as_of)),
        ascii_name(_("trial balance"), report.as_of.isoformat()),
        [_("Code"), _("Account"), _("Debit"), _("Credit"), _("Balance")],
        {2, 3, 4},
    )
    for row in report.rows:
        table.rows.append(Row([*_account_cells(row.account), row.debit, row.credit, row.balance], account=row.account))
    totals = [_("Total"), "", report.total_debit, report.total_credit, report.total_debit - report.total_credit]
    table.rows.append(Row(totals, "total"))
    return table


def general_ledger_table(report: reports.GeneralLedger) -> Table:
    account = report.account
    table = Table(
        _("General ledger: %(account)s", account=f"{account.code} {account.name()}"),
        _("From %(start)s to %(end)s", start=format_date(report.date_from), end=format_date(report.date_to)),
        ascii_name(_("general ledger"), account.code, report.date_from.isoformat(), report.date_to.isoformat()),
        [_("Date"), _("Entry"), _("Reference"), _("Description"), _("Partner"), _("Debit"), _("Credit"), _("Balance")],
        {5, 6, 7},
    )
    table.rows.append(Row([report.date_from, "", "", _("Opening balance"), "", None, None, report.opening], "total"))
    for row in report.rows:
        line = row.line
        partner = line.partner.name if line.partner else ""
        cells = [row.entry.date, row.entry.number, row.entry.reference, line.label, partner]
        table.rows.append(Row([*cells, line.debit, line.credit, row.balance]))
    closing = [report.date_to, "", "", _("Closing balance"), "", report.total_debit, report.total_credit]
    table.rows.append(Row([*closing, report.closing], "total"))
    return table


SECTION_TITLES = {
    "asset": lambda: _("Assets"),
    "liability": lambda: _("Liabilities"),
    "equity": lambda: _("Equity"),
    "income": lambda: _("Income"),
    "expense": lambda: _("Expenses"),
}


def _section_rows(section: reports.Section) -> list[Row]:
    title = SECTION_TITLES[section.type]()
    rows = [Row(["", title, None], "heading")]
    rows += [Row([*_account_cells(row.account), row.amount], account=row.account) for row in section.rows]
    rows.append(Row(["", _("Total %(section)s", section=title.lower()), section.total], "total"))
    return rows


def balance_sheet_table(report: reports.BalanceSheet) -> Table:
    table = Table(
        _("Balance sheet"),
        _("At %(date)s", date=format_date(report.as_of)),
        ascii_name(_("balance sheet"), report.as_of.isoformat()),
        [_("Code"), _("Account"), _("Amount")],
        {2},
    )
    table.rows += _section_rows(report.assets)
    table.rows += _section_rows(report.liabilities)
    table.rows += _section_rows(report.equity)
    table.rows.append(Row(["", _("Result not yet carried to equity"), report.result]))
    table.rows.append(Row(["", _("Total assets"), report.total_assets], "total"))
    total = report.total_liabilities_and_equity
    table.rows.append(Row(["", _("Total liabilities, equity and result"), total], "total"))
    return table


def income_statement_table(report: reports.IncomeStatement) -> Table:
    table = Table(
        _("Income statement"),
        _("From %(start)s to %(end)s", start=format_date(report.date_from), end=format_date(report.date_to)),
        ascii_name(_("income statement"), report.date_from.isoformat(), report.date_to.isoformat()),
        [_("Code"), _("Account"), _("Amount")],
        {2},
    )
    table.rows += _section_rows(report.income)
    table.rows += _section_rows(report.expenses)
    label = _("Profit") if report.result >= 0 else _("Loss")
    table.rows.append(Row(["", label, report.result], "total"))
    return table


# VAT registers


def register_title(register: vat.Register) -> str:
    return _("Sales VAT register") if register.kind == "sales" else _("Purchases VAT register")


def register_name(register: vat.Register, extension: str) -> str:
    """`registro_IVA_vendite_2026-11.pdf` in the user's language, ASCII only."""
    return f"{ascii_name(register_title(register), register.start.strftime('%Y-%m'))}.{extension}"


def register_headers(kind: str) -> list[str]:
    if kind == "sales":
        return [
            _("Number"),
            _("Date"),
            _("Document"),
            _("Customer"),
            _("VAT no."),
            _("Split payment"),
            _("VAT rate"),
            _("Taxable amount"),
            _("VAT"),
            _("Total"),
        ]
    return [
        _("Protocol"),
        _("Registered on"),
        _("Supplier"),
        _("VAT no."),
        _("Bill number"),
        _("Bill date"),
        _("VAT rate"),
        _("Taxable amount"),
        _("VAT"),
        _("Deductible VAT"),
        _("Total"),
    ]


def register_csv(register: vat.Register) -> str:
    """One row per document and VAT rate (the document's figures on each of its rates), then the totals per rate."""
    rows: list[list[Any]] = []
    for row in register.rows:
        if register.kind == "sales":
            document = row.invoice
            customer = document.customer
            head = [
                document.number,
                document.issue_date,
                str(_("Credit note") if document.type == "credit_note" else _("Invoice")),
                customer.name,
                vat_display(customer.vat_number, customer.country),
                _("Yes") if row.split_payment else _("No"),
            ]
            rows += [[*head, line.rate, line.taxable, line.vat, line.taxable + line.vat] for line in row.rates]
        else:
            bill = row.bill
            supplier = bill.partner
            head = [
                f"{bill.protocol}/{bill.registered_on.year}",
                bill.registered_on,
                supplier.name,
                vat_display(supplier.vat_number, supplier.country),
                bill.number,
                bill.date,
            ]
            rows += [
                [*head, line.rate, line.taxable, line.vat, line.deductible, line.taxable + line.vat]
                for line in row.rates
            ]
    blanks = 6
    for line in register.totals:
        totals = [str(_("Total")), *[""] * (blanks - 1), line.rate, line.taxable, line.vat]
        if register.kind == "purchases":
            totals.append(line.deductible)
        rows.append([*totals, line.taxable + line.vat])
    return csv_text(register_headers(register.kind), rows)


def register_pdf(register: vat.Register) -> bytes:
    rows = register.rows
    chunks = [rows[start : start + ROWS_PER_TABLE] for start in range(0, len(rows), ROWS_PER_TABLE)] or [[]]
    return render_pdf(
        "accounting/pdf/vat_register.html",
        register=register,
        title=register_title(register),
        month=format_date(register.start, "LLLL yyyy"),
        chunks=chunks,
        money=money,
        rate=rate_text,
        date=lambda value: format_date(value, "short") if value else "",
    )


def settlement_table(figures: vat.SettlementFigures) -> Table:
    """The settlement's computation, line by line."""
    table = Table(
        _("VAT settlement %(period)s", period=vat.period_label(figures.period_start, figures.period_end)),
        _("From %(start)s to %(end)s", start=format_date(figures.period_start), end=format_date(figures.period_end)),
        ascii_name(_("VAT settlement"), figures.period_start.isoformat(), figures.period_end.isoformat()),
        [_("Item"), _("Amount")],
        {1},
    )
    table.rows += [
        Row([_("VAT on sales (split payment excluded)"), figures.sales_vat]),
        Row([_("VAT on split payment sales (paid by the customers)"), figures.split_payment_vat]),
        Row([_("Deductible VAT on purchases"), -figures.purchases_vat]),
        Row([_("Credit carried from the previous period"), -figures.previous_credit]),
        Row([_("Interest (1 percent, quarterly)"), figures.interest]),
        Row([_("VAT due") if figures.balance >= 0 else _("VAT credit carried forward"), figures.balance], "total"),
    ]
    return table
