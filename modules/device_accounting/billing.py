"""Chargeback for invoicing: the job accounting of a contract's devices billed per period instead of meter overage.

A contract with a `Chargeback` row bills, for each of its periods that starts on or after the chargeback's
`start_date` and has ended, one line per (function, colour, paper size): quantity = the sides its devices made in
the period while on the contract (from the daily rollups), unit price = the customer's price per side, amount
rounded to 0.01 HALF_UP by invoicing. Those periods are the ones `ChargebackCover` tells metering it must not bill
(core.extension_points.METER_BILLING_COVER): the same rule on both sides, so never both and never neither.

Never billed twice: each line's `extra["chargeback"]` carries the sides it bills; when invoicing takes the line it
sends `core.signals.lines_billed` and `record_billed` stores them (`ChargebackBilled`), in invoicing's transaction.
A later run bills only the sides beyond those (jobs a device sent late), under a new reference; `lines_released` (a
cancelled draft, a credit note) deletes them, so the sides can be billed again.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import format_date
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from core import signals
from core.context import ModuleContext
from core.db import db, utcnow
from core.extension_points import BILLABLE_SOURCE, METER_BILLING_COVER, BillableLine
from modules.device_accounting.models import Chargeback, ChargebackBilled, DailyUsage
from modules.device_accounting.pricing import side_price
from modules.device_accounting.reports import function_label
from modules.rentals import periods as terms
from modules.rentals.models import Contract

SOURCE = "device_accounting"
BILLABLE_STATES = ("active", "suspended", "ended")
_BOUNDED = 500  # ids per IN list

Key = tuple[int, int, str, str, str]  # contract, period index, function, colour, paper size


def covered(start_date: dt.date, period_start: dt.date) -> bool:
    """The one rule: a period is billed by chargeback, not meter overage, when it starts on or after the contract's
    chargeback start date (a date inside a period takes effect from the next period)."""
    return period_start >= start_date


def chargeback_periods(contract: Contract, chargeback: Chargeback, as_of: dt.date) -> list[terms.Period]:
    """The contract's periods ended before `as_of` that chargeback bills."""
    if as_of <= contract.start_date:
        return []
    return [
        period
        for period in terms.periods(contract.start_date, contract.period_months, contract.end_date, as_of)
        if period.end < as_of and covered(chargeback.start_date, period.start)
    ]


def _contracts(customer_id: int) -> list[tuple[Contract, Chargeback]]:
    rows = db.session.execute(
        sa.select(Contract, Chargeback)
        .join(Chargeback, Chargeback.contract_id == Contract.id)
        .where(Contract.customer_id == customer_id, Contract.state.in_(BILLABLE_STATES))
        .options(selectinload(Contract.lines))
        .order_by(Contract.id)
    )
    return [(contract, chargeback) for contract, chargeback in rows]


def billed_sides(contract_ids: list[int]) -> dict[Key, tuple[int, int]]:
    """Per key, the sides already billed and the highest line number that billed some (0: none)."""
    billed: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    for start in range(0, len(contract_ids), _BOUNDED):
        rows = db.session.scalars(
            sa.select(ChargebackBilled).where(ChargebackBilled.contract_id.in_(contract_ids[start : start + _BOUNDED]))
        )
        for row in rows:
            entry = billed[(row.contract_id, row.period_index, row.function, row.colour, row.paper_size)]
            entry[0] += row.sides
            entry[1] = max(entry[1], int(row.source_ref.rsplit(":", 1)[1]))
    return {key: (sides, number) for key, (sides, number) in billed.items()}


def period_sides(contract: Contract, periods: list[terms.Period]) -> dict[Key, int]:
    """Sides per key made by the contract's devices in `periods`, on the days each device was on the contract."""
    if not periods or not contract.lines:
        return {}
    stays: dict[int, list[tuple[dt.date, dt.date | None]]] = defaultdict(list)
    for line in contract.lines:
        stays[line.device_id].append((line.start_date, line.end_date))
    starts = [period.start for period in periods]
    rows = db.session.execute(
        sa.select(
            DailyUsage.device_id,
            DailyUsage.day,
            DailyUsage.function,
            DailyUsage.paper_size,
            sa.func.sum(DailyUsage.sides_bw),
            sa.func.sum(DailyUsage.sides_color),
        )
        .where(
            DailyUsage.customer_id == contract.customer_id,
            DailyUsage.device_id.in_(sorted(stays)),
            DailyUsage.day >= periods[0].start,
            DailyUsage.day <= periods[-1].end,
        )
        .group_by(DailyUsage.device_id, DailyUsage.day, DailyUsage.function, DailyUsage.paper_size)
    )
    sides: dict[Key, int] = defaultdict(int)
    for device_id, day, function, paper_size, bw, color in rows:
        if not any(start <= day and (end is None or day <= end) for start, end in stays[device_id]):
            continue
        period = periods[bisect.bisect_right(starts, day) - 1]
        if not period.start <= day <= period.end:
            continue
        for colour, count in (("bw", int(bw or 0)), ("color", int(color or 0))):
            if count:
                sides[(contract.id, period.index, function, colour, paper_size)] += count
    return dict(sides)


def _colour_label(colour: str) -> str:
    return _("black and white") if colour == "bw" else _("colour")


def _size_label(size: str) -> str:
    return {"letter": _("Letter"), "other": _("other size")}.get(size, size)


class ChargebackSource:
    """The `billable_source` of device accounting: chargeback lines of the contracts that bill job accounting."""

    name = SOURCE

    def billable_lines(self, customer_id: int, as_of: dt.date) -> list[BillableLine]:
        contracts = _contracts(customer_id)
        if not contracts:
            return []
        billed = billed_sides([contract.id for contract, _chargeback in contracts])
        prices: dict[tuple[str, str, str, dt.date], Decimal | None] = {}
        lines: list[BillableLine] = []
        for contract, chargeback in contracts:
            periods = chargeback_periods(contract, chargeback, as_of)
            by_index = {period.index: period for period in periods}
            for key, total in sorted(period_sides(contract, periods).items()):
                done, last = billed.get(key, (0, 0))
                if total <= done:
                    continue
                _contract_id, index, function, colour, paper_size = key
                period = by_index[index]
                # The prices valid on the period's first day: a new list applies from the next period on.
                wanted = (function, colour, paper_size, period.start)
                if wanted not in prices:
                    entry, _list = side_price(customer_id, function, colour, paper_size, False, period.start)
                    prices[wanted] = entry.price_per_side if entry is not None else None
                price = prices[wanted]
                if not price:
                    continue  # nothing to bill: the list does not price these sides, or prices them at 0
                lines.append(_line(contract, period, key, total - done, price, late=last > 0, number=last + 1))
        return lines


def _line(
    contract: Contract, period: terms.Period, key: Key, sides: int, price: Decimal, late: bool, number: int
) -> BillableLine:
    contract_id, index, function, colour, paper_size = key
    description = _(
        "%(function)s, %(colour)s, %(size)s: sides, contract %(number)s, %(start)s to %(end)s",
        function=function_label(function),
        colour=_colour_label(colour),
        size=_size_label(paper_size),
        number=contract.number,
        start=format_date(period.start, "short"),
        end=format_date(period.end, "short"),
    )
    if late:
        description += " " + _("(jobs received after the period was billed)")
    return BillableLine(
        source=SOURCE,
        source_ref=f"chargeback:{contract_id}:{index}:{function}:{colour}:{paper_size}:{number}",
        description=description,
        quantity=Decimal(sides),
        unit_price=price,
        vat_rate=contract.vat_rate,
        vat_code=contract.vat_code,
        kind="chargeback",
        contract_id=contract_id,
        period_start=period.start,
        period_end=period.end,
        unit=_("sides"),
        extra={
            "chargeback": {
                "contract_id": contract_id,
                "period_index": index,
                "function": function,
                "colour": colour,
                "paper_size": paper_size,
                "sides": sides,
            },
            "amount": str(terms.line_amount(sides, price)),
            **({"invoice_notes": contract.invoice_notes} if contract.invoice_notes else {}),
        },
    )


class ChargebackCover:
    """Tells metering which contract periods chargeback bills, so their overage is not billed too."""

    def covered_periods(self, periods: set[tuple[int, dt.date]]) -> set[tuple[int, dt.date]]:
        contract_ids = sorted({contract_id for contract_id, _start in periods if contract_id is not None})
        starts: dict[int, dt.date] = {}
        for start in range(0, len(contract_ids), _BOUNDED):
            rows = db.session.execute(
                sa.select(Chargeback.contract_id, Chargeback.start_date).where(
                    Chargeback.contract_id.in_(contract_ids[start : start + _BOUNDED])
                )
            )
            starts.update(dict(rows.all()))
        return {
            (contract_id, period_start)
            for contract_id, period_start in periods
            if contract_id in starts and period_start is not None and covered(starts[contract_id], period_start)
        }


def record_billed(sender: object, source: str, lines: list[tuple[str, dict]], **_kwargs: object) -> None:
    """`lines_billed` receiver: store the sides of chargeback's billed lines, in invoicing's transaction."""
    if source != SOURCE:
        return
    rows = [
        {**(extra or {})["chargeback"], "source_ref": source_ref, "created_at": utcnow()}
        for source_ref, extra in lines
        if "chargeback" in (extra or {})
    ]
    if rows:
        db.session.execute(sa.insert(ChargebackBilled), rows)


def release_billed(sender: object, source: str, source_refs: list[str], **_kwargs: object) -> None:
    """`lines_released` receiver: the lines are unbilled again, so are their sides."""
    if source != SOURCE or not source_refs:
        return
    refs = sorted(set(source_refs))
    for start in range(0, len(refs), _BOUNDED):
        db.session.execute(
            sa.delete(ChargebackBilled).where(ChargebackBilled.source_ref.in_(refs[start : start + _BOUNDED]))
        )


def register(ctx: ModuleContext) -> None:
    ctx.register(BILLABLE_SOURCE, ChargebackSource())
    ctx.register(METER_BILLING_COVER, ChargebackCover())
    signals.lines_billed.connect(record_billed, sender=ctx.app, weak=False)
    signals.lines_released.connect(release_billed, sender=ctx.app, weak=False)
