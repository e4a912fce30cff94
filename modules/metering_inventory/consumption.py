"""The consumption check (consumables-rules.md): pages per device and toner colour against the cartridges it used.

`assess` is the rules' formula as a pure function over Decimal. `consumption_check` gathers its inputs for every device
on a contract in the window: the pages from accepted readings through metering's usage rules (`usage.meter_usage`:
high-water marks, replacements), the toner levels of the readings nearest the window's ends, the cartridges shipped
(`rentals_inventory.shipments.shipped`) and the contract's assumed coverage.

Choices the rules leave open (docs/inventory.md, "The consumption check"):
- The window is clipped to the device's time at the customer (its contract lines of that customer): pages printed
  for an earlier customer are not this one's. Without dates: the last `window_months` months up to today.
- Pages are counted on the `bw` and `color` meters only (A3 and scan meters are not toner pages of their own).
- The levels are those of the accepted readings nearest each end of the window (taken in the device's time at the
  customer, up to the window's end) that report the colour; when there is none, both levels count as 0 (U = S).
- The yield is the quantity-weighted average of the cartridges shipped in the window; with none shipped, the average
  rated yield of the model's consumables of that colour in the rentals catalogue.
- Flags are over- and under-consumption; a flag is *covered* by an explanation (or an alert already sent) for the
  same device, colour and verdict whose window overlaps the flag's and ends on or after the flag's last shipment:
  a cartridge shipped after the explanation brings the flag back.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from core import clock
from core.clock import as_utc, day_start
from core.db import db
from core.settings import get_setting, set_setting
from core.validation import Checker, ValidationError
from modules.metering import usage as rules
from modules.metering.models import MeterReplacement, Reading, ReadingValue, SupplyLevel
from modules.metering_inventory.models import AlertedFlag, ExplainedFlag
from modules.rentals.models import Contract, ContractLine, Device, DeviceModel
from modules.rentals.periods import Period, add_months
from modules.rentals_inventory import shipments

COLOURS = ("black", "cyan", "magenta", "yellow")
# Coverage the yields are rated at (ISO/IEC 19752, 19798).
RATED_COVERAGE = Decimal(5)
DEFAULT_COVERAGE = Decimal(5)
TOLERANCE_SETTING = "metering_inventory.tolerance"
WINDOW_SETTING = "metering_inventory.window_months"
DEFAULT_TOLERANCE = Decimal("0.30")
DEFAULT_WINDOW_MONTHS = 12
MAX_WINDOW_MONTHS = 60

OVER = "over_consumption"
UNDER = "under_consumption"
NORMAL = "normal"
UNKNOWN = "unknown"
VERDICTS = (OVER, UNDER, NORMAL, UNKNOWN)
FLAGGED = (OVER, UNDER)
CHECKED_STATES = ("active", "suspended", "ended")
PAGE_METERS = ("bw", "color")


# The formula


@dataclass(frozen=True)
class Assessment:
    """E, U, R and the verdict of one device and colour; `ratio` is None when E is 0."""

    expected: Decimal | None
    consumed: Decimal
    ratio: Decimal | None
    verdict: str


def assess(
    pages: int,
    yield_pages: Decimal | int,
    shipped: Decimal | int,
    level_from: int | None,
    level_to: int | None,
    coverage: Decimal | int = DEFAULT_COVERAGE,
    tolerance: Decimal = DEFAULT_TOLERANCE,
) -> Assessment:
    """The rules' check: E = pages x coverage / 5 / yield, U = S + (L_from - L_to) / 100, R = U / E.

    Over-consumption when R > 1 + tolerance and U - E >= 1 (or E = 0 with S > 0); under-consumption when E - U >= 2
    and R < 0.5. A missing level (either one) counts both as 0.
    """
    expected = Decimal(pages) * Decimal(coverage) / RATED_COVERAGE / Decimal(yield_pages)
    if level_from is None or level_to is None:
        level_from = level_to = 0
    shipped = Decimal(shipped)
    consumed = shipped + Decimal(level_from - level_to) / 100
    if expected == 0:
        return Assessment(expected, consumed, None, OVER if shipped > 0 else NORMAL)
    ratio = consumed / expected
    if ratio > 1 + tolerance and consumed - expected >= 1:
        verdict = OVER
    elif expected - consumed >= 2 and ratio < Decimal("0.5"):
        verdict = UNDER
    else:
        verdict = NORMAL
    return Assessment(expected, consumed, ratio, verdict)


def quantized(value: Decimal, places: str = "0.01") -> Decimal:
    """A figure as shown and answered: cartridges and ratios to two decimals, HALF_UP."""
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)


def toner_pages(colour: str, usage: dict[str, int | None]) -> int | None:
    """Pages that use `colour`'s toner from the window's usage per meter: black `bw + color`, the others `color`."""
    meters = [m for m in PAGE_METERS if m in usage] if colour == "black" else ["color"]
    if not meters or any(usage.get(meter) is None for meter in meters):
        return None
    return sum(usage[meter] for meter in meters)


def window_usage(
    points: list[rules.Point],
    replacements: list[rules.Replacement],
    stay: rules.Stay,
    start: dt.date,
    end: dt.date,
) -> int | None:
    """Pages of one meter from `start` to `end` by metering's usage rules: the window is a period after the part of
    the stay before it, so its usage runs from the high-water mark before `start` to the last reading by `end`
    (None when no reading closes it)."""
    periods = []
    if start > stay.start:
        before_end = start - dt.timedelta(days=1)
        days = (before_end - stay.start).days + 1
        periods.append(Period(0, stay.start, before_end, days, days))
    days = (end - start).days + 1
    window = Period(1, start, end, days, days)
    periods.append(window)
    for item in rules.meter_usage(periods, stay, points, replacements, 0, end):
        if item.period.index == 1:
            return item.usage
    return 0


# Settings


def tolerance() -> Decimal:
    return Decimal(str(get_setting(TOLERANCE_SETTING, str(DEFAULT_TOLERANCE))))


def window_months() -> int:
    return int(get_setting(WINDOW_SETTING, DEFAULT_WINDOW_MONTHS))


def save_settings(tolerance_text: str, months_text: str) -> None:
    """Store the tolerance (a decimal from 0 to 10) and the window (1 to 60 months); the caller commits."""
    check = Checker()
    try:
        value = Decimal(str(tolerance_text).strip().replace(",", "."))
        if not value.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        check.fail("tolerance", _("Enter the tolerance as a number, e.g. 0.30."))
        value = None
    if value is not None and not Decimal(0) <= value <= Decimal(10):
        check.fail("tolerance", _("The tolerance must be between 0 and 10."))
    try:
        months = int(str(months_text).strip())
    except ValueError:
        check.fail("window_months", _("Enter the window as a whole number of months."))
        months = None
    if months is not None and not 1 <= months <= MAX_WINDOW_MONTHS:
        check.fail("window_months", _("The window must be from 1 to %(most)s months.", most=MAX_WINDOW_MONTHS))
    check.raise_if_any()
    set_setting(TOLERANCE_SETTING, str(value.quantize(Decimal("0.01"))))
    set_setting(WINDOW_SETTING, months)


def default_window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The last `window_months` months up to today."""
    end = today or clock.today()
    return add_months(end, -window_months()) + dt.timedelta(days=1), end


# Windows outside these years are typing mistakes (and beyond them date arithmetic overflows).
FIRST_DAY, LAST_DAY = dt.date(1990, 1, 1), dt.date(2199, 12, 31)


def check_window(start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    """The window asked (either end may be left out: the default's), refused when it ends before it starts."""
    for field_name, day in (("from", start), ("to", end)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise ValidationError(
                {field_name: _("Choose a date from %(first)s to %(last)s.", first=FIRST_DAY.year, last=LAST_DAY.year)}
            )
    end = end or clock.today()
    start = start or (add_months(end, -window_months()) + dt.timedelta(days=1))
    if end < start:
        raise ValidationError({"to": _("The end of the window is before its start.")})
    return start, end


# The check


@dataclass
class CheckRow:
    """One device and colour in the window, with the rules' figures and what explains or alerted it."""

    device: Device
    customer_id: int
    contract: Contract
    colour: str
    start: dt.date
    end: dt.date
    pages: int | None
    coverage: Decimal
    yield_pages: Decimal | None
    shipped: Decimal
    level_from: int | None
    level_to: int | None
    expected: Decimal | None
    consumed: Decimal
    ratio: Decimal | None
    verdict: str
    cartridges: list = field(default_factory=list)
    last_shipped: dt.date | None = None
    explained: ExplainedFlag | None = None
    series: list[tuple[dt.date, int]] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return self.verdict in FLAGGED and self.explained is None

    @property
    def key(self) -> tuple[int, str]:
        return self.device.id, self.colour


@dataclass
class _Tenure:
    """A device's time at one customer that overlaps the window: its lines, oldest first."""

    device: Device
    lines: list[ContractLine]

    @property
    def contract(self) -> Contract:
        return self.lines[-1].contract

    @property
    def start(self) -> dt.date:
        return self.lines[0].start_date

    @property
    def end(self) -> dt.date | None:
        """The last day: the line's, else its contract's end (a contract ending by its date keeps its lines open)."""
        line = self.lines[-1]
        ends = [day for day in (line.end_date, line.contract.end_date) if day is not None]
        return min(ends) if ends else None


def _tenures(customer_id: int | None, device_id: int | None, start: dt.date, end: dt.date) -> list[_Tenure]:
    """For each device on a contract in the window, its stays at a customer (lines overlapping the window)."""
    query = (
        sa.select(ContractLine)
        .join(Contract, Contract.id == ContractLine.contract_id)
        .where(
            Contract.state.in_(CHECKED_STATES),
            ContractLine.start_date <= end,
            sa.or_(ContractLine.end_date.is_(None), ContractLine.end_date >= start),
        )
        .options(
            selectinload(ContractLine.counters),
            selectinload(ContractLine.contract).selectinload(Contract.customer),
            selectinload(ContractLine.device)
            .selectinload(Device.model)
            .options(
                selectinload(DeviceModel.consumables),
                selectinload(DeviceModel.meters),
                selectinload(DeviceModel.manufacturer),
            ),
        )
        .order_by(ContractLine.device_id, ContractLine.start_date, ContractLine.id)
    )
    if customer_id is not None:
        query = query.where(Contract.customer_id == customer_id)
    if device_id is not None:
        query = query.where(ContractLine.device_id == device_id)
    by_device: dict[int, list[ContractLine]] = defaultdict(list)
    for line in db.session.scalars(query):
        by_device[line.device_id].append(line)
    result = []
    for lines in by_device.values():
        # One tenure per stay at a customer: a device that moved from A to B in the window is checked for both.
        for _customer, stay in itertools.groupby(lines, key=lambda line: line.contract.customer_id):
            own = list(stay)
            result.append(_Tenure(own[-1].device, own))
    return sorted(result, key=lambda t: (t.contract.customer.name.lower(), t.device.serial, t.start))


def _points(device_ids: list[int]) -> dict[tuple[int, str], list[rules.Point]]:
    """Accepted readings of the page meters, as usage points in the dealer's days."""
    zone = clock.timezone()
    found: dict[tuple[int, str], list[rules.Point]] = defaultdict(list)
    if not device_ids:
        return found
    rows = db.session.execute(
        sa.select(Reading.device_id, ReadingValue.meter, Reading.id, Reading.taken_at, ReadingValue.value)
        .join(ReadingValue, ReadingValue.reading_id == Reading.id)
        .where(
            Reading.device_id.in_(device_ids),
            Reading.status == "accepted",
            ReadingValue.meter.in_(PAGE_METERS),
        )
        .order_by(Reading.taken_at, Reading.id)
    )
    for device_id, meter, reading_id, taken_at, value in rows:
        at = as_utc(taken_at)
        found[(device_id, meter)].append(rules.Point(at.astimezone(zone).date(), value, False, at, reading_id))
    return found


def _replacements(device_ids: list[int]) -> dict[tuple[int, str], list[rules.Replacement]]:
    found: dict[tuple[int, str], list[rules.Replacement]] = defaultdict(list)
    if not device_ids:
        return found
    for event in db.session.scalars(sa.select(MeterReplacement).where(MeterReplacement.device_id.in_(device_ids))):
        found[(event.device_id, event.meter)].append(rules.Replacement(event.date, event.old_final, event.new_start))
    return found


def _levels(device_ids: list[int]) -> dict[tuple[int, str], list[tuple[dt.datetime, int]]]:
    """The toner levels reported with accepted readings, by (device, colour), oldest first."""
    found: dict[tuple[int, str], list[tuple[dt.datetime, int]]] = defaultdict(list)
    if not device_ids:
        return found
    rows = db.session.execute(
        sa.select(Reading.device_id, SupplyLevel.colour, Reading.taken_at, SupplyLevel.percent)
        .join(SupplyLevel, SupplyLevel.reading_id == Reading.id)
        .where(Reading.device_id.in_(device_ids), Reading.status == "accepted")
        .order_by(Reading.taken_at, Reading.id)
    )
    for device_id, colour, taken_at, percent in rows:
        found[(device_id, colour)].append((as_utc(taken_at), percent))
    return found


def nearest_level(levels: list[tuple[dt.datetime, int]], moment: dt.datetime) -> int | None:
    """The level reported nearest to `moment` (the earlier one on a tie)."""
    if not levels:
        return None
    return min(levels, key=lambda item: (abs(item[0] - moment), item[0]))[1]


def device_colours(device: Device) -> tuple[str, ...]:
    """The toners of the device's model: all four on a colour model, black on a mono one."""
    return COLOURS if device.model.color else ("black",)


def _rated_yield(device: Device, colour: str) -> Decimal | None:
    yields = [c.rated_yield for c in device.model.consumables if c.colour == colour]
    return Decimal(sum(yields)) / len(yields) if yields else None


def _coverage(contract: Contract) -> Decimal:
    value = getattr(contract, "assumed_coverage", None)
    return Decimal(value) if value is not None else DEFAULT_COVERAGE


def _series(
    points: list[rules.Point], replacements: list[rules.Replacement], start: dt.date, end: dt.date
) -> list[tuple[dt.date, int]]:
    """Cumulative pages of one meter through the window at each reading in it (high-water marks, replacements)."""
    scale = rules.Scale(replacements)
    before = [scale.cumulative(p.value, p.on) for p in points if p.on < start]
    high = max(before) if before else None
    result = []
    for point in points:
        if not start <= point.on <= end:
            continue
        value = scale.cumulative(point.value, point.on)
        if high is None:
            high = value
        high = max(high, value)
        result.append((point.on, high))
    if not result:
        return []
    base = max(before) if before else result[0][1]
    return [(day, value - base) for day, value in result]


def consumption_check(
    customer_id: int | None = None,
    device_id: int | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[CheckRow]:
    """Every device and toner colour on a contract in the window (default: the last 12 months), by customer and
    serial, with pages, E, U, R and the verdict; raises ValidationError (field `to`) for a window ending first."""
    start, end = check_window(start, end)
    limit = tolerance()
    tenures = _tenures(customer_id, device_id, start, end)
    device_ids = [t.device.id for t in tenures]
    points = _points(device_ids)
    events = _replacements(device_ids)
    levels = _levels(device_ids)
    explanations = _records(ExplainedFlag, device_ids)
    rows = []
    for tenure in tenures:
        device = tenure.device
        first = max(start, tenure.start)
        last = end if tenure.end is None else min(end, tenure.end)
        if last < first:
            continue
        counters = {c.meter: c for c in tenure.lines[0].counters}
        final = {c.meter: c for c in tenure.lines[-1].counters}
        usage: dict[str, int | None] = {}
        for meter in PAGE_METERS:
            if meter not in counters:
                continue
            stay = rules.Stay(tenure.start, counters[meter].start_value, tenure.end, _end_value(final, meter))
            usage[meter] = window_usage(
                points.get((device.id, meter), []), events.get((device.id, meter), []), stay, first, last
            )
        moment_from, moment_to = day_start(first), day_start(last + dt.timedelta(days=1))
        coverage = _coverage(tenure.contract)
        for colour in device_colours(device):
            pages = toner_pages(colour, usage)
            cartridges = shipments.shipped(device.id, colour, first, last)
            shipped = sum((Decimal(c.quantity) for c in cartridges), Decimal(0))
            weighted = [(Decimal(c.quantity), c.yield_pages) for c in cartridges if c.yield_pages]
            quantity = sum((q for q, _y in weighted), Decimal(0))
            yield_pages = (
                sum((q * y for q, y in weighted), Decimal(0)) / quantity if quantity else _rated_yield(device, colour)
            )
            known = [
                item for item in levels.get((device.id, colour), []) if day_start(tenure.start) <= item[0] < moment_to
            ]
            level_from, level_to = nearest_level(known, moment_from), nearest_level(known, moment_to)
            if level_from is None or level_to is None:
                level_from = level_to = None
            if pages is None or yield_pages is None:
                consumed = shipped + (Decimal(level_from - level_to) / 100 if level_from is not None else 0)
                figures = Assessment(None, consumed, None, UNKNOWN)
            else:
                figures = assess(pages, yield_pages, shipped, level_from, level_to, coverage, limit)
            meters = ("bw", "color") if colour == "black" else ("color",)
            series = _sum_series(
                [
                    _series(points.get((device.id, m), []), events.get((device.id, m), []), first, last)
                    for m in meters
                    if m in usage
                ]
            )
            row = CheckRow(
                device=device,
                customer_id=tenure.contract.customer_id,
                contract=tenure.contract,
                colour=colour,
                start=first,
                end=last,
                pages=pages,
                coverage=coverage,
                yield_pages=yield_pages,
                shipped=shipped,
                level_from=level_from,
                level_to=level_to,
                expected=figures.expected,
                consumed=figures.consumed,
                ratio=figures.ratio,
                verdict=figures.verdict,
                cartridges=sorted(cartridges, key=lambda c: c.ship_date),
                last_shipped=max((c.ship_date for c in cartridges), default=None),
                series=series,
            )
            if row.verdict in FLAGGED:
                row.explained = next((e for e in explanations.get(row.key, []) if covers(e, row)), None)
            rows.append(row)
    return rows


def _end_value(counters: dict, meter: str) -> int | None:
    counter = counters.get(meter)
    return None if counter is None else counter.end_value


def _sum_series(series: list[list[tuple[dt.date, int]]]) -> list[tuple[dt.date, int]]:
    """Several meters' cumulative pages added up day by day (a meter not read on a day keeps its last value)."""
    days = sorted({day for one in series for day, _value in one})
    result = []
    for day in days:
        total = 0
        for one in series:
            known = [value for d, value in one if d <= day]
            total += known[-1] if known else 0
        result.append((day, total))
    return result


def flags(customer_id: int | None = None, start: dt.date | None = None, end: dt.date | None = None) -> list[CheckRow]:
    """The rows flagged and not explained."""
    return [row for row in consumption_check(customer_id, None, start, end) if row.flagged]


# Explanations and alerts


def covers(record: ExplainedFlag | AlertedFlag, row: CheckRow) -> bool:
    """Whether an explanation (or an alert sent) stands for `row`: same device, colour and verdict, a window that
    overlaps the row's, and no cartridge shipped to the device after that window."""
    return (
        record.device_id == row.device.id
        and record.colour == row.colour
        and record.verdict == row.verdict
        and record.window_start <= row.end
        and record.window_end >= row.start
        and (row.last_shipped is None or row.last_shipped <= record.window_end)
    )


def _records(model: type, device_ids: list[int]) -> dict[tuple[int, str], list]:
    found: dict[tuple[int, str], list] = defaultdict(list)
    if not device_ids:
        return found
    query = sa.select(model).where(model.device_id.in_(device_ids)).order_by(model.id.desc())
    for record in db.session.scalars(query):
        found[(record.device_id, record.colour)].append(record)
    return found


def mark_explained(
    device_id: int,
    colour: str,
    note: str,
    user_id: int | None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> ExplainedFlag:
    """Record staff's explanation of a device's flag in the window; it stops alerting for it. The caller commits.

    Refused (ValidationError) without a note (field `note`), or when the device and colour are not flagged in the
    window (field `colour`).
    """
    check = Checker()
    note = (note or "").strip()
    if not note:
        check.fail("note", _("Write why the consumption is explained."))
    elif len(note) > 2000:
        check.fail("note", _("The note is longer than 2000 characters."))
    check.raise_if_any()
    rows = [row for row in consumption_check(None, device_id, start, end) if row.colour == colour]
    if not rows or rows[0].verdict not in FLAGGED:
        raise ValidationError({"colour": _("This device's consumption of that toner is not flagged in the window.")})
    row = rows[0]
    if row.explained is not None:
        return row.explained
    explained = ExplainedFlag(
        device_id=device_id,
        colour=colour,
        verdict=row.verdict,
        window_start=row.start,
        window_end=row.end,
        note=note,
        user_id=user_id,
    )
    db.session.add(explained)
    db.session.flush()
    return explained


def new_flags(today: dt.date | None = None) -> list[CheckRow]:
    """The flags of the default window not explained and not alerted yet."""
    start, end = default_window(today)
    found = flags(None, start, end)
    alerted = _records(AlertedFlag, [row.device.id for row in found])
    return [row for row in found if not any(covers(record, row) for record in alerted.get(row.key, []))]


def record_alerts(rows: list[CheckRow]) -> list[AlertedFlag]:
    """Remember that `rows` were emailed, so the next run sends only new flags. The caller commits."""
    records = [
        AlertedFlag(
            device_id=row.device.id,
            colour=row.colour,
            verdict=row.verdict,
            window_start=row.start,
            window_end=row.end,
            pages=row.pages or 0,
            expected=None if row.expected is None else quantized(row.expected),
            consumed=quantized(row.consumed),
        )
        for row in rows
    ]
    db.session.add_all(records)
    db.session.flush()
    return records
