"""Language selection (user, else customer, else browser) and locale-aware formatting helpers."""

from __future__ import annotations

from flask import Flask, current_app, request
from flask_babel import format_currency, format_date, format_decimal
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


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.filters["date"] = format_date
    app.jinja_env.filters["decimal"] = format_decimal
    app.jinja_env.filters["money"] = lambda value, currency="EUR": format_currency(value, currency)
