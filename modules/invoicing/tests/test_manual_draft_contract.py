"""A draft typed in by hand may name a contract only of its own customer: it copies that contract's CIG, CUP and
order, so another customer's contract (or any, while no enabled module keeps contracts) is refused on `contract_id`."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from conftest import backends, database_url, make_app, migrate
from core.db import db
from core.extension_points import INVOICE_REFERENCES, implementations
from core.validation import ValidationError
from modules.invoicing import services
from modules.invoicing.models import Invoice
from modules.invoicing.tests.support import add_company, billing_customer, error_fields, new_contract
from tests.api_support import bearer


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


@pytest.fixture
def school(db_session):
    return billing_customer("Istituto Comprensivo Verdi", public_administration=True, sdi_code="UFABCD")


def tender_contract(client, staff, customer_id: int) -> dict:
    return new_contract(client, staff, customer_id, "S1", cig="Z1A2B3C4D5", order_reference="ORD-7")


def manual_body(customer_id: int, contract_id: int) -> dict:
    line = {"description": "Assistenza", "quantity": "1", "unit_price": "10.00", "vat_code": "22"}
    return {"customer_id": customer_id, "contract_id": contract_id, "lines": [line]}


def count_invoices() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Invoice))


def test_a_manual_draft_cannot_take_another_customers_contract_and_its_cig(client, staff, school):
    other = billing_customer("Altro Cliente Srl", vat_number="00743110157")
    contract = tender_contract(client, staff, school.id)

    response = client.post("/api/v1/invoices", json=manual_body(other.id, contract["id"]), headers=staff)
    unknown = client.post("/api/v1/invoices", json=manual_body(school.id, contract["id"] + 1000), headers=staff)

    assert response.status_code == 422 and error_fields(response.get_json()) == ["contract_id"]
    assert unknown.status_code == 422 and error_fields(unknown.get_json()) == ["contract_id"]
    assert count_invoices() == 0


def test_a_manual_draft_of_the_customers_own_contract_carries_its_cig(client, staff, school):
    contract = tender_contract(client, staff, school.id)

    response = client.post("/api/v1/invoices", json=manual_body(school.id, contract["id"]), headers=staff)

    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["contract_id"], body["cig"], body["order_reference"]) == (contract["id"], "Z1A2B3C4D5", "ORD-7")


def test_rentals_answers_whose_each_contract_is_in_one_query(client, staff, school):
    contract = tender_contract(client, staff, school.id)
    (provider,) = implementations(INVOICE_REFERENCES)

    assert provider.contract_customers([contract["id"], contract["id"] + 1000]) == {contract["id"]: school.id}
    assert provider.contract_customers([]) == {}


@pytest.fixture(params=backends())
def invoicing_only_app(request, tmp_path):
    app = make_app(database_url(request.param, tmp_path, name="invoicing_only"), COPYDESK_MODULES=["invoicing"])
    migrate(app)
    yield app
    with app.app_context():
        db.engine.dispose()


def test_without_rentals_a_manual_draft_names_no_contract(invoicing_only_app):
    line = {"description": "Assistenza", "quantity": Decimal(1), "unit_price": Decimal(10), "vat_code": "22"}
    with invoicing_only_app.app_context():
        customer = billing_customer()
        with pytest.raises(ValidationError) as raised:
            services.create_manual_draft(customer.id, [line], contract_id=1)
        without = services.create_manual_draft(customer.id, [line])

        assert list(raised.value.errors) == ["contract_id"]
        assert count_invoices() == 1 and without.contract_id is None
