"""Settings asked for once per row cost one query per transaction, and a change is seen as soon as it can be."""

from __future__ import annotations

from core.db import db
from core.models import Setting
from core.settings import get_setting, set_setting
from tests.query_counter import count_queries


def test_unset_setting_asked_for_every_row_is_looked_up_once(app, db_session):
    with count_queries(app) as queries:
        zones = {get_setting("metering.timezone", "Europe/Rome") for _row in range(50)}

    assert zones == {"Europe/Rome"} and len(queries) == 1


def test_setting_staged_in_the_transaction_is_read_back_at_once(app, db_session):
    assert get_setting("metering.timezone", "Europe/Rome") == "Europe/Rome"
    set_setting("metering.timezone", "Europe/Madrid")

    assert get_setting("metering.timezone", "Europe/Rome") == "Europe/Madrid"
    db_session.rollback()
    assert get_setting("metering.timezone", "Europe/Rome") == "Europe/Rome"


def test_setting_stored_by_another_process_is_seen_in_the_next_transaction(app, db_session):
    assert get_setting("metering.jump_factor", 3) == 3
    with db.engine.begin() as other:
        other.execute(Setting.__table__.insert().values(key="metering.jump_factor", value=5))

    db_session.commit()

    assert get_setting("metering.jump_factor", 3) == 5
