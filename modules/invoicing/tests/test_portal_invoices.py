"""The portal's invoice list as the customer meets it: what is known of each document, and its PDF and XML copies."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from core.db import db
from core.models import Company
from modules.invoicing.tests.support import add_company, billing_customer, new_contract, start_run, usage_line
from tests.api_support import bearer
from tests.auth_support import login, make_user

NS = {"p": "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2"}


def _two_customers_with_posted_invoices(app):
    """Alfa's and Beta's January invoices posted, Alfa's March one a draft; Anna is Alfa's administrator."""
    client = app.test_client()
    with app.app_context():
        add_company()
        staff = bearer("dealer_admin")
        alfa, beta = billing_customer("Alfa"), billing_customer("Beta")
        make_user("anna@alfa.example", "customer_admin", customer_id=alfa.id, language="en")
        new_contract(client, staff, alfa.id, "P1")
        new_contract(client, staff, beta.id, "P2")
        usage_line(alfa.id, "draft-only", 1, "1.00", available_from=dt.date(2026, 3, 1))
        alfa_invoice, beta_invoice = start_run(client, staff, "2026-01-05")["invoice_ids"]
        for invoice_id in (alfa_invoice, beta_invoice):
            posted = client.post(
                f"/api/v1/invoices/{invoice_id}/post", json={"issue_date": "2026-01-05"}, headers=staff
            )
            assert posted.status_code == 200
        alfa_draft = start_run(client, staff, "2026-03-05")["invoice_ids"][0]
    portal = app.test_client()
    assert login(portal, "anna@alfa.example", url="/portal/login").status_code == 302
    return portal, alfa_invoice, beta_invoice, alfa_draft


def test_portal_invoice_list_says_issued_and_due_date_and_claims_no_payment(app):
    portal, alfa_invoice, _beta, _draft = _two_customers_with_posted_invoices(app)

    text = portal.get("/portal/invoices/").get_data(as_text=True)

    assert "Invoice 1/2026" in text
    assert "Issued · due Feb 4, 2026" in text  # 30 days' terms, the date in the customer's language
    assert "Paid" not in text and "Overdue" not in text  # nothing records payments: none is claimed
    assert f'href="/portal/invoices/{alfa_invoice}.pdf"' in text
    assert f'href="/portal/invoices/{alfa_invoice}.xml"' in text


def test_customer_downloads_the_fatturapa_xml_of_their_own_posted_invoice_only(app):
    portal, alfa_invoice, beta_invoice, alfa_draft = _two_customers_with_posted_invoices(app)

    own = portal.get(f"/portal/invoices/{alfa_invoice}.xml")
    other = portal.get(f"/portal/invoices/{beta_invoice}.xml")
    draft = portal.get(f"/portal/invoices/{alfa_draft}.xml")

    assert own.status_code == 200 and own.mimetype == "application/xml"
    assert own.headers["Content-Disposition"].startswith('attachment; filename="IT00743110157_')
    root = ET.fromstring(own.data)
    assert root.findtext(".//DatiGeneraliDocumento/Numero", namespaces=NS) == "1/2026"
    assert root.findtext(".//CessionarioCommittente//Denominazione", namespaces=NS) == "Alfa"
    assert other.status_code == 404 and draft.status_code == 404


def test_xml_copy_unavailable_while_the_dealer_lacks_a_vat_number_says_so_to_the_customer(app):
    portal, alfa_invoice, _beta, _draft = _two_customers_with_posted_invoices(app)
    with app.app_context():
        db.session.scalar(db.select(Company)).vat_number = None
        db.session.commit()

    response = portal.get(f"/portal/invoices/{alfa_invoice}.xml", follow_redirects=True)

    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "1/2026" in response.get_data(as_text=True)
    assert "not available yet" in response.get_data(as_text=True)
