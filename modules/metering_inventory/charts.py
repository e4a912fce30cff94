"""The chart of pages versus cartridges over a window, as inline SVG geometry (no script: CSP and e-mail safe).

Two lines in cartridges: those the pages printed so far need (E over time, from the readings) and those shipped so
far (S, a step at each shipment). Over-consumption shows the shipped line running far above the other.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from modules.metering_inventory.consumption import RATED_COVERAGE, CheckRow

WIDTH, HEIGHT = 360, 150
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 8, 22


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    needed: str  # SVG polyline points
    shipped: str
    y_ticks: list[tuple[float, str]]  # (y, label)
    x_ticks: list[tuple[float, dt.date]]  # (x, first day of a month)
    top: Decimal


def _nice_top(value: Decimal) -> Decimal:
    # Multiples of 4 above 2, so the quarter lines fall on whole cartridges.
    for step in (1, 2, 4, 8, 12, 20, 40, 60, 100, 200, 400, 600, 1000):
        if value <= step:
            return Decimal(step)
    return value.to_integral_value()


def chart(row: CheckRow, width: int = WIDTH, height: int = HEIGHT) -> Chart | None:
    """The chart of `row` (None without a yield: cartridges cannot be counted)."""
    if row.yield_pages is None or row.yield_pages == 0:
        return None
    span = max((row.end - row.start).days, 1)
    per_page = Decimal(row.coverage) / RATED_COVERAGE / Decimal(row.yield_pages)
    needed = [(row.start, Decimal(0))] + [(day, Decimal(pages) * per_page) for day, pages in row.series]
    shipped = [(row.start, Decimal(0))]
    total = Decimal(0)
    for cartridge in row.cartridges:
        shipped.append((cartridge.ship_date, total))
        total += Decimal(cartridge.quantity)
        shipped.append((cartridge.ship_date, total))
    shipped.append((row.end, total))
    top = _nice_top(max([value for _d, value in needed + shipped] + [Decimal(1)]))
    inner_w, inner_h = width - LEFT - RIGHT, height - TOP - BOTTOM

    def x(day: dt.date) -> float:
        return round(LEFT + inner_w * min(max((day - row.start).days, 0), span) / span, 1)

    def y(value: Decimal) -> float:
        return round(TOP + inner_h * float(1 - value / top), 1)

    def points(series: list[tuple[dt.date, Decimal]]) -> str:
        return " ".join(f"{x(day)},{y(value)}" for day, value in series)

    months = []
    day = dt.date(row.start.year, row.start.month, 1)
    while day <= row.end:
        if day >= row.start:
            months.append((x(day), day))
        day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
    step = max(1, len(months) // 6)
    y_ticks = [(y(top * k / 4), f"{top * k / 4:g}") for k in range(5)]
    return Chart(width, height, points(needed), points(shipped), y_ticks, months[::step], top)
