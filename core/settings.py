"""Dealer settings: typed defaults declared in code, values stored as JSON in core_setting."""

from __future__ import annotations

from typing import Any

from core.db import db
from core.models import Setting


def get_setting(key: str, default: Any = None) -> Any:
    row = db.session.get(Setting, key)
    return default if row is None else row.value


def set_setting(key: str, value: Any) -> None:
    """Stage a setting change in the current transaction (the caller commits)."""
    row = db.session.get(Setting, key) or Setting(key=key)
    row.value = value
    db.session.add(row)
