"""What accounting gives e-invoicing: the customer's active SEPA mandate (MP19), and split payment read from the
invoice's own flag, as posted, whatever the customer's flag says later."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from core.db import db
from core.extension_points import DIRECT_DEBIT_MANDATES, DirectDebitMandate, implementations
from modules.accounting import postings, sepa, vat
from modules.accounting.models import Entry, EntryLine, Match
from modules.accounting.tests.support import account_balance, entry_of, make_customer, make_posted_invoice

D = Decimal
NOVEMBER = dt.date(2026, 11, 1)


def _mandate(customer, reference: str, signed_on: dt.date, iban: str = "IT60X0542811101000000123456"):
    mandate = sepa.save_mandate(None, partner_id=customer.id, reference=reference, signed_on=signed_on, iban=iban)
    db.session.commit()
    return mandate


def _provider():
    (provider,) = implementations(DIRECT_DEBIT_MANDATES)
    return provider


def test_the_mandate_provider_gives_the_active_mandate_and_none_once_revoked(db_session):
    customer = make_customer()
    assert _provider().direct_debit_mandate(customer.id) is None
    first = _mandate(customer, "MND-2024-7", dt.date(2024, 5, 2), iban="DE89370400440532013000")
    later = _mandate(customer, "MND-2026-1", dt.date(2026, 1, 15))
    # The latest signed of two active mandates, as SEPA collections use it.
    assert _provider().direct_debit_mandate(customer.id) == DirectDebitMandate(
        reference="MND-2026-1", iban="IT60X0542811101000000123456", signed_on=dt.date(2026, 1, 15)
    )
    sepa.save_mandate(
        later,
        partner_id=customer.id,
        reference=later.reference,
        signed_on=later.signed_on,
        iban=later.iban,
        active=False,
    )
    db.session.commit()
    assert _provider().direct_debit_mandate(customer.id).reference == first.reference
    sepa.save_mandate(
        first,
        partner_id=customer.id,
        reference=first.reference,
        signed_on=first.signed_on,
        iban=first.iban,
        active=False,
    )
    db.session.commit()
    assert _provider().direct_debit_mandate(customer.id) is None
    # Another customer's mandate is not this one's.
    other = make_customer("Farmacia San Marco Srl")
    _mandate(other, "MND-FSM", dt.date(2025, 9, 1))
    assert _provider().direct_debit_mandate(customer.id) is None
    assert _provider().direct_debit_mandate(other.id).reference == "MND-FSM"


def _split_lines(invoice) -> list[tuple[str, Decimal, Decimal]]:
    """The split payment lines of the invoice's entry: VAT payable debited back, the receivable credited."""
    entry = entry_of(invoice)
    vat_back = [ln for ln in entry.lines if ln.account.code == "2601" and ln.debit > 0]
    receivable_back = [ln for ln in entry.lines if ln.account.code == "1501" and ln.credit > 0]
    return [(ln.account.code, ln.debit, ln.credit) for ln in vat_back + receivable_back]


def _wipe_entries(db_session) -> None:
    db_session.execute(sa.delete(Match))
    db_session.execute(sa.delete(EntryLine))
    db_session.execute(sa.delete(Entry))
    db_session.commit()


def test_split_payment_follows_the_invoice_flag_not_the_customer_flag_changed_later(db_session):
    school = make_customer("Istituto Comprensivo Mazzini", split_payment=True, vat_number="80012345678")
    firm = make_customer("Studio Legale Bianchi")
    public = make_posted_invoice(school, [("fee", "300.00", "22")])
    private = make_posted_invoice(firm, [("fee", "100.00", "22")])
    assert (public.split_payment, private.split_payment) == (True, False)
    # The school stops being under split payment, the firm becomes so: what was posted keeps its flag.
    school.split_payment, firm.split_payment = False, True
    db_session.commit()
    # A database where the entries are posted again later (accounting enabled after invoicing: the backfill).
    _wipe_entries(db_session)
    assert postings.backfill() == 2
    db_session.commit()
    db_session.expire_all()
    assert _split_lines(public) == [("2601", D("66.00"), D("0.00")), ("1501", D("0.00"), D("66.00"))]
    assert _split_lines(private) == []
    assert account_balance("1501", school.id) == D("300.00")  # the school owes the net only
    assert account_balance("1501", firm.id) == D("122.00")  # the firm owes the VAT too
    rows = {row.invoice.id: row.split_payment for row in vat.sales_register(NOVEMBER).rows}
    assert rows == {public.id: True, private.id: False}
    assert vat.sales_register(NOVEMBER).split_payment_vat == D("66.00")
