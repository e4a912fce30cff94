"""Device collector tables: the device CA, the server certificate, enrolled devices, their certificates and codes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db, utcnow
from core.models import User
from modules.rentals.models import Device

DEFAULT_LOGIN_METHODS = "card,pin,password"
LOGIN_METHODS = ("card", "pin", "password")


class CollectorCA(db.Model):
    """The installation's device CA (one row, id 1): its certificate and its private key sealed (core.crypto.seal)."""

    __tablename__ = "device_collector_ca"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    certificate_pem: Mapped[str] = mapped_column(Text)
    key_sealed: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 hex of the certificate's DER
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    def __str__(self) -> str:
        return self.fingerprint


class ServerCertificate(db.Model):
    """The collector's TLS server certificate for a set of host names, issued by the device CA; every instance
    serving those names uses the newest one."""

    __tablename__ = "device_collector_server_certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    hostnames: Mapped[str] = mapped_column(String(1000), index=True)  # sorted, comma-joined
    certificate_pem: Mapped[str] = mapped_column(Text)
    key_sealed: Mapped[str] = mapped_column(Text)
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def __str__(self) -> str:
        return self.hostnames


class CollectorDevice(db.Model):
    """A rentals device enrolled with the collector: its state, what it last told us, and its settings."""

    __tablename__ = "device_collector_device"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), unique=True)
    enrolled_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(200))
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    last_address: Mapped[str | None] = mapped_column(String(60))
    firmware: Mapped[str | None] = mapped_column(String(100))
    protocol_version: Mapped[int | None] = mapped_column(Integer)
    capabilities: Mapped[str | None] = mapped_column(Text)  # a JSON list of strings
    login_methods: Mapped[str] = mapped_column(String(60), default=DEFAULT_LOGIN_METHODS)  # comma-joined
    offline_max_jobs: Mapped[int] = mapped_column(Integer, default=10000)
    offline_max_hours: Mapped[int] = mapped_column(Integer, default=72)

    device: Mapped[Device] = relationship()
    revoked_by: Mapped[User | None] = relationship()
    certificates: Mapped[list[DeviceCertificate]] = relationship(
        back_populates="collector_device", order_by="DeviceCertificate.issued_at.desc()"
    )

    __table_args__ = (
        CheckConstraint("offline_max_jobs >= 0", name="offline_max_jobs_positive"),
        CheckConstraint("offline_max_hours >= 0", name="offline_max_hours_positive"),
    )

    def __str__(self) -> str:
        return str(self.device)


class DeviceCertificate(db.Model):
    """A client certificate issued to an enrolled device, found by the SHA-256 of its DER."""

    __tablename__ = "device_collector_certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    collector_device_id: Mapped[int] = mapped_column(
        ForeignKey("device_collector_device.id", ondelete="CASCADE"), index=True
    )
    serial: Mapped[str] = mapped_column(String(40))  # the certificate's serial number, hex
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    collector_device: Mapped[CollectorDevice] = relationship(back_populates="certificates")

    def __str__(self) -> str:
        return self.serial


class EnrolmentCode(db.Model):
    """A one-time enrolment code for a device: only its keyed digest is kept, never the code."""

    __tablename__ = "device_collector_enrolment_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), index=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    used_address: Mapped[str | None] = mapped_column(String(60))

    device: Mapped[Device] = relationship()
    created_by: Mapped[User | None] = relationship()

    def __str__(self) -> str:
        return str(self.device)


class RefusedTransaction(db.Model):
    """A transaction a device sent that failed the domain's checks, kept for staff (the device was told and dropped
    it). The payload never holds the document name."""

    __tablename__ = "device_collector_refused_transaction"

    id: Mapped[int] = mapped_column(primary_key=True)
    collector_device_id: Mapped[int] = mapped_column(
        ForeignKey("device_collector_device.id", ondelete="CASCADE"), index=True
    )
    device_seq: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    errors: Mapped[str] = mapped_column(Text)  # JSON object: field path -> problem
    payload: Mapped[str] = mapped_column(Text)  # JSON object, without document_name

    collector_device: Mapped[CollectorDevice] = relationship()

    __table_args__ = (UniqueConstraint("collector_device_id", "device_seq"),)

    def __str__(self) -> str:
        return f"{self.collector_device_id}#{self.device_seq}"
