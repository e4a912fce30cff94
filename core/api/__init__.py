"""The REST API under /api/v1: token auth, problem+json errors, the OpenAPI document and its docs page.

Built on flask-smorest (marshmallow schemas, webargs parsing, apispec): the OpenAPI document is generated from the
same schemas and decorators that validate input and serialize output, so the docs and the behaviour have one source
and cannot drift apart; tests check the document against the routes and fuzz the app with it (schemathesis).

Modules add resources in `setup(ctx)`:

    blp = ApiBlueprint("metering_readings", __name__, url_prefix="/readings")
    ...
    register_api(ctx.app, blp)      # served under /api/v1/readings, token-authenticated, CSRF-exempt
"""

from __future__ import annotations

import http
from pathlib import Path

import flask_smorest
from flask import Blueprint, Flask, render_template, request, send_from_directory, url_for
from flask_smorest.utils import prepare_response
from swagger_ui_bundle import swagger_ui_path

from core.api import customers, errors, vat_codes
from core.api.auth import BEARER_SCHEME, authenticate_request, require
from core.api.errors import API_PREFIX, PROBLEM_MIMETYPE, ApiProblem
from core.api.fields import DecimalString
from core.extensions import csrf

__all__ = ["API_PREFIX", "ApiProblem", "init_app", "register_api", "require"]

SPEC_DESCRIPTION = """Copydesk's REST API. Authenticate with `Authorization: Bearer <token>` (create a token with
`flask users token EMAIL`). Lists are paginated with `page` and `per_page` (default 50, at most 200) and answer
`{"items": [...], "page", "per_page", "total"}`. Decimals are JSON strings with exact digits, dates ISO 8601. Every
error is an RFC 7807 `application/problem+json` document; validation errors list `errors: [{field, message}]`."""

STATIC_DIR = Path(__file__).parent / "static"
# flask-smorest's name for the blueprint serving openapi.json.
SPEC_BLUEPRINT = "api-docs"


class CopydeskApi(flask_smorest.Api):
    """smorest's Api with problem+json error documents, and no app-wide error handler (HTML pages keep theirs)."""

    ERROR_SCHEMA = errors.ProblemSchema

    def _register_error_handlers(self) -> None:
        errors.install(self._app)

    def _register_pagination_header(self) -> None:
        """Not used: lists carry their pagination in the body (core.api.pagination)."""

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MIMETYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error (RFC 7807 problem)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MIMETYPE)
        self.spec.components.response(self.DEFAULT_ERROR_RESPONSE_NAME, response, lazy=True)


docs_ui = Blueprint("api_docs_ui", __name__, url_prefix=f"{API_PREFIX}/docs")


@docs_ui.route("", strict_slashes=True)
def docs_page():
    """Swagger UI on the OpenAPI document, with its assets served from this app (no CDN)."""
    return render_template("api/docs.html", spec_url=url_for(f"{SPEC_BLUEPRINT}.openapi_json"))


@docs_ui.route("/assets/<path:filename>")
def docs_asset(filename: str):
    return send_from_directory(str(swagger_ui_path), filename)


@docs_ui.route("/copydesk-docs.js")
def docs_script():
    return send_from_directory(str(STATIC_DIR), "copydesk-docs.js")


def require_json_body() -> None:
    """before_request of API blueprints: a request body must be JSON (415 otherwise, not a misleading 422)."""
    has_body = request.content_length or request.headers.get("Transfer-Encoding")
    if request.method in ("POST", "PUT", "PATCH") and has_body and not request.is_json:
        raise ApiProblem(415)


def _api(app: Flask) -> CopydeskApi:
    return app.extensions["copydesk_api"]


def register_api(app: Flask, blueprint: flask_smorest.Blueprint) -> None:
    """Serve `blueprint` under /api/v1 + its url_prefix: bearer-token auth, problem errors, CSRF-exempt, documented."""
    csrf.exempt(blueprint)
    app.before_request_funcs.setdefault(blueprint.name, []).extend((authenticate_request, require_json_body))
    errors.install_for_blueprint(app, blueprint.name)
    _api(app).register_blueprint(blueprint, url_prefix=API_PREFIX + (blueprint.url_prefix or ""))


def init_app(app: Flask) -> None:
    app.config.setdefault("API_TITLE", "Copydesk API")
    app.config.setdefault("API_VERSION", "1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", API_PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    api = CopydeskApi(
        app,
        spec_kwargs={
            "info": {"description": SPEC_DESCRIPTION},
            "security": [{BEARER_SCHEME: []}],
        },
    )
    api.spec.components.security_scheme(BEARER_SCHEME, {"type": "http", "scheme": "bearer"})
    api.register_field(DecimalString, "string", "decimal")
    app.extensions["copydesk_api"] = api
    for name in (SPEC_BLUEPRINT, docs_ui.name):
        errors.install_for_blueprint(app, name)
    app.register_blueprint(docs_ui)
    register_api(app, customers.blp)
    register_api(app, vat_codes.blp)
