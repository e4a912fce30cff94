"""Error pages for people: 403, 404, 500 and 503 in the user's language (the API answers problem+json on its own)."""

from __future__ import annotations

from contextlib import suppress

from flask import Flask, current_app, render_template, request
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, InternalServerError

from core.db import db

API_PREFIX = "/api/"


def _page(status: int, title: str, message: str):
    try:
        return render_template("errors/error.html", status=status, title=title, message=message), status
    except Exception:  # an error page must not fail in turn (e.g. the database is down): plain text then
        db.session.rollback()
        return f"{title}\n\n{message}\n", status, {"Content-Type": "text/plain; charset=utf-8"}


def handle_http_error(error: HTTPException):
    if request.path.startswith(API_PREFIX) or error.code not in (403, 404, 500):
        return error
    if error.code == 403:
        return _page(403, _("Not allowed"), _("Your account may not open this page."))
    if error.code == 404:
        return _page(404, _("Page not found"), _("There is nothing at this address. Check the link or start again."))
    return handle_server_error(error)


def handle_server_error(error: Exception):
    db.session.rollback()
    if request.path.startswith(API_PREFIX):
        return InternalServerError()
    return _page(500, _("Something went wrong"), _("The error has been logged. Nothing was saved; please try again."))


def handle_database_unavailable(error: Exception):
    """503, never 500, while the database cannot be reached; the page itself needs no database."""
    from core.api.errors import RETRY_AFTER_SECONDS, request_language
    from core.api.errors import handle_database_unavailable as api_database_unavailable

    if request.path.startswith(API_PREFIX):
        return api_database_unavailable(error)
    current_app.logger.error("database unavailable: %s %s: %s", request.method, request.path, error)
    with suppress(SQLAlchemyError):
        db.session.rollback()
    language = request_language()
    # Rendered without the context processors: they would load the logged-in user from the database.
    with force_locale(language):
        page = current_app.jinja_env.get_template("errors/unavailable.html").render(
            language=language,
            title=_("Temporarily unavailable"),
            message=_("The database cannot be reached at the moment. Nothing was saved; please try again in a minute."),
            retry_url=request.full_path.rstrip("?"),
        )
    return page, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def init_app(app: Flask) -> None:
    from core.api.errors import DATABASE_UNAVAILABLE

    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_server_error)
    for error_class in DATABASE_UNAVAILABLE:
        app.register_error_handler(error_class, handle_database_unavailable)
