"""The invoicing tests' app: rentals, invoicing and a test-only usage source, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from conftest import backends, database_url, make_app, migrate
from modules.invoicing.tests.fixture_modules.fake_usage import module as fake_usage

PACKAGES = ["modules", "modules.invoicing.tests.fixture_modules"]
MODULES = ["rentals", "invoicing", "fake_usage"]


def invoicing_app(db_url: str, **overrides):
    return make_app(db_url, COPYDESK_MODULE_PACKAGES=PACKAGES, COPYDESK_MODULES=MODULES, **overrides)


@pytest.fixture(scope="session", params=backends())
def _migrated_app(request, tmp_path_factory):
    """Overrides the root fixture: the same migrated app, with the modules billing needs and the fake source."""
    app = invoicing_app(database_url(request.param, tmp_path_factory.mktemp(request.param), name="invoicing"))
    migrate(app)
    app = invoicing_app(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["TEST_BACKEND"] = request.param
    yield app
    with app.app_context():
        from core.db import db

        db.engine.dispose()


@pytest.fixture(autouse=True)
def _fake_usage_reset():
    fake_usage.reset()
    yield
    fake_usage.reset()
