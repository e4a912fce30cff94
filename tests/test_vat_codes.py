"""VAT codes: the shipped set, resolving a line's code, the Natura rules, the code proposed for a customer, and the
admin list and API through which billing staff keep them."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from flask_babel import force_locale
from markupsafe import escape

from core import vat_codes
from core.db import db
from core.models import Partner, VatCode
from core.validation import ValidationError
from tests.api_support import add_customer, bearer
from tests.auth_support import csrf_token, login, make_user

PROBLEM = "application/problem+json"
EXEMPT = {
    "code": "N4-MED",
    "rate": "0",
    "description_it": "Esente art. 10 n. 18",
    "nature": "N4",
    "legal_reference": "Art. 10 c. 1 n. 18 DPR 633/72",
    "stamp_duty": True,
}


def error_fields(response) -> set[str]:
    assert response.mimetype == PROBLEM, response.get_data(as_text=True)
    return {error["field"] for error in response.get_json()["errors"]}


def staff_client(app, role="back_office"):
    with app.app_context():
        make_user(f"{role}@example.com", role=role, language="it")
    client = app.test_client()
    login(client, f"{role}@example.com")
    return client


def refusal(app, data: dict) -> dict[str, str]:
    """The errors the service gives `data`, in the staff user's language (Italian), as the form must show them."""
    with app.test_request_context(), force_locale("it"), pytest.raises(ValidationError) as refused:
        vat_codes.validate_code_fields(data)
    return refused.value.errors


# resolve


def test_a_rate_without_code_resolves_to_the_default_code_of_that_rate(db_session):
    code = vat_codes.resolve(None, Decimal("22"), "lines.0.vat_code")

    assert (code.code, code.rate, code.nature) == ("22", Decimal("22.00"), None)
    assert vat_codes.resolve(None, Decimal("10.00"), "vat_code").code == "10"


def test_a_given_code_wins_and_carries_its_natura_and_law(db_session):
    code = vat_codes.resolve("n2.1", Decimal("22"), "vat_code")

    assert (code.code, code.rate, code.nature) == ("N2.1", Decimal("0.00"), "N2.1")
    assert code.legal_reference == "Art. 7-ter DPR 633/72"


@pytest.mark.parametrize("rate", [Decimal("0"), None])
def test_a_zero_rate_without_code_is_refused_naming_the_field(db_session, rate):
    with pytest.raises(ValidationError) as refused:
        vat_codes.resolve(None, rate, "lines.2.vat_code")

    assert list(refused.value.errors) == ["lines.2.vat_code"]


def test_an_unknown_or_retired_code_is_refused_naming_the_field(db_session):
    with pytest.raises(ValidationError) as unknown:
        vat_codes.resolve("N9", None, "vat_code")
    vat_codes.ensure_defaults()
    db.session.get(VatCode, "N5").active = False
    db.session.commit()
    with pytest.raises(ValidationError) as retired:
        vat_codes.resolve("N5", None, "vat_code")

    assert list(unknown.value.errors) == ["vat_code"] and "N9" in unknown.value.errors["vat_code"]
    assert list(retired.value.errors) == ["vat_code"]


def test_a_rate_no_code_has_is_refused(db_session):
    with pytest.raises(ValidationError) as refused:
        vat_codes.resolve(None, Decimal("7"), "vat_rate")

    assert list(refused.value.errors) == ["vat_rate"]


def test_the_shipped_set_is_installed_once(db_session):
    vat_codes.ensure_defaults()
    vat_codes.ensure_defaults()

    codes = db.session.scalars(sa.select(VatCode.code)).all()
    assert sorted(codes) == sorted(values["code"] for values in vat_codes.DEFAULT_CODES)
    assert {"22", "10", "5", "4", "N1", "N2.1", "N2.2", "N3.1", "N3.2", "N3.5", "N4", "N5", "N6.9", "N7"} == set(codes)
    stamped = set(db.session.scalars(sa.select(VatCode.code).where(VatCode.stamp_duty.is_(True))))
    assert stamped == {"N1", "N2.1", "N2.2", "N3.1", "N3.5", "N4"}
    assert all(code.legal_reference for code in db.session.scalars(sa.select(VatCode).where(VatCode.rate == 0)))


# validate


@pytest.mark.parametrize("generic", ["N2", "N3", "N6", "n6"])
def test_a_generic_natura_is_refused_naming_nature(db_session, generic):
    with pytest.raises(ValidationError) as refused:
        vat_codes.validate_code_fields({**EXEMPT, "nature": generic})

    assert list(refused.value.errors) == ["nature"]
    assert generic.upper() in refused.value.errors["nature"]


def test_natura_rules_follow_the_rate(db_session):
    cases = [
        ({**EXEMPT, "nature": None}, "nature"),  # 0% needs one
        ({**EXEMPT, "rate": "22"}, "nature"),  # above 0% has none
        ({**EXEMPT, "nature": "N8"}, "nature"),  # not in the list
        ({**EXEMPT, "legal_reference": ""}, "legal_reference"),  # a 0% code cites its law
        ({**EXEMPT, "chargeability": "X"}, "chargeability"),
        ({**EXEMPT, "rate": "101"}, "rate"),
        ({**EXEMPT, "rate": "22.125", "nature": None}, "rate"),
        ({**EXEMPT, "code": "bad code"}, "code"),
        ({**EXEMPT, "code": "22"}, "code"),  # already shipped
    ]
    vat_codes.ensure_defaults()
    for data, field in cases:
        with pytest.raises(ValidationError) as refused:
            vat_codes.validate_code_fields(data)
        assert field in refused.value.errors, (data, refused.value.errors)


def test_valid_fields_come_back_clean_with_defaults(db_session):
    clean = vat_codes.validate_code_fields({**EXEMPT, "code": "n4-med", "nature": "n4"})

    assert clean["code"] == "N4-MED" and clean["nature"] == "N4" and clean["rate"] == Decimal("0.00")
    assert clean["description_en"] == clean["description_es"] == EXEMPT["description_it"]
    assert (clean["chargeability"], clean["active"], clean["stamp_duty"]) == ("I", True, True)


def test_changing_only_the_rate_of_a_zero_code_rechecks_its_natura(db_session):
    vat_codes.ensure_defaults()
    n4 = db.session.get(VatCode, "N4")

    with pytest.raises(ValidationError) as refused:
        vat_codes.validate_code_fields({"rate": "22"}, n4)

    assert list(refused.value.errors) == ["nature"]


# propose_code


def partner(country: str, vat_number: str | None) -> Partner:
    return Partner(name="Customer", country=country, vat_number=vat_number)


def test_a_spanish_vat_registered_company_gets_not_subject_n2_1():
    assert vat_codes.propose_code(partner("ES", "ESB58378431")) == "N2.1"
    assert vat_codes.propose_code(partner("ES", "B58378431")) == "N2.1"


def test_a_spanish_consumer_or_an_invalid_number_gets_italian_vat():
    assert vat_codes.propose_code(partner("ES", None)) == "22"
    assert vat_codes.propose_code(partner("ES", "ESB58378432")) == "22"


def test_a_swiss_company_gets_n2_1_and_an_italian_one_22():
    assert vat_codes.propose_code(partner("CH", "CHE116281710MWST")) == "N2.1"
    assert vat_codes.propose_code(partner("IT", "00743110157")) == "22"


def test_reverse_charge_natures():
    assert [vat_codes.is_reverse_charge(n) for n in ("N6.3", "N6.9", "N2.1", "N2.2", "N4", None)] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


def test_description_in_the_customer_language_falls_back_to_italian(db_session):
    vat_codes.ensure_defaults()
    n4 = db.session.get(VatCode, "N4")

    assert vat_codes.description(n4, "es") == "Exento, art. 10 DPR 633/72"
    assert vat_codes.description(n4, "de") == "Esente art. 10 DPR 633/72"


# admin


def test_the_admin_list_shows_the_shipped_codes_to_a_new_dealer(app):
    client = staff_client(app)

    page = client.get("/admin/core_vat_code/")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for code, reference in (("N2.1", "Art. 7-ter DPR 633/72"), ("N4", "Art. 10 DPR 633/72"), ("N6.9", "Art. 17")):
        assert f">{code}<" in html.replace(" ", "") or code in html
        assert reference in html
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(VatCode)) == len(vat_codes.DEFAULT_CODES)


def test_a_technician_cannot_open_the_vat_codes(app):
    client = staff_client(app, "technician")

    assert client.get("/admin/core_vat_code/").status_code == 403


def test_admin_form_refuses_a_generic_natura_on_its_field_and_saves_nothing(app):
    client = staff_client(app)
    url = "/admin/core_vat_code/new/"
    form = {
        "code": "ESE",
        "rate": "0",
        "description_it": "Esente",
        "nature": "N2.1",
        "legal_reference": "Art. 7-ter DPR 633/72",
        "chargeability": "I",
        "position": "5",
    }

    expected = refusal(app, {**form, "rate": "22"})

    refused = client.post(url, data={"csrf_token": csrf_token(client, url), **form, "rate": "22"})
    with app.app_context():
        assert db.session.get(VatCode, "ESE") is None
    saved = client.post(url, data={"csrf_token": csrf_token(client, url), **form})

    assert refused.status_code == 200 and list(expected) == ["nature"]
    assert str(escape(expected["nature"])) in refused.get_data(as_text=True)
    assert saved.status_code == 302, saved.get_data(as_text=True)
    with app.app_context():
        code = db.session.get(VatCode, "ESE")
        assert (code.nature, code.rate, code.description_en) == ("N2.1", Decimal("0.00"), "Esente")


def test_admin_edit_takes_a_code_out_of_use_and_there_is_no_delete(app):
    client = staff_client(app)
    client.get("/admin/core_vat_code/")
    url = "/admin/core_vat_code/edit/?id=N5"
    page = client.get(url).get_data(as_text=True)
    form = {
        "code": "N5",
        "rate": "0.00",
        "description_it": "Regime del margine art. 36 DL 41/95",
        "description_en": "Margin scheme",
        "description_es": "Régimen del margen",
        "nature": "N5",
        "legal_reference": "Art. 36 DL 41/95",
        "chargeability": "I",
        "position": "170",
    }

    response = client.post(url, data={"csrf_token": csrf_token(client, url), **form})

    assert response.status_code == 302, response.get_data(as_text=True)
    assert "/admin/core_vat_code/delete/" not in page
    deleted = client.post("/admin/core_vat_code/delete/", data={"csrf_token": csrf_token(client, url), "id": "N5"})
    assert deleted.status_code in (302, 403)
    with app.app_context():
        code = db.session.get(VatCode, "N5")
        assert code is not None and code.active is False and code.description_en == "Margin scheme"


# API


@pytest.fixture
def staff(db_session):
    return bearer("back_office")


def test_api_lists_the_shipped_codes_in_order(client, staff):
    body = client.get("/api/v1/vat-codes?per_page=200", headers=staff).get_json()

    codes = [item["code"] for item in body["items"]]
    assert codes[:4] == ["22", "10", "5", "4"] and "N2.1" in codes
    assert body["total"] == len(vat_codes.DEFAULT_CODES)
    first = body["items"][0]
    assert first["rate"] == "22.00" and first["nature"] is None and first["chargeability"] == "I"


def test_api_creates_reads_and_updates_a_code(client, staff):
    created = client.post("/api/v1/vat-codes", json=EXEMPT, headers=staff)

    assert created.status_code == 201, created.get_json()
    assert created.headers["Location"].endswith("/api/v1/vat-codes/N4-MED")
    read = client.get("/api/v1/vat-codes/n4-med", headers=staff).get_json()
    assert read == {
        **EXEMPT,
        "rate": "0.00",
        "description_en": EXEMPT["description_it"],
        "description_es": EXEMPT["description_it"],
        "chargeability": "I",
        "active": True,
        "position": 0,
    }
    patched = client.patch("/api/v1/vat-codes/N4-MED", json={"active": False, "position": 3}, headers=staff)
    assert patched.status_code == 200 and (patched.get_json()["active"], patched.get_json()["position"]) == (False, 3)
    inactive = client.get("/api/v1/vat-codes?active=false", headers=staff).get_json()
    assert [item["code"] for item in inactive["items"]] == ["N4-MED"]


def test_api_refuses_a_generic_natura_naming_nature_and_writes_nothing(client, staff):
    response = client.post("/api/v1/vat-codes", json={**EXEMPT, "nature": "N3"}, headers=staff)

    assert response.status_code == 422
    assert error_fields(response) == {"nature"}
    assert client.get("/api/v1/vat-codes/N4-MED", headers=staff).status_code == 404


def test_api_patch_refuses_a_natura_on_a_taxed_code(client, staff):
    response = client.patch("/api/v1/vat-codes/22", json={"nature": "N4"}, headers=staff)

    assert response.status_code == 422 and error_fields(response) == {"nature"}
    assert client.get("/api/v1/vat-codes/22", headers=staff).get_json()["nature"] is None


def test_api_code_cannot_be_deleted_nor_changed_by_a_technician(client, db_session):
    technician = bearer("technician")

    assert client.get("/api/v1/vat-codes/22", headers=technician).status_code == 200
    assert client.patch("/api/v1/vat-codes/22", json={"active": False}, headers=technician).status_code == 403
    assert client.delete("/api/v1/vat-codes/22", headers=bearer("dealer_admin")).status_code == 405
    customer = bearer("customer_admin", customer=add_customer("Studio Bianchi"))
    assert client.get("/api/v1/vat-codes", headers=customer).status_code == 403
