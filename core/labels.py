"""Human labels: how each record is named and linked, what each enum code says, and the formatters built on them."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, g, has_request_context, url_for
from flask_admin.model import BaseModelView as ModelView
from flask_babel import format_date, format_datetime, format_decimal
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from core import clock


@dataclass
class _Record:
    label: Callable[[Any], str]
    url: Callable[[Any], str | None] | None = None


@dataclass
class LabelRegistry:
    """Kept per app in `app.extensions["copydesk_labels"]`; filled by core and each module's setup(ctx)."""

    records: dict[type, _Record] = field(default_factory=dict)
    enums: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    kinds: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    loaders: dict[str, Callable[[set], Any]] = field(default_factory=dict)


def _registry(app: Flask | None = None) -> LabelRegistry:
    app = app or current_app
    return app.extensions.setdefault("copydesk_labels", LabelRegistry())


def register_record(
    app: Flask, model: type, label: Callable[[Any], str], url: Callable[[Any], str | None] | None = None
) -> None:
    """Name the records of `model` (`label(obj)`: "1/2026", "AB123 · Canon iR C3226") and, optionally, link them
    (`url(obj)`); without `url` a record links to the details page of the admin view showing its model, if the
    user may open it."""
    _registry(app).records[model] = _Record(label, url)


def register_enum(app: Flask, name: str, labels: Mapping[str, Any]) -> None:
    """The translated labels (lazy) of an enum's codes, e.g. `register_enum(app, "invoice.state", {"draft": ...})`;
    registering a name again adds codes to it (each module adds its tables to "audit.table")."""
    enums = _registry(app).enums
    enums[name] = {**enums.get(name, {}), **labels}


def register_kind(
    app: Flask, kind: str, find: Callable[[Any], Any], load_many: Callable[[set], Any] | None = None
) -> None:
    """How to find a record of `kind` ("contract", "device", "meter") from its key, for a module that knows only the
    key of another module's record (invoicing knows contracts by id): `find(key)` returns the record or None;
    `load_many(keys)` loads many at once (with what their labels need) so that `find` then costs no query."""
    _registry(app).kinds[kind] = find
    if load_many is not None:
        _registry(app).loaders[kind] = load_many


def preload(kind: str, keys: Any) -> None:
    """Load the records of `kind` a page is about to name, in one query rather than one per row."""
    wanted = {key for key in keys if key not in (None, "")}
    load_many = _registry().loaders.get(kind)
    if wanted and load_many is not None:
        # The session keeps loaded rows only while something refers to them: this request does, until it ends.
        g.setdefault("labels_preloaded", []).extend(load_many(wanted))


def record_for(kind: str, key: Any) -> Any:
    """The record of `kind` with this key, when a module registered the kind and the record exists."""
    find = _registry().kinds.get(kind)
    return find(key) if find is not None and key not in (None, "") else None


def link_for(kind: str, key: Any) -> Markup:
    """`record_link` of the record of `kind` with this key; its key alone only when no enabled module knows it."""
    record = record_for(kind, key)
    if record is None:
        return Markup(escape("" if key is None else key))
    return record_link(record)


def label_for(kind: str, key: Any) -> str:
    """`record_label` of the record of `kind` with this key, for documents (no link); its key when none is known."""
    record = record_for(kind, key)
    return ("" if key is None else str(key)) if record is None else record_label(record)


def enum_label(name: str, code: Any) -> str:
    """The label of `code` in enum `name`; an unknown code is shown as it is."""
    if code is None or code == "":
        return ""
    labels = _registry().enums.get(name, {})
    return str(labels.get(code, code))


def enums() -> dict[str, Mapping[str, Any]]:
    """Every registered enum of the current app (the page scan looks for their raw codes)."""
    return dict(_registry().enums)


def _record_entry(obj: Any) -> _Record | None:
    records = _registry().records
    for cls in type(obj).__mro__:
        if cls in records:
            return records[cls]
    return None


def record_label(obj: Any) -> str:
    """How a person names this record: a contract's number, a device's serial and model, a customer's name."""
    if obj is None:
        return ""
    entry = _record_entry(obj)
    return str(entry.label(obj)) if entry else str(obj)


def _admin_url(obj: Any) -> str | None:
    """The details page (else the edit page) of the first admin view of this record's model the user may open."""
    admin = current_app.extensions["copydesk"].admin
    for view in admin._views if admin else ():
        if not isinstance(view, ModelView) or view.model is not type(obj) or not view.is_accessible():
            continue
        ident = view.get_pk_value(obj)
        if view.can_view_details:
            return url_for(f"{view.endpoint}.details_view", id=ident)
        if view.can_edit:
            return url_for(f"{view.endpoint}.edit_view", id=ident)
    return None


def record_url(obj: Any) -> str | None:
    if obj is None or not has_request_context():
        return None
    entry = _record_entry(obj)
    if entry and entry.url:
        return entry.url(obj)
    return _admin_url(obj)


def record_link(obj: Any) -> Markup:
    """The record's label as a link to its page (plain text when there is no page the user may open)."""
    if obj is None:
        return Markup("")
    label = record_label(obj)
    url = record_url(obj)
    return Markup('<a href="{}">{}</a>').format(url, label) if url else Markup(escape(label))


def local_datetime(value: dt.datetime | None, format: str = "short") -> str:
    """A moment in the user's language, in the dealer's time zone, labelled with it ("1/12/26, 14:30 CET")."""
    if value is None:
        return ""
    local = clock.as_utc(value).astimezone(clock.timezone())
    return f"{format_datetime(local.replace(tzinfo=None), format)} {local.tzname()}"


def local_date(value: dt.date | None, format: str = "medium") -> str:
    if value is None:
        return ""
    return format_date(value, format)


def number(value: Any) -> str:
    return "" if value is None else format_decimal(value)


def init_app(app: Flask) -> None:
    """Jinja filters for templates: `obj|record_link`, `obj|record_label`, `code|enum_label("invoice.state")`,
    `moment|local_datetime` (dealer's time zone, labelled), `day|local_date`, `value|number`; and the global
    `link_for("contract", id)` / `label_for("device", id)`."""
    app.extensions.setdefault("copydesk_labels", LabelRegistry())
    app.jinja_env.globals.update(link_for=link_for, label_for=label_for)
    app.jinja_env.filters.update(
        record_link=record_link,
        record_label=record_label,
        enum_label=lambda code, enum: enum_label(enum, code),
        local_datetime=local_datetime,
        local_date=local_date,
        number=number,
    )


# Column formatters (Flask-Admin's `column_formatters` signature: view, context, model, name).


def _attribute(model: Any, name: str) -> Any:
    value = model
    for part in name.split("."):
        value = getattr(value, part, None)
        if value is None:
            return None
    return value


def link_column(attribute: str | None = None) -> Callable[..., Markup]:
    """A column showing a related record (or, without `attribute`, the row itself) as a labelled link."""
    return lambda view, context, model, name: record_link(_attribute(model, attribute or name) if attribute else model)


def enum_column(enum: str, attribute: str | None = None) -> Callable[..., str]:
    """A column showing an enum code by its translated label."""
    return lambda view, context, model, name: enum_label(enum, _attribute(model, attribute or name))


def _type_datetime(view: Any, value: dt.datetime, name: str | None = None) -> str:
    return local_datetime(value)


def _type_date(view: Any, value: dt.date, name: str | None = None) -> str:
    return local_date(value)


def _type_decimal(view: Any, value: Any, name: str | None = None) -> str:
    return number(value)


def _type_record(view: Any, value: Any, name: str | None = None) -> Markup:
    return record_link(value)


def _type_list(view: Any, value: list, name: str | None = None) -> Any:
    from core.db import Base

    if value and all(isinstance(item, Base) for item in value):
        return Markup(", ").join(record_link(item) for item in value)
    return ", ".join(str(item) for item in value)


def type_formatters(base: Mapping[type, Callable]) -> dict[type, Callable]:
    """Flask-Admin type formatters: moments in the dealer's time zone, dates and numbers in the user's language,
    related records by their label as links. datetime comes before date (a datetime is a date)."""
    from core.db import Base

    return {
        **base,
        dt.datetime: _type_datetime,
        dt.date: _type_date,
        decimal.Decimal: _type_decimal,
        float: _type_decimal,
        list: _type_list,
        Base: _type_record,
    }


# Headers shared by every model view, so no column falls back to Flask-Admin's English "Created At".
COMMON_COLUMN_LABELS = {
    "created_at": _l("Created"),
    "updated_at": _l("Updated"),
    "notes": _l("Notes"),
    "name": _l("Name"),
    "customer": _l("Customer"),
    "status": _l("Status"),
    "state": _l("State"),
}
