"""The reading portal's home and form cost the same number of queries for 4 devices as for 12: the last values of
all devices are read together, within the customer's tenure."""

from __future__ import annotations

import html
import itertools

import pytest

from core.db import db
from core.extensions import limiter
from modules.metering.replacements import record_replacement
from modules.metering.tests import support as s
from tests.api_support import add_customer
from tests.auth_support import login, make_user
from tests.query_counter import Queries, assert_not_growing, count_queries


def bw_counter(number: int) -> int:
    return 30_000 + number * 111


def add_devices(customer_id: int, numbers: list[int]) -> None:
    """A device for each number, each of its own model, joining the customer's contract with a reading in January;
    the first one's colour meter was replaced in February (counting from 0 again)."""
    devices = [(s.device(f"KY{number}", model=f"Model {number}"), number) for number in numbers]
    joining = [(device, {"bw": 10_000, "color": 2_000}) for device, _n in devices]
    s.contract(customer_id, joining, start_date="2025-12-01")
    for device, number in devices:
        s.read(device, "2026-01-30", bw=bw_counter(number), color=2_000 + number)
    record_replacement(devices[0][0].id, "2026-02-10", "color", 2_500, 0)
    db.session.commit()


@pytest.fixture
def portal(app):
    with app.app_context():
        customer_id = add_customer("Studio Bianchi", language="it").id
        make_user("letture@bianchi.it", "customer_user", customer_id=customer_id)
    limiter.reset()
    client = app.test_client()
    assert login(client, "letture@bianchi.it", url="/portal/login").status_code == 302

    numbers = itertools.count(1)

    def add(count: int) -> None:
        with app.app_context():
            add_devices(customer_id, [next(numbers) for _ in range(count)])

    return client, add


def shown(app, client, url: str) -> tuple[str, Queries]:
    client.get(url)  # the login's "last seen" is written at most once a minute: not in the measured request
    with count_queries(app) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return html.unescape(response.get_data(as_text=True)), queries


@pytest.mark.parametrize("url", ["/portal/readings/", "/portal/readings/enter"])
def test_portal_with_three_times_the_devices_sends_no_more_queries(app, portal, url):
    client, add = portal
    add(4)
    _page, few = shown(app, client, url)
    add(8)
    page, many = shown(app, client, url)

    assert all(f"KY{number}" in page for number in range(1, 13))
    if url == "/portal/readings/":
        assert all(f"{bw_counter(number):,}".replace(",", ".") in page for number in range(1, 13))
    else:
        assert all(f'data-previous="{bw_counter(number)}"' in page for number in range(1, 13))
        assert page.count('data-previous="0"') == 2  # the replaced colour meters of KY1 and KY5
    assert_not_growing(few, many)
