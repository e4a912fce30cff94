"""Device accounting back office: labels of its records and codes, print users with cards and PINs, cost centers,
directories, settings and the CSV import of users; registers every view (admin_money.py, admin_reports.py,
admin_held.py, panels)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, g, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.fields import QuerySelectField, QuerySelectMultipleField
from flask_admin.contrib.sqla.filters import BaseSQLAFilter
from flask_admin.form import BaseForm
from flask_admin.model import typefmt
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy.orm import selectinload
from wtforms import BooleanField, PasswordField, SelectField, SelectMultipleField, StringField

from core import clock, csv_import, labels
from core.admin import SecuredModelView, model_view
from core.auth.admin import LANGUAGE_CHOICES
from core.context import ModuleContext
from core.db import db, utcnow
from core.models import Partner
from core.validation import ValidationError
from modules.device_accounting.cost_centers import save_cost_center
from modules.device_accounting.customer_settings import save_settings
from modules.device_accounting.directory import save_directory, sync_now, sync_status, sync_summary, test_connection
from modules.device_accounting.imports import UserAndCostCenterImporter, UserImporter
from modules.device_accounting.models import (
    AccountingSettings,
    Balance,
    Card,
    Chargeback,
    CostCenter,
    Directory,
    LedgerEntry,
    PriceEntry,
    PriceList,
    PrintServer,
    PrintUser,
    Quota,
    Refund,
    ReportSubscription,
    Transaction,
)
from modules.device_accounting.privileges import effective_privileges
from modules.device_accounting.users import add_card, clear_pin, disable_card, generate_pin, save_user, set_pin

VIEW = "print_accounting.view"
EDIT = "print_accounting.edit"

# What each code says (core/labels.py); other parts of the module show them through enum_label("<name>", code).
FUNCTION_LABELS = {
    "print": _l("Print"),
    "copy": _l("Copy"),
    "scan": _l("Scan"),
    "fax": _l("Fax"),
    "email": _l("Scan to email"),
    "ftp": _l("Scan to FTP"),
}
COLOUR_LABELS = {"bw": _l("Black and white"), "color": _l("Colour")}
PAPER_SIZE_LABELS = {"A4": "A4", "A3": "A3", "A5": "A5", "letter": _l("Letter"), "other": _l("Other size")}
PRICE_SIZE_LABELS = {**PAPER_SIZE_LABELS, "any": _l("Any size")}
DUPLEX_LABELS = {"yes": _l("Duplex"), "no": _l("Single-sided"), "any": _l("Duplex or single-sided")}
JOB_STATUS_LABELS = {"done": _l("Done"), "failed": _l("Failed"), "cancelled": _l("Cancelled at the device")}
QUOTA_PERIOD_LABELS = {"monthly": _l("Monthly"), "weekly": _l("Weekly")}
QUOTA_MODE_LABELS = {"reset": _l("Reset each period"), "rollover": _l("Roll over up to the cap")}
LEDGER_KIND_LABELS = {
    "opening": _l("Period opening"),
    "charge": _l("Job charged"),
    "refund": _l("Job refund"),
    "adjustment": _l("Manual adjustment"),
}
# A privilege a cost center or user leaves unset inherits it (models.PrivilegesMixin).
TRI_LABELS = {"": _l("Inherited"), "yes": _l("Yes"), "no": _l("No")}

TABLES = {
    "device_accounting_settings": _l("Job accounting settings"),
    "device_accounting_cost_center": _l("Cost center"),
    "device_accounting_user_cost_center": _l("Cost center of a print user"),
    "device_accounting_user": _l("Print user"),
    "device_accounting_card": _l("Card"),
    "device_accounting_pin_attempt": _l("Wrong PIN attempt"),
    "device_accounting_directory": _l("Customer directory (LDAP)"),
    "device_accounting_price_list": _l("Job price list"),
    "device_accounting_price_entry": _l("Job price"),
    "device_accounting_quota": _l("Quota"),
    "device_accounting_balance": _l("Quota balance"),
    "device_accounting_ledger": _l("Balance movement"),
    "device_accounting_transaction": _l("Device job"),
    "device_accounting_refund": _l("Job refund"),
    "device_accounting_daily_usage": _l("Daily usage"),
    "device_accounting_report_subscription": _l("Monthly report subscription"),
    "device_accounting_chargeback": _l("Chargeback"),
    "device_accounting_print_server": _l("Print server"),
    "device_accounting_print_server_user": _l("CUPS user of a print server"),
    "device_accounting_print_server_printer": _l("CUPS queue of a print server"),
    "device_accounting_print_delegate": _l("Held-job delegate"),
}
HELD_JOB_STATE_LABELS = {
    "held": _l("Held"),
    "released": _l("Released"),
    "deleted": _l("Deleted"),
    "expired": _l("Expired"),
}
JOBS = {
    "modules.device_accounting.jobs:open_quota_periods": _l("Open the new quota periods"),
    "modules.device_accounting.jobs:sync_directories": _l("Sync the customers' directories"),
    "modules.device_accounting.jobs:anonymise_transactions": _l("Anonymise old device jobs"),
    "modules.device_accounting.jobs:send_monthly_reports": _l("Email the monthly usage reports"),
    "modules.device_accounting.jobs:expire_held_jobs": _l("Expire held print jobs"),
    "modules.device_accounting.jobs:import_page_logs": _l("Import the print servers' page logs"),
}


def quota_holder(quota: Quota) -> Any:
    """The print user or the shared cost center a quota belongs to."""
    return quota.user if quota.user_id is not None else quota.cost_center


def register_labels(app: Any) -> None:
    """How device accounting's records are named and its codes read (core/labels.py)."""
    labels.register_enum(app, "device_accounting.function", FUNCTION_LABELS)
    labels.register_enum(app, "device_accounting.colour", COLOUR_LABELS)
    labels.register_enum(app, "device_accounting.paper_size", PRICE_SIZE_LABELS)
    labels.register_enum(app, "device_accounting.duplex", DUPLEX_LABELS)
    labels.register_enum(app, "device_accounting.job_status", JOB_STATUS_LABELS)
    labels.register_enum(app, "device_accounting.quota_period", QUOTA_PERIOD_LABELS)
    labels.register_enum(app, "device_accounting.quota_mode", QUOTA_MODE_LABELS)
    labels.register_enum(app, "device_accounting.ledger_kind", LEDGER_KIND_LABELS)
    labels.register_enum(app, "audit.table", TABLES)
    labels.register_enum(app, "job.func", JOBS)
    labels.register_enum(app, "held_job.state", HELD_JOB_STATE_LABELS)
    labels.register_record(app, PrintUser, lambda user: str(user))
    labels.register_record(app, PrintServer, lambda server: server.name)
    labels.register_record(
        app, Card, lambda card: card.number, lambda card: labels.record_url(card.user), needs=("user",)
    )
    labels.register_record(
        app, CostCenter, lambda center: center.path, needs=("parent", "parent.parent", "parent.parent.parent")
    )
    labels.register_record(app, PriceList, lambda price_list: price_list.name)
    labels.register_record(
        app,
        PriceEntry,
        lambda entry: " · ".join(
            (
                labels.enum_label("device_accounting.function", entry.function),
                labels.enum_label("device_accounting.colour", entry.colour),
                labels.enum_label("device_accounting.paper_size", entry.paper_size),
                labels.enum_label("device_accounting.duplex", entry.duplex),
            )
        ),
        lambda entry: labels.record_url(entry.price_list),
    )
    labels.register_record(
        app,
        Quota,
        lambda quota: _("Quota of %(holder)s", holder=labels.record_label(quota_holder(quota))),
        needs=("user", "cost_center"),
    )
    labels.register_record(
        app,
        Balance,
        lambda balance: _("Balance of %(holder)s", holder=labels.record_label(quota_holder(balance.quota))),
        lambda balance: labels.record_url(balance.quota),
        needs=("quota", "quota.user", "quota.cost_center"),
    )
    labels.register_record(
        app,
        LedgerEntry,
        lambda entry: (
            f"{labels.enum_label('device_accounting.ledger_kind', entry.kind)} · "
            f"{labels.local_datetime(entry.created_at)}"
        ),
    )
    labels.register_record(
        app, Transaction, lambda tx: f"{tx.device.serial} · {labels.local_datetime(tx.ended_at)}", needs=("device",)
    )
    labels.register_record(
        app,
        Refund,
        lambda refund: _("Refund of %(job)s", job=labels.record_label(refund.transaction)),
        lambda refund: labels.record_url(refund.transaction),
        needs=("transaction", "transaction.device"),
    )
    labels.register_record(
        app, Directory, lambda directory: f"{directory.customer.name} · {directory.url}", needs=("customer",)
    )
    labels.register_record(
        app,
        AccountingSettings,
        lambda settings: _("Job accounting of %(customer)s", customer=settings.customer.name),
        needs=("customer",),
    )
    labels.register_record(
        app,
        Chargeback,
        lambda chargeback: _("Chargeback of %(contract)s", contract=chargeback.contract.number),
        needs=("contract",),
    )
    labels.register_record(
        app,
        ReportSubscription,
        lambda subscription: _("Monthly report to %(user)s", user=labels.record_label(subscription.user)),
        needs=("user",),
    )
    labels.register_kind(
        app,
        "print_user",
        lambda ident: db.session.get(PrintUser, ident),
        lambda ids: db.session.scalars(sa.select(PrintUser).where(PrintUser.id.in_(ids))).all(),
    )
    labels.register_kind(
        app,
        "cost_center",
        lambda ident: db.session.get(CostCenter, ident),
        lambda ids: db.session.scalars(sa.select(CostCenter).where(CostCenter.id.in_(ids))).all(),
    )


def register(ctx: ModuleContext) -> None:
    """Labels first (other parts' pages use them), then the views, the record panels and the dashboard card."""
    from core.extension_points import DASHBOARD, RECORD_PANELS
    from modules.device_accounting import admin_held, admin_money, admin_panels, admin_reports

    register_labels(ctx.app)
    add = ctx.add_admin_view
    add(model_view(PrintUserView, PrintUser, _l("Print users"), "device_accounting_user"))
    add(model_view(CostCenterView, CostCenter, _l("Cost centers"), "device_accounting_cost_center"))
    add(model_view(admin_money.QuotaView, Quota, _l("Quotas"), "device_accounting_quota"))
    add(model_view(admin_money.LedgerView, LedgerEntry, _l("Balance movements"), "device_accounting_ledger"))
    add(model_view(admin_money.TransactionView, Transaction, _l("Device jobs"), "device_accounting_transaction"))
    add(model_view(admin_money.RefundView, Refund, _l("Job refunds"), "device_accounting_refund"))
    add(model_view(admin_money.PriceListView, PriceList, _l("Job price lists"), "device_accounting_price_list"))
    add(admin_reports.ReportsView(name=_l("Usage reports"), endpoint="device_accounting_usage"))
    add(model_view(admin_money.ChargebackView, Chargeback, _l("Chargeback"), "device_accounting_chargeback"))
    add(model_view(DirectoryView, Directory, _l("Directories (LDAP)"), "device_accounting_directory"))
    add(model_view(SettingsView, AccountingSettings, _l("Privacy settings"), "device_accounting_privacy"))
    add(ImportView(name=_l("Import print users"), endpoint="device_accounting_import"))
    admin_held.register(ctx)  # held print jobs and print servers
    ctx.register(RECORD_PANELS, admin_panels.DeviceAccountingPanels())
    ctx.register(DASHBOARD, admin_panels.DeviceAccountingDashboard())


# Shared by the views of this module's back office.


def customers() -> list[Partner]:
    return list(db.session.scalars(sa.select(Partner).where(Partner.is_customer.is_(True)).order_by(Partner.name)))


def all_cost_centers() -> list[CostCenter]:
    """Every cost center with its customer and the whole tree loaded, so each path costs no query."""
    found = db.session.scalars(sa.select(CostCenter).options(selectinload(CostCenter.customer))).all()
    return sorted(found, key=lambda cost_center: (cost_center.customer.name, cost_center.path))


def cost_center_choice(cost_center: CostCenter) -> str:
    return f"{cost_center.customer.name} · {cost_center.path}"


def load_trees(customer_ids: set[int]) -> None:
    """Load every cost center of these customers for this request: a path then walks up through rows in the session."""
    if customer_ids:
        found = db.session.scalars(sa.select(CostCenter).where(CostCenter.customer_id.in_(customer_ids))).all()
        g.setdefault("labels_preloaded", []).extend(found)


def tri_coerce(value: Any) -> str:
    """An inheritable yes/no (None: inherited) as the select's value, and back from what the form posted."""
    if value is True or value == "yes":
        return "yes"
    if value is False or value == "no":
        return "no"
    return ""


def tri_value(text: str) -> bool | None:
    return {"yes": True, "no": False}.get(text)


def tri_label(value: bool | None) -> str:
    return str(TRI_LABELS[tri_coerce(value)])


def tri_field(label: Any, description: Any = None) -> SelectField:
    return SelectField(label, choices=list(TRI_LABELS.items()), coerce=tri_coerce, default="", description=description)


def functions_label(functions: list[str] | None) -> str:
    if functions is None:
        return str(TRI_LABELS[""])
    if not functions:
        return _("No function")
    return ", ".join(labels.enum_label("device_accounting.function", code) for code in functions)


PRIVILEGE_COLUMNS = {
    "allowed_functions": _l("Functions allowed"),
    "color_allowed": _l("Colour allowed"),
    "max_sides": _l("Most sides per job"),
    "duplex_forced": _l("Duplex forced"),
}
PRIVILEGE_FORMATTERS = {
    "allowed_functions": lambda view, context, model, name: functions_label(model.allowed_functions),
    "color_allowed": lambda view, context, model, name: tri_label(model.color_allowed),
    "duplex_forced": lambda view, context, model, name: tri_label(model.duplex_forced),
    "max_sides": lambda view, context, model, name: (
        labels.number(model.max_sides) if model.max_sides is not None else str(TRI_LABELS[""])
    ),
}


def functions_field() -> SelectMultipleField:
    return SelectMultipleField(
        _l("Functions allowed"),
        choices=list(FUNCTION_LABELS.items()),
        description=_l("None chosen: inherited from the cost center (at the top: every function)."),
    )


def max_sides_field() -> StringField:
    return StringField(_l("Most sides per job"), description=_l("Empty: inherited (at the top: no limit)."))


def privilege_data(form: Any) -> dict[str, Any]:
    return {
        "allowed_functions": list(form.allowed_functions.data or []) or None,
        "color_allowed": tri_value(form.color_allowed.data),
        "max_sides": (form.max_sides.data or "").strip() or None,
        "duplex_forced": tri_value(form.duplex_forced.data),
    }


def _yes_no(view: Any, value: bool, name: str | None = None) -> str:
    return _("Yes") if value else _("No")


class AccountingView(SecuredModelView):
    """The base of this module's model views: its permissions, and yes/no said in words on the details pages."""

    permission = VIEW
    edit_permission = EDIT
    column_type_formatters_detail = {**typefmt.DETAIL_FORMATTERS, bool: _yes_no}
    fixed_on_edit: tuple[str, ...] = ()  # fields a record keeps once made, left off its edit form

    def edit_form(self, obj=None):
        form = super().edit_form(obj)
        for name in self.fixed_on_edit:
            delattr(form, name)
        return form


class CardNumberFilter(BaseSQLAFilter):
    """Print users holding exactly this card number (leading zeros count)."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        return query.filter(PrintUser.cards.any(Card.number == value.strip()))

    def operation(self) -> Any:
        return _l("is")


class PrintUserForm(BaseForm):
    customer = QuerySelectField(_l("Customer"), query_factory=customers, allow_blank=False)
    username = StringField(_l("Username"))
    full_name = StringField(_l("Full name"))
    email = StringField(
        _l("Email"), description=_l("Quota warnings go here; the same email as a portal user shows them their jobs.")
    )
    language = SelectField(_l("Language"), choices=LANGUAGE_CHOICES, coerce=lambda value: value or "")
    active = BooleanField(_l("Active"), default=True)
    default_cost_center = QuerySelectField(
        _l("Default cost center"), query_factory=all_cost_centers, get_label=cost_center_choice, allow_blank=True
    )
    cost_centers = QuerySelectMultipleField(
        _l("Cost centers it may charge"), query_factory=all_cost_centers, get_label=cost_center_choice
    )
    # The privileges; empty means inherited.
    allowed_functions = functions_field()
    color_allowed = tri_field(_l("Colour allowed"))
    max_sides = max_sides_field()
    duplex_forced = tri_field(_l("Duplex forced"))


USER_FIELDS = {
    "customer_id": "customer",
    "default_cost_center_id": "default_cost_center",
    "cost_center_ids": "cost_centers",
}


class PrintUserView(AccountingView):
    """Print users of every customer: their cards (add, disable a lost one), PIN reset, cost centers, privileges.
    PIN digests and password hashes are never shown."""

    fixed_on_edit = ("customer",)  # cards and PINs are unique per customer
    form = PrintUserForm
    details_template = "device_accounting/admin/user_details.html"
    column_list = ("username", "full_name", "customer", "default_cost_center", "cards", "email", "active")
    column_details_list = (
        "username",
        "full_name",
        "customer",
        "email",
        "language",
        "active",
        "default_cost_center",
        "cost_centers",
        *PRIVILEGE_COLUMNS,
        "directory_user",
        "created_at",
    )
    column_export_list = ("username", "full_name", "customer.name", "email", "language", "active")
    column_labels = {
        "username": _l("Username"),
        "username_key": _l("Username"),
        "full_name": _l("Full name"),
        "customer": _l("Customer"),
        "customer.name": _l("Customer"),
        "email": _l("Email"),
        "language": _l("Language"),
        "active": _l("Active"),
        "default_cost_center": _l("Default cost center"),
        "default_cost_center.name": _l("Default cost center"),
        "cost_centers": _l("Cost centers it may charge"),
        "cards": _l("Cards"),
        "directory_user": _l("Password checked by the directory"),
        "directory_dn": _l("Directory entry"),
        "pin_locked_until": _l("PIN locked until"),
        **PRIVILEGE_COLUMNS,
    }
    column_enums = {"language": "language"}
    column_formatters = {
        **PRIVILEGE_FORMATTERS,
        "cards": lambda view, context, model, name: Markup(", ").join(
            Markup('<a href="{}">{}</a>' if card.active else '<a href="{}"><s>{}</s></a>').format(
                url_for(".details_view", id=model.id), card.number
            )
            for card in model.cards
        ),
    }
    column_formatters_export = {"language": lambda view, context, model, name: model.language or ""}
    column_formatters_detail = {
        "language": lambda view, context, model, name: (
            labels.enum_label("language", model.language) or _("Customer's language")
        )
    }
    column_searchable_list = ("username", "full_name", "email", "customer.name")
    column_filters = (
        "customer.name",
        "active",
        CardNumberFilter(Card.number, _l("Card number")),
        "default_cost_center.name",
    )
    column_default_sort = ("username", False)

    def get_query(self):
        return (
            super()
            .get_query()
            .options(
                selectinload(PrintUser.customer),
                selectinload(PrintUser.cards),
                selectinload(PrintUser.default_cost_center),
            )
        )

    def get_list(self, *args: Any, **kwargs: Any):
        count, rows = super().get_list(*args, **kwargs)
        rows = list(rows)
        load_trees({user.customer_id for user in rows})  # the paths of their default cost centers
        return count, rows

    def _data(self, form: Any) -> dict[str, Any]:
        return {
            "username": form.username.data or "",
            "full_name": form.full_name.data or "",
            "email": form.email.data or None,
            "language": form.language.data or None,
            "active": bool(form.active.data),
            "default_cost_center_id": form.default_cost_center.data.id if form.default_cost_center.data else None,
            "cost_center_ids": [cost_center.id for cost_center in form.cost_centers.data or []],
            **privilege_data(form),
        }

    def create_model(self, form):
        customer = form.customer.data
        return self.save_form(form, lambda: save_user(customer.id if customer else None, self._data(form)), USER_FIELDS)

    def update_model(self, form, model: PrintUser) -> bool:
        saved = self.save_form(form, lambda: save_user(model.customer_id, self._data(form), model), USER_FIELDS)
        return saved is not False

    @expose("/details/")
    def details_view(self):
        user = self.get_one(request.args.get("id", ""))
        if user is None:
            abort(404)
        self._template_args.update(self._extra(user))
        return super().details_view()

    def _extra(self, user: PrintUser) -> dict[str, Any]:
        quota = db.session.scalar(sa.select(Quota).where(Quota.user_id == user.id))
        balance = db.session.scalar(sa.select(Balance).where(Balance.quota_id == quota.id)) if quota else None
        try:
            privileges = effective_privileges(user)
        except ValidationError:
            privileges = None
        from modules.device_accounting.admin_money import money  # admin_money imports this module

        locked = user.pin_locked_until
        return {
            "quota": quota,
            "balance": balance,
            "money": money,
            "locked_until": locked if locked is not None and clock.as_utc(locked) > utcnow() else None,
            "privileges": privileges,
            "functions_label": functions_label,
            "can_edit_user": self._can_edit(),
            "jobs_url": url_for("device_accounting_transaction.index_view", user_id=user.id),
        }

    def _editable_user(self) -> PrintUser:
        if not self._can_edit():
            abort(403)
        user = self.get_one(request.args.get("id", ""))
        if user is None:
            abort(404)
        return user

    def _back(self, user: PrintUser):
        return redirect(url_for(".details_view", id=user.id))

    @expose("/cards/add/", methods=("POST",))
    def add_card(self):
        user = self._editable_user()
        number = request.form.get("number", "")
        self.run_action(
            lambda: add_card(user, number),
            lambda card: _("Card %(number)s added to %(user)s.", number=card.number, user=labels.record_label(user)),
            {"number": _("Card number")},
        )
        return self._back(user)

    @expose("/cards/disable/", methods=("POST",))
    def disable_card(self):
        user = self._editable_user()
        card = next((card for card in user.cards if str(card.id) == request.form.get("card_id")), None)
        if card is None:
            abort(404)
        self.run_action(lambda: disable_card(card), _("Card %(number)s disabled.", number=card.number))
        return self._back(user)

    @expose("/pin/", methods=("POST",))
    def reset_pin(self):
        user = self._editable_user()
        name = labels.record_label(user)
        pin = request.form.get("pin", "").strip()
        if request.form.get("action") == "clear":
            self.run_action(lambda: clear_pin(user), _("The PIN of %(user)s was removed.", user=name))
        elif pin:
            self.run_action(
                lambda: set_pin(user, pin), _("The PIN of %(user)s was changed.", user=name), {"pin": _("PIN")}
            )
        else:
            # Shown this once (only its digest is stored): the staff tell the user.
            self.run_action(
                lambda: generate_pin(user),
                lambda new: _(
                    "The new PIN of %(user)s is %(pin)s: tell them, it is not shown again.", user=name, pin=new
                ),
                {"pin": _("PIN")},
            )
        return self._back(user)


class CostCenterForm(BaseForm):
    customer = QuerySelectField(_l("Customer"), query_factory=customers, allow_blank=False)
    parent = QuerySelectField(
        _l("Part of"),
        query_factory=all_cost_centers,
        get_label=cost_center_choice,
        allow_blank=True,
        blank_text=_l("— at the top of the tree —"),
    )
    name = StringField(_l("Name"))
    code = StringField(_l("Code"), description=_l("The customer's own code, if any."))
    shared = BooleanField(
        _l("Shared account"), description=_l("Jobs charged here draw on this cost center's own quota.")
    )
    active = BooleanField(_l("Active"), default=True)
    # The privileges; empty means inherited.
    allowed_functions = functions_field()
    color_allowed = tri_field(_l("Colour allowed"))
    max_sides = max_sides_field()
    duplex_forced = tri_field(_l("Duplex forced"))


class CostCenterView(AccountingView):
    """The customers' cost-center trees, each shown as its path (`Amministrazione / Contabilità`)."""

    fixed_on_edit = ("customer",)
    form = CostCenterForm
    column_list = ("path", "customer", "code", "shared", "active")
    column_details_list = ("path", "customer", "parent", "code", "shared", "active", *PRIVILEGE_COLUMNS)
    column_export_list = ("path", "customer.name", "code", "shared", "active")
    column_labels = {
        "path": _l("Cost center"),
        "name": _l("Name"),
        "customer": _l("Customer"),
        "customer.name": _l("Customer"),
        "parent": _l("Part of"),
        "code": _l("Code"),
        "shared": _l("Shared account"),
        "active": _l("Active"),
        "directory_key": _l("Directory department"),
        **PRIVILEGE_COLUMNS,
    }
    column_formatters = {**PRIVILEGE_FORMATTERS}
    column_searchable_list = ("name", "code", "customer.name")
    column_filters = ("customer.name", "shared", "active")
    column_sortable_list = ()  # always in tree order: customer by customer, path by path

    def get_query(self):
        by_customer = sa.select(Partner.name).where(Partner.id == CostCenter.customer_id).scalar_subquery()
        return super().get_query().options(selectinload(CostCenter.customer)).order_by(by_customer, CostCenter.id)

    def get_list(self, *args: Any, **kwargs: Any):
        """The trees in order: customer by customer, then path by path."""
        count, rows = super().get_list(*args, **kwargs)
        rows = list(rows)
        load_trees({cost_center.customer_id for cost_center in rows})
        rows.sort(key=lambda cost_center: (cost_center.customer.name, cost_center.path))
        return count, rows

    def _data(self, form: Any) -> dict[str, Any]:
        return {
            "name": form.name.data or "",
            "code": form.code.data or None,
            "parent_id": form.parent.data.id if form.parent.data else None,
            "shared": bool(form.shared.data),
            "active": bool(form.active.data),
            **privilege_data(form),
        }

    def create_model(self, form):
        customer = form.customer.data
        return self.save_form(
            form,
            lambda: save_cost_center(customer.id if customer else None, self._data(form)),
            {"customer_id": "customer", "parent_id": "parent"},
        )

    def update_model(self, form, model: CostCenter) -> bool:
        saved = self.save_form(
            form,
            lambda: save_cost_center(model.customer_id, self._data(form), model),
            {"customer_id": "customer", "parent_id": "parent"},
        )
        return saved is not False


class DirectoryForm(BaseForm):
    customer = QuerySelectField(_l("Customer"), query_factory=customers, allow_blank=False)
    url = StringField(_l("Server address"), description=_l("ldap://server:389 or ldaps://server:636"))
    start_tls = BooleanField(_l("Use STARTTLS"))
    bind_dn = StringField(_l("Bind DN"), description=_l("The account that reads the directory."))
    bind_password = PasswordField(
        _l("Bind password"), description=_l("Stored encrypted and never shown; leave empty to keep the stored one.")
    )
    base_dn = StringField(_l("Base DN"))
    user_filter = StringField(_l("User filter"), default="(objectClass=person)")
    username_attribute = StringField(_l("Username attribute"), default="uid")
    name_attribute = StringField(_l("Name attribute"), default="cn")
    email_attribute = StringField(_l("Email attribute"), default="mail")
    department_attribute = StringField(
        _l("Department attribute"), default="departmentNumber", description=_l("Departments become cost centers.")
    )
    card_attribute = StringField(_l("Card number attribute"))
    sync_every_hours = StringField(
        _l("Sync every (hours)"), default="24", description=_l("Empty: only when you press Sync now.")
    )


DIRECTORY_FIELDS = (
    "url",
    "bind_dn",
    "base_dn",
    "user_filter",
    "username_attribute",
    "name_attribute",
    "email_attribute",
    "department_attribute",
    "card_attribute",
)
# What a sync reports, by its key (directory.sync's counts; "problems" and "error" are shown as they are).
SYNC_RESULT_LABELS = {
    "users": _l("Users read"),
    "created": _l("Users created"),
    "updated": _l("Users updated"),
    "deactivated": _l("Users deactivated"),
    "cost_centers": _l("Cost centers created"),
}
SYNC_STATUS_LABELS = {"ok": _l("Completed"), "failed": _l("Failed")}


def sync_result_items(result: dict | None) -> list[tuple[str, str]]:
    """A sync's counts as (label, number) rows."""
    return [
        (str(label), labels.number(result[key]))
        for key, label in SYNC_RESULT_LABELS.items()
        if result and isinstance(result.get(key), int)
    ]


def _moment(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _last_result(view: Any, context: Any, model: Directory, name: str) -> str:
    result = model.last_sync_result or {}
    if not result:
        return ""
    status = str(SYNC_STATUS_LABELS.get(result.get("status"), ""))
    counts = ", ".join(f"{label} {value}" for label, value in sync_result_items(result))
    return " · ".join(part for part in (status, counts) if part)


class DirectoryView(AccountingView):
    """Each customer's LDAP / Active Directory: address, bind account (password write-only), Sync now, last result."""

    fixed_on_edit = ("customer",)
    allow_delete = True
    form = DirectoryForm
    details_template = "device_accounting/admin/directory_details.html"
    column_list = ("customer", "url", "base_dn", "sync_every_hours", "last_sync_at", "last_sync_result")
    column_details_list = (
        "customer",
        "url",
        "start_tls",
        "bind_dn",
        "base_dn",
        "user_filter",
        "username_attribute",
        "name_attribute",
        "email_attribute",
        "department_attribute",
        "card_attribute",
        "sync_every_hours",
        "last_sync_at",
    )
    column_export_list = ("customer.name", "url", "base_dn", "sync_every_hours", "last_sync_at")
    column_labels = {
        "customer": _l("Customer"),
        "customer.name": _l("Customer"),
        "url": _l("Server address"),
        "start_tls": _l("Use STARTTLS"),
        "bind_dn": _l("Bind DN"),
        "bind_password_sealed": _l("Bind password"),
        "base_dn": _l("Base DN"),
        "user_filter": _l("User filter"),
        "username_attribute": _l("Username attribute"),
        "name_attribute": _l("Name attribute"),
        "email_attribute": _l("Email attribute"),
        "department_attribute": _l("Department attribute"),
        "card_attribute": _l("Card number attribute"),
        "sync_every_hours": _l("Sync every (hours)"),
        "last_sync_at": _l("Last sync"),
        "last_sync_result": _l("Last result"),
    }
    column_formatters = {
        "last_sync_result": _last_result,
        "sync_every_hours": lambda view, context, model, name: (
            labels.number(model.sync_every_hours) if model.sync_every_hours else _("Only on demand")
        ),
    }
    column_searchable_list = ("customer.name", "url")

    def get_query(self):
        return super().get_query().options(selectinload(Directory.customer))

    def _data(self, form: Any) -> dict[str, Any]:
        data: dict[str, Any] = {name: (form[name].data or "").strip() or None for name in DIRECTORY_FIELDS}
        data["start_tls"] = bool(form.start_tls.data)
        data["sync_every_hours"] = (form.sync_every_hours.data or "").strip() or None
        if form.bind_password.data:
            data["bind_password"] = form.bind_password.data
        return data

    def create_model(self, form):
        customer = form.customer.data
        return self.save_form(
            form,
            lambda: save_directory(customer.id if customer else None, self._data(form)),
            {"customer_id": "customer"},
        )

    def update_model(self, form, model: Directory) -> bool:
        saved = self.save_form(form, lambda: save_directory(model.customer_id, self._data(form)))
        return saved is not False

    @expose("/details/")
    def details_view(self):
        directory = self.get_one(request.args.get("id", ""))
        if directory is None:
            abort(404)

        result = sync_summary(directory) or {}
        self._template_args.update(
            result=result,
            result_items=sync_result_items(result),
            result_at=_moment(result.get("at")),
            job_status=sync_status(directory.id),
            sync_status_labels=SYNC_STATUS_LABELS,
            can_sync=self._can_edit(),
            has_password=bool(directory.bind_password_sealed),
        )
        return super().details_view()

    def _editable(self) -> Directory:
        if not self._can_edit():
            abort(403)
        directory = self.get_one(request.args.get("id", ""))
        if directory is None:
            abort(404)
        return directory

    @expose("/sync/", methods=("POST",))
    def sync_now(self):
        """Start a sync in the background (at once without a worker); the page shows its state and result."""

        directory = self._editable()
        db.session.commit()
        sync_now(directory.id)
        flash(_("The sync of the directory has started: its result shows below when it ends."), "info")
        return redirect(url_for(".details_view", id=directory.id))

    @expose("/test/", methods=("POST",))
    def test_connection(self):
        directory = self._editable()
        problem = test_connection(directory)
        db.session.rollback()
        if problem:
            flash(_("The directory did not answer: %(error)s", error=problem), "error")
        else:
            flash(_("The directory answered and accepted the bind account."), "success")
        return redirect(url_for(".details_view", id=directory.id))


class SettingsForm(BaseForm):
    customer = QuerySelectField(_l("Customer"), query_factory=customers, allow_blank=False)
    hide_document_names = BooleanField(
        _l("Hide document names"), description=_l("Document names are never stored, not even in logs.")
    )
    anonymise_after_months = StringField(
        _l("Anonymise jobs after (months)"),
        description=_l("Older jobs lose their user and document name; cost centers and counts stay. Empty: never."),
    )
    held_job_hours = StringField(
        _l("Held print jobs wait (hours)"),
        default="4",
        description=_l("A held job not released by then expires and its document is deleted. Empty: 4 hours."),
    )


class SettingsView(AccountingView):
    """Per customer: hide document names, anonymise jobs after N months, how long held print jobs wait."""

    fixed_on_edit = ("customer",)
    form = SettingsForm
    column_list = ("customer", "hide_document_names", "anonymise_after_months", "held_job_hours")
    column_labels = {
        "customer": _l("Customer"),
        "customer_id": _l("Customer"),
        "customer.name": _l("Customer"),
        "hide_document_names": _l("Hide document names"),
        "anonymise_after_months": _l("Anonymise jobs after (months)"),
        "held_job_hours": _l("Held print jobs wait (hours)"),
    }
    column_formatters = {
        "anonymise_after_months": lambda view, context, model, name: (
            labels.number(model.anonymise_after_months) if model.anonymise_after_months else _("Never")
        ),
        "held_job_hours": lambda view, context, model, name: labels.number(model.held_job_hours),
    }
    column_searchable_list = ("customer.name",)

    def get_query(self):
        return super().get_query().options(selectinload(AccountingSettings.customer))

    def _save(self, customer_id: int | None, form: Any) -> AccountingSettings:
        return save_settings(
            customer_id,
            {
                "hide_document_names": bool(form.hide_document_names.data),
                "anonymise_after_months": (form.anonymise_after_months.data or "").strip() or None,
                "held_job_hours": (form.held_job_hours.data or "").strip() or None,
            },
        )

    def create_model(self, form):
        customer = form.customer.data
        return self.save_form(
            form, lambda: self._save(customer.id if customer else None, form), {"customer_id": "customer"}
        )

    def update_model(self, form, model: AccountingSettings) -> bool:
        return self.save_form(form, lambda: self._save(model.customer_id, form)) is not False


class ImportView(csv_import.ImportView):
    """Upload a CSV of print users with their cards, see every row's errors, then write all rows or none."""

    permission = EDIT
    heading = _l("Import print users from a spreadsheet")

    @property
    def importers(self):  # type: ignore[override]

        return (UserImporter, UserAndCostCenterImporter)
