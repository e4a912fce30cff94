"""Payments: recorded against an invoice, partially, by the invoice number in the reference, as an advance; refused
when larger than what is due; cancelled."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db
from core.validation import ValidationError
from modules.accounting import payments, reconcile
from modules.accounting.models import Entry, Match, Payment
from modules.accounting.tests.support import account_balance, make_company, make_customer, make_posted_invoice

PAID_ON = dt.date(2026, 11, 20)


@pytest.fixture
def customer(db_session):
    make_company()
    return make_customer()


def state_of(invoice, as_of=None):
    return reconcile.payment_states([invoice.id], as_of=as_of or dt.date(2026, 11, 25))[invoice.id]


def test_payment_naming_the_invoice_pays_it_and_posts_bank_against_receivable(customer):
    invoice = make_posted_invoice(customer)  # 100 + 22% = 122.00
    payment = payments.record_payment(customer.id, Decimal("122.00"), PAID_ON, invoice_id=invoice.id)
    db.session.commit()

    entry = payment.entry
    assert entry.journal.code == "BNK" and entry.source == "payment" and entry.source_id == payment.id
    assert entry.number == "BNK/2026/0001"
    assert sorted((line.account.code, line.debit, line.credit) for line in entry.lines) == [
        ("1501", Decimal("0.00"), Decimal("122.00")),
        ("1801", Decimal("122.00"), Decimal("0.00")),
    ]
    status = state_of(invoice)
    assert (status.state, status.amount_due, status.label) == ("paid", Decimal("0.00"), "Paid")
    assert account_balance("1501", customer.id) == Decimal("0.00")


def test_partial_payment_leaves_the_rest_due_and_then_the_invoice_is_overdue(customer):
    invoice = make_posted_invoice(customer)
    payments.record_payment(customer.id, Decimal("50.00"), PAID_ON, invoice_id=invoice.id)
    db.session.commit()

    assert state_of(invoice, invoice.due_date).state == "partial"
    assert state_of(invoice, invoice.due_date).amount_due == Decimal("72.00")
    late = state_of(invoice, invoice.due_date + dt.timedelta(days=1))
    assert (late.state, late.amount_due) == ("overdue", Decimal("72.00"))
    # Before the payment's date the invoice was still wholly open.
    assert state_of(invoice, dt.date(2026, 11, 15)).state == "open"


def test_invoice_number_in_the_reference_matches_that_invoice(customer):
    first = make_posted_invoice(customer)
    second = make_posted_invoice(customer, [("consumable", "50.00", "22")])
    payments.record_payment(customer.id, Decimal("61.00"), PAID_ON, reference=f"Bonifico saldo fatt. {second.number}")
    db.session.commit()

    assert state_of(second).state == "paid"
    assert state_of(first).state == "open"


def test_payment_naming_no_invoice_stays_open_until_matched_by_hand(customer):
    invoice = make_posted_invoice(customer)
    payment = payments.record_payment(customer.id, Decimal("100.00"), PAID_ON, reference="acconto")
    db.session.commit()

    assert state_of(invoice).state == "open"
    items = sorted(reconcile.open_receivables(customer.id), key=lambda item: -item.residual)
    assert [item.residual for item in items] == [Decimal("122.00"), Decimal("-100.00")]
    debit, credit = (item.line for item in items)
    reconcile.reconcile(debit, credit)
    db.session.commit()
    status = state_of(invoice)
    assert (status.state, status.amount_due) == ("partial", Decimal("22.00"))
    assert payment.invoice_id is None


def test_more_than_the_invoice_asks_is_refused_naming_amount_and_writes_nothing(customer):
    invoice = make_posted_invoice(customer)
    entries = db.session.scalar(sa.select(sa.func.count()).select_from(Entry))

    with pytest.raises(ValidationError) as refused:
        payments.record_payment(customer.id, Decimal("122.01"), PAID_ON, invoice_id=invoice.id)
    db.session.rollback()

    assert list(refused.value.errors) == ["amount"]
    assert "122.00" in refused.value.errors["amount"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Payment)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Entry)) == entries


def test_more_than_the_customer_owes_is_refused_without_advance(customer):
    make_posted_invoice(customer)
    with pytest.raises(ValidationError) as refused:
        payments.record_payment(customer.id, Decimal("500.00"), PAID_ON)
    assert list(refused.value.errors) == ["amount"]


def test_advance_pays_the_invoice_and_keeps_the_rest_as_credit(customer):
    invoice = make_posted_invoice(customer)
    payments.record_payment(customer.id, Decimal("200.00"), PAID_ON, invoice_id=invoice.id, advance=True)
    db.session.commit()

    assert state_of(invoice).state == "paid"
    assert reconcile.receivable_balance(customer.id) == Decimal("-78.00")
    assert [item.residual for item in reconcile.open_receivables(customer.id)] == [Decimal("-78.00")]


def test_bad_input_names_each_field(customer):
    other = make_customer("Altro Cliente Srl")
    invoice = make_posted_invoice(other)
    with pytest.raises(ValidationError) as refused:
        payments.record_payment(customer.id, Decimal("-1"), "yesterday", method="barter", journal="VEN")
    assert set(refused.value.errors) == {"amount", "date", "method", "journal"}
    with pytest.raises(ValidationError) as refused:
        payments.record_payment(customer.id, Decimal("10.00"), PAID_ON, invoice_id=invoice.id)
    assert list(refused.value.errors) == ["invoice_id"]
    with pytest.raises(ValidationError) as refused:
        payments.record_payment(customer.id, Decimal("10.001"), PAID_ON)
    assert list(refused.value.errors) == ["amount"]


def test_cancelling_a_payment_reopens_the_invoice_and_reverses_the_entry(customer):
    invoice = make_posted_invoice(customer)
    payment = payments.record_payment(customer.id, Decimal("122.00"), PAID_ON, invoice_id=invoice.id)
    db.session.commit()

    reversal = payments.cancel_payment(payment)
    db.session.commit()

    assert reversal.source == "reversal" and reversal.reversed_entry_id == payment.entry_id
    assert state_of(invoice, reversal.date).state in ("open", "overdue")
    assert state_of(invoice, reversal.date).amount_due == Decimal("122.00")
    assert account_balance("1801") == Decimal("0.00")
    # Neither the payment's credit nor its reversal's debit is left for staff to match.
    assert [item.invoice_id for item in reconcile.open_receivables(customer.id)] == [invoice.id]
    assert payments.is_cancelled(payment)
    with pytest.raises(ValidationError) as refused:
        payments.cancel_payment(payment)
    assert list(refused.value.errors) == ["payment"]


def test_undo_reopens_what_a_match_settled(customer):
    invoice = make_posted_invoice(customer)
    payments.record_payment(customer.id, Decimal("122.00"), PAID_ON, invoice_id=invoice.id)
    db.session.commit()
    match = db.session.scalars(sa.select(Match)).one()
    assert match.auto

    reconcile.undo(match)
    db.session.commit()

    assert state_of(invoice).state == "open"
    assert sorted(item.residual for item in reconcile.open_receivables(customer.id)) == [
        Decimal("-122.00"),
        Decimal("122.00"),
    ]


def test_a_payment_dated_after_today_is_refused_naming_date(customer):
    invoice = make_posted_invoice(customer)
    with pytest.raises(ValidationError) as refused:
        payments.record_payment(
            customer.id, Decimal("122.00"), clock.today() + dt.timedelta(days=1), invoice_id=invoice.id
        )
    assert list(refused.value.errors) == ["date"]
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 0
    assert db.session.scalar(sa.select(sa.func.count(Entry.id)).where(Entry.source == "payment")) == 0
    assert reconcile.payment_states([invoice.id])[invoice.id].amount_due == Decimal("122.00")


def test_the_matches_documents_make_cannot_be_undone(customer):
    public_body = make_customer("Comune di Torino", split_payment=True, vat_number="00514490010")
    split = make_posted_invoice(public_body)
    split_match = db.session.scalars(sa.select(Match)).one()  # the VAT the public body pays to the State
    assert split_match.debit_line.entry_id == split_match.credit_line.entry_id
    invoice = make_posted_invoice(customer)
    payment = payments.record_payment(customer.id, Decimal("122.00"), PAID_ON, invoice_id=invoice.id)
    db.session.commit()
    payments.cancel_payment(payment)
    db.session.commit()
    cancelling = db.session.scalars(sa.select(Match).where(Match.id != split_match.id)).all()
    assert cancelling and all(match.debit_line.invoice_id is None for match in cancelling)  # invoice's undone
    assert reconcile.undoable_matches([split_match, *cancelling]) == set()
    for match in (split_match, *cancelling):
        with pytest.raises(ValidationError) as refused:
            reconcile.undo(match)
        assert list(refused.value.errors) == ["match"]
        db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count(Match.id))) == 1 + len(cancelling)
    assert reconcile.payment_states([split.id])[split.id].amount_due == Decimal("100.00")
    assert [item.invoice_id for item in reconcile.open_receivables(customer.id)] == [invoice.id]
