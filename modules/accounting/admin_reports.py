"""Accounting back office, the books: trial balance, general ledger, balance sheet, income statement, the VAT
registers by month, the VAT settlement, supplier bills (list, register with lines, read). Every report page has its
CSV and PDF download, made from the same figures (exports.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import Response, abort, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core import clock, labels
from core.admin import SecuredView
from core.context import ModuleContext
from core.db import contains, db
from core.models import Partner
from core.validation import Checker, ValidationError
from modules.accounting import bills, exports, ledger, reports, vat
from modules.accounting.accounts import postable_accounts
from modules.accounting.admin import VIEW, can_edit, form_int
from modules.accounting.exports import download
from modules.accounting.models import Entry, SupplierBill, SupplierBillLine, VatSettlement

PAGE_SIZE = 50
FORM_LINES = 5  # blank line rows of a new bill's form; "more lines" adds as many again


def _table_file(table: exports.Table, extension: str) -> Response:
    if extension == "csv":
        return download(exports.table_csv(table).encode("utf-8"), "text/csv; charset=utf-8", f"{table.name}.csv")
    return download(exports.table_pdf(table), "application/pdf", f"{table.name}.pdf")


def _dates(*names: str) -> tuple[dict[str, dt.date | None], dict[str, str]]:
    """The date arguments of a report page (empty: None), and the errors of those that are not dates."""
    check = Checker()
    values = {name: check.date(name, request.args.get(name), required=False) for name in names}
    return values, check.errors


class ReportView(SecuredView):
    """A report at a date or over a period: its page, and its CSV and PDF."""

    permission = VIEW
    template = "accounting/admin/report.html"
    date_names: tuple[str, ...] = ("date",)

    def table(self, values: dict[str, Any]) -> exports.Table:
        raise NotImplementedError

    def _render(self) -> tuple[exports.Table | None, dict[str, str]]:
        values, errors = _dates(*self.date_names)
        if errors:
            return None, errors
        try:
            return self.table(values), {}
        except ValidationError as error:
            return None, error.errors

    @expose("/")
    def index(self):
        table, errors = self._render()
        query = {name: request.args.get(name, "") for name in (*self.date_names, "account") if request.args.get(name)}
        page = self.render(
            self.template,
            table=table,
            errors=errors,
            args=request.args,
            date_names=self.date_names,
            today=clock.today(),
            exports={extension: url_for(".export", extension=extension, **query) for extension in ("csv", "pdf")},
            **self.extra(),
        )
        return (page, 422) if errors else page

    def extra(self) -> dict[str, Any]:
        return {}

    @expose("/export.<any(csv, pdf):extension>")
    def export(self, extension: str):
        table, errors = self._render()
        if table is None:
            return Response(
                "; ".join(f"{name}: {message}" for name, message in errors.items()), 422, mimetype="text/plain"
            )
        return _table_file(table, extension)


class TrialBalanceView(ReportView):
    def table(self, values: dict[str, Any]) -> exports.Table:
        return exports.trial_balance_table(reports.trial_balance(values["date"]))


class BalanceSheetView(ReportView):
    def table(self, values: dict[str, Any]) -> exports.Table:
        return exports.balance_sheet_table(reports.balance_sheet(values["date"]))


class IncomeStatementView(ReportView):
    date_names = ("from", "date")

    def table(self, values: dict[str, Any]) -> exports.Table:
        return exports.income_statement_table(reports.income_statement(values["date"], values["from"]))


class GeneralLedgerView(ReportView):
    """One account's lines over a period, with its running balance; every line links to its entry."""

    template = "accounting/admin/general_ledger.html"
    date_names = ("from", "to")

    def _ledger(self, values: dict[str, Any]) -> reports.GeneralLedger:
        account = ledger.get_account(request.args.get("account"))
        return reports.general_ledger(account, values["from"], values["to"])

    def table(self, values: dict[str, Any]) -> exports.Table:
        return exports.general_ledger_table(self._ledger(values))

    @expose("/")
    def index(self):
        values, errors = _dates(*self.date_names)
        ledger = None
        if not errors and request.args.get("account"):
            try:
                ledger = self._ledger(values)
            except ValidationError as error:
                errors = error.errors
        query = {name: request.args[name] for name in ("account", "from", "to") if request.args.get(name)}
        page = self.render(
            self.template,
            ledger=ledger,
            errors=errors,
            args=request.args,
            accounts=postable_accounts(in_use=False),
            exports={extension: url_for(".export", extension=extension, **query) for extension in ("csv", "pdf")},
        )
        return (page, 422) if errors else page


class VatRegisterView(SecuredView):
    """The sales or purchases register of a month, each document linked to its page; CSV and PDF."""

    permission = VIEW

    def _register(self) -> vat.Register:
        default = (clock.today().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
        month = vat.parse_month(request.args.get("month") or default)
        return vat.register(request.args.get("kind") or "sales", month)

    @expose("/")
    def index(self):
        try:
            register = self._register()
        except ValidationError as error:
            page = self.render(
                "accounting/admin/vat_register.html", register=None, errors=error.errors, args=request.args
            )
            return page, 422
        query = {"month": register.start.strftime("%Y-%m"), "kind": register.kind}
        return self.render(
            "accounting/admin/vat_register.html",
            register=register,
            errors={},
            args=request.args,
            month=register.start.strftime("%Y-%m"),
            title=exports.register_title(register),
            exports={extension: url_for(".export", extension=extension, **query) for extension in ("csv", "pdf")},
        )

    @expose("/export.<any(csv, pdf):extension>")
    def export(self, extension: str):
        try:
            register = self._register()
        except ValidationError as error:
            return Response(error.messages(), 422, mimetype="text/plain")
        if extension == "csv":
            content = exports.register_csv(register).encode("utf-8")
            return download(content, "text/csv; charset=utf-8", exports.register_name(register, "csv"))
        return download(exports.register_pdf(register), "application/pdf", exports.register_name(register, "pdf"))


class VatSettlementView(SecuredView):
    """The settlements made, and the next one's figures as the books stand, with the button that settles it."""

    permission = VIEW

    def _day(self) -> dt.date:
        check = Checker()
        day = check.date("date", request.values.get("date"), required=False)
        if day is not None:
            return day
        start, _end = vat.period_bounds(clock.today())
        return start - dt.timedelta(days=1)  # the last period that is over

    @expose("/")
    def index(self):
        settlements = db.session.scalars(sa.select(VatSettlement).order_by(VatSettlement.period_end.desc())).all()
        entry_ids = [item.entry_id for item in settlements if item.entry_id]
        entries = {entry.id: entry for entry in db.session.scalars(sa.select(Entry).where(Entry.id.in_(entry_ids)))}
        figures = vat.settlement_figures(self._day())
        settled = any(item.period_end == figures.period_end for item in settlements)
        return self.render(
            "accounting/admin/vat_settlement.html",
            settlements=settlements,
            entries=entries,
            figures=figures,
            table=exports.settlement_table(figures),
            settled=settled,
            periodicity=vat.periodicity(),
            can_settle=can_edit() and not settled and figures.period_end < clock.today(),
            period=vat.period_label(figures.period_start, figures.period_end),
        )

    @expose("/settle", methods=["POST"])
    def settle(self):
        if not can_edit():
            abort(403)
        day = self._day()
        self.run_action(
            lambda: vat.settle(day, user_id=current_user.id),
            lambda settlement: _("VAT settled: %(amount)s", amount=exports.money(settlement.balance)),
            labels={"period": _l("Period")},
        )
        return redirect(url_for(".index", date=day.isoformat()))

    @expose("/export.<any(csv, pdf):extension>")
    def export(self, extension: str):
        return _table_file(exports.settlement_table(vat.settlement_figures(self._day())), extension)


class SupplierBillsView(SecuredView):
    """Supplier bills: the list (search by supplier or number), the form that registers one, a bill's page."""

    permission = VIEW

    @expose("/")
    def index(self):
        query = (
            sa.select(SupplierBill)
            .options(selectinload(SupplierBill.partner), selectinload(SupplierBill.entry))
            .order_by(SupplierBill.registered_on.desc(), SupplierBill.id.desc())
        )
        search = request.args.get("q", "").strip()
        if search:
            query = query.join(SupplierBill.partner).where(
                sa.or_(contains(Partner.name, search), contains(SupplierBill.number, search))
            )
        page = db.paginate(query, per_page=PAGE_SIZE, error_out=False)
        return self.render("accounting/admin/bills.html", page=page, search=search, can_edit=can_edit())

    @expose("/<int:bill_id>")
    def details(self, bill_id: int):
        bill = db.session.scalar(
            sa.select(SupplierBill)
            .where(SupplierBill.id == bill_id)
            .options(
                selectinload(SupplierBill.partner),
                selectinload(SupplierBill.lines).selectinload(SupplierBillLine.account),
                selectinload(SupplierBill.entry).selectinload(Entry.lines),
            )
        )
        if bill is None:
            abort(404)
        return self.render("accounting/admin/bill.html", bill=bill, rates=vat.bill_rates(bill))

    @expose("/new", methods=["GET", "POST"])
    def create(self):
        if not can_edit():
            abort(403)
        form = request.form
        count = max(FORM_LINES, form_int(form.get("line_count"), FORM_LINES))
        errors: dict[str, str] = {}
        if request.method == "POST" and form.get("more"):
            count += FORM_LINES
        elif request.method == "POST":
            lines = _form_lines(form, count)
            try:
                bill = bills.create_bill(
                    form.get("partner_id"),
                    form.get("number"),
                    form.get("date"),
                    [line for _position, line in lines],
                    registered_on=form.get("registered_on") or None,
                    due_date=form.get("due_date") or None,
                    user_id=current_user.id,
                )
            except ValidationError as error:
                db.session.rollback()
                errors = _form_errors(error.errors, [position for position, _line in lines])
            else:
                db.session.commit()
                return redirect(url_for(".details", bill_id=bill.id))
        suppliers = db.session.scalars(
            sa.select(Partner).where(Partner.is_supplier.is_(True), Partner.active.is_(True)).order_by(Partner.name)
        ).all()
        accounts = postable_accounts(*bills.EXPENSE_TYPES)
        page = self.render(
            "accounting/admin/bill_form.html",
            form=form,
            errors=errors,
            count=count,
            suppliers=suppliers,
            accounts=accounts,
            today=clock.today(),
        )
        return (page, 422) if errors else page


def _form_lines(form: Any, count: int) -> list[tuple[int, dict[str, Any]]]:
    """The form's filled line rows as (row position, line): a row with neither description nor net is left out (its
    rate comes filled in)."""
    lines = []
    for position in range(count):
        values = {
            name: form.get(f"lines-{position}-{name}", "").strip()
            for name in ("description", "account", "net", "vat_rate", "vat")
        }
        if not (values["description"] or values["net"]):
            continue
        values["deductible"] = form.get(f"lines-{position}-deductible") == "y"
        if not values["vat"]:
            values.pop("vat")
        lines.append((position, values))
    return lines


def _form_errors(errors: dict[str, str], positions: list[int]) -> dict[str, str]:
    """The service's `lines.<n>.<field>` (n among the filled rows) as the form's `lines-<row>-<field>`."""
    shown = {}
    for name, message in errors.items():
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "lines" and parts[1].isdigit() and int(parts[1]) < len(positions):
            name = f"lines-{positions[int(parts[1])]}-{parts[2]}"
        shown[name] = message
    return shown


def register(ctx: ModuleContext) -> None:
    """The books' pages, in the order a month's close goes through them; bills and settlements named by link."""
    labels.register_record(
        ctx.app,
        SupplierBill,
        lambda bill: f"{bill.number} · {bill.partner.name}",
        url=lambda bill: url_for("accounting_supplier_bills.details", bill_id=bill.id),
        needs=("partner",),
    )
    labels.register_record(
        ctx.app,
        VatSettlement,
        lambda item: _("VAT settlement %(period)s", period=vat.period_label(item.period_start, item.period_end)),
        url=lambda item: url_for("accounting_vat_settlement.index", date=item.period_end.isoformat()),
    )
    add = ctx.add_admin_view
    add(SupplierBillsView(name=_l("Supplier bills"), endpoint="accounting_supplier_bills"))
    add(VatRegisterView(name=_l("VAT registers"), endpoint="accounting_vat_register"))
    add(VatSettlementView(name=_l("VAT settlement"), endpoint="accounting_vat_settlement"))
    add(TrialBalanceView(name=_l("Trial balance"), endpoint="accounting_trial_balance"))
    add(GeneralLedgerView(name=_l("General ledger"), endpoint="accounting_general_ledger"))
    add(BalanceSheetView(name=_l("Balance sheet"), endpoint="accounting_balance_sheet"))
    add(IncomeStatementView(name=_l("Income statement"), endpoint="accounting_income_statement"))
