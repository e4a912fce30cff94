"""Rentals tables: the device catalogue, devices and their installations, contracts with allowances, bands and lines."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import db, utcnow
from core.models import Partner

DEVICE_STATUSES = ("in_stock", "installed", "in_repair", "retired")
CONTRACT_STATES = ("draft", "active", "suspended", "ended")
TONER_COLOURS = ("black", "cyan", "magenta", "yellow")


class MeterType(db.Model):
    """A kind of counter a device can have (`bw`, `color`, `scan`, ...), with its label in each language."""

    __tablename__ = "rentals_meter_type"

    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    label_en: Mapped[str] = mapped_column(String(60))
    label_it: Mapped[str] = mapped_column(String(60))
    label_es: Mapped[str] = mapped_column(String(60))

    def label(self, language: str | None) -> str:
        return {"it": self.label_it, "es": self.label_es}.get(language or "en", self.label_en)

    def __str__(self) -> str:
        return f"{self.code} ({self.label_en})"


class Manufacturer(db.Model):
    __tablename__ = "rentals_manufacturer"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)

    def __str__(self) -> str:
        return self.name


model_meter = Table(
    "rentals_model_meter",
    db.metadata,
    Column("model_id", ForeignKey("rentals_device_model.id", ondelete="CASCADE"), primary_key=True),
    Column("meter_code", ForeignKey("rentals_meter_type.code"), primary_key=True),
)


class DeviceModel(db.Model):
    """A catalogue entry: make and model, the meters it counts and whether it prints in colour."""

    __tablename__ = "rentals_device_model"

    id: Mapped[int] = mapped_column(primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("rentals_manufacturer.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    color: Mapped[bool] = mapped_column(Boolean, default=False)
    paper_format: Mapped[str] = mapped_column(String(2), default="A4")

    manufacturer: Mapped[Manufacturer] = relationship()
    meters: Mapped[list[MeterType]] = relationship(secondary=model_meter, order_by=MeterType.code)
    consumables: Mapped[list[Consumable]] = relationship(
        back_populates="model", cascade="all, delete-orphan", order_by="Consumable.id"
    )

    __table_args__ = (
        UniqueConstraint("manufacturer_id", "name"),
        CheckConstraint("paper_format IN ('A4', 'A3')", name="paper_format_known"),
    )

    @property
    def meter_codes(self) -> list[str]:
        return [meter.code for meter in self.meters]

    def __str__(self) -> str:
        return f"{self.manufacturer} {self.name}"


class Consumable(db.Model):
    """A toner or drum of a model, with its rated yield in pages at 5% coverage."""

    __tablename__ = "rentals_consumable"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("rentals_device_model.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(60))
    colour: Mapped[str] = mapped_column(String(10), default="black")
    rated_yield: Mapped[int] = mapped_column(Integer)

    model: Mapped[DeviceModel] = relationship(back_populates="consumables")

    __table_args__ = (
        UniqueConstraint("model_id", "code"),
        CheckConstraint("rated_yield > 0", name="rated_yield_positive"),
        CheckConstraint("colour IN ('black', 'cyan', 'magenta', 'yellow')", name="colour_known"),
    )

    def __str__(self) -> str:
        return f"{self.code} ({self.colour}, {self.rated_yield})"


class Device(db.Model):
    """One machine, by serial number, and the customer site where it stands."""

    __tablename__ = "rentals_device"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    manufacturer_id: Mapped[int] = mapped_column(ForeignKey("rentals_manufacturer.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("rentals_device_model.id"), index=True)
    serial: Mapped[str] = mapped_column(String(60), index=True)
    asset_tag: Mapped[str | None] = mapped_column(String(60))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    status: Mapped[str] = mapped_column(String(12), default="in_stock")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("core_partner.id"), index=True)
    site: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    manufacturer: Mapped[Manufacturer] = relationship()
    model: Mapped[DeviceModel] = relationship()
    customer: Mapped[Partner | None] = relationship()
    installations: Mapped[list[Installation]] = relationship(
        back_populates="device", order_by="Installation.start_date.desc()", cascade="all, delete-orphan"
    )
    # The line of the contract the device is on now, for lists to load in one query (devices.open_line for writes).
    open_line: Mapped[ContractLine | None] = relationship(
        primaryjoin="and_(ContractLine.device_id == Device.id, ContractLine.end_date.is_(None))", viewonly=True
    )

    __table_args__ = (
        UniqueConstraint("manufacturer_id", "serial"),
        CheckConstraint("status IN ('in_stock', 'installed', 'in_repair', 'retired')", name="status_known"),
    )

    def __str__(self) -> str:
        return f"{self.model} #{self.serial}"


class Installation(db.Model):
    """A stay of a device at a customer site: from `start_date` to `end_date` (open while it stands there)."""

    __tablename__ = "rentals_installation"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id"), index=True)
    site: Mapped[str | None] = mapped_column(String(200))
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)

    device: Mapped[Device] = relationship(back_populates="installations")
    customer: Mapped[Partner] = relationship()

    __table_args__ = (CheckConstraint("end_date IS NULL OR end_date >= start_date", name="dates_ordered"),)


class Contract(db.Model):
    """A cost-per-copy contract with every term of the billing rules."""

    __tablename__ = "rentals_contract"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("core_partner.id"), index=True)
    state: Mapped[str] = mapped_column(String(10), default="draft", index=True)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)
    period_months: Mapped[int] = mapped_column(Integer, default=1)
    fee: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"))
    fee_timing: Mapped[str] = mapped_column(String(8), default="advance")
    grace_days: Mapped[int] = mapped_column(Integer, default=10)
    minimum_charge: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    escalation_percent: Mapped[Decimal] = mapped_column(Numeric(6, 3), default=Decimal("0"))
    estimate_missing: Mapped[bool] = mapped_column(Boolean, default=False)
    vat_rate: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("22"))
    # The VAT code billed (core.vat_codes); its rate is copied to vat_rate. None: the default code of vat_rate.
    vat_code: Mapped[str | None] = mapped_column(ForeignKey("core_vat_code.code"))
    # Public procurement references printed on e-invoices (FatturaPA DatiContratto / DatiOrdineAcquisto).
    cig: Mapped[str | None] = mapped_column(String(10))
    cup: Mapped[str | None] = mapped_column(String(15))
    order_kind: Mapped[str] = mapped_column(String(8), default="contract", server_default="contract")
    order_reference: Mapped[str | None] = mapped_column(String(20))
    order_date: Mapped[dt.date | None] = mapped_column(Date)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False)
    renewal_months: Mapped[int] = mapped_column(Integer, default=12)
    notice_days: Mapped[int] = mapped_column(Integer, default=90)
    invoice_notes: Mapped[str | None] = mapped_column(Text)
    # Toner shipped to the contract's devices is not billed when included (docs/inventory.md); the coverage in percent
    # the pages are assumed to print at, for the consumption check.
    consumables_included: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    assumed_coverage: Mapped[Decimal] = mapped_column(Numeric(5, 2), default=Decimal("5"), server_default="5")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    customer: Mapped[Partner] = relationship()
    allowances: Mapped[list[Allowance]] = relationship(
        back_populates="contract", cascade="all, delete-orphan", order_by="Allowance.meter"
    )
    lines: Mapped[list[ContractLine]] = relationship(
        back_populates="contract", cascade="all, delete-orphan", order_by="ContractLine.start_date, ContractLine.id"
    )

    __table_args__ = (
        CheckConstraint("state IN ('draft', 'active', 'suspended', 'ended')", name="state_known"),
        CheckConstraint("period_months IN (1, 2, 3, 6, 12)", name="period_months_known"),
        CheckConstraint("fee_timing IN ('advance', 'arrears')", name="fee_timing_known"),
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="dates_ordered"),
        CheckConstraint("fee >= 0", name="fee_not_negative"),
        CheckConstraint("grace_days >= 0", name="grace_days_not_negative"),
        CheckConstraint("minimum_charge IS NULL OR minimum_charge >= 0", name="minimum_not_negative"),
        CheckConstraint("escalation_percent >= 0", name="escalation_not_negative"),
        CheckConstraint("vat_rate >= 0", name="vat_rate_not_negative"),
        CheckConstraint("renewal_months > 0", name="renewal_months_positive"),
        CheckConstraint("notice_days >= 0", name="notice_days_not_negative"),
        CheckConstraint("assumed_coverage > 0", name="assumed_coverage_positive"),
        CheckConstraint("order_kind IN ('contract', 'order')", name="order_kind_known"),
    )

    @property
    def open_lines(self) -> list[ContractLine]:
        return [line for line in self.lines if line.end_date is None]

    def __str__(self) -> str:
        return self.number


class Allowance(db.Model):
    """Included pages per period for one meter, pooled over the contract's devices or per device, and its bands."""

    __tablename__ = "rentals_allowance"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("rentals_contract.id", ondelete="CASCADE"), index=True)
    meter: Mapped[str] = mapped_column(ForeignKey("rentals_meter_type.code"))
    included: Mapped[int] = mapped_column(Integer, default=0)
    pooled: Mapped[bool] = mapped_column(Boolean, default=False)

    contract: Mapped[Contract] = relationship(back_populates="allowances")
    bands: Mapped[list[PriceBand]] = relationship(
        back_populates="allowance", cascade="all, delete-orphan", order_by="PriceBand.position"
    )

    __table_args__ = (
        UniqueConstraint("contract_id", "meter"),
        CheckConstraint("included >= 0", name="included_not_negative"),
    )

    @property
    def band_pairs(self) -> list[tuple[int | None, Decimal]]:
        return [(band.up_to, band.price) for band in self.bands]


class PriceBand(db.Model):
    """Overage pages up to `up_to` (cumulative; none for the last band) cost `price` each."""

    __tablename__ = "rentals_price_band"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    allowance_id: Mapped[int] = mapped_column(ForeignKey("rentals_allowance.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    up_to: Mapped[int | None] = mapped_column(BigInteger)
    price: Mapped[Decimal] = mapped_column(Numeric(12, 6))

    allowance: Mapped[Allowance] = relationship(back_populates="bands")

    __table_args__ = (
        UniqueConstraint("allowance_id", "position"),
        CheckConstraint("price >= 0", name="price_not_negative"),
        CheckConstraint("up_to IS NULL OR up_to > 0", name="up_to_positive"),
    )


class ContractLine(db.Model):
    """A device on a contract: it joins on `start_date` with its counters and leaves on `end_date` (its last day)."""

    __tablename__ = "rentals_contract_line"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("rentals_contract.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("rentals_device.id"), index=True)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date | None] = mapped_column(Date)

    contract: Mapped[Contract] = relationship(back_populates="lines")
    device: Mapped[Device] = relationship()
    counters: Mapped[list[LineCounter]] = relationship(
        back_populates="line", cascade="all, delete-orphan", order_by="LineCounter.meter"
    )

    __table_args__ = (
        CheckConstraint("end_date IS NULL OR end_date >= start_date", name="dates_ordered"),
        # A device is on at most one contract at a time: one open line per device.
        Index(
            "uq_rentals_contract_line_open_device",
            "device_id",
            unique=True,
            sqlite_where=db.text("end_date IS NULL"),
            postgresql_where=db.text("end_date IS NULL"),
        ),
    )

    @property
    def start_counters(self) -> dict[str, int]:
        return {counter.meter: counter.start_value for counter in self.counters}

    @property
    def end_counters(self) -> dict[str, int] | None:
        if self.end_date is None:
            return None
        return {counter.meter: counter.end_value for counter in self.counters}


class LineCounter(db.Model):
    """A meter's counter when the device joined the contract, and when it left."""

    __tablename__ = "rentals_line_counter"
    __audited__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("rentals_contract_line.id", ondelete="CASCADE"), index=True)
    meter: Mapped[str] = mapped_column(ForeignKey("rentals_meter_type.code"))
    start_value: Mapped[int] = mapped_column(BigInteger)
    end_value: Mapped[int | None] = mapped_column(BigInteger)

    line: Mapped[ContractLine] = relationship(back_populates="counters")

    __table_args__ = (
        UniqueConstraint("line_id", "meter"),
        CheckConstraint("start_value >= 0", name="start_value_not_negative"),
        CheckConstraint("end_value IS NULL OR end_value >= 0", name="end_value_not_negative"),
    )
