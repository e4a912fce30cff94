"""Language selection (user, else customer, else browser) and locale-aware formatting helpers."""

from __future__ import annotations

import ast
import decimal
import re

from babel.numbers import NumberFormatError, parse_decimal
from flask import Flask, current_app, request
from flask_babel import format_currency, format_date, format_decimal, get_locale
from flask_login import current_user

from core.extensions import babel


def select_locale() -> str:
    languages = current_app.config["LANGUAGES"]
    user = current_user if current_user and getattr(current_user, "is_authenticated", False) else None
    if user is not None:
        if user.language in languages:
            return user.language
        customer = getattr(user, "customer", None)
        if customer is not None and customer.language in languages:
            return customer.language
    if request:
        forced = request.args.get("lang")
        if forced in languages:
            return forced
        return request.accept_languages.best_match(languages) or current_app.config["BABEL_DEFAULT_LOCALE"]
    return current_app.config["BABEL_DEFAULT_LOCALE"]


_SPACES = re.compile(r"[\s\u00a0\u202f\u2009]")


def parse_whole_number(text: str) -> int | None:
    """A whole number as typed in the user's language (`12.345` in Italian, `12,345` in English, spaces grouping);
    None when it is not one: a decimal part, or the separators of another language (`12.345,6` in English)."""
    text = _SPACES.sub("", text or "")
    if text.isascii() and text.isdigit():  # int("²") fails: other digits go through Babel
        return int(text)
    if not text or not all(char.isdigit() or not char.isalnum() for char in text):
        return None
    try:
        number = parse_decimal(text, locale=get_locale() or "en", strict=True)
    except (NumberFormatError, decimal.InvalidOperation):
        return None
    return int(number) if number == number.to_integral_value() and number >= 0 and number.is_finite() else None


def extract_manifest(fileobj, keywords, comment_tags, options):
    """Babel extractor for `__manifest__.py`: the title and summary users see (read as data, like the loader does)."""
    data = ast.literal_eval(fileobj.read().decode("utf-8"))
    for key in ("title", "summary"):
        if data.get(key):
            yield 1, "_", data[key], [f"module {key}"]


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.filters["date"] = format_date
    app.jinja_env.filters["decimal"] = format_decimal
    app.jinja_env.filters["money"] = lambda value, currency="EUR": format_currency(value, currency)
