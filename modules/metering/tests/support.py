"""Helpers for the metering tests: devices and contracts made as rentals makes them, readings at a date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.clock import local_date
from core.db import db
from core.models import Partner
from modules.metering.readings import record_reading
from modules.rentals.contracts import create_contract
from modules.rentals.devices import create_device
from modules.rentals.models import Contract, Device

NOON = dt.time(12)


def customer(name: str = "Studio Bianchi") -> Partner:
    partner = Partner(name=name, is_customer=True)
    db.session.add(partner)
    db.session.flush()
    return partner


def device(serial: str, meters: tuple[str, ...] = ("bw", "color"), model: str | None = None) -> Device:
    model = model or ("ECOSYS M5526cdw" if "color" in meters else "ECOSYS P2040dn")
    return create_device({"serial": serial, "manufacturer": "Kyocera", "model": model, "meters": list(meters)})


def contract(customer_id: int, devices: list[tuple[Device, dict[str, int]]], **terms: Any) -> Contract:
    """A contract (example A's terms unless overridden) with `devices` joining on its start date."""
    data = {
        "customer_id": customer_id,
        "start_date": "2026-01-01",
        "period_months": 1,
        "fee": "50.00",
        "grace_days": 10,
        "allowances": [
            {"meter": "bw", "included": 1000, "bands": [{"up_to": None, "price": "0.012"}]},
            {"meter": "color", "included": 200, "bands": [{"up_to": None, "price": "0.09"}]},
        ],
        "devices": [{"device_id": d.id, "counters": counters} for d, counters in devices],
        **terms,
    }
    return create_contract(data)


def at(day: str, time: dt.time = NOON) -> dt.datetime:
    """An aware instant on `day` (UTC noon by default)."""
    return dt.datetime.combine(dt.date.fromisoformat(day), time, dt.UTC)


def read(device_: Device, day: str, source: str = "staff", **counters: int):
    """Record an accepted (or held) reading at noon UTC of `day`, as staff would."""
    return record_reading(device_.id, at(day), counters, source=source, now=at("2030-01-01")).reading


def local_day(reading) -> dt.date:
    return local_date(reading.taken_at)
