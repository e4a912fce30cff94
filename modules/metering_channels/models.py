"""Meter channel tables: mailboxes and the counter report emails they received, SNMP devices and their polls."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.orm.attributes import set_committed_value

from core.db import db, utcnow
from core.models import User
from modules.metering.models import Reading
from modules.rentals.models import Device

MAILBOX_SECURITY = ("ssl", "starttls")
EMAIL_STATES = ("read", "pending_review", "refused", "unmatched", "assigned", "discarded")
SNMP_VERSIONS = ("2c", "3")
POLL_OUTCOMES = ("read", "pending_review", "refused", "unreachable", "auth_failed", "serial_mismatch", "bad_answer")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


def set_poll_state(record: db.Model, **values: Any) -> None:
    """Write a poll's bookkeeping (last poll, last error, counts, outcome) straight to the row, outside the audit log:
    an audited model's poll state would otherwise add an audit entry at every poll. The loaded record shows the values
    too. Settings and credentials go through the ORM as usual (audited)."""
    model = type(record)
    db.session.execute(
        sa.update(model).where(model.id == record.id).values(**values).execution_options(synchronize_session=False)
    )
    for key, value in values.items():
        set_committed_value(record, key, value)


class Mailbox(db.Model):
    """An IMAP mailbox the devices send their counter reports to; the password is sealed (core.crypto).

    The poll state (last_polled_at, last_error, uidvalidity, last_uid, the counts) is written with set_poll_state.
    """

    __tablename__ = "metering_channels_mailbox"
    __audited__ = True
    __audit_secret__ = ("password_sealed",)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    host: Mapped[str] = mapped_column(String(200))
    port: Mapped[int] = mapped_column(Integer, default=993)
    security: Mapped[str] = mapped_column(String(10), default="ssl")
    username: Mapped[str] = mapped_column(String(200))
    password_sealed: Mapped[str | None] = mapped_column(Text)  # seal(..., purpose "metering_channels.mailbox")
    folder: Mapped[str] = mapped_column(String(100), default="INBOX")
    processed_folder: Mapped[str] = mapped_column(String(100), default="Copydesk/Processed")
    unmatched_folder: Mapped[str] = mapped_column(String(100), default="Copydesk/Unmatched")
    # Who may send counter reports: addresses or domains (a@b.it, b.it, @b.it), one a line or comma-separated;
    # empty: anyone. A report from anyone else waits in the unmatched queue.
    allowed_senders: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # For information only (a handled message leaves the folder, so every poll reads what is there): the folder's
    # UIDVALIDITY and the highest UID handled at the last poll.
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    processed_count: Mapped[int] = mapped_column(Integer, default=0)
    unmatched_count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        CheckConstraint(_in("security", MAILBOX_SECURITY), name="security_known"),
        CheckConstraint("port > 0 AND port < 65536", name="port_range"),
    )

    def __str__(self) -> str:
        return self.name


class CounterEmail(db.Model):
    """A counter report email as received (raw), what was read from it, and where it went (a reading or the queue)."""

    __tablename__ = "metering_channels_email"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("metering_channels_mailbox.id", ondelete="SET NULL"), index=True
    )  # None: uploaded in the back office or imported with the CLI
    # The Message-ID, or "sha256:<hex of the raw message>" without one: each email is handled once.
    message_key: Mapped[str] = mapped_column(String(255), unique=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    sender: Mapped[str] = mapped_column(String(254), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    profile: Mapped[str | None] = mapped_column(String(30))
    serial: Mapped[str | None] = mapped_column(String(60), index=True)
    counters: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    supplies: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # toner percent by colour, as the report gave them
    taken_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(15), index=True)
    reason: Mapped[str | None] = mapped_column(Text)  # why unmatched or refused, in plain words
    device_id: Mapped[int | None] = mapped_column(ForeignKey("rentals_device.id", ondelete="SET NULL"), index=True)
    reading_id: Mapped[int | None] = mapped_column(ForeignKey("metering_reading.id", ondelete="SET NULL"))
    handled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    handled_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))

    mailbox: Mapped[Mailbox | None] = relationship()
    device: Mapped[Device | None] = relationship()
    reading: Mapped[Reading | None] = relationship()
    handler: Mapped[User | None] = relationship(foreign_keys=[handled_by])

    __table_args__ = (CheckConstraint(_in("state", EMAIL_STATES), name="state_known"),)

    def __str__(self) -> str:
        return self.subject or self.message_key


class SnmpDevice(db.Model):
    """A rentals device polled over SNMP: where, with which credentials (sealed), and how the last poll went."""

    __tablename__ = "metering_channels_snmp_device"
    __audited__ = True
    # Poll state (last_polled_at, last_ok_at, last_error, last_outcome): written with set_poll_state, not audited.
    __audit_secret__ = ("community_sealed", "v3_auth_key_sealed", "v3_priv_key_sealed")

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), unique=True)
    host: Mapped[str | None] = mapped_column(String(200))  # None: the device's ip_address
    port: Mapped[int] = mapped_column(Integer, default=161)
    version: Mapped[str] = mapped_column(String(3), default="2c")
    community_sealed: Mapped[str | None] = mapped_column(Text)
    v3_user: Mapped[str | None] = mapped_column(String(100))
    v3_auth_protocol: Mapped[str | None] = mapped_column(String(10))  # SHA, SHA256, MD5, ...
    v3_auth_key_sealed: Mapped[str | None] = mapped_column(Text)
    v3_priv_protocol: Mapped[str | None] = mapped_column(String(10))  # AES, AES256, DES, ...
    v3_priv_key_sealed: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Polled by the on-site agent of this customer instead of the server.
    agent_customer_id: Mapped[int | None] = mapped_column(ForeignKey("core_partner.id", ondelete="SET NULL"))
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_ok_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_outcome: Mapped[str | None] = mapped_column(String(20))

    device: Mapped[Device] = relationship()

    __table_args__ = (
        CheckConstraint(_in("version", SNMP_VERSIONS), name="version_known"),
        CheckConstraint("port > 0 AND port < 65536", name="port_range"),
        CheckConstraint(f"last_outcome IS NULL OR {_in('last_outcome', POLL_OUTCOMES)}", name="last_outcome_known"),
    )

    def __str__(self) -> str:
        return self.device.serial if self.device else str(self.device_id)


class SnmpPoll(db.Model):
    """One SNMP poll of a device: its outcome, a message in plain words, the reading it gave, the raw answer."""

    __tablename__ = "metering_channels_snmp_poll"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    outcome: Mapped[str] = mapped_column(String(20))
    message: Mapped[str | None] = mapped_column(Text)
    reading_id: Mapped[int | None] = mapped_column(ForeignKey("metering_reading.id", ondelete="SET NULL"))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    device: Mapped[Device] = relationship()

    __table_args__ = (CheckConstraint(_in("outcome", POLL_OUTCOMES), name="outcome_known"),)

    def __str__(self) -> str:
        return f"{self.device.serial if self.device else self.device_id} {self.at:%Y-%m-%d %H:%M} {self.outcome}"
