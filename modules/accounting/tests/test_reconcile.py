"""Reconciliation: residuals, partial and full matches, refusals, credit notes, split payment, states as of a date,
SEPA collection, and invoicing asking the state through core's extension point."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db
from core.extension_points import PAYMENT_STATUS, implementations
from core.validation import ValidationError
from modules.accounting import payments, reconcile
from modules.accounting.models import EntryLine, Match, SepaBatch, SepaBatchItem, SepaMandate
from modules.accounting.tests.support import (
    entry_of,
    make_company,
    make_credit_note,
    make_customer,
    make_posted_invoice,
)
from modules.invoicing import payment_status

PAID_ON = dt.date(2026, 11, 20)
AFTER = dt.date(2026, 11, 25)


@pytest.fixture
def customer(db_session):
    make_company()
    return make_customer()


def receivable_debit(invoice) -> EntryLine:
    return next(line for line in entry_of(invoice).lines if line.invoice_id == invoice.id and line.debit > 0)


def payment_credit(payment) -> EntryLine:
    return next(line for line in payment.entry.lines if line.credit > 0)


def test_partial_matches_add_up_and_no_more_than_is_open_can_be_matched(customer):
    invoice = make_posted_invoice(customer)  # 122.00
    payment = payments.record_payment(customer.id, Decimal("122.00"), PAID_ON)
    debit, credit = receivable_debit(invoice), payment_credit(payment)

    reconcile.reconcile(debit, credit, Decimal("22.00"))
    assert reconcile.residual(debit) == Decimal("100.00")
    assert reconcile.residual(credit) == Decimal("-100.00")
    with pytest.raises(ValidationError) as refused:
        reconcile.reconcile(debit, credit, Decimal("100.01"))
    assert list(refused.value.errors) == ["amount"]
    reconcile.reconcile(debit, credit)  # the rest
    db.session.commit()

    assert reconcile.residual(debit) == Decimal("0.00")
    assert reconcile.open_receivables(customer.id) == []
    with pytest.raises(ValidationError) as refused:
        reconcile.reconcile(debit, credit)
    assert set(refused.value.errors) == {"debit_line_id", "credit_line_id"}


def test_lines_of_other_customers_or_sides_cannot_be_matched(customer):
    other = make_customer("Altro Cliente Srl")
    invoice = make_posted_invoice(customer)
    foreign_payment = payments.record_payment(other.id, Decimal("10.00"), PAID_ON, advance=True)
    debit = receivable_debit(invoice)

    with pytest.raises(ValidationError) as refused:
        reconcile.reconcile(debit, payment_credit(foreign_payment))
    assert list(refused.value.errors) == ["credit_line_id"]
    with pytest.raises(ValidationError) as refused:
        reconcile.reconcile(debit, debit)
    assert list(refused.value.errors) == ["credit_line_id"]
    with pytest.raises(ValidationError) as refused:
        reconcile.reconcile(debit, payment_credit(foreign_payment), Decimal("0"))
    assert "credit_line_id" in refused.value.errors
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Match)) == 0


def test_zero_or_negative_amount_is_refused(customer):
    invoice = make_posted_invoice(customer)
    payment = payments.record_payment(customer.id, Decimal("50.00"), PAID_ON)
    for amount in ("0", "-5"):
        with pytest.raises(ValidationError) as refused:
            reconcile.reconcile(receivable_debit(invoice), payment_credit(payment), Decimal(amount))
        assert list(refused.value.errors) == ["amount"]


def test_credit_note_sets_off_its_invoice(customer):
    invoice = make_posted_invoice(customer)
    note = make_credit_note(invoice)

    states = reconcile.payment_states([invoice.id, note.id], as_of=AFTER)
    assert (states[invoice.id].state, states[invoice.id].amount_due) == ("paid", Decimal("0.00"))
    assert (states[note.id].state, states[note.id].label) == ("paid", "Set off")
    assert reconcile.open_receivables(customer.id) == []


def test_split_payment_invoice_asks_only_the_net(db_session):
    make_company()
    body = make_customer("Comune di Asti", split_payment=True)
    invoice = make_posted_invoice(body)  # 100 net + 22 VAT the body pays to the State

    status = reconcile.payment_states([invoice.id], as_of=AFTER)[invoice.id]
    assert (status.state, status.amount_due) == ("open", Decimal("100.00"))
    payments.record_payment(body.id, Decimal("100.00"), PAID_ON, invoice_id=invoice.id)
    db.session.commit()
    assert reconcile.payment_states([invoice.id], as_of=AFTER)[invoice.id].state == "paid"


def test_a_match_counts_from_the_later_of_its_two_dates(customer):
    today = clock.today()
    invoice = make_posted_invoice(customer, issue_date=today - dt.timedelta(days=60))
    payments.record_payment(customer.id, Decimal("122.00"), today, invoice_id=invoice.id)
    db.session.commit()
    day_before = today - dt.timedelta(days=1)

    before = reconcile.payment_states([invoice.id], as_of=day_before)[invoice.id]
    assert (before.state, before.amount_due) == ("overdue", Decimal("122.00"))
    assert reconcile.payment_states([invoice.id], as_of=today)[invoice.id].state == "paid"
    assert [item.residual for item in reconcile.open_receivables(customer.id, as_of=day_before)] == [Decimal("122.00")]
    assert reconcile.receivable_balance(customer.id, as_of=day_before) == Decimal("122.00")
    assert reconcile.receivable_balance(customer.id) == Decimal("0.00")


def test_invoice_in_a_direct_debit_being_collected_says_so(customer):
    invoice = make_posted_invoice(customer)
    mandate = SepaMandate(
        partner_id=customer.id, reference="MNDT-1", signed_on=dt.date(2026, 1, 1), iban="IT60X0542811101000000123456"
    )
    batch = SepaBatch(
        message_id="MSG-1",
        collection_date=dt.date(2026, 12, 10),
        due_from=dt.date(2026, 12, 1),
        due_to=dt.date(2026, 12, 31),
        filename="sdd.xml",
        content=b"<xml/>",
        item_count=1,
        total=Decimal("122.00"),
    )
    db.session.add_all([mandate, batch])
    db.session.flush()
    db.session.add(
        SepaBatchItem(
            batch_id=batch.id,
            invoice_id=invoice.id,
            mandate_id=mandate.id,
            amount=Decimal("122.00"),
            end_to_end_id="E2E-1",
            sequence_type="FRST",
        )
    )
    db.session.commit()

    status = reconcile.payment_states([invoice.id], as_of=dt.date(2027, 2, 1))[invoice.id]
    assert (status.state, status.amount_due) == ("collecting", Decimal("122.00"))


def test_invoicing_reads_the_state_through_core_in_one_go(app, customer):
    paid = make_posted_invoice(customer)
    unpaid = make_posted_invoice(customer)
    payments.record_payment(customer.id, Decimal("122.00"), PAID_ON, invoice_id=paid.id)
    db.session.commit()

    assert len(implementations(PAYMENT_STATUS)) == 1
    with app.test_request_context():
        states = payment_status.payment_states([paid, unpaid])
    assert states[paid.id].state == "paid"
    assert states[unpaid.id].amount_due == Decimal("122.00")


def test_without_a_date_the_payment_state_counts_what_is_settled_by_today(customer):
    from modules.accounting import ledger
    from modules.accounting.ledger import LineSpec

    invoice = make_posted_invoice(customer)
    later = clock.today() + dt.timedelta(days=10)
    # A settlement booked ahead (a manual entry dated next week) does not pay the invoice today.
    entry = ledger.post_entry(
        "VAR",
        later,
        [LineSpec("1820", debit=Decimal("122.00")), LineSpec("1501", credit=Decimal("122.00"), partner_id=customer.id)],
    )
    debit = next(line for line in entry_of(invoice).lines if line.debit > 0 and line.account.code == "1501")
    reconcile.reconcile(debit, next(line for line in entry.lines if line.credit > 0))
    db.session.commit()

    assert reconcile.payment_states([invoice.id])[invoice.id].amount_due == Decimal("122.00")
    assert payment_status.payment_states([invoice])[invoice.id].amount_due == Decimal("122.00")
    assert reconcile.payment_states([invoice.id], as_of=later)[invoice.id].state == "paid"
