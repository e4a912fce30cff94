"""Core tables: module state, partners, company, sequences, settings, audit, users, sessions, tokens, outbox, jobs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
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


class ModuleState(db.Model):
    """Whether a module is requested on this database (the loader still checks dependencies and licence)."""

    __tablename__ = "core_module"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    requested: Mapped[bool] = mapped_column(Boolean, default=True)
    installed_version: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class AddressMixin:
    street: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str | None] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    province: Mapped[str | None] = mapped_column(String(10))
    country: Mapped[str] = mapped_column(String(2), default="IT")


class Partner(AddressMixin, db.Model):
    """A customer or supplier of the dealer."""

    __tablename__ = "core_partner"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    is_customer: Mapped[bool] = mapped_column(Boolean, default=True)
    is_supplier: Mapped[bool] = mapped_column(Boolean, default=False)
    vat_number: Mapped[str | None] = mapped_column(String(20), index=True)
    fiscal_code: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    pec: Mapped[str | None] = mapped_column(String(254))
    sdi_code: Mapped[str | None] = mapped_column(String(7))
    phone: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(5), default="it")
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    payment_end_of_month: Mapped[bool] = mapped_column(Boolean, default=False)
    # Split payment (scissione dei pagamenti, art. 17-ter DPR 633/72): a public body pays the VAT to the state.
    split_payment: Mapped[bool] = mapped_column(Boolean, default=False)
    # A public administration gets FPA12 e-invoices addressed to its 6-character office code (sdi_code).
    public_administration: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    payment_method: Mapped[str] = mapped_column(String(20), default="bank_transfer", server_default="bank_transfer")
    payment_instalments: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    contacts: Mapped[list[PartnerContact]] = relationship(
        back_populates="partner", cascade="all, delete-orphan", order_by="PartnerContact.id"
    )

    __table_args__ = (
        CheckConstraint("payment_terms_days >= 0", name="payment_terms_not_negative"),
        CheckConstraint(
            "payment_method IN ('bank_transfer', 'sepa_direct_debit', 'riba', 'cash', 'card')",
            name="payment_method_known",
        ),
        CheckConstraint("payment_instalments BETWEEN 1 AND 12", name="payment_instalments_range"),
    )

    def __str__(self) -> str:
        return self.name


class PartnerContact(db.Model):
    """A person at a partner: who receives reading requests, who receives invoices."""

    __tablename__ = "core_partner_contact"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    receives_readings: Mapped[bool] = mapped_column(Boolean, default=False)
    receives_invoices: Mapped[bool] = mapped_column(Boolean, default=False)

    partner: Mapped[Partner] = relationship(back_populates="contacts")

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class Company(AddressMixin, db.Model):
    """The dealer's own company record (one row)."""

    __tablename__ = "core_company"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    vat_number: Mapped[str | None] = mapped_column(String(20))
    fiscal_code: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    pec: Mapped[str | None] = mapped_column(String(254))
    sdi_code: Mapped[str | None] = mapped_column(String(7))
    phone: Mapped[str | None] = mapped_column(String(40))
    iban: Mapped[str | None] = mapped_column(String(34))
    tax_regime: Mapped[str] = mapped_column(String(4), default="RF01")
    logo: Mapped[bytes | None] = mapped_column(LargeBinary)
    logo_mimetype: Mapped[str | None] = mapped_column(String(50))

    def __str__(self) -> str:
        return self.name


class VatCode(db.Model):
    """A VAT code of the dealer: a rate, or 0% with its Natura and legal reference (core.vat_codes)."""

    __tablename__ = "core_vat_code"
    __audited__ = True

    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    rate: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    description_it: Mapped[str] = mapped_column(String(200))
    description_en: Mapped[str] = mapped_column(String(200))
    description_es: Mapped[str] = mapped_column(String(200))
    nature: Mapped[str | None] = mapped_column(String(5))  # FatturaPA Natura, only on 0% codes
    legal_reference: Mapped[str | None] = mapped_column(String(100))  # RiferimentoNormativo
    chargeability: Mapped[str] = mapped_column(String(1), default="I")  # EsigibilitaIVA: I, D or S
    # Whether this code's amounts count toward the stamp duty threshold (exempt, excluded, not subject).
    stamp_duty: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        CheckConstraint("rate >= 0 AND rate <= 100", name="rate_range"),
        CheckConstraint("chargeability IN ('I', 'D', 'S')", name="chargeability_known"),
        CheckConstraint("rate = 0 OR nature IS NULL", name="nature_only_at_zero"),
    )

    def __str__(self) -> str:
        return self.code


class Sequence(db.Model):
    """A gapless counter per document type and year."""

    __tablename__ = "core_sequence"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    year: Mapped[int] = mapped_column(Integer)
    last_value: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("code", "year"),)


class Setting(db.Model):
    """A dealer setting: a JSON value under a dotted key (`metering.jump_factor`)."""

    __tablename__ = "core_setting"
    __audited__ = True

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class AuditLog(db.Model):
    """Who changed what, when."""

    __tablename__ = "core_audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor: Mapped[str] = mapped_column(String(254), default="system")
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str | None] = mapped_column(String(80))
    object_id: Mapped[str | None] = mapped_column(String(80))
    changes: Mapped[dict | None] = mapped_column(JSON)
    ip_address: Mapped[str | None] = mapped_column(String(45))


class User(db.Model):
    """A staff member or a customer's contact; customer roles are tied to one partner."""

    __tablename__ = "core_user"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    language: Mapped[str | None] = mapped_column(String(5))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    # Counts password changes; the sessions they end are revoked in core_user_session.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    customer: Mapped[Partner | None] = relationship()

    __table_args__ = (
        CheckConstraint(
            "role IN ('dealer_admin', 'back_office', 'technician', 'customer_admin', 'customer_user')",
            name="role_known",
        ),
        CheckConstraint(
            "(role IN ('customer_admin', 'customer_user')) = (customer_id IS NOT NULL)",
            name="customer_role_has_customer",
        ),
    )

    def __str__(self) -> str:
        return self.email

    # What Flask-Login asks of a user object.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return bool(self.active)

    # The secret of the login this object was loaded for (core.auth.sessions); never stored, only its hash.
    login_token = None

    def get_id(self) -> str:
        # The id in the session and remember cookies names one server-side login, so it can be revoked.
        if not self.login_token:
            raise RuntimeError("log users in with core.auth.sessions.log_in, which starts a server-side session")
        return f"{self.id}:{self.login_token}"


class ApiToken(db.Model):
    """A bearer token for the REST API; only its SHA-256 is stored."""

    __tablename__ = "core_api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class UserSession(db.Model):
    """One login: its session and remember cookies carry a random secret, of which only the SHA-256 is stored."""

    __tablename__ = "core_user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxMessage(db.Model):
    """An email written in the same transaction as the change that causes it, sent later by a job."""

    __tablename__ = "core_outbox_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # Same key, one email: a job that runs twice does not send twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    recipients: Mapped[list] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(5), default="en")
    template: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # When the worker's sweep tries again (pending and failed messages); None: sent, kept, or retries used up.
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The links the stored body shows redacted, encrypted (Fernet); put into the email at sending, then wiped.
    sealed_secrets: Mapped[str | None] = mapped_column(Text)

    attachments: Mapped[list[OutboxAttachment]] = relationship(cascade="all, delete-orphan")

    __table_args__ = (CheckConstraint("status IN ('pending', 'sent', 'failed', 'kept')", name="status_known"),)


class OutboxAttachment(db.Model):
    __tablename__ = "core_outbox_attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("core_outbox_message.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    mimetype: Mapped[str] = mapped_column(String(100))
    content: Mapped[bytes] = mapped_column(LargeBinary)


class JobRecord(db.Model):
    """One background job as the admin sees it: queued, waiting (for Redis), running, done or failed, with its error."""

    __tablename__ = "core_job"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    func: Mapped[str] = mapped_column(String(200))
    args: Mapped[list] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    enqueued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("status IN ('queued', 'waiting', 'running', 'done', 'failed')", name="status_known"),
    )
