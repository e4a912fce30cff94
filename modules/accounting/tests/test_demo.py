"""The accounting demo, loaded as `make run` loads it (`flask demo load`): the trial balance balances, the aging shows
the overdue demo customers, November's sales VAT register equals the sum of the November documents' VAT summaries
(and the VAT the ledger posted), a payment in part, the bank statement with lines confirmed and lines to look at,
the supplier bills in the purchases register; loading it again changes nothing."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db
from core.models import Partner
from modules.accounting import chart, demo, ledger, receivables, reconcile, reports, vat
from modules.accounting.models import (
    Account,
    BankStatement,
    Entry,
    EntryLine,
    Journal,
    Payment,
    StatementLine,
    SupplierBill,
)
from modules.invoicing import services
from modules.invoicing.models import Invoice
from tests.demo_snapshot import load_demo

NOVEMBER = dt.date(2026, 11, 1)


def counts() -> dict[str, int]:
    return {
        model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (Invoice, Entry, EntryLine, Payment, StatementLine, SupplierBill, Partner)
    }


@pytest.fixture
def demo_books(app):
    assert "demo data loaded: accounting" in load_demo(app)
    with app.app_context():
        yield app


def test_the_demos_trial_balance_balances_and_every_document_has_its_entry(demo_books):
    balance = reports.trial_balance(clock.today())
    assert balance.balanced and balance.total_debit == balance.total_credit > 0
    assert ledger.unbalanced_entries() == []
    posted = db.session.scalars(sa.select(Invoice.id).where(Invoice.state == "posted")).all()
    assert len(posted) == 14  # four customers for three months, the school's first month, and a credit note
    posted_from = db.session.scalars(sa.select(Entry.source_id).where(Entry.source == "invoice")).all()
    assert sorted(posted_from) == sorted(posted)
    # What customers owe in the books is what their open invoices still ask.
    receivable = db.session.scalar(sa.select(Account).where(Account.code == chart.RECEIVABLE))
    row = next(row for row in balance.rows if row.account.id == receivable.id)
    assert row.debit - row.credit == sum((item.residual for item in reconcile.open_receivables()), Decimal(0))


def _due_before(invoice: Invoice, day: dt.date) -> Decimal:
    """What of the invoice's instalments fell due before `day`."""
    items = invoice.payment_schedule or []
    return sum((Decimal(item["amount"]) for item in items if dt.date.fromisoformat(item["due_date"]) < day), Decimal(0))


def test_the_aging_shows_the_overdue_demo_customers(demo_books):
    aging = receivables.aging(clock.today())
    overdue = {row.partner.name: row.overdue for row in aging.rows if row.overdue > 0}
    assert set(overdue) == {demo.HOTEL, demo.CERVANTES}
    hotel_september = _invoice(demo.HOTEL, "2026-09")
    hotel_october = _invoice(demo.HOTEL, "2026-10")
    # The hotel pays in three instalments: it paid 150.00 of September's invoice and nothing of October's, and only
    # the instalments already due are overdue.
    due = _due_before(hotel_september, clock.today()) + _due_before(hotel_october, clock.today())
    assert hotel_september.payment_schedule and len(hotel_september.payment_schedule) == 3
    assert overdue[demo.HOTEL] == due - Decimal("150.00")
    assert overdue[demo.CERVANTES] == _invoice(demo.CERVANTES, "2026-10").total
    states = reconcile.payment_states([hotel_september.id])
    assert states[hotel_september.id].amount_due == hotel_september.total - Decimal("150.00")
    names = {row.partner.name for row in aging.rows}
    assert demo.BIANCHI not in names  # every invoice paid, November's before it was due


def test_novembers_sales_vat_register_equals_the_documents_vat_summaries(demo_books):
    documents = db.session.scalars(
        sa.select(Invoice).where(
            Invoice.state == "posted", Invoice.issue_date >= NOVEMBER, Invoice.issue_date < dt.date(2026, 12, 1)
        )
    ).all()
    assert {document.type for document in documents} == {"invoice", "credit_note"}
    expected: dict[Decimal, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for document in documents:
        sign = -1 if document.type == "credit_note" else 1
        for rate, taxable, tax in services.vat_summary(document.lines):
            expected[rate][0] += sign * taxable
            expected[rate][1] += sign * tax
    register = vat.sales_register(NOVEMBER)
    assert len(register.rows) == len(documents)
    assert {line.rate: [line.taxable, line.vat] for line in register.totals} == dict(expected)
    # The same VAT, to the cent, is what the sales journal credited to VAT payable in November (net of the note),
    # but for the school's invoice under split payment, whose VAT the school pays to the State.
    assert register.split_payment_vat > 0
    posted = db.session.scalar(
        sa.select(sa.func.sum(EntryLine.credit - EntryLine.debit))
        .join(Entry, Entry.id == EntryLine.entry_id)
        .join(Journal, Journal.id == Entry.journal_id)
        .join(Account, Account.id == EntryLine.account_id)
        .where(Journal.code == "VEN", Account.code == chart.VAT_PAYABLE)
        .where(Entry.date >= NOVEMBER, Entry.date < dt.date(2026, 12, 1))
    )
    assert register.vat == sum((tax for _taxable, tax in expected.values()), Decimal(0))
    assert Decimal(posted) == register.vat - register.split_payment_vat


def test_the_statement_and_the_bills_are_there_to_work_on_and_loading_again_changes_nothing(demo_books):
    statement = db.session.scalar(sa.select(BankStatement).where(BankStatement.filename == demo.STATEMENT_FILE))
    states = sorted(line.state for line in statement.lines)
    assert states == ["matched", "matched", "open", "open"]
    for line in statement.lines:
        if line.state == "matched":
            assert db.session.get(Payment, line.payment_id).invoice_id is not None
    purchases = vat.purchases_register(NOVEMBER)
    assert sorted(row.bill.number for row in purchases.rows) == ["1187/2026", "FT-26-04471"]
    assert all(bill.entry_id is not None for bill in db.session.scalars(sa.select(SupplierBill)))
    before = counts()
    again = demo_books.test_cli_runner().invoke(args=["demo", "load"])
    assert again.exit_code == 0, again.output
    db.session.expire_all()
    assert counts() == before


def _invoice(customer: str, month: str) -> Invoice:
    issue_date, _words = demo.MONTHS[month]
    return db.session.scalar(
        sa.select(Invoice)
        .join(Partner, Partner.id == Invoice.customer_id)
        .where(Partner.name == customer, Invoice.type == "invoice", Invoice.issue_date == issue_date)
    )
