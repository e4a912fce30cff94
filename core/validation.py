"""Bad input, written once: the error that carries field errors, the checker that collects them and converts
typed values (text, numbers, dates, choices), the counter limit."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, NoReturn

from flask_babel import gettext as _

# A counter has at most 12 digits: anything longer is a typing mistake (no copier prints a trillion pages).
# Rentals (installation and final counters) and metering (readings, replacements) both check against it.
MAX_COUNTER_DIGITS = 12
MAX_COUNTER = 10**MAX_COUNTER_DIGITS - 1
_DIGITS_RE = re.compile(r"\s*\d+\s*")
# Dates outside these years are typing mistakes; the bound also keeps period arithmetic far from year 9999.
MIN_YEAR, MAX_YEAR = 1990, 2199


class ValidationError(Exception):
    """Invalid input: `errors` maps each field (a dotted path such as `counters.bw`) to a message for the user.

    Raised before anything is written, by every module's services; views show the messages beside their fields.
    """

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors

    def messages(self, labels: dict[str, Any] | None = None) -> str:
        """The messages in one line, each after its field's label when `labels` names it."""
        labels = labels or {}
        return "; ".join(
            f"{labels[field]}: {message}" if field in labels else message for field, message in self.errors.items()
        )


def fail(field: str, message: str) -> NoReturn:
    """Refuse the input for one field."""
    raise ValidationError({field: message})


class Checker:
    """Collects field errors (the first one per field) while values are checked; `raise_if_any` raises them at once."""

    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def fail(self, field: str, message: str) -> None:
        self.errors.setdefault(field, message)

    def __contains__(self, field: str) -> bool:
        return field in self.errors

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError(dict(self.errors))

    # The conversions every module's forms, API and CSV cells share, each with the same messages.

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
        if text in ("1", "true", "yes", "y", "si", "sì", "sí", "x"):
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

    def counter(self, field: str, value: Any, meter: str) -> int | None:
        """A meter's counter: a whole number from 0 to MAX_COUNTER; digit strings (form, CSV) are accepted."""
        if value is None or (isinstance(value, str) and not value.strip()):
            self.fail(field, _("The %(meter)s counter is empty.", meter=meter))
            return None
        if isinstance(value, bool | float) or not isinstance(value, int | str):
            self.fail(field, _("The %(meter)s counter is not a whole number: %(value)s", meter=meter, value=value))
            return None
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("-") and text[1:].strip().isdigit():
                self.fail(field, _("The %(meter)s counter must not be negative.", meter=meter))
                return None
            if not _DIGITS_RE.fullmatch(text):
                self.fail(
                    field, _("The %(meter)s counter is not a whole number: %(value)s", meter=meter, value=text[:40])
                )
                return None
            if len(text.lstrip("0")) > MAX_COUNTER_DIGITS:
                self.fail(field, _too_long(meter))
                return None
            value = int(text)
        if value < 0:
            self.fail(field, _("The %(meter)s counter must not be negative.", meter=meter))
            return None
        if value > MAX_COUNTER:
            self.fail(field, _too_long(meter))
            return None
        return value


def _too_long(meter: str) -> str:
    return _("The %(meter)s counter has more than %(digits)d digits.", meter=meter, digits=MAX_COUNTER_DIGITS)
