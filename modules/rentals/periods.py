"""Contract period rules: period boundaries, proration, escalation, fee timing and overage bands (billing-rules.md).

Plain functions over dates, ints and Decimals; no database, no app. Arithmetic is exact (integer ratios) and only
the final value is rounded HALF_UP, so no float ever touches money.

Choices the rules leave open:
- A device's `joined` and `left` dates are both inclusive: `left` is its last day on the contract, so a device that
  leaves on the day another joins counts that day for both.
- Anniversaries are `add_months(start_date, 12 * n)`: a contract started on 29 February escalates on 28 February in
  non-leap years, the same day its yearly (or monthly) period starts, so escalation always changes at a period start.
- Price bands must end with one unbounded band (`up_to=None`), so every overage page has a price.
- Escalation percentages are increases: a negative percent is rejected.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import lru_cache

from flask_babel import gettext as _

PERIOD_MONTHS = (1, 2, 3, 6, 12)
FEE_TIMINGS = ("advance", "arrears")
CENT = Decimal("0.01")
PRICE_QUANTUM = Decimal("0.000001")

Band = tuple[int | None, Decimal]
Ratio = tuple[int, int]  # an exact value: numerator, denominator (> 0)


@dataclass(frozen=True)
class Period:
    """Period `index` of a contract: `start`..`end` inclusive, `end` clipped to the contract's end date."""

    index: int
    start: date
    end: date
    period_days: int
    active_days: int


def add_months(start: date, months: int) -> date:
    """`start` moved by `months` calendar months; a day missing in the target month becomes that month's last day."""
    year, month0 = divmod(start.year * 12 + start.month - 1 + months, 12)
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(start.day, last_day))


def periods(
    start_date: date, period_months: int, end_date: date | None = None, until: date | None = None
) -> list[Period]:
    """Every period that starts on or before `until` and on or before `end_date`; one of the two is required."""
    if isinstance(period_months, bool) or not isinstance(period_months, int) or period_months not in PERIOD_MONTHS:
        raise ValueError(
            _("Period months must be one of %(choices)s, not %(value)s", choices="1, 2, 3, 6, 12", value=period_months)
        )
    if end_date is not None and end_date < start_date:
        raise ValueError(_("The end date %(end)s is before the start date %(start)s", end=end_date, start=start_date))
    if end_date is None and until is None:
        raise ValueError(_("An open-ended contract needs an 'until' date to list its periods"))
    return list(_periods(start_date, period_months, end_date, until))


@lru_cache(maxsize=4096, typed=True)
def _periods(start_date: date, period_months: int, end_date: date | None, until: date | None) -> tuple[Period, ...]:
    """`periods` once checked, computed once for the same terms (a dealer's contracts share a few)."""
    last_start = min(d for d in (end_date, until) if d is not None)
    result = []
    index = 0
    while (start := add_months(start_date, index * period_months)) <= last_start:
        full_end = add_months(start_date, (index + 1) * period_months) - timedelta(days=1)
        end = full_end if end_date is None else min(full_end, end_date)
        result.append(
            Period(
                index=index,
                start=start,
                end=end,
                period_days=(full_end - start).days + 1,
                active_days=(end - start).days + 1,
            )
        )
        index += 1
    return tuple(result)


def device_active_days(period: Period, joined: date, left: date | None) -> int:
    """Days of `period` the device is on the contract: from `joined` to `left` (its last day), both inclusive."""
    if left is not None and left < joined:
        raise ValueError(_("The leaving date %(left)s is before the joining date %(joined)s", left=left, joined=joined))
    first = max(period.start, joined)
    last = period.end if left is None else min(period.end, left)
    return max(0, (last - first).days + 1)


def prorate_pages(included: int, active_days: int, period_days: int) -> int:
    """`included` pages for `active_days` of `period_days`, rounded to whole pages HALF_UP."""
    if included < 0:
        raise ValueError(_("Included pages must not be negative, not %(value)s", value=included))
    _check_days(active_days, period_days)
    return (2 * included * active_days + period_days) // (2 * period_days)


def prorate_money(amount: Decimal, active_days: int, period_days: int) -> Decimal:
    """`amount` for `active_days` of `period_days`, rounded to 0.01 HALF_UP."""
    _check_days(active_days, period_days)
    numerator, denominator = _exact(amount, "amount")
    return _round_half_up((numerator * active_days, denominator * period_days), CENT)


def escalation_years(start_date: date, period_start: date) -> int:
    """Whole years from `start_date` to `period_start`: anniversaries reached on or before `period_start`."""
    if period_start < start_date:
        raise ValueError(
            _(
                "The period start %(period)s is before the contract start %(start)s",
                period=period_start,
                start=start_date,
            )
        )
    years = period_start.year - start_date.year
    if add_months(start_date, 12 * years) > period_start:
        years -= 1
    return years


def escalate_fee(fee: Decimal, percent: Decimal, years: int) -> Decimal:
    """`fee` * (1 + percent/100)^years, rounded to 0.01 HALF_UP."""
    return _round_half_up(_times(_exact(fee, "fee"), _escalation_factor(percent, years)), CENT)


def escalate_price(price: Decimal, percent: Decimal, years: int) -> Decimal:
    """`price` * (1 + percent/100)^years, rounded to 6 decimals HALF_UP."""
    return _round_half_up(_times(_exact(price, "price"), _escalation_factor(percent, years)), PRICE_QUANTUM)


def period_fee(fee: Decimal, escalation_percent: Decimal, contract_start: date, period: Period) -> Decimal:
    """The fee of `period`: escalated to the period's start first, then prorated by its active days."""
    escalated = escalate_fee(fee, escalation_percent, escalation_years(contract_start, period.start))
    return prorate_money(escalated, period.active_days, period.period_days)


def fee_due(period: Period, fee_timing: str, as_of: date) -> bool:
    """Whether the period's fee is due by `as_of`: `advance` once it has started, `arrears` once it has ended."""
    if fee_timing == "advance":
        return period.start <= as_of
    if fee_timing == "arrears":
        return period.end < as_of
    raise ValueError(
        _("Fee timing must be one of %(choices)s, not %(value)s", choices=", ".join(FEE_TIMINGS), value=fee_timing)
    )


def validate_bands(bands: list[Band]) -> None:
    """Raise ValueError unless `bands` (up_to, price) have ascending cumulative bounds and end unbounded."""
    if not bands:
        raise ValueError(_("Price bands: at least one band is required"))
    previous = 0
    for number, (up_to, price) in enumerate(bands, start=1):
        if _exact(price, "price")[0] < 0:
            raise ValueError(_("Price bands: band %(number)d has a negative price", number=number))
        if up_to is None:
            if number != len(bands):
                raise ValueError(_("Price bands: only the last band may be unbounded (band %(number)d)", number=number))
            continue
        if up_to <= previous:
            raise ValueError(
                _("Price bands: the upper bounds must be ascending and positive (band %(number)d)", number=number)
            )
        previous = up_to
    if bands[-1][0] is not None:
        raise ValueError(_("Price bands: the last band must have no upper bound"))


def band_amounts(overage_pages: int, bands: list[Band]) -> list[tuple[int, Decimal]]:
    """The overage split over the bands in order, as (pages, price) for each band that gets pages."""
    validate_bands(bands)
    if overage_pages < 0:
        raise ValueError(_("Overage pages must not be negative, not %(value)s", value=overage_pages))
    result = []
    filled = 0
    for up_to, price in bands:
        pages = overage_pages - filled if up_to is None else min(overage_pages, up_to) - filled
        if pages <= 0:
            break
        result.append((pages, price))
        filled += pages
    return result


def line_amount(quantity: int, unit_price: Decimal) -> Decimal:
    """A line's amount: quantity * unit price, rounded to 0.01 HALF_UP."""
    numerator, denominator = _exact(unit_price, "unit price")
    return _round_half_up((quantity * numerator, denominator), CENT)


def _check_days(active_days: int, period_days: int) -> None:
    if period_days < 1 or not 0 <= active_days <= period_days:
        raise ValueError(
            _(
                "Active days must be between 0 and the period's %(period_days)s days, not %(active_days)s",
                period_days=period_days,
                active_days=active_days,
            )
        )


def _escalation_factor(percent: Decimal, years: int) -> Ratio:
    numerator, denominator = _exact(percent, "escalation percent")
    if numerator < 0:
        raise ValueError(_("The escalation percent must not be negative, not %(value)s", value=percent))
    if years < 0:
        raise ValueError(_("Escalation years must not be negative, not %(value)s", value=years))
    return _power(numerator, denominator, years)


@lru_cache(maxsize=1024)
def _power(numerator: int, denominator: int, years: int) -> Ratio:
    """(1 + numerator / (100 * denominator)) ** years, exactly."""
    base = 100 * denominator
    return (base + numerator) ** years, base**years


def _times(left: Ratio, right: Ratio) -> Ratio:
    return left[0] * right[0], left[1] * right[1]


def _exact(value: Decimal | int, name: str) -> Ratio:
    # Floats are refused outright: a binary float is never the amount the user typed.
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{name} must be a Decimal, not {type(value).__name__}")
    if isinstance(value, int):
        return value, 1
    try:
        return value.as_integer_ratio()
    except OverflowError:  # infinity (NaN raises ValueError itself)
        raise ValueError(f"{name} must be a finite number, not {value}") from None


def _round_half_up(value: Ratio, quantum: Decimal) -> Decimal:
    """`value` to a multiple of `quantum` (a power of ten), halves away from zero, exactly."""
    numerator, denominator = value
    exponent = quantum.as_tuple().exponent
    # steps = value / quantum = numerator * 10**-exponent / denominator
    if exponent <= 0:
        steps_numerator, steps_denominator = abs(numerator) * 10**-exponent, denominator
    else:
        steps_numerator, steps_denominator = abs(numerator), denominator * 10**exponent
    rounded = (2 * steps_numerator + steps_denominator) // (2 * steps_denominator)
    # Built from its digits: multiplying by the quantum would round to the context's 28 digits.
    return Decimal(f"{'-' if numerator < 0 and rounded > 0 else ''}{rounded}E{exponent}")
