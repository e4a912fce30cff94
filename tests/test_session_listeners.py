"""Session listeners come from setup(ctx) and belong to one app: a module that is not enabled listens to nothing."""

from __future__ import annotations

import pytest

from conftest import backends, database_url, make_app, migrate
from core.db import db
from core.settings import set_setting
from modules.metering import billing


@pytest.fixture(params=backends())
def rentals_only_app(request, tmp_path):
    app = make_app(database_url(request.param, tmp_path, name="listeners"), COPYDESK_MODULES=["rentals"])
    migrate(app)
    yield app
    with app.app_context():
        db.engine.dispose()


def write_and_commit() -> None:
    set_setting("listeners.probe", 1)
    db.session.flush()
    db.session.commit()


def test_metering_left_out_keeps_none_of_its_session_listeners_though_its_code_is_imported(rentals_only_app):
    registry = rentals_only_app.extensions["copydesk"]
    assert not registry.enabled("metering")
    assert billing.forget_usage not in registry.session_listeners.get("after_flush", [])
    with rentals_only_app.app_context():
        db.session.info[billing._USAGE] = "not metering's business here"
        write_and_commit()
        assert db.session.info[billing._USAGE] == "not metering's business here"


def test_metering_enabled_drops_its_kept_usage_when_anything_is_written(app, db_session):
    listeners = app.extensions["copydesk"].session_listeners
    assert billing.forget_usage in listeners["after_flush"]
    assert billing.forget_usage_on_write in listeners["do_orm_execute"]
    db.session.info[billing._USAGE] = "usage of a customer"
    write_and_commit()
    assert billing._USAGE not in db.session.info
