"""Accounting back office: how accounting's records are named and its codes read, the chart of accounts and the
journals, the settings page; registers every view (entries and the manual entry form: admin_entries.py; the
dashboard card and the customer panel: admin_panels.py; payments, statements, receivables, reports: their
admin_<topic>.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import format_currency
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms.validators import Optional

from core import labels
from core.admin import SecuredModelView, SecuredView, model_view
from core.context import ModuleContext
from core.db import db
from core.permissions import has_permission
from core.validation import Checker, ValidationError
from modules.accounting import accounts, settings
from modules.accounting.models import (
    Account,
    DunningLetter,
    Entry,
    EntryLine,
    Journal,
    Match,
    Payment,
    SepaMandate,
)

# Who keeps the books is who handles the dealer's money: dealer admins and the back office (billing.manage). Every
# accounting page and API route asks these two names, so a separate accountant role changes only them.
VIEW = "billing.manage"
EDIT = "billing.manage"

ACCOUNT_TYPE_LABELS = {
    "asset": _l("Asset"),
    "liability": _l("Liability"),
    "equity": _l("Equity"),
    "income": _l("Income"),
    "expense": _l("Expense"),
}
JOURNAL_KIND_LABELS = {
    "sales": _l("Sales"),
    "purchases": _l("Purchases"),
    "bank": _l("Bank"),
    "cash": _l("Petty cash"),
    "misc": _l("Miscellaneous"),
}
ENTRY_SOURCE_LABELS = {
    "invoice": _l("Invoice or credit note"),
    "payment": _l("Payment"),
    "bill": _l("Supplier bill"),
    "manual": _l("Manual entry"),
    "reversal": _l("Reversal"),
    "settlement": _l("VAT settlement"),
    "sepa_return": _l("Returned direct debit"),
    "opening": _l("Opening balances"),
}
PAYMENT_METHOD_LABELS = {
    "bank_transfer": _l("Bank transfer"),
    "sepa_dd": _l("SEPA direct debit"),
    "riba": _l("RiBa (bank receipt)"),
    "cash": _l("Cash"),
    "card": _l("Card"),
    "cheque": _l("Cheque"),
    "other": _l("Other"),
}
STATEMENT_FORMAT_LABELS = {"csv": _l("CSV export"), "camt053": _l("CAMT.053 (ISO 20022 XML)")}
STATEMENT_LINE_STATE_LABELS = {"open": _l("To confirm"), "matched": _l("Recorded"), "ignored": _l("Ignored")}
PROPOSAL_REASON_LABELS = {
    "invoice_number": _l("Invoice number in the remittance"),
    "amount": _l("Exact open amount of the customer"),
    "none": _l("No proposal"),
}
SEPA_SEQUENCE_LABELS = {"FRST": _l("First collection"), "RCUR": _l("Recurring collection")}
SEPA_ITEM_STATE_LABELS = {"collecting": _l("Being collected"), "collected": _l("Collected"), "returned": _l("Returned")}
VAT_PERIODICITY_LABELS = {"monthly": _l("Monthly"), "quarterly": _l("Quarterly")}
# The invoicing line kinds the modules bill (rentals' fee, metering's overage and minimum, ...), each with its income
# account in the settings; a kind not listed goes to the chart's other income.
LINE_KIND_LABELS = {
    "fee": _l("Rental fees"),
    "overage": _l("Copies over the allowance"),
    "minimum": _l("Minimum charges"),
    "consumable": _l("Consumables shipped"),
    "delivery": _l("Deliveries from stock"),
    "chargeback": _l("Print accounting chargeback"),
}
TABLES = {
    "accounting_account": _l("Account"),
    "accounting_journal": _l("Journal"),
    "accounting_entry": _l("Journal entry"),
    "accounting_entry_line": _l("Journal entry line"),
    "accounting_match": _l("Reconciliation"),
    "accounting_payment": _l("Payment"),
    "accounting_bank_statement": _l("Bank statement"),
    "accounting_statement_line": _l("Bank statement line"),
    "accounting_sepa_mandate": _l("SEPA mandate"),
    "accounting_sepa_batch": _l("SEPA collection"),
    "accounting_sepa_batch_item": _l("Invoice in a SEPA collection"),
    "accounting_supplier_bill": _l("Supplier bill"),
    "accounting_supplier_bill_line": _l("Supplier bill line"),
    "accounting_dunning_letter": _l("Payment reminder"),
    "accounting_vat_settlement": _l("VAT settlement"),
}
JOBS = {"modules.accounting.jobs:send_reminders": _l("Email the payment reminders due today")}
# The enums, by the names every accounting page and template uses (table.column, as inventory's).
ENUMS = {
    "accounting_account.type": ACCOUNT_TYPE_LABELS,
    "accounting_journal.kind": JOURNAL_KIND_LABELS,
    "accounting_entry.source": ENTRY_SOURCE_LABELS,
    "accounting_payment.method": PAYMENT_METHOD_LABELS,
    "accounting_bank_statement.format": STATEMENT_FORMAT_LABELS,
    "accounting_statement_line.state": STATEMENT_LINE_STATE_LABELS,
    "accounting_statement_line.proposal_reason": PROPOSAL_REASON_LABELS,
    "accounting_sepa_batch_item.sequence_type": SEPA_SEQUENCE_LABELS,
    "accounting_sepa_batch_item.state": SEPA_ITEM_STATE_LABELS,
    "accounting.vat_periodicity": VAT_PERIODICITY_LABELS,
    "invoice_line.kind": LINE_KIND_LABELS,
}


def money(value: Decimal | None) -> str:
    """An amount in euro in the user's language (the pages' and the record labels' one formatter)."""
    return "" if value is None else format_currency(value, "EUR")


def can_edit() -> bool:
    """Whether the signed-in user may post and change the books (EDIT), for the pages that are not model views."""
    return has_permission(current_user, EDIT)


def form_int(value: Any, default: int) -> int:
    """A small whole number from a form or query argument (a count of form rows), else `default`."""
    text = str(value or "").strip()
    return int(text) if text.isdigit() and len(text) < 4 else default


def register_labels(app: Any) -> None:
    """How accounting's records are named and its codes read (core/labels.py). Records with a page of their own in
    another admin_<topic>.py (bank statements and their lines, SEPA collections and their items, supplier bills, VAT
    settlements) are registered there, once, with their `url=`."""
    for name, codes in ENUMS.items():
        labels.register_enum(app, name, codes)
    labels.register_enum(app, "audit.table", TABLES)
    labels.register_enum(app, "job.func", JOBS)
    labels.register_record(app, Account, accounts.account_label)
    labels.register_record(app, Journal, lambda journal: journal.name)
    labels.register_record(app, Entry, lambda entry: entry.number)
    labels.register_record(
        app,
        EntryLine,
        lambda line: f"{line.entry.number} · {line.account.code} {line.label}".strip(),
        url=lambda line: url_for("accounting_entry.details_view", id=line.entry_id),
        needs=("entry", "account"),
    )
    labels.register_record(
        app,
        Match,
        lambda match: _("Match of %(amount)s", amount=money(match.amount)),
        url=lambda match: url_for("accounting_entry.details_view", id=match.debit_line.entry_id),
        needs=("debit_line",),
    )
    labels.register_record(
        app,
        Payment,
        lambda payment: " · ".join((labels.local_date(payment.date), money(payment.amount), payment.partner.name)),
        needs=("partner",),
    )
    labels.register_record(app, SepaMandate, lambda mandate: mandate.reference)
    labels.register_record(
        app,
        DunningLetter,
        lambda letter: _(
            "Reminder %(step)d to %(customer)s, %(date)s",
            step=letter.step,
            customer=letter.partner.name,
            date=labels.local_date(letter.sent_on),
        ),
        needs=("partner",),
    )


def register(ctx: ModuleContext) -> None:
    """Labels first (other pages name these records), then the ledger's views, the other topics' views, the settings
    page last in the menu; the dashboard card and the customer panel."""
    from core.extension_points import DASHBOARD, RECORD_PANELS
    from modules.accounting import (
        admin_entries,
        admin_panels,
        admin_payments,
        admin_receivables,
        admin_reports,
        admin_statements,
    )

    register_labels(ctx.app)
    add = ctx.add_admin_view
    add(model_view(admin_entries.EntryView, Entry, _l("Journal entries"), "accounting_entry"))
    add(model_view(AccountView, Account, _l("Chart of accounts"), "accounting_account"))
    add(model_view(JournalView, Journal, _l("Journals"), "accounting_journal"))
    admin_payments.register(ctx)
    admin_statements.register(ctx)
    admin_receivables.register(ctx)
    admin_reports.register(ctx)
    add(SettingsView(name=_l("Accounting settings"), endpoint="accounting_settings"))
    ctx.register(DASHBOARD, admin_panels.AccountingDashboard())
    ctx.register(RECORD_PANELS, admin_panels.AccountingPanels())


def _yes_no(view: Any, value: bool, name: str | None = None) -> str:
    return _("Yes") if value else _("No")


class AccountingView(SecuredModelView):
    """The base of accounting's model views: who may read and edit, yes/no said in words."""

    permission = VIEW
    edit_permission = EDIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.column_type_formatters = {**self.column_type_formatters, bool: _yes_no}
        self.column_type_formatters_detail = {**self.column_type_formatters_detail, bool: _yes_no}


def _groups() -> list[Account]:
    return list(db.session.scalars(sa.select(Account).where(Account.postable.is_(False)).order_by(Account.code)))


ACCOUNT_LABELS = {
    "code": _l("Code"),
    "name": _l("Name"),
    "name_it": _l("Name in Italian"),
    "name_en": _l("Name in English"),
    "name_es": _l("Name in Spanish"),
    "type": _l("Type"),
    "postable": _l("Takes entries"),
    "reconcilable": _l("Matched (open items)"),
    "needs_partner": _l("Each line names a partner"),
    "parent": _l("Group"),
    "active": _l("In use"),
    "balance": _l("Balance"),
}


class AccountView(AccountingView):
    """The chart of accounts by code: groups (no entries) and the accounts inside them; the dealer renames and adds
    accounts. An account's page shows its balance and its last lines, each linked to its entry."""

    details_template = "accounting/admin/account_details.html"
    column_list = ("code", "name", "type", "parent", "postable", "reconcilable", "needs_partner", "active")
    column_details_list = (
        "code",
        "name_it",
        "name_en",
        "name_es",
        "type",
        "parent",
        "postable",
        "reconcilable",
        "needs_partner",
        "active",
    )
    column_export_list = column_details_list
    column_labels = ACCOUNT_LABELS
    column_enums = {"type": "accounting_account.type"}
    column_formatters = {"name": lambda view, context, model, name: model.name()}
    column_searchable_list = ("code", "name_it", "name_en", "name_es")
    column_filters = ("type", "postable", "active")
    column_sortable_list = ("code", "type")
    column_default_sort = "code"
    page_size = 200
    form_columns = column_details_list
    form_choices = {"type": list(ACCOUNT_TYPE_LABELS.items())}
    form_args = {
        "code": {"description": _l("Four digits in the style of the chart: 58xx revenue, 41xx purchases.")},
        "name_en": {"description": _l("Empty: the Italian name."), "validators": [Optional()]},
        "name_es": {"description": _l("Empty: the Italian name."), "validators": [Optional()]},
        "parent": {
            "query_factory": _groups,
            "get_label": accounts.account_label,
            "blank_text": _l("— none: a group of its own —"),
        },
        "postable": {"description": _l("Untick for a group: a group adds up the accounts inside it.")},
        "reconcilable": {"description": _l("Its debits and credits are matched: receivables, payables.")},
        "needs_partner": {"description": _l("Receivables and payables: each line names its customer or supplier.")},
    }

    def _values(self, form: Any) -> dict[str, Any]:
        values = {name: form[name].data for name in accounts.ACCOUNT_FIELDS if name in form and name != "parent"}
        values["parent"] = form.parent.data.code if form.parent.data else None
        return values

    def create_model(self, form: Any) -> Any:
        return self.save_form(form, lambda: accounts.save_account(None, **self._values(form)))

    def update_model(self, form: Any, model: Account) -> bool:
        return self.save_form(form, lambda: accounts.save_account(model, **self._values(form))) is not False

    @expose("/details/")
    def details_view(self):
        account = self.get_one(request.args.get("id", ""))
        if account is None:
            abort(404)
        from modules.accounting.admin_entries import last_lines

        totals = db.session.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(EntryLine.debit), 0), sa.func.coalesce(sa.func.sum(EntryLine.credit), 0)
            ).where(EntryLine.account_id == account.id)
        ).one()
        debit, credit = Decimal(totals[0]), Decimal(totals[1])
        self._template_args.update(
            lines=last_lines(EntryLine.account_id == account.id),
            debit=debit,
            credit=credit,
            balance=debit - credit,
            money=money,
            inside=db.session.scalars(
                sa.select(Account).where(Account.parent_id == account.id).order_by(Account.code)
            ).all(),
        )
        return super().details_view()


JOURNAL_LABELS = {
    "code": _l("Code"),
    "name": _l("Name"),
    "kind": _l("Kind"),
    "iban": _l("IBAN"),
    "account": _l("Account"),
    "active": _l("In use"),
}


def _money_accounts() -> list[Account]:
    return accounts.postable_accounts("asset")


class JournalView(AccountingView):
    """The journals: sales, purchases, one per bank account (with its IBAN), cash, miscellaneous. Each numbers its
    entries gaplessly per year; a journal with entries keeps its code and kind."""

    column_list = ("code", "name", "kind", "iban", "account", "active")
    column_details_list = column_list
    column_export_list = column_list
    column_labels = JOURNAL_LABELS
    column_enums = {"kind": "accounting_journal.kind"}
    column_default_sort = "code"
    form_columns = ("code", "name", "kind", "iban", "account", "active")
    form_choices = {"kind": list(JOURNAL_KIND_LABELS.items())}
    form_args = {
        "code": {"description": _l("Capital letters and digits: the entries' numbers start with it (BNK/2026/0001).")},
        "account": {
            "query_factory": _money_accounts,
            "get_label": accounts.account_label,
            "blank_text": _l("— none —"),
            "description": _l("A bank or cash journal: the account its payments debit."),
        },
    }

    def _values(self, form: Any) -> dict[str, Any]:
        values = {name: form[name].data for name in accounts.JOURNAL_FIELDS if name in form and name != "account"}
        values["account"] = form.account.data.code if form.account.data else None
        return values

    def create_model(self, form: Any) -> Any:
        return self.save_form(form, lambda: accounts.save_journal(None, **self._values(form)))

    def update_model(self, form: Any, model: Journal) -> bool:
        return self.save_form(form, lambda: accounts.save_journal(model, **self._values(form))) is not False


SETTING_LABELS = {
    "lock_date": _l("Lock date"),
    "vat_periodicity": _l("VAT settlement"),
    "dunning_steps": _l("Reminders, days after the due date"),
    "creditor_id": _l("SEPA creditor identifier"),
    "account": _l("Income account"),
}


class SettingsView(SecuredView):
    """The accounting settings: the income account of each kind of invoice line, the lock date, how often VAT is
    settled, the reminder steps and the SEPA creditor identifier. Each is saved on its own or all together; a wrong
    value is shown beside its field and nothing is saved."""

    permission = EDIT

    @expose("/", methods=("GET", "POST"))
    def index(self):
        errors: dict[str, str] = {}
        if request.method == "POST":
            try:
                self._save(request.form)
            except ValidationError as error:
                db.session.rollback()
                errors = error.errors
            else:
                db.session.commit()
                flash(_("Accounting settings saved."), "success")
                return redirect(url_for(".index"))
        from modules.accounting import sepa

        lock = settings.lock_date()
        values = {
            **{f"income.{kind}": settings.income_account_code(kind) for kind in LINE_KIND_LABELS},
            "lock_date": lock.isoformat() if lock else "",
            "vat_periodicity": settings.vat_periodicity(),
            "dunning_steps": ", ".join(str(step) for step in settings.dunning_steps()),
            "creditor_id": sepa.creditor_id() or "",
        }
        if request.method == "POST":
            values.update(request.form.to_dict())
        return self.render(
            "accounting/admin/settings.html",
            values=values,
            errors=errors,
            kinds=LINE_KIND_LABELS,
            income_accounts=accounts.postable_accounts("income"),
            periodicities=VAT_PERIODICITY_LABELS,
            labels=SETTING_LABELS,
        )

    @staticmethod
    def _save(form: Any) -> None:
        """Every setting of the form, each refused under its own field; all are saved or none."""
        from modules.accounting import sepa

        check = Checker()
        for kind in LINE_KIND_LABELS:
            code = (form.get(f"income.{kind}") or "").strip()
            if code and code != settings.income_account_code(kind):
                try:
                    settings.set_income_account(kind, code)
                except ValidationError as error:
                    check.fail(f"income.{kind}", next(iter(error.errors.values())))
        lock = check.date("lock_date", form.get("lock_date"), required=False)
        if "lock_date" not in check and lock != settings.lock_date():
            _set(check, "lock_date", lambda: settings.set_lock_date(lock))
        periodicity = form.get("vat_periodicity") or settings.vat_periodicity()
        _set(check, "vat_periodicity", lambda: settings.set_vat_periodicity(periodicity))
        steps_text = (form.get("dunning_steps") or "").replace(";", ",")
        parts = [part.strip() for part in steps_text.split(",") if part.strip()]
        if not all(part.isdigit() for part in parts):
            check.fail("dunning_steps", _("Give one or more whole numbers of days between 1 and 365."))
        else:
            _set(check, "dunning_steps", lambda: settings.set_dunning_steps([int(part) for part in parts]))
        creditor = (form.get("creditor_id") or "").strip()
        if creditor and creditor != (sepa.creditor_id() or ""):
            _set(check, "creditor_id", lambda: sepa.set_creditor_id(creditor))
        check.raise_if_any()


def _set(check: Checker, field: str, save: Any) -> None:
    try:
        save()
    except ValidationError as error:
        check.fail(field, next(iter(error.errors.values())))
