"""Helpers of the accounting tests: the dealer, customers, invoices and credit notes posted through invoicing.

Each helper commits, as a user's action would; call them inside an app context (the `db_session` fixture).
Owners of other test files keep their own helpers in their files.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa

from core.db import db
from core.extension_points import BillableLine
from core.models import Company, Partner
from modules.accounting.models import Entry, EntryLine
from modules.invoicing import services
from modules.invoicing.models import Invoice

ISSUE_DATE = dt.date(2026, 11, 10)
_refs = itertools.count(1)


def make_company(iban: str = "IT60X0542811101000000123456") -> Company:
    company = Company(
        name="Copiatrici Rossi Srl",
        vat_number="00743110157",
        fiscal_code="00743110157",
        street="Via Roma 1",
        postal_code="20121",
        city="Milano",
        province="MI",
        country="IT",
        iban=iban,
        email="amministrazione@rossi.example",
    )
    db.session.add(company)
    db.session.commit()
    return company


def make_customer(name: str = "Studio Legale Bianchi", **fields) -> Partner:
    """A customer with Italian billing data; `split_payment=True` for a public body, `language` for mail tests."""
    values = {
        "is_customer": True,
        "vat_number": "01234567897",
        "street": "Corso Italia 10",
        "postal_code": "10121",
        "city": "Torino",
        "province": "TO",
        "country": "IT",
        "email": None,
        "payment_terms_days": 30,
        **fields,
    }
    partner = Partner(name=name, **values)
    db.session.add(partner)
    db.session.commit()
    return partner


def make_supplier(name: str = "Ricambi Ufficio Italia Srl", **fields) -> Partner:
    return make_customer(name, is_customer=False, is_supplier=True, vat_number="00488410010", **fields)


def make_posted_invoice(
    customer: Partner,
    lines: Sequence[tuple[str, str | Decimal, str | Decimal]] = (("fee", "100.00", "22"),),
    issue_date: dt.date = ISSUE_DATE,
) -> Invoice:
    """An invoice of `lines` (kind, net amount, VAT rate), posted through invoicing.services.post and committed."""
    billable = [
        BillableLine(
            source="accounting_tests",
            source_ref=f"line-{next(_refs)}",
            description=f"{kind} {net}",
            quantity=Decimal(1),
            unit_price=Decimal(str(net)),
            vat_rate=Decimal(str(rate)),
            vat_code="N2.2" if Decimal(str(rate)) == 0 else None,
            kind=kind,
        )
        for kind, net, rate in lines
    ]
    invoice = services.create_draft(customer.id, billable)
    services.post(invoice, issue_date)
    db.session.commit()
    return invoice


def make_credit_note(
    invoice: Invoice, line_ids: Sequence[int] | None = None, issue_date: dt.date | None = None
) -> Invoice:
    """A credit note of all of `invoice`'s lines (or `line_ids`), posted and committed."""
    note = services.create_credit_note(invoice, line_ids)
    services.post(note, issue_date or invoice.issue_date)
    db.session.commit()
    return note


def entry_of(document: Invoice) -> Entry | None:
    """The sales entry of an invoice or credit note."""
    return db.session.scalar(sa.select(Entry).where(Entry.source == "invoice", Entry.source_id == document.id))


def account_balance(code: str, partner_id: int | None = None) -> Decimal:
    """Debits minus credits on the account `code` (optionally one partner's lines only)."""
    from modules.accounting.models import Account

    query = (
        sa.select(sa.func.coalesce(sa.func.sum(EntryLine.debit - EntryLine.credit), 0))
        .join(Account, Account.id == EntryLine.account_id)
        .where(Account.code == code)
    )
    if partner_id is not None:
        query = query.where(EntryLine.partner_id == partner_id)
    return Decimal(db.session.scalar(query)).quantize(Decimal("0.01"))
