"""The licence across modules: real readings through metering count in the licence year in their own transaction
(estimates never, a rolled-back one never, an expired licence never refuses a customer's), and device accounting's
devices in use show on the Licence page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa

from core.api.tokens import create_token
from core.db import db
from core.extensions import limiter
from core.models import User
from modules.device_accounting.operations import record_transaction
from modules.device_accounting.tests import core_support as da
from modules.lan_licensing import tiers
from modules.lan_licensing.models import ReadingCount
from modules.lan_licensing.tests.conftest import VENDOR_PUBLIC, install, licence_text
from modules.metering.estimates import create_due_estimates
from modules.metering.models import Reading
from modules.metering.readings import approve_reading, record_reading
from modules.metering.tests import support as s
from tests.auth_support import CSRF_RE, login, make_user

TODAY = dt.date.today()
EXPIRED = {"valid_from": TODAY - dt.timedelta(days=400), "expires_at": TODAY - dt.timedelta(days=31)}


@pytest.fixture
def trusted(app, monkeypatch):
    """The app trusting the tests' vendor key: `trusted(**fields)` installs a licence with those fields."""
    monkeypatch.setitem(app.config, "LICENCE_PUBLIC_KEYS", [VENDOR_PUBLIC])

    def install_licence(**fields):
        return install(app, licence_text(**fields))

    return install_licence


@pytest.fixture
def studio(app):
    """A customer with a colour device on a contract (a reading in November) and a customer user."""
    with app.app_context():
        customer = s.customer()
        machine = s.device("KY1")
        s.contract(customer.id, [(machine, {"bw": 10_000, "color": 2_000})], start_date="2026-01-01")
        s.read(machine, "2026-11-20", bw=11_000, color=2_100)
        db.session.commit()
        make_user("user@studio.it", "customer_admin", customer_id=customer.id)
        return {"customer": customer.id, "device": machine.id}


def counted(app) -> int:
    with app.app_context():
        return tiers.usage().readings


def portal_reading(app, device_id: int, bw: int, color: int):
    limiter.reset()
    client = app.test_client()
    assert login(client, "user@studio.it", url="/portal/login").status_code == 302
    url = "/portal/readings/enter"
    token = CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)
    fields = {f"d{device_id}-bw": str(bw), f"d{device_id}-color": str(color), "step": "confirm"}
    return client.post(url, data={"csrf_token": token, **fields})


def customer_token(app) -> str:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == "user@studio.it"))
        plaintext = create_token(user, "sync")[1]
        db.session.commit()
        return plaintext


def api_reading(app, device_id: int, bw: int, hours_ago: int = 0):
    taken_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours_ago)
    return app.test_client().post(
        "/api/v1/readings",
        json={"device_id": device_id, "taken_at": taken_at.isoformat(), "counters": {"bw": bw}},
        headers={"Authorization": f"Bearer {customer_token(app)}"},
    )


def test_readings_accepted_through_the_portal_and_the_api_count_in_the_licence_year(app, trusted, studio):
    trusted(tier_name="Tiny", tier_readings=5)
    assert counted(app) == 0
    answer = api_reading(app, studio["device"], 11_010, hours_ago=6)
    assert answer.status_code == 201 and answer.get_json()["status"] == "accepted", answer.get_json()
    assert counted(app) == 1
    # A jump far beyond the usual volume is held for review: not accepted, not counted until staff accept it.
    held = api_reading(app, studio["device"], 19_000, hours_ago=3)
    assert held.get_json()["status"] == "pending_review", held.get_json()
    assert counted(app) == 1
    with app.app_context():
        approve_reading(db.session.get(Reading, held.get_json()["id"]), None)
        db.session.commit()
    assert counted(app) == 2
    assert portal_reading(app, studio["device"], 19_001, 2_101).status_code == 302
    with app.app_context():
        assert db.session.scalars(sa.select(Reading.status).where(Reading.source == "portal")).all() == ["accepted"]
        assert db.session.execute(sa.select(ReadingCount.licence_id, ReadingCount.readings)).all() == [
            ("evaluation", 1),  # the November reading, before the licence was installed
            ("L-2026-001", 3),
        ]
    assert counted(app) == 3


def test_a_reading_counts_in_its_own_transaction_and_a_rolled_back_one_not_at_all(app, trusted, studio):
    trusted()
    with app.app_context():
        record_reading(studio["device"], dt.datetime.now(dt.UTC), {"bw": 11_030}, source="staff")
        assert tiers.usage().readings == 1  # in the reading's transaction...
        with db.engine.connect() as other:  # ...and nowhere else before it commits
            query = sa.select(ReadingCount.readings).where(ReadingCount.licence_id == "L-2026-001")
            assert other.scalar(query) is None
        db.session.rollback()
        assert tiers.usage().readings == 0
        assert db.session.scalar(sa.select(sa.func.count(Reading.id))) == 1  # the November one only
        record_reading(studio["device"], dt.datetime.now(dt.UTC), {"bw": 11_030}, source="staff")
        db.session.commit()
    assert counted(app) == 1


def test_an_estimate_is_not_counted(app, trusted):
    trusted()
    with app.app_context():
        customer = s.customer("Farmacia Verdi")
        machine = s.device("EST1", meters=("bw",))
        s.contract(
            customer.id,
            [(machine, {"bw": 10_000})],
            estimate_missing=True,
            allowances=[{"meter": "bw", "included": 0, "bands": [{"up_to": None, "price": "0.01"}]}],
        )
        s.read(machine, "2026-01-30", bw=11_000)
        s.read(machine, "2026-04-30", bw=20_000)
        db.session.commit()
        assert tiers.usage().readings == 2
        created = create_due_estimates(dt.date(2026, 6, 11))
        db.session.commit()
        assert [reading.status for reading in created] == ["estimated"]
        assert tiers.usage().readings == 2


def test_with_the_licence_expired_past_its_grace_the_portal_still_takes_and_counts_readings(app, trusted, studio):
    trusted(**EXPIRED)
    response = portal_reading(app, studio["device"], 11_030, 2_110)
    assert response.status_code == 302
    with app.app_context():
        stored = db.session.scalars(sa.select(Reading).where(Reading.source == "portal")).all()
        assert [reading.status for reading in stored] == ["accepted"]
    assert counted(app) == 1
    # A customer's API token is not refused either; staff tokens are (modules/lan_licensing/tests/test_states.py).
    answer = api_reading(app, studio["device"], 11_010, hours_ago=6)
    assert answer.status_code == 201 and answer.get_json()["status"] == "accepted", answer.get_json()
    assert counted(app) == 2


def test_the_licence_page_shows_the_devices_in_use_for_device_accounting(app, trusted):
    trusted(devices=1)
    with app.app_context():
        owner = da.customer()
        da.simple_prices()
        machines = [da.device(serial, at=owner) for serial in ("DA1", "DA2", "DA3")]
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        moments = {
            "DA1": now - dt.timedelta(days=2),
            "DA2": now - dt.timedelta(days=1),
            # Before this licence year (valid_from is 100 days ago): not in use this year.
            "DA3": now - dt.timedelta(days=150),
        }
        for seq, machine in enumerate(machines, start=1):
            ended = moments[machine.serial]
            job = da.job(
                machine,
                seq,
                started_at=(ended - dt.timedelta(minutes=1)).isoformat(),
                ended_at=ended.isoformat(),
            )
            record_transaction(job)
        record_transaction(da.job(machines[0], 9, started_at=now.isoformat(), ended_at=now.isoformat()))
        db.session.commit()
        make_user("anna@dealer.it", name="Anna Rossi")
    client = app.test_client()
    login(client, "anna@dealer.it")
    page = client.get("/admin/licence/").get_data(as_text=True)
    assert 'data-devices-used="2"' in page
    assert re.search(r"2 of 1\s*<strong[^>]*>1 beyond the licence", page), page
    assert "devices that recorded a job this licence year" in page
