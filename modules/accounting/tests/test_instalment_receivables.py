"""Invoices in instalments: one receivable line each, collected, reminded and paid instalment by instalment."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from core import clock
from core.db import db
from modules.accounting import dunning, ledger, payments, postings, reconcile, sepa, settings
from modules.accounting.models import EntryLine
from modules.accounting.tests import support

D = Decimal
ISSUE = dt.date(2026, 7, 1)  # 3 instalments every 30 days: 31/7, 30/8, 29/9


def receivable_debits(invoice) -> list[EntryLine]:
    receivable_id = settings.receivable_account().id
    query = (
        sa.select(EntryLine)
        .where(EntryLine.invoice_id == invoice.id, EntryLine.account_id == receivable_id, EntryLine.debit > 0)
        .order_by(EntryLine.id)
    )
    return list(db.session.scalars(query))


def instalment_invoice(net: str = "100.00", **customer_fields):
    customer = support.make_customer(
        "Scuola Media Manzoni", email="segreteria@manzoni.example", payment_instalments=3, **customer_fields
    )
    return customer, support.make_posted_invoice(customer, [("fee", net, "22")], issue_date=ISSUE)


def test_three_instalments_are_three_receivable_lines_with_their_dates(db_session):
    _customer, invoice = instalment_invoice()

    lines = receivable_debits(invoice)
    assert [(line.due_date, line.debit) for line in lines] == [
        (dt.date(2026, 7, 31), D("40.66")),
        (dt.date(2026, 8, 30), D("40.66")),
        (dt.date(2026, 9, 29), D("40.68")),
    ]
    assert sum(line.debit for line in lines) == invoice.total == D("122.00")
    assert [(line.due_date, line.debit) for line in lines] == [
        (dt.date.fromisoformat(item["due_date"]), D(item["amount"])) for item in invoice.payment_schedule
    ]


def test_between_the_first_and_second_due_date_only_the_first_instalment_is_late(db_session):
    customer, invoice = instalment_invoice()
    support.make_company()
    sepa.set_creditor_id("IT66ZZZA1B2C3D4E5F6G7H8")
    sepa.save_mandate(
        None, partner_id=customer.id, reference="MND-M", signed_on="2025-01-01", iban="DE89370400440532013000"
    )
    settings.set_dunning_steps([7])
    db.session.commit()
    day = dt.date(2026, 8, 15)

    (candidate,) = sepa.candidates(dt.date(2026, 7, 1), day)
    assert candidate.invoice.id == invoice.id and candidate.amount == D("40.66")
    assert reconcile.payment_states([invoice.id], as_of=day)[invoice.id].state == "overdue"

    (letter,) = dunning.run_dunning(day)
    assert letter.invoice_ids == [invoice.id] and letter.total == D("40.66")

    # The first instalment collected by direct debit: the next one is a candidate of its own due date only.
    batch = sepa.create_batch("2026-07-01", "2026-08-15", clock.today() + dt.timedelta(days=3))
    assert batch.total == D("40.66")
    sepa.settle_batch(batch, day)
    db.session.commit()
    assert [line.due_date for line in receivable_debits(invoice) if reconcile.residual(line) > 0] == [
        dt.date(2026, 8, 30),
        dt.date(2026, 9, 29),
    ]
    assert reconcile.payment_states([invoice.id], as_of=day)[invoice.id].state == "partial"
    (second,) = sepa.candidates(dt.date(2026, 8, 16), dt.date(2026, 9, 15))
    assert second.amount == D("40.66") and second.sequence_type == "RCUR"


def test_a_payment_of_the_total_clears_every_instalment_and_a_part_payment_the_earliest(db_session):
    customer, invoice = instalment_invoice()
    payments.record_payment(customer.id, D("50.00"), dt.date(2026, 7, 20), invoice_id=invoice.id)
    assert [reconcile.residual(line) for line in receivable_debits(invoice)] == [D("0.00"), D("31.32"), D("40.68")]

    payments.record_payment(customer.id, D("72.00"), dt.date(2026, 7, 21), invoice_id=invoice.id)
    db.session.commit()
    assert [reconcile.residual(line) for line in receivable_debits(invoice)] == [D("0.00")] * 3
    assert reconcile.payment_states([invoice.id])[invoice.id].state == "paid"
    assert reconcile.open_receivables(customer.id) == []


def test_reversing_the_sales_entry_leaves_no_instalment_open(db_session):
    customer, invoice = instalment_invoice()
    ledger.reverse_entry(support.entry_of(invoice), ISSUE)
    db.session.commit()
    assert reconcile.open_receivables(customer.id) == []


def test_split_payment_instalments_sum_to_the_net(db_session):
    customer, invoice = instalment_invoice("300.00", split_payment=True, public_administration=True)

    assert invoice.total == D("366.00") and invoice.vat_total == D("66.00")
    open_items = reconcile.open_receivables(customer.id)
    assert [(item.due_date, item.residual) for item in open_items] == [
        (dt.date(2026, 7, 31), D("100.00")),
        (dt.date(2026, 8, 30), D("100.00")),
        (dt.date(2026, 9, 29), D("100.00")),
    ]
    assert sum(item.residual for item in open_items) == D("300.00")
    assert support.account_balance(settings.receivable_account().code, customer.id) == D("300.00")
    assert reconcile.payment_states([invoice.id], as_of=dt.date(2026, 7, 15))[invoice.id].amount_due == D("300.00")


def test_an_invoice_posted_before_schedules_is_one_line(db_session):
    customer = support.make_customer("Studio Verdi")
    invoice = support.make_posted_invoice(customer, issue_date=ISSUE)
    # As posted before #19: no schedule on the invoice; its entry posted again from scratch.
    db.session.delete(support.entry_of(invoice))
    invoice.payment_schedule = None
    db.session.commit()

    postings.post_invoice(invoice)
    db.session.commit()
    assert [(line.due_date, line.debit) for line in receivable_debits(invoice)] == [(invoice.due_date, D("122.00"))]
