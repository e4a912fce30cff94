"""Login, logout and password pages for staff and customers; rate limits on the login and reset forms."""

from __future__ import annotations

import math
import time
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_limiter import RequestLimit
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, logout_user
from flask_wtf.csrf import CSRFError

from core import audit, signals
from core.auth import services, sessions
from core.auth.forms import ChangePasswordForm, ForgotPasswordForm, LanguageForm, LoginForm, SetPasswordForm
from core.auth.services import RESET, SET_PASSWORD, UserError
from core.db import db
from core.extension_points import LOGIN_GATE, implementations
from core.extensions import limiter
from core.models import User
from core.permissions import is_staff

bp = Blueprint("auth", __name__)

PORTAL_PREFIX = "/portal"


def is_safe_next(target: str | None) -> bool:
    """Only a path on this host: no scheme, no host, no `//evil.com`, no backslash or control-character tricks."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    if any(ord(char) < 32 or ord(char) == 127 for char in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def _in_portal(path: str) -> bool:
    return path == PORTAL_PREFIX or path.startswith(PORTAL_PREFIX + "/") or path.startswith(PORTAL_PREFIX + "?")


def landing_url(user: User, next_url: str | None = None) -> str:
    """Where a user goes after logging in: a safe `next` in their own area, else the back office or the portal."""
    if is_staff(user):
        if is_safe_next(next_url) and not _in_portal(next_url):
            return next_url
        return url_for("admin.index")
    if is_safe_next(next_url) and _in_portal(next_url):
        return next_url
    return url_for("portal.home")


def login_page_for(user: User | None) -> str:
    return url_for("auth.login") if user is None or is_staff(user) else url_for("portal.login")


# Rate limits: only failed attempts are counted, per account and address, per address and per account, each shared by
# both login pages. Behind TRUSTED_PROXIES the address is the client's (ProxyFix), not the proxy's.
def _account() -> str:
    return (request.form.get("email") or "").strip().lower()


def _account_key() -> str:
    return "account:" + _account()


def _account_address_key() -> str:
    return f"account-address:{_account()}|{get_remote_address()}"


def _attempt_failed(response) -> bool:
    return bool(g.get("attempt_failed"))


def _too_many_attempts(request_limit: RequestLimit):
    minutes = max(1, math.ceil((request_limit.reset_at - time.time()) / 60))
    message = _("Too many attempts. Wait %(minutes)s minutes, then try again.", minutes=minutes)
    page = _LIMITED_PAGES[request.endpoint]
    return make_response(page(error=message), 429)


def _limit(setting: str, scope: str, key_func):
    return limiter.shared_limit(
        lambda: current_app.config[setting],
        scope=scope,
        key_func=key_func,
        methods=["POST"],
        deduct_when=_attempt_failed,
        on_breach=_too_many_attempts,
    )


login_limits = (
    _limit("LOGIN_LIMIT_PER_ACCOUNT_ADDRESS", "login-account-address", _account_address_key),
    _limit("LOGIN_LIMIT_PER_ADDRESS", "login-address", get_remote_address),
    _limit("LOGIN_LIMIT_PER_ACCOUNT", "login-account", _account_key),
)
reset_limits = (
    _limit("RESET_LIMIT_PER_ACCOUNT_ADDRESS", "reset-account-address", _account_address_key),
    _limit("RESET_LIMIT_PER_ADDRESS", "reset-address", get_remote_address),
    _limit("RESET_LIMIT_PER_ACCOUNT", "reset-account", _account_key),
)


def rate_limited(limits):
    def decorate(view):
        for limit in reversed(limits):
            view = limit(view)
        return view

    return decorate


def render_login(audience: str, form: LoginForm | None = None, error: str | None = None) -> str:
    form = form or LoginForm()
    if error:
        form.form_errors.append(error)
    return render_template("auth/login.html", form=form, audience=audience)


def handle_login(audience: str):
    """The login form of `audience` ("staff" or "portal"); both accept every role and send each to its own area."""
    next_url = request.values.get("next")
    if current_user.is_authenticated:
        return redirect(landing_url(current_user, next_url))
    form = LoginForm()
    if request.method == "GET" and is_safe_next(next_url):
        form.next.data = next_url
    if request.method == "POST":
        # Every POST that does not log in counts against the limits, a malformed one too.
        g.attempt_failed = True
    if form.validate_on_submit():
        user, why = services.authenticate(form.email.data, form.password.data)
        if user is None:
            audit.record(
                "login_failed",
                User.__tablename__,
                None,
                {"email": (form.email.data or "").strip()[:254], "reason": why},
            )
            db.session.commit()
            if why == "inactive":
                form.form_errors.append(_("This account is disabled. Ask your contact at the dealer."))
            else:
                form.form_errors.append(_("Wrong email or password."))
        else:
            g.attempt_failed = False
            refusal = complete_login(user, remember=form.remember.data)
            if refusal is None:
                return redirect(landing_url(user, form.next.data or request.args.get("next")))
            form.form_errors.append(refusal)
    return render_login(audience, form)


def complete_login(user: User, remember: bool = False) -> str | None:
    """Start the login and commit; a LOGIN_GATE's refusal (seats all taken) is returned instead, nothing written."""
    for gate in implementations(LOGIN_GATE):
        refusal = gate.refuse_login(user)
        if refusal:
            db.session.rollback()
            return refusal
    sessions.log_in(user, remember=remember)
    services.record_login(user)
    db.session.commit()
    signals.user_logged_in.send(current_app._get_current_object(), user_id=user.id)
    return None


@bp.route("/login", methods=["GET", "POST"])
@rate_limited(login_limits)
def login():
    return handle_login("staff")


@bp.route("/logout", methods=["POST"])
def logout():
    user = current_user._get_current_object() if current_user.is_authenticated else None
    if user is not None:
        sessions.revoke_current()
        audit.record("logout", User.__tablename__, user.id, {"email": user.email})
        db.session.commit()
    target = login_page_for(user)
    logout_user()
    return redirect(target)


def render_forgot(form: ForgotPasswordForm | None = None, error: str | None = None, sent: bool = False) -> str:
    form = form or ForgotPasswordForm()
    if error:
        form.form_errors.append(error)
    return render_template("auth/forgot_password.html", form=form, sent=sent)


@bp.route("/forgot-password", methods=["GET", "POST"])
@rate_limited(reset_limits)
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        # Counted as an "attempt" whether or not the account exists, so the limits say nothing about it either.
        g.attempt_failed = True
        services.request_password_reset(form.email.data)
        db.session.commit()
        return render_forgot(form, sent=True)
    return render_forgot(form)


def _password_link_page(token: str, purpose: services.LinkPurpose, template: str):
    response = make_response(_password_link_form(token, purpose, template))
    # The address carries the token: no request from this page may send it on, not even to this site's own logs.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _password_link_form(token: str, purpose: services.LinkPurpose, template: str):
    user = services.user_for_token(token, purpose)
    if user is None:
        return render_template("auth/link_invalid.html"), 400
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            services.complete_password_link(token, purpose, form.new_password.data)
        except UserError as exc:
            form.new_password.errors.append(exc.message)
        else:
            db.session.commit()
            flash(_("Your password is saved."), "success")
            refusal = complete_login(user)
            if refusal is not None:
                flash(refusal, "error")
                return redirect(login_page_for(user))
            return redirect(landing_url(user))
    return render_template(template, form=form, user=user)


@bp.route("/reset-password/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    return _password_link_page(token, RESET, "auth/reset_password.html")


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str):
    return _password_link_page(token, SET_PASSWORD, "auth/set_password.html")


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = ChangePasswordForm()
    if form.validate_on_submit():
        user = current_user._get_current_object()
        try:
            services.change_password(user, form.current_password.data, form.new_password.data)
        except UserError as exc:
            getattr(form, exc.field, form.new_password).errors.append(exc.message)
        else:
            db.session.commit()
            flash(_("Your password is changed. Other devices were logged out."), "success")
            return redirect(landing_url(user))
    layout = "auth/base.html" if is_staff(current_user) else "portal/base.html"
    return render_template("auth/change_password.html", form=form, layout=layout, back_url=landing_url(current_user))


@bp.route("/account/language", methods=["POST"])
@login_required
def set_language():
    form = LanguageForm()
    if form.validate_on_submit():
        try:
            services.set_language(current_user._get_current_object(), form.language.data)
        except UserError as exc:
            flash(exc.message, "error")
        else:
            db.session.commit()
    target = form.next.data
    return redirect(target if is_safe_next(target) else landing_url(current_user))


_LIMITED_PAGES = {
    "auth.login": lambda error: render_login("staff", error=error),
    "portal.login": lambda error: render_login("portal", error=error),
    "auth.forgot_password": lambda error: render_forgot(error=error),
}


def csrf_failed(error: CSRFError):
    """A stale or missing form token: show the form again with a message rather than a bare 400 page."""
    message = _("The form expired or was sent from another site. Please try again.")
    page = _LIMITED_PAGES.get(request.endpoint)
    if page is None:
        return render_template("auth/message.html", title=_("Please try again"), message=message), 400
    return make_response(page(error=message), 400)


bp.register_error_handler(CSRFError, csrf_failed)
