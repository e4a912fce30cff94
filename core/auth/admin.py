"""The Users and Audit log admin views."""

from __future__ import annotations

from flask import Flask, current_app, flash
from flask_admin.actions import action
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms.validators import ValidationError

from core import audit, labels
from core.admin import SecuredModelView, model_view
from core.auth import services, sessions
from core.auth.services import UserError
from core.db import db
from core.models import AuditLog, Partner, User
from core.permissions import CUSTOMER_ROLES, ROLES

ROLE_LABELS = {
    "dealer_admin": _l("Dealer administrator"),
    "back_office": _l("Back office"),
    "technician": _l("Technician"),
    "customer_admin": _l("Customer administrator"),
    "customer_user": _l("Customer user"),
}
LANGUAGE_CHOICES = [("", _l("Customer's language")), ("it", "Italiano"), ("en", "English"), ("es", "Español")]
USER_COLUMNS = ("email", "name", "role", "customer", "language", "active", "last_login_at", "created_at")


def _customers():
    return db.session.scalars(db.select(Partner).where(Partner.is_customer.is_(True)).order_by(Partner.name))


class UserView(SecuredModelView):
    """Staff and customer accounts. Passwords are never typed here: new users get a set-password email."""

    permission = "users.manage"
    edit_permission = "users.manage"
    column_list = USER_COLUMNS
    column_details_list = USER_COLUMNS
    column_export_list = USER_COLUMNS
    column_labels = {
        "email": _l("Email"),
        "name": _l("Name"),
        "role": _l("Role"),
        "customer": _l("Customer"),
        "language": _l("Language"),
        "active": _l("Active"),
        "last_login_at": _l("Last login"),
        "created_at": _l("Created"),
    }
    column_searchable_list = ("email", "name")
    column_filters = ("role", "active", "language", "customer.name")
    column_default_sort = "email"
    column_formatters = {"role": lambda view, context, model, name: ROLE_LABELS.get(model.role, model.role)}
    column_enums = {"language": "language"}
    form_columns = ("email", "name", "role", "customer", "language", "active")
    form_choices = {"role": [(role, ROLE_LABELS[role]) for role in ROLES], "language": LANGUAGE_CHOICES}
    form_args = {
        "customer": {
            "query_factory": _customers,
            "description": _l("Only for customer roles: the customer this person works for."),
        },
        "email": {"description": _l("New users receive an email with a link to choose their password.")},
    }

    def create_form(self, obj=None):
        form = super().create_form(obj)
        if current_user.role != "dealer_admin":
            form.role.choices = [(role, ROLE_LABELS[role]) for role in CUSTOMER_ROLES]
        return form

    def on_model_change(self, form, model: User, is_created: bool) -> None:
        model.language = model.language or None
        # No autoflush: a half-valid row must not reach the database before the checks below have spoken.
        with db.session.no_autoflush:
            try:
                model.email = services.normalize_email(model.email)
                services.check_email_free(model.email, None if is_created else model.id)
                services.validate_role(model.role, model.customer.id if model.customer is not None else None)
                services.check_can_manage(current_user, model.role, services.stored_value(model, "role"))
                if services.was_active_admin(model):
                    services.check_admin_remains(model, model.role, model.active)
            except UserError as exc:
                raise ValidationError(exc.message) from None
        if is_created:
            model.session_version = 1
            db.session.flush()
            services.send_set_password_email(model)
        elif not model.active and services.stored_value(model, "active"):
            # Ended, not just refused: reactivating the account later must not revive a copied cookie.
            sessions.revoke_all(model)

    def after_model_change(self, form, model: User, is_created: bool) -> None:
        if is_created:
            flash(_("%(email)s will receive an email to choose a password.", email=model.email), "success")

    def is_action_allowed(self, name: str) -> bool:
        return self._can_edit() and super().is_action_allowed(name)

    @action(
        "send_set_password",
        _l("Send set-password email"),
        _l("Email the selected users a link to choose a new password?"),
    )
    def action_send_set_password(self, ids) -> None:
        sent, refused = [], []
        for user in db.session.scalars(db.select(User).where(User.id.in_([int(i) for i in ids]))):
            try:
                services.check_can_manage(current_user, user.role, user.role)
            except UserError:
                refused.append(user.email)
                continue
            if not user.active:
                refused.append(user.email)
                continue
            services.send_set_password_email(user)
            sent.append(user.email)
        db.session.commit()
        if sent:
            flash(_("Set-password email queued for: %(emails)s", emails=", ".join(sent)), "success")
        if refused:
            flash(
                _("Not sent (inactive, or a staff account you may not manage): %(emails)s", emails=", ".join(refused)),
                "error",
            )


def _audited(model: AuditLog) -> tuple[type | None, object | None]:
    """The model class of an entry's table and the record itself when it still exists (loaded with the page)."""
    return audit.entry_record(model)


# What the audit log records when no user acted (core/audit.py), in the reader's language.
ACTOR_WORDS = {"system": _l("System (scheduled job)"), "anonymous": _l("Not logged in")}


def _actor(view, context, model: AuditLog, name: str):
    """Who acted: the user as a link when known, else what was recorded ("system", an email that failed to log in)."""
    user = audit.entry_user(model)
    if user is not None:
        return labels.record_link(user)
    return str(ACTOR_WORDS.get(model.actor, model.actor))


def _field_label(cls: type | None, field: str) -> str:
    """A changed field by the label the back office gives it (the admin view of its model), else core's shared one."""
    admin = current_app.extensions["copydesk"].admin
    view = next((v for v in admin._views if getattr(v, "model", None) is cls), None) if cls else None
    if view is not None and view.column_labels and field in view.column_labels:
        return str(view.column_labels[field])
    return str(labels.COMMON_COLUMN_LABELS.get(field, field.replace("_", " ")))


def _value(value) -> str:
    return "" if value is None else str(value)


def _changes_text(model: AuditLog, limit: int | None) -> str:
    if not model.changes:
        return ""
    cls, _record = _audited(model)
    parts = []
    for field, change in sorted(model.changes.items()):
        if isinstance(change, list) and len(change) == 2:
            parts.append(f"{_field_label(cls, field)}: {_value(change[0])} → {_value(change[1])}")
        else:
            parts.append(f"{_field_label(cls, field)}: {_value(change)}")
    text = "; ".join(parts)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def _object(view, context, model: AuditLog, name: str):
    """The record an entry is about, by its label and linked; a deleted one by its table's label."""
    _cls, record = _audited(model)
    if record is not None:
        return labels.record_link(record)
    return ""


class AuditLogView(SecuredModelView):
    """Who did what and when; read-only."""

    permission = "audit.view"
    edit_permission = "audit.view"
    allow_create = False
    allow_edit = False
    allow_delete = False
    column_list = ("at", "actor", "action", "object_type", "object_id", "changes", "ip_address")
    column_labels = {
        "at": _l("When"),
        "actor": _l("Who"),
        "action": _l("Action"),
        "object_type": _l("Object type"),
        "object_id": _l("Record"),
        "changes": _l("Changes"),
        "ip_address": _l("IP address"),
        "user_id": _l("User"),
    }
    column_enums = {"action": "audit.action", "object_type": "audit.table"}
    column_default_sort = ("at", True)
    column_filters = ("at", "actor", "action", "object_type", "object_id", "user_id", "ip_address")
    column_searchable_list = ("actor", "action", "object_type", "object_id")
    column_formatters = {
        "changes": lambda view, context, model, name: _changes_text(model, 200),
        "object_id": _object,
        "actor": _actor,
    }
    column_formatters_detail = {
        "changes": lambda view, context, model, name: _changes_text(model, None),
        "object_id": _object,
        "actor": _actor,
        "user_id": lambda view, context, model, name: labels.record_link(audit.entry_user(model)),
    }
    column_formatters_export = {
        "changes": lambda view, context, model, name: _changes_text(model, None),
        "object_id": lambda view, context, model, name: labels.record_label(_audited(model)[1]) or model.object_id,
    }

    def preload_rows(self, rows: list[AuditLog]) -> None:
        """The records and users the page's entries name, one query per table rather than one per entry."""
        super().preload_rows(rows)
        audit.preload_entries(rows)


def init_app(app: Flask) -> None:
    admin = app.extensions["copydesk"].admin
    admin.add_view(model_view(UserView, User, _l("Users"), "core_user", _l("Settings")))
    admin.add_view(model_view(AuditLogView, AuditLog, _l("Audit log"), "core_audit", _l("Settings")))
