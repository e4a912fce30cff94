"""The portal's print-accounting lists query the same number of times for many rows as for few (no query per row)."""

from __future__ import annotations

import pytest

from core.db import db
from modules.device_accounting import cost_centers, quotas, users
from modules.device_accounting.tests import portal_support as p
from modules.device_accounting.tests import reports_support as s
from tests.query_counter import assert_not_growing, count_queries

# Each page, and what it shows of the rows added last.
PAGES = {
    "/portal/print/users/": 'data-user="user105"',
    "/portal/print/cost-centers/": "Reparto 105",
    "/portal/print/transactions/?since=2026-03-01&until=2026-03-31": "SN105",
    "/portal/print/my/": "SN105",
}


pytestmark = pytest.mark.usefixtures("portal_now")


def add_rows(company: p.Company, count: int, start: int) -> None:
    """`count` more print users, each with a card, a cost center under the tree, a quota and a job on a new device
    model; and as many more jobs of the colleague."""
    for n in range(start, start + count):
        center = cost_centers.save_cost_center(
            company.customer, {"name": f"Reparto {n}", "parent_id": company.cost_center}
        )
        user = users.save_user(
            company.customer,
            {"username": f"user{n}", "default_cost_center_id": center.id, "cost_center_ids": [center.id]},
        )
        users.add_card(user, f"9{n:06d}")
        quotas.save_quota(company.customer, {"user_id": user.id, "amount": "5"})
        device = s.device(f"SN{n}", company.customer, model=f"Model {n}")
        s.job(company.customer, device.id, s.at("2026-03-12"), user_id=user.id, cost_center_id=center.id, sides_bw=1)
        s.job(company.customer, device.id, s.at("2026-03-13"), user_id=company.print_user, sides_bw=1)
    db.session.commit()


@pytest.mark.parametrize("url", list(PAGES))
def test_lists_do_not_query_once_per_row(app, url):
    with app.app_context():
        company = p.build_company("Studio Bianchi", "bianchi.it", "it", "KY1")
        add_rows(company, 3, 0)
    client = p.portal_client(app, company.colleague if url.endswith("/my/") else company.admin)
    client.get(url)  # the first request of a session loads what every later one finds cached
    with count_queries(app) as few:
        assert client.get(url).status_code == 200
    with app.app_context():
        add_rows(company, 6, 100)
    with count_queries(app) as many:
        page = client.get(url)
    assert page.status_code == 200 and PAGES[url] in p.text(page)
    assert_not_growing(few, many)
