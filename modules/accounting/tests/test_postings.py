"""Sales entries from invoicing: invoices, credit notes, split payment, one entry per document, the backfill, the
income account per line kind, the lock date, and a failed entry rolling back the invoice's posting."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from core.extension_points import BillableLine
from core.models import Sequence
from core.validation import ValidationError
from modules.accounting import ledger, postings, reconcile, settings
from modules.accounting.models import Entry, EntryLine, Match
from modules.accounting.tests.support import (
    ISSUE_DATE,
    account_balance,
    entry_of,
    make_credit_note,
    make_customer,
    make_posted_invoice,
)
from modules.invoicing import services
from modules.invoicing.models import Invoice

D = Decimal


def _rows(entry: Entry) -> list[tuple]:
    return [(ln.account.code, ln.debit, ln.credit) for ln in entry.lines]


def _count(db_session, model) -> int:
    return db_session.scalar(sa.select(sa.func.count()).select_from(model))


def assert_every_entry_balances(db_session) -> None:
    """Debits equal credits on every entry in the database, and no line is both or negative."""
    totals = db_session.execute(
        sa.select(Entry.number, sa.func.sum(EntryLine.debit), sa.func.sum(EntryLine.credit))
        .join(EntryLine, EntryLine.entry_id == Entry.id)
        .group_by(Entry.id, Entry.number)
    ).all()
    assert totals, "no entries to check"
    assert [(number, debit, credit) for number, debit, credit in totals if debit != credit] == []
    assert ledger.unbalanced_entries() == []
    bad_lines = db_session.scalar(
        sa.select(sa.func.count())
        .select_from(EntryLine)
        .where(sa.or_(EntryLine.debit < 0, EntryLine.credit < 0, sa.and_(EntryLine.debit > 0, EntryLine.credit > 0)))
    )
    assert bad_lines == 0


def test_an_invoice_posts_its_sales_entry_in_the_same_transaction(db_session):
    customer = make_customer()
    invoice = make_posted_invoice(
        customer, [("fee", "100.00", "22"), ("overage", "35.50", "22"), ("consumable", "40.00", "10")]
    )
    entry = entry_of(invoice)
    assert entry is not None and entry.journal.code == "VEN" and entry.number == "VEN/2026/0001"
    assert entry.date == invoice.issue_date == ISSUE_DATE and entry.reference == invoice.number
    # 135.50 x 22% = 29.81; 40.00 x 10% = 4.00; total 175.50 + 33.81 = 209.31
    assert _rows(entry) == [
        ("1501", D("209.31"), D("0.00")),
        ("5801", D("0.00"), D("100.00")),
        ("5802", D("0.00"), D("35.50")),
        ("5803", D("0.00"), D("40.00")),
        ("2601", D("0.00"), D("4.00")),
        ("2601", D("0.00"), D("29.81")),
    ]
    receivable = entry.lines[0]
    assert receivable.partner_id == customer.id and receivable.invoice_id == invoice.id
    assert receivable.due_date == invoice.due_date == ISSUE_DATE + dt.timedelta(days=30)
    vat = {ln.vat_rate: ln.vat_base for ln in entry.lines if ln.vat_rate is not None}
    assert vat == {D("10.00"): D("40.00"), D("22.00"): D("135.50")}
    assert reconcile.residual(receivable) == D("209.31")
    assert account_balance("1501", customer.id) == invoice.total


def test_a_credit_note_swaps_the_entry_and_settles_its_invoice(db_session):
    customer = make_customer()
    invoice = make_posted_invoice(customer, [("fee", "100.00", "22"), ("overage", "50.00", "22")])
    overage_line = [ln.id for ln in invoice.lines if ln.kind == "overage"]
    note = make_credit_note(invoice, overage_line)
    entry = entry_of(note)
    assert entry.number == "VEN/2026/0002" and entry.reference == note.number
    assert _rows(entry) == [
        ("1501", D("0.00"), D("61.00")),
        ("5802", D("50.00"), D("0.00")),
        ("2601", D("11.00"), D("0.00")),
    ]
    assert entry.lines[0].invoice_id == note.id
    # The credit note's receivable credit is matched with its invoice's debit at once.
    match = db_session.scalar(sa.select(Match))
    assert match.auto and match.amount == D("61.00")
    assert match.credit_line_id == entry.lines[0].id and match.debit_line_id == entry_of(invoice).lines[0].id
    assert reconcile.residual(entry_of(invoice).lines[0]) == D("122.00")
    assert account_balance("1501", customer.id) == D("122.00")


def test_split_payment_leaves_only_the_net_to_collect(db_session):
    public_body = make_customer("Comune di Torino", split_payment=True, vat_number="00514490010")
    invoice = make_posted_invoice(public_body, [("fee", "200.00", "22")])
    entry = entry_of(invoice)
    assert _rows(entry) == [
        ("1501", D("244.00"), D("0.00")),
        ("5801", D("0.00"), D("200.00")),
        ("2601", D("0.00"), D("44.00")),
        ("2601", D("44.00"), D("0.00")),
        ("1501", D("0.00"), D("44.00")),
    ]
    debit = entry.lines[0]
    assert reconcile.residual(debit) == D("200.00")
    assert account_balance("1501", public_body.id) == D("200.00")
    assert account_balance("2601") == D("0.00")  # the public body pays the VAT to the state, not to the dealer
    # Its credit note gives back only the net, too.
    note = make_credit_note(invoice)
    assert reconcile.residual(debit) == D("0.00")
    assert account_balance("1501", public_body.id) == D("0.00")
    assert account_balance("2601") == D("0.00")
    assert_every_entry_balances(db_session)
    assert entry_of(note) is not None


def test_posting_the_same_document_again_makes_no_second_entry(db_session):
    invoice = make_posted_invoice(make_customer())
    first = entry_of(invoice)
    again = postings.post_invoice(invoice)
    db_session.commit()
    assert again.id == first.id
    assert _count(db_session, Entry) == 1
    with pytest.raises(ValidationError):  # invoicing itself refuses to post it twice
        services.post(invoice)
    db_session.rollback()
    assert _count(db_session, Entry) == 1


def test_the_income_account_of_a_line_kind_comes_from_the_settings(db_session):
    settings.set_income_account("consumable", "5805")
    db_session.commit()
    invoice = make_posted_invoice(make_customer(), [("consumable", "10.00", "22"), ("chargeback", "5.00", "22")])
    codes = [code for code, _debit, credit in _rows(entry_of(invoice)) if credit and code.startswith("58")]
    assert codes == ["5804", "5805"]
    with pytest.raises(ValidationError) as refused:
        settings.set_income_account("fee", "1501")
    assert "income account" in refused.value.errors["account"]


def test_an_unknown_line_kind_goes_to_other_revenue(db_session):
    invoice = make_posted_invoice(make_customer(), [("installation", "80.00", "22")])
    assert ("5805", D("0.00"), D("80.00")) in _rows(entry_of(invoice))


def _draft(customer, net: str = "100.00") -> Invoice:
    draft = services.create_draft(
        customer.id,
        [
            BillableLine(
                source="accounting_tests",
                source_ref=f"draft-{customer.id}-{net}",
                description="Canone",
                quantity=D(1),
                unit_price=D(net),
                vat_rate=D(22),
                kind="fee",
            )
        ],
    )
    db.session.commit()
    return draft


def _invoice_sequence(db_session) -> int | None:
    return db_session.scalar(
        sa.select(Sequence.last_value).where(Sequence.code == "invoice", Sequence.year == ISSUE_DATE.year)
    )


def test_an_invoice_dated_in_a_closed_period_is_not_posted(db_session):
    draft = _draft(make_customer())
    settings.set_lock_date(dt.date(2026, 11, 30))
    db_session.commit()
    with pytest.raises(ValidationError) as refused:
        services.post(draft, ISSUE_DATE)
    assert "closed up to" in refused.value.errors["date"]
    db_session.rollback()
    stored = db_session.get(Invoice, draft.id)
    assert stored.state == "draft" and stored.number is None
    assert _count(db_session, Entry) == 0
    assert not _invoice_sequence(db_session)


def test_a_failed_entry_rolls_back_the_invoices_posting(db_session, monkeypatch):
    draft = _draft(make_customer())

    def broken_lines(invoice):
        raise RuntimeError("the ledger is unavailable")

    monkeypatch.setattr(postings, "_lines", broken_lines)
    with pytest.raises(RuntimeError):
        services.post(draft, ISSUE_DATE)
    db_session.rollback()
    stored = db_session.get(Invoice, draft.id)
    assert stored.state == "draft" and stored.number is None and stored.posted_at is None
    assert _count(db_session, Entry) == 0
    assert not _invoice_sequence(db_session)  # no invoice number was taken
    monkeypatch.undo()
    services.post(stored, ISSUE_DATE)
    db_session.commit()
    assert stored.number == "1/2026" and entry_of(stored) is not None


def test_an_entry_refused_through_the_api_answers_422_and_the_invoice_stays_a_draft(app, db_session):
    from tests.api_support import bearer

    draft = _draft(make_customer())
    headers = bearer("back_office")
    settings.set_lock_date(dt.date(2026, 12, 31))
    db_session.commit()
    response = app.test_client().post(
        f"/api/v1/invoices/{draft.id}/post", json={"issue_date": "2026-11-10"}, headers=headers
    )
    assert response.status_code == 422
    errors = {error["field"]: error["message"] for error in response.get_json()["errors"]}
    assert "closed up to" in errors["date"]
    db_session.expire_all()
    assert db_session.get(Invoice, draft.id).state == "draft"
    assert _count(db_session, Entry) == 0


def test_backfill_posts_what_has_no_entry_and_twice_is_the_same(db_session, app):
    customer = make_customer()
    invoices = [make_posted_invoice(customer, [("fee", f"{n}0.00", "22")]) for n in (1, 2, 3)]
    note = make_credit_note(invoices[0])
    # A database where accounting came later: the entries are not there yet.
    db_session.execute(sa.delete(Match))
    db_session.execute(sa.delete(EntryLine))
    db_session.execute(sa.delete(Entry))
    db_session.commit()
    first = app.test_cli_runner().invoke(args=["accounting", "backfill"])
    assert first.exit_code == 0, first.output
    assert "Posted 4 entries." in first.output
    second = app.test_cli_runner().invoke(args=["accounting", "backfill"])
    assert "Posted 0 entries." in second.output
    db_session.expire_all()
    assert _count(db_session, Entry) == 4
    assert all(entry_of(doc) is not None for doc in [*invoices, note])
    # The credit note was matched with its invoice, as when posted live.
    assert reconcile.residual(entry_of(invoices[0]).lines[0]) == D("0.00")
    assert account_balance("1501", customer.id) == D("24.40") + D("36.60")
    assert_every_entry_balances(db_session)


def test_every_entry_in_the_database_balances(db_session):
    customer = make_customer()
    public_body = make_customer("ASL Città di Torino", split_payment=True, vat_number="09737640012")
    first = make_posted_invoice(customer, [("fee", "99.99", "22"), ("overage", "0.07", "22"), ("consumable", "3", "4")])
    make_posted_invoice(public_body, [("fee", "1234.56", "22"), ("other", "10.00", "0")])
    make_credit_note(first)
    ledger.reverse_entry(entry_of(first))
    db_session.commit()
    assert _count(db_session, Entry) == 4
    assert_every_entry_balances(db_session)


def test_backfill_into_a_closed_period_names_the_problem_and_posts_nothing(db_session, app):
    make_posted_invoice(make_customer())
    db_session.execute(sa.delete(EntryLine))
    db_session.execute(sa.delete(Entry))
    settings.set_lock_date(dt.date(2026, 11, 30))
    db_session.commit()
    result = app.test_cli_runner().invoke(args=["accounting", "backfill"])
    assert result.exit_code != 0
    assert "nothing posted" in result.output and "closed up to" in result.output
    db_session.expire_all()
    assert _count(db_session, Entry) == 0


def test_a_kind_and_a_vat_rate_summing_below_zero_post_on_the_opposite_side(db_session):
    customer = make_customer()
    invoice = make_posted_invoice(customer, [("fee", "100.00", "22"), ("consumable", "-50.00", "10")])

    entry = entry_of(invoice)
    assert invoice.state == "posted" and invoice.total == D("67.00")
    rows = {(ln.account.code, ln.vat_rate): (ln.debit, ln.credit, ln.vat_base) for ln in entry.lines}
    assert rows == {
        ("1501", None): (D("67.00"), D("0.00"), None),
        ("5801", None): (D("0.00"), D("100.00"), None),
        ("5803", None): (D("50.00"), D("0.00"), None),
        ("2601", D("22.00")): (D("0.00"), D("22.00"), D("100.00")),
        ("2601", D("10.00")): (D("5.00"), D("0.00"), D("-50.00")),
    }
    assert_every_entry_balances(db_session)


def test_a_zero_invoice_is_posted_without_an_entry(db_session):
    customer = make_customer()
    invoice = make_posted_invoice(customer, [("fee", "10.00", "22"), ("fee", "-10.00", "22")])

    assert invoice.state == "posted" and invoice.number and invoice.total == D("0.00")
    assert entry_of(invoice) is None
    assert postings.post_invoice(invoice) is None
    assert reconcile.payment_states([invoice.id]) == {}
    assert postings.backfill() == 0
