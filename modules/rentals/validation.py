"""Rentals input checks: the conversions and limits that forms, API and CSV cells share, with the same messages."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _

from core.db import db
from core.models import Partner
from core.validation import Checker as FieldChecker

MAX_PAGES = 2**31 - 1
# Dates outside these years are typing mistakes; the bound also keeps period arithmetic far from year 9999.
MIN_YEAR, MAX_YEAR = 1990, 2199


class Checker(FieldChecker):
    """Core's checker with the conversions rentals' forms, API and CSV cells need, each with the same messages."""

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

    def integer(self, field: str, value: Any, minimum: int, maximum: int, required: bool = True) -> int | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(field, _("This field is required."))
            return None
        if isinstance(value, bool | float):
            self.fail(field, _("Not a whole number: %(value)s", value=value))
            return None
        if isinstance(value, str) and not re.fullmatch(r"\s*[+-]?\d{1,20}\s*", value):
            self.fail(field, _("Not a whole number: %(value)s", value=value[:40]))
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

    def decimal(
        self, field: str, value: Any, places: int, limit: Decimal, required: bool = True, maximum: Decimal | None = None
    ) -> Decimal | None:
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
            self.fail(field, _("Not a number: %(value)s", value=value))
            return None
        if not number.is_finite():
            self.fail(field, _("Not a number: %(value)s", value=value))
        elif number < 0:
            self.fail(field, _("Must not be negative."))
        elif number >= (limit if maximum is None else maximum + Decimal("1e-9")):
            self.fail(field, _("Too large: at most %(max)s.", max=maximum if maximum is not None else limit))
        elif number != number.quantize(Decimal(1).scaleb(-places)):
            self.fail(field, _("At most %(places)d decimal places.", places=places))
        else:
            return number.quantize(Decimal(1).scaleb(-places))
        return None

    def date(self, field: str, value: Any, required: bool = True) -> dt.date | None:
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

    def boolean(self, field: str, value: Any, default: bool = False) -> bool:
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "y", "si", "sì", "x"):
            return True
        if text in ("0", "false", "no", "n"):
            return False
        self.fail(field, _("Not yes or no: %(value)s", value=value))
        return default

    def choice(self, field: str, value: Any, choices: Iterable[Any], required: bool = True) -> Any:
        choices = tuple(choices)
        if isinstance(value, bool):
            value = str(value)
        if value is None or value == "":
            if required:
                self.fail(field, _("This field is required."))
            return None
        for choice in choices:
            if value == choice or str(value).strip() == str(choice):
                return choice
        self.fail(field, _("Choose one of: %(choices)s", choices=", ".join(str(c) for c in choices)))
        return None


def check_customer(check: Checker, field: str, customer_id: Any, required: bool) -> Partner | None:
    number = check.integer(field, customer_id, 1, MAX_PAGES, required=required)
    if number is None:
        return None
    customer = db.session.get(Partner, number)
    if customer is None or not customer.is_customer:
        check.fail(field, _("There is no customer with id %(id)s.", id=number))
        return None
    return customer


def as_int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value
