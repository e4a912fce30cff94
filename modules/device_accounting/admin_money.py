"""Device accounting back office, the money: price lists, quotas with their balance and ledger, adjustments, device
jobs (read only, refunds), refunds and chargeback contracts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import abort, g, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.fields import QuerySelectField
from flask_admin.contrib.sqla.filters import (
    BaseSQLAFilter,
    DateTimeBetweenFilter,
    FilterEqual,
    FilterLike,
)
from flask_admin.form import BaseForm
from flask_babel import format_currency
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy.orm import selectinload
from wtforms import FieldList, Form, FormField, SelectField, StringField, TextAreaField
from wtforms.widgets import DateInput

from core import clock, labels
from core.admin import arg_id
from core.db import contains, db
from core.labels import record_label, record_link
from core.models import Partner
from core.validation import Checker, ValidationError
from modules.device_accounting import operations, quotas
from modules.device_accounting.admin import (
    COLOUR_LABELS,
    DUPLEX_LABELS,
    FUNCTION_LABELS,
    JOB_STATUS_LABELS,
    LEDGER_KIND_LABELS,
    PAPER_SIZE_LABELS,
    PRICE_SIZE_LABELS,
    QUOTA_MODE_LABELS,
    QUOTA_PERIOD_LABELS,
    AccountingView,
    cost_center_choice,
    customers,
    load_trees,
    quota_holder,
)
from modules.device_accounting.models import (
    Balance,
    Chargeback,
    CostCenter,
    LedgerEntry,
    PriceList,
    PrintUser,
    Quota,
    Refund,
    Transaction,
)
from modules.device_accounting.pricing import save_price_list
from modules.rentals.admin import price
from modules.rentals.models import Contract, Device, DeviceModel

SPARE_ENTRIES = 4
LEDGER_SHOWN = 200


def money_total(value: Decimal | None) -> str:
    """A sum of money to the cent, as totals and invoices show it (12,35 €)."""
    return "" if value is None else format_currency(value, "EUR")


def money(value: Decimal | None) -> str:
    """An amount of money in the page's language with the digits it has, at least the currency's (12,50 €; 0,048 €)."""
    return "" if value is None else price(Decimal(value))


def _money_column(view: Any, context: Any, model: Any, name: str) -> str:
    return money(getattr(model, name))


def _amount_and_reason(view: Any, act: Any, done: Any):
    """The POST of a details page's amount-and-reason form (a quota's adjustment, a job's refund): `act(record,
    amount, reason, actor)` with the amount as typed (the domain checks it), `done(result)` flashed, then the page."""
    if not view._can_edit():
        abort(403)
    record = view.get_one(request.args.get("id", ""))
    if record is None:
        abort(404)
    text, reason = request.form.get("amount", ""), request.form.get("reason", "").strip()
    view.run_action(
        lambda: act(record, text, reason, current_user), done, {"amount": _("Amount"), "reason": _("Reason")}
    )
    return redirect(url_for(".details_view", id=record.id))


def _arg_date(name: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


# Quotas, balances and the ledger.


def _quota_choice(quota: Quota) -> str:
    return f"{labels.label_for('customer', quota.customer_id)} · {record_label(quota_holder(quota))}"


def all_quotas() -> list[Quota]:
    found = db.session.scalars(
        sa.select(Quota).options(selectinload(Quota.user), selectinload(Quota.cost_center))
    ).all()
    load_trees({quota.customer_id for quota in found})
    labels.preload("customer", {quota.customer_id for quota in found})
    return sorted(found, key=_quota_choice)


def _customer_column(view: Any, context: Any, model: Quota, name: str) -> Any:
    return labels.link_for("customer", model.customer_id)


class CustomerNameFilter(BaseSQLAFilter):
    """Rows of the customers whose name contains the text (for a model with a customer id and no relationship)."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        return query.filter(self.column.in_(sa.select(Partner.id).where(contains(Partner.name, value))))

    def operation(self) -> Any:
        return _l("contains")


def all_users() -> list[PrintUser]:
    found = db.session.scalars(sa.select(PrintUser).options(selectinload(PrintUser.customer))).all()
    return sorted(found, key=lambda user: (user.customer.name, str(user).lower()))


def shared_cost_centers() -> list[CostCenter]:
    found = db.session.scalars(
        sa.select(CostCenter).where(CostCenter.shared.is_(True)).options(selectinload(CostCenter.customer))
    ).all()
    load_trees({cost_center.customer_id for cost_center in found})
    return sorted(found, key=cost_center_choice)


def _balances(quota_ids: set[int]) -> dict[int, Balance]:
    if not quota_ids:
        return {}
    return {b.quota_id: b for b in db.session.scalars(sa.select(Balance).where(Balance.quota_id.in_(quota_ids)))}


def _balance_column(view: Any, context: Any, model: Quota, name: str) -> str:
    balance = g.get("da_balances", {}).get(model.id)
    return money(balance.balance) if balance is not None else ""


class QuotaForm(BaseForm):
    customer = QuerySelectField(_l("Customer"), query_factory=customers, allow_blank=False)
    user = QuerySelectField(
        _l("Print user"),
        query_factory=all_users,
        get_label=lambda user: f"{user.customer.name} · {user}",
        allow_blank=True,
        description=_l("A quota belongs to a print user or to a shared cost center."),
    )
    cost_center = QuerySelectField(
        _l("Shared cost center"), query_factory=shared_cost_centers, get_label=cost_center_choice, allow_blank=True
    )
    period = SelectField(_l("Period"), choices=list(QUOTA_PERIOD_LABELS.items()))
    amount = StringField(_l("Amount per period"))
    mode = SelectField(_l("At each new period"), choices=list(QUOTA_MODE_LABELS.items()))
    rollover_cap = StringField(_l("Rollover cap"), description=_l("The most a rolled-over balance may reach."))
    overdraft = StringField(_l("Overdraft allowed"), default="0")
    warning_percent = StringField(
        _l("Warning at (percent spent)"), default="80", description=_l("The user is emailed once per period.")
    )


QUOTA_FIELDS = {"customer_id": "customer", "user_id": "user", "cost_center_id": "cost_center"}


class QuotaView(AccountingView):
    """Quotas of print users and shared cost centers, with the current balance; the page shows the ledger and takes
    manual adjustments."""

    # A quota stays with its holder; change the amounts, or delete it and create another.
    fixed_on_edit = ("customer", "user", "cost_center")
    form = QuotaForm
    details_template = "device_accounting/admin/quota_details.html"
    column_list = ("holder", "customer", "period", "mode", "amount", "rollover_cap", "overdraft", "balance")
    column_details_list = (
        "holder",
        "customer",
        "period",
        "mode",
        "amount",
        "rollover_cap",
        "overdraft",
        "warning_percent",
    )
    column_export_list = (
        "holder",
        "customer",
        "period",
        "mode",
        "amount",
        "rollover_cap",
        "overdraft",
        "warning_percent",
    )
    column_labels = {
        "holder": _l("For"),
        "customer": _l("Customer"),
        "customer.name": _l("Customer"),
        "user": _l("Print user"),
        "cost_center": _l("Shared cost center"),
        "period": _l("Period"),
        "mode": _l("At each new period"),
        "amount": _l("Amount per period"),
        "rollover_cap": _l("Rollover cap"),
        "overdraft": _l("Overdraft allowed"),
        "warning_percent": _l("Warning at (percent spent)"),
        "balance": _l("Balance"),
    }
    column_enums = {"period": "device_accounting.quota_period", "mode": "device_accounting.quota_mode"}
    column_formatters = {
        "holder": lambda view, context, model, name: record_link(quota_holder(model)),
        "customer": _customer_column,
        "amount": _money_column,
        "rollover_cap": _money_column,
        "overdraft": _money_column,
        "balance": _balance_column,
        "warning_percent": lambda view, context, model, name: f"{labels.number(model.warning_percent)}%",
    }
    column_filters = (
        CustomerNameFilter(Quota.customer_id, _l("Customer")),
        FilterEqual(Quota.period, _l("Period"), options=list(QUOTA_PERIOD_LABELS.items())),
        FilterEqual(Quota.mode, _l("At each new period"), options=list(QUOTA_MODE_LABELS.items())),
    )

    def _narrowed(self, query: Any) -> Any:
        if request.args.get("over") == "1":
            query = query.filter(
                Quota.id.in_(sa.select(Balance.quota_id).where(Balance.balance < 0)), Quota.user_id.is_not(None)
            )
        if (customer_id := arg_id("customer_id")) is not None:
            query = query.filter(Quota.customer_id == customer_id)
        return query

    def get_query(self):
        return self._narrowed(super().get_query().options(selectinload(Quota.user), selectinload(Quota.cost_center)))

    def get_count_query(self):
        return self._narrowed(super().get_count_query())

    def get_list(self, *args: Any, **kwargs: Any):
        count, rows = super().get_list(*args, **kwargs)
        rows = list(rows)
        g.da_balances = _balances({quota.id for quota in rows})
        labels.preload("customer", {quota.customer_id for quota in rows})
        load_trees({quota.customer_id for quota in rows if quota.cost_center_id})
        return count, rows

    def _data(self, form: Any) -> dict[str, Any]:
        data = {
            "period": form.period.data,
            "mode": form.mode.data,
            # As typed: quotas.save_quota reads and checks the numbers (one place for the form, the API, the portal).
            "amount": form.amount.data,
            "rollover_cap": (form.rollover_cap.data or "").strip() or None,
            "overdraft": form.overdraft.data,
            "warning_percent": form.warning_percent.data,
        }
        if "user" in form:
            data["user_id"] = form.user.data.id if form.user.data else None
            data["cost_center_id"] = form.cost_center.data.id if form.cost_center.data else None
        return data

    def create_model(self, form):
        customer = form.customer.data
        return self.save_form(
            form, lambda: quotas.save_quota(customer.id if customer else None, self._data(form)), QUOTA_FIELDS
        )

    def update_model(self, form, model: Quota) -> bool:
        return self.save_form(form, lambda: quotas.save_quota(model.customer_id, self._data(form), model)) is not False

    @expose("/details/")
    def details_view(self):
        quota = self.get_one(request.args.get("id", ""))
        if quota is None:
            abort(404)
        balance = quotas.current_balance(quota, clock.now())
        db.session.commit()  # a period that came due while nobody looked is opened now, as the job would
        entries = db.session.scalars(
            sa.select(LedgerEntry)
            .where(LedgerEntry.balance_id == balance.id)
            .options(selectinload(LedgerEntry.actor))
            .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
            .limit(LEDGER_SHOWN)
        ).all()
        jobs = {
            tx.id: tx
            for tx in db.session.scalars(
                sa.select(Transaction)
                .where(Transaction.id.in_({e.transaction_id for e in entries if e.transaction_id}))
                .options(selectinload(Transaction.device))
            )
        }
        self._template_args.update(
            balance=balance,
            entries=entries,
            jobs=jobs,
            money=money,
            can_adjust=self._can_edit(),
            holder=quota_holder(quota),
        )
        return super().details_view()

    @expose("/adjust/", methods=("POST",))
    def adjust(self):
        return _amount_and_reason(
            self, quotas.adjust, lambda entry: _("Balance adjusted by %(amount)s.", amount=money(entry.amount))
        )


class AdjustmentForm(BaseForm):
    quota = QuerySelectField(_l("Quota"), query_factory=all_quotas, get_label=_quota_choice, allow_blank=False)
    amount = StringField(_l("Amount"), description=_l("Positive to top up, negative to take away."))
    reason = TextAreaField(_l("Reason"))


def _ledger_customer(value: str) -> Any:
    by_name = sa.select(Partner.id).where(contains(Partner.name, value))
    quotas_of = sa.select(Balance.id).join(Quota, Quota.id == Balance.quota_id).where(Quota.customer_id.in_(by_name))
    return LedgerEntry.balance_id.in_(quotas_of)


class LedgerCustomerFilter(BaseSQLAFilter):
    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        return query.filter(_ledger_customer(value))

    def operation(self) -> Any:
        return _l("contains")


class LedgerView(AccountingView):
    """Every movement of every balance (period openings, job charges, refunds, adjustments), newest first; staff add
    a manual adjustment (a top-up, a correction) with its reason. Nothing is edited: the ledger is the audit."""

    allow_edit = False
    form = AdjustmentForm
    column_list = ("created_at", "kind", "balance.quota", "customer", "amount", "transaction_id", "reason", "actor")
    column_details_list = (
        "created_at",
        "kind",
        "balance.quota",
        "customer",
        "period_start",
        "amount",
        "transaction_id",
        "reason",
        "actor",
    )
    column_labels = {
        "created_at": _l("When"),
        "kind": _l("Movement"),
        "balance": _l("Balance"),
        "balance.quota": _l("Quota"),
        "balance_id": _l("Balance"),
        "customer": _l("Customer"),
        "period_start": _l("Period from"),
        "amount": _l("Amount"),
        "transaction_id": _l("Device job"),
        "refund_id": _l("Job refund"),
        "reason": _l("Reason"),
        "actor": _l("By"),
        "actor_id": _l("By"),
    }
    column_enums = {"kind": "device_accounting.ledger_kind"}
    column_formatters = {
        "amount": _money_column,
        "customer": lambda view, context, model, name: labels.link_for("customer", model.balance.quota.customer_id),
    }
    column_filters = (
        FilterEqual(LedgerEntry.kind, _l("Movement"), options=list(LEDGER_KIND_LABELS.items())),
        LedgerCustomerFilter(LedgerEntry.balance_id, _l("Customer")),
        DateTimeBetweenFilter(LedgerEntry.created_at, _l("When")),
    )
    column_default_sort = ("created_at", True)
    column_searchable_list = ("reason",)

    def get_query(self):
        return (
            super()
            .get_query()
            .options(
                selectinload(LedgerEntry.balance)
                .selectinload(Balance.quota)
                .options(selectinload(Quota.user), selectinload(Quota.cost_center))
            )
        )

    def get_list(self, *args: Any, **kwargs: Any):
        count, rows = super().get_list(*args, **kwargs)
        rows = list(rows)
        load_trees({entry.balance.quota.customer_id for entry in rows if entry.balance.quota.cost_center_id})
        labels.preload("customer", {entry.balance.quota.customer_id for entry in rows})
        return count, rows

    def create_model(self, form):
        quota, text, reason = form.quota.data, form.amount.data, (form.reason.data or "").strip()
        return self.save_form(form, lambda: quotas.adjust(quota, text, reason, current_user))


# Device jobs and refunds.


class _NarrowedBy:
    """What the transactions list is narrowed to by its links (a device's page, a report, the dashboard)."""

    ARGS = {
        "customer_id": Transaction.customer_id,
        "user_id": Transaction.user_id,
        "cost_center_id": Transaction.cost_center_id,
        "device_id": Transaction.device_id,
    }


def _narrow_transactions(query: Any) -> Any:
    for name, column in _NarrowedBy.ARGS.items():
        if (ident := arg_id(name)) is not None:
            query = query.filter(column == ident)
    if (since := _arg_date("since")) is not None:
        query = query.filter(Transaction.ended_at >= clock.day_start(since))
    if (until := _arg_date("until")) is not None:
        query = query.filter(Transaction.ended_at < clock.day_start(until + dt.timedelta(days=1)))
    if request.args.get("function") in FUNCTION_LABELS:
        query = query.filter(Transaction.function == request.args["function"])
    return query


def narrowing() -> list[str]:
    """What the current list of jobs is narrowed to, said in words (the list's banner)."""

    said = []
    models = {"customer_id": Partner, "user_id": PrintUser, "cost_center_id": CostCenter, "device_id": Device}
    titles = {
        "customer_id": _l("Customer"),
        "user_id": _l("Print user"),
        "cost_center_id": _l("Cost center"),
        "device_id": _l("Device"),
    }
    for name, model in models.items():
        if (ident := arg_id(name)) is not None:
            record = db.session.get(model, ident)
            said.append(f"{titles[name]}: {record_label(record) if record else '—'}")
    since, until = _arg_date("since"), _arg_date("until")
    if since or until:
        said.append(f"{labels.local_date(since) if since else '…'} \u2013 {labels.local_date(until) if until else '…'}")
    if request.args.get("function") in FUNCTION_LABELS:
        said.append(str(FUNCTION_LABELS[request.args["function"]]))
    return said


def _sides_column(view: Any, context: Any, model: Transaction, name: str) -> str:
    return labels.number(getattr(model, name))


class TransactionView(AccountingView):
    """Every finished job at the devices, newest first, never edited; a job's page refunds all or part of it."""

    allow_create = False
    allow_edit = False
    list_template = "device_accounting/admin/transaction_list.html"
    details_template = "device_accounting/admin/transaction_details.html"
    column_list = (
        "ended_at",
        "customer",
        "device",
        "user",
        "cost_center",
        "function",
        "sides_bw",
        "sides_color",
        "status",
        "cost",
    )
    column_details_list = (
        "ended_at",
        "started_at",
        "customer",
        "device",
        "user",
        "cost_center",
        "function",
        "sides_bw",
        "sides_color",
        "sheets",
        "paper_size",
        "duplex",
        "status",
        "document_name",
        "cost",
        "refunded",
        "price_list",
        "balance_after",
        "anonymised",
        "received_at",
    )
    column_export_list = (
        "ended_at",
        "customer.name",
        "device.serial",
        "user.username",
        "cost_center.name",
        "function",
        "sides_bw",
        "sides_color",
        "sheets",
        "paper_size",
        "duplex",
        "status",
        "cost",
        "refunded",
    )
    column_labels = {
        "ended_at": _l("Ended"),
        "started_at": _l("Started"),
        "customer": _l("Customer"),
        "customer.name": _l("Customer"),
        "device": _l("Device"),
        "device.serial": _l("Serial number"),
        "device_seq": _l("Device's job number"),
        "user": _l("Print user"),
        "user.username": _l("Username"),
        "cost_center": _l("Cost center"),
        "cost_center.name": _l("Cost center"),
        "function": _l("Function"),
        "sides_bw": _l("Black and white sides"),
        "sides_color": _l("Colour sides"),
        "sheets": _l("Sheets"),
        "paper_size": _l("Paper size"),
        "duplex": _l("Duplex"),
        "status": _l("Outcome"),
        "document_name": _l("Document"),
        "cost": _l("Cost"),
        "refunded": _l("Refunded"),
        "price_list": _l("Price list"),
        "quota": _l("Quota"),
        "balance_after": _l("Balance after"),
        "anonymised": _l("Anonymised"),
        "received_at": _l("Received"),
    }
    column_enums = {
        "function": "device_accounting.function",
        "paper_size": "device_accounting.paper_size",
        "status": "device_accounting.job_status",
    }
    column_formatters = {
        "cost": _money_column,
        "refunded": lambda view, context, model, name: money(model.refunded) if model.refunded else "",
        "balance_after": _money_column,
        "sides_bw": _sides_column,
        "sides_color": _sides_column,
        "sheets": _sides_column,
    }
    column_formatters_export = {"cost": lambda view, context, model, name: model.cost}
    column_filters = (
        FilterLike("customer.name", _l("Customer")),
        FilterLike("user.username", _l("Username")),
        FilterLike("user.full_name", _l("Print user")),
        FilterLike("cost_center.name", _l("Cost center")),
        FilterLike("device.serial", _l("Serial number")),
        FilterEqual(Transaction.function, _l("Function"), options=list(FUNCTION_LABELS.items())),
        FilterEqual(Transaction.status, _l("Outcome"), options=list(JOB_STATUS_LABELS.items())),
        FilterEqual(Transaction.paper_size, _l("Paper size"), options=list(PAPER_SIZE_LABELS.items())),
        DateTimeBetweenFilter(Transaction.ended_at, _l("Ended")),
    )
    column_default_sort = ("ended_at", True)
    page_size = 50

    def get_query(self):
        return _narrow_transactions(
            super()
            .get_query()
            .options(
                selectinload(Transaction.customer),
                selectinload(Transaction.device).selectinload(Device.model).selectinload(DeviceModel.manufacturer),
                selectinload(Transaction.user),
                selectinload(Transaction.cost_center),
            )
        )

    def get_count_query(self):
        return _narrow_transactions(super().get_count_query())

    def get_list(self, *args: Any, **kwargs: Any):
        count, rows = super().get_list(*args, **kwargs)
        rows = list(rows)
        load_trees({tx.customer_id for tx in rows if tx.cost_center_id})
        return count, rows

    @expose("/")
    def index_view(self):
        self._template_args["narrowed"] = narrowing()
        return super().index_view()

    @expose("/details/")
    def details_view(self):
        tx = self.get_one(request.args.get("id", ""))
        if tx is None:
            abort(404)
        refunds = db.session.scalars(
            sa.select(Refund)
            .where(Refund.transaction_id == tx.id)
            .options(selectinload(Refund.actor))
            .order_by(Refund.created_at)
        ).all()
        self._template_args.update(
            refunds=refunds,
            refundable=tx.cost - tx.refunded,
            can_refund=self._can_edit() and tx.cost > tx.refunded,
            money=money,
        )
        return super().details_view()

    @expose("/refund/", methods=("POST",))
    def refund(self):
        return _amount_and_reason(
            self, operations.refund, lambda done: _("%(amount)s refunded.", amount=money(done.amount))
        )


class RefundView(AccountingView):
    """Every refund of a job: how much, who, when and why (made from the job's page)."""

    allow_create = False
    allow_edit = False
    column_list = ("created_at", "transaction", "transaction.customer", "amount", "reason", "actor")
    column_details_list = column_list
    column_labels = {
        "created_at": _l("When"),
        "transaction": _l("Device job"),
        "transaction.customer": _l("Customer"),
        "amount": _l("Amount"),
        "reason": _l("Reason"),
        "actor": _l("By"),
    }
    column_formatters = {"amount": _money_column}
    column_default_sort = ("created_at", True)
    column_searchable_list = ("reason",)

    def get_query(self):
        return (
            super()
            .get_query()
            .options(
                selectinload(Refund.actor),
                selectinload(Refund.transaction).options(
                    selectinload(Transaction.customer), selectinload(Transaction.device)
                ),
            )
        )


# Price lists.


class EntryForm(Form):
    function = SelectField(_l("Function"), choices=list(FUNCTION_LABELS.items()))
    colour = SelectField(_l("Colour"), choices=list(COLOUR_LABELS.items()))
    paper_size = SelectField(_l("Paper size"), choices=[("any", PRICE_SIZE_LABELS["any"]), *PAPER_SIZE_LABELS.items()])
    duplex = SelectField(
        _l("Duplex"),
        choices=[("any", DUPLEX_LABELS["any"]), ("yes", DUPLEX_LABELS["yes"]), ("no", DUPLEX_LABELS["no"])],
    )
    price_per_side = StringField(_l("Price per side"), render_kw={"inputmode": "decimal", "autocomplete": "off"})
    job_fee = StringField(_l("Fee per job"), render_kw={"inputmode": "decimal", "autocomplete": "off"})


class PriceListForm(Form):
    customer_id = SelectField(_l("For"), choices=[], validate_choice=False)
    name = StringField(_l("Name"))
    valid_from = StringField(_l("Valid from"), widget=DateInput())
    entries = FieldList(FormField(EntryForm), min_entries=1)


def price_list_form(price_list: PriceList | None) -> PriceListForm:
    if request.method == "POST":
        form = PriceListForm(request.form)
        form.entries.append_entry()
    else:
        data: dict[str, Any] = {"customer_id": "", "entries": []}
        if price_list is not None:
            data = {
                "customer_id": str(price_list.customer_id or ""),
                "name": price_list.name,
                "valid_from": price_list.valid_from.isoformat(),
                "entries": [
                    {
                        "function": e.function,
                        "colour": e.colour,
                        "paper_size": e.paper_size,
                        "duplex": e.duplex,
                        "price_per_side": _plain(e.price_per_side),
                        "job_fee": _plain(e.job_fee),
                    }
                    for e in price_list.entries
                ],
            }
        else:
            data["valid_from"] = clock.today().isoformat()
        form = PriceListForm(data=data)
        for _spare in range(SPARE_ENTRIES):
            form.entries.append_entry()
    form.customer_id.choices = [("", _("The dealer's default list")), *((str(c.id), c.name) for c in customers())]
    return form


def _plain(value: Decimal | None) -> str:
    """A stored price as typed back into the form: 0.012000 -> 0.012."""
    if value is None:
        return ""
    return str(value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize())


def price_list_data(form: PriceListForm) -> tuple[int | None, dict[str, Any], list[int]]:
    """The form as save_price_list's data (values as typed: pricing checks them), and for each entry the form row it
    came from; rows without a price or fee are left out."""
    entries, rows = [], []
    for row, subform in enumerate(form.entries):
        entry = subform.form
        price_text, fee_text = (entry.price_per_side.data or "").strip(), (entry.job_fee.data or "").strip()
        if not price_text and not fee_text:
            continue
        entries.append(
            {
                "function": entry.function.data,
                "colour": entry.colour.data,
                "paper_size": entry.paper_size.data,
                "duplex": entry.duplex.data,
                "price_per_side": price_text,
                "job_fee": fee_text or None,
            }
        )
        rows.append(row)
    data = {"name": form.name.data or "", "valid_from": form.valid_from.data or "", "entries": entries}
    customer = form.customer_id.data
    return (int(customer) if customer and customer.isdigit() else None), data, rows


class PriceListView(AccountingView):
    """The dealer's default price list and customers' own, each valid from a date; saved through pricing, so a list
    without its `any`/`any` defaults is refused with the field named."""

    details_template = "device_accounting/admin/price_list_details.html"
    column_list = ("name", "scope", "customer", "valid_from", "entries")
    column_details_list = ("name", "scope", "customer", "valid_from", "created_at")
    column_labels = {
        "name": _l("Name"),
        "scope": _l("Kind"),
        "customer": _l("Customer"),
        "customer.name": _l("Customer"),
        "valid_from": _l("Valid from"),
        "entries": _l("Prices"),
    }
    column_formatters = {
        "scope": lambda view, context, model, name: (
            _("Customer's list") if model.customer_id else _("The dealer's default list")
        ),
        "entries": lambda view, context, model, name: Markup('<a href="{}">{}</a>').format(
            url_for(".details_view", id=model.id), labels.number(len(model.entries))
        ),
    }
    column_searchable_list = ("name", "customer.name")
    column_default_sort = ("valid_from", True)

    def get_query(self):
        return super().get_query().options(selectinload(PriceList.customer), selectinload(PriceList.entries))

    @expose("/details/")
    def details_view(self):
        price_list = self.get_one(request.args.get("id", ""))
        if price_list is None:
            abort(404)
        self._template_args.update(money=money)
        return super().details_view()

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        if not self.can_create:
            abort(403)
        return self._submit(None)

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        if not self._can_edit():
            abort(403)
        price_list = self.get_one(request.args.get("id", ""))
        if price_list is None:
            abort(404)
        return self._submit(price_list)

    def _submit(self, price_list: PriceList | None):
        form = price_list_form(price_list)
        errors: dict[str, str] = {}
        status = 200
        if request.method == "POST":
            customer_id, data, rows = price_list_data(form)
            try:
                saved = save_price_list(customer_id, data, price_list)
            except ValidationError as error:
                db.session.rollback()
                errors = _row_errors(error.errors, rows)
                status = 422
            else:
                db.session.commit()
                from flask import flash

                flash(_("Price list %(name)s saved.", name=saved.name), "success")
                return redirect(url_for(".details_view", id=saved.id))
        return (
            self.render(
                "device_accounting/admin/price_list_form.html", form=form, price_list=price_list, errors=errors
            ),
            status,
        )


def _row_errors(errors: dict[str, str], rows: list[int]) -> dict[str, str]:
    """The service's `entries.<n>.<field>` errors under the form row `n` came from (blank rows were left out)."""
    placed = {}
    for field, message in errors.items():
        parts = field.split(".")
        if parts[0] == "entries" and len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(rows):
            parts[1] = str(rows[int(parts[1])])
        placed[".".join(parts)] = message
    return placed


# Chargeback.


def _contracts() -> list[Contract]:
    return list(
        db.session.scalars(sa.select(Contract).options(selectinload(Contract.customer)).order_by(Contract.number))
    )


class ChargebackForm(BaseForm):
    contract = QuerySelectField(
        _l("Contract"),
        query_factory=_contracts,
        get_label=lambda contract: f"{contract.number} · {contract.customer.name}",
        allow_blank=False,
    )
    start_date = StringField(
        _l("Bill job accounting from"),
        widget=DateInput(),
        description=_l("From this date the contract's devices are billed by job accounting, not by meter overage."),
    )


class ChargebackView(AccountingView):
    """Contracts that bill their devices' job accounting (chargeback) instead of meter overage, from a date."""

    allow_delete = True
    form = ChargebackForm
    column_list = ("contract", "contract.customer", "start_date", "created_at")
    column_details_list = column_list
    column_labels = {
        "contract": _l("Contract"),
        "contract.customer": _l("Customer"),
        "start_date": _l("Bill job accounting from"),
    }
    column_default_sort = ("start_date", True)

    def get_query(self):
        return super().get_query().options(selectinload(Chargeback.contract).selectinload(Contract.customer))

    def edit_form(self, obj=None):
        form = super().edit_form(obj)
        del form.contract
        if obj is not None and request.method == "GET":
            form.start_date.data = obj.start_date.isoformat()
        return form

    def _save(self, contract: Contract | None, text: Any, chargeback: Chargeback | None) -> Chargeback:
        return save_chargeback(contract.id if contract else None, text, chargeback)

    def create_model(self, form):
        return self.save_form(
            form, lambda: self._save(form.contract.data, form.start_date.data, None), {"contract_id": "contract"}
        )

    def update_model(self, form, model: Chargeback) -> bool:
        return self.save_form(form, lambda: self._save(model.contract, form.start_date.data, model)) is not False


def save_chargeback(contract_id: int | None, start_date: Any, chargeback: Chargeback | None = None) -> Chargeback:
    """Make a contract bill its devices' job accounting from `start_date` (or change that date); one per contract."""
    check = Checker()
    start = check.date("start_date", start_date)
    contract = db.session.get(Contract, contract_id) if contract_id else None
    if chargeback is None:
        if contract is None:
            check.fail("contract_id", _("Choose the contract."))
        elif db.session.get(Chargeback, contract.id) is not None:
            check.fail("contract_id", _("Contract %(number)s bills job accounting already.", number=contract.number))
    check.raise_if_any()
    if chargeback is None:
        chargeback = Chargeback(contract_id=contract.id, start_date=start)
        db.session.add(chargeback)
    chargeback.start_date = start
    db.session.flush()
    return chargeback
