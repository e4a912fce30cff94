"""Bad input, written once: the error that carries field errors, the checker that collects them, the counter limit."""

from __future__ import annotations

import re
from typing import Any, NoReturn

from flask_babel import gettext as _

# A counter has at most 12 digits: anything longer is a typing mistake (no copier prints a trillion pages).
# Rentals (installation and final counters) and metering (readings, replacements) both check against it.
MAX_COUNTER_DIGITS = 12
MAX_COUNTER = 10**MAX_COUNTER_DIGITS - 1
_DIGITS_RE = re.compile(r"\s*\d+\s*")


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
