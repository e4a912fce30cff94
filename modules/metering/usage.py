"""Usage for billing (billing-rules.md, "Usage"): closing readings, high-water marks, replacements and estimates.

Plain functions over plain data (counter points, replacement events, a contract line's counters, the closings
already billed, periods from `modules.rentals.periods`); no database, no app. Every value is a whole number of pages.

Choices the rules leave open:
- Counters are compared on one *cumulative* scale: after a replacement, a counter `v` counts as
  `v - new_start + (cumulative value of the old meter's final)`, so usage across it is
  `(old_final - previous) + (current - new_start)` and the high-water mark continues from the new start value.
  A reading taken on a replacement's date belongs to the new meter.
- "Already billed" is state: a period whose lines invoicing took keeps the closing it was billed with (`Billed`),
  whatever readings arrive later; the next period starts after it. A period not billed (yet) is closed by the rules
  on every run: the latest reading up to its end + grace days (and `as_of`) taken after the previous closing.
- A period with no closing reading of its own, once its grace has passed and a later reading (or a later billed
  period) exists, is closed by linear interpolation at its last day between the previous closing and that later
  point (whole pages, HALF_UP; readings count at the end of their day, the installation counter at the start of its
  day); so a missing month is billed, with its own included pages, as soon as anything later is known. Until then it
  is *missing*, and so is every later period of that device and meter not yet billed.
- A period not billed that lies before a billed one ends where that billed period started (its recorded opening),
  so cancelling an older draft bills again exactly the pages it held.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from modules.rentals.periods import Period, device_active_days

ESTIMATE_WINDOW_DAYS = 90
_END_OF_DAY = dt.datetime.max.time()


@dataclass(frozen=True)
class Point:
    """A counter value of one meter: `on` is the dealer's calendar day, `at` orders points of the same day."""

    on: dt.date
    value: int
    estimated: bool = False
    at: dt.datetime | None = None
    reading_id: int | None = None

    @property
    def order(self) -> tuple[dt.date, dt.datetime]:
        return self.on, self.at or dt.datetime.combine(self.on, dt.time(12), dt.UTC)


@dataclass(frozen=True)
class Replacement:
    """A meter replaced or reset on `on`: the old meter ended at `old_final`, the new one starts at `new_start`."""

    on: dt.date
    old_final: int
    new_start: int


@dataclass(frozen=True)
class Stay:
    """A device's stay on a contract for one meter: joined on `start` at `start_value`, left on `end` at `end_value`."""

    start: dt.date
    start_value: int
    end: dt.date | None = None
    end_value: int | None = None


@dataclass(frozen=True)
class Billed:
    """How a period of one meter of one device was billed: the high-water mark before it (`opening`, from the
    closing dated `opening_on`) and its closing (`closing`, dated `closing_on`, counter `counter`), both cumulative."""

    opening: int
    opening_on: dt.date
    closing: int
    closing_on: dt.date
    counter: int
    reading_id: int | None = None


@dataclass(frozen=True)
class PeriodUsage:
    """One period's usage of one meter of one device; `usage` is None while the period is missing its reading.

    `opening`/`closing` are the counters shown on the invoice; `high_water`/`closing_value` the cumulative values
    billing compares (the high-water mark before the period, the closing).
    """

    period: Period
    status: str  # billed, closed, final (the device left), interpolated, missing
    opening: int
    closing: int | None
    closing_on: dt.date | None
    estimated: bool
    usage: int | None
    high_water: int = 0
    high_water_on: dt.date | None = None
    closing_value: int | None = None
    reading_id: int | None = None

    @property
    def missing(self) -> bool:
        return self.usage is None

    def as_billed(self) -> Billed:
        """What to record once this period's lines are billed."""
        return Billed(
            self.high_water, self.high_water_on, self.closing_value, self.closing_on, self.closing, self.reading_id
        )


class Scale:
    """Maps a meter's counter values to the cumulative scale across its replacements."""

    def __init__(self, replacements: list[Replacement]) -> None:
        self.steps: list[tuple[dt.date, int, int]] = []
        base, previous_start = 0, 0
        for event in sorted(replacements, key=lambda event: event.on):
            base += event.old_final - previous_start
            self.steps.append((event.on, base, event.new_start))
            previous_start = event.new_start

    def _step(self, on: dt.date) -> tuple[int, int]:
        base, start = 0, 0
        for day, step_base, new_start in self.steps:
            if day <= on:
                base, start = step_base, new_start
        return base, start

    def cumulative(self, value: int, on: dt.date) -> int:
        base, start = self._step(on)
        return value - start + base

    def counter(self, cumulative: int, on: dt.date) -> int:
        base, start = self._step(on)
        return cumulative - base + start


def round_ratio(numerator: int, denominator: int) -> int:
    """`numerator / denominator` (denominator > 0) to a whole number, halves up (towards +infinity), exactly."""
    return (2 * numerator + denominator) // (2 * denominator)


def _end_of(day: dt.date) -> tuple[dt.date, dt.datetime]:
    return day, dt.datetime.combine(day, _END_OF_DAY, dt.UTC)


def meter_usage(
    periods: list[Period],
    stay: Stay,
    points: list[Point],
    replacements: list[Replacement],
    grace_days: int,
    as_of: dt.date,
    billed: dict[int, Billed] | None = None,
) -> list[PeriodUsage]:
    """Billable usage of one meter of one device in each period it is on the contract, in period order.

    `periods` are the contract's periods to look at (normally those ended by `as_of`); points dated after `as_of`,
    before the device joined or after it left are ignored. `billed` maps a period index to how it was billed (for
    this stay); those periods keep that closing, and the others are closed around them.
    """
    billed = billed or {}
    scale = Scale(replacements)
    usable = sorted(
        (p for p in points if stay.start <= p.on <= as_of and (stay.end is None or p.on <= stay.end) and p.value >= 0),
        key=lambda p: p.order,
    )
    by_reading = {p.reading_id: p for p in points if p.reading_id is not None}
    high_water = scale.cumulative(stay.start_value, stay.start)
    previous = Point(stay.start, stay.start_value)
    previous_cumulative = high_water
    after: tuple[dt.date, dt.datetime] | None = None  # a closing reading must be later than the previous closing
    # Readings count as read at the end of their day; the installation counter at the start of its day.
    previous_day = stay.start - dt.timedelta(days=1)
    results: list[PeriodUsage] = []
    stuck = False
    for period in sorted(periods, key=lambda p: p.index):
        if device_active_days(period, stay.start, stay.end) == 0:
            continue
        opening = previous.value
        leaves_here = stay.end is not None and period.start <= stay.end <= period.end and stay.end_value is not None
        record = None if leaves_here else billed.get(period.index)
        if record is not None:
            point = by_reading.get(record.reading_id)
            closing = Point(record.closing_on, record.counter, point.estimated if point else False)
            results.append(
                PeriodUsage(
                    period,
                    "billed",
                    opening,
                    record.counter,
                    record.closing_on,
                    closing.estimated,
                    max(0, record.closing - record.opening),
                    record.opening,
                    record.opening_on,
                    record.closing,
                    record.reading_id,
                )
            )
            high_water = max(high_water, record.opening, record.closing)
            previous, previous_cumulative, previous_day = closing, record.closing, record.closing_on
            after = point.order if point else _end_of(record.closing_on)
            stuck = False
            continue
        if stuck:
            results.append(PeriodUsage(period, "missing", opening, None, None, False, None))
            continue
        following = min((index for index in billed if index > period.index), default=None)
        cap = billed[following] if following is not None else None
        cap_point = Point(cap.opening_on, scale.counter(cap.opening, cap.opening_on)) if cap else None
        if leaves_here:
            closing, status = Point(stay.end, stay.end_value), "final"
        elif cap_point is not None and following == period.index + 1:
            closing, status = cap_point, "closed"
        else:
            cutoff = period.end + dt.timedelta(days=grace_days)
            if stay.end is not None:
                cutoff = min(cutoff, stay.end)
            fresh = [p for p in usable if after is None or p.order > after]
            window = [p for p in fresh if p.on <= cutoff]
            grace_passed = cutoff <= as_of
            if window:
                closing, status = window[-1], "closed"
            else:
                later = [p for p in fresh if p.on > cutoff][:1] + ([cap_point] if cap_point else [])
                if not later or not grace_passed:
                    stuck = True
                    results.append(PeriodUsage(period, "missing", opening, None, None, False, None))
                    continue
                target = min(later, key=lambda p: p.order)
                target_cumulative = scale.cumulative(target.value, target.on)
                span = (target.on - previous_day).days
                share = (period.end - previous_day).days if span > 0 else 0
                interpolated = previous_cumulative + round_ratio(
                    (target_cumulative - previous_cumulative) * share, max(span, 1)
                )
                closing = Point(period.end, scale.counter(interpolated, period.end))
                status = "interpolated"
        closing_cumulative = scale.cumulative(closing.value, closing.on)
        if cap is not None and closing_cumulative > cap.opening:
            # Pages from there on were billed with the later period.
            closing, closing_cumulative = cap_point, cap.opening
        usage = max(0, closing_cumulative - high_water)
        results.append(
            PeriodUsage(
                period,
                status,
                opening,
                closing.value,
                closing.on,
                closing.estimated,
                usage,
                high_water,
                previous.on,
                closing_cumulative,
                closing.reading_id,
            )
        )
        high_water = max(high_water, closing_cumulative)
        previous, previous_cumulative, previous_day = closing, closing_cumulative, closing.on
        after = closing.order if closing in usable else _end_of(closing.on)
    return results


def estimate_reading(
    points: list[Point],
    on: dt.date,
    replacements: list[Replacement] | None = None,
    window_days: int = ESTIMATE_WINDOW_DAYS,
) -> int | None:
    """The estimated counter on `on`: the last actual value + average daily pages * days since it, HALF_UP.

    The average is taken over the last `window_days` of actual readings (from the latest actual point on or before
    `window_days` before the last one, or the earliest one when the history is shorter), on the meter in place
    (a replacement inside the window starts the history at its new start value). None without two actual points
    on different days.
    """
    events = sorted((e for e in replacements or [] if e.on <= on), key=lambda e: e.on)
    actual = sorted((p for p in points if not p.estimated and p.on <= on), key=lambda p: p.order)
    if events:
        last_event = events[-1]
        actual = [Point(last_event.on, last_event.new_start)] + [p for p in actual if p.on >= last_event.on]
    if not actual:
        return None
    last = actual[-1]
    horizon = last.on - dt.timedelta(days=window_days)
    older = [p for p in actual if p.on <= horizon]
    base = older[-1] if older else actual[0]
    days = (last.on - base.on).days
    if days <= 0:
        return None
    return last.value + round_ratio(max(0, last.value - base.value) * (on - last.on).days, days)
