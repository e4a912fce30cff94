"""marshmallow fields for API schemas: storable strings, UTC timestamps, exact decimals, strict integers, booleans."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import marshmallow as ma
from flask_babel import gettext as _

DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"
TEXT_BOOLEANS = {"true": True, "false": False}

# True while the API's argument parser loads a location whose values are all text (query string, path).
_loading_text: ContextVar[bool] = ContextVar("api_loading_text", default=False)


@contextmanager
def loading_text(text: bool) -> Iterator[None]:
    """Within: Integer and Boolean read text ("2", "true"), as a query string carries them; else JSON types only."""
    token = _loading_text.set(text)
    try:
        yield
    finally:
        _loading_text.reset(token)


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


class Integer(ma.fields.Integer):
    """An integer: in a JSON body a JSON integer only (not 2.589e-42, 30.0, "30" or true); in a query, its digits."""

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _loading_text.get())):
            raise self.make_error("invalid", input=value)
        return super()._validated(value)


class Boolean(ma.fields.Boolean):
    """true or false: in a JSON body JSON's true and false only (not 0, 1 or "yes"); in a query, those words."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, str) and _loading_text.get():
            value = TEXT_BOOLEANS.get(value.strip().lower(), value)
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)
