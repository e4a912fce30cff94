"""The invoice PDF says what the e-invoice says: courtesy copy, Natura, split payment, stamp duty, instalments, PA."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from decimal import Decimal

import pytest
from flask_babel import force_locale, format_date, format_decimal
from flask_babel import gettext as _

from core.db import db
from core.extension_points import BillableLine
from core.partners import vat_display
from modules.invoicing import pdf, services
from modules.invoicing.models import Invoice
from modules.invoicing.tests.support import add_company, billing_customer, new_contract
from tests.api_support import bearer

ISSUE = dt.date(2026, 2, 6)


@pytest.fixture
def company(db_session):
    return add_company()


def line(ref: str, amount: str, vat_code: str, description: str = "Canone noleggio") -> BillableLine:
    return BillableLine(
        source="fake_usage",
        source_ref=ref,
        description=description,
        quantity=Decimal(1),
        unit_price=Decimal(amount),
        vat_rate=Decimal(0),
        kind="fee",
        vat_code=vat_code,
    )


def draft(customer, *lines: BillableLine) -> Invoice:
    invoice = services.create_draft(customer.id, list(lines))
    db.session.commit()
    return invoice


def posted(customer, *lines: BillableLine) -> Invoice:
    invoice = services.post(draft(customer, *lines), ISSUE)
    db.session.commit()
    return invoice


def pdf_text(invoice: Invoice, tmp_path) -> str:
    """The PDF's text as poppler's pdftotext reads it, whitespace collapsed so wrapped phrases are found whole."""
    path = tmp_path / f"invoice-{invoice.id}.pdf"
    path.write_bytes(pdf.render_pdf(invoice))
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True, text=True).stdout
    return " ".join(text.split())


def money(value: Decimal | str, language: str = "it") -> str:
    with force_locale(language):
        return format_decimal(Decimal(value), format="#,##0.00")


def translated(message: str, language: str = "it") -> str:
    with force_locale(language):
        return _(message)


COURTESY = "Courtesy copy: the fiscal document is the electronic invoice sent through the Exchange System (SdI)"


def test_a_posted_invoice_says_it_is_a_courtesy_copy_and_a_draft_keeps_its_draft_marking(company, tmp_path):
    customer = billing_customer()
    invoice = draft(customer, line("fee:1", "100.00", "22"))

    draft_text = pdf_text(invoice, tmp_path)
    services.post(invoice, ISSUE)
    db.session.commit()
    posted_text = pdf_text(invoice, tmp_path)

    assert translated("DRAFT: not a valid invoice") in draft_text
    assert translated(COURTESY) not in draft_text
    assert translated(COURTESY) in posted_text
    assert translated("DRAFT: not a valid invoice") not in posted_text


def test_a_zero_rate_line_shows_its_natura_and_legal_reference_and_the_summary_has_a_row_per_natura(company, tmp_path):
    customer = billing_customer()
    invoice = posted(
        customer,
        line("fee:1", "50.00", "22", "Canone noleggio"),
        line("fee:2", "40.00", "N4", "Corso di formazione esente"),
    )
    exempt = next(item for item in invoice.lines if item.vat_code == "N4")

    text = pdf_text(invoice, tmp_path)

    assert exempt.vat_nature == "N4" and exempt.vat_reference
    lines_part, summary_part = text.split(translated("VAT summary"), 1)
    assert re.search(r"Corso di formazione esente .*N4.*" + re.escape(exempt.vat_reference), lines_part)
    assert "0% N4" in lines_part
    # Summary: 0% N4 40,00 0,00 with the reference, 22% 50,00 11,00.
    assert f"0% N4 {money('40.00')} {money('0')}" in summary_part
    assert f"N4: {exempt.vat_reference}" in summary_part
    assert f"22% {money('50.00')} {money('11.00')}" in summary_part


def test_split_payment_says_the_customer_pays_the_vat_to_the_state_and_asks_the_net(client, company, tmp_path):
    school = billing_customer(
        "Istituto Comprensivo Manzoni",
        public_administration=True,
        split_payment=True,
        sdi_code="UFABCD",
        vat_number=None,
        fiscal_code="80012345678",
    )
    contract = new_contract(
        client,
        bearer("dealer_admin"),
        school.id,
        "SCH-1",
        cig="Z1A2B3C4D5",
        order_kind="contract",
        order_reference="REP-12/2026",
        order_date="2026-01-10",
    )
    invoice = services.create_draft(school.id, [line("fee:1", "100.00", "22")], contract_id=contract["id"])
    services.post(invoice, ISSUE)
    db.session.commit()

    text = pdf_text(invoice, tmp_path)

    assert invoice.split_payment and services.amount_due(invoice) == Decimal("100.00")
    assert translated("Scissione dei pagamenti art. 17-ter DPR 633/72: VAT paid by the customer to the State") in text
    assert f"{translated('Total')} EUR {money('122.00')}" in text
    assert f"{translated('Amount due')} EUR {money('100.00')}" in text
    assert f"{translated('Office code')} UFABCD" in text
    assert "CIG Z1A2B3C4D5" in text
    with force_locale("it"):
        contract = _(
            "Contract %(reference)s of %(date)s", reference="REP-12/2026", date=format_date(invoice.order_date, "short")
        )
    assert contract in text


def test_exempt_amounts_over_the_threshold_show_the_virtual_stamp_duty(company, tmp_path):
    customer = billing_customer(language="en")
    invoice = posted(customer, line("fee:1", "120.00", "N4"))

    text = pdf_text(invoice, tmp_path)

    assert invoice.stamp_duty == Decimal("2.00")
    assert f"{translated('Stamp duty paid virtually (DM 17/06/2014)', 'en')}: EUR {money('2.00', 'en')}" in text


def test_three_instalments_are_printed_with_their_due_dates_and_the_payment_method(company, tmp_path):
    customer = billing_customer(language="es", payment_instalments=3, payment_method="riba", payment_terms_days=30)
    invoice = posted(customer, line("fee:1", "300.00", "22"))

    text = pdf_text(invoice, tmp_path)

    schedule = invoice.payment_schedule
    assert len({entry["due_date"] for entry in schedule}) == 3
    with force_locale("es"):
        for number, entry in enumerate(schedule, start=1):
            due = format_date(dt.date.fromisoformat(entry["due_date"]), "short")
            assert f"{number}/3 {due} {money(entry['amount'], 'es')}" in text
    assert translated("RiBa (bank receipt)", "es") in text


def test_a_bank_transfer_shows_the_dealers_iban(company, tmp_path):
    invoice = posted(billing_customer(), line("fee:1", "10.00", "22"))

    text = pdf_text(invoice, tmp_path)

    assert f"{translated('Payment method')}: {translated('Bank transfer')}" in text
    assert f"IBAN {company.iban}" in text


def test_a_foreign_customer_has_its_vat_prefix_and_postal_code_without_province_and_the_reverse_charge_note(
    company, tmp_path
):
    customer = billing_customer(
        "Imprenta Sol SL",
        vat_number="B12345674",
        street="Calle Mayor 5",
        postal_code="28013",
        city="Madrid",
        province="M",
        country="ES",
        sdi_code=None,
        language="es",
    )
    invoice = posted(customer, line("fee:1", "60.00", "N2.1", "Assistenza tecnica"))

    text = pdf_text(invoice, tmp_path)

    assert vat_display("B12345674", "ES") == "ESB12345674" and "ESB12345674" in text
    assert "28013 Madrid ES" in text and "(M)" not in text
    assert "N2.1" in text
    assert translated("Inversione contabile / reverse charge", "es") in text
