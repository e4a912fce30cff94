"""Which readings a customer sees: those taken while the device was on one of its contracts (its tenure).

A device moves from customer to customer; its readings do not move with it. Every customer-facing query of readings
(API, portal pages) is narrowed here, through core's `scoped_by`, so no route has to remember it. Staff see all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import joinedload, selectinload

from core.auth.scoping import scoped_by
from core.db import db
from modules.metering.history import Stay, stays
from modules.metering.models import Reading
from modules.rentals.models import Device, DeviceModel

# The end of a stay that has not ended.
FOREVER = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


def tenure(
    customer_id: int, device_ids: list[int] | None = None, customer_stays: list[Stay] | None = None
) -> sa.ColumnElement[bool]:
    """The condition on Reading of the customer's tenure: the device, and the time it was on the customer's contract.

    `customer_stays`: the customer's stays when the caller has read them already (`stays(customer_id)`).

    The stays go in as a VALUES list (a CTE) rather than one OR term each: SQLite refuses expressions nested deeper than
    1000, which a customer with many contract lines would reach.
    """
    if customer_stays is None:
        customer_stays = stays(customer_id, device_ids)
    elif device_ids is not None:
        customer_stays = [stay for stay in customer_stays if stay.device_id in device_ids]
    rows = [(stay.device_id, stay.start_at, stay.end_at or FOREVER) for stay in customer_stays]
    if not rows:
        return sa.false()
    windows = (
        sa.values(
            sa.column("device_id", sa.Integer),
            sa.column("start_at", sa.DateTime(timezone=True)),
            sa.column("end_at", sa.DateTime(timezone=True)),
            name="metering_tenure",
        )
        .data(rows)
        .cte("metering_tenure")
    )
    return sa.exists().where(
        windows.c.device_id == Reading.device_id,
        Reading.taken_at >= windows.c.start_at,
        Reading.taken_at < windows.c.end_at,
    )


def visible_readings(query: Any, user: Any = None) -> Any:
    """`query` (a select of Reading) narrowed to what `user` may see (default: the logged-in user)."""
    return scoped_by(query, tenure, user)


def _with_counters_and_device(query: Any) -> Any:
    """`query` (a select of Reading) loading the counters and the device, model and make the pages show with each
    reading: the device in the same statement, the counters in one more, not once per reading."""
    return query.options(
        selectinload(Reading.values),
        joinedload(Reading.device).joinedload(Device.model).joinedload(DeviceModel.manufacturer),
    )


def customer_readings(
    customer_id: int,
    device_ids: list[int] | None = None,
    statuses: Iterable[str] | None = None,
    limit: int | None = None,
    customer_stays: list[Stay] | None = None,
) -> list[Reading]:
    """The readings of the customer's tenure, newest first, with the counters and device the pages show."""
    query = _with_counters_and_device(sa.select(Reading).where(tenure(customer_id, device_ids, customer_stays)))
    if statuses is not None:
        query = query.where(Reading.status.in_(list(statuses)))
    query = query.order_by(Reading.taken_at.desc(), Reading.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query))


def readings_by_id(customer_id: int, ids: Iterable[int]) -> list[Reading]:
    """The readings with these ids that belong to the customer's tenure, in id order, with what the pages show."""
    query = sa.select(Reading).where(Reading.id.in_(list(ids)), tenure(customer_id)).order_by(Reading.id)
    return list(db.session.scalars(_with_counters_and_device(query)))
