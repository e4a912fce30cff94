"""The admin shell: Flask-Admin with secured base views that modules extend, the dashboard and the Modules page."""

from __future__ import annotations

import csv
import io
import numbers
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from flask import Flask, Response, abort, current_app, flash, redirect, request, url_for
from flask_admin import Admin, AdminIndexView, BaseView, expose
from flask_admin.contrib.sqla import ModelView
from flask_admin.theme import Bootstrap4Theme
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.utils import secure_filename

from core import labels
from core.csv_files import neutralise_formula
from core.db import db
from core.extension_points import (
    DASHBOARD,
    RECORD_PANELS,
    DashboardCard,
    RecordActionProvider,
    RecordLink,
    RecordPanel,
    implementations,
)
from core.labels import number
from core.permissions import has_permission
from core.security import csp_nonce
from core.validation import ValidationError

T = TypeVar("T")


class SecuredMixin:
    """Every admin view checks the role: anonymous users go to the login page, others without the permission get 403."""

    permission = "admin.access"

    def is_accessible(self) -> bool:
        return has_permission(current_user, self.permission)

    def inaccessible_callback(self, name, **kwargs):
        if not current_user.is_authenticated:
            return redirect(url_for("auth.login", next=request.full_path))
        abort(403)

    def run_action(
        self,
        action: Callable[[], T],
        success: str | Callable[[T], str] | None = None,
        labels: dict[str, Any] | None = None,
    ) -> T | None:
        """Run a button's action in the request's transaction and commit, flashing `success` (a text, or made from the
        action's result); when the action refuses (ValidationError), roll back, flash its messages after their field's
        label in `labels`, and return None."""
        try:
            result = action()
        except ValidationError as error:
            db.session.rollback()
            flash(error.messages(labels), "error")
            return None
        db.session.commit()
        if success is not None:
            flash(success(result) if callable(success) else success, "success")
        return result

    def show_errors(self, form: Any, error: ValidationError, fields: dict[str, str] | None = None) -> None:
        """Put each field error under the form field it names (`fields` maps a service's field, `customer_id`, to the
        form's, `customer`); an error no field of the form shows is flashed after its label."""
        labels = getattr(self, "column_labels", None) or {}
        for field, message in error.errors.items():
            name = (fields or {}).get(field, field)
            target = form._fields.get(name)
            if target is not None:
                target.errors = [*target.errors, message]
            else:
                flash(f"{labels.get(name, name)}: {message}", "error")

    def save_form(self, form: Any, save: Callable[[], T], fields: dict[str, str] | None = None) -> T | Literal[False]:
        """A create or edit form saved through a service function: commit and return what it returned; when it refuses,
        roll back, show the errors on the form and return False (Flask-Admin then shows the form again)."""
        try:
            result = save()
        except ValidationError as error:
            db.session.rollback()
            self.show_errors(form, error, fields)
            return False
        db.session.commit()
        return result


class SecuredView(SecuredMixin, BaseView):
    """A custom admin page."""


class SecuredModelView(SecuredMixin, ModelView):
    """A model list/edit view; `edit_permission` gates create, edit and delete.

    Every column showing a related record (a relationship, a dotted column read through one such as
    `device.customer.name`, a foreign key such as a replacement's `meter`) shows that record by its label as a link to
    its page, unless the view formats the column itself; a list loads those records with its rows (`get_query`,
    `preload_rows`), so a page costs the same number of queries for 5 rows as for 50."""

    edit_permission = "admin.access"
    page_size = 50
    can_view_details = True
    can_export = True
    # Columns showing an enum code, by the registered enum naming its labels: {"state": "invoice.state"}.
    column_enums: dict[str, str] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every list and details page: related records as labelled links, enum codes by their label, moments in the
        # dealer's time zone, dates and numbers in the user's language (core/labels.py).
        self.column_type_formatters = labels.type_formatters(self.column_type_formatters)
        self.column_type_formatters_detail = labels.type_formatters(self.column_type_formatters_detail)
        enum_formatters = {column: labels.enum_column(enum) for column, enum in self.column_enums.items()}
        listed = [name for name, _title in self._list_columns]
        exported = [name for name, _title in self._export_columns]
        detailed = [name for name, _title in self._details_columns]
        self.column_formatters = {
            **self._related_formatters(listed, link=True),
            **enum_formatters,
            **(self.column_formatters or {}),
        }
        self.column_formatters_detail = {
            **self._related_formatters(detailed, link=True),
            **enum_formatters,
            **(self.column_formatters_detail or {}),
        }
        self.column_formatters_export = {
            **self._related_formatters(exported, link=False),
            **enum_formatters,
            **(self.column_formatters_export or {}),
        }
        # What a list page loads with its rows: the related records its columns name (those the view formats
        # itself too: a hand-made formatter may read the same relationship).
        rows_show = list(dict.fromkeys(listed + exported))
        self._list_paths = [path for name in rows_show if (path := labels.related_path(self.model, name))]
        self._list_foreign = {name: model for name in rows_show if (model := labels.foreign_model(self.model, name))}
        # Flask-Admin's own eager loads of the same relationships would conflict with those.
        covered = {path.keys[0] for path in self._list_paths}
        self._auto_joins = [join for join in self._auto_joins if getattr(join, "key", join) not in covered]

    def _related_formatters(self, names: list[str], link: bool) -> dict[str, Callable]:
        formatters: dict[str, Callable] = {}
        for name in names:
            if (path := labels.related_path(self.model, name)) is not None:
                formatters[name] = labels.related_column(path, link)
            elif (target := labels.foreign_model(self.model, name)) is not None:
                formatters[name] = labels.foreign_column(target, link)
        return formatters

    def get_query(self):
        """The listed rows with the related records their columns name, and what those records' labels need."""
        return super().get_query().options(*labels.related_loads(self.model, self._list_paths))

    def get_list(self, *args: Any, **kwargs: Any):
        count, rows = super().get_list(*args, **kwargs)
        if isinstance(rows, list):
            self.preload_rows(rows)
        return count, rows

    def preload_rows(self, rows: list[Any]) -> None:
        """Load at once what the page's rows show beyond their relationships: the records their foreign-key columns
        point to. A view whose rows name records some other way (the audit log) extends this."""
        for name, target in self._list_foreign.items():
            labels.preload_records(target, [getattr(row, name) for row in rows])

    def get_column_name(self, field: str) -> str:
        """The column's label, else core's shared one (`created_at`: "Created"), never Flask-Admin's English guess."""
        if self.column_labels and field in self.column_labels:
            return self.column_labels[field]
        if field in labels.COMMON_COLUMN_LABELS:
            return labels.COMMON_COLUMN_LABELS[field]
        return super().get_column_name(field)

    def _can_edit(self) -> bool:
        return has_permission(current_user, self.edit_permission)

    @property
    def can_create(self) -> bool:  # type: ignore[override]
        return self._can_edit() and getattr(self, "allow_create", True)

    @property
    def can_edit(self) -> bool:  # type: ignore[override]
        return self._can_edit() and getattr(self, "allow_edit", True)

    @property
    def can_delete(self) -> bool:  # type: ignore[override]
        return self._can_edit() and getattr(self, "allow_delete", False)

    def get_export_value(self, model: Any, name: str) -> Any:
        """A cell of an export: numbers as they are, text with formulas neutralised (`'=1+2`: OWASP CSV injection)."""
        value = super().get_export_value(model, name)
        return value if isinstance(value, numbers.Number) else neutralise_formula(str(value))

    def _export_csv(self, return_url: str) -> Response:
        """The CSV written whole before the view returns: Flask-Admin's streamed file is written after the request's
        session has closed, so a column reaching a relationship (a device's model) broke the download mid-file."""
        _count, query = self._export_data()
        data = list(query)
        self.preload_rows(data)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([str(title) for _name, title in self._export_columns])
        writer.writerows([self.get_export_value(row, name) for name, _title in self._export_columns] for row in data)
        disposition = f"attachment;filename={secure_filename(self.get_export_name(export_type='csv'))}"
        return Response(out.getvalue(), headers={"Content-Disposition": disposition}, mimetype="text/csv")


class DashboardView(SecuredMixin, AdminIndexView):
    """The landing page: what needs doing today, contributed by modules through the `dashboard` extension point."""

    @expose("/")
    def index(self):
        cards = [card for provider in implementations(DASHBOARD) for card in provider.dashboard_cards()]
        can_fill = has_permission(current_user, "company.manage")
        return self.render(
            "admin/dashboard.html",
            cards=cards,
            company_missing=company_missing(),
            has_company_form=can_fill,
            company_form_url=company_form_url() if can_fill else None,
        )


def company_missing() -> list[str]:
    """The company data an invoice needs and the dealer has not filled in yet (the first-run banner names them)."""
    import sqlalchemy as sa

    from core.models import Company
    from core.partners import FIELD_LABELS

    company = db.session.scalar(sa.select(Company).order_by(Company.id).limit(1))
    needed = ("name", "vat_number", "street", "postal_code", "city", "email")
    return [str(FIELD_LABELS[name]) for name in needed if company is None or not getattr(company, name)]


def company_form_url() -> str:
    import sqlalchemy as sa

    from core.models import Company

    company_id = db.session.scalar(sa.select(Company.id).order_by(Company.id).limit(1))
    if company_id is None:
        return url_for("core_company.create_view")
    return url_for("core_company.edit_view", id=company_id)


def record_panels(kind: str, record_id: int) -> list[RecordPanel]:
    """The panels the enabled modules add to the page of record `record_id` of `kind` (the detail templates' call)."""
    return [panel for provider in implementations(RECORD_PANELS) for panel in provider.record_panels(kind, record_id)]


def record_actions(kind: str, record_id: int) -> list[RecordLink]:
    """The actions the enabled modules offer on record `record_id` of `kind` (a run's missing reading: enter it)."""
    return [
        action
        for provider in implementations(RECORD_PANELS)
        if isinstance(provider, RecordActionProvider)
        for action in provider.record_actions(kind, record_id)
    ]


class ModulesView(SecuredView):
    """Each module with its version, state and the reason for it."""

    permission = "admin.access"

    @expose("/")
    def index(self):
        resolution = current_app.extensions["copydesk"].resolution
        return self.render("admin/modules.html", statuses=resolution.statuses.values())


class CoreDashboard:
    """Core's part of the day's work: mail that failed or is held, jobs that failed; each shown to who may open it."""

    def dashboard_cards(self) -> list[DashboardCard]:
        import sqlalchemy as sa

        from core.models import JobRecord, OutboxMessage, Partner

        def count(model, *where) -> int:
            return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0

        cards = []
        if has_permission(current_user, "partners.view"):
            customers = count(Partner, Partner.is_customer.is_(True), Partner.active.is_(True))
            cards.append(DashboardCard(_("Active customers"), number(customers), url_for("core_partner.index_view")))
        if has_permission(current_user, "outbox.view"):
            for status, title in (("failed", _("Emails failed")), ("kept", _("Emails held in the outbox"))):
                waiting = count(OutboxMessage, OutboxMessage.status == status)
                cards.append(DashboardCard(title, number(waiting), url_for("core_outbox.index", status=status)))
        if has_permission(current_user, "jobs.manage"):
            failed = count(JobRecord, JobRecord.status == "failed")
            cards.append(DashboardCard(_("Failed jobs"), number(failed), url_for("core_jobs.index", status="failed")))
        return cards


def init_admin(app: Flask) -> Admin:
    admin = Admin(
        app,
        name="Copydesk",
        theme=Bootstrap4Theme(swatch="default", base_template="admin/copydesk_base.html"),
        index_view=DashboardView(name=_l("Dashboard"), url="/admin"),
        csp_nonce_generator=csp_nonce,
    )
    labels.init_app(app)
    _register_core_labels(app)
    app.jinja_env.globals.update(record_panels=record_panels, record_actions=record_actions)
    admin.add_view(ModulesView(name=_l("Modules"), endpoint="core_modules", category=_l("Settings")))
    return admin


AUDIT_ACTIONS = {
    "create": _l("Record created"),
    "update": _l("Record changed"),
    "delete": _l("Record deleted"),
    "login": _l("Logged in"),
    "login_failed": _l("Failed login"),
    "logout": _l("Logged out"),
    "password_changed": _l("Password changed"),
    "password_set": _l("Password set"),
    "set_password_sent": _l("Set-password email sent"),
    "password_reset_requested": _l("Password reset requested"),
    "token_created": _l("API token created"),
    "token_used": _l("API token used"),
    "token_revoked": _l("API token revoked"),
}
CORE_TABLES = {
    "core_module": _l("Module"),
    "core_partner": _l("Partner"),
    "core_partner_contact": _l("Partner contact"),
    "core_company": _l("Company"),
    "core_sequence": _l("Numbering"),
    "core_setting": _l("Setting"),
    "core_audit_log": _l("Audit log"),
    "core_user": _l("User"),
    "core_api_token": _l("API token"),
    "core_user_session": _l("Login session"),
    "core_outbox_message": _l("Email"),
    "core_outbox_attachment": _l("Email attachment"),
    "core_job": _l("Job"),
}


def _register_core_labels(app: Flask) -> None:
    from core.auth.admin import LANGUAGE_CHOICES, ROLE_LABELS
    from core.jobs import STATUS_LABELS as JOB_STATUSES
    from core.models import Company, Partner, User
    from core.outbox import STATUS_LABELS as OUTBOX_STATUSES

    labels.register_enum(app, "audit.action", AUDIT_ACTIONS)
    labels.register_enum(app, "audit.table", CORE_TABLES)
    labels.register_enum(app, "user.role", ROLE_LABELS)
    labels.register_enum(app, "language", {code: label for code, label in LANGUAGE_CHOICES if code})
    labels.register_enum(app, "job.status", JOB_STATUSES)
    labels.register_enum(app, "outbox.status", OUTBOX_STATUSES)
    labels.register_enum(app, "job.func", {"core.outbox:send_message": _l("Send an email")})
    labels.register_record(app, Partner, lambda partner: partner.name)
    labels.register_kind(
        app,
        "customer",
        lambda ident: db.session.get(Partner, ident),
        lambda ids: db.session.scalars(db.select(Partner).where(Partner.id.in_(ids))).all(),
    )
    labels.register_record(app, Company, lambda company: company.name)
    labels.register_record(app, User, lambda user: user.name or user.email)


def arg_id(name: str) -> int | None:
    """The query argument `name` as a record id: a whole number that fits an integer column, else None."""
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and int(value) < 2**31 else None


def model_view(view_class: type[ModelView], model, name, endpoint: str, category=None) -> ModelView:
    """Build a model view bound to the shared session, with a unique endpoint."""
    return view_class(model, db, name=name, endpoint=endpoint, category=category)
