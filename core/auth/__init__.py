"""Identity: users and roles, login for staff and customers, password links, the Users and Audit admin views."""

from __future__ import annotations

import datetime as dt

from flask import Flask, flash, g, redirect, request, session, url_for
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_login import current_user, logout_user

from core.auth import services, sessions
from core.errors import API_PREFIX
from core.extension_points import BANNERS, implementations
from core.extensions import login_manager
from core.models import User
from core.permissions import is_staff

DEFAULTS = {
    "REMEMBER_COOKIE_DURATION": dt.timedelta(days=14),
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "PASSWORD_RESET_MAX_AGE": 2 * 3600,
    "SET_PASSWORD_MAX_AGE": 7 * 24 * 3600,
    # Failed logins: one account from one address is slowed first; an address trying many accounts next; an
    # account tried from many addresses only much later, so an attacker elsewhere rarely locks out its owner.
    "LOGIN_LIMIT_PER_ACCOUNT_ADDRESS": "10 per 15 minutes",
    "LOGIN_LIMIT_PER_ADDRESS": "30 per 15 minutes",
    "LOGIN_LIMIT_PER_ACCOUNT": "100 per 15 minutes",
    "RESET_LIMIT_PER_ACCOUNT_ADDRESS": "3 per hour",
    "RESET_LIMIT_PER_ADDRESS": "10 per hour",
    "RESET_LIMIT_PER_ACCOUNT": "10 per hour",
}


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The user of a session or remember cookie whose login is still open: "<user id>:<login secret>"."""
    return sessions.load(user_id)


def _note_activity():
    # Before the view, while this request has written nothing yet: the commit carries only last_seen_at (or, for a
    # login a LOGIN_GATE refuses on its return, its end).
    static = (request.endpoint or "").rsplit(".", 1)[-1] == "static"
    if request.path.startswith(API_PREFIX) or static or "_user_id" not in session:
        return None
    if current_user.is_authenticated:
        refusal = sessions.note_activity()
        if refusal:
            from core.auth.views import login_page_for

            target = login_page_for(current_user)
            logout_user()
            flash(refusal, "error")
            return redirect(target)
    return None


def _template_helpers() -> dict:
    def lang_url(code: str) -> str:
        """The current page in another language, for visitors who are not logged in."""
        if request.endpoint is None:  # an error page for an unknown address
            return f"{request.path}?lang={code}"
        return url_for(request.endpoint, **{**(request.view_args or {}), **request.args.to_dict(), "lang": code})

    def company_name() -> str:
        if "company_name" not in g:
            g.company_name = services.company_name()
        return g.company_name

    def banners() -> list:
        """The notices of the BANNERS providers, for staff on back-office pages."""
        if not is_staff(current_user):
            return []
        if "banners" not in g:
            g.banners = [banner for provider in implementations(BANNERS) for banner in provider.banners()]
        return g.banners

    locale = get_locale()
    return {
        "banners": banners,
        "current_language": locale.language if locale else "en",
        "lang_url": lang_url,
        "company_name": company_name,
        "language_names": {"it": "Italiano", "en": "English", "es": "Español"},
    }


def init_app(app: Flask) -> None:
    from core.auth import admin, cli, views

    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    login_manager.session_protection = "strong"
    login_manager.login_view = "auth.login"
    login_manager.blueprint_login_views = {"portal": "portal.login"}
    login_manager.login_message = _l("Please log in to see this page.")
    login_manager.login_message_category = "info"
    app.register_blueprint(views.bp)
    app.before_request(_note_activity)
    app.context_processor(_template_helpers)
    admin.init_app(app)
    app.cli.add_command(cli.users_cli)
