"""The staff pages and the alert: a flagged device with its figures and chart, shipments and readings side by side,
"mark explained" with a note, and the periodic email that sends only new flags."""

from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from core.models import OutboxMessage
from modules.metering_inventory.alerts import send_new_flags
from modules.metering_inventory.models import AlertedFlag, ExplainedFlag
from modules.metering_inventory.tests import support as w
from modules.rentals_inventory.shipments import ship
from tests.auth_support import login, make_user, post_form

WINDOW = "from=2026-01-01&to=2026-11-30"
TODAY = w.D("2026-11-30")  # the default window then ends on the day of the closing reading


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def example(app):
    with app.app_context():
        customer, device, product, store = w.worked_example()
        make_user("office@example.it", "back_office", name="Anna Rossi", language="en")
        make_user("boss@example.it", "dealer_admin", language="en")
        return {"customer": customer.id, "device": device.id, "product": product.id, "store": store.id}


def staff(app, email: str = "office@example.it"):
    limiter.reset()
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def test_the_check_lists_the_flagged_device_with_its_figures_and_a_chart(app, example):
    page = staff(app).get(f"/admin/metering_inventory_check/?{WINDOW}")
    assert page.status_code == 200
    body = text(page)
    assert "KY1" in body and "Studio Bianchi" in body
    assert "30,000" in body and "2.00" in body and "3.60" in body and "1.80" in body
    assert "Over-consumption" in body and "<svg" in body and "<polyline" in body


def test_the_device_page_shows_shipments_and_readings_side_by_side(app, example):
    page = staff(app).get(f"/admin/metering_inventory_check/device/{example['device']}?{WINDOW}")
    body = text(page)
    assert page.status_code == 200
    assert 'id="device-shipments"' in body and body.count("TK-KY1") >= 3
    assert 'id="device-readings"' in body and "44,000" in body and "20%" in body


def test_mark_explained_with_a_note_clears_the_flag_and_shows_who_explained_it(app, example):
    client = staff(app)
    url = f"/admin/metering_inventory_check/device/{example['device']}"
    done = post_form(
        client,
        f"{url}/explain?{WINDOW}",
        {"colour": "black", "note": "Year-end print campaign"},
        form_url=f"{url}?{WINDOW}",
    )
    assert done.status_code == 302
    listed = text(client.get(f"/admin/metering_inventory_check/?{WINDOW}"))
    assert "No device is flagged in this window." in listed
    detail = text(client.get(f"{url}?{WINDOW}"))
    assert "Year-end print campaign" in detail and "Anna Rossi" in detail


def test_mark_explained_without_a_note_is_refused_and_writes_nothing(app, example):
    client = staff(app)
    url = f"/admin/metering_inventory_check/device/{example['device']}"
    post_form(client, f"{url}/explain?{WINDOW}", {"colour": "black", "note": "  "}, form_url=f"{url}?{WINDOW}")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ExplainedFlag)) == 0
    assert "Write why the consumption is explained." in text(client.get(f"{url}?{WINDOW}"))


def test_a_technician_may_look_but_not_mark_explained(app, example):
    with app.app_context():
        make_user("tech@example.it", "technician", language="en")
    client = staff(app, "tech@example.it")
    url = f"/admin/metering_inventory_check/device/{example['device']}"
    assert client.get(f"{url}?{WINDOW}").status_code == 200
    refused = post_form(client, f"{url}/explain?{WINDOW}", {"colour": "black", "note": "x"}, form_url=f"{url}?{WINDOW}")
    assert refused.status_code == 403


def _flag_emails(app) -> list[OutboxMessage]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(OutboxMessage)
                .where(OutboxMessage.subject.contains("Consumption check"))
                .order_by(OutboxMessage.id)
            )
        )


def test_the_job_emails_new_flags_once_and_again_after_a_new_shipment(app, example):
    with app.app_context():
        assert send_new_flags(TODAY) == 1
        db.session.commit()
    first = _flag_emails(app)
    assert sorted(m.recipients for m in first) == [["boss@example.it"], ["office@example.it"]]
    assert "KY1" in first[0].body_text and "Studio Bianchi" in first[0].body_text
    with app.app_context():
        assert send_new_flags(TODAY) == 0
        db.session.commit()
    assert len(_flag_emails(app)) == 2
    with app.app_context():
        # A cartridge shipped after the alert's window: the flag is news again.
        ship(example["device"], example["product"], 1, example["store"], ship_date=w.D("2026-12-01"))
        db.session.commit()
        assert send_new_flags(w.D("2026-12-01")) == 1
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AlertedFlag)) == 2
    assert len(_flag_emails(app)) == 4


def test_an_explained_flag_is_not_emailed(app, example):
    from modules.metering_inventory.consumption import mark_explained

    with app.app_context():
        mark_explained(example["device"], "black", "Known campaign", None, w.START, w.END)
        db.session.commit()
        assert send_new_flags(TODAY) == 0
        db.session.commit()
    assert _flag_emails(app) == []


def test_the_device_record_page_shows_its_consumption_verdict_per_toner(app, example, monkeypatch):
    from core import clock

    monkeypatch.setattr(clock, "today", lambda: TODAY)  # the panel shows the default window, ending today
    with app.app_context():
        from modules.metering_inventory.consumption import mark_explained

        mark_explained(example["device"], "black", "Known campaign", None)
        db.session.commit()
    body = text(staff(app).get(f"/admin/rentals_device/details/?id={example['device']}"))
    assert "Consumption check" in body and "Over-consumption, explained" in body
    assert f"/admin/metering_inventory_check/device/{example['device']}" in body
