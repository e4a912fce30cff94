"""The one validation every reading channel goes through; nothing is written when a field is wrong."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from babel import Locale
from babel.numbers import get_decimal_symbol, get_group_symbol
from flask_babel import format_date, format_decimal, get_locale, ngettext
from flask_babel import gettext as _

from core import clock
from core.clock import as_utc, local_date
from core.db import db, utcnow
from core.i18n import parse_whole_number
from core.settings import get_setting
from core.validation import Checker
from modules.metering.history import (
    KnownValue,
    current_segment,
    known_values,
    local_time,
    meter_label,
    show_time,
    stays,
)
from modules.metering.models import READING_SOURCES, SUPPLY_COLOURS
from modules.rentals.models import ContractLine, Device

# Device clocks and browsers drift: a reading a few minutes "in the future" is still now.
CLOCK_SKEW = dt.timedelta(minutes=5)
DEFAULT_JUMP_FACTOR = 3
DEFAULT_JUMP_MIN_HISTORY_DAYS = 30
DEFAULT_JUMP_MIN_PAGES = 500
# Channels that people and devices use; `estimate` readings are made only by the estimate service.
ENTRY_SOURCES = tuple(source for source in READING_SOURCES if source != "estimate")
INTEGER_RE = re.compile(r"\s*\d+\s*")


@dataclass
class Checked:
    """A reading that passed validation: its clean values and the status it gets."""

    device: Device
    taken_at: dt.datetime
    counters: dict[str, int]
    supplies: dict[str, int]
    source: str
    status: str = "accepted"
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)


def typed_number_symbols() -> dict[str, str]:
    """The separators `typed_counter` reads in the user's language, as Babel gives them to `parse_whole_number`: the
    decimal and group symbols and the group sizes ("3,3"). The portal's counter form carries them, so its hint while
    typing reads a counter as the server will (static/readings.js)."""
    locale = get_locale() or Locale.parse("en")
    grouping = locale.decimal_formats[None].grouping
    return {
        "decimal": get_decimal_symbol(locale),
        "group": get_group_symbol(locale),
        "grouping": ",".join(str(size) for size in grouping),
    }


def typed_counter(value: str) -> int | str:
    """A counter typed in a form in the user's language (`12.345` in Italian, `12,345` in English) as its number;
    anything else is left as typed, for `validate_reading` to refuse with its message (`12.345,6` in English)."""
    number = parse_whole_number(value)
    return value.strip() if number is None else number


def parse_taken_at(check: Checker, name: str, value: Any) -> dt.datetime | None:
    """An aware UTC datetime from a datetime, a date or ISO text; a time without zone is the dealer's local time.

    A date alone means noon of that day, so it stays on that day in every time zone near the dealer's.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        check.fail(name, _("This field is required."))
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(12))
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                dt.datetime.combine(dt.date.fromisoformat(text), dt.time(12))
                if len(text) == 10
                else dt.datetime.fromisoformat(text.replace(" ", "T", 1))
            )
        except ValueError:
            check.fail(name, _("Not a date and time (YYYY-MM-DD HH:MM): %(value)s", value=text[:40]))
            return None
    if not isinstance(value, dt.datetime):
        check.fail(name, _("Not a date and time (YYYY-MM-DD HH:MM): %(value)s", value=str(value)[:40]))
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=clock.timezone())
    if not 1990 <= value.year <= 2199:
        check.fail(name, _("The year must be between %(min)d and %(max)d.", min=1990, max=2199))
        return None
    return value.astimezone(dt.UTC).replace(microsecond=0)


def validate_reading(
    device_id: Any,
    taken_at: Any,
    counters: Any,
    supplies: Any = None,
    source: Any = "staff",
    now: dt.datetime | None = None,
    exclude_id: int | None = None,
    customer_id: int | None = None,
) -> Checked:
    """Check a reading as every channel must; raise ValidationError naming each bad field, or return its status.

    Returns status `accepted`, or `pending_review` with the reason when a counter jumps far beyond the device's usual
    volume; `warnings` lists the device's meters that were not given. A reading sent by a customer (`customer_id`)
    must be dated while the device was on one of that customer's contracts.
    """
    check = Checker()
    now = as_utc(now or utcnow())
    device = check_device(check, device_id)
    source = _check_source(check, source)
    when = parse_taken_at(check, "taken_at", taken_at)
    if when is not None and when > now + CLOCK_SKEW:
        check.fail("taken_at", _("The reading is dated in the future (%(when)s).", when=show_time(when)))
    if (
        customer_id is not None
        and device is not None
        and when is not None
        and not any(stay.covers(when) for stay in stays(customer_id, [device.id]))
    ):
        check.fail(
            "taken_at",
            _(
                "The reading date %(date)s is outside the time device %(serial)s has been on your contracts.",
                date=local_date(when),
                serial=device.serial,
            ),
        )
    if device is not None and when is not None:
        first = db.session.scalar(
            sa.select(sa.func.min(ContractLine.start_date)).where(ContractLine.device_id == device.id)
        )
        if first is not None and local_date(when) < first:
            check.fail(
                "taken_at",
                _(
                    "Device %(serial)s was installed on %(date)s, after this reading's date.",
                    serial=device.serial,
                    date=first,
                ),
            )
    clean_counters = _check_counters(check, device, counters)
    clean_supplies = _check_supplies(check, device, supplies)
    check.raise_if_any()
    checked = Checked(device, when, clean_counters, clean_supplies, source)
    missing = [meter for meter in device.model.meter_codes if meter not in clean_counters]
    if missing:
        checked.warnings.append(_("No counter given for: %(meters)s.", meters=", ".join(missing)))
    _check_history(check, checked, exclude_id, for_customer=customer_id is not None)
    check.raise_if_any()
    return checked


def check_device(check: Checker, device_id: Any) -> Device | None:
    if isinstance(device_id, Device):
        return device_id
    if isinstance(device_id, str) and device_id.strip().isdigit():
        device_id = int(device_id)
    if isinstance(device_id, bool) or not isinstance(device_id, int):
        check.fail("device_id", _("Choose a device."))
        return None
    device = db.session.get(Device, device_id) if 0 < device_id < 2**31 else None
    if device is None:
        check.fail("device_id", _("There is no device with id %(id)s.", id=device_id))
    return device


def _check_source(check: Checker, source: Any) -> str:
    if source in ENTRY_SOURCES:
        return source
    check.fail("source", _("Choose one of: %(choices)s", choices=", ".join(ENTRY_SOURCES)))
    return "staff"


def _check_counters(check: Checker, device: Device | None, counters: Any) -> dict[str, int]:
    if not isinstance(counters, dict) or not counters:
        check.fail("counters", _("Give at least one counter."))
        return {}
    meters = device.model.meter_codes if device is not None else None
    clean = {}
    for meter, value in counters.items():
        name = f"counters.{str(meter)[:40]}"
        if meters is not None and meter not in meters:
            check.fail(
                name,
                _(
                    "Device %(serial)s has no %(meter)s meter (it has %(meters)s).",
                    serial=device.serial,
                    meter=str(meter)[:40],
                    meters=", ".join(meters),
                ),
            )
            continue
        number = check.counter(name, value, str(meter))
        if number is not None:
            clean[meter] = number
    return clean


def _check_supplies(check: Checker, device: Device | None, supplies: Any) -> dict[str, int]:
    if supplies is None or supplies == {}:
        return {}
    if not isinstance(supplies, dict):
        check.fail("supplies", _("Not a list of toner levels."))
        return {}
    colours = SUPPLY_COLOURS if device is None or device.model.color else ("black",)
    clean = {}
    for colour, value in supplies.items():
        name = f"supplies.{str(colour)[:40]}"
        if colour not in colours:
            check.fail(
                name, _("Unknown toner colour %(colour)s: use %(colours)s.", colour=colour, colours=", ".join(colours))
            )
            continue
        if isinstance(value, str) and INTEGER_RE.fullmatch(value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            check.fail(name, _("The %(colour)s toner level must be a whole percent from 0 to 100.", colour=colour))
            continue
        clean[colour] = value
    return clean


def _check_history(check: Checker, checked: Checked, exclude_id: int | None, for_customer: bool = False) -> None:
    """Counters must not go backwards (without a replacement) and should not jump far beyond the usual volume.

    `for_customer`: the messages speak to a customer, who cannot record a meter replacement."""
    factor = get_setting("metering.jump_factor", DEFAULT_JUMP_FACTOR)
    min_days = get_setting("metering.jump_min_history_days", DEFAULT_JUMP_MIN_HISTORY_DAYS)
    min_pages = get_setting("metering.jump_min_pages", DEFAULT_JUMP_MIN_PAGES)
    reasons = []
    for meter, value in checked.counters.items():
        name = f"counters.{meter}"
        values = known_values(checked.device.id, meter, exclude_id)
        segment = current_segment(checked.device.id, meter, values, checked.taken_at)
        before = [known for known in segment if known.at <= checked.taken_at]
        after = [known for known in segment if known.at > checked.taken_at]
        same = [k for k in before if k.at == checked.taken_at and k.what == "reading" and k.value != value]
        if same:
            check.fail(
                name,
                _(
                    "The %(meter)s counter %(value)s differs from the one already recorded at the same time, "
                    "%(last)s on %(date)s.",
                    meter=meter,
                    value=value,
                    last=same[0].value,
                    date=show_time(same[0].at),
                ),
            )
            continue
        if before and value < max(known.value for known in before):
            previous = max(before, key=lambda known: known.value)
            check.fail(name, _lower_message(meter, value, previous, for_customer))
            continue
        if after and value > min(known.value for known in after):
            following = min(after, key=lambda known: known.value)
            check.fail(
                name,
                _(
                    "The %(meter)s counter %(value)s is higher than a later one, %(later)s on %(date)s.",
                    meter=meter,
                    value=value,
                    later=following.value,
                    date=show_time(following.at),
                ),
            )
            continue
        average = _average_daily_pages(before, min_days)
        if average is None:
            continue
        last = before[-1]
        days = max(1.0, (checked.taken_at - last.at).total_seconds() / 86400)
        allowed = max(average * days * float(factor), float(min_pages))
        if value - last.value > allowed:
            rise, days = value - last.value, round(days)
            reasons.append(
                _(
                    "The %(meter)s counter rose by %(pages)s in %(days)s; "
                    "this device usually prints about %(average)s.",
                    meter=meter_label(meter),
                    pages=ngettext("%(pages)s page", "%(pages)s pages", rise, pages=format_decimal(rise)),
                    days=ngettext("%(days)s day", "%(days)s days", days, days=format_decimal(days)),
                    average=ngettext(
                        "%(pages)s page a day",
                        "%(pages)s pages a day",
                        round(average),
                        pages=format_decimal(round(average)),
                    ),
                )
            )
    if reasons:
        checked.status = "pending_review"
        checked.reason = " ".join(reasons)


def _lower_message(meter: str, value: int, previous: KnownValue, for_customer: bool) -> str:
    """A counter below the last known one, in the reader's terms: the meter's label, numbers and the date in their
    language, and what they can do about it (a customer checks the number or tells the dealer; staff record the
    replacement)."""
    values = {"meter": meter_label(meter), "value": format_decimal(value), "last": format_decimal(previous.value)}
    if for_customer:
        return _(
            "The %(meter)s counter you entered, %(value)s, is lower than the last reading, %(last)s on %(date)s. "
            "Please check the number on the device; if the counter was replaced or reset, tell us.",
            date=format_date(local_date(previous.at), "long"),
            **values,
        )
    return _(
        "The %(meter)s counter %(value)s is lower than the last one, %(last)s on %(date)s. "
        "If the meter was replaced or reset, record the replacement first.",
        date=local_time(previous.at),
        **values,
    )


def _average_daily_pages(segment: list[KnownValue], min_days: int) -> float | None:
    """Pages per day over the history in `segment`, or None when it covers fewer than `min_days` days."""
    if len(segment) < 2:
        return None
    first, last = segment[0], segment[-1]
    days = (last.at - first.at).total_seconds() / 86400
    if days < min_days:
        return None
    return max(0, last.value - first.value) / days
