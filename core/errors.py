"""Error pages for people: 403, 404 and 500 in the user's language (the API answers problem+json on its own)."""

from __future__ import annotations

from flask import Flask, render_template, request
from flask_babel import gettext as _
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


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_server_error)
