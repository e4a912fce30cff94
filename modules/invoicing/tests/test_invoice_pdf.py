"""The invoice PDF as the customer reads it: file name in their language, rates with %, units by name, notes."""

from __future__ import annotations

import datetime as dt

import pytest

from core.db import db
from modules.invoicing import pdf
from modules.invoicing.models import Invoice
from modules.invoicing.tests.support import add_company, billing_customer, new_contract, start_run, usage_line
from modules.invoicing.tests.test_documents import pdf_text
from tests.api_support import bearer


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


def posted(client, staff, customer, **terms) -> int:
    contract = new_contract(client, staff, customer.id, f"S-{customer.id}", **terms)
    usage_line(customer.id, "bw:jan", 850, "0.012", contract_id=contract["id"])
    invoice_id = start_run(client, staff, "2026-02-05")["invoice_ids"][0]
    response = client.post(f"/api/v1/invoices/{invoice_id}/post", json={"issue_date": "2026-02-06"}, headers=staff)
    assert response.status_code == 200
    return invoice_id


@pytest.mark.parametrize(
    ("language", "name"),
    [("it", "Fattura_1-2026.pdf"), ("es", "Factura_1-2026.pdf"), ("en", "Invoice_1-2026.pdf")],
)
def test_pdf_file_name_is_in_the_customers_language(client, staff, db_session, language, name):
    invoice_id = posted(client, staff, billing_customer(language=language))

    response = client.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=staff)

    assert f'filename="{name}"' in response.headers["Content-Disposition"]


def test_pdf_lines_show_rates_with_percent_units_by_name_the_period_once_and_the_contract_notes(
    client, staff, db_session
):
    customer = billing_customer(language="en")
    invoice_id = posted(client, staff, customer, invoice_notes="Rif. ordine 4711 - CIG Z1234567")
    invoice = db.session.get(Invoice, invoice_id)

    text = pdf_text(pdf.render_pdf(invoice))

    first_page = text.split("Usage detail")[0]
    assert "22%" in first_page
    assert "pages" in first_page and "period" in first_page and " pz" not in first_page
    fee = next(line for line in invoice.lines if line.source == "rentals")
    assert pdf_date(fee.period_start) in fee.description
    # The dash line under a description is printed for the usage line only, not again under the fee's own dates.
    assert first_page.count(f"{pdf_date(fee.period_start)} \u2013 {pdf_date(fee.period_end)}") == 1
    assert "Rif. ordine 4711 - CIG Z1234567" in text


def pdf_date(value: dt.date) -> str:
    from flask_babel import force_locale, format_date

    with force_locale("en"):
        return format_date(value, "short")
