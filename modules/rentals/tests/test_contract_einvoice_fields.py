"""A contract's VAT code and procurement references (CIG, CUP, customer's contract or order), through the API and
the back-office form, as invoicing gets them: on the billed lines and from the INVOICE_REFERENCES provider."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from core.extension_points import INVOICE_REFERENCES, InvoiceReference, implementations
from core.models import VatCode
from core.vat_codes import ensure_defaults
from modules.rentals.billing import RentalFeeSource
from modules.rentals.contracts import create_contract
from modules.rentals.models import Contract
from modules.rentals.tests.test_admin import contract_form, logged_in, submit
from tests.api_support import add_customer, bearer

PROBLEM = "application/problem+json"


def problem_fields(response, status: int = 422) -> dict[str, str]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


def body(customer_id: int, **fields) -> dict:
    return {"customer_id": customer_id, "start_date": "2026-01-01", "fee": "50.00", **fields}


def post(client, headers, data: dict):
    return client.post("/api/v1/contracts", json=data, headers=headers)


def count_contracts() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Contract))


@pytest.fixture
def staff(db_session):
    return bearer("dealer_admin")


@pytest.fixture
def customer(db_session):
    return add_customer("Studio Legale Bianchi")


@pytest.fixture
def german_business(db_session):
    return add_customer("Druckhaus Berlin GmbH", country="DE", vat_number="DE136695976")


# VAT code through the API


def test_api_contract_with_a_zero_rate_code_bills_that_code_at_zero(client, staff, customer):
    response = post(client, staff, body(customer.id, vat_code="N6.9", vat_rate="22"))

    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert (created["vat_code"], Decimal(created["vat_rate"])) == ("N6.9", Decimal("0"))
    read = client.get(f"/api/v1/contracts/{created['id']}", headers=staff).get_json()
    assert (read["vat_code"], Decimal(read["vat_rate"])) == ("N6.9", Decimal("0"))


def test_api_patch_changes_the_code_and_its_rate(client, staff, customer):
    contract = post(client, staff, body(customer.id, vat_code="22")).get_json()

    patched = client.patch(f"/api/v1/contracts/{contract['id']}", json={"vat_code": "10"}, headers=staff)

    assert patched.status_code == 200, patched.get_data(as_text=True)
    assert (patched.get_json()["vat_code"], Decimal(patched.get_json()["vat_rate"])) == ("10", Decimal("10"))
    assert db.session.get(Contract, contract["id"]).vat_code == "10"


def test_api_refuses_a_generic_or_unknown_code_naming_vat_code(client, staff, customer):
    for code in ("N2", "N6", "XYZ"):
        assert "vat_code" in problem_fields(post(client, staff, body(customer.id, vat_code=code)))
    contract = post(client, staff, body(customer.id)).get_json()
    patched = client.patch(f"/api/v1/contracts/{contract['id']}", json={"vat_code": "N3"}, headers=staff)

    assert "vat_code" in problem_fields(patched)
    assert count_contracts() == 1
    assert db.session.get(Contract, contract["id"]).vat_code == "22"


def test_api_refuses_an_inactive_code(client, staff, customer):
    ensure_defaults()
    db.session.get(VatCode, "N4").active = False
    db.session.commit()

    assert "vat_code" in problem_fields(post(client, staff, body(customer.id, vat_code="N4")))


def test_old_clients_sending_a_rate_keep_the_rates_default_code(client, staff, customer):
    response = post(client, staff, body(customer.id, vat_rate="10"))

    assert response.status_code == 201, response.get_data(as_text=True)
    assert (response.get_json()["vat_code"], Decimal(response.get_json()["vat_rate"])) == (None, Decimal("10"))


def test_a_zero_rate_without_a_code_is_refused_naming_vat_code(client, staff, customer):
    errors = problem_fields(post(client, staff, body(customer.id, vat_rate="0")))
    contract = post(client, staff, body(customer.id)).get_json()
    patched = client.patch(f"/api/v1/contracts/{contract['id']}", json={"vat_rate": "0"}, headers=staff)

    assert "vat_code" in errors
    assert "vat_code" in problem_fields(patched)
    assert db.session.get(Contract, contract["id"]).vat_rate == Decimal("22")


def test_a_new_contract_without_vat_proposes_n2_1_for_a_foreign_eu_business(client, staff, german_business):
    italian = add_customer("Farmacia San Marco Srl", country="IT", vat_number="IT12345670157")
    german = post(client, staff, body(german_business.id)).get_json()
    domestic = post(client, staff, body(italian.id)).get_json()

    assert (german["vat_code"], Decimal(german["vat_rate"])) == ("N2.1", Decimal("0"))
    assert (domestic["vat_code"], Decimal(domestic["vat_rate"])) == ("22", Decimal("22"))


# Procurement references


def test_api_takes_and_returns_the_procurement_references(client, staff, customer):
    response = post(
        client,
        staff,
        body(
            customer.id,
            cig="z1a2b3c4d5",
            cup="j12h34000560007",
            order_kind="order",
            order_reference="ODA-2026/118",
            order_date="2025-12-15",
        ),
    )

    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert {key: created[key] for key in ("cig", "cup", "order_kind", "order_reference", "order_date")} == {
        "cig": "Z1A2B3C4D5",
        "cup": "J12H34000560007",
        "order_kind": "order",
        "order_reference": "ODA-2026/118",
        "order_date": "2025-12-15",
    }
    patched = client.patch(
        f"/api/v1/contracts/{created['id']}", json={"cig": None, "order_kind": "contract"}, headers=staff
    )
    assert (patched.get_json()["cig"], patched.get_json()["order_kind"]) == (None, "contract")
    assert patched.get_json()["cup"] == "J12H34000560007"


def test_bad_cig_cup_and_order_fields_are_named_and_nothing_is_written(client, staff, customer):
    errors = problem_fields(post(client, staff, body(customer.id, cig="Z1A2B3C4D", cup="J12H3400056000-")))
    too_long = problem_fields(post(client, staff, body(customer.id, cig="Z1A2B3C4D5X", cup="J12H340005600071")))
    reference = problem_fields(post(client, staff, body(customer.id, order_reference="X" * 21)))
    kind = problem_fields(post(client, staff, body(customer.id, order_kind="invoice")))

    assert {"cig", "cup"} <= set(errors)
    assert "10" in errors["cig"] and "15" in errors["cup"]
    assert {"cig", "cup"} <= set(too_long)
    assert "order_reference" in reference
    assert "order_kind" in kind
    assert count_contracts() == 0


def test_a_bad_cig_reads_the_same_on_a_contract_and_on_an_invoice_typed_in_by_hand(client, staff, customer):
    line = {"description": "Assistenza", "quantity": "1", "unit_price": "10.00", "vat_code": "22"}
    invoice = {"customer_id": customer.id, "lines": [line], "cig": "Z1A2B3C4D", "cup": "J12H3400056000"}

    on_contract = problem_fields(post(client, staff, body(customer.id, cig="Z1A2B3C4D", cup="J12H3400056000")))
    on_invoice = problem_fields(client.post("/api/v1/invoices", json=invoice, headers=staff))

    assert (on_contract["cig"], on_contract["cup"]) == (on_invoice["cig"], on_invoice["cup"])
    assert "10" in on_contract["cig"] and "15" in on_contract["cup"]


# Back-office form


def test_form_lists_the_active_codes_and_proposes_n2_1_for_a_foreign_business(app, german_business):
    client = logged_in(app, "dealer_admin")
    with app.app_context():
        ensure_defaults()
        db.session.get(VatCode, "N5").active = False
        db.session.commit()

    page = client.get(f"/admin/rentals_contract/new/?customer_id={german_business.id}").get_data(as_text=True)

    select = re.search(r'<select[^>]*name="vat_code"[^>]*>(.*?)</select>', page, re.S).group(1)
    assert re.search(r'<option selected value="N2.1">N2.1 — Not subject, art. 7-ter', select)
    assert '<option value="22">22 — VAT 22%</option>' in select
    assert 'value="N5"' not in select
    assert 'name="vat_rate"' not in page


def test_form_saves_the_code_and_the_references_and_the_page_shows_them(app, customer):
    client = logged_in(app, "dealer_admin")
    form = contract_form(
        customer.id,
        vat_code="N4",
        cig="z1a2b3c4d5",
        cup="",
        order_kind="contract",
        order_reference="Conv. 44/2025",
        order_date="2025-11-30",
    )

    page = submit(client, "/admin/rentals_contract/new/", form, follow_redirects=True).get_data(as_text=True)

    with app.app_context():
        contract = db.session.scalar(sa.select(Contract))
        assert (contract.vat_code, contract.vat_rate, contract.cig, contract.cup) == (
            "N4",
            Decimal("0"),
            "Z1A2B3C4D5",
            None,
        )
        assert (contract.order_reference, contract.order_date) == ("Conv. 44/2025", dt.date(2025, 11, 30))
    assert 'data-vat-code="N4"' in page and "N4 — Exempt, art. 10 DPR 633/72" in page
    assert "<span data-cig>Z1A2B3C4D5</span>" in page and "Conv. 44/2025" in page
    listing = client.get("/admin/rentals_contract/").get_data(as_text=True)
    assert re.search(rf">{re.escape(contract.number)}</a>.*?N4", listing, re.S)


def test_form_names_a_bad_cig_on_its_field_and_writes_nothing(app, customer):
    client = logged_in(app, "dealer_admin")

    page = submit(
        client, "/admin/rentals_contract/new/", contract_form(customer.id, vat_code="22", cig="123")
    ).get_data(as_text=True)

    assert 'href="#cig"' in page and 'id="cig"' in page
    assert re.search(r'<input class="form-control is-invalid" id="cig"', page)
    with app.app_context():
        assert count_contracts() == 0


def test_form_edit_preselects_the_default_code_of_a_contract_billed_by_rate(app, customer):
    client = logged_in(app, "dealer_admin")
    with app.app_context():
        contract = create_contract({"customer_id": customer.id, "start_date": "2026-01-01", "vat_rate": "10"})
        db.session.commit()
        contract_id = contract.id

    page = client.get(f"/admin/rentals_contract/edit/?id={contract_id}").get_data(as_text=True)

    assert '<option selected value="10">' in page


# What invoicing gets


def test_references_provider_gives_the_references_of_contracts_that_have_any(db_session, customer):
    school = add_customer("Istituto Comprensivo Verdi", public_administration=True)
    plain = create_contract({"customer_id": customer.id, "start_date": "2026-01-01"})
    ordered = create_contract(
        {
            "customer_id": customer.id,
            "start_date": "2026-02-01",
            "order_kind": "order",
            "order_reference": "PO-77",
            "order_date": "2026-01-20",
            "cup": "J12H34000560007",
        }
    )
    public = create_contract({"customer_id": school.id, "start_date": "2026-03-01", "cig": "Z1A2B3C4D5"})
    db.session.commit()
    (provider,) = implementations(INVOICE_REFERENCES)

    references = provider.invoice_references([plain.id, ordered.id, public.id])

    assert references == {
        ordered.id: InvoiceReference(
            kind="order", reference="PO-77", date=dt.date(2026, 1, 20), cig=None, cup="J12H34000560007"
        ),
        public.id: InvoiceReference(
            kind="contract", reference=public.number, date=dt.date(2026, 3, 1), cig="Z1A2B3C4D5", cup=None
        ),
    }
    assert provider.invoice_references([]) == {}


def test_a_public_administration_contract_without_references_still_gets_its_number_and_date(db_session):
    school = add_customer("Comune di Lodi", public_administration=True)
    contract = create_contract({"customer_id": school.id, "start_date": "2026-04-01"})
    db.session.commit()
    (provider,) = implementations(INVOICE_REFERENCES)

    assert provider.invoice_references([contract.id]) == {
        contract.id: InvoiceReference(kind="contract", reference=contract.number, date=dt.date(2026, 4, 1))
    }


def test_the_billed_fee_line_carries_the_contracts_vat_code(db_session, german_business):
    contract = create_contract({"customer_id": german_business.id, "start_date": "2026-01-01", "fee": "80.00"})
    contract.state = "active"
    db.session.commit()

    lines = RentalFeeSource().billable_lines(german_business.id, dt.date(2026, 2, 1))

    assert [(line.vat_code, line.vat_rate, line.unit_price) for line in lines] == [
        ("N2.1", Decimal("0.00"), Decimal("80.00")),
        ("N2.1", Decimal("0.00"), Decimal("80.00")),
    ]
