"""The bridge tests' app: rentals, inventory, invoicing and the bridge, on SQLite and PostgreSQL (a database of its
own)."""

from __future__ import annotations

import pytest

from conftest import backends, database_url, make_app, migrate

MODULES = ["rentals", "inventory", "invoicing", "rentals_inventory"]


def bridge_app(db_url: str, **overrides):
    return make_app(db_url, COPYDESK_MODULES=MODULES, **overrides)


@pytest.fixture(scope="session", params=backends())
def _migrated_app(request, tmp_path_factory):
    """Overrides the root fixture: the migrated app with the bridge and what it and billing need, nothing else."""
    app = bridge_app(database_url(request.param, tmp_path_factory.mktemp(request.param), name="rentals_inventory"))
    migrate(app)
    app = bridge_app(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["TEST_BACKEND"] = request.param
    yield app
    with app.app_context():
        from core.db import db

        db.engine.dispose()
