"""Inventory input checks: the conversions that forms, API, CLI and CSV cells share, with the same messages."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _

from core.validation import Checker as FieldChecker

# Quantities are Numeric(12, 3): below a billion units, at most three decimal places.
MAX_QUANTITY = Decimal("1000000000")
MAX_MONEY = Decimal("10000000000")
MIN_YEAR, MAX_YEAR = 1990, 2199
TRUE_WORDS = {"1", "true", "yes", "y", "si", "sì", "sí", "x"}
FALSE_WORDS = {"0", "false", "no", "n", ""}


class Checker(FieldChecker):
    """Core's checker with the conversions inventory needs."""

    def text(self, field: str, value: Any, max_length: int, required: bool = False) -> str | None:
        text = "" if value is None else str(value).strip()
        if not text:
            if required:
                self.fail(field, _("This field is required."))
            return None
        if len(text) > max_length or "\x00" in text:
            self.fail(field, _("At most %(max)d characters, without NUL characters.", max=max_length))
            return None
        return text

    def number(self, field: str, value: Any, places: int, limit: Decimal, required: bool = True) -> Decimal | None:
        """A Decimal from 0 below `limit` with at most `places` decimals ("1,5" as typed in Italian is 1.5)."""
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(field, _("This field is required."))
            return None
        if isinstance(value, bool | float):
            self.fail(field, _("Not a number: %(value)s", value=value))
            return None
        try:
            number = Decimal(value.strip().replace(",", ".")) if isinstance(value, str) else Decimal(value)
        except (InvalidOperation, ValueError, TypeError):
            self.fail(field, _("Not a number: %(value)s", value=str(value)[:40]))
            return None
        if not number.is_finite():
            self.fail(field, _("Not a number: %(value)s", value=str(value)[:40]))
        elif number < 0:
            self.fail(field, _("Must not be negative."))
        elif number >= limit:
            self.fail(field, _("Too large: at most %(max)s.", max=limit - Decimal(1).scaleb(-places)))
        elif number != number.quantize(Decimal(1).scaleb(-places)):
            self.fail(field, _("At most %(places)d decimal places.", places=places))
        else:
            return number
        return None

    def quantity(self, field: str, value: Any, whole: bool = False) -> Decimal | None:
        """A quantity moved: more than zero; `whole` for serial-tracked products."""
        if isinstance(value, str) and value.strip().startswith("-"):
            self.fail(field, _("The quantity must be more than zero."))
            return None
        if isinstance(value, int | Decimal) and not isinstance(value, bool) and value <= 0:
            self.fail(field, _("The quantity must be more than zero."))
            return None
        number = self.number(field, value, 3, MAX_QUANTITY)
        if number is None:
            return None
        if number == 0:
            self.fail(field, _("The quantity must be more than zero."))
            return None
        if whole and number != number.to_integral_value():
            self.fail(field, _("A product tracked by serial number moves in whole units."))
            return None
        return number

    def integer(self, field: str, value: Any, minimum: int, maximum: int, required: bool = True) -> int | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(field, _("This field is required."))
            return None
        if isinstance(value, bool | float) or (
            isinstance(value, str) and not re.fullmatch(r"\s*[+-]?\d{1,20}\s*", value)
        ):
            self.fail(field, _("Not a whole number: %(value)s", value=str(value)[:40]))
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(field, _("Not a whole number: %(value)s", value=str(value)[:40]))
            return None
        if not minimum <= number <= maximum:
            self.fail(field, _("Must be between %(min)d and %(max)d.", min=minimum, max=maximum))
            return None
        return number

    def boolean(self, field: str, value: Any, default: bool = False) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False if word else default
        self.fail(field, _("Write yes or no."))
        return default

    def date(self, field: str, value: Any, required: bool = False) -> dt.date | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(field, _("This field is required."))
            return None
        if isinstance(value, dt.datetime):
            value = value.date()
        if not isinstance(value, dt.date):
            try:
                value = dt.date.fromisoformat(str(value).strip())
            except ValueError:
                self.fail(field, _("Not a date (YYYY-MM-DD): %(value)s", value=str(value)[:40]))
                return None
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            self.fail(field, _("The year must be between %(min)d and %(max)d.", min=MIN_YEAR, max=MAX_YEAR))
            return None
        return value

    def choice(self, field: str, value: Any, choices: tuple[str, ...], required: bool = True) -> str | None:
        text = "" if value is None else str(value).strip()
        if not text:
            if required:
                self.fail(field, _("This field is required."))
            return None
        if text not in choices:
            self.fail(field, _("Choose one of: %(choices)s", choices=", ".join(choices)))
            return None
        return text
