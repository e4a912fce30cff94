"""Invoicing tables: invoices and credit notes with their lines, billed references, billing runs, stored PDFs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

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
from sqlalchemy import false as sa_false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db, utcnow
from core.models import OutboxMessage, Partner

DOCUMENT_TYPES = ("invoice", "credit_note")
INVOICE_STATES = ("draft", "posted", "cancelled")
RUN_STATUSES = ("queued", "running", "done", "failed")
# exported: in the zip for the intermediary; then the exchange system's receipts: RC delivered, NS rejected,
# MC not delivered, NE accepted / refused (public administration), DT deadline passed without an outcome.
EINVOICE_STATES = ("exported", "delivered", "rejected", "not_delivered", "accepted", "refused", "deadline_passed")
RECEIPT_KINDS = ("RC", "NS", "MC", "NE", "DT")


class BillingRun(db.Model):
    """One billing run as of a date: its progress over the customers and the drafts it created."""

    __tablename__ = "invoicing_billing_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    as_of: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default="queued")
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    issues: Mapped[list[RunIssue]] = relationship(cascade="all, delete-orphan", order_by="RunIssue.id")

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status_known"),
        CheckConstraint("done >= 0 AND done <= total", name="progress_in_range"),
    )


class RunIssue(db.Model):
    """A missing reading or an error a run met for a customer (or one of its contracts)."""

    __tablename__ = "invoicing_run_issue"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("invoicing_billing_run.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    customer_id: Mapped[int | None] = mapped_column(Integer)
    contract_id: Mapped[int | None] = mapped_column(Integer)
    device_id: Mapped[int | None] = mapped_column(Integer)
    meter: Mapped[str | None] = mapped_column(String(20))
    period_start: Mapped[dt.date | None] = mapped_column(Date)
    period_end: Mapped[dt.date | None] = mapped_column(Date)
    message: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (CheckConstraint("kind IN ('missing', 'error')", name="kind_known"),)


class RunCustomer(db.Model):
    """A customer a run has finished: a retried chunk skips it, so progress never counts a customer twice."""

    __tablename__ = "invoicing_run_customer"

    run_id: Mapped[int] = mapped_column(ForeignKey("invoicing_billing_run.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(Integer, primary_key=True)


class Invoice(db.Model):
    """An invoice or a credit note: a draft until posted, when it gets its number; never edited once posted."""

    __tablename__ = "invoicing_invoice"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(12), default="invoice")
    state: Mapped[str] = mapped_column(String(10), default="draft", index=True)
    number: Mapped[str | None] = mapped_column(String(20))
    sequence_number: Mapped[int | None] = mapped_column(Integer)
    year: Mapped[int | None] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id"), index=True)
    # Plain integers: invoicing does not depend on the module that owns contracts.
    contract_id: Mapped[int | None] = mapped_column(Integer, index=True)
    billing_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoicing_billing_run.id", ondelete="SET NULL"), index=True
    )
    original_id: Mapped[int | None] = mapped_column(ForeignKey("invoicing_invoice.id"), index=True)
    issue_date: Mapped[dt.date | None] = mapped_column(Date)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    net_total: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"))
    vat_total: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"))
    total: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"))
    notes: Mapped[str | None] = mapped_column(Text)
    # E-invoice data (docs/e-invoicing.md): public procurement references copied from the contract when drafted,
    # the payment method, split payment and instalments fixed when posted, the stamp duty, the exchange state.
    cig: Mapped[str | None] = mapped_column(String(10))
    cup: Mapped[str | None] = mapped_column(String(15))
    order_kind: Mapped[str | None] = mapped_column(String(8))
    order_reference: Mapped[str | None] = mapped_column(String(20))
    order_date: Mapped[dt.date | None] = mapped_column(Date)
    payment_method: Mapped[str | None] = mapped_column(String(20))
    payment_schedule: Mapped[list | None] = mapped_column(JSON)  # [{"due_date": "2026-12-31", "amount": "10.00"}]
    split_payment: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    stamp_duty: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"), server_default="0")
    einvoice_state: Mapped[str | None] = mapped_column(String(16), index=True)
    email_message_id: Mapped[int | None] = mapped_column(ForeignKey("core_outbox_message.id", ondelete="SET NULL"))
    email_note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    posted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    customer: Mapped[Partner] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", cascade="all, delete-orphan", order_by="InvoiceLine.position"
    )
    original: Mapped[Invoice | None] = relationship(remote_side=[id])
    email_message: Mapped[OutboxMessage | None] = relationship()

    __table_args__ = (
        UniqueConstraint("type", "year", "sequence_number"),
        CheckConstraint("type IN ('invoice', 'credit_note')", name="type_known"),
        CheckConstraint("state IN ('draft', 'posted', 'cancelled')", name="state_known"),
        CheckConstraint("state != 'posted' OR number IS NOT NULL", name="posted_has_number"),
        CheckConstraint("type = 'invoice' OR original_id IS NOT NULL", name="credit_note_has_original"),
        CheckConstraint(f"einvoice_state IN {EINVOICE_STATES!r}", name="einvoice_state_known"),
    )

    def __str__(self) -> str:
        return self.number or f"#{self.id}"


class InvoiceLine(db.Model):
    """One line: quantity x unit price, with where it came from (`source`, `source_ref`) and what it bills."""

    __tablename__ = "invoicing_invoice_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoicing_invoice.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Numeric(14, 3))
    unit: Mapped[str] = mapped_column(String(10), default="pz")
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 6))
    vat_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    # The VAT code as it stood when the line was made: kept on the line, so a later change of the code does not
    # change a document already issued.
    vat_code: Mapped[str | None] = mapped_column(String(10))
    vat_nature: Mapped[str | None] = mapped_column(String(5))
    vat_reference: Mapped[str | None] = mapped_column(String(100))
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    kind: Mapped[str] = mapped_column(String(20))
    period_start: Mapped[dt.date | None] = mapped_column(Date)
    period_end: Mapped[dt.date | None] = mapped_column(Date)
    meter: Mapped[str | None] = mapped_column(String(20))
    device_id: Mapped[int | None] = mapped_column(Integer)
    contract_id: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(40))
    source_ref: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict | None] = mapped_column(JSON)
    reversed_line_id: Mapped[int | None] = mapped_column(ForeignKey("invoicing_invoice_line.id"), index=True)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")

    __table_args__ = (
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("vat_rate >= 0", name="vat_rate_not_negative"),
    )


class BilledRef(db.Model):
    """What is on a non-cancelled, non-reversed invoice line: the unique key that makes double billing impossible."""

    __tablename__ = "invoicing_billed_ref"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    source_ref: Mapped[str] = mapped_column(String(200), index=True)  # billed_keys looks refs up by it alone
    line_id: Mapped[int] = mapped_column(ForeignKey("invoicing_invoice_line.id", ondelete="CASCADE"), index=True)

    __table_args__ = (UniqueConstraint("source", "source_ref"),)


class InvoicePdf(db.Model):
    """The PDF of a posted document, rendered once by a job and kept as sent."""

    __tablename__ = "invoicing_invoice_pdf"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoicing_invoice.id", ondelete="CASCADE"), primary_key=True)
    filename: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    rendered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EInvoiceReceipt(db.Model):
    """A receipt of the exchange system (SdI) for an e-invoice, kept as received (docs/e-invoicing.md)."""

    __tablename__ = "invoicing_einvoice_receipt"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoicing_invoice.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(2))
    file_name: Mapped[str] = mapped_column(String(120), unique=True)
    sdi_id: Mapped[str | None] = mapped_column(String(20))
    received_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(4))  # NE: EC01 accepted, EC02 refused
    errors: Mapped[list | None] = mapped_column(JSON)  # NS: [{"code": "00305", "description": "...", "hint": ""}]
    content: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    invoice: Mapped[Invoice] = relationship()

    __table_args__ = (CheckConstraint(f"kind IN {RECEIPT_KINDS!r}", name="kind_known"),)
