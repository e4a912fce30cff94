"""The portal's toner request beside the counters: a request reaches the dealer as a shipment to confirm, a colour the
device does not use is refused, another customer's device is not there."""

from __future__ import annotations

import html

import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from modules.metering.tests import support as s
from modules.metering_inventory.tests import support as w
from modules.rentals_inventory.models import Shipment
from tests.auth_support import login, make_user, post_form


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def world(app):
    """Studio Bianchi with a colour device (the worked example) and a mono one; Farmacia Verdi with its own device."""
    with app.app_context():
        customer, colour_device, _p, _s = w.worked_example()
        mono = s.device("MONO1", ("bw",))
        s.contract(customer.id, [(mono, {"bw": 1_000})], start_date="2026-01-01")
        _other, foreign, _p2, _s2 = w.worked_example("Farmacia Verdi", "KY2")
        make_user("user@bianchi.it", "customer_user", customer_id=customer.id, language="en")
        db.session.commit()
        return {"colour": colour_device.id, "mono": mono.id, "foreign": foreign.id, "customer": customer.id}


def portal(app):
    limiter.reset()
    client = app.test_client()
    assert login(client, "user@bianchi.it", url="/portal/login").status_code == 302
    return client


def requests(app) -> list[tuple]:
    with app.app_context():
        rows = db.session.scalars(sa.select(Shipment).where(Shipment.state == "requested").order_by(Shipment.id))
        return [(r.device.serial, r.colour, r.requested_level) for r in rows]


def test_the_toner_page_shows_each_device_with_its_counters_and_levels(app, world):
    client = portal(app)
    assert "/portal/toner/" in text(client.get("/portal/"))
    page = text(client.get("/portal/toner/"))
    assert "KY1" in page and "MONO1" in page and "KY2" not in page
    assert "44,000" in page and "20%" in page


def test_a_toner_request_reaches_the_dealer_as_a_shipment_to_confirm(app, world):
    client = portal(app)
    done = post_form(client, f"/portal/toner/{world['colour']}", {"colour": "magenta", "level": "5"}, "/portal/toner/")
    assert done.status_code == 302
    assert requests(app) == [("KY1", "magenta", 5)]
    assert "Requests waiting to ship" in text(client.get("/portal/toner/"))


def test_a_colour_the_device_does_not_use_is_refused_and_nothing_is_written(app, world):
    client = portal(app)
    refused = post_form(client, f"/portal/toner/{world['mono']}", {"colour": "cyan", "level": "10"}, "/portal/toner/")
    assert refused.status_code == 422
    assert requests(app) == []
    assert "This device does not use cyan toner: it takes black." in text(refused)


def test_a_level_out_of_range_is_refused(app, world):
    client = portal(app)
    refused = post_form(
        client, f"/portal/toner/{world['colour']}", {"colour": "black", "level": "140"}, "/portal/toner/"
    )
    assert refused.status_code == 422 and requests(app) == []


def test_another_customers_device_answers_404(app, world):
    client = portal(app)
    answer = post_form(client, f"/portal/toner/{world['foreign']}", {"colour": "black", "level": "3"}, "/portal/toner/")
    assert answer.status_code == 404 and requests(app) == []
