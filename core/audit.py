"""The audit log: every change to an audited model (`__audited__ = True`) and explicit events, with who and when."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import sqlalchemy as sa
from flask import has_request_context, request
from sqlalchemy import event
from sqlalchemy.orm import Session

from core import labels
from core.db import db
from core.models import AuditLog, User

SECRET_FIELDS = {"password_hash", "token_hash", "logo"}


def _actor() -> tuple[int | None, str, str | None]:
    if not has_request_context():
        return None, "system", None
    from flask_login import current_user

    ip = request.remote_addr
    if getattr(current_user, "is_authenticated", False):
        return current_user.id, current_user.email, ip
    return None, "anonymous", ip


def _jsonable(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value


def record(action: str, object_type: str | None = None, object_id: Any = None, changes: dict | None = None) -> None:
    """Add an audit entry to the current transaction (login, failed login, token use, ...)."""
    user_id, actor, ip = _actor()
    db.session.add(
        AuditLog(
            user_id=user_id,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            changes=changes,
            ip_address=ip,
        )
    )


def _changes(obj: Any, only_modified: bool) -> dict:
    state = sa.inspect(obj)
    out = {}
    for attr in state.mapper.column_attrs:
        hist = state.attrs[attr.key].history
        if only_modified and not hist.has_changes():
            continue
        new = hist.added[0] if hist.added else getattr(obj, attr.key)
        old = hist.deleted[0] if hist.deleted else None
        if attr.key in SECRET_FIELDS or attr.key in getattr(type(obj), "__audit_secret__", ()):
            out[attr.key] = "changed"
        else:
            out[attr.key] = [_jsonable(old), _jsonable(new)] if only_modified else _jsonable(new)
    return out


@event.listens_for(Session, "before_flush")
def _audit_changes(session: Session, flush_context, instances) -> None:
    entries = []
    for action, objs, only_modified in (
        ("create", session.new, False),
        ("update", session.dirty, True),
        ("delete", session.deleted, False),
    ):
        for obj in objs:
            if not getattr(type(obj), "__audited__", False):
                continue
            if action == "update" and not session.is_modified(obj, include_collections=False):
                continue
            entries.append((action, obj, _changes(obj, only_modified)))
    session.info.setdefault("audit_pending", []).extend(entries)


@event.listens_for(Session, "after_flush_postexec")
def _write_audit_entries(session: Session, flush_context) -> None:
    # Written after the flush so new rows have their ids; commit flushes these entries in its next pass.
    entries = session.info.pop("audit_pending", [])
    if not entries:
        return
    user_id, actor, ip = _actor()
    for action, obj, changes in entries:
        ident = sa.inspect(obj).identity
        session.add(
            AuditLog(
                user_id=user_id,
                actor=actor,
                action=action,
                object_type=type(obj).__tablename__,
                object_id=None if ident is None else ",".join(str(i) for i in ident),
                changes=changes,
                ip_address=ip,
            )
        )


# Reading the log: each entry's record, loaded for a whole page of entries at once.


def audited_model(table: str | None) -> type | None:
    """The model class of an audited table (`rentals_contract`: Contract), when its module is loaded."""
    if not table:
        return None
    return next((m.class_ for m in db.Model.registry.mappers if m.local_table.name == table), None)


def _record_key(model: type, object_id: str | None) -> Any:
    """An entry's `object_id` as the primary key of its model, or None (a composite key, a key of another type)."""
    keys = sa.inspect(model).primary_key
    if not object_id or len(keys) != 1:
        return None
    try:
        python_type = keys[0].type.python_type
    except NotImplementedError:
        return None
    if python_type is int:
        return int(object_id) if object_id.isdigit() else None
    return object_id if python_type is str else None


def preload_entries(entries: list[AuditLog]) -> None:
    """Load the records and users a page of entries names: one query per table named, not one per entry."""
    wanted: dict[type, set] = {}
    for entry in entries:
        model = audited_model(entry.object_type)
        key = _record_key(model, entry.object_id) if model is not None else None
        if key is not None:
            wanted.setdefault(model, set()).add(key)
    for model, keys in wanted.items():
        labels.preload_records(model, keys)
    labels.preload_records(User, {entry.user_id for entry in entries})


def entry_record(entry: AuditLog) -> tuple[type | None, Any]:
    """The model class of an entry's table and the record itself when it still exists (None once deleted)."""
    model = audited_model(entry.object_type)
    key = _record_key(model, entry.object_id) if model is not None else None
    if key is None:
        return model, None
    known, record = labels.kept_record(model, key)
    return model, record if known else labels.preload_records(model, [key]).get(key)


def entry_user(entry: AuditLog) -> User | None:
    """The user who acted, when known and still there."""
    if entry.user_id is None:
        return None
    known, user = labels.kept_record(User, entry.user_id)
    return user if known else labels.preload_records(User, [entry.user_id]).get(entry.user_id)
