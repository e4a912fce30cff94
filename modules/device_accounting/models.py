"""Device accounting tables: print users and cards, cost centers, price lists, quotas and balances, transactions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db, utcnow
from core.models import Partner, User
from modules.rentals.models import Device

FUNCTIONS = ("print", "copy", "scan", "fax", "email", "ftp")
# Functions whose sides are scanned, not printed (they cost what their price says, often nothing).
SCAN_FUNCTIONS = ("scan", "email", "ftp")
COLOURS = ("bw", "color")
PAPER_SIZES = ("A4", "A3", "A5", "letter", "other")
PRICE_SIZES = (*PAPER_SIZES, "any")
PRICE_DUPLEX = ("yes", "no", "any")
JOB_STATUSES = ("done", "failed", "cancelled")
QUOTA_PERIODS = ("monthly", "weekly")
QUOTA_MODES = ("reset", "rollover")
LEDGER_KINDS = ("opening", "charge", "refund", "adjustment")
HELD_JOB_STATES = ("held", "released", "deleted", "expired")

# Money: prices per side keep 6 places, costs and balances 4 (the rules); invoice amounts round to 0.01 later.
PRICE = Numeric(14, 6)
MONEY4 = Numeric(14, 4)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class PrivilegesMixin:
    """Privileges a cost center gives by default and a user may override; None means "inherit"."""

    # A list of FUNCTIONS allowed; None inherits (and at the top of the chain allows every function).
    allowed_functions: Mapped[list[str] | None] = mapped_column(JSON)
    color_allowed: Mapped[bool | None] = mapped_column(Boolean)
    max_sides: Mapped[int | None] = mapped_column(Integer)
    duplex_forced: Mapped[bool | None] = mapped_column(Boolean)


class AccountingSettings(db.Model):
    """A customer's job-accounting settings: privacy of document names and anonymisation of old transactions."""

    __tablename__ = "device_accounting_settings"
    __audited__ = True

    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), primary_key=True)
    hide_document_names: Mapped[bool] = mapped_column(Boolean, default=False)
    # Transactions older than this many months lose their user and document name; None keeps them.
    anonymise_after_months: Mapped[int | None] = mapped_column(Integer)
    # Hours a held print job waits for its release before it expires (and its document is deleted).
    held_job_hours: Mapped[int] = mapped_column(Integer, default=4, server_default="4")

    customer: Mapped[Partner] = relationship()

    __table_args__ = (
        CheckConstraint("anonymise_after_months IS NULL OR anonymise_after_months > 0", name="anonymise_positive"),
        CheckConstraint("held_job_hours > 0", name="held_job_hours_positive"),
    )


class CostCenter(PrivilegesMixin, db.Model):
    """A node of a customer's cost-center tree; `shared` gives it a balance of its own (a shared account)."""

    __tablename__ = "device_accounting_cost_center"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_accounting_cost_center.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    code: Mapped[str | None] = mapped_column(String(40))
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Filled when the cost center came from the customer's directory (a department), so a sync finds it again.
    directory_key: Mapped[str | None] = mapped_column(String(200))

    customer: Mapped[Partner] = relationship()
    parent: Mapped[CostCenter | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[CostCenter]] = relationship(back_populates="parent", order_by="CostCenter.name")

    __table_args__ = (
        # Sibling names are unique; NULL parents are made comparable by the partial index below.
        UniqueConstraint("customer_id", "parent_id", "name"),
        Index(
            "uq_device_accounting_cost_center_root_name",
            "customer_id",
            "name",
            unique=True,
            sqlite_where=db.text("parent_id IS NULL"),
            postgresql_where=db.text("parent_id IS NULL"),
        ),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
    )

    @property
    def path(self) -> str:
        """`Amministrazione / Contabilità`: the names from the root down."""
        names, node, seen = [], self, set()
        while node is not None and node.id not in seen:
            seen.add(node.id)
            names.append(node.name)
            node = node.parent
        return " / ".join(reversed(names))

    def __str__(self) -> str:
        return self.path


user_cost_center = Table(
    "device_accounting_user_cost_center",
    db.metadata,
    Column("user_id", ForeignKey("device_accounting_user.id", ondelete="CASCADE"), primary_key=True),
    Column("cost_center_id", ForeignKey("device_accounting_cost_center.id", ondelete="CASCADE"), primary_key=True),
)


class PrintUser(PrivilegesMixin, db.Model):
    """Someone who prints and copies at a customer's devices; identified by a card, a PIN or a password."""

    __tablename__ = "device_accounting_user"
    __audited__ = True
    # Secrets go into the audit log as "changed", never their value, even hashed.
    __audit_secret__ = ("pin_digest", "password_hash")

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(100))
    # The username lower-cased: unique per customer (usernames are case-insensitive).
    username_key: Mapped[str] = mapped_column(String(100))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    language: Mapped[str | None] = mapped_column(String(5))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    default_cost_center_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_accounting_cost_center.id", ondelete="SET NULL"), index=True
    )
    # PIN: a keyed digest (core.crypto.keyed_digest of customer and PIN) to find and keep unique per customer.
    pin_digest: Mapped[str | None] = mapped_column(String(64))
    pin_locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    password_hash: Mapped[str | None] = mapped_column(String(256))
    # True when the password is checked against the customer's directory (LDAP), not `password_hash`.
    directory_user: Mapped[bool] = mapped_column(Boolean, default=False)
    directory_dn: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    customer: Mapped[Partner] = relationship()
    default_cost_center: Mapped[CostCenter | None] = relationship()
    cost_centers: Mapped[list[CostCenter]] = relationship(secondary=user_cost_center, order_by="CostCenter.name")
    cards: Mapped[list[Card]] = relationship(back_populates="user", cascade="all, delete-orphan", order_by="Card.id")

    __table_args__ = (
        UniqueConstraint("customer_id", "username_key"),
        UniqueConstraint("customer_id", "pin_digest"),
    )

    def __str__(self) -> str:
        return f"{self.full_name} ({self.username})" if self.full_name else self.username


class Card(db.Model):
    """A card number (a string: `0004521` is not `4521`), unique per customer; a lost card is disabled, not deleted."""

    __tablename__ = "device_accounting_card"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("device_accounting_user.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user: Mapped[PrintUser] = relationship(back_populates="cards")

    __table_args__ = (UniqueConstraint("customer_id", "number"),)

    def __str__(self) -> str:
        return self.number


class PinAttempt(db.Model):
    """A wrong PIN typed at a device: five in 15 minutes lock the PIN (of the user, or at that device) for 15."""

    __tablename__ = "device_accounting_pin_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), index=True)
    # The user when the PIN came with a username; None for a PIN typed alone that matched nobody.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("device_accounting_user.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Directory(db.Model):
    """A customer's LDAP / Active Directory server: checks passwords and syncs users and departments."""

    __tablename__ = "device_accounting_directory"
    __audited__ = True
    __audit_secret__ = ("bind_password_sealed",)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), unique=True)
    url: Mapped[str] = mapped_column(String(300))  # ldap://host:389 or ldaps://host:636
    start_tls: Mapped[bool] = mapped_column(Boolean, default=False)
    bind_dn: Mapped[str | None] = mapped_column(String(500))
    # The bind password encrypted at rest (core.crypto.seal); never shown back.
    bind_password_sealed: Mapped[str | None] = mapped_column(Text)
    base_dn: Mapped[str] = mapped_column(String(500))
    user_filter: Mapped[str] = mapped_column(String(500), default="(objectClass=person)")
    username_attribute: Mapped[str] = mapped_column(String(60), default="uid")
    name_attribute: Mapped[str] = mapped_column(String(60), default="cn")
    email_attribute: Mapped[str] = mapped_column(String(60), default="mail")
    department_attribute: Mapped[str | None] = mapped_column(String(60), default="departmentNumber")
    card_attribute: Mapped[str | None] = mapped_column(String(60))
    # Hours between scheduled syncs; None syncs only on demand.
    sync_every_hours: Mapped[int | None] = mapped_column(Integer, default=24)
    last_sync_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_sync_result: Mapped[dict | None] = mapped_column(JSON)

    customer: Mapped[Partner] = relationship()

    __table_args__ = (CheckConstraint("sync_every_hours IS NULL OR sync_every_hours > 0", name="sync_positive"),)

    def __str__(self) -> str:
        return self.url


class PriceList(db.Model):
    """The dealer's default price list (no customer) or one customer's, from `valid_from` until the next one."""

    __tablename__ = "device_accounting_price_list"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    customer: Mapped[Partner | None] = relationship()
    entries: Mapped[list[PriceEntry]] = relationship(
        back_populates="price_list", cascade="all, delete-orphan", order_by="PriceEntry.id"
    )

    __table_args__ = (
        UniqueConstraint("customer_id", "valid_from"),
        Index(
            "uq_device_accounting_price_list_dealer_from",
            "valid_from",
            unique=True,
            sqlite_where=db.text("customer_id IS NULL"),
            postgresql_where=db.text("customer_id IS NULL"),
        ),
    )

    def __str__(self) -> str:
        return self.name


class PriceEntry(db.Model):
    """(function, colour, paper size or `any`, duplex or `any`) → price per side, and an optional fee per job."""

    __tablename__ = "device_accounting_price_entry"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    price_list_id: Mapped[int] = mapped_column(
        ForeignKey("device_accounting_price_list.id", ondelete="CASCADE"), index=True
    )
    function: Mapped[str] = mapped_column(String(10))
    colour: Mapped[str] = mapped_column(String(5))
    paper_size: Mapped[str] = mapped_column(String(10), default="any")
    duplex: Mapped[str] = mapped_column(String(3), default="any")
    price_per_side: Mapped[Decimal] = mapped_column(PRICE)
    job_fee: Mapped[Decimal | None] = mapped_column(MONEY4)

    price_list: Mapped[PriceList] = relationship(back_populates="entries")

    __table_args__ = (
        UniqueConstraint("price_list_id", "function", "colour", "paper_size", "duplex"),
        CheckConstraint(_in("function", FUNCTIONS), name="function_known"),
        CheckConstraint(_in("colour", COLOURS), name="colour_known"),
        CheckConstraint(_in("paper_size", PRICE_SIZES), name="paper_size_known"),
        CheckConstraint(_in("duplex", PRICE_DUPLEX), name="duplex_known"),
        CheckConstraint("price_per_side >= 0", name="price_not_negative"),
        CheckConstraint("job_fee IS NULL OR job_fee >= 0", name="job_fee_not_negative"),
    )


class Quota(db.Model):
    """What a user, or a shared cost center, gets each period: amount, mode, rollover cap, overdraft, warning level."""

    __tablename__ = "device_accounting_quota"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_accounting_user.id", ondelete="CASCADE"), unique=True
    )
    cost_center_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_accounting_cost_center.id", ondelete="CASCADE"), unique=True
    )
    period: Mapped[str] = mapped_column(String(10), default="monthly")
    amount: Mapped[Decimal] = mapped_column(MONEY4)
    mode: Mapped[str] = mapped_column(String(10), default="reset")
    rollover_cap: Mapped[Decimal | None] = mapped_column(MONEY4)
    overdraft: Mapped[Decimal] = mapped_column(MONEY4, default=Decimal("0"))
    warning_percent: Mapped[int] = mapped_column(Integer, default=80)

    user: Mapped[PrintUser | None] = relationship()
    cost_center: Mapped[CostCenter | None] = relationship()

    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (cost_center_id IS NULL)", name="one_holder"),
        CheckConstraint(_in("period", QUOTA_PERIODS), name="period_known"),
        CheckConstraint(_in("mode", QUOTA_MODES), name="mode_known"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
        CheckConstraint("overdraft >= 0", name="overdraft_not_negative"),
        CheckConstraint("mode <> 'rollover' OR (rollover_cap IS NOT NULL AND rollover_cap >= amount)", name="cap"),
        CheckConstraint("warning_percent BETWEEN 1 AND 100", name="warning_percent_range"),
    )


class Balance(db.Model):
    """The running balance of one quota in its current period; always equal to its ledger (recompute checks it)."""

    __tablename__ = "device_accounting_balance"

    id: Mapped[int] = mapped_column(primary_key=True)
    quota_id: Mapped[int] = mapped_column(ForeignKey("device_accounting_quota.id", ondelete="CASCADE"), unique=True)
    period_start: Mapped[dt.date] = mapped_column(Date)
    opening: Mapped[Decimal] = mapped_column(MONEY4)
    balance: Mapped[Decimal] = mapped_column(MONEY4)
    # The period whose warning email went out (once per period).
    warned_period: Mapped[dt.date | None] = mapped_column(Date)

    quota: Mapped[Quota] = relationship()


class LedgerEntry(db.Model):
    """One movement of a balance: the period's opening, a job's charge, a refund or a manual adjustment."""

    __tablename__ = "device_accounting_ledger"

    id: Mapped[int] = mapped_column(primary_key=True)
    balance_id: Mapped[int] = mapped_column(ForeignKey("device_accounting_balance.id", ondelete="CASCADE"), index=True)
    period_start: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(12))
    # Signed: an opening is the balance the period opens with, a charge is negative, a refund positive.
    amount: Mapped[Decimal] = mapped_column(MONEY4)
    transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_accounting_transaction.id", ondelete="SET NULL"), index=True
    )
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("device_accounting_refund.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(String(500))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    balance: Mapped[Balance] = relationship()
    actor: Mapped[User | None] = relationship()

    __table_args__ = (CheckConstraint(_in("kind", LEDGER_KINDS), name="kind_known"),)


class Transaction(db.Model):
    """One finished job at one device; stored once per (device, device sequence number), never edited."""

    __tablename__ = "device_accounting_transaction"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id"))
    device_seq: Mapped[int] = mapped_column(BigInteger)
    # None once anonymised (the customer's setting), or for a job nobody identified for.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("device_accounting_user.id", ondelete="SET NULL"))
    cost_center_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_accounting_cost_center.id", ondelete="SET NULL")
    )
    function: Mapped[str] = mapped_column(String(10))
    sides_bw: Mapped[int] = mapped_column(Integer, default=0)
    sides_color: Mapped[int] = mapped_column(Integer, default=0)
    sheets: Mapped[int] = mapped_column(Integer, default=0)
    paper_size: Mapped[str] = mapped_column(String(10), default="A4")
    duplex: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(10), default="done")
    document_name: Mapped[str | None] = mapped_column(String(500))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    cost: Mapped[Decimal] = mapped_column(MONEY4)
    price_list_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_accounting_price_list.id", ondelete="SET NULL")
    )
    # The quota whose balance paid (the user's or a shared cost center's), and that balance after it.
    quota_id: Mapped[int | None] = mapped_column(ForeignKey("device_accounting_quota.id", ondelete="SET NULL"))
    balance_after: Mapped[Decimal | None] = mapped_column(MONEY4)
    refunded: Mapped[Decimal] = mapped_column(MONEY4, default=Decimal("0"))
    anonymised: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    customer: Mapped[Partner] = relationship()
    device: Mapped[Device] = relationship()
    user: Mapped[PrintUser | None] = relationship()
    cost_center: Mapped[CostCenter | None] = relationship()

    __table_args__ = (
        UniqueConstraint("device_id", "device_seq"),
        Index("ix_device_accounting_transaction_customer_ended", "customer_id", "ended_at"),
        Index("ix_device_accounting_transaction_user_ended", "user_id", "ended_at"),
        Index("ix_device_accounting_transaction_device_ended", "device_id", "ended_at"),
        CheckConstraint(_in("function", FUNCTIONS), name="function_known"),
        CheckConstraint(_in("paper_size", PAPER_SIZES), name="paper_size_known"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status_known"),
        CheckConstraint("sides_bw >= 0 AND sides_color >= 0 AND sheets >= 0", name="counts_not_negative"),
        CheckConstraint("ended_at >= started_at", name="times_ordered"),
        CheckConstraint("cost >= 0", name="cost_not_negative"),
        CheckConstraint("refunded >= 0 AND refunded <= cost", name="refund_within_cost"),
    )


class Refund(db.Model):
    """All or part of a transaction's cost given back, by whom, when and why; never beyond its cost."""

    __tablename__ = "device_accounting_refund"

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        ForeignKey("device_accounting_transaction.id", ondelete="CASCADE"), index=True
    )
    amount: Mapped[Decimal] = mapped_column(MONEY4)
    reason: Mapped[str] = mapped_column(String(500))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    transaction: Mapped[Transaction] = relationship()
    actor: Mapped[User | None] = relationship()

    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)


class UsageTotalsMixin:
    """What a rollup row sums: jobs, sides (black and white, colour), sheets and cost (net of refunds)."""

    jobs: Mapped[int] = mapped_column(Integer, default=0)
    sides_bw: Mapped[int] = mapped_column(BigInteger, default=0)
    sides_color: Mapped[int] = mapped_column(BigInteger, default=0)
    sheets: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[Decimal] = mapped_column(MONEY4, default=Decimal("0"))


class DailyUsage(UsageTotalsMixin, db.Model):
    """A day's totals per (customer, user, cost center, device, function, paper size): what reports read.

    Kept in the same transaction as the transactions and refunds it sums, so a report never reads the raw rows.
    """

    __tablename__ = "device_accounting_daily_usage"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)  # the job's end, in the dealer's time zone
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"))
    # 0 stands for "none" (an anonymised or unidentified job) so the key stays unique on every database.
    user_id: Mapped[int] = mapped_column(Integer, default=0)
    cost_center_id: Mapped[int] = mapped_column(Integer, default=0)
    device_id: Mapped[int] = mapped_column(Integer)
    function: Mapped[str] = mapped_column(String(10))
    paper_size: Mapped[str] = mapped_column(String(10))

    __table_args__ = (
        UniqueConstraint("customer_id", "day", "user_id", "cost_center_id", "device_id", "function", "paper_size"),
        Index("ix_device_accounting_daily_usage_customer_day", "customer_id", "day"),
    )


class MonthlyUsage(UsageTotalsMixin, db.Model):
    """A month's totals per (customer, user, cost center, device, function, paper size): DailyUsage summed by month.

    Kept with DailyUsage (rollups.py), so a report over whole months (and the month so far) reads a month's rows
    once, not each day's: for a large customer several times fewer rows.
    """

    __tablename__ = "device_accounting_monthly_usage"

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[dt.date] = mapped_column(Date)  # its first day (the dealer's)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(Integer, default=0)
    cost_center_id: Mapped[int] = mapped_column(Integer, default=0)
    device_id: Mapped[int] = mapped_column(Integer)
    function: Mapped[str] = mapped_column(String(10))
    paper_size: Mapped[str] = mapped_column(String(10))

    __table_args__ = (
        UniqueConstraint("customer_id", "month", "user_id", "cost_center_id", "device_id", "function", "paper_size"),
        Index("ix_device_accounting_monthly_usage_customer_month", "customer_id", "month"),
    )


class CenterDailyUsage(UsageTotalsMixin, db.Model):
    """A day's totals per (customer, cost center, function): DailyUsage without users, devices and sizes.

    Kept with DailyUsage (rollups.py): the few rows that reports by cost center, function, day or month read.
    """

    __tablename__ = "device_accounting_center_daily_usage"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"))
    cost_center_id: Mapped[int] = mapped_column(Integer, default=0)
    function: Mapped[str] = mapped_column(String(10))

    __table_args__ = (
        UniqueConstraint("customer_id", "day", "cost_center_id", "function"),
        Index("ix_device_accounting_center_daily_usage_customer_day", "customer_id", "day"),
    )


class ReportSubscription(db.Model):
    """A customer admin who asked for the monthly usage report by email."""

    __tablename__ = "device_accounting_report_subscription"

    user_id: Mapped[int] = mapped_column(ForeignKey("core_user.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    last_sent_month: Mapped[dt.date | None] = mapped_column(Date)

    user: Mapped[User] = relationship()


class Chargeback(db.Model):
    """A contract that bills its devices' job accounting (chargeback) from `start_date`, instead of meter overage."""

    __tablename__ = "device_accounting_chargeback"
    __audited__ = True

    contract_id: Mapped[int] = mapped_column(ForeignKey("rentals_contract.id", ondelete="CASCADE"), primary_key=True)
    start_date: Mapped[dt.date] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    contract = relationship("Contract")


class ChargebackBilled(db.Model):
    """The sides one chargeback invoice line billed, per (contract, period, function, colour, size).

    Written and deleted only by billing.py's receivers of `core.signals.lines_billed` / `lines_released`, in
    invoicing's transaction: a later run bills only the sides beyond these (jobs that arrived late), never twice.
    """

    __tablename__ = "device_accounting_chargeback_billed"

    id: Mapped[int] = mapped_column(primary_key=True)
    source_ref: Mapped[str] = mapped_column(String(200), unique=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("rentals_contract.id", ondelete="CASCADE"), index=True)
    period_index: Mapped[int] = mapped_column(Integer)
    function: Mapped[str] = mapped_column(String(10))
    colour: Mapped[str] = mapped_column(String(5))
    paper_size: Mapped[str] = mapped_column(String(10))
    sides: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PrintServer(db.Model):
    """A customer's CUPS print server: submits held jobs with its token and has its page log imported."""

    __tablename__ = "device_accounting_print_server"
    __audited__ = True
    __audit_secret__ = ("token_digest",)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # SHA-256 hex of the token (shown once, at creation or rotation); token_hint: its last characters, to tell apart.
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    token_hint: Mapped[str] = mapped_column(String(8))
    # The CUPS page_log the scheduled import reads; None imports only on demand.
    page_log_path: Mapped[str | None] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    customer: Mapped[Partner] = relationship()
    users: Mapped[list[PrintServerUser]] = relationship(
        back_populates="print_server", cascade="all, delete-orphan", order_by="PrintServerUser.cups_user"
    )
    printers: Mapped[list[PrintServerPrinter]] = relationship(
        back_populates="print_server", cascade="all, delete-orphan", order_by="PrintServerPrinter.queue"
    )

    __table_args__ = (UniqueConstraint("customer_id", "name"),)

    def __str__(self) -> str:
        return self.name


class PrintServerUser(db.Model):
    """A CUPS user name mapped to a print user; a CUPS user without a row is the print user of the same username."""

    __tablename__ = "device_accounting_print_server_user"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    print_server_id: Mapped[int] = mapped_column(
        ForeignKey("device_accounting_print_server.id", ondelete="CASCADE"), index=True
    )
    cups_user: Mapped[str] = mapped_column(String(100))
    print_user_id: Mapped[int] = mapped_column(ForeignKey("device_accounting_user.id", ondelete="CASCADE"), index=True)

    print_server: Mapped[PrintServer] = relationship(back_populates="users")
    print_user: Mapped[PrintUser] = relationship()

    __table_args__ = (UniqueConstraint("print_server_id", "cups_user"),)


class PrintServerPrinter(db.Model):
    """A CUPS queue of a print server and the device its page-log jobs are charged at."""

    __tablename__ = "device_accounting_print_server_printer"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    print_server_id: Mapped[int] = mapped_column(
        ForeignKey("device_accounting_print_server.id", ondelete="CASCADE"), index=True
    )
    queue: Mapped[str] = mapped_column(String(127))
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), index=True)

    print_server: Mapped[PrintServer] = relationship(back_populates="printers")
    device: Mapped[Device] = relationship()

    __table_args__ = (UniqueConstraint("print_server_id", "queue"),)


class HeldJob(db.Model):
    """A print job held until its user (or a delegate) releases it at a device of the customer, or it expires."""

    __tablename__ = "device_accounting_held_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("device_accounting_user.id", ondelete="CASCADE"))
    print_server_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_accounting_print_server.id", ondelete="SET NULL"), index=True
    )
    # Print server id + CUPS job id + job-uuid: a retried submission finds the job it already stored.
    submission_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    # None when the customer hides document names.
    title: Mapped[str | None] = mapped_column(String(500))
    pages: Mapped[int] = mapped_column(Integer)
    copies: Mapped[int] = mapped_column(Integer, default=1)
    color: Mapped[bool] = mapped_column(Boolean, default=False)
    duplex: Mapped[bool] = mapped_column(Boolean, default=False)
    paper_size: Mapped[str] = mapped_column(String(10), default="A4")
    estimated_cost: Mapped[Decimal] = mapped_column(MONEY4)
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    state: Mapped[str] = mapped_column(String(10), default="held")
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    released_device_id: Mapped[int | None] = mapped_column(ForeignKey("rentals_device.id", ondelete="SET NULL"))
    # The delegate who released it (None when the owner did).
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("device_accounting_user.id", ondelete="SET NULL"))
    transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_accounting_transaction.id", ondelete="SET NULL")
    )
    document_size: Mapped[int] = mapped_column(Integer)
    # SHA-256 hex of the plain document: the device checks what it fetched.
    document_digest: Mapped[str] = mapped_column(String(64))
    mime_type: Mapped[str] = mapped_column(String(60), default="application/pdf")

    customer: Mapped[Partner] = relationship()
    user: Mapped[PrintUser] = relationship(foreign_keys=[user_id])
    print_server: Mapped[PrintServer | None] = relationship()
    released_device: Mapped[Device | None] = relationship()
    released_by: Mapped[PrintUser | None] = relationship(foreign_keys=[released_by_id])
    transaction: Mapped[Transaction | None] = relationship()

    __table_args__ = (
        Index("ix_device_accounting_held_job_customer_state", "customer_id", "state"),
        Index("ix_device_accounting_held_job_user_state", "user_id", "state"),
        CheckConstraint(_in("state", HELD_JOB_STATES), name="state_known"),
        CheckConstraint(_in("paper_size", PAPER_SIZES), name="paper_size_known"),
        CheckConstraint("pages > 0 AND copies > 0", name="counts_positive"),
        CheckConstraint("estimated_cost >= 0", name="cost_not_negative"),
    )

    def __str__(self) -> str:
        return self.title or f"#{self.id}"


class HeldDocument(db.Model):
    """A held job's document, sealed (core.crypto.seal_bytes, purpose "held documents"); removed once it ends."""

    __tablename__ = "device_accounting_held_document"

    held_job_id: Mapped[int] = mapped_column(
        ForeignKey("device_accounting_held_job.id", ondelete="CASCADE"), primary_key=True
    )
    content: Mapped[bytes] = mapped_column(LargeBinary)


class PrintDelegate(db.Model):
    """`delegate` may release the held jobs of `owner` (a print user of the same customer)."""

    __tablename__ = "device_accounting_print_delegate"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("device_accounting_user.id", ondelete="CASCADE"))
    delegate_id: Mapped[int] = mapped_column(ForeignKey("device_accounting_user.id", ondelete="CASCADE"), index=True)

    owner: Mapped[PrintUser] = relationship(foreign_keys=[owner_id])
    delegate: Mapped[PrintUser] = relationship(foreign_keys=[delegate_id])

    __table_args__ = (
        UniqueConstraint("owner_id", "delegate_id"),
        CheckConstraint("owner_id <> delegate_id", name="not_self"),
    )


class PageLogCursor(db.Model):
    """How far a print server's page log file has been read; a rotated or replaced file starts again at 0."""

    __tablename__ = "device_accounting_page_log_cursor"

    id: Mapped[int] = mapped_column(primary_key=True)
    print_server_id: Mapped[int] = mapped_column(ForeignKey("device_accounting_print_server.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(500))
    inode: Mapped[int | None] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # SHA-256 hex of the file's first line.
    head_digest: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("print_server_id", "path"),)


class PageLogJob(db.Model):
    """A job read from a page log, once per (server, queue, CUPS job id, time): a line read twice adds nothing."""

    __tablename__ = "device_accounting_page_log_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    print_server_id: Mapped[int] = mapped_column(ForeignKey("device_accounting_print_server.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(127))
    cups_job_id: Mapped[int] = mapped_column(Integer)
    job_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    user_name: Mapped[str] = mapped_column(String(100))
    transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("device_accounting_transaction.id", ondelete="SET NULL")
    )

    __table_args__ = (UniqueConstraint("print_server_id", "queue", "cups_job_id", "job_time"),)
