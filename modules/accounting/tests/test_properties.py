"""Property tests over random sequences of invoices, credit notes, payments, matches, undos and cancellations:
every entry balances, every posted document has its one entry, and each customer's receivable equals its open
invoices minus its credit notes and payments (the sum of the open residuals), whatever was refused on the way."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import wipe_rows
from core.db import db
from core.models import Partner
from core.validation import ValidationError
from modules.accounting import chart, ledger, payments, reconcile
from modules.accounting.models import Entry, Match, Payment
from modules.accounting.tests.support import (
    make_company,
    make_credit_note,
    make_customer,
    make_posted_invoice,
)
from modules.invoicing.models import Invoice

amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("300"), places=2)
customers = st.integers(0, 1)  # 1 is a public body (split payment)
index = st.integers(0, 20)
operation = st.one_of(
    st.tuples(st.just("invoice"), customers, amounts, st.sampled_from(["22", "10", "0"]), st.booleans()),
    st.tuples(st.just("credit"), index, st.booleans()),
    st.tuples(st.just("pay"), customers, amounts, st.one_of(st.none(), index), st.booleans()),
    st.tuples(st.just("match"), customers, index, index, st.one_of(st.none(), amounts)),
    st.tuples(st.just("undo"), index),
    st.tuples(st.just("cancel"), index),
)
PAID_ON = dt.date(2026, 11, 20)


def _apply(op, people: list[int]) -> None:
    kind = op[0]
    documents = list(db.session.scalars(sa.select(Invoice).where(Invoice.type == "invoice").order_by(Invoice.id)))
    if kind == "invoice":
        _kind, who, net, rate, two_lines = op
        lines = [("fee", net, rate)] + ([("consumable", "12.34", "22")] if two_lines else [])
        make_posted_invoice(db.session.get(Partner, people[who]), lines)
    elif kind == "credit" and documents:
        invoice = documents[op[1] % len(documents)]
        make_credit_note(invoice, [invoice.lines[0].id] if op[2] else None)
    elif kind == "pay":
        _kind, who, amount, named, advance = op
        invoice_id = documents[named % len(documents)].id if named is not None and documents else None
        payments.record_payment(people[who], amount, PAID_ON, invoice_id=invoice_id, advance=advance)
    elif kind == "match":
        items = reconcile.open_receivables(people[op[1]])
        debits = [item.line for item in items if item.residual > 0]
        credits = [item.line for item in items if item.residual < 0]
        if debits and credits:
            reconcile.reconcile(debits[op[2] % len(debits)], credits[op[3] % len(credits)], op[4])
    elif kind == "undo":
        matches = list(db.session.scalars(sa.select(Match).order_by(Match.id)))
        if matches:
            reconcile.undo(matches[op[1] % len(matches)])
    elif kind == "cancel":
        done = list(db.session.scalars(sa.select(Payment).order_by(Payment.id)))
        if done:
            payments.cancel_payment(done[op[1] % len(done)])


def _expected_receivables() -> dict[int, Decimal]:
    """Worked out from the documents and payments alone: invoices (net only for split payment) minus credit notes
    minus payments not cancelled."""
    expected: dict[int, Decimal] = defaultdict(Decimal)
    for document in db.session.scalars(sa.select(Invoice).where(Invoice.state == "posted")):
        asked = document.total - (document.vat_total if document.customer.split_payment else 0)
        expected[document.customer_id] += asked if document.type == "invoice" else -asked
    for payment in db.session.scalars(sa.select(Payment)):
        if not payments.is_cancelled(payment):
            expected[payment.partner_id] -= payment.amount
    return expected


def _check_invariants(people: list[int]) -> None:
    db.session.expire_all()
    assert ledger.unbalanced_entries() == []
    posted = list(db.session.scalars(sa.select(Invoice).where(Invoice.state == "posted")))
    for document in posted:
        entries = db.session.scalars(sa.select(Entry).where(Entry.source == "invoice", Entry.source_id == document.id))
        assert len(entries.all()) == 1, document.number
    expected = _expected_receivables()
    for person in people:
        residuals = sum((item.residual for item in reconcile.open_receivables(person)), Decimal("0.00"))
        assert reconcile.receivable_balance(person) == expected[person] == residuals
    states = reconcile.payment_states([document.id for document in posted])
    for document in posted:
        asked = document.total - (document.vat_total if document.customer.split_payment else 0)
        assert Decimal("0.00") <= states[document.id].amount_due <= asked


def _run(app, operations) -> None:
    wipe_rows(app)
    with app.app_context():
        try:
            chart.install()
            make_company()
            people = [make_customer().id, make_customer("Comune di Asti", split_payment=True).id]
            for op in operations:
                try:
                    _apply(op, people)
                    db.session.commit()
                except ValidationError:
                    db.session.rollback()
            _check_invariants(people)
        finally:
            db.session.remove()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, max_size=12))
def test_books_stay_balanced_and_receivables_equal_open_items(app, operations):
    _run(app, operations)
