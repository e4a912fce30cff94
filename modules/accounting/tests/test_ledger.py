"""The ledger: the default chart and journals, posting balanced entries, numbering, reversals, the lock date."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.validation import ValidationError
from modules.accounting import chart, ledger, settings
from modules.accounting.ledger import LineSpec
from modules.accounting.models import Account, Entry, EntryLine, Journal
from modules.accounting.tests.support import make_company, make_customer

DAY = dt.date(2026, 11, 15)


def _entries(db_session) -> int:
    return db_session.scalar(sa.select(sa.func.count()).select_from(Entry))


def _cash_sale(amount: str = "100.00", date: dt.date = DAY, journal: str = "VAR") -> Entry:
    return ledger.post_entry(
        journal,
        date,
        [LineSpec("1820", debit=Decimal(amount)), LineSpec("5805", credit=Decimal(amount))],
        reference="Scontrino 12",
    )


def test_default_chart_and_journals_are_installed(db_session):
    accounts = {a.code: a for a in db_session.scalars(sa.select(Account))}
    assert {"1501", "2501", "1801", "1820", "2601", "1601", "2605", "5801", "5802", "5803", "5804", "5805"} <= set(
        accounts
    )
    receivable = accounts["1501"]
    assert (receivable.name("it"), receivable.name("en"), receivable.name("es")) == (
        "Crediti verso clienti",
        "Customer receivables",
        "Créditos con clientes",
    )
    assert receivable.reconcilable and receivable.needs_partner and receivable.parent.code == "1500"
    assert accounts["2501"].reconcilable and accounts["2501"].needs_partner
    assert not accounts["1500"].postable and accounts["1500"].parent is None
    journals = {j.code: j.kind for j in db_session.scalars(sa.select(Journal))}
    assert journals == {"VEN": "sales", "ACQ": "purchases", "BNK": "bank", "CAS": "cash", "VAR": "misc"}
    bank = ledger.get_journal("bank")
    assert bank.code == "BNK" and bank.account.code == "1801"


def test_installing_again_keeps_the_dealers_renames_and_adds_nothing(db_session):
    account = ledger.get_account("5801")
    account.name_it = "Canoni di noleggio copiatrici"
    db_session.commit()
    assert chart.install() == 0
    db_session.commit()
    assert ledger.get_account("5801").name_it == "Canoni di noleggio copiatrici"


def test_the_bank_journal_takes_the_companys_iban_when_installed(db_session):
    db_session.execute(sa.delete(Journal))
    db_session.execute(sa.delete(Account))
    make_company(iban="IT60X0542811101000000123456")
    chart.install()
    db_session.commit()
    assert ledger.get_journal("BNK").iban == "IT60X0542811101000000123456"


def test_a_balanced_entry_is_posted_with_numbers_gapless_per_journal_and_year(db_session):
    first = _cash_sale()
    second = _cash_sale("20.00")
    other_journal = _cash_sale("5.00", journal="CAS")
    next_year = _cash_sale("1.00", date=dt.date(2027, 1, 2))
    db_session.commit()
    assert [first.number, second.number, other_journal.number, next_year.number] == [
        "VAR/2026/0001",
        "VAR/2026/0002",
        "CAS/2026/0001",
        "VAR/2027/0001",
    ]
    stored = db_session.get(Entry, first.id)
    assert stored.reference == "Scontrino 12" and stored.source == "manual"
    assert [(line.account.code, line.debit, line.credit) for line in stored.lines] == [
        ("1820", Decimal("100.00"), Decimal("0.00")),
        ("5805", Decimal("0.00"), Decimal("100.00")),
    ]


def test_a_rolled_back_entry_gives_its_number_back(db_session):
    _cash_sale()
    db_session.rollback()
    assert _cash_sale().number == "VAR/2026/0001"


@pytest.mark.parametrize(
    "lines, message",
    [
        ([], "at least one debit and one credit"),
        ([LineSpec("1820", debit=Decimal("10.00"))], "at least one debit and one credit"),
        ([LineSpec("1820", debit=Decimal("10.00")), LineSpec("5805", credit=Decimal("9.99"))], "differ"),
        ([LineSpec("1820", debit=Decimal("10.00"), credit=Decimal("10.00"))], "not both"),
        ([LineSpec("1820", debit=Decimal("-10.00")), LineSpec("5805", credit=Decimal("-10.00"))], "positive"),
        ([LineSpec("1820", debit=Decimal("10.001")), LineSpec("5805", credit=Decimal("10.001"))], "2 decimals"),
        ([LineSpec("1820"), LineSpec("5805")], "needs a debit or a credit"),
        ([LineSpec("1800", debit=Decimal("10.00")), LineSpec("5805", credit=Decimal("10.00"))], "is a group"),
        ([LineSpec("9999", debit=Decimal("10.00")), LineSpec("5805", credit=Decimal("10.00"))], "no account 9999"),
        ([LineSpec("1501", debit=Decimal("10.00")), LineSpec("5805", credit=Decimal("10.00"))], "needs a customer"),
        (
            [LineSpec("1501", debit=Decimal("10.00"), partner_id=999999), LineSpec("5805", credit=Decimal("10.00"))],
            "no customer or supplier 999999",
        ),
        ([LineSpec("1820", debit=Decimal("1e30")), LineSpec("5805", credit=Decimal("1e30"))], "positive"),
    ],
)
def test_a_bad_entry_is_refused_naming_its_lines_and_nothing_is_written(db_session, lines, message):
    with pytest.raises(ValidationError) as refused:
        ledger.post_entry("VAR", DAY, lines)
    assert message in refused.value.errors["lines"]
    db_session.rollback()
    assert _entries(db_session) == 0
    assert _cash_sale().number == "VAR/2026/0001"  # no number was taken


def test_a_closed_account_and_an_unknown_journal_are_refused(db_session):
    ledger.get_account("5805").active = False
    db_session.commit()
    with pytest.raises(ValidationError) as closed:
        _cash_sale()
    assert "closed" in closed.value.errors["lines"]
    with pytest.raises(ValidationError) as unknown:
        ledger.post_entry("XYZ", DAY, [LineSpec("1820", debit=Decimal(1)), LineSpec("5801", credit=Decimal(1))])
    assert "XYZ" in unknown.value.errors["journal"]


def test_a_receivable_line_names_its_customer(db_session):
    customer = make_customer()
    entry = ledger.post_entry(
        "VAR",
        DAY,
        [LineSpec("1501", debit=Decimal("12.20"), partner_id=customer.id), LineSpec("5805", credit=Decimal("12.20"))],
    )
    db_session.commit()
    assert entry.lines[0].partner.name == "Studio Legale Bianchi"


def test_nothing_is_posted_on_or_before_the_lock_date(db_session):
    settings.set_lock_date(dt.date(2026, 10, 31))
    db_session.commit()
    for day in (dt.date(2026, 10, 31), dt.date(2026, 9, 1)):
        with pytest.raises(ValidationError) as refused:
            _cash_sale(date=day)
        assert "closed up to" in refused.value.errors["date"]
    db_session.rollback()
    assert _entries(db_session) == 0
    assert _cash_sale(date=dt.date(2026, 11, 1)).number == "VAR/2026/0001"


def test_a_reversal_swaps_the_lines_and_an_entry_is_reversed_once(db_session):
    customer = make_customer()
    entry = ledger.post_entry(
        "VAR",
        DAY,
        [
            LineSpec("1501", debit=Decimal("122.00"), partner_id=customer.id),
            LineSpec("5805", credit=Decimal("100.00")),
            LineSpec("2601", credit=Decimal("22.00"), vat_rate=Decimal("22"), vat_base=Decimal("100.00")),
        ],
        reference="Nota 7",
    )
    reversal = ledger.reverse_entry(entry, dt.date(2026, 11, 20))
    db_session.commit()
    assert reversal.number == "VAR/2026/0002" and reversal.reference == "Nota 7"
    assert reversal.source == "reversal" and reversal.source_id == entry.id and reversal.reversed_entry_id == entry.id
    assert [(ln.account.code, ln.debit, ln.credit, ln.partner_id, ln.vat_base) for ln in reversal.lines] == [
        ("1501", Decimal("0.00"), Decimal("122.00"), customer.id, None),
        ("5805", Decimal("100.00"), Decimal("0.00"), None, None),
        ("2601", Decimal("22.00"), Decimal("0.00"), None, Decimal("-100.00")),
    ]
    with pytest.raises(ValidationError) as twice:
        ledger.reverse_entry(entry)
    assert "already reversed" in twice.value.errors["entry"]
    with pytest.raises(ValidationError) as of_reversal:
        ledger.reverse_entry(reversal)
    assert "is a reversal" in of_reversal.value.errors["entry"]


def test_the_database_refuses_a_line_with_both_a_debit_and_a_credit(db_session):
    entry = _cash_sale()
    db_session.commit()
    db_session.add(
        EntryLine(entry_id=entry.id, account_id=ledger.get_account("5805").id, debit=Decimal(1), credit=Decimal(1))
    )
    with pytest.raises(IntegrityError):
        db_session.flush()
    db_session.rollback()


def test_one_entry_per_document_is_enforced_by_the_database(db_session):
    lines = [LineSpec("1820", debit=Decimal(5)), LineSpec("5805", credit=Decimal(5))]
    ledger.post_entry("VAR", DAY, lines, source="bill", source_id=41)
    db_session.commit()
    with pytest.raises(IntegrityError):
        ledger.post_entry("VAR", DAY, lines, source="bill", source_id=41)
    db_session.rollback()
    assert _entries(db_session) == 1


def test_reversing_a_manual_receivable_entry_leaves_neither_it_nor_its_reversal_open(db_session):
    from modules.accounting import manual, receivables, reconcile

    customer = make_customer()
    entry = manual.post_manual(
        "VAR",
        DAY,
        [LineSpec("1501", debit=Decimal("50.00"), partner_id=customer.id), LineSpec("5805", credit=Decimal("50.00"))],
    )
    manual.reverse_by_hand(entry, dt.date(2026, 11, 20))
    db_session.commit()

    assert reconcile.open_receivables(partner_id=customer.id) == []
    assert receivables.aging(dt.date(2026, 12, 31)).rows == []
    assert reconcile.receivable_balance(customer.id) == Decimal("0.00")


def test_a_reversal_matches_only_what_its_receivable_line_still_had_open(db_session):
    from modules.accounting import reconcile

    customer = make_customer()
    debt = ledger.post_entry(
        "VAR",
        DAY,
        [LineSpec("1501", debit=Decimal("80.00"), partner_id=customer.id), LineSpec("5805", credit=Decimal("80.00"))],
    )
    paid = ledger.post_entry(
        "CAS",
        DAY,
        [LineSpec("1820", debit=Decimal("30.00")), LineSpec("1501", credit=Decimal("30.00"), partner_id=customer.id)],
    )
    reconcile.reconcile(debt.lines[0], paid.lines[1])
    reversal = ledger.reverse_entry(debt, dt.date(2026, 11, 20))
    db_session.commit()

    # The 30.00 paid against the reversed debt is now the customer's credit, and nothing else is open.
    assert [item.residual for item in reconcile.open_receivables(partner_id=customer.id)] == [Decimal("-30.00")]
    assert reconcile.residual(reversal.lines[0]) == Decimal("-30.00")
    assert reconcile.residual(debt.lines[0]) == Decimal("0.00")


def test_reading_accounts_and_journals_of_books_without_a_chart_writes_nothing(db_session):
    from modules.accounting import reports

    db_session.execute(sa.delete(Journal))
    db_session.execute(sa.delete(Account))
    db_session.commit()

    with pytest.raises(ValidationError) as unknown:
        ledger.get_account("1501")
    assert "1501" in unknown.value.errors["account"]
    with pytest.raises(ValidationError):
        ledger.get_journal("bank")
    assert reports.trial_balance(DAY, with_zero=True).rows == []
    assert not db_session.new
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Account)) == 0

    entry = _cash_sale()  # the first posting installs the default chart and journals
    db_session.commit()
    assert entry.number == "VAR/2026/0001" and ledger.get_journal("bank").code == "BNK"


def test_the_lock_date_cannot_move_back_before_the_last_vat_settlement(db_session):
    from modules.accounting.models import VatSettlement

    zero = Decimal("0.00")
    db_session.add(
        VatSettlement(
            period_start=dt.date(2026, 10, 1),
            period_end=dt.date(2026, 10, 31),
            sales_vat=zero,
            purchases_vat=zero,
            previous_credit=zero,
            interest=zero,
            balance=zero,
        )
    )
    settings.set_lock_date(dt.date(2026, 10, 31))
    db_session.commit()

    for earlier in (dt.date(2026, 10, 30), None):
        with pytest.raises(ValidationError) as refused:
            settings.set_lock_date(earlier)
        assert "settled" in refused.value.errors["lock_date"]
    assert settings.lock_date() == dt.date(2026, 10, 31)
    settings.set_lock_date(dt.date(2026, 11, 30))
    assert settings.lock_date() == dt.date(2026, 11, 30)
