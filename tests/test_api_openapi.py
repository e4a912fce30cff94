"""The OpenAPI document: valid, complete against the routes, browsable offline, and true to the app (schemathesis)."""

from __future__ import annotations

import re
import threading

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from werkzeug.serving import make_server

from tests.api_support import add_customer, bearer

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Documentation endpoints serve the document itself; they are not operations of the API.
DOC_ENDPOINTS = {"api-docs.openapi_json", "api_docs_ui.docs_page", "api_docs_ui.docs_asset", "api_docs_ui.docs_script"}


def test_openapi_document_is_valid_openapi_3(client):
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    validate(document)
    assert document["openapi"] == "3.0.3"
    assert document["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert document["security"] == [{"bearerAuth": []}]


def test_every_api_route_is_in_the_document(app, client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    documented = {
        (path, method.upper()) for path, operations in paths.items() for method in operations if method in HTTP_METHODS
    }

    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1") or rule.endpoint in DOC_ENDPOINTS:
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        routes |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}

    assert ("/api/v1/customers", "POST") in routes
    assert routes - documented == set()
    assert documented - routes == set()


def test_docs_page_loads_and_uses_only_local_assets(client):
    page = client.get("/api/v1/docs")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/api/v1/"), asset
        assert client.get(asset).status_code == 200, asset
    assert "/api/v1/openapi.json" in html


@pytest.mark.browser
def test_docs_page_shows_the_operations_in_a_real_browser(app, browser):
    """Swagger UI runs from this server's own assets: no request leaves it, and every operation is listed."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        context = browser.new_context()
        page = context.new_page()
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{base}/api/v1/docs")
        page.wait_for_selector(".opblock-summary-path", timeout=15_000)
        shown = set(page.locator(".opblock-summary-path").all_inner_texts())
        context.close()
    finally:
        server.shutdown()

    assert shown >= {"/api/v1/customers", "/api/v1/customers/{customer_id}"}
    assert requested and all(url.startswith(base) for url in requested)


def _query_sent_is_valid(case) -> bool:
    """The query string as sent conforms to the operation's parameters: a negative query whose only faults were keys
    without a value to send (an empty list is dropped on the wire) asks a valid question."""
    kwargs = case.as_transport_kwargs()
    generated = kwargs.get("query_string", kwargs.get("params")) or {}
    sent = {key: value for key, value in generated.items() if value != []}
    parameters = {parameter.name: parameter.definition for parameter in case.operation.query}
    for key, value in sent.items():
        definition = parameters.get(key)
        if definition is None or isinstance(value, (list, dict)):
            return False
        if not jsonschema.Draft4Validator(definition.get("schema", {})).is_valid(value):
            return False
    return all(name in sent for name, definition in parameters.items() if definition.get("required"))


def _negative_only_on_the_way(case) -> bool:
    """A case made invalid only through what does not reach the server as generated: its headers, which the test
    replaces with a valid token, and a query whose invalid part is dropped on the wire. It is a valid request."""
    modes = {location: info.mode for location, info in (case.meta.components.items() if case.meta else ())}
    negative = {location for location, mode in modes.items() if mode == GenerationMode.NEGATIVE}
    if not negative or not negative <= {ParameterLocation.HEADER, ParameterLocation.QUERY}:
        return False
    return ParameterLocation.QUERY not in negative or _query_sent_is_valid(case)


def test_api_answers_every_generated_request_as_documented(app, db_session):
    """Valid and invalid requests for every operation: never a 500, and every response matches the document.

    Only the check that schema-valid data must be accepted is left out: VAT and fiscal code checksums cannot be said
    in JSON Schema, so a well-formed but wrong number is rightly a 422. A case made invalid only by its Authorization
    header is valid once the test sends its own token, and one whose invalid query keys had no value to send is
    valid on the wire: both are checked like valid ones.
    """
    staff = bearer("dealer_admin")
    existing = add_customer("Fuzzed S.r.l.", vat_number="00743110157")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 4

    for operation in operations:
        runs = [(GenerationMode.POSITIVE, {}), (GenerationMode.NEGATIVE, {})]
        if "{customer_id}" in operation.path:
            # Random ids mostly miss; a run on a real customer reaches the reading and writing code too.
            runs.append((GenerationMode.POSITIVE, {"customer_id": existing.id}))
        for mode, path_parameters in runs:

            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
            @settings(
                max_examples=25,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                excluded = [positive_data_acceptance]
                if _negative_only_on_the_way(case):
                    excluded.append(negative_data_rejection)
                case.call_and_validate(headers=staff, excluded_checks=excluded)

            check()


ROLES = ("dealer_admin", "back_office", "technician", "customer_admin", "customer_user")
# Where a path parameter's existing ids are found: a run on a real id reaches the code behind the lookup.
ID_SOURCES = {
    "customer_id": "SELECT id FROM core_partner WHERE is_customer ORDER BY id",
    "device_id": "SELECT id FROM rentals_device ORDER BY id",
    "contract_id": "SELECT id FROM rentals_contract ORDER BY id",
    "reading_id": "SELECT id FROM metering_reading ORDER BY id",
    "invoice_id": "SELECT id FROM invoicing_invoice ORDER BY id",
    "run_id": "SELECT id FROM invoicing_billing_run ORDER BY id",
}


def _demo_dealer() -> dict[str, int]:
    """The demo dealer (`flask demo load`) with one billing run done, so every path has ids that exist."""
    import datetime as dt

    import sqlalchemy as sa
    from flask import current_app

    from modules.invoicing.runs import create_run, launch_run
    from tests.demo_snapshot import load_demo

    load_demo(current_app)
    run = create_run(dt.date.today())
    db_session = sa.orm.object_session(run)
    db_session.commit()
    launch_run(run.id)
    ids = {name: db_session.scalars(sa.text(query)).first() for name, query in ID_SOURCES.items()}
    missing = [name for name, value in ids.items() if value is None]
    assert not missing, f"the demo data has no {missing}"
    return ids


@pytest.mark.parametrize("role", ROLES)
def test_no_generated_request_gets_a_server_error_whatever_the_role(app, db_session, role):
    """Every operation, with a token of each role, on valid, invalid and real-id requests: never a 5xx.

    Bounded: a few examples per operation and mode, and a deadline per request.
    """
    from schemathesis.checks import not_a_server_error

    from core.models import Partner

    ids = _demo_dealer()
    customer = db_session.get(Partner, ids["customer_id"]) if role.startswith("customer") else None
    headers = bearer(role, customer=customer, email=f"fuzz.{role}@example.com")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)

    for operation in (result.ok() for result in schema.get_all_operations()):
        known = {name: ids[name] for name in ID_SOURCES if f"{{{name}}}" in operation.path}
        runs = [(GenerationMode.POSITIVE, {}), (GenerationMode.NEGATIVE, {})]
        if known:
            runs.append((GenerationMode.POSITIVE, known))
        for mode, path_parameters in runs:

            @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
            @settings(
                max_examples=4,
                derandomize=True,
                deadline=5000,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                case.call_and_validate(headers=headers, checks=[not_a_server_error])

            check()
