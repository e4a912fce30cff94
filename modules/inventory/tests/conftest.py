"""The inventory tests' app: core and inventory only, on SQLite and PostgreSQL (a database of its own)."""

from __future__ import annotations

import pytest

from conftest import backends, database_url, make_app, migrate

MODULES = ["inventory"]


def inventory_app(db_url: str, **overrides):
    return make_app(db_url, COPYDESK_MODULES=MODULES, **overrides)


@pytest.fixture(scope="session", params=backends())
def _migrated_app(request, tmp_path_factory):
    """Overrides the root fixture: the migrated app with inventory and nothing else it does not need."""
    app = inventory_app(database_url(request.param, tmp_path_factory.mktemp(request.param), name="inventory"))
    migrate(app)
    app = inventory_app(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["TEST_BACKEND"] = request.param
    yield app
    with app.app_context():
        from core.db import db

        db.engine.dispose()
