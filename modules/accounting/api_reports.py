"""/api/v1 accounting reports, VAT registers, supplier bills and VAT settlements.

`reports/trial-balance`, `reports/general-ledger`, `reports/balance-sheet`, `reports/income-statement`,
`vat-register` answer JSON, or with `format=csv` / `format=pdf` the same figures as a file. `supplier-bills` registers
bills in the purchases journal; `vat-settlements` settles a period. Staff only.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import Response
from flask.views import MethodView
from sqlalchemy.orm import selectinload

from core import clock
from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, answering, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.db import db
from core.partners import vat_display
from modules.accounting import bills, exports, ledger, reports, vat
from modules.accounting.admin import EDIT, VIEW
from modules.accounting.exports import download
from modules.accounting.models import Account, Entry, SupplierBill, SupplierBillLine, VatSettlement

reports_blp = ApiBlueprint(
    "accounting_api_reports",
    __name__,
    url_prefix="/reports",
    description="Accounting reports from the posted entries: trial balance, general ledger, balance sheet, "
    "income statement.",
)
vat_register_blp = ApiBlueprint(
    "accounting_api_vat_register",
    __name__,
    url_prefix="/vat-register",
    description="The monthly sales and purchases VAT registers.",
)
bills_blp = ApiBlueprint(
    "accounting_api_supplier_bills",
    __name__,
    url_prefix="/supplier-bills",
    description="Supplier bills, registered in the purchases journal.",
)
settlements_blp = ApiBlueprint(
    "accounting_api_vat_settlements",
    __name__,
    url_prefix="/vat-settlements",
    description="Periodic VAT settlements (liquidazione IVA), monthly or quarterly.",
)
BLUEPRINTS = [reports_blp, vat_register_blp, bills_blp, settlements_blp]

FORMATS = ("json", "csv", "pdf")
FILE_CONTENT = {
    "responses": {
        200: {
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
            }
        }
    }
}
FORMAT_FIELD = String(
    validate=ma.validate.OneOf(FORMATS),
    metadata={"description": "json (default), csv (UTF-8 with BOM, headers in the caller's language) or pdf."},
)
MONTH = ma.validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$")


def _file(args: dict[str, Any], table_of) -> Response | None:
    """The report as the file `format` asks for (None: answer JSON); `table_of()` builds its exports.Table."""
    kind = args.get("format") or "json"
    if kind == "json":
        return None
    table = table_of()
    if kind == "csv":
        content, mimetype = exports.table_csv(table).encode("utf-8"), "text/csv; charset=utf-8"
    else:
        content, mimetype = exports.table_pdf(table), "application/pdf"
    return download(content, mimetype, f"{table.name}.{kind}")


# Reports


class DateArgs(ma.Schema):
    date = ma.fields.Date(metadata={"description": "Entries up to this day, inclusive; default today."})
    format = FORMAT_FIELD


class LedgerArgs(ma.Schema):
    account = String(required=True, validate=ma.validate.Length(min=1, max=10), metadata={"description": "Its code."})
    from_ = ma.fields.Date(data_key="from", metadata={"description": "Default: the first of January of `to`'s year."})
    to = ma.fields.Date(metadata={"description": "Default: today."})
    format = FORMAT_FIELD


class IncomeArgs(DateArgs):
    from_ = ma.fields.Date(data_key="from", metadata={"description": "Default: the first of January of `date`'s year."})


class AccountRefSchema(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String(metadata={"description": "In the caller's language."})
    type = ma.fields.String()


class AccountRowSchema(AccountRefSchema):
    debit = DecimalString()
    credit = DecimalString()
    balance = DecimalString(metadata={"description": "Debit minus credit."})


class TrialBalanceSchema(ma.Schema):
    date = ma.fields.Date()
    rows = ma.fields.List(ma.fields.Nested(AccountRowSchema))
    total_debit = DecimalString()
    total_credit = DecimalString()
    balanced = ma.fields.Boolean()


def _account_row(row: reports.AccountRow) -> dict[str, Any]:
    account = row.account
    return {
        "code": account.code,
        "name": account.name(),
        "type": account.type,
        "debit": row.debit,
        "credit": row.credit,
        "balance": row.balance,
        "amount": row.amount,
    }


@reports_blp.route("/trial-balance")
class TrialBalance(MethodView):
    @require(VIEW)
    @reports_blp.arguments(DateArgs, location="query")
    @reports_blp.response(200, TrialBalanceSchema)
    @reports_blp.doc(**FILE_CONTENT)
    @reports_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, args: dict[str, Any]):
        """Trial balance at a date

        Every account with entries up to `date`: its debits, credits and balance; the totals are equal.
        """
        report = reports.trial_balance(args.get("date"))
        download = _file(args, lambda: exports.trial_balance_table(report))
        if download is not None:
            return download
        return {
            "date": report.as_of,
            "rows": [_account_row(row) for row in report.rows],
            "total_debit": report.total_debit,
            "total_credit": report.total_credit,
            "balanced": report.balanced,
        }


class LedgerRowSchema(ma.Schema):
    date = ma.fields.Date()
    entry_id = Integer()
    entry_number = ma.fields.String()
    journal = ma.fields.String(metadata={"description": "The journal's code."})
    reference = ma.fields.String(metadata={"description": "The document the entry comes from."})
    label = ma.fields.String()
    partner_id = Integer(allow_none=True)
    partner_name = ma.fields.String(allow_none=True)
    invoice_id = Integer(allow_none=True)
    bill_id = Integer(allow_none=True)
    debit = DecimalString()
    credit = DecimalString()
    balance = DecimalString(metadata={"description": "Running balance after this line, debit minus credit."})


class GeneralLedgerSchema(ma.Schema):
    account = ma.fields.Nested(AccountRefSchema)
    from_ = ma.fields.Date(data_key="from")
    to = ma.fields.Date()
    opening_balance = DecimalString()
    rows = ma.fields.List(ma.fields.Nested(LedgerRowSchema))
    total_debit = DecimalString()
    total_credit = DecimalString()
    closing_balance = DecimalString()


def _account_ref(account: Account) -> dict[str, Any]:
    return {"code": account.code, "name": account.name(), "type": account.type}


@reports_blp.route("/general-ledger")
class GeneralLedger(MethodView):
    @require(VIEW)
    @reports_blp.arguments(LedgerArgs, location="query")
    @reports_blp.response(200, GeneralLedgerSchema)
    @reports_blp.doc(**FILE_CONTENT)
    @reports_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, args: dict[str, Any]):
        """General ledger of an account

        The account's lines from `from` to `to` in date and entry order, with the opening balance and the running
        balance (debit minus credit). An unknown account code, or `from` after `to`, is a 422.
        """
        with answering():
            account = ledger.get_account(args["account"])
            report = reports.general_ledger(account, args.get("from_"), args.get("to"))
        download = _file(args, lambda: exports.general_ledger_table(report))
        if download is not None:
            return download
        return {
            "account": _account_ref(account),
            "from_": report.date_from,
            "to": report.date_to,
            "opening_balance": report.opening,
            "rows": [
                {
                    "date": row.entry.date,
                    "entry_id": row.entry.id,
                    "entry_number": row.entry.number,
                    "journal": row.entry.journal.code,
                    "reference": row.entry.reference,
                    "label": row.line.label,
                    "partner_id": row.line.partner_id,
                    "partner_name": row.line.partner.name if row.line.partner else None,
                    "invoice_id": row.line.invoice_id,
                    "bill_id": row.line.bill_id,
                    "debit": row.line.debit,
                    "credit": row.line.credit,
                    "balance": row.balance,
                }
                for row in report.rows
            ],
            "total_debit": report.total_debit,
            "total_credit": report.total_credit,
            "closing_balance": report.closing,
        }


class SectionRowSchema(AccountRefSchema):
    amount = DecimalString(metadata={"description": "The balance on the account's own side."})


class SectionSchema(ma.Schema):
    rows = ma.fields.List(ma.fields.Nested(SectionRowSchema))
    total = DecimalString()


def _section(section: reports.Section) -> dict[str, Any]:
    return {"rows": [_account_row(row) for row in section.rows], "total": section.total}


class BalanceSheetSchema(ma.Schema):
    date = ma.fields.Date()
    assets = ma.fields.Nested(SectionSchema)
    liabilities = ma.fields.Nested(SectionSchema)
    equity = ma.fields.Nested(SectionSchema)
    result = DecimalString(metadata={"description": "Income minus expenses not yet carried to equity."})
    total_assets = DecimalString()
    total_liabilities_and_equity = DecimalString(metadata={"description": "Liabilities, equity and the result."})
    balanced = ma.fields.Boolean()


@reports_blp.route("/balance-sheet")
class BalanceSheet(MethodView):
    @require(VIEW)
    @reports_blp.arguments(DateArgs, location="query")
    @reports_blp.response(200, BalanceSheetSchema)
    @reports_blp.doc(**FILE_CONTENT)
    @reports_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, args: dict[str, Any]):
        """Balance sheet at a date

        Assets, liabilities and equity from the entries up to `date`, with the result (income minus expenses) not
        yet carried to equity: total assets equal liabilities, equity and result.
        """
        report = reports.balance_sheet(args.get("date"))
        download = _file(args, lambda: exports.balance_sheet_table(report))
        if download is not None:
            return download
        return {
            "date": report.as_of,
            "assets": _section(report.assets),
            "liabilities": _section(report.liabilities),
            "equity": _section(report.equity),
            "result": report.result,
            "total_assets": report.total_assets,
            "total_liabilities_and_equity": report.total_liabilities_and_equity,
            "balanced": report.balanced,
        }


class IncomeStatementSchema(ma.Schema):
    from_ = ma.fields.Date(data_key="from")
    to = ma.fields.Date()
    income = ma.fields.Nested(SectionSchema)
    expenses = ma.fields.Nested(SectionSchema)
    result = DecimalString(metadata={"description": "Profit (positive) or loss (negative)."})


@reports_blp.route("/income-statement")
class IncomeStatement(MethodView):
    @require(VIEW)
    @reports_blp.arguments(IncomeArgs, location="query")
    @reports_blp.response(200, IncomeStatementSchema)
    @reports_blp.doc(**FILE_CONTENT)
    @reports_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, args: dict[str, Any]):
        """Income statement

        Income and expenses from `from` (default the first of January of `date`'s year) to `date` (default today)
        and the result. `from` after `date` is a 422.
        """
        with answering():
            report = reports.income_statement(args.get("date"), args.get("from_"))
        download = _file(args, lambda: exports.income_statement_table(report))
        if download is not None:
            return download
        return {
            "from_": report.date_from,
            "to": report.date_to,
            "income": _section(report.income),
            "expenses": _section(report.expenses),
            "result": report.result,
        }


# VAT registers


class RegisterArgs(ma.Schema):
    month = String(required=True, validate=MONTH, metadata={"description": "YYYY-MM, e.g. 2026-11."})
    kind = String(load_default="sales", validate=ma.validate.OneOf(vat.REGISTER_KINDS))
    format = FORMAT_FIELD


class RateSchema(ma.Schema):
    rate = DecimalString()
    taxable = DecimalString()
    vat = DecimalString()
    deductible = DecimalString(metadata={"description": "Purchases: the deductible part of the VAT."})


class RegisterRowSchema(ma.Schema):
    invoice_id = Integer(metadata={"description": "Sales: the invoice or credit note."})
    bill_id = Integer(metadata={"description": "Purchases: the supplier bill."})
    protocol = ma.fields.String(metadata={"description": "Purchases: the protocol number, e.g. 12/2026."})
    registered_on = ma.fields.Date(metadata={"description": "Purchases: the registration date."})
    number = ma.fields.String(metadata={"description": "The document's number."})
    type = ma.fields.String(metadata={"description": "Sales: invoice or credit_note."})
    date = ma.fields.Date()
    partner_id = Integer()
    partner_name = ma.fields.String()
    vat_number = ma.fields.String()
    split_payment = ma.fields.Boolean(metadata={"description": "Sales: VAT paid by the customer to the State."})
    rates = ma.fields.List(ma.fields.Nested(RateSchema), metadata={"description": "Credit notes negative."})
    taxable = DecimalString()
    vat = DecimalString()
    total = DecimalString()


class RegisterSchema(ma.Schema):
    kind = ma.fields.String()
    month = ma.fields.String()
    start = ma.fields.Date()
    end = ma.fields.Date()
    rows = ma.fields.List(ma.fields.Nested(RegisterRowSchema))
    totals = ma.fields.List(ma.fields.Nested(RateSchema), metadata={"description": "Per VAT rate."})
    taxable = DecimalString()
    vat = DecimalString()
    total = DecimalString()
    split_payment_vat = DecimalString(metadata={"description": "Sales: the VAT of split payment documents."})
    deductible = DecimalString(metadata={"description": "Purchases: the VAT deducted."})


def _rates(lines: list[vat.RateLine], purchases: bool) -> list[dict[str, Any]]:
    fields = ("rate", "taxable", "vat", "deductible") if purchases else ("rate", "taxable", "vat")
    return [{name: getattr(line, name) for name in fields} for line in lines]


def _register_row(row: Any) -> dict[str, Any]:
    if isinstance(row, vat.SalesRow):
        document, partner = row.invoice, row.invoice.customer
        head = {
            "invoice_id": document.id,
            "number": document.number,
            "type": document.type,
            "date": document.issue_date,
            "split_payment": row.split_payment,
        }
    else:
        document, partner = row.bill, row.bill.partner
        head = {
            "bill_id": document.id,
            "protocol": f"{document.protocol}/{document.registered_on.year}",
            "registered_on": document.registered_on,
            "number": document.number,
            "date": document.date,
        }
    return {
        **head,
        "partner_id": partner.id,
        "partner_name": partner.name,
        "vat_number": vat_display(partner.vat_number, partner.country),
        "rates": _rates(row.rates, isinstance(row, vat.PurchasesRow)),
        "taxable": row.taxable,
        "vat": row.vat,
        "total": row.total,
    }


@vat_register_blp.route("")
class VatRegister(MethodView):
    @require(VIEW)
    @vat_register_blp.arguments(RegisterArgs, location="query")
    @vat_register_blp.response(200, RegisterSchema)
    @vat_register_blp.doc(**FILE_CONTENT)
    @vat_register_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, args: dict[str, Any]):
        """A month's VAT register

        `kind=sales` (default): every posted invoice and credit note issued in the month with its VAT per rate
        (credit notes negative); its totals equal the sum of the documents' VAT summaries. `kind=purchases`: the
        supplier bills registered in the month, in protocol order, with the deductible VAT.
        """
        with answering():
            register = vat.register(args["kind"], vat.parse_month(args["month"]))
        kind = args.get("format") or "json"
        if kind == "csv":
            content = exports.register_csv(register).encode("utf-8")
            return download(content, "text/csv; charset=utf-8", exports.register_name(register, "csv"))
        if kind == "pdf":
            return download(exports.register_pdf(register), "application/pdf", exports.register_name(register, "pdf"))
        purchases = register.kind == "purchases"
        return {
            "kind": register.kind,
            "month": register.start.strftime("%Y-%m"),
            "start": register.start,
            "end": register.end,
            "rows": [_register_row(row) for row in register.rows],
            "totals": _rates(register.totals, purchases),
            "taxable": register.taxable,
            "vat": register.vat,
            "total": register.total,
            **({"deductible": register.deductible} if purchases else {"split_payment_vat": register.split_payment_vat}),
        }


# Supplier bills


class BillLineSchema(ma.Schema):
    id = Integer(dump_only=True)
    description = String(required=True, validate=ma.validate.Length(min=1, max=200))
    account = String(
        required=True, validate=ma.validate.Length(min=1, max=10), metadata={"description": "A cost account's code."}
    )
    net = DecimalString(required=True)
    vat_rate = DecimalString(required=True, metadata={"description": "Percent, e.g. 22."})
    vat = DecimalString(metadata={"description": "The supplier's VAT for the line; default net x rate, rounded."})
    deductible = Boolean(load_default=True, metadata={"description": "False: the VAT is a cost (default true)."})


class BillSchema(ma.Schema):
    id = Integer(dump_only=True)
    partner_id = id_field(required=True, metadata={"description": "The supplier."})
    partner_name = ma.fields.String(dump_only=True)
    number = String(required=True, validate=ma.validate.Length(min=1, max=40))
    date = ma.fields.Date(required=True, metadata={"description": "The bill's own date."})
    registered_on = ma.fields.Date(metadata={"description": "Default today; the purchases journal's date."})
    due_date = ma.fields.Date(allow_none=True)
    protocol = ma.fields.String(dump_only=True, metadata={"description": "Purchases register number, e.g. 12/2026."})
    lines = ma.fields.List(ma.fields.Nested(BillLineSchema), required=True, validate=ma.validate.Length(min=1, max=200))
    net_total = DecimalString(dump_only=True)
    vat_total = DecimalString(dump_only=True)
    total = DecimalString(dump_only=True)
    entry_id = Integer(dump_only=True, allow_none=True)
    entry_number = ma.fields.String(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)


class BillListArgs(PageArgs):
    partner_id = id_field(metadata={"description": "Only this supplier's bills."})
    from_ = ma.fields.Date(data_key="from", metadata={"description": "Registered on or after."})
    to = ma.fields.Date(metadata={"description": "Registered on or before."})


def _dump_bill(bill: SupplierBill) -> dict[str, Any]:
    return {
        "id": bill.id,
        "partner_id": bill.partner_id,
        "partner_name": bill.partner.name,
        "number": bill.number,
        "date": bill.date,
        "registered_on": bill.registered_on,
        "due_date": bill.due_date,
        "protocol": f"{bill.protocol}/{bill.registered_on.year}",
        "lines": [
            {
                "id": line.id,
                "description": line.description,
                "account": line.account.code,
                "net": line.net,
                "vat_rate": line.vat_rate,
                "vat": line.vat,
                "deductible": line.deductible,
            }
            for line in bill.lines
        ],
        "net_total": bill.net_total,
        "vat_total": bill.vat_total,
        "total": bill.total,
        "entry_id": bill.entry_id,
        "entry_number": bill.entry.number if bill.entry else None,
        "created_at": bill.created_at,
    }


def _bill_query() -> sa.Select:
    return sa.select(SupplierBill).options(
        selectinload(SupplierBill.partner),
        selectinload(SupplierBill.entry),
        selectinload(SupplierBill.lines).selectinload(SupplierBillLine.account),
    )


@bills_blp.route("")
class SupplierBills(MethodView):
    @require(VIEW)
    @bills_blp.arguments(BillListArgs, location="query")
    @bills_blp.response(200, page_schema(BillSchema))
    def get(self, args: dict[str, Any]):
        """List supplier bills

        Newest registration first.
        """
        query = _bill_query()
        if "partner_id" in args:
            query = query.where(SupplierBill.partner_id == args["partner_id"])
        if "from_" in args:
            query = query.where(SupplierBill.registered_on >= args["from_"])
        if "to" in args:
            query = query.where(SupplierBill.registered_on <= args["to"])
        page = paginate(query.order_by(SupplierBill.registered_on.desc(), SupplierBill.id.desc()), args)
        return {**page, "items": [_dump_bill(bill) for bill in page["items"]]}

    @require(EDIT)
    @bills_blp.arguments(BillSchema)
    @bills_blp.response(201, BillSchema)
    @bills_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, data: dict[str, Any]):
        """Register a supplier bill

        Its protocol number is the next of the registration year's; its entry in the purchases journal debits each
        line's cost account (with the VAT when it is not deductible) and VAT receivable, and credits the supplier's
        payable with the due date. The same supplier's number twice in a year, a partner that is not a supplier, a
        cost account that takes no entries, a registration before the bill's date or in a closed period: 422 naming
        the field, nothing written.
        """
        with committing():
            bill = bills.create_bill(
                data["partner_id"],
                data["number"],
                data["date"],
                data["lines"],
                registered_on=data.get("registered_on"),
                due_date=data.get("due_date"),
                user_id=api_user().id,
            )
        return _dump_bill(get_or_404(_bill_query().where(SupplierBill.id == bill.id)))


@bills_blp.route(f"/<{ID_PATH}:bill_id>")
class SupplierBillResource(MethodView):
    @require(VIEW)
    @bills_blp.response(200, BillSchema)
    @bills_blp.alt_response(404, response="NOT_FOUND")
    def get(self, bill_id: int):
        """Read a supplier bill"""
        return _dump_bill(get_or_404(_bill_query().where(SupplierBill.id == bill_id)))


# VAT settlements


class SettlementSchema(ma.Schema):
    id = Integer(allow_none=True, metadata={"description": "Null in a preview."})
    period_start = ma.fields.Date()
    period_end = ma.fields.Date()
    sales_vat = DecimalString(metadata={"description": "VAT on sales, split payment excluded."})
    purchases_vat = DecimalString(metadata={"description": "Deductible VAT on purchases."})
    previous_credit = DecimalString(metadata={"description": "The credit carried from the previous settlement."})
    interest = DecimalString(metadata={"description": "Quarterly: 1 percent of a balance due."})
    balance = DecimalString(metadata={"description": "Positive: due; negative: a credit carried forward."})
    entry_id = Integer(allow_none=True)
    entry_number = ma.fields.String(allow_none=True)
    created_at = UtcDateTime(allow_none=True)


class SettlementCreateSchema(ma.Schema):
    date = ma.fields.Date(required=True, metadata={"description": "Any day of the period (month or quarter)."})


class SettlementPreviewArgs(ma.Schema):
    date = ma.fields.Date(metadata={"description": "Any day of the period; default today."})


def _entry_numbers(settlements: list[VatSettlement]) -> dict[int, str]:
    ids = [item.entry_id for item in settlements if item.entry_id]
    if not ids:
        return {}
    return dict(db.session.execute(sa.select(Entry.id, Entry.number).where(Entry.id.in_(ids))).tuples().all())


def _dump_settlements(settlements: list[VatSettlement]) -> list[dict[str, Any]]:
    fields = ("id", "period_start", "period_end", "sales_vat", "purchases_vat", "previous_credit", "interest")
    numbers = _entry_numbers(settlements)
    return [
        {
            **{name: getattr(settlement, name) for name in fields},
            "balance": settlement.balance,
            "entry_id": settlement.entry_id,
            "entry_number": numbers.get(settlement.entry_id),
            "created_at": settlement.created_at,
        }
        for settlement in settlements
    ]


@settlements_blp.route("")
class VatSettlements(MethodView):
    @require(VIEW)
    @settlements_blp.arguments(PageArgs, location="query")
    @settlements_blp.response(200, page_schema(SettlementSchema))
    def get(self, args: dict[str, Any]):
        """List VAT settlements

        Latest period first.
        """
        page = paginate(sa.select(VatSettlement).order_by(VatSettlement.period_end.desc()), args)
        return {**page, "items": _dump_settlements(page["items"])}

    @require(EDIT)
    @settlements_blp.arguments(SettlementCreateSchema)
    @settlements_blp.response(201, SettlementSchema)
    @settlements_blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def post(self, data: dict[str, Any]):
        """Settle the VAT of a period

        The period (month or quarter, per the dealer's setting) containing `date`: it must be over, not settled,
        and follow the last settlement; otherwise a 422 naming `period`. Its entry closes VAT payable and VAT
        receivable into Erario c/IVA on the period's last day.
        """
        with committing():
            settlement = vat.settle(data["date"], user_id=api_user().id)
        return _dump_settlements([settlement])[0]


@settlements_blp.route("/preview")
class VatSettlementPreview(MethodView):
    @require(VIEW)
    @settlements_blp.arguments(SettlementPreviewArgs, location="query")
    @settlements_blp.response(200, SettlementSchema)
    def get(self, args: dict[str, Any]):
        """The figures of a period's settlement as the books stand, without settling it"""
        figures = vat.settlement_figures(args.get("date") or clock.today())
        return {
            "id": None,
            "period_start": figures.period_start,
            "period_end": figures.period_end,
            "sales_vat": figures.sales_vat,
            "purchases_vat": figures.purchases_vat,
            "previous_credit": figures.previous_credit,
            "interest": figures.interest,
            "balance": figures.balance,
            "entry_id": None,
            "entry_number": None,
            "created_at": None,
        }
