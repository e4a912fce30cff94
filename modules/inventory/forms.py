"""What the back-office move forms and the van page post, read into values (ids, quantities, dates, serial lists),
each refused with a ValidationError naming its field; the conversions are inventory's own (validation.py)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from flask_babel import gettext as _

from core.validation import fail
from modules.inventory.validation import Checker

MAX_ID = 2**31 - 1
_SERIAL_SPLIT = re.compile(r"[\r\n,;]+")


def parse_quantity(text: str | None, field: str = "quantity") -> Decimal:
    """A quantity as typed ("1,5" or "1.5"), more than zero, at most 3 decimals."""
    check = Checker()
    quantity = check.quantity(field, text or "")
    check.raise_if_any()
    return quantity


def parse_date(text: str | None, field: str = "move_date") -> dt.date | None:
    """A date from an <input type="date"> (YYYY-MM-DD); empty: None (the move is dated today)."""
    check = Checker()
    value = check.date(field, text, required=False)
    check.raise_if_any()
    return value


def parse_id(text: str | None, field: str, required: bool = True) -> int | None:
    """A record chosen in a select: its id, or None when nothing was chosen and none is required."""
    value = (text or "").strip()
    if not value:
        if required:
            fail(field, _("Choose one."))
        return None
    if not value.isdigit() or not 0 < int(value) <= MAX_ID:
        fail(field, _("Choose one."))
    return int(value)


def serial_list(text: str | None) -> list[str]:
    """Serial numbers typed or scanned one per line (commas and semicolons also separate them)."""
    return [serial.strip() for serial in _SERIAL_SPLIT.split(text or "") if serial.strip()]


def optional_text(text: str | None, limit: int) -> str | None:
    value = (text or "").strip()
    return value[:limit] if value else None
