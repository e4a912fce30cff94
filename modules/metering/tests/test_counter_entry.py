"""Counters typed in the portal and the staff form: read in the user's language, refused in plain words when they are
not a whole number or lower than the last reading (the customer is told what to do, staff to record a replacement)."""

from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from core.models import Partner, User
from modules.metering.models import Reading
from modules.metering.tests import support as s
from tests.auth_support import CSRF_RE, login, make_user


@pytest.fixture
def world(app):
    """Studio Bianchi (Italian) with a colour device on a monthly contract, a reading on 30 Jan, and a portal user."""
    with app.app_context():
        partner = Partner(name="Studio Bianchi", is_customer=True, language="it")
        db.session.add(partner)
        db.session.flush()
        device = s.device("KY1")
        s.contract(partner.id, [(device, {"bw": 10_000, "color": 2_000})], start_date="2025-12-01")
        s.read(device, "2026-01-30", bw=11_850, color=2_310)
        db.session.commit()
        make_user("user@ky1.it", "customer_user", customer_id=partner.id)
        return {"KY1": {"customer": partner.id, "device": device.id}}


def customer_client(app, serial: str = "KY1"):
    limiter.reset()
    client = app.test_client()
    assert login(client, f"user@{serial.lower()}.it", url="/portal/login").status_code == 302
    return client


def post(client, url: str, data: dict):
    token = CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)
    return client.post(url, data={"csrf_token": token, **data})


def english_customer(app, serial: str = "KY1"):
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == f"user@{serial.lower()}.it"))
        user.language = "en"
        db.session.commit()
    return customer_client(app, serial)


def review(client, device: int, **counters: str):
    data = {f"d{device}-{meter}": value for meter, value in counters.items()}
    response = post(client, "/portal/readings/enter", {**data, "step": "review"})
    return response.status_code, html.unescape(response.get_data(as_text=True))


def reading_count(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count(Reading.id)))


def test_continental_number_in_the_english_portal_is_refused_not_read_as_another_number(app, world):
    client = english_customer(app)
    before = reading_count(app)
    status, page = review(client, world["KY1"]["device"], bw="12.345,6", color="2400")
    assert status == 422
    assert "counter is not a whole number: 12.345,6" in page and "123,456" not in page
    assert reading_count(app) == before


def test_english_portal_reads_comma_grouping_as_thousands(app, world):
    status, page = review(english_customer(app), world["KY1"]["device"], bw="12,345", color="2,400")
    assert status == 200 and "12,345" in page


def test_italian_portal_reads_dot_grouping_and_refuses_a_decimal_part(app, world):
    client = customer_client(app)
    status, page = review(client, world["KY1"]["device"], bw="12.345", color="2.400")
    assert status == 200 and "12.345" in page
    status, _page = review(client, world["KY1"]["device"], bw="12.345,6", color="2.400")
    assert status == 422


def test_lower_counter_tells_the_customer_to_check_the_number_or_tell_the_dealer(app, world):
    status, page = review(english_customer(app), world["KY1"]["device"], bw="11000", color="2400")
    assert status == 422
    assert (
        "The Black and white counter you entered, 11,000, is lower than the last reading, 11,850 on January 30, 2026."
        in page
    )
    assert "check the number on the device" in page and "tell us" in page
    assert "record the replacement" not in page and " bw " not in page


def staff_client(app):
    limiter.reset()
    with app.app_context():
        make_user("tech@example.it", "technician", language="en")
    client = app.test_client()
    assert login(client, "tech@example.it").status_code == 302
    return client


def staff_entry(client, device: int, **counters: str):
    form = client.get(f"/admin/metering_entry/?device_id={device}").get_data(as_text=True)
    data = {"csrf_token": CSRF_RE.search(form).group(1), "device_id": device, "taken_at": "2026-02-02T09:30"}
    response = client.post("/admin/metering_entry/", data=data | {f"counter_{m}": v for m, v in counters.items()})
    return response.status_code, html.unescape(response.get_data(as_text=True))


def test_staff_form_refuses_a_number_of_another_language_and_keeps_the_replacement_hint(app, world):
    device = world["KY1"]["device"]
    before = reading_count(app)
    client = staff_client(app)
    status, page = staff_entry(client, device, bw="12.345,6", color="2400")
    assert status == 422 and "not a whole number: 12.345,6" in page
    status, page = staff_entry(client, device, bw="11,000", color="2,400")
    assert status == 422 and "11,000 is lower than the last one, 11,850" in page
    assert "record the replacement first" in page
    assert reading_count(app) == before


def test_review_reason_uses_the_singular_for_one_day(app):
    from modules.metering.readings import record_reading

    with app.app_context():
        partner = Partner(name="Studio Bianchi", is_customer=True)
        db.session.add(partner)
        db.session.flush()
        device = s.device("KY1")
        s.contract(partner.id, [(device, {"bw": 10_000, "color": 2_000})])
        s.read(device, "2026-03-02", bw=16_000, color=2_000)
        held = record_reading(device.id, s.at("2026-03-03"), {"bw": 20_000}, now=s.at("2026-04-01")).reading
        assert held.status == "pending_review"
        assert "rose by 4,000 pages in 1 day;" in held.reason and "about 99 pages a day" in held.reason
