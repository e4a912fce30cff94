"""marshmallow fields for API schemas: storable strings, UTC timestamps, decimals as exact JSON strings."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import marshmallow as ma
from flask_babel import gettext as _

DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"


def _is_utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class String(ma.fields.String):
    """A string without NUL characters or lone surrogates (PostgreSQL refuses both); use it instead of ma's."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        result = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in result or not _is_utf8_encodable(result):
            raise ma.ValidationError(_("Must not contain NUL characters or invalid Unicode."))
        return result


class Email(String, ma.fields.Email):
    """An email address (documented with format "email")."""


class UtcDateTime(ma.fields.DateTime):
    """An ISO 8601 timestamp with its UTC offset; naive values (SQLite hands those back) are UTC, as stored."""

    def _serialize(self, value: dt.datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return super()._serialize(value, attr, obj, **kwargs)


class DecimalString(ma.fields.Decimal):
    """A Decimal as a JSON string with its exact digits ("12.50"); accepts strings and integers, never floats."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("as_string", True)
        metadata = {"pattern": DECIMAL_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(*args, metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> decimal.Decimal:
        # A JSON number has already been through a binary float: its exact digits are lost.
        if isinstance(value, float):
            raise ma.ValidationError(_('Send decimal numbers as strings, e.g. "12.50".'))
        return super()._deserialize(value, attr, data, **kwargs)
