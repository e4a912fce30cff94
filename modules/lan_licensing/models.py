"""The installation (its id, own key, latest time seen), the installed licence files, readings counted per year."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import db, utcnow


class LicenceInstallation(db.Model):
    """The one row describing this installation; its creation starts the evaluation period."""

    __tablename__ = "lan_licensing_installation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    installation_id: Mapped[str] = mapped_column(String(36), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The latest time this installation has seen: a clock set back behind it is noticed.
    latest_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The installation's own Ed25519 key, which signs usage reports (private part sealed with core.crypto).
    private_key: Mapped[str] = mapped_column(Text)
    public_key: Mapped[str] = mapped_column(String(64))


class InstalledLicence(db.Model):
    """A licence file as installed; the latest row is the licence in force. Older ones stay as history."""

    __tablename__ = "lan_licensing_licence"

    id: Mapped[int] = mapped_column(primary_key=True)
    licence_id: Mapped[str] = mapped_column(String(80), index=True)
    text: Mapped[str] = mapped_column(Text)
    installed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    installed_by: Mapped[int | None] = mapped_column(ForeignKey("core_user.id", ondelete="SET NULL"))


class ReadingCount(db.Model):
    """Accepted readings (every channel but estimates) of one licence year."""

    __tablename__ = "lan_licensing_reading_count"

    licence_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    year_start: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    readings: Mapped[int] = mapped_column(BigInteger, default=0)
