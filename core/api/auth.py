"""Bearer-token authentication for API blueprints (never the session cookie) and the `require` permission check."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request
from flask_babel import gettext as _
from flask_smorest import Blueprint

from core.api.errors import ApiProblem
from core.api.tokens import authenticate_token
from core.models import User
from core.permissions import has_permission

BEARER_SCHEME = "bearerAuth"


def authenticate_request() -> None:
    """before_request of API blueprints: g.api_user (and flask_login's current_user) from the bearer token, else 401."""
    # Set before anything reads current_user, so flask_login never loads a user from the session cookie here.
    g._login_user = current_app.login_manager.anonymous_user()
    scheme, _sep, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise ApiProblem(401, headers={"WWW-Authenticate": 'Bearer realm="copydesk"'})
    user = authenticate_token(credentials.strip())
    if user is None:
        raise ApiProblem(
            401,
            _("The API token is unknown, revoked, or its user is disabled."),
            headers={"WWW-Authenticate": 'Bearer realm="copydesk", error="invalid_token"'},
        )
    g.api_user = user
    g._login_user = user


def api_user() -> User:
    """The user of the current API request."""
    return g.api_user


def require(*permissions: str) -> Callable:
    """Decorate an API view: the token's user needs at least one of `permissions`, else 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not any(has_permission(g.api_user, permission) for permission in permissions):
                raise ApiProblem(403)
            return view(*args, **kwargs)

        return Blueprint.doc(responses={401: "UNAUTHORIZED", 403: "FORBIDDEN"})(wrapper)

    return decorator
