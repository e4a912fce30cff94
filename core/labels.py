"""Human labels: how each record is named and linked, what each enum code says, and the formatters built on them."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app, g, has_request_context, url_for
from flask_admin.model import BaseModelView as ModelView
from flask_babel import format_date, format_datetime, format_decimal
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.collections import InstrumentedList

from core import clock


@dataclass
class _Record:
    label: Callable[[Any], str]
    url: Callable[[Any], str | None] | None = None
    needs: tuple[str, ...] = ()


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
    app: Flask,
    model: type,
    label: Callable[[Any], str],
    url: Callable[[Any], str | None] | None = None,
    needs: tuple[str, ...] = (),
) -> None:
    """Name the records of `model` (`label(obj)`: "1/2026", "AB123 · Canon iR C3226") and, optionally, link them
    (`url(obj)`); without `url` a record links to the details page of the admin view showing its model, if the
    user may open it. `needs` are the relationships the label reads ("model.manufacturer"), which a list loads with
    its rows so that naming them costs no query per row."""
    _registry(app).records[model] = _Record(label, url, tuple(needs))


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


def record_models() -> list[type]:
    """Every model whose records are named (the page scan looks for their labels shown without a link)."""
    return list(_registry().records)


def _class_entry(model: type) -> _Record | None:
    records = _registry().records
    for cls in model.__mro__:
        if cls in records:
            return records[cls]
    return None


def _record_entry(obj: Any) -> _Record | None:
    return _class_entry(type(obj))


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


# Related records in admin columns: found from the mapping, shown by label and link, loaded with the list's rows.


@dataclass(frozen=True)
class RelatedPath:
    """The relationships a column reads through (`device.customer.name`: device, then customer) and the model they
    lead to, whose record the column names (`device.customer.name` the customer, `device.serial` the device); only
    the last relationship may be a collection."""

    keys: tuple[str, ...]
    model: type

    def named(self) -> bool:
        """Whether the records it leads to have labels (else the column shows its plain value)."""
        return _class_entry(self.model) is not None


def related_path(model: type, name: str) -> RelatedPath | None:
    """The relationships column `name` of `model` reads through, or None for a column of the row itself."""
    keys: list[str] = []
    current = model
    parts = name.split(".")
    for position, part in enumerate(parts):
        relationship = sa.inspect(current).relationships.get(part)
        if relationship is None:
            break
        if relationship.uselist and position < len(parts) - 1:
            return None  # through a collection: no one record to name
        current = relationship.mapper.class_
        keys.append(part)
    return RelatedPath(tuple(keys), current) if keys else None


def foreign_model(model: type, name: str) -> type | None:
    """The model whose primary key column `name` of `model` holds, when it is a foreign key without a relationship
    (a meter replacement's `meter` code)."""
    if "." in name or name in sa.inspect(model).relationships:
        return None
    column = sa.inspect(model).columns.get(name)
    if column is None or len(column.foreign_keys) != 1:
        return None
    target = next(iter(column.foreign_keys)).column
    for mapper in model.registry.mappers:
        if mapper.local_table is target.table and list(mapper.primary_key) == [target]:
            return mapper.class_
    return None


def _walk(row: Any, keys: tuple[str, ...]) -> Any:
    value = row
    for key in keys:
        value = getattr(value, key, None)
        if value is None:
            return None
    return value


def _show(value: Any, link: bool) -> Any:
    if isinstance(value, list | tuple):
        shown = [_show(item, link) for item in value]
        return Markup(", ").join(shown) if link else ", ".join(shown)
    return record_link(value) if link else record_label(value)


def related_column(path: RelatedPath, link: bool = True) -> Callable[..., Any]:
    """A column reading through `path`: the record it names by its label as a link; the plain value when that
    record's model has no labels. In an export (`link` False) the record's label, or the very field a dotted column
    names (a spreadsheet's `device.serial` is the serial)."""

    def format(view: Any, context: Any, model: Any, name: str) -> Any:
        if not path.named() or (not link and name.count(".") >= len(path.keys)):
            return _attribute(model, name)
        value = _walk(model, path.keys)
        return "" if value is None else _show(value, link)

    return format


def foreign_column(target: type, link: bool = True) -> Callable[..., Any]:
    """A foreign-key column shown as the record it points to (loaded once per page by `preload_records`)."""

    def format(view: Any, context: Any, model: Any, name: str) -> Any:
        key = getattr(model, name, None)
        if key is None or _class_entry(target) is None:
            return key
        known, record = kept_record(target, key)
        if not known:
            record = preload_records(target, [key]).get(key)
        return key if record is None else _show(record, link)

    return format


def _chain(model: type, keys: tuple[str, ...]) -> Any:
    option = None
    current = model
    for key in keys:
        attribute = getattr(current, key)
        option = selectinload(attribute) if option is None else option.selectinload(attribute)
        current = attribute.property.mapper.class_
    return option


def _label_paths(model: type) -> list[tuple[str, ...]]:
    entry = _class_entry(model)
    return [tuple(need.split(".")) for need in (entry.needs if entry else ())]


def related_loads(model: type, paths: list[RelatedPath]) -> list[Any]:
    """Loader options for a query of `model` whose columns read through `paths`: each named record with what its
    label needs, a few queries for the whole page whatever its number of rows."""
    wanted: set[tuple[str, ...]] = set()
    for path in paths:
        if path.named():
            wanted.add(path.keys)
            wanted.update(path.keys + need for need in _label_paths(path.model))
    return [_chain(model, keys) for keys in sorted(wanted)]


def _kept(model: type) -> dict:
    return g.setdefault("labels_records", {}).setdefault(model, {}) if has_request_context() else {}


def preload_records(model: type, keys: Any) -> dict:
    """Load the records of `model` with these primary keys (and what their labels need) in one query per 500, kept
    for the rest of the request; returns them by key. A key with no record is remembered as missing."""
    from core.db import db

    kept = _kept(model)
    wanted = sorted({key for key in keys if key not in (None, "") and key not in kept}, key=str)
    primary_key = sa.inspect(model).primary_key[0]
    options = [_chain(model, need) for need in _label_paths(model)]
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        kept.update(dict.fromkeys(chunk))
        for record in db.session.scalars(sa.select(model).where(primary_key.in_(chunk)).options(*options)):
            kept[getattr(record, primary_key.key)] = record
    return {key: kept.get(key) for key in keys if key not in (None, "")}


def kept_record(model: type, key: Any) -> tuple[bool, Any]:
    """(known, record) for a key `preload_records` loaded in this request: (True, None) when it has no record."""
    kept = _kept(model)
    return (key in kept, kept.get(key))


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
    from core.db import db

    if value and all(isinstance(item, db.Model) for item in value):
        return Markup(", ").join(record_link(item) for item in value)
    return ", ".join(str(item) for item in value)


def type_formatters(base: Mapping[type, Callable]) -> dict[type, Callable]:
    """Flask-Admin type formatters: moments in the dealer's time zone, dates and numbers in the user's language,
    related records by their label as links. datetime comes before date (a datetime is a date). Models are
    `db.Model` (Flask-SQLAlchemy's subclass of core.db.Base, which the models do not inherit from directly)."""
    from core.db import db

    lists = {kind: _type_list for kind in (list, InstrumentedList)}
    return {
        **base,
        **lists,
        dt.datetime: _type_datetime,
        dt.date: _type_date,
        decimal.Decimal: _type_decimal,
        float: _type_decimal,
        db.Model: _type_record,
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
