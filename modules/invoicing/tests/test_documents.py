"""What the customer receives: the PDF, the FatturaPA XML, the email with the PDF, the portal's invoice list."""

from __future__ import annotations

import datetime as dt
import io
import re
import subprocess
from dataclasses import replace
from decimal import Decimal

import pytest
from pypdf import PdfReader

from core.db import db
from core.models import OutboxMessage, PartnerContact
from modules.invoicing import pdf
from modules.invoicing.models import Invoice, InvoicePdf
from modules.invoicing.tests.fatturapa_schema import assert_valid
from modules.invoicing.tests.fixture_modules.fake_usage import module as fake_usage
from modules.invoicing.tests.support import (
    add_company,
    billing_customer,
    get_invoice,
    new_contract,
    start_run,
    usage_line,
)
from tests.api_support import bearer
from tests.auth_support import login, make_user


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


@pytest.fixture
def customer(db_session):
    return billing_customer()


def posted_example_a(client, staff, customer) -> int:
    contract = new_contract(client, staff, customer.id, "A1")
    usage_line(customer.id, "A:bw:jan", 850, "0.012", contract_id=contract["id"])
    usage_line(customer.id, "A:color:jan", 110, "0.09", contract_id=contract["id"], meter="color")
    invoice_id = start_run(client, staff, "2026-02-05")["invoice_ids"][0]
    response = client.post(f"/api/v1/invoices/{invoice_id}/post", json={"issue_date": "2026-02-06"}, headers=staff)
    assert response.status_code == 200
    return invoice_id


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_pdf_shows_number_lines_vat_summary_and_total(client, staff, customer):
    invoice_id = posted_example_a(client, staff, customer)

    response = client.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=staff)

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert "Fattura_1-2026.pdf" in response.headers["Content-Disposition"]
    text = pdf_text(response.data)
    assert "1/2026" in text
    for figure in ("120,10", "26,42", "146,52", "IT60X0542811101000000123456", "01234567897", "00743110157"):
        assert figure in text, figure
    assert "Fattura" in text  # the customer's language (Italian)
    assert len(PdfReader(io.BytesIO(response.data)).pages) == 2  # the usage detail page


def test_pdf_is_rendered_once_after_posting_and_stored(client, staff, customer, app):
    invoice_id = posted_example_a(client, staff, customer)

    stored = db.session.get(InvoicePdf, invoice_id)

    assert stored is not None and stored.filename == "Fattura_1-2026.pdf"
    assert client.get(f"/api/v1/invoices/{invoice_id}/pdf", headers=staff).data == stored.content


def test_long_invoices_split_their_lines_into_short_tables(client, staff, customer, tmp_path):
    for number in range(70):
        usage_line(customer.id, f"many:{number}", number + 1, "0.01")
    invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]
    invoice = db.session.get(Invoice, invoice_id)

    html = pdf.render_html(invoice)
    content = pdf.render_pdf(invoice)

    assert html.count('<table class="lines"') == 3 + 3  # 30 + 30 + 10 rows, on the invoice and the usage page
    text = pdf_text(content)
    assert "BOZZA" in text.upper() or "DRAFT" in text.upper()
    (tmp_path / "long.pdf").write_bytes(content)
    subprocess.run(
        ["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(tmp_path / "long.pdf"), str(tmp_path / "p")],
        check=True,
    )
    assert list(tmp_path.glob("p-*.png"))


def test_fatturapa_xml_validates_and_totals_like_the_invoice(client, staff, customer):
    invoice_id = posted_example_a(client, staff, customer)

    response = client.get(f"/api/v1/invoices/{invoice_id}/fatturapa", headers=staff)

    assert response.status_code == 200
    disposition = response.headers["Content-Disposition"]
    progressive = re.search(r'filename="IT00743110157_([0-9A-Z]{5})\.xml"', disposition).group(1)
    assert int(progressive, 36) == invoice_id
    document = assert_valid(response.data)
    assert document.get("versione") == "FPR12"
    general = document.find("FatturaElettronicaBody/DatiGenerali/DatiGeneraliDocumento")
    assert [general.findtext(tag) for tag in ("TipoDocumento", "Numero", "ImportoTotaleDocumento")] == [
        "TD01",
        "1/2026",
        "146.52",
    ]
    goods = document.find("FatturaElettronicaBody/DatiBeniServizi")
    summary = [
        [row.findtext(tag) for tag in ("AliquotaIVA", "ImponibileImporto", "Imposta")]
        for row in goods.findall("DatiRiepilogo")
    ]
    assert summary == [["22.00", "120.10", "26.42"]]
    assert sum(Decimal(line.findtext("PrezzoTotale")) for line in goods.findall("DettaglioLinee")) == Decimal("120.10")
    assert document.findtext("FatturaElettronicaHeader/DatiTrasmissione/CodiceDestinatario") == "ABC1234"
    assert b"<PrezzoUnitario>0.012</PrezzoUnitario>" in response.data
    assert b"<PrezzoTotale>10.20</PrezzoTotale>" in response.data


def test_fatturapa_with_a_zero_rate_line_gives_it_its_nature_and_its_own_summary(client, staff, customer):
    zero = usage_line(customer.id, "zero", 4, "2.50", vat_rate="0")
    fake_usage.LINES[customer.id][-1] = (dt.date(2000, 1, 1), replace(zero, vat_code="N2.2"))
    usage_line(customer.id, "full", 1, "10.00")
    invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]
    client.post(f"/api/v1/invoices/{invoice_id}/post", headers=staff)

    response = client.get(f"/api/v1/invoices/{invoice_id}/fatturapa", headers=staff)

    goods = assert_valid(response.data).find("FatturaElettronicaBody/DatiBeniServizi")
    summary = [
        [row.findtext(tag) for tag in ("AliquotaIVA", "Natura", "Imposta")] for row in goods.findall("DatiRiepilogo")
    ]
    assert summary == [["0.00", "N2.2", "0.00"], ["22.00", None, "2.20"]]
    assert [line.findtext("Natura") for line in goods.findall("DettaglioLinee")] == ["N2.2", None]


def test_fatturapa_of_a_credit_note_is_td04_and_names_the_invoice(client, staff, db_session):
    customer = billing_customer("Alfa", sdi_code=None, pec="alfa@pec.example")
    invoice_id = posted_example_a(client, staff, customer)
    note = client.post(f"/api/v1/invoices/{invoice_id}/credit-notes", json={}, headers=staff).get_json()
    client.post(f"/api/v1/invoices/{note['id']}/post", json={"issue_date": "2026-02-07"}, headers=staff)

    response = client.get(f"/api/v1/invoices/{note['id']}/fatturapa", headers=staff)

    document = assert_valid(response.data)
    header = document.find("FatturaElettronicaHeader/DatiTrasmissione")
    assert (header.findtext("CodiceDestinatario"), header.findtext("PECDestinatario")) == (
        "0000000",
        "alfa@pec.example",
    )
    general = document.find("FatturaElettronicaBody/DatiGenerali")
    assert general.findtext("DatiGeneraliDocumento/TipoDocumento") == "TD04"
    assert general.findtext("DatiGeneraliDocumento/ImportoTotaleDocumento") == "146.52"
    assert general.findtext("DatiFattureCollegate/IdDocumento") == "1/2026"


def test_fatturapa_of_a_draft_or_without_address_is_refused_naming_the_problem(client, staff, db_session):
    customer = billing_customer("Senza indirizzo", street=None)
    new_contract(client, staff, customer.id, "X1")
    invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]

    draft = client.get(f"/api/v1/invoices/{invoice_id}/fatturapa", headers=staff)
    client.post(f"/api/v1/invoices/{invoice_id}/post", headers=staff)
    no_street = client.get(f"/api/v1/invoices/{invoice_id}/fatturapa", headers=staff)

    assert draft.status_code == 422 and draft.get_json()["errors"][0]["field"] == "state"
    assert no_street.status_code == 422 and no_street.get_json()["errors"][0]["field"] == "customer.street"


def test_posted_invoice_is_emailed_once_to_billing_contacts_with_the_pdf(client, staff, customer):
    db.session.add(
        PartnerContact(partner_id=customer.id, name="Ufficio", email="fatture@bianchi.example", receives_invoices=True)
    )
    db.session.add(PartnerContact(partner_id=customer.id, name="Tecnico", email="it@bianchi.example"))
    db.session.commit()
    invoice_id = posted_example_a(client, staff, customer)

    messages = db.session.scalars(db.select(OutboxMessage)).all()

    assert len(messages) == 1
    message = messages[0]
    assert message.recipients == ["fatture@bianchi.example"]
    assert message.dedupe_key == f"invoice:{invoice_id}"
    assert "1/2026" in message.subject and message.language == "it"
    assert [(a.filename, a.mimetype) for a in message.attachments] == [("Fattura_1-2026.pdf", "application/pdf")]
    assert message.attachments[0].content == db.session.get(InvoicePdf, invoice_id).content
    assert get_invoice(client, staff, invoice_id)["email_status"] == "kept"  # no MAIL_SERVER in tests


def test_without_contacts_the_invoice_goes_to_the_customer_email_or_says_why_not(client, staff, db_session):
    with_email = billing_customer("Alfa", email="alfa@example.com")
    without = billing_customer("Beta", email=None)
    new_contract(client, staff, with_email.id, "P1")
    new_contract(client, staff, without.id, "P2")
    first, second = start_run(client, staff, "2026-01-05")["invoice_ids"]
    for invoice_id in (first, second):
        client.post(f"/api/v1/invoices/{invoice_id}/post", headers=staff)

    db.session.expire_all()
    assert db.session.get(Invoice, first).email_message.recipients == ["alfa@example.com"]
    assert db.session.get(Invoice, second).email_message is None
    assert "no invoice contact" in db.session.get(Invoice, second).email_note


def test_portal_lists_and_downloads_only_the_customers_own_posted_invoices(app):
    # No app context held open here: each request of the portal client gets its own, as in production.
    client = app.test_client()
    with app.app_context():
        add_company()
        staff = bearer("dealer_admin")
        alfa, beta = billing_customer("Alfa"), billing_customer("Beta")
        make_user("anna@alfa.example", "customer_admin", customer_id=alfa.id)
        new_contract(client, staff, alfa.id, "P1")
        new_contract(client, staff, beta.id, "P2")
        usage_line(alfa.id, "draft-only", 1, "1.00", available_from=dt.date(2026, 3, 1))
        alfa_invoice, beta_invoice = start_run(client, staff, "2026-01-05")["invoice_ids"]
        for invoice_id in (alfa_invoice, beta_invoice):
            client.post(f"/api/v1/invoices/{invoice_id}/post", headers=staff)
        alfa_draft = start_run(client, staff, "2026-03-05")["invoice_ids"][0]
    portal = app.test_client()
    assert login(portal, "anna@alfa.example", url="/portal/login").status_code == 302

    page = portal.get("/portal/invoices/")
    own = portal.get(f"/portal/invoices/{alfa_invoice}.pdf")
    other = portal.get(f"/portal/invoices/{beta_invoice}.pdf")
    draft = portal.get(f"/portal/invoices/{alfa_draft}.pdf")
    home = portal.get("/portal/").get_data(as_text=True)

    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "1/2026" in text and "2/2026" not in text
    assert own.status_code == 200 and own.mimetype == "application/pdf" and "1/2026" in pdf_text(own.data)
    assert other.status_code == 404 and draft.status_code == 404
    assert "/portal/invoices/" in home


def test_customer_user_without_invoice_permission_cannot_open_the_portal_invoices(app):
    with app.app_context():
        customer = billing_customer("Alfa")
        make_user("luca@alfa.example", "customer_user", customer_id=customer.id)
    portal = app.test_client()
    login(portal, "luca@alfa.example", url="/portal/login")

    assert portal.get("/portal/invoices/").status_code == 403
