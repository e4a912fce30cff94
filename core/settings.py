"""Dealer settings: typed defaults declared in code, values stored as JSON in core_setting."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.db import db
from core.models import Setting

_UNSET = "copydesk.unset_settings"


def get_setting(key: str, default: Any = None) -> Any:
    """The setting's value, or `default` while it is unset.

    A set key is read once per transaction (the identity map keeps it); an unset key is remembered as unset for the
    transaction too, so code asking once per row (the dealer's time zone for each reading) sends one query, not one
    per row.
    """
    session = db.session()
    if key in _unset_keys(session):
        return default
    row = session.get(Setting, key)
    if row is None:
        _unset_keys(session).add(key)
        return default
    return row.value


def set_setting(key: str, value: Any) -> None:
    """Stage a setting change in the current transaction (the caller commits)."""
    row = db.session.get(Setting, key) or Setting(key=key)
    row.value = value
    db.session.add(row)
    _unset_keys(db.session()).discard(key)


def _unset_keys(session: Session) -> set[str]:
    """The keys found unset in the session's current transaction."""
    transaction = session.get_transaction()
    known = session.info.get(_UNSET)
    if known is None or known[0] is not transaction:
        known = session.info[_UNSET] = (transaction, set())
    return known[1]
