"""The accounting tests' app: core, invoicing and accounting, on SQLite and PostgreSQL (a database of its own).

Every test that uses the app starts with the default chart of accounts and journals installed (the rows are wiped
after each test, the chart with them).
"""

from __future__ import annotations

import pytest

from conftest import backends, database_url, make_app, migrate

MODULES = ["invoicing", "accounting"]


def accounting_app(db_url: str, **overrides):
    return make_app(db_url, COPYDESK_MODULES=MODULES, **overrides)


@pytest.fixture(scope="session", params=backends())
def _migrated_app(request, tmp_path_factory):
    """Overrides the root fixture: the migrated app with accounting and what it depends on."""
    app = accounting_app(database_url(request.param, tmp_path_factory.mktemp(request.param), name="accounting"))
    migrate(app)
    app = accounting_app(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config["TEST_BACKEND"] = request.param
    yield app
    with app.app_context():
        from core.db import db

        db.engine.dispose()


@pytest.fixture(autouse=True)
def _chart(request):
    """The default chart and journals, in every test that has an app."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    from core.db import db
    from modules.accounting import chart

    with app.app_context():
        chart.install()
        db.session.commit()
        db.session.remove()
    yield
