"""Helpers for the report and chargeback tests: customers, devices, print users, cost centers, stored transactions."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from core.db import db
from core.models import Partner
from modules.device_accounting import rollups
from modules.device_accounting.models import CostCenter, PrintUser, Refund, Transaction
from modules.rentals.devices import create_device
from modules.rentals.models import Device

_seq = itertools.count(1)


def customer(name: str = "Studio Bianchi") -> Partner:
    partner = Partner(name=name, is_customer=True)
    db.session.add(partner)
    db.session.flush()
    return partner


def device(serial: str, customer_id: int | None = None, model: str = "ECOSYS M5526cdw") -> Device:
    data = {"serial": serial, "manufacturer": "Kyocera", "model": model, "meters": ["bw", "color"]}
    if customer_id is not None:
        data.update(customer_id=customer_id, status="installed")
    return create_device(data)


def cost_center(customer_id: int, name: str, parent: CostCenter | None = None) -> CostCenter:
    center = CostCenter(customer_id=customer_id, name=name, parent=parent)
    db.session.add(center)
    db.session.flush()
    return center


def print_user(customer_id: int, username: str, full_name: str = "", center: CostCenter | None = None) -> PrintUser:
    user = PrintUser(
        customer_id=customer_id,
        username=username,
        username_key=username.lower(),
        full_name=full_name,
        default_cost_center=center,
    )
    db.session.add(user)
    db.session.flush()
    return user


def job(
    customer_id: int,
    device_id: int,
    ended_at: dt.datetime,
    *,
    user_id: int | None = None,
    cost_center_id: int | None = None,
    function: str = "print",
    sides_bw: int = 0,
    sides_color: int = 0,
    sheets: int | None = None,
    paper_size: str = "A4",
    duplex: bool = False,
    cost: str | Decimal = "0",
) -> Transaction:
    """A stored transaction counted in the rollups, as operations.record_transaction stores one."""
    tx = Transaction(
        customer_id=customer_id,
        device_id=device_id,
        device_seq=next(_seq),
        user_id=user_id,
        cost_center_id=cost_center_id,
        function=function,
        sides_bw=sides_bw,
        sides_color=sides_color,
        sheets=(sides_bw + sides_color) if sheets is None else sheets,
        paper_size=paper_size,
        duplex=duplex,
        started_at=ended_at - dt.timedelta(seconds=30),
        ended_at=ended_at,
        cost=Decimal(cost),
        refunded=Decimal("0"),
    )
    db.session.add(tx)
    db.session.flush()
    rollups.add_transaction(tx)
    return tx


def refund(tx: Transaction, amount: str | Decimal, reason: str = "paper jam") -> Refund:
    """A refund recorded as operations.refund records one (the transaction's refunded total, the rollup)."""
    amount = Decimal(amount)
    record = Refund(transaction_id=tx.id, amount=amount, reason=reason)
    tx.refunded = (tx.refunded or Decimal("0")) + amount
    db.session.add(record)
    db.session.flush()
    rollups.add_refund(tx, amount)
    return record


def at(day: str, hour: int = 10, minute: int = 0) -> dt.datetime:
    """An aware UTC instant on `day`."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour, minute), dt.UTC)


def contract(customer_id: int, devices: list[Device], counters: dict[str, int] | None = None, **terms):
    """An active monthly contract from 1 January 2026 (bw 1000 pages included at 0.012, colour 200 at 0.09)."""
    from modules.rentals.contracts import create_contract

    data = {
        "customer_id": customer_id,
        "start_date": "2026-01-01",
        "period_months": 1,
        "fee": "50.00",
        "allowances": [
            {"meter": "bw", "included": 1000, "bands": [{"up_to": None, "price": "0.012"}]},
            {"meter": "color", "included": 200, "bands": [{"up_to": None, "price": "0.09"}]},
        ],
        "devices": [{"device_id": d.id, "counters": counters or {"bw": 10_000, "color": 2_000}} for d in devices],
        **terms,
    }
    return create_contract(data)
