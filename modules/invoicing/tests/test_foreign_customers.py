"""A customer outside Italy: its VAT number printed with one prefix, the e-invoice's codes for foreign customers."""

from __future__ import annotations

import pytest

from modules.invoicing.tests.fatturapa_schema import assert_valid
from modules.invoicing.tests.support import add_company, billing_customer, start_run, usage_line
from modules.invoicing.tests.test_documents import pdf_text
from tests.api_support import bearer


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


@pytest.fixture
def spanish_customer(db_session):
    return billing_customer(
        "Imprenta Sol SL",
        vat_number="ESB12345674",
        street="Calle Mayor 5",
        postal_code="28013",
        city="Madrid",
        province=None,
        country="ES",
        sdi_code=None,
        pec=None,
        language="es",
    )


def posted_invoice(client, staff, customer) -> int:
    usage_line(customer.id, "sol:bw", 100, "0.02")
    invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]
    assert client.post(f"/api/v1/invoices/{invoice_id}/post", headers=staff).status_code == 200
    return invoice_id


def test_spanish_customer_e_invoice_has_its_vat_number_once_and_the_foreign_recipient_code(
    client, staff, spanish_customer
):
    invoice_id = posted_invoice(client, staff, spanish_customer)

    response = client.get(f"/api/v1/invoices/{invoice_id}/fatturapa", headers=staff)

    assert response.status_code == 200, response.get_data(as_text=True)
    header = assert_valid(response.data).find("FatturaElettronicaHeader")
    buyer = header.find("CessionarioCommittente")
    tax_id = buyer.find("DatiAnagrafici/IdFiscaleIVA")
    assert (tax_id.findtext("IdPaese"), tax_id.findtext("IdCodice")) == ("ES", "B12345674")
    assert header.findtext("DatiTrasmissione/CodiceDestinatario") == "XXXXXXX"
    assert [buyer.findtext(f"Sede/{tag}") for tag in ("CAP", "Provincia", "Nazione")] == ["00000", None, "ES"]


def test_spanish_customer_pdf_prints_the_vat_number_with_one_country_prefix(client, staff, spanish_customer):
    invoice_id = posted_invoice(client, staff, spanish_customer)

    text = pdf_text(client.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=staff).data)

    assert "ESB12345674" in text
    assert "ESESB" not in text
    assert "IT00743110157" in text  # the dealer's, prefixed once too
