"""RFC 7807 problem responses (application/problem+json) for every error under /api/v1, in the caller's language."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import suppress
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import Flask, Response, current_app, json, request
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from core.db import db

API_PREFIX = "/api/v1"
PROBLEM_MIMETYPE = "application/problem+json"

TITLES = {
    400: _l("Bad request"),
    401: _l("Authentication required"),
    403: _l("Forbidden"),
    404: _l("Not found"),
    405: _l("Method not allowed"),
    406: _l("Not acceptable"),
    409: _l("Conflict"),
    413: _l("Request too large"),
    415: _l("Unsupported media type"),
    422: _l("Invalid input"),
    429: _l("Too many requests"),
    500: _l("Internal server error"),
    503: _l("Service unavailable"),
}
DETAILS = {
    400: _l("The request could not be understood."),
    401: _l("Send a valid API token as 'Authorization: Bearer <token>'."),
    403: _l("Your account is not allowed to do this."),
    404: _l("There is nothing at this address."),
    405: _l("This address does not accept the %(method)s method."),
    406: _l("This address only answers with JSON."),
    409: _l("The change conflicts with data already stored."),
    413: _l("The request body is too large."),
    415: _l("Send the request body as application/json."),
    422: _l("Some values are not valid: see errors."),
    429: _l("Too many requests: wait a moment and try again."),
    500: _l("Something went wrong on our side; the error has been logged."),
    503: _l("The database cannot be reached at the moment; nothing was stored. Try again in a minute."),
}


def N_(message: str) -> str:
    """Babel's default marker: extracted for translation, translated later with gettext."""
    return message


# marshmallow's own messages arrive in English, already formatted: matched against these templates to translate them.
_VALIDATION_MESSAGES = [
    N_("Missing data for required field."),
    N_("Field may not be null."),
    N_("Invalid value."),
    N_("Invalid type."),
    N_("Invalid input type."),
    N_("Unknown field."),
    N_("Not a valid string."),
    N_("Not a valid utf-8 string."),
    N_("Not a valid number."),
    N_("Number too large."),
    N_("Not a valid integer."),
    N_("Not a valid boolean."),
    N_("Not a valid date."),
    N_("Not a valid datetime."),
    N_("Not a valid list."),
    N_("Not a valid mapping type."),
    N_("Not a valid email address."),
    N_("Not a valid URL."),
    N_("Not a valid UUID."),
    N_("Special numeric values (nan or infinity) are not permitted."),
    N_("String does not match expected pattern."),
    N_("Must be one of: {choices}."),
    N_("Length must be between {min} and {max}."),
    N_("Shorter than minimum length {min}."),
    N_("Longer than maximum length {max}."),
    N_("Length must be {equal}."),
    N_("Must be greater than or equal to {min} and less than or equal to {max}."),
    N_("Must be greater than or equal to {min}."),
    N_("Must be less than or equal to {max}."),
]


def _template_pattern(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts))
    return re.compile(f"^{regex}$")


_PATTERNS = [(_template_pattern(template), template) for template in _VALIDATION_MESSAGES]


def translate_validation_message(message: str) -> str:
    """A marshmallow message in the caller's language; messages written by Copydesk are already translated."""
    for pattern, template in _PATTERNS:
        match = pattern.match(message)
        if match:
            return _(template).format(**match.groupdict())
    return message


class ProblemFieldErrorSchema(ma.Schema):
    field = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "Dotted path of the field; null for the body."}
    )
    message = ma.fields.String(required=True)


class ProblemSchema(ma.Schema):
    """An RFC 7807 problem document; documents every error response of the API."""

    type = ma.fields.String(
        required=True, metadata={"description": "A URI naming the problem type; about:blank for plain HTTP."}
    )
    title = ma.fields.String(required=True, metadata={"description": "Short summary, in the caller's language."})
    status = ma.fields.Integer(required=True, metadata={"description": "The HTTP status code."})
    detail = ma.fields.String(
        required=True, metadata={"description": "What went wrong in this case, in the caller's language."}
    )
    errors = ma.fields.List(
        ma.fields.Nested(ProblemFieldErrorSchema), metadata={"description": "Validation errors, one per message."}
    )


class ApiProblem(Exception):
    """Raise to answer with a problem document; `errors` maps field names to messages (422)."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        errors: dict[str, str] | list[dict[str, str | None]] | None = None,
        headers: dict[str, str] | None = None,
        problem_type: str = "about:blank",
    ) -> None:
        super().__init__(detail or str(status))
        self.status = status
        self.detail = detail
        self.errors = (
            [{"field": field, "message": message} for field, message in errors.items()]
            if isinstance(errors, dict)
            else errors
        )
        self.headers = headers or {}
        self.problem_type = problem_type


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    errors: list[dict[str, str | None]] | None = None,
    headers: dict[str, str] | None = None,
    problem_type: str = "about:blank",
) -> Response:
    """Build an application/problem+json response; title and default detail come from the status code."""
    title = TITLES.get(status)
    body: dict[str, Any] = {
        "type": problem_type,
        "title": str(title) if title else HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or _default_detail(status),
    }
    if errors:
        body["errors"] = errors
    response = current_app.response_class(json.dumps(body), status=status, mimetype=PROBLEM_MIMETYPE)
    response.headers.update(headers or {})
    return response


def _default_detail(status: int) -> str:
    if status == 405:
        return _("This address does not accept the %(method)s method.", method=request.method)
    detail = DETAILS.get(status)
    return str(detail) if detail else HTTPStatus(status).description


_REQUEST_LOCATIONS = {"json", "query", "path", "view_args", "headers", "form", "files"}


def flatten_messages(messages: Any, path: tuple[str, ...] = ()) -> Iterator[dict[str, str | None]]:
    """marshmallow/webargs error messages as [{field, message}], with dotted paths and request locations dropped."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            key = str(key)
            if key == "_schema" or (not path and key in _REQUEST_LOCATIONS):
                yield from flatten_messages(value, path)
            else:
                yield from flatten_messages(value, (*path, key))
    elif isinstance(messages, list | tuple):
        for value in messages:
            yield from flatten_messages(value, path)
    else:
        yield {"field": ".".join(path) or None, "message": translate_validation_message(str(messages))}


def handle_problem(problem: ApiProblem) -> Response:
    return problem_response(
        problem.status,
        problem.detail,
        errors=problem.errors,
        headers=problem.headers,
        problem_type=problem.problem_type,
    )


def handle_http_exception(error: HTTPException) -> Response:
    """Werkzeug/webargs HTTP errors as problems: webargs' 422 messages become `errors`, bad JSON a 400."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    headers = dict(data.get("headers") or {})
    detail = data.get("message")
    errors = None
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(sorted(error.valid_methods))
    if status == 400 and data.get("messages", {}).get("json") is not None:
        detail = _("The request body is not valid JSON.")
    elif status == 422 and data.get("messages"):
        errors = list(flatten_messages(data["messages"]))
    return problem_response(status, detail, errors=errors, headers=headers)


def handle_integrity_error(error: Exception) -> Response:
    db.session.rollback()
    return problem_response(409)


def handle_unexpected_error(error: Exception) -> Response:
    current_app.logger.exception("API request failed: %s %s", request.method, request.path)
    db.session.rollback()
    return problem_response(500)


# Errors that mean the database could not be reached (down, restarting, connection dropped), not a bug in the request.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError)
RETRY_AFTER_SECONDS = 30


def request_language() -> str:
    """The caller's language from Accept-Language alone: the usual choice asks the database for the user's."""
    config = current_app.config
    return request.accept_languages.best_match(config["LANGUAGES"]) or config["BABEL_DEFAULT_LOCALE"]


def handle_database_unavailable(error: Exception) -> Response:
    """503 with Retry-After: the transaction was rolled back, so the client can send the same request again."""
    current_app.logger.error("database unavailable: %s %s: %s", request.method, request.path, error)
    with suppress(SQLAlchemyError):
        db.session.rollback()
    with force_locale(request_language()):
        return problem_response(503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def raise_routing_problem() -> None:
    """App-wide before_request: unknown API paths and wrong methods answer as problems, like everything else."""
    routing_error = request.routing_exception
    on_api = request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/")
    if on_api and isinstance(routing_error, NotFound | MethodNotAllowed):
        headers = {}
        if isinstance(routing_error, MethodNotAllowed) and routing_error.valid_methods:
            headers["Allow"] = ", ".join(sorted(routing_error.valid_methods))
        raise ApiProblem(routing_error.code, headers=headers)


def install(app: Flask) -> None:
    """App-level pieces: the ApiProblem handler and the routing check for paths without a blueprint."""
    app.register_error_handler(ApiProblem, handle_problem)
    app.before_request_funcs.setdefault(None, []).insert(0, raise_routing_problem)


def install_for_blueprint(app: Flask, name: str) -> None:
    """Scope the problem handlers to one blueprint; they win over app-wide HTML handlers for its requests."""
    from sqlalchemy.exc import IntegrityError

    handlers = app.error_handler_spec[name][None]
    handlers[ApiProblem] = handle_problem
    handlers[HTTPException] = handle_http_exception
    handlers[IntegrityError] = handle_integrity_error
    for error_class in DATABASE_UNAVAILABLE:
        handlers[error_class] = handle_database_unavailable
    handlers[Exception] = handle_unexpected_error
