"""One clock: the dealer's time zone (core.timezone) decides today and a moment's date, for every module."""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
import time_machine

from conftest import make_app
from core import clock
from core.db import db
from core.models import Setting
from core.settings import get_setting, set_setting


def test_today_is_the_dealers_date_not_the_servers(app, db_session):
    set_setting("core.timezone", "America/New_York")
    with time_machine.travel(dt.datetime(2027, 1, 1, 3, 0, tzinfo=dt.UTC), tick=False):
        assert clock.today() == dt.date(2026, 12, 31)
        set_setting("core.timezone", "Europe/Rome")
        assert clock.today() == dt.date(2027, 1, 1)
    assert clock.local_date(dt.datetime(2026, 12, 31, 23, 30)) == dt.date(2027, 1, 1)  # naive: UTC
    assert clock.day_start(dt.date(2027, 1, 1)) == dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC)


def test_unknown_time_zone_falls_back_to_rome_and_says_so(app, db_session, caplog):
    set_setting("core.timezone", "Europe/Atlantis")
    with caplog.at_level(logging.WARNING):
        assert clock.timezone().key == "Europe/Rome"
    assert "Europe/Atlantis" in caplog.text


def test_upgrade_keeps_the_time_zone_a_dealer_set_for_metering(empty_db_url):
    from alembic import command

    from core.migrate import alembic_config

    app = make_app(empty_db_url, COPYDESK_MODULES=[])
    with app.app_context():
        command.upgrade(alembic_config(), "core_0002")
        with db.engine.begin() as conn:
            conn.execute(sa.insert(Setting).values(key="metering.timezone", value="Europe/Madrid"))
        command.upgrade(alembic_config(), "core@head")
        assert get_setting("core.timezone") == "Europe/Madrid"
        assert get_setting("metering.timezone") is None
