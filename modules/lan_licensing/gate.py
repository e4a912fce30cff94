"""The loader's licence gate: the features the installed licence (or the evaluation) entitles, read at startup."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask

from core.db import db
from modules.lan_licensing import installation, state
from modules.lan_licensing.models import InstalledLicence, LicenceInstallation


def entitled_features(app: Flask) -> set[str] | None:
    """None (every module) while evaluating; the licence's modules; an empty set (only core) otherwise.

    On a database where this module's tables do not exist yet (before `flask db upgrade`) every module is entitled,
    so the first upgrade creates them all and the evaluation starts.
    """
    with app.app_context():
        try:
            tables = set(sa.inspect(db.engine).get_table_names())
            if not {LicenceInstallation.__tablename__, InstalledLicence.__tablename__} <= tables:
                return None
            row = installation.get()
            installation.note_time(row)
            now_state = state.compute()
            db.session.commit()
            return now_state.features
        finally:
            db.session.remove()
