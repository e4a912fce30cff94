"""Registers FakeUsageSource: what it bills is whatever the test put in LINES, MISSING and FAILING."""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.context import ModuleContext
from core.extension_points import BILLABLE_SOURCE, BillableLine

# customer id -> lines (each with `available_from`: the source offers it from that as_of on)
LINES: dict[int, list[tuple[dt.date, BillableLine]]] = {}
MISSING: dict[int, list[dict[str, Any]]] = {}
FAILING: set[int] = set()


def reset() -> None:
    LINES.clear()
    MISSING.clear()
    FAILING.clear()


class FakeUsageSource:
    name = "fake_usage"

    def billable_lines(self, customer_id: int, as_of: dt.date) -> list[BillableLine]:
        if customer_id in FAILING:
            raise RuntimeError("the usage service is down")
        return [line for available, line in LINES.get(customer_id, []) if available <= as_of]

    def missing_readings(self, customer_id: int, as_of: dt.date) -> list[dict[str, Any]]:
        return list(MISSING.get(customer_id, []))


def setup(ctx: ModuleContext) -> None:
    ctx.register(BILLABLE_SOURCE, FakeUsageSource())
