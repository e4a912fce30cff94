"""SEPA Direct Debit: mandates checked, pain.008 batches valid against the official schema, settlement, returns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from lxml import etree

from core import clock
from core.db import db
from core.validation import ValidationError
from modules.accounting import reconcile, sepa
from modules.accounting.models import Payment, SepaBatch, SepaBatchItem, SepaMandate
from modules.accounting.tests import support

XSD = Path(__file__).parent / "data" / "pain.008.001.02.xsd"
NS = {"p": sepa.NAMESPACE}
CREDITOR_ID = "IT66ZZZA1B2C3D4E5F6G7H8"


def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def assert_valid(content: bytes) -> etree._Element:
    document = etree.fromstring(content)
    checker = schema()
    assert checker.validate(document), checker.error_log
    return document


def mandate_for(customer, reference: str, iban: str = "DE89370400440532013000", **fields) -> SepaMandate:
    mandate = sepa.save_mandate(
        None,
        partner_id=customer.id,
        reference=reference,
        signed_on=fields.pop("signed_on", dt.date(2025, 3, 1)),
        iban=iban,
        **fields,
    )
    db.session.commit()
    return mandate


@pytest.fixture
def dealer(db_session):
    """The company with its IBAN and the creditor identifier: what a batch needs."""
    support.make_company()
    sepa.set_creditor_id(CREDITOR_ID)
    db.session.commit()


def state_of(invoice) -> str:
    return reconcile.payment_states([invoice.id])[invoice.id].state


def test_the_pain008_writer_follows_the_official_schema():
    creditor = sepa.Creditor(
        "Copiatrici Rossi S.r.l. · Città di Castello", "IT60X0542811101000000123456", None, CREDITOR_ID
    )
    collections = [
        sepa.Collection(
            "SDD-2026-00001-0001",
            Decimal("122.00"),
            "FRST",
            "MND-1",
            dt.date(2025, 1, 3),
            "Caffè Sport & Figli",
            "DE89370400440532013000",
            "COBADEFFXXX",
            "Fattura 2026/0001 del 10/11/26",
        ),
        sepa.Collection(
            "SDD-2026-00001-0002",
            Decimal("10.5"),
            "RCUR",
            "MND-2",
            dt.date(2024, 6, 30),
            "Straße Übel GmbH",
            "FR1420041010050500013M02606",
            None,
            "Invoice 2026/0002",
        ),
    ]
    content = sepa.pain008(
        "SDD-2026-00001", dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC), dt.date(2026, 12, 20), creditor, collections
    )
    document = assert_valid(content)
    assert document.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:CtrlSum", namespaces=NS) == "132.50"
    blocks = document.findall("p:CstmrDrctDbtInitn/p:PmtInf", NS)
    assert [b.findtext("p:PmtTpInf/p:SeqTp", namespaces=NS) for b in blocks] == ["FRST", "RCUR"]
    assert blocks[0].findtext("p:CdtrSchmeId/p:Id/p:PrvtId/p:Othr/p:Id", namespaces=NS) == CREDITOR_ID
    # Names in the SEPA character set: accents dropped, the ampersand spaced out.
    assert blocks[0].findtext("p:DrctDbtTxInf/p:Dbtr/p:Nm", namespaces=NS) == "Caffe Sport Figli"
    assert blocks[1].findtext("p:DrctDbtTxInf/p:InstdAmt", namespaces=NS) == "10.50"


def test_a_mandate_needs_a_valid_iban_and_a_unique_reference(db_session):
    customer = support.make_customer()
    with pytest.raises(ValidationError) as caught:
        sepa.save_mandate(
            None, partner_id=customer.id, reference="MND 1", signed_on="2099-01-01", iban="IT60X0542811101000000123457"
        )
    assert set(caught.value.errors) == {"reference", "signed_on", "iban"}
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SepaMandate)) == 0
    mandate = mandate_for(customer, "MND-1", iban="it60 x054 2811 1010 0000 0123 456")
    assert mandate.iban == "IT60X0542811101000000123456"
    with pytest.raises(ValidationError) as caught:
        sepa.save_mandate(None, partner_id=customer.id, reference="MND-1", signed_on="2025-01-01", iban=mandate.iban)
    assert caught.value.errors == {"reference": "Another mandate has this reference."}


def test_the_creditor_identifier_is_checked(db_session):
    with pytest.raises(ValidationError) as caught:
        sepa.set_creditor_id("IT00ZZZA1B2C3D4E5F6G7H8")
    assert "creditor_id" in caught.value.errors
    assert sepa.creditor_id() is None
    assert sepa.set_creditor_id("it66 zzz a1b2c3d4e5f6g7h8") == CREDITOR_ID


def test_a_batch_collects_the_open_invoices_of_mandate_customers_due_in_the_range(dealer):
    bar = support.make_customer("Bar Sport")
    studio = support.make_customer("Studio Verdi")
    nobody = support.make_customer("Senza Mandato")
    mandate_for(bar, "MND-BAR")
    mandate_for(studio, "MND-VERDI", iban="FR1420041010050500013M02606", bic="BNPAFRPP")
    due_in = support.make_posted_invoice(bar, issue_date=dt.date(2026, 11, 10))  # due 10 Dec
    support.make_posted_invoice(nobody, issue_date=dt.date(2026, 11, 10))
    other = support.make_posted_invoice(studio, [("fee", "50.00", "22")], issue_date=dt.date(2026, 11, 20))
    later = support.make_posted_invoice(bar, [("fee", "10.00", "22")], issue_date=dt.date(2026, 12, 1))  # 31 Dec

    batch = sepa.create_batch("2026-12-01", "2026-12-20", clock.today() + dt.timedelta(days=5))
    db.session.commit()

    items = {item.invoice_id: item for item in batch.items}
    assert set(items) == {due_in.id, other.id}
    assert items[due_in.id].amount == Decimal("122.00") and items[other.id].amount == Decimal("61.00")
    assert batch.total == Decimal("183.00") and batch.item_count == 2
    assert {item.sequence_type for item in batch.items} == {"FRST"}
    document = assert_valid(batch.content)
    debits = document.findall(".//p:DrctDbtTxInf", NS)
    assert sorted(d.findtext("p:DrctDbtTx/p:MndtRltdInf/p:MndtId", namespaces=NS) for d in debits) == [
        "MND-BAR",
        "MND-VERDI",
    ]
    assert document.findtext(".//p:CdtrAcct/p:Id/p:IBAN", namespaces=NS) == "IT60X0542811101000000123456"
    remittances = [d.findtext("p:RmtInf/p:Ustrd", namespaces=NS) for d in debits]
    assert any(due_in.number in text for text in remittances)
    assert state_of(due_in) == "collecting" and state_of(later) == "open"

    # The same range again: everything in it is already being collected.
    with pytest.raises(ValidationError) as caught:
        sepa.create_batch("2026-12-01", "2026-12-20", clock.today() + dt.timedelta(days=5))
    assert "due_to" in caught.value.errors
    db.session.rollback()

    # The next invoice under the same mandate is a recurring debit.
    second = sepa.create_batch("2026-12-21", "2026-12-31", clock.today() + dt.timedelta(days=30))
    db.session.commit()
    assert [(i.invoice_id, i.sequence_type) for i in second.items] == [(later.id, "RCUR")]
    assert_valid(second.content)


def test_each_scheme_and_sequence_has_its_block_and_a_new_mandate_one_first_debit(dealer):
    bar = support.make_customer("Bar Sport")
    studio = support.make_customer("Studio Verdi")
    mandate_for(bar, "MND-BAR")
    mandate_for(studio, "MND-B2B", iban="FR1420041010050500013M02606", scheme="B2B")
    first = support.make_posted_invoice(bar, issue_date=dt.date(2026, 11, 10))  # due 10 Dec
    second = support.make_posted_invoice(bar, [("fee", "10.00", "22")], issue_date=dt.date(2026, 11, 15))  # 15 Dec
    business = support.make_posted_invoice(studio, [("fee", "50.00", "22")], issue_date=dt.date(2026, 11, 20))

    batch = sepa.create_batch("2026-12-01", "2026-12-20", clock.today() + dt.timedelta(days=5))
    db.session.commit()

    # A mandate never collected: its first debit (the invoice due first) is FRST, the others RCUR, as the EPC
    # rulebooks allow since November 2016; never two "first" debits under one mandate.
    sequence = {item.invoice_id: item.sequence_type for item in batch.items}
    assert sequence == {first.id: "FRST", second.id: "RCUR", business.id: "FRST"}
    document = assert_valid(batch.content)
    blocks = [
        (
            block.findtext("p:PmtTpInf/p:LclInstrm/p:Cd", namespaces=NS),
            block.findtext("p:PmtTpInf/p:SeqTp", namespaces=NS),
            [
                d.findtext("p:DrctDbtTx/p:MndtRltdInf/p:MndtId", namespaces=NS)
                for d in block.findall("p:DrctDbtTxInf", NS)
            ],
        )
        for block in document.findall("p:CstmrDrctDbtInitn/p:PmtInf", NS)
    ]
    # The B2B mandate is collected under the B2B scheme, in a block of its own.
    assert blocks == [
        ("CORE", "FRST", ["MND-BAR"]),
        ("CORE", "RCUR", ["MND-BAR"]),
        ("B2B", "FRST", ["MND-B2B"]),
    ]
    ids = [block.findtext("p:PmtInfId", namespaces=NS) for block in document.findall(".//p:PmtInf", NS)]
    assert len(set(ids)) == 3


def test_bad_batch_input_is_refused_and_nothing_is_written(db_session):
    customer = support.make_customer()
    mandate_for(customer, "MND-1")
    support.make_posted_invoice(customer)
    with pytest.raises(ValidationError) as caught:
        sepa.create_batch("2026-12-20", "2026-12-01", clock.today())
    assert set(caught.value.errors) == {"due_to", "collection_date", "creditor_id", "iban"}
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SepaBatch)) == 0


def test_settling_a_batch_pays_each_invoice_by_direct_debit(dealer):
    customer = support.make_customer()
    mandate_for(customer, "MND-1")
    invoice = support.make_posted_invoice(customer)
    batch = sepa.create_batch("2026-12-01", "2026-12-31", clock.today() + dt.timedelta(days=5))
    db.session.commit()

    with pytest.raises(ValidationError) as caught:  # the bank has not credited it yet: no payment is dated ahead
        sepa.settle_batch(batch, clock.today() + dt.timedelta(days=1))
    assert "date" in caught.value.errors
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 0
    assert state_of(invoice) == "collecting"

    payments = sepa.settle_batch(batch, clock.today())
    db.session.commit()

    assert [(p.method, p.amount, p.invoice_id) for p in payments] == [("sepa_dd", Decimal("122.00"), invoice.id)]
    assert state_of(invoice) == "paid"
    assert batch.items[0].state == "collected"
    assert reconcile.receivable_balance(customer.id) == 0
    with pytest.raises(ValidationError):
        sepa.settle_batch(batch)


def test_a_debit_returned_before_settlement_reopens_the_invoice(dealer):
    customer = support.make_customer()
    mandate = mandate_for(customer, "MND-1")
    invoice = support.make_posted_invoice(customer)
    batch = sepa.create_batch("2026-12-01", "2026-12-31", clock.today() + dt.timedelta(days=5))
    db.session.commit()
    item = sepa.find_item(batch.items[0].end_to_end_id)

    sepa.mark_returned(item, "am04")
    db.session.commit()

    assert item.state == "returned" and item.return_reason == "AM04"
    assert state_of(invoice) == "open"
    assert mandate.first_collected_on is None  # never collected: the next debit is a first one again
    again = sepa.create_batch("2026-12-01", "2026-12-31", clock.today() + dt.timedelta(days=8))
    db.session.commit()
    assert [(i.invoice_id, i.sequence_type) for i in again.items] == [(invoice.id, "FRST")]
    with pytest.raises(ValidationError) as caught:
        sepa.mark_returned(item, "AM04")
    assert "state" in caught.value.errors


def test_a_debit_returned_after_settlement_cancels_its_payment(dealer):
    customer = support.make_customer()
    mandate_for(customer, "MND-1")
    invoice = support.make_posted_invoice(customer)
    batch = sepa.create_batch("2026-12-01", "2026-12-31", clock.today() + dt.timedelta(days=5))
    db.session.commit()
    sepa.settle_batch(batch)
    db.session.commit()
    assert state_of(invoice) == "paid"

    sepa.mark_returned(batch.items[0], "MD06", clock.today())
    db.session.commit()

    status = reconcile.payment_states([invoice.id])[invoice.id]
    assert status.state == "open" and status.amount_due == Decimal("122.00")
    assert reconcile.receivable_balance(customer.id) == Decimal("122.00")
    payment = db.session.scalar(sa.select(Payment))
    from modules.accounting.payments import is_cancelled

    assert is_cancelled(payment)
    assert db.session.scalar(sa.select(SepaBatchItem.state)) == "returned"
