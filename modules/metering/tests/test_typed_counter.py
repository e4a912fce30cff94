"""The separators the portal's counter form carries are those the server reads (Babel's, per language), and a counter
typed with a digit Python cannot turn into a number is refused with the usual message, not an error page."""

from __future__ import annotations

import html

import pytest

from core.db import db
from core.extensions import limiter
from core.models import Partner
from modules.metering.tests import support as s
from tests.auth_support import CSRF_RE, login, make_user


@pytest.fixture
def customer_client(app):
    """A customer user of Studio Bianchi (speaking `language`), whose device was installed at 12,000."""

    def make(language: str):
        limiter.reset()
        with app.app_context():
            partner = Partner(name=f"Studio {language}", is_customer=True, language=language)
            db.session.add(partner)
            db.session.flush()
            device = s.device(f"KY{language.upper()}", meters=("bw",))
            s.contract(partner.id, [(device, {"bw": 12_000})], start_date="2025-12-01", allowances=[])
            db.session.commit()
            make_user(f"user@{language}.it", "customer_user", customer_id=partner.id, language=language)
            device_id = device.id
        client = app.test_client()
        assert login(client, f"user@{language}.it", url="/portal/login").status_code == 302
        return client, device_id

    return make


@pytest.mark.parametrize(("language", "decimal", "group"), [("it", ",", "."), ("en", ".", ","), ("es", ",", ".")])
def test_counter_form_carries_the_separators_the_server_reads(customer_client, language, decimal, group):
    client, _device = customer_client(language)
    page = client.get("/portal/readings/enter").get_data(as_text=True)
    assert f'data-decimal="{decimal}" data-group="{group}" data-grouping="3,3"' in page


def test_a_superscript_digit_is_refused_as_not_a_whole_number_not_an_error(customer_client):
    client, device = customer_client("en")
    form = client.get("/portal/readings/enter").get_data(as_text=True)
    response = client.post(
        "/portal/readings/enter",
        data={"csrf_token": CSRF_RE.search(form).group(1), "step": "review", f"d{device}-bw": "12²"},
    )
    assert response.status_code == 422
    assert "counter is not a whole number: 12²" in html.unescape(response.get_data(as_text=True))
