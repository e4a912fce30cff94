"""Overage for invoicing: the `metering` billable source, the readings still missing, and what was billed.

Reads contracts, readings, replacements and the closings already billed, hands them as plain data to `usage.py`, and
prices the overage with `modules.rentals.periods`; a billing run's chunk reads its customers' contracts and readings
at once first (`prepare_chunk`). Invoicing de-duplicates on `(source, source_ref)`, so every line
due is returned on every run with the same reference. Each line's `extra["closings"]` carries the closings it bills;
when invoicing takes the line it sends `core.signals.lines_billed` and `record_billed` stores them, so later runs
keep them ("the highest value already billed"); `lines_released` (a cancelled draft, a credit note) deletes them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from sqlalchemy.orm import Session, selectinload

from core import clock
from core.clock import as_utc
from core.db import db, refresh_statistics, utcnow
from core.extension_points import METER_BILLING_COVER, BillableLine, implementations
from modules.metering import usage as rules
from modules.metering.models import COUNTING_STATUSES, BilledClosing, MeterReplacement, Reading, ReadingValue
from modules.rentals import periods as terms
from modules.rentals.models import Allowance, Contract, ContractLine, Device, DeviceModel, MeterType

SOURCE = "metering"
BILLABLE_STATES = ("active", "suspended", "ended")
# session.info key: a customer's usage, computed for its lines, reused by `missing_readings` until anything is written.
_USAGE = "metering_usage"
# session.info key: what `prepare_chunk` read for a chunk of a billing run, until `forget_chunk`.
_CHUNK = "metering_chunk"
_BOUNDED = 500  # ids per IN list


@dataclass(frozen=True)
class DeviceUsage:
    """One device's usage of one meter in one period (summed over its stays when it left and came back)."""

    device_id: int
    serial: str
    active_days: int
    opening: int | None
    closing: int | None
    estimated: bool
    usage: int | None
    closing_usage: rules.PeriodUsage | None = None  # the last stay's, for recording what was billed

    def closing_record(self, contract_id: int, meter: str) -> dict:
        """The closing this device's usage is billed with, as `extra["closings"]` carries it (JSON)."""
        item = self.closing_usage
        return {
            "contract_id": contract_id,
            "device_id": self.device_id,
            "meter": meter,
            "period_index": item.period.index,
            "reading_id": item.reading_id,
            "opening_value": item.high_water,
            "opening_on": item.high_water_on.isoformat(),
            "closing_value": item.closing_value,
            "closing_on": item.closing_on.isoformat(),
            "closing_counter": item.closing,
        }


@dataclass(frozen=True)
class History:
    """What usage needs of some contracts, loaded in a few queries: points and replacements per (device, meter),
    billed closings per contract."""

    points: dict[tuple[int, str], list[rules.Point]]
    replacements: dict[tuple[int, str], list[rules.Replacement]]
    billed: dict[int, dict[tuple[int, str], dict[int, rules.Billed]]]


def _bounded(ids: set[int]) -> list[list[int]]:
    ordered = sorted(ids)
    return [ordered[start : start + _BOUNDED] for start in range(0, len(ordered), _BOUNDED)]


def load_history(contracts: list[Contract]) -> History:
    """The readings, replacements and billed closings of `contracts` and their devices."""
    device_ids = _device_ids(contracts)
    points, _readings = load_points(device_ids)
    return History(points, load_replacements(device_ids), load_billed({contract.id for contract in contracts}))


def _device_ids(contracts: list[Contract]) -> set[int]:
    return {line.device_id for contract in contracts for line in contract.lines}


def load_points(device_ids: set[int]) -> tuple[dict[tuple[int, str], list[rules.Point]], dict[int, set[int]]]:
    """The counting readings of these devices as usage points per (device, meter), and their ids per device."""
    zone = clock.timezone()
    points: dict[tuple[int, str], list[rules.Point]] = defaultdict(list)
    readings: dict[int, set[int]] = defaultdict(set)
    moments: dict[dt.datetime, tuple[dt.datetime, dt.date]] = {}
    for bounded in _bounded(device_ids):
        rows = db.session.execute(
            sa.select(
                Reading.device_id, ReadingValue.meter, Reading.id, Reading.taken_at, Reading.status, ReadingValue.value
            )
            .join(ReadingValue, ReadingValue.reading_id == Reading.id)
            .where(Reading.device_id.in_(bounded), Reading.status.in_(COUNTING_STATUSES))
            .order_by(Reading.id)
        )
        for device_id, meter, reading_id, taken_at, status, value in rows:
            if taken_at not in moments:  # a reading's values share its moment, readings often too (imports)
                at = as_utc(taken_at)
                moments[taken_at] = at, at.astimezone(zone).date()
            at, day = moments[taken_at]
            points[(device_id, meter)].append(rules.Point(day, value, status == "estimated", at, reading_id))
            readings[device_id].add(reading_id)
    return points, readings


def counting_readings(device_ids: set[int]) -> dict[int, set[int]]:
    """The ids of the counting readings of these devices, per device: readings are never edited, only accepted or
    rejected, so the same ids mean the same points."""
    readings: dict[int, set[int]] = defaultdict(set)
    for bounded in _bounded(device_ids):
        rows = db.session.execute(
            sa.select(Reading.device_id, Reading.id).where(
                Reading.device_id.in_(bounded), Reading.status.in_(COUNTING_STATUSES)
            )
        )
        for device_id, reading_id in rows:
            readings[device_id].add(reading_id)
    return readings


def load_replacements(device_ids: set[int]) -> dict[tuple[int, str], list[rules.Replacement]]:
    replacements: dict[tuple[int, str], list[rules.Replacement]] = defaultdict(list)
    for bounded in _bounded(device_ids):
        events = db.session.scalars(sa.select(MeterReplacement).where(MeterReplacement.device_id.in_(bounded)))
        for item in events:
            replacements[(item.device_id, item.meter)].append(
                rules.Replacement(item.date, item.old_final, item.new_start)
            )
    return replacements


def _by_id(row: BilledClosing) -> int:
    """Closings are sorted by id in Python, not with ORDER BY: a planner whose statistics say the table is empty
    (a large run on PostgreSQL before autovacuum analyzes it) walks the primary key of every closing to keep that
    order instead of using the contract index."""
    return row.id


def load_billed(contract_ids: set[int]) -> dict[int, dict[tuple[int, str], dict[int, rules.Billed]]]:
    """The billed closings of these contracts, per contract, (device, meter) and period index."""
    billed: dict[int, dict[tuple[int, str], dict[int, rules.Billed]]] = defaultdict(lambda: defaultdict(dict))
    for bounded in _bounded(contract_ids):
        rows = db.session.scalars(sa.select(BilledClosing).where(BilledClosing.contract_id.in_(bounded)))
        for row in sorted(rows, key=_by_id):
            billed[row.contract_id][(row.device_id, row.meter)].setdefault(row.period_index, _billed(row))
    return billed


def contract_usage(
    contract: Contract, as_of: dt.date, history: History | None = None
) -> dict[tuple[int, str], list[DeviceUsage]]:
    """Usage per (period index, meter) for each device on the contract, over the periods ended by `as_of`."""
    ended = ended_periods(contract, as_of)
    if not ended:
        return {}
    history = history or load_history([contract])
    meters = {allowance.meter for allowance in contract.allowances}
    billed = history.billed.get(contract.id, {})
    result: dict[tuple[int, str], list[DeviceUsage]] = defaultdict(list)
    for device_id, lines in _lines_by_device(contract).items():
        device = lines[0].device
        for meter in sorted(meters & set(device.model.meter_codes)):
            points = history.points.get((device_id, meter), [])
            events = history.replacements.get((device_id, meter), [])
            per_period: dict[int, list[tuple[ContractLine, rules.PeriodUsage]]] = defaultdict(list)
            for line in lines:
                counters = {c.meter: c for c in line.counters}
                if meter not in counters:
                    continue
                stay = rules.Stay(
                    line.start_date, counters[meter].start_value, line.end_date, counters[meter].end_value
                )
                records = stay_records(billed.get((device_id, meter), {}), stay)
                for item in rules.meter_usage(ended, stay, points, events, contract.grace_days, as_of, records):
                    per_period[item.period.index].append((line, item))
            for index, items in per_period.items():
                usages = [item.usage for _line, item in items]
                result[(index, meter)].append(
                    DeviceUsage(
                        device_id=device_id,
                        serial=device.serial,
                        active_days=sum(
                            terms.device_active_days(item.period, line.start_date, line.end_date)
                            for line, item in items
                        ),
                        opening=items[0][1].opening,
                        closing=items[-1][1].closing,
                        estimated=any(item.estimated for _line, item in items),
                        usage=None if None in usages else sum(usages),
                        closing_usage=items[-1][1],
                    )
                )
    return result


def ended_periods(contract: Contract, as_of: dt.date) -> list[terms.Period]:
    """The contract's periods whose last day is before `as_of`."""
    if as_of <= contract.start_date:
        return []
    return [
        period
        for period in terms.periods(contract.start_date, contract.period_months, contract.end_date, as_of)
        if period.end < as_of
    ]


def _lines_by_device(contract: Contract) -> dict[int, list[ContractLine]]:
    lines: dict[int, list[ContractLine]] = defaultdict(list)
    for line in sorted(contract.lines, key=lambda line: line.start_date):
        lines[line.device_id].append(line)
    return lines


def device_points(device_id: int, meter: str) -> list[rules.Point]:
    """The device's accepted and estimated counter values of `meter`, as usage points in the dealer's days."""
    zone = clock.timezone()
    rows = db.session.execute(
        sa.select(Reading.id, Reading.taken_at, Reading.status, ReadingValue.value)
        .join(ReadingValue, ReadingValue.reading_id == Reading.id)
        .where(
            Reading.device_id == device_id,
            ReadingValue.meter == meter,
            Reading.status.in_(COUNTING_STATUSES),
        )
    )
    return [
        rules.Point(
            as_utc(taken_at).astimezone(zone).date(), value, status == "estimated", as_utc(taken_at), reading_id
        )
        for reading_id, taken_at, status, value in rows
    ]


def device_replacements(device_id: int, meter: str) -> list[rules.Replacement]:
    rows = db.session.scalars(
        sa.select(MeterReplacement).where(MeterReplacement.device_id == device_id, MeterReplacement.meter == meter)
    )
    return [rules.Replacement(event.date, event.old_final, event.new_start) for event in rows]


def billed_closings(contract_id: int) -> dict[tuple[int, str], dict[int, rules.Billed]]:
    """The closings billed on `contract_id`, per (device, meter) and period index."""
    rows = db.session.scalars(sa.select(BilledClosing).where(BilledClosing.contract_id == contract_id))
    result: dict[tuple[int, str], dict[int, rules.Billed]] = defaultdict(dict)
    for row in sorted(rows, key=_by_id):
        result[(row.device_id, row.meter)].setdefault(row.period_index, _billed(row))
    return result


def _billed(row: BilledClosing) -> rules.Billed:
    return rules.Billed(
        row.opening_value, row.opening_on, row.closing_value, row.closing_on, row.closing_counter, row.reading_id
    )


def stay_records(records: dict[int, rules.Billed], stay: rules.Stay) -> dict[int, rules.Billed]:
    """The billed closings of one stay of a device (one that left and came back has several)."""
    return {
        index: record
        for index, record in records.items()
        if stay.start <= record.closing_on and (stay.end is None or record.closing_on <= stay.end)
    }


def record_billed(sender: object, source: str, lines: list[tuple[str, dict]], **_kwargs: object) -> None:
    """`lines_billed` receiver: store the closings of metering's billed lines, in invoicing's transaction."""
    if source != SOURCE:
        return
    rows = [
        {
            "source_ref": source_ref,
            "contract_id": closing["contract_id"],
            "period_index": closing["period_index"],
            "device_id": closing["device_id"],
            "meter": closing["meter"],
            "reading_id": closing["reading_id"],
            "opening_value": closing["opening_value"],
            "opening_on": dt.date.fromisoformat(closing["opening_on"]),
            "closing_value": closing["closing_value"],
            "closing_on": dt.date.fromisoformat(closing["closing_on"]),
            "closing_counter": closing["closing_counter"],
            "created_at": utcnow(),
        }
        for source_ref, extra in lines
        for closing in (extra or {}).get("closings", [])
    ]
    if rows:
        db.session.execute(sa.insert(BilledClosing), rows)


def release_billed(sender: object, source: str, source_refs: list[str], **_kwargs: object) -> None:
    """`lines_released` receiver: the lines are unbilled again, so are their closings."""
    if source != SOURCE or not source_refs:
        return
    refs = sorted(set(source_refs))
    for start in range(0, len(refs), 500):  # bounded IN lists
        db.session.execute(sa.delete(BilledClosing).where(BilledClosing.source_ref.in_(refs[start : start + 500])))


def customer_contracts(customer_id: int | None) -> list[Contract]:
    """The customer's billable contracts (every customer's with None) with their allowances, bands, lines, counters
    and devices, in a few queries."""
    return _contracts(sa.true() if customer_id is None else Contract.customer_id == customer_id)


def _contracts(customer: sa.ColumnElement[bool]) -> list[Contract]:
    lines = selectinload(Contract.lines)
    return list(
        db.session.scalars(
            sa.select(Contract)
            .where(customer, Contract.state.in_(BILLABLE_STATES))
            .options(
                selectinload(Contract.allowances).selectinload(Allowance.bands),
                lines.selectinload(ContractLine.counters),
                lines.joinedload(ContractLine.device).joinedload(Device.model).selectinload(DeviceModel.meters),
            )
            .order_by(Contract.customer_id, Contract.id)
        )
    )


def customer_usage(customer_id: int | None, as_of: dt.date) -> list[tuple[Contract, dict]]:
    """Each billable contract of the customer (of every customer with None) with its usage (`contract_usage`)."""
    contracts = customer_contracts(customer_id)
    chunk = _prepared(customer_id, as_of)
    history = chunk.history(contracts) if chunk is not None else load_history(contracts)
    return [(contract, contract_usage(contract, as_of, history)) for contract in contracts]


@dataclass
class _Chunk:
    """What `prepare_chunk` read for some customers as of a date: their devices' readings, used only while each
    device's counting reading ids are still the same, and the meter types (detached: a commit expires nothing).

    Contracts are read again for each customer (a few small queries): staff, renewals and devices leaving change them
    while a chunk runs. Replacements and billed closings too (billing a customer stores its closings)."""

    as_of: dt.date
    customer_ids: frozenset[int]
    points: dict[tuple[int, str], list[rules.Point]]
    readings: dict[int, set[int]]
    meters: dict[str, MeterType]

    def history(self, contracts: list[Contract]) -> History:
        device_ids = _device_ids(contracts)
        current = counting_readings(device_ids)
        if all(current.get(device_id, set()) == self.readings.get(device_id, set()) for device_id in device_ids):
            points = self.points
        else:  # readings were recorded, accepted or rejected since the chunk was prepared
            points, _readings = load_points(device_ids)
        return History(points, load_replacements(device_ids), load_billed({contract.id for contract in contracts}))


def prepare_chunk(customer_ids: list[int], as_of: dt.date) -> None:
    """Read the readings of these customers' devices for `customer_usage` (core's ChunkPreparer)."""
    refresh_statistics("metering_billed_closing")  # billing fills it and reads it for each customer
    device_ids: set[int] = set()
    for bounded in _bounded(set(customer_ids)):
        query = (
            sa.select(ContractLine.device_id)
            .join(Contract, Contract.id == ContractLine.contract_id)
            .where(Contract.customer_id.in_(bounded), Contract.state.in_(BILLABLE_STATES))
        )
        device_ids.update(db.session.scalars(query))
    points, readings = load_points(device_ids)
    meters = {meter.code: meter for meter in db.session.scalars(sa.select(MeterType))}
    for meter in meters.values():
        db.session.expunge(meter)
    db.session.info[_CHUNK] = _Chunk(as_of, frozenset(customer_ids), points, dict(readings), meters)


def forget_chunk() -> None:
    db.session.info.pop(_CHUNK, None)


def _prepared(customer_id: int | None, as_of: dt.date) -> _Chunk | None:
    chunk = db.session.info.get(_CHUNK)
    if chunk is None or customer_id is None or chunk.as_of != as_of or customer_id not in chunk.customer_ids:
        return None
    return chunk


def forget_usage(session: Session, *_args: object) -> None:
    """Session listener (`after_flush`, `after_transaction_end`, set up in module.py): the kept usage is stale."""
    session.info.pop(_USAGE, None)


def forget_usage_on_write(state: sa.orm.ORMExecuteState) -> None:
    """Session listener (`do_orm_execute`): any write outside a flush makes the kept usage stale too."""
    if not state.is_select:
        state.session.info.pop(_USAGE, None)


# Billable lines


class OverageSource:
    """The `billable_source` of metering: overage by band and minimum charge adjustments."""

    name = SOURCE

    def billable_lines(self, customer_id: int, as_of: dt.date) -> list[BillableLine]:
        usages = customer_usage(customer_id, as_of)
        chunk = _prepared(customer_id, as_of)
        texts = _Texts(chunk.meters if chunk is not None else None)
        lines = [line for contract, usage in usages for line in contract_lines(contract, as_of, usage, texts)]
        covered = covered_periods({(line.contract_id, line.period_start) for line in lines})
        lines = [line for line in lines if (line.contract_id, line.period_start) not in covered]
        db.session.info[_USAGE] = ((customer_id, as_of), usages)
        return lines

    def missing_readings(self, customer_id: int, as_of: dt.date) -> list[dict]:
        """The periods whose overage waits for a closing reading (core's MissingReadingsReporter)."""
        return missing_readings(customer_id, as_of)

    def prepare_chunk(self, customer_ids: list[int], as_of: dt.date) -> None:
        """Read ahead for a chunk of a billing run (core's ChunkPreparer)."""
        prepare_chunk(customer_ids, as_of)

    def forget_chunk(self) -> None:
        forget_chunk()


def contract_lines(
    contract: Contract, as_of: dt.date, usage: dict | None = None, texts: _Texts | None = None
) -> list[BillableLine]:
    """Every overage and minimum-charge line of `contract` due by `as_of` (periods ended with their readings)."""
    usage = contract_usage(contract, as_of) if usage is None else usage
    texts = texts or _Texts()
    result = []
    for period in ended_periods(contract, as_of):
        years = terms.escalation_years(contract.start_date, period.start)
        complete = True
        overage_total = Decimal("0.00")
        closings = []
        for allowance in contract.allowances:
            devices = [d for d in usage.get((period.index, allowance.meter), []) if d.active_days > 0]
            if any(d.usage is None for d in devices):
                complete = False
                continue
            closings.extend(d.closing_record(contract.id, allowance.meter) for d in devices)
            bands = [
                (up_to, terms.escalate_price(price, contract.escalation_percent, years))
                for up_to, price in allowance.band_pairs
            ]
            for pages, included, device, used in _overage(allowance, period, devices):
                described = _describe(texts, contract, allowance, period, device, devices, used, included)
                for band_number, (band_pages, price) in enumerate(terms.band_amounts(pages, bands), start=1):
                    amount = terms.line_amount(band_pages, price)
                    overage_total += amount
                    device_id = device.device_id if device else None
                    result.append(
                        BillableLine(
                            source=SOURCE,
                            source_ref=(
                                f"overage:{contract.id}:{period.index}:{allowance.meter}:"
                                f"{device_id or 'pool'}:{band_number}"
                            ),
                            description=described + texts.band(band_number) if len(bands) > 1 else described,
                            quantity=Decimal(band_pages),
                            unit_price=price,
                            vat_rate=contract.vat_rate,
                            vat_code=contract.vat_code,
                            kind="overage",
                            contract_id=contract.id,
                            period_start=period.start,
                            period_end=period.end,
                            meter=allowance.meter,
                            device_id=device_id,
                            extra={
                                "period_index": period.index,
                                "band": band_number,
                                "included": included,
                                "usage": used,
                                "amount": str(amount),
                                "estimated": any(d.estimated for d in ([device] if device else devices)),
                                "closings": [
                                    d.closing_record(contract.id, allowance.meter)
                                    for d in ([device] if device else devices)
                                ],
                            },
                        )
                    )
        if complete and contract.minimum_charge is not None:
            fee = terms.period_fee(contract.fee, contract.escalation_percent, contract.start_date, period)
            adjustment = contract.minimum_charge - fee - overage_total
            if adjustment > 0:
                result.append(
                    BillableLine(
                        source=SOURCE,
                        source_ref=f"minimum:{contract.id}:{period.index}",
                        description=_(
                            "Minimum charge adjustment, contract %(number)s, %(start)s to %(end)s "
                            "(minimum %(minimum)s, fee %(fee)s, overage %(overage)s)",
                            number=contract.number,
                            start=texts.date(period.start),
                            end=texts.date(period.end),
                            minimum=contract.minimum_charge,
                            fee=fee,
                            overage=overage_total,
                        ),
                        quantity=Decimal(1),
                        unit_price=adjustment,
                        vat_rate=contract.vat_rate,
                        vat_code=contract.vat_code,
                        kind="minimum",
                        contract_id=contract.id,
                        period_start=period.start,
                        period_end=period.end,
                        # Every closing of the period: billing the minimum settles the whole period.
                        extra={"period_index": period.index, "closings": closings},
                    )
                )
    return result


def _overage(
    allowance: Allowance, period: terms.Period, devices: list[DeviceUsage]
) -> list[tuple[int, int, DeviceUsage | None, int]]:
    """(overage pages, included pages, device or None when pooled, usage) for each overage of the period."""
    if allowance.pooled:
        if not devices:
            return []
        included = terms.prorate_pages(allowance.included, period.active_days, period.period_days)
        used = sum(d.usage for d in devices)
        pages = max(0, used - included)
        return [(pages, included, None, used)] if pages else []
    result = []
    for device in devices:
        included = terms.prorate_pages(
            allowance.included, min(device.active_days, period.period_days), period.period_days
        )
        pages = max(0, device.usage - included)
        if pages:
            result.append((pages, included, device, device.usage))
    return result


class _Texts:
    """The texts of one `billable_lines` call in the current language, each formatted once: dates, meter labels."""

    def __init__(self, meters: dict[str, MeterType] | None = None) -> None:
        locale = get_locale()
        self.language = locale.language if locale else None
        self.estimated = _(" (estimated)")
        # Translated once, filled in for each line (what `_` does with variables: the translation % them).
        self.counter = _("%(serial)s %(opening)s to %(closing)s%(estimated)s")
        self.overage = _(
            "%(meter)s pages over the allowance, contract %(number)s, %(start)s to %(end)s: counters %(counters)s; "
            "%(used)s pages, %(included)s included"
        )
        self._known = meters
        self._dates: dict[dt.date, str] = {}
        self._meters: dict[str, str] = {}
        self._bands: dict[int, str] = {}

    def date(self, day: dt.date) -> str:
        if day not in self._dates:
            self._dates[day] = format_date(day, "short")
        return self._dates[day]

    def meter(self, code: str) -> str:
        if code not in self._meters:
            meter = self._known.get(code) if self._known is not None else db.session.get(MeterType, code)
            self._meters[code] = meter.label(self.language) if meter else code
        return self._meters[code]

    def band(self, band: int) -> str:
        """The suffix of the description of band `band` of several."""
        if band not in self._bands:
            self._bands[band] = " " + _("(band %(band)d)", band=band)
        return self._bands[band]


def _describe(
    texts: _Texts,
    contract: Contract,
    allowance: Allowance,
    period: terms.Period,
    device: DeviceUsage | None,
    devices: list[DeviceUsage],
    used: int,
    included: int,
) -> str:
    """The description of an overage (of each of its bands, `_Texts.band` added when there are several)."""
    counters = [
        texts.counter
        % {
            "serial": d.serial,
            "opening": d.opening,
            "closing": d.closing,
            "estimated": texts.estimated if d.estimated else "",
        }
        for d in ([device] if device else devices)
    ]
    return texts.overage % {
        "meter": texts.meter(allowance.meter),
        "number": contract.number,
        "start": texts.date(period.start),
        "end": texts.date(period.end),
        "counters": ", ".join(counters),
        "used": used,
        "included": included,
    }


def covered_periods(periods: set[tuple[int, dt.date]]) -> set[tuple[int, dt.date]]:
    """The (contract id, period start) pairs another module bills instead of overage (device accounting's
    chargeback, core.extension_points.METER_BILLING_COVER): metering bills nothing for them, nor waits for readings."""
    covered: set[tuple[int, dt.date]] = set()
    for cover in implementations(METER_BILLING_COVER) if periods else ():
        covered |= cover.covered_periods(periods)
    return covered


def missing_readings(customer_id: int, as_of: dt.date) -> list[dict]:
    """Each (contract, device, meter, period) ended by `as_of` whose overage waits for a closing reading.

    Plain data for invoicing's run report: contract id and number, device id and serial, meter, period index, start
    and end, and `grace_until` (the last day a reading still closes the period).
    """
    kept = db.session.info.pop(_USAGE, None)
    # What `billable_lines` just computed for the same customer, when nothing was written since.
    usages = kept[1] if kept is not None and kept[0] == (customer_id, as_of) else customer_usage(customer_id, as_of)
    return _missing(usages, as_of)


def all_missing_readings(as_of: dt.date) -> list[dict]:
    """`missing_readings` of every customer with a billable contract, by customer and contract, in a few queries
    whatever the number of customers, contracts and devices (the dashboard's figure, the missing readings page)."""
    return _missing(customer_usage(None, as_of), as_of)


def _missing(usages: list[tuple[Contract, dict]], as_of: dt.date) -> list[dict]:
    covered = covered_periods(
        {(contract.id, period.start) for contract, _usage in usages for period in ended_periods(contract, as_of)}
    )
    result = []
    for contract, usage in usages:
        ended = {period.index: period for period in ended_periods(contract, as_of)}
        for (index, meter), devices in sorted(usage.items()):
            period = ended[index]
            if (contract.id, period.start) in covered:
                continue  # billed by job accounting (chargeback): no reading is waited for
            for device in devices:
                if device.usage is None and device.active_days > 0:
                    result.append(
                        {
                            "contract_id": contract.id,
                            "contract_number": contract.number,
                            "device_id": device.device_id,
                            "serial": device.serial,
                            "meter": meter,
                            "period_index": index,
                            "period_start": period.start,
                            "period_end": period.end,
                            "grace_until": period.end + dt.timedelta(days=contract.grace_days),
                        }
                    )
    return result
