"""The customer portal's shell: its login, home page, base template and the registry of portal menu entries.

Modules add their portal pages with `register_portal_link(ctx.app, "metering.portal_readings", _l("Send readings"),
icon="gauge", permission="portal.readings")` and guard them with `@portal_view("portal.readings")`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError

from core.auth import portal_users
from core.auth.forms import PortalInviteForm
from core.auth.services import UserError
from core.auth.views import csrf_failed, handle_login, login_limits, rate_limited
from core.db import db
from core.models import Setting
from core.permissions import has_permission, is_staff

bp = Blueprint("portal", __name__, url_prefix="/portal")

LINKS_KEY = "copydesk.portal_links"
ICONS = ("gauge", "invoice", "printer", "users", "key", "ticket", "box", "chart", "document", "home")


@dataclass(frozen=True)
class PortalLink:
    """One entry of the portal menu and home page."""

    endpoint: str
    label: Any
    icon: str | None = None
    permission: str = "portal.access"
    description: Any = None
    order: int = 100


def register_portal_link(
    app: Flask,
    endpoint: str,
    label: Any,
    icon: str | None = None,
    permission: str = "portal.access",
    description: Any = None,
    order: int = 100,
) -> None:
    """Add an entry to the portal menu; shown to customer users whose role grants `permission`.

    `label` and `description` should be lazy_gettext strings; `icon` one of ICONS (an SVG in core/static/icons.svg).
    """
    if icon is not None and icon not in ICONS:
        raise ValueError(f"portal link {endpoint}: unknown icon {icon!r}; choose one of {', '.join(ICONS)}")
    links = app.extensions.setdefault(LINKS_KEY, [])
    if any(link.endpoint == endpoint for link in links):
        raise ValueError(f"portal link {endpoint} is registered twice")
    links.append(PortalLink(endpoint, label, icon, permission, description, order))


def portal_links(user: Any) -> list[PortalLink]:
    """The entries `user` may open, in menu order."""
    links = current_app.extensions.get(LINKS_KEY, [])
    return sorted(
        (link for link in links if has_permission(user, link.permission)),
        key=lambda link: (link.order, str(link.label)),
    )


def portal_view(permission: str = "portal.access") -> Callable:
    """Guard a portal page: anonymous users log in first, staff go to the back office, others need `permission`."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return redirect(url_for("portal.login", next=request.full_path.rstrip("?")))
            if is_staff(current_user):
                return redirect(url_for("admin.index"))
            if not has_permission(current_user, permission):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


@bp.route("/")
@portal_view()
def home():
    return render_template("portal/home.html", links=portal_links(current_user))


@bp.route("/login", methods=["GET", "POST"])
@rate_limited(login_limits)
def login():
    return handle_login("portal")


@bp.route("/users/", methods=["GET", "POST"])
@portal_view("portal.manage_users")
def users():
    form = PortalInviteForm()
    status = 200
    if form.validate_on_submit():
        try:
            invited = portal_users.invite(current_user, form.email.data, form.name.data, form.role.data)
        except UserError as exc:
            db.session.rollback()
            getattr(form, exc.field, form.email).errors.append(exc.message)
        else:
            db.session.commit()
            flash(_("%(email)s will receive an email to choose a password.", email=invited.email), "success")
            return redirect(url_for(".users"))
    if form.errors:
        status = 422
    return render_template(
        "portal/users.html",
        form=form,
        users=portal_users.company_users(current_user),
        roles=dict(form.role.choices),
    ), status


def _change_user(user_id: int, change: Callable, success: str):
    if not FlaskForm().validate_on_submit():  # the CSRF token only
        abort(400)
    user = portal_users.company_user_or_404(current_user, user_id)
    try:
        change(user)
    except UserError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(success % {"name": user.name}, "success")
    return redirect(url_for(".users"))


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@portal_view("portal.manage_users")
def user_active(user_id: int):
    active = request.form.get("active") == "1"
    return _change_user(
        user_id,
        lambda user: portal_users.set_active(current_user, user, active),
        _("%(name)s can use the portal again.") if active else _("%(name)s can no longer use the portal."),
    )


@bp.route("/users/<int:user_id>/role", methods=["POST"])
@portal_view("portal.manage_users")
def user_role(user_id: int):
    return _change_user(
        user_id,
        lambda user: portal_users.set_role(current_user, user, request.form.get("role")),
        _("The role of %(name)s is changed."),
    )


@bp.before_app_request
def _hold_settings() -> None:
    """Read the dealer's settings once for a portal page and keep them for the request.

    The session's identity map holds rows weakly: a setting read for each row of a page (the time zone, for every date
    shown or compared) would otherwise be fetched again each time its last reference went away.
    """
    if request.path.startswith(f"{bp.url_prefix}/") and not (request.endpoint or "").endswith(".static"):
        g.portal_settings = db.session.scalars(sa.select(Setting)).all()


@bp.app_context_processor
def _portal_menu() -> dict:
    return {"portal_menu": lambda: portal_links(current_user)}


bp.register_error_handler(CSRFError, csrf_failed)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    register_portal_link(
        app,
        "auth.change_password",
        _l("Change password"),
        icon="key",
        description=_l("Choose a new password; your other devices are logged out."),
        order=900,
    )
    register_portal_link(
        app,
        "portal.users",
        _l("Users"),
        icon="users",
        permission="portal.manage_users",
        description=_l("Invite your colleagues to the portal, disable their access, choose who administers it."),
        order=800,
    )
