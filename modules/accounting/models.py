"""Accounting tables: chart of accounts, journals, entries and their lines, matches, payments, bank statements,
SEPA mandates and batches, supplier bills, dunning letters, VAT settlements."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask_babel import get_locale
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db, utcnow
from core.models import Partner

ACCOUNT_TYPES = ("asset", "liability", "equity", "income", "expense")
JOURNAL_KINDS = ("sales", "purchases", "bank", "cash", "misc")
ENTRY_SOURCES = ("invoice", "payment", "bill", "manual", "reversal", "settlement", "sepa_return", "opening")
PAYMENT_METHODS = ("bank_transfer", "sepa_dd", "riba", "cash", "card", "cheque", "other")
STATEMENT_FORMATS = ("csv", "camt053")
STATEMENT_LINE_STATES = ("open", "matched", "ignored")
PROPOSAL_REASONS = ("invoice_number", "amount", "none")
SEPA_SEQUENCE_TYPES = ("FRST", "RCUR")
SEPA_ITEM_STATES = ("collecting", "collected", "returned")
ZERO = Decimal("0.00")


def _known(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Account(db.Model):
    """An account of the chart: a group (not postable) or a postable account, named in Italian, English, Spanish."""

    __tablename__ = "accounting_account"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(10), unique=True)
    name_it: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    name_es: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(10))
    postable: Mapped[bool] = mapped_column(Boolean, default=True)
    reconcilable: Mapped[bool] = mapped_column(Boolean, default=False)
    needs_partner: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_account.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    parent: Mapped[Account | None] = relationship(remote_side=[id])

    __table_args__ = (CheckConstraint(_known("type", ACCOUNT_TYPES), name="type_known"),)

    def name(self, locale: str | None = None) -> str:
        """The account's name in `locale` (default: the current request's language), Italian when unknown."""
        if locale is None:
            current = get_locale()
            locale = str(current) if current else "it"
        language = locale[:2]
        return {"en": self.name_en, "es": self.name_es}.get(language) or self.name_it

    def __str__(self) -> str:
        return f"{self.code} {self.name()}"


class Journal(db.Model):
    """A journal (sales, purchases, a bank account, cash, miscellaneous): entries are numbered per journal and year."""

    __tablename__ = "accounting_journal"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    iban: Mapped[str | None] = mapped_column(String(34))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_account.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    account: Mapped[Account | None] = relationship()

    __table_args__ = (CheckConstraint(_known("kind", JOURNAL_KINDS), name="kind_known"),)

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Entry(db.Model):
    """A posted journal entry: never edited; a mistake is undone by a reversing entry."""

    __tablename__ = "accounting_entry"

    id: Mapped[int] = mapped_column(primary_key=True)
    journal_id: Mapped[int] = mapped_column(ForeignKey("accounting_journal.id"), index=True)
    number: Mapped[str] = mapped_column(String(30))
    sequence_number: Mapped[int] = mapped_column(Integer)
    year: Mapped[int] = mapped_column(Integer)
    date: Mapped[dt.date] = mapped_column(Date, index=True)
    reference: Mapped[str] = mapped_column(String(200), default="")
    memo: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20), default="manual")
    source_id: Mapped[int | None] = mapped_column(Integer)
    reversed_entry_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_entry.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    journal: Mapped[Journal] = relationship()
    lines: Mapped[list[EntryLine]] = relationship(
        back_populates="entry", cascade="all, delete-orphan", order_by="EntryLine.id"
    )
    reversed_entry: Mapped[Entry | None] = relationship(remote_side=[id])

    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        UniqueConstraint("journal_id", "year", "sequence_number"),
        CheckConstraint(_known("source", ENTRY_SOURCES), name="source_known"),
    )

    def __str__(self) -> str:
        return self.number


class EntryLine(db.Model):
    """One line of an entry: an account, a debit or a credit (never both, never negative), the partner if needed."""

    __tablename__ = "accounting_entry_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("accounting_entry.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounting_account.id"), index=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("core_partner.id"), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    debit: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    credit: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    # The receivable lines of an invoice or credit note; the payables of a supplier bill use bill_id.
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoicing_invoice.id"), index=True)
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_supplier_bill.id"), index=True)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    # On VAT lines: the rate and the taxable amount.
    vat_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    vat_base: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))

    entry: Mapped[Entry] = relationship(back_populates="lines")
    account: Mapped[Account] = relationship()
    partner: Mapped[Partner | None] = relationship()

    __table_args__ = (
        CheckConstraint("debit >= 0", name="debit_not_negative"),
        CheckConstraint("credit >= 0", name="credit_not_negative"),
        CheckConstraint("NOT (debit > 0 AND credit > 0)", name="debit_or_credit"),
    )


class Match(db.Model):
    """A reconciliation: `amount` of a debit line (an invoice) settled by a credit line (a payment, a credit note).
    Undoing it deletes the row (audit-logged)."""

    __tablename__ = "accounting_match"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    debit_line_id: Mapped[int] = mapped_column(ForeignKey("accounting_entry_line.id"), index=True)
    credit_line_id: Mapped[int] = mapped_column(ForeignKey("accounting_entry_line.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    auto: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    debit_line: Mapped[EntryLine] = relationship(foreign_keys=[debit_line_id])
    credit_line: Mapped[EntryLine] = relationship(foreign_keys=[credit_line_id])

    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)


class Payment(db.Model):
    """A customer's payment: its entry debits the bank (or cash) and credits the receivable."""

    __tablename__ = "accounting_payment"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    date: Mapped[dt.date] = mapped_column(Date, index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    method: Mapped[str] = mapped_column(String(20), default="bank_transfer")
    journal_id: Mapped[int] = mapped_column(ForeignKey("accounting_journal.id"))
    reference: Mapped[str] = mapped_column(String(200), default="")
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoicing_invoice.id"), index=True)
    advance: Mapped[bool] = mapped_column(Boolean, default=False)
    entry_id: Mapped[int] = mapped_column(ForeignKey("accounting_entry.id"), index=True)
    statement_line_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_statement_line.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    partner: Mapped[Partner] = relationship()
    journal: Mapped[Journal] = relationship()
    entry: Mapped[Entry] = relationship()

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(_known("method", PAYMENT_METHODS), name="method_known"),
    )


class BankStatement(db.Model):
    """An imported bank statement file, kept as uploaded."""

    __tablename__ = "accounting_bank_statement"

    id: Mapped[int] = mapped_column(primary_key=True)
    journal_id: Mapped[int] = mapped_column(ForeignKey("accounting_journal.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(10))
    profile: Mapped[str | None] = mapped_column(String(30))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    line_count: Mapped[int] = mapped_column(Integer, default=0)
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    imported_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))

    journal: Mapped[Journal] = relationship()
    lines: Mapped[list[StatementLine]] = relationship(
        back_populates="statement", cascade="all, delete-orphan", order_by="StatementLine.id"
    )

    __table_args__ = (CheckConstraint(_known("format", STATEMENT_FORMATS), name="format_known"),)


class StatementLine(db.Model):
    """A movement of a bank statement, stored once per journal (line_key), with its proposed match."""

    __tablename__ = "accounting_statement_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    statement_id: Mapped[int] = mapped_column(
        ForeignKey("accounting_bank_statement.id", ondelete="CASCADE"), index=True
    )
    journal_id: Mapped[int] = mapped_column(ForeignKey("accounting_journal.id"))
    # sha256 of the bank's identity of the line: AcctSvcrRef / NtryRef when given, else date+amount+text+counterparty.
    line_key: Mapped[str] = mapped_column(String(64))
    date: Mapped[dt.date] = mapped_column(Date)
    value_date: Mapped[dt.date | None] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))  # signed: positive is money in
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    counterparty: Mapped[str] = mapped_column(String(200), default="")
    counterparty_iban: Mapped[str] = mapped_column(String(34), default="")
    remittance: Mapped[str] = mapped_column(Text, default="")
    bank_reference: Mapped[str] = mapped_column(String(100), default="")
    state: Mapped[str] = mapped_column(String(10), default="open", index=True)
    proposed_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoicing_invoice.id"))
    proposed_partner_id: Mapped[int | None] = mapped_column(ForeignKey("core_partner.id"))
    proposal_reason: Mapped[str] = mapped_column(String(20), default="none")
    payment_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounting_payment.id", use_alter=True, ondelete="SET NULL")
    )

    statement: Mapped[BankStatement] = relationship(back_populates="lines")
    journal: Mapped[Journal] = relationship()

    __table_args__ = (
        UniqueConstraint("journal_id", "line_key"),
        CheckConstraint(_known("state", STATEMENT_LINE_STATES), name="state_known"),
        CheckConstraint(_known("proposal_reason", PROPOSAL_REASONS), name="proposal_reason_known"),
    )


class SepaMandate(db.Model):
    """A customer's SEPA Direct Debit mandate."""

    __tablename__ = "accounting_sepa_mandate"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id"), index=True)
    reference: Mapped[str] = mapped_column(String(35), unique=True)
    signed_on: Mapped[dt.date] = mapped_column(Date)
    iban: Mapped[str] = mapped_column(String(34))
    bic: Mapped[str | None] = mapped_column(String(11))
    scheme: Mapped[str] = mapped_column(String(4), default="CORE")
    first_collected_on: Mapped[dt.date | None] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    partner: Mapped[Partner] = relationship()


class SepaBatch(db.Model):
    """A pain.008 collection file for the invoices due in a date range; the file is kept."""

    __tablename__ = "accounting_sepa_batch"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(35), unique=True)
    collection_date: Mapped[dt.date] = mapped_column(Date)
    due_from: Mapped[dt.date] = mapped_column(Date)
    due_to: Mapped[dt.date] = mapped_column(Date)
    filename: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    items: Mapped[list[SepaBatchItem]] = relationship(
        back_populates="batch", cascade="all, delete-orphan", order_by="SepaBatchItem.id"
    )


class SepaBatchItem(db.Model):
    """One invoice collected by a batch."""

    __tablename__ = "accounting_sepa_batch_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("accounting_sepa_batch.id", ondelete="CASCADE"), index=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoicing_invoice.id"), index=True)
    mandate_id: Mapped[int] = mapped_column(ForeignKey("accounting_sepa_mandate.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    end_to_end_id: Mapped[str] = mapped_column(String(35), index=True)
    sequence_type: Mapped[str] = mapped_column(String(4))
    state: Mapped[str] = mapped_column(String(10), default="collecting")
    return_reason: Mapped[str | None] = mapped_column(String(10))
    returned_on: Mapped[dt.date | None] = mapped_column(Date)

    batch: Mapped[SepaBatch] = relationship(back_populates="items")
    mandate: Mapped[SepaMandate] = relationship()

    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(_known("sequence_type", SEPA_SEQUENCE_TYPES), name="sequence_type_known"),
        CheckConstraint(_known("state", SEPA_ITEM_STATES), name="state_known"),
    )


class SupplierBill(db.Model):
    """A supplier's bill registered in the purchases journal (protocol number gapless per year)."""

    __tablename__ = "accounting_supplier_bill"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id"), index=True)
    number: Mapped[str] = mapped_column(String(40))
    date: Mapped[dt.date] = mapped_column(Date)
    year: Mapped[int] = mapped_column(Integer)  # the bill date's year: a supplier's number is unique per year
    registered_on: Mapped[dt.date] = mapped_column(Date)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    net_total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    vat_total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_entry.id"), index=True)
    protocol: Mapped[int | None] = mapped_column(Integer)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    partner: Mapped[Partner] = relationship()
    entry: Mapped[Entry | None] = relationship()
    lines: Mapped[list[SupplierBillLine]] = relationship(
        back_populates="bill", cascade="all, delete-orphan", order_by="SupplierBillLine.id"
    )

    __table_args__ = (UniqueConstraint("partner_id", "number", "year"),)

    def __str__(self) -> str:
        return self.number


class SupplierBillLine(db.Model):
    """A line of a supplier bill: an expense account, the net, the VAT and whether that VAT is deductible."""

    __tablename__ = "accounting_supplier_bill_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    bill_id: Mapped[int] = mapped_column(ForeignKey("accounting_supplier_bill.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounting_account.id"))
    net: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    vat_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    vat: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    deductible: Mapped[bool] = mapped_column(Boolean, default=True)

    bill: Mapped[SupplierBill] = relationship(back_populates="lines")
    account: Mapped[Account] = relationship()


class DunningLetter(db.Model):
    """A reminder (sollecito) sent to a customer at a dunning step, listing its overdue invoices."""

    __tablename__ = "accounting_dunning_letter"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    sent_on: Mapped[dt.date] = mapped_column(Date)
    outbox_message_id: Mapped[int | None] = mapped_column(ForeignKey("core_outbox_message.id", ondelete="SET NULL"))
    invoice_ids: Mapped[list] = mapped_column(JSON, default=list)
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)

    partner: Mapped[Partner] = relationship()


class VatSettlement(db.Model):
    """A periodic VAT settlement (liquidazione IVA): balance positive is due, negative a credit carried forward."""

    __tablename__ = "accounting_vat_settlement"

    id: Mapped[int] = mapped_column(primary_key=True)
    period_start: Mapped[dt.date] = mapped_column(Date)
    period_end: Mapped[dt.date] = mapped_column(Date, unique=True)
    sales_vat: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    purchases_vat: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    previous_credit: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    interest: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    balance: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=ZERO)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("accounting_entry.id"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (CheckConstraint("period_end >= period_start", name="period_in_order"),)
