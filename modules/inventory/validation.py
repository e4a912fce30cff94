"""Inventory input checks: the conversions that forms, API, CLI and CSV cells share, with the same messages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import gettext as _

from core.validation import Checker as FieldChecker

# Quantities are Numeric(12, 3): below a billion units, at most three decimal places.
MAX_QUANTITY = Decimal("1000000000")
MAX_MONEY = Decimal("10000000000")


class Checker(FieldChecker):
    """Core's checker (text, integer, date, choice, boolean) plus inventory's quantities and amounts."""

    def number(self, field: str, value: Any, places: int, limit: Decimal, required: bool = True) -> Decimal | None:
        """A Decimal from 0 below `limit` with at most `places` decimals ("1,5" as typed in Italian is 1.5)."""
        return self.decimal(field, value, places, limit, required=required)

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
