"""The customers API as a client sees it: token auth, problem+json errors, validation, scoping, pagination."""

from __future__ import annotations

import pytest
from flask_smorest import Blueprint

from core.api import register_api
from core.db import db
from core.models import ApiToken, AuditLog, Partner, User
from tests.api_support import add_customer, add_user, bearer

PROBLEM = "application/problem+json"

FULL_CUSTOMER = {
    "name": "Copisteria Rossi S.r.l.",
    "vat_number": "IT 00743110157",
    "fiscal_code": "rssmra85t10a562s",
    "email": "amministrazione@rossi.example",
    "pec": "rossi@pec.example",
    "sdi_code": "abc1234",
    "phone": "+39 02 1234567",
    "language": "en",
    "payment_terms_days": 60,
    "payment_end_of_month": True,
    "split_payment": True,
    "public_administration": False,
    "payment_method": "riba",
    "payment_instalments": 3,
    "active": True,
    "notes": "Ring before delivering toner.",
    "address": {"street": "Via Roma 1", "city": "Milano", "postal_code": "20121", "province": "MI", "country": "it"},
}


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body


def fields_in(body: dict) -> set[str]:
    return {error["field"] for error in body["errors"]}


@pytest.fixture
def staff(db_session):
    return bearer("back_office")


def test_request_without_token_gets_401_problem_with_bearer_challenge(client):
    response = client.get("/api/v1/customers")

    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_malformed_authorization_header_gets_401(client, db_session):
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer cdk_not-a-real-token", "cdk_abc"):
        assert_problem(client.get("/api/v1/customers", headers={"Authorization": header}), 401)


def test_browser_session_does_not_authenticate_the_api(app, client, db_session):
    from flask import session

    from core.auth.sessions import log_in

    user = add_user("dealer_admin")
    with app.test_request_context(environ_base=client.environ_base):
        log_in(user)
        db.session.commit()
        logged_in = dict(session)
    with client.session_transaction() as client_session:
        client_session.update(logged_in)
    assert client.get("/admin/").status_code == 200  # the session is a valid login for the web pages

    assert_problem(client.get("/api/v1/customers"), 401)
    assert_problem(client.post("/api/v1/customers", json={"name": "Sneaky"}), 401)
    assert db.session.scalars(db.select(Partner)).all() == []


def test_unknown_api_path_is_a_404_problem(client, staff):
    assert_problem(client.get("/api/v1/no-such-thing", headers=staff), 404)
    assert_problem(client.get("/api/v1/customers/not-a-number", headers=staff), 404)
    assert_problem(client.get("/api/v1", headers=staff), 404)


def test_wrong_method_is_a_405_problem_listing_allowed_methods(client, staff):
    response = client.delete("/api/v1/customers", headers=staff)

    assert_problem(response, 405)
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_malformed_json_is_400_not_422(client, staff):
    response = client.post(
        "/api/v1/customers", data='{"name": "Rossi",', headers={**staff, "Content-Type": "application/json"}
    )

    body = assert_problem(response, 400)
    assert "JSON" in body["detail"]


def test_invalid_vat_number_is_422_naming_vat_number_and_nothing_is_written(client, staff):
    response = client.post("/api/v1/customers", json={"name": "Rossi", "vat_number": "IT12345678901"}, headers=staff)

    body = assert_problem(response, 422)
    assert fields_in(body) == {"vat_number"}
    assert "IT12345678901" in body["errors"][0]["message"]
    assert db.session.scalars(db.select(Partner)).all() == []


def test_invalid_fiscal_code_is_422_naming_fiscal_code(client, staff):
    response = client.post(
        "/api/v1/customers", json={"name": "Rossi", "fiscal_code": "RSSMRA85T10A562X"}, headers=staff
    )

    assert fields_in(assert_problem(response, 422)) == {"fiscal_code"}
    assert db.session.scalars(db.select(Partner)).all() == []


def test_non_json_body_is_415(client, staff):
    response = client.post("/api/v1/customers", data="name=Rossi", headers=staff, content_type="text/plain")

    assert_problem(response, 415)


def test_text_the_database_cannot_store_is_422_not_500(client, staff):
    response = client.post(
        "/api/v1/customers", json={"name": "Rossi\x00", "address": {"city": "Mi\x00"}}, headers=staff
    )

    assert fields_in(assert_problem(response, 422)) == {"name", "address.city"}


def test_out_of_range_ids_and_pages_are_client_errors(client, staff):
    assert_problem(client.get(f"/api/v1/customers/{2**63}", headers=staff), 404)
    assert_problem(client.get("/api/v1/customers/0", headers=staff), 404)
    assert fields_in(assert_problem(client.get(f"/api/v1/customers?page={2**63}", headers=staff), 422)) == {"page"}


def test_every_invalid_field_is_named_at_once(client, staff):
    response = client.post(
        "/api/v1/customers",
        json={
            "payment_terms_days": "sixty",
            "email": "not an email",
            "language": "fr",
            "address": {"country": "Italy"},
            "colour": "red",
        },
        headers=staff,
    )

    body = assert_problem(response, 422)
    assert fields_in(body) == {"name", "payment_terms_days", "email", "language", "address.country", "colour"}
    assert all(error["message"] for error in body["errors"])


def test_customer_created_then_read_back_with_every_field(client, staff):
    created = client.post("/api/v1/customers", json=FULL_CUSTOMER, headers=staff)

    assert created.status_code == 201, created.get_json()
    customer_id = created.get_json()["id"]
    assert created.headers["Location"].endswith(f"/api/v1/customers/{customer_id}")
    read = client.get(f"/api/v1/customers/{customer_id}", headers=staff).get_json()
    assert read == created.get_json()
    expected = {
        **FULL_CUSTOMER,
        "id": customer_id,
        "vat_number": "00743110157",
        "fiscal_code": "RSSMRA85T10A562S",
        "sdi_code": "ABC1234",
        "address": {**FULL_CUSTOMER["address"], "country": "IT"},
        "created_at": read["created_at"],
    }
    assert read == expected
    assert read["created_at"].endswith("+00:00")


def test_patch_changes_only_the_fields_sent_and_is_audited(client, staff, db_session):
    customer_id = client.post("/api/v1/customers", json=FULL_CUSTOMER, headers=staff).get_json()["id"]

    response = client.patch(
        f"/api/v1/customers/{customer_id}",
        json={"email": None, "address": {"city": "Bergamo"}, "payment_terms_days": 90},
        headers=staff,
    )

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["email"] is None and body["payment_terms_days"] == 90
    assert body["address"] == {**FULL_CUSTOMER["address"], "city": "Bergamo", "country": "IT"}
    assert body["name"] == FULL_CUSTOMER["name"] and body["vat_number"] == "00743110157"
    update = db.session.scalars(
        db.select(AuditLog).where(AuditLog.action == "update", AuditLog.object_type == "core_partner")
    ).one()
    assert update.actor == "back_office@example.com"
    assert update.changes["city"] == ["Milano", "Bergamo"]


def test_patch_with_invalid_vat_leaves_the_customer_unchanged(client, staff):
    customer_id = client.post("/api/v1/customers", json=FULL_CUSTOMER, headers=staff).get_json()["id"]

    response = client.patch(
        f"/api/v1/customers/{customer_id}", json={"vat_number": "123", "name": "Renamed"}, headers=staff
    )

    assert fields_in(assert_problem(response, 422)) == {"vat_number"}
    assert client.get(f"/api/v1/customers/{customer_id}", headers=staff).get_json()["name"] == FULL_CUSTOMER["name"]


def test_changing_country_rechecks_the_stored_vat_number(client, staff):
    customer_id = client.post("/api/v1/customers", json=FULL_CUSTOMER, headers=staff).get_json()["id"]

    response = client.patch(f"/api/v1/customers/{customer_id}", json={"address": {"country": "DE"}}, headers=staff)

    assert "vat_number" in fields_in(assert_problem(response, 422))


def test_list_is_paginated_with_the_total(client, staff, db_session):
    for number in range(1, 8):
        add_customer(f"Customer {number:02d}")
    db.session.add(Partner(name="A supplier", is_customer=False, is_supplier=True))
    db.session.commit()

    first = client.get("/api/v1/customers?per_page=3", headers=staff).get_json()
    last = client.get("/api/v1/customers?per_page=3&page=3", headers=staff).get_json()
    beyond = client.get("/api/v1/customers?per_page=3&page=9", headers=staff).get_json()

    assert (first["total"], first["page"], first["per_page"]) == (7, 1, 3)
    assert [c["name"] for c in first["items"]] == ["Customer 01", "Customer 02", "Customer 03"]
    assert [c["name"] for c in last["items"]] == ["Customer 07"]
    assert beyond["items"] == [] and beyond["total"] == 7
    assert client.get("/api/v1/customers", headers=staff).get_json()["per_page"] == 50


def test_per_page_above_200_is_422_naming_per_page(client, staff):
    body = assert_problem(client.get("/api/v1/customers?per_page=201", headers=staff), 422)

    assert fields_in(body) == {"per_page"}
    assert "200" in body["errors"][0]["message"]


def test_q_finds_customers_by_part_of_the_name_literally(client, staff, db_session):
    for name in ("Rossi Ufficio", "Bianchi & Rossi", "Verdi", "100% Copie"):
        add_customer(name)

    def names(q):
        return sorted(
            c["name"] for c in client.get("/api/v1/customers", query_string={"q": q}, headers=staff).json["items"]
        )

    assert names("rossi") == ["Bianchi & Rossi", "Rossi Ufficio"]
    assert names("%") == ["100% Copie"]
    assert names("_") == []


def test_customer_token_sees_only_its_own_customer(client, db_session):
    own = add_customer("Own S.r.l.")
    other = add_customer("Other S.p.A.")
    for role in ("customer_admin", "customer_user"):
        headers = bearer(role, customer=own, email=f"{role}@own.example")

        listed = client.get("/api/v1/customers", headers=headers).get_json()
        assert [c["id"] for c in listed["items"]] == [own.id] and listed["total"] == 1
        assert client.get("/api/v1/customers?q=Other", headers=headers).get_json()["total"] == 0
        assert client.get(f"/api/v1/customers/{own.id}", headers=headers).get_json()["name"] == "Own S.r.l."
        # Another customer's id answers exactly like an id that does not exist.
        for customer_id in (other.id, other.id + 100):
            assert_problem(client.get(f"/api/v1/customers/{customer_id}", headers=headers), 404)
        assert_problem(client.post("/api/v1/customers", json={"name": "Mine"}, headers=headers), 403)
        for customer_id in (own.id, other.id):
            response = client.patch(f"/api/v1/customers/{customer_id}", json={"name": "Hacked"}, headers=headers)
            assert_problem(response, 403)
    assert {p.name for p in db.session.scalars(db.select(Partner))} == {"Own S.r.l.", "Other S.p.A."}


def test_technician_can_read_customers_but_not_create_them(client, db_session):
    headers = bearer("technician")
    add_customer("Rossi")

    assert client.get("/api/v1/customers", headers=headers).get_json()["total"] == 1
    assert_problem(client.post("/api/v1/customers", json={"name": "New"}, headers=headers), 403)


def test_disabled_user_token_is_refused(client, db_session):
    headers = bearer("dealer_admin")
    user = db.session.scalars(db.select(User)).one()
    user.active = False
    db.session.commit()

    assert_problem(client.get("/api/v1/customers", headers=headers), 401)


def test_module_resources_get_token_auth_problems_and_docs(tmp_path):
    """A blueprint registered by a module through register_api behaves like core's resources, 500 included."""
    from conftest import make_app, migrate

    url = f"sqlite:///{tmp_path / 'module.sqlite'}"
    migrate(make_app(url))
    app = make_app(url)
    blp = Blueprint("demo_things", __name__, url_prefix="/demo-things")

    @blp.route("/explode", methods=["POST"])
    @blp.response(200)
    def explode():
        raise RuntimeError("boom")

    @blp.route("/duplicate", methods=["POST"])
    @blp.response(201)
    def duplicate():
        user = db.session.scalars(db.select(User)).one()
        db.session.add_all([ApiToken(user_id=user.id, name=n, token_hash="0" * 64, prefix="cdk_dupe") for n in "ab"])
        db.session.commit()

    register_api(app, blp)
    client = app.test_client()
    with app.app_context():
        headers = bearer("dealer_admin")

    assert_problem(client.post("/api/v1/demo-things/explode"), 401)
    body = assert_problem(client.post("/api/v1/demo-things/explode", headers=headers), 500)
    assert "boom" not in body["detail"]
    assert_problem(client.post("/api/v1/demo-things/duplicate", headers=headers), 409)
    assert "/api/v1/demo-things/explode" in client.get("/api/v1/openapi.json").get_json()["paths"]


def test_decimal_fields_keep_their_exact_digits_as_strings():
    import decimal

    import marshmallow as ma

    from core.api.fields import DecimalString

    schema = ma.Schema.from_dict({"amount": DecimalString()})()

    assert schema.dump({"amount": decimal.Decimal("1234.5600")}) == {"amount": "1234.5600"}
    assert schema.load({"amount": "0.1"}) == {"amount": decimal.Decimal("0.1")}
    assert schema.load({"amount": 12}) == {"amount": decimal.Decimal(12)}
    with pytest.raises(ma.ValidationError) as refused:
        schema.load({"amount": 0.1})
    assert "string" in str(refused.value.messages["amount"][0])


def test_misspelt_filter_is_422_naming_it_not_an_unfiltered_list(client, staff):
    response = client.get("/api/v1/customers?nmae=Rossi", headers=staff)
    body = assert_problem(response, 422)
    assert "nmae" in fields_in(body)
