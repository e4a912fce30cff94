"""Public administrations are addressed by their 6-character office code, others by the 7-character SDI code; the
customer's payment method and instalments travel through the API and the back-office form."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask_babel import force_locale
from markupsafe import escape

from core.db import db
from core.models import Partner
from core.partners import normalize_sdi_code, validate_partner_fields
from tests.api_support import bearer
from tests.auth_support import csrf_token, login, make_user

SCHOOL = {
    "name": "Istituto Comprensivo Manzoni",
    "fiscal_code": "80012340164",
    "public_administration": True,
    "split_payment": True,
    "sdi_code": "uf1b2c",
    "payment_method": "bank_transfer",
    "payment_instalments": 1,
}


def error_fields(response) -> set[str]:
    return {error["field"] for error in response.get_json()["errors"]}


@pytest.fixture
def staff(db_session):
    return bearer("back_office")


def test_office_code_rules_name_the_field(app):
    with app.test_request_context():
        office_code_rules()


def office_code_rules():
    assert normalize_sdi_code(" uf1b2c ", public_administration=True) == "UF1B2C"
    assert normalize_sdi_code("abc1234") == "ABC1234"
    for value, public_administration in (("ABC1234", True), ("UF1B2C", False), ("", True), ("UF-B2C", True)):
        _clean, errors = validate_partner_fields({"sdi_code": value, "public_administration": public_administration})
        assert list(errors) == ["sdi_code"], (value, public_administration)


def test_payment_fields_are_checked(app):
    with app.test_request_context():
        _clean, errors = validate_partner_fields({"payment_method": "bitcoin", "payment_instalments": 13})
        clean, none = validate_partner_fields({"payment_method": "sepa_direct_debit", "payment_instalments": 12})

    assert set(errors) == {"payment_method", "payment_instalments"}
    assert none == {} and (clean["payment_method"], clean["payment_instalments"]) == ("sepa_direct_debit", 12)


def test_api_creates_a_public_administration_with_its_office_code(client, staff):
    created = client.post("/api/v1/customers", json=SCHOOL, headers=staff)

    assert created.status_code == 201, created.get_json()
    body = client.get(f"/api/v1/customers/{created.get_json()['id']}", headers=staff).get_json()
    assert (body["public_administration"], body["sdi_code"], body["split_payment"]) == (True, "UF1B2C", True)


@pytest.mark.parametrize("sdi_code", ["ABC1234", None, "UF1B"])
def test_api_refuses_a_public_administration_without_a_6_character_office_code(client, staff, sdi_code):
    response = client.post("/api/v1/customers", json={**SCHOOL, "sdi_code": sdi_code}, headers=staff)

    assert response.status_code == 422
    assert error_fields(response) == {"sdi_code"}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Partner)) == 0


def test_api_a_business_keeps_a_7_character_code(client, staff):
    refused = client.post(
        "/api/v1/customers", json={**SCHOOL, "public_administration": False, "sdi_code": "UF1B2C"}, headers=staff
    )
    accepted = client.post(
        "/api/v1/customers", json={**SCHOOL, "public_administration": False, "sdi_code": "abc1234"}, headers=staff
    )

    assert refused.status_code == 422 and error_fields(refused) == {"sdi_code"}
    assert accepted.status_code == 201 and accepted.get_json()["sdi_code"] == "ABC1234"


def test_api_marking_a_customer_public_rechecks_its_stored_code(client, staff):
    customer_id = client.post(
        "/api/v1/customers", json={**SCHOOL, "public_administration": False, "sdi_code": "ABC1234"}, headers=staff
    ).get_json()["id"]

    refused = client.patch(f"/api/v1/customers/{customer_id}", json={"public_administration": True}, headers=staff)
    accepted = client.patch(
        f"/api/v1/customers/{customer_id}", json={"public_administration": True, "sdi_code": "UF1B2C"}, headers=staff
    )

    assert refused.status_code == 422 and error_fields(refused) == {"sdi_code"}
    assert accepted.status_code == 200
    assert (accepted.get_json()["public_administration"], accepted.get_json()["sdi_code"]) == (True, "UF1B2C")


def test_a_public_administration_without_split_payment_is_allowed(client, staff):
    response = client.post("/api/v1/customers", json={**SCHOOL, "split_payment": False}, headers=staff)

    assert response.status_code == 201
    assert response.get_json()["split_payment"] is False


def test_api_payment_fields_round_trip_and_are_checked(client, staff):
    customer_id = client.post(
        "/api/v1/customers",
        json={"name": "Studio Verdi", "payment_method": "riba", "payment_instalments": 4},
        headers=staff,
    ).get_json()["id"]
    default = client.post("/api/v1/customers", json={"name": "Studio Gialli"}, headers=staff).get_json()

    patched = client.patch(
        f"/api/v1/customers/{customer_id}", json={"payment_method": "card", "payment_instalments": 2}, headers=staff
    )
    refused = client.patch(
        f"/api/v1/customers/{customer_id}", json={"payment_method": "cheque", "payment_instalments": 0}, headers=staff
    )

    assert (default["payment_method"], default["payment_instalments"], default["public_administration"]) == (
        "bank_transfer",
        1,
        False,
    )
    assert (patched.get_json()["payment_method"], patched.get_json()["payment_instalments"]) == ("card", 2)
    assert refused.status_code == 422 and error_fields(refused) == {"payment_method", "payment_instalments"}
    read = client.get(f"/api/v1/customers/{customer_id}", headers=staff).get_json()
    assert (read["payment_method"], read["payment_instalments"]) == ("card", 2)


# The back-office form


def staff_client(app):
    with app.app_context():
        make_user("back_office@example.com", role="back_office", language="it")
    client = app.test_client()
    login(client, "back_office@example.com")
    return client


def partner_form(**fields):
    data = {"name": "Comune di Bergamo", "country": "IT", "language": "it", "payment_terms_days": "30"}
    data.update(is_customer="y", **fields)
    return data


def italian_error(**data) -> str:
    """The partner validation's message for `data`, in the staff user's language, as the form must show it."""
    with force_locale("it"):
        _clean, errors = validate_partner_fields(data)
    return str(escape(errors["sdi_code"]))


def test_admin_form_saves_a_public_administration_with_its_payment_terms(app):
    client = staff_client(app)
    url = "/admin/core_partner/new/"
    form = partner_form(
        public_administration="y",
        split_payment="y",
        sdi_code="uf1b2c",
        payment_method="sepa_direct_debit",
        payment_instalments="3",
    )

    response = client.post(url, data={"csrf_token": csrf_token(client, url), **form})

    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        partner = db.session.scalar(sa.select(Partner).where(Partner.name == "Comune di Bergamo"))
        assert (partner.public_administration, partner.sdi_code) == (True, "UF1B2C")
        assert (partner.payment_method, partner.payment_instalments) == ("sepa_direct_debit", 3)


@pytest.mark.parametrize(
    ("fields", "data"),
    [
        ({"public_administration": "y", "sdi_code": "ABC1234"}, {"public_administration": True, "sdi_code": "ABC1234"}),
        ({"public_administration": "y", "sdi_code": ""}, {"public_administration": True, "sdi_code": ""}),
        ({"sdi_code": "UF1B2C"}, {"public_administration": False, "sdi_code": "UF1B2C"}),
    ],
)
def test_admin_form_shows_the_office_code_error_on_its_field(app, fields, data):
    client = staff_client(app)
    url = "/admin/core_partner/new/"

    response = client.post(url, data={"csrf_token": csrf_token(client, url), **partner_form(**fields)})

    assert response.status_code == 200
    with app.test_request_context():
        expected = italian_error(**data)
    assert expected in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Partner)) == 0


def test_admin_form_refuses_13_instalments(app):
    client = staff_client(app)
    url = "/admin/core_partner/new/"

    response = client.post(url, data={"csrf_token": csrf_token(client, url), **partner_form(payment_instalments="13")})

    assert response.status_code == 200
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Partner)) == 0
