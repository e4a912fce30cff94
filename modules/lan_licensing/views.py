"""The read-only guard: past the licence's grace, staff writes are refused (the portal and licence pages excepted)."""

from __future__ import annotations

from flask import Blueprint, flash, jsonify, redirect, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from core.api.tokens import authenticate_token
from core.context import ModuleContext
from core.errors import API_PREFIX
from core.permissions import is_staff
from modules.lan_licensing import state

bp = Blueprint("lan_licensing", __name__)

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# Still open when read-only: logging in and out, one's own password and language, and installing a licence.
ALWAYS_OPEN = {
    "auth.login",
    "auth.logout",
    "auth.set_language",
    "auth.change_password",
    "auth.forgot_password",
    "auth.reset_password",
    "auth.set_password",
    "lan_licensing_licence.install",
    "lan_licensing_licence.end_session",
}


def _staff_writer() -> bool:
    if request.path.startswith(API_PREFIX):
        scheme, _sep, credentials = request.headers.get("Authorization", "").partition(" ")
        user = authenticate_token(credentials.strip()) if scheme.lower() == "bearer" else None
        return is_staff(user)
    return current_user.is_authenticated and is_staff(current_user)


@bp.before_app_request
def refuse_staff_writes():
    if request.method in SAFE_METHODS or request.endpoint in ALWAYS_OPEN or request.path.startswith("/portal"):
        return None
    if not state.current().read_only or not _staff_writer():
        return None
    message = _("The licence has expired: staff can read everything and install a licence, but not change data.")
    if request.path.startswith(API_PREFIX):
        problem = {"type": "about:blank", "title": _("Forbidden"), "status": 403, "detail": message}
        response = jsonify(problem)
        response.status_code = 403
        response.mimetype = "application/problem+json"
        return response
    flash(message, "error")
    return redirect(url_for("lan_licensing_licence.index"), 303)


def register(ctx: ModuleContext) -> None:
    ctx.add_blueprint(bp)
