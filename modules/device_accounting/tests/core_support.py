"""Helpers for the core tests of device accounting: customers with installed devices, print users, prices, jobs."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from core.db import db
from core.models import Partner
from modules.device_accounting import quotas
from modules.device_accounting.cost_centers import save_cost_center
from modules.device_accounting.models import Balance, CostCenter, LedgerEntry, PrintUser, Quota, Transaction
from modules.device_accounting.pricing import save_price_list
from modules.device_accounting.users import save_user
from modules.rentals.devices import create_device
from modules.rentals.models import Device, Installation


def customer(name: str = "Studio Bianchi") -> Partner:
    partner = Partner(name=name, is_customer=True, language="it")
    db.session.add(partner)
    db.session.flush()
    return partner


def device(serial: str, at: Partner | None = None, since: str = "2025-01-01") -> Device:
    """A colour MFP, installed at `at` from `since` (an open installation)."""
    machine = create_device(
        {"serial": serial, "manufacturer": "Kyocera", "model": "TASKalfa 2554ci", "meters": ["bw", "color"]}
    )
    if at is not None:
        machine.customer_id = at.id
        machine.status = "installed"
        db.session.add(Installation(device=machine, customer_id=at.id, start_date=dt.date.fromisoformat(since)))
        db.session.flush()
    return machine


def cost_center(owner: Partner, name: str, **data: Any) -> CostCenter:
    return save_cost_center(owner.id, {"name": name, **data})


def print_user(owner: Partner, username: str, **data: Any) -> PrintUser:
    return save_user(owner.id, {"username": username, "full_name": username.title(), **data})


def prices(customer_id: int | None, entries: list[tuple], valid_from: str = "2025-01-01", name: str = "Listino"):
    """A price list from (function, colour, size, duplex, price[, fee]) tuples."""
    rows = []
    for entry in entries:
        function, colour, size, duplex, price, *fee = entry
        row = {"function": function, "colour": colour, "paper_size": size, "duplex": duplex, "price_per_side": price}
        if fee:
            row["job_fee"] = fee[0]
        rows.append(row)
    return save_price_list(customer_id, {"name": name, "valid_from": valid_from, "entries": rows})


def simple_prices(bw: str = "0.01", color: str = "0.05", customer_id: int | None = None):
    """The dealer's list: print and copy at `bw` and `color` a side, whatever the size and duplex."""
    entries = [(f, c, "any", "any", p) for f in ("print", "copy") for c, p in (("bw", bw), ("color", color))]
    return prices(customer_id, entries)


def quota(holder: PrintUser | CostCenter, amount: str = "20.00", **data: Any) -> Quota:
    key = "user_id" if isinstance(holder, PrintUser) else "cost_center_id"
    return quotas.save_quota(holder.customer_id, {key: holder.id, "amount": amount, **data})


def at(moment: str) -> dt.datetime:
    """An aware instant from ISO text (an offset required)."""
    value = dt.datetime.fromisoformat(moment)
    assert value.tzinfo is not None
    return value


def job(machine: Device, seq: int, user: PrintUser | None = None, **fields: Any) -> dict[str, Any]:
    """What a device reports of a finished job: 10 black-and-white A4 sides printed at noon on 2 March 2026."""
    data = {
        "device_id": machine.id,
        "device_seq": seq,
        "user_id": user.id if user else None,
        "function": "print",
        "sides_bw": 10,
        "sides_color": 0,
        "paper_size": "A4",
        "duplex": False,
        "status": "done",
        "started_at": "2026-03-02T12:00:00+01:00",
        "ended_at": "2026-03-02T12:01:00+01:00",
    }
    data.update(fields)
    return data


def balance_of(holder_quota: Quota) -> Balance:
    return db.session.scalars(
        sa.select(Balance).where(Balance.quota_id == holder_quota.id).execution_options(populate_existing=True)
    ).one()


def ledger(holder_quota: Quota) -> list[tuple[str, Decimal]]:
    balance = balance_of(holder_quota)
    return [
        (entry.kind, entry.amount)
        for entry in db.session.scalars(
            sa.select(LedgerEntry).where(LedgerEntry.balance_id == balance.id).order_by(LedgerEntry.id)
        )
    ]


def transactions() -> list[Transaction]:
    return list(db.session.scalars(sa.select(Transaction).order_by(Transaction.id)))
