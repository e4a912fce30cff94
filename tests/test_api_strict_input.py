"""Hostile JSON across the real API: deep nesting, huge numbers, missing PATCH bodies and loosely typed values."""

from __future__ import annotations

import marshmallow as ma
import pytest

from core.api import fields as api_fields
from core.db import db
from core.models import Partner
from tests.api_support import add_customer, bearer

PROBLEM = "application/problem+json"


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def error_fields(response) -> set[str | None]:
    return {error["field"] for error in problem(response, 422)["errors"]}


@pytest.fixture
def staff(db_session):
    return bearer("dealer_admin")


@pytest.fixture
def customer(db_session):
    return add_customer("Studio Legale Bianchi", payment_terms_days=30, active=True)


def post_raw(client, url: str, body: str, headers: dict, method: str = "post"):
    return getattr(client, method)(url, data=body, content_type="application/json", headers=headers)


def test_deeply_nested_arrays_are_a_400_problem(client, staff):
    body = "[" * 100_000 + "]" * 100_000

    for url in ("/api/v1/customers", "/api/v1/devices", "/api/v1/contracts", "/api/v1/readings"):
        assert "nested too deeply" in problem(post_raw(client, url, body, staff), 400)["detail"]


def test_integer_of_5000_digits_is_a_400_problem_and_nothing_is_written(client, staff, db_session):
    body = '{"name": "Copisteria Rossi", "payment_terms_days": ' + "9" * 5000 + "}"

    assert "too many digits" in problem(post_raw(client, "/api/v1/customers", body, staff), 400)["detail"]
    assert db_session.query(Partner).count() == 0


def test_patch_without_a_body_is_a_400_problem(client, staff, customer):
    for headers in (staff, {**staff, "Content-Type": "application/json"}):
        response = client.patch(f"/api/v1/customers/{customer.id}", headers=headers)
        assert "fields to change" in problem(response, 400)["detail"]


def test_patch_without_a_body_is_refused_by_every_module(client, staff, customer):
    device = client.post(
        "/api/v1/devices",
        json={"serial": "KY1234567", "manufacturer": "Kyocera", "model": "ECOSYS P2040dn", "meters": ["bw"]},
        headers=staff,
    ).get_json()["id"]

    problem(client.patch(f"/api/v1/devices/{device}", headers=staff), 400)
    problem(client.patch("/api/v1/contracts/1", headers=staff), 400)


def test_float_for_an_integer_is_422_naming_the_field_and_nothing_changes(client, staff, customer):
    for value in (2.589e-42, 30.0, "45", True):
        response = client.patch(f"/api/v1/customers/{customer.id}", json={"payment_terms_days": value}, headers=staff)
        assert error_fields(response) == {"payment_terms_days"}, value
    db.session.expire_all()
    assert db.session.get(Partner, customer.id).payment_terms_days == 30


def test_contract_notice_days_as_a_tiny_float_is_422_naming_notice_days(client, staff, customer):
    body = {"customer_id": customer.id, "start_date": "2026-01-01", "notice_days": 2.589e-42}

    assert error_fields(client.post("/api/v1/contracts", json=body, headers=staff)) == {"notice_days"}


def test_number_for_a_boolean_is_422_naming_the_field_and_nothing_changes(client, staff, customer):
    for value in (0, 1, "false", "yes", None):
        response = client.patch(f"/api/v1/customers/{customer.id}", json={"active": value}, headers=staff)
        assert error_fields(response) == {"active"}, value
    db.session.expire_all()
    assert db.session.get(Partner, customer.id).active is True


def test_nested_integers_and_booleans_are_strict_too(client, staff, customer):
    body = {
        "customer_id": customer.id,
        "start_date": "2026-01-01",
        "allowances": [{"meter": "bw", "included": 10.5, "pooled": 1, "bands": [{"up_to": None, "price": "0.01"}]}],
    }

    fields = error_fields(client.post("/api/v1/contracts", json=body, headers=staff))
    assert fields == {"allowances.0.included", "allowances.0.pooled"}


def test_true_integers_and_booleans_still_work(client, staff, customer):
    response = client.patch(
        f"/api/v1/customers/{customer.id}", json={"payment_terms_days": 60, "active": False}, headers=staff
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    assert (response.get_json()["payment_terms_days"], response.get_json()["active"]) == (60, False)


def test_query_parameters_are_still_read_from_text(client, staff, customer):
    add_customer("Farmacia San Marco")

    response = client.get("/api/v1/customers?page=2&per_page=1", headers=staff)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert (response.get_json()["page"], len(response.get_json()["items"])) == (2, 1)
    assert error_fields(client.get("/api/v1/customers?page=1.5", headers=staff)) == {"page"}


def _loaded_fields(schema: ma.Schema):
    for field in schema.fields.values():
        if field.dump_only:
            continue
        yield from _field_tree(field)


def _field_tree(field: ma.fields.Field):
    yield field
    if isinstance(field, ma.fields.Nested):
        yield from _loaded_fields(field.schema)
    elif isinstance(field, ma.fields.List):
        yield from _field_tree(field.inner)
    elif isinstance(field, ma.fields.Dict):
        for part in (field.key_field, field.value_field):
            if part is not None:
                yield from _field_tree(part)


def test_every_api_input_schema_uses_the_strict_integer_and_boolean(app):
    """A module that adds a schema with marshmallow's own Integer or Boolean would accept 2.5e-42 or 0 again."""
    loose = []
    for name, view in app.view_functions.items():
        view_class = getattr(view, "view_class", None)
        for method in ("get", "post", "put", "patch", "delete"):
            handler = getattr(view_class, method, None) if view_class else None
            for argument in getattr(handler, "_apidoc", {}).get("arguments", {}).get("parameters", []):
                schema = argument["schema"]
                schema = schema() if isinstance(schema, type) else schema
                for field in _loaded_fields(schema):
                    if type(field) in (ma.fields.Integer, ma.fields.Int, ma.fields.Boolean, ma.fields.Float):
                        loose.append(f"{name} {method}: {type(schema).__name__}.{field.name}")
    assert not loose
    assert issubclass(api_fields.Integer, ma.fields.Integer) and issubclass(api_fields.Boolean, ma.fields.Boolean)
