"""The demo's e-invoices, as `make run` loads them: the state school's FPA12 invoice under split payment with its
CIG and protocol number, the Spanish academy's under N2.1, the hotel's in three instalments, every one valid against
the official FatturaPA schema."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
import time_machine
from lxml import etree

from core.db import db
from core.models import Partner
from modules.invoicing import fatturapa
from modules.invoicing.models import Invoice
from modules.invoicing.tests.fatturapa_schema import validate
from tests.demo_snapshot import load_demo

NOW = dt.datetime(2026, 12, 1, 11, 0, tzinfo=dt.UTC)
SCHOOL = "Istituto Comprensivo Giuseppe Mazzini"


@pytest.fixture
def demo(app):
    with time_machine.travel(NOW, tick=False):
        load_demo(app, at=NOW)
        with app.app_context():
            yield app


def _posted(customer: str) -> list[Invoice]:
    return db.session.scalars(
        sa.select(Invoice)
        .join(Partner, Partner.id == Invoice.customer_id)
        .where(Partner.name == customer, Invoice.state == "posted", Invoice.type == "invoice")
        .order_by(Invoice.issue_date)
    ).all()


def _xml(invoice: Invoice) -> etree._Element:
    content = fatturapa.build(invoice)
    validate(content)
    return etree.fromstring(content)


def _texts(root: etree._Element, tag: str) -> list[str]:
    return [element.text for element in root.xpath(f"//*[local-name()='{tag}']")]


def test_the_school_gets_an_fpa12_split_payment_invoice_with_its_cig(demo):
    school = db.session.scalar(sa.select(Partner).where(Partner.name == SCHOOL))
    assert (school.public_administration, school.split_payment, school.sdi_code) == (True, True, "UFE4T2")
    assert (school.vat_number, school.fiscal_code, school.payment_method) == (None, "80123450159", "bank_transfer")
    (invoice,) = _posted(SCHOOL)
    assert invoice.contract_id is not None  # billed from its rental contract, whose references it carries
    assert (invoice.cig, invoice.order_kind, invoice.order_reference) == ("Z4A3B2C1D0", "contract", "Prot. 2026/118")
    assert invoice.split_payment and invoice.vat_total > 0
    root = _xml(invoice)
    assert root.get("versione") == "FPA12"
    assert _texts(root, "FormatoTrasmissione") == ["FPA12"]
    assert _texts(root, "CodiceDestinatario") == ["UFE4T2"]
    assert _texts(root, "EsigibilitaIVA") == ["S"]
    assert _texts(root, "CodiceCIG") == ["Z4A3B2C1D0"]
    contract = root.xpath("//*[local-name()='DatiContratto']")[0]
    assert _texts(contract, "IdDocumento")[0] == "Prot. 2026/118"
    # The school pays the net; it pays the VAT to the State.
    assert [Decimal(amount) for amount in _texts(root, "ImportoPagamento")] == [invoice.total - invoice.vat_total]
    assert _texts(root, "ModalitaPagamento") == ["MP05"]


def test_the_spanish_academy_is_billed_under_n21_and_the_hotel_in_three_instalments(demo):
    for invoice in _posted("Academia Cervantes SL"):
        assert invoice.vat_total == 0
        assert {line.vat_nature for line in invoice.lines if line.kind != "stamp_duty"} == {"N2.1"}
        root = _xml(invoice)
        assert "N2.1" in _texts(root, "Natura")
        assert _texts(root, "IdPaese")[-1] == "ES" and _texts(root, "CodiceDestinatario") == ["XXXXXXX"]
    hotel = _posted("Hotel Bellavista Spa")
    assert hotel
    for invoice in hotel:
        assert len(invoice.payment_schedule) == 3
        assert sum(Decimal(item["amount"]) for item in invoice.payment_schedule) == invoice.total
        root = _xml(invoice)
        assert _texts(root, "CondizioniPagamento") == ["TP01"]
        assert len(_texts(root, "ImportoPagamento")) == 3


def test_every_posted_demo_document_has_a_valid_fatturapa(demo):
    documents = db.session.scalars(sa.select(Invoice).where(Invoice.state == "posted")).all()
    assert len(documents) == 14  # four customers for three months, the school's, and a credit note
    for document in documents:
        _xml(document)
