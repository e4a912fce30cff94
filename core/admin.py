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

from core.csv_files import neutralise_formula
from core.db import db
from core.extension_points import DASHBOARD, DashboardCard, implementations
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
    """A model list/edit view; `edit_permission` gates create, edit and delete."""

    edit_permission = "admin.access"
    page_size = 50
    can_view_details = True
    can_export = True

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
        _count, data = self._export_data()
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([str(title) for _name, title in self._export_columns])
        writer.writerows([self.get_export_value(row, name) for name, _title in self._export_columns] for row in data)
        disposition = f"attachment;filename={secure_filename(self.get_export_name(export_type='csv'))}"
        return Response(out.getvalue(), headers={"Content-Disposition": disposition}, mimetype="text/csv")


class DashboardView(SecuredMixin, AdminIndexView):
    """The landing page: cards contributed by modules through the `dashboard` extension point."""

    @expose("/")
    def index(self):
        cards = [card for provider in implementations(DASHBOARD) for card in provider.dashboard_cards()]
        return self.render("admin/dashboard.html", cards=cards)


class ModulesView(SecuredView):
    """Each module with its version, state and the reason for it."""

    permission = "admin.access"

    @expose("/")
    def index(self):
        resolution = current_app.extensions["copydesk"].resolution
        return self.render("admin/modules.html", statuses=resolution.statuses.values())


class CoreDashboard:
    """Core's dashboard figures (customers, mail waiting, failed jobs), each shown only to who may open it."""

    def dashboard_cards(self) -> list[DashboardCard]:
        import sqlalchemy as sa

        from core.models import JobRecord, OutboxMessage, Partner

        def count(model, *where) -> int:
            return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0

        cards = []
        if has_permission(current_user, "partners.view"):
            customers = count(Partner, Partner.is_customer.is_(True), Partner.active.is_(True))
            cards.append(DashboardCard(_("Active customers"), str(customers), url_for("core_partner.index_view")))
        if has_permission(current_user, "outbox.view"):
            waiting = count(OutboxMessage, OutboxMessage.status.in_(("pending", "failed")))
            cards.append(DashboardCard(_("Emails waiting or failed"), str(waiting), url_for("core_outbox.index")))
        if has_permission(current_user, "jobs.manage"):
            failed = count(JobRecord, JobRecord.status == "failed")
            cards.append(DashboardCard(_("Failed jobs"), str(failed), url_for("core_jobs.index", status="failed")))
        return cards


def init_admin(app: Flask) -> Admin:
    admin = Admin(
        app,
        name="Copydesk",
        theme=Bootstrap4Theme(swatch="default", base_template="admin/copydesk_base.html"),
        index_view=DashboardView(name=_l("Dashboard"), url="/admin"),
        csp_nonce_generator=csp_nonce,
    )
    admin.add_view(ModulesView(name=_l("Modules"), endpoint="core_modules", category=_l("Settings")))
    return admin


def model_view(view_class: type[ModelView], model, name, endpoint: str, category=None) -> ModelView:
    """Build a model view bound to the shared session, with a unique endpoint."""
    return view_class(model, db, name=name, endpoint=endpoint, category=category)
