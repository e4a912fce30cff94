"""The billing run's review page, reloaded every 2 s while the run works, costs the same number of queries for 3
invoices as for 9: the previous invoices and the customers are read together, not once per row."""

from __future__ import annotations

import html
import itertools
import re

from core.db import db
from modules.invoicing.tests.support import add_company, billing_customer, new_contract, start_run
from tests.api_support import add_customer, bearer
from tests.auth_support import login, make_user
from tests.query_counter import Queries, assert_not_growing, count_queries


def bill_and_post(client, staff, as_of: str, issue_date: str) -> None:
    for invoice_id in start_run(client, staff, as_of)["invoice_ids"]:
        posted = client.post(f"/api/v1/invoices/{invoice_id}/post", json={"issue_date": issue_date}, headers=staff)
        assert posted.status_code == 200, posted.get_data(as_text=True)


def review_rows(page: str) -> list[list[str]]:
    """The review table as text: per invoice, customer, contract, state, net, VAT, total, previous and change."""
    body = page[page.index("<tbody>") : page.index("</tbody>")]
    rows = re.findall(r"<tr.*?</tr>", body, re.S)
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td.*?</td>", row, re.S)][2:]
        for row in rows
    ]


def review_page(app, office, run_id: int) -> tuple[str, Queries]:
    url = f"/admin/invoicing_runs_admin/{run_id}"
    office.get(url)  # the login's "last seen" is written at most once a minute: not in the measured request
    with count_queries(app) as queries:
        response = office.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True), queries


def test_review_page_of_three_times_the_invoices_sends_no_more_queries(app):
    client = app.test_client()
    serials = itertools.count(1)
    with app.app_context():
        add_company()
        staff = bearer("dealer_admin")
        make_user("office@rossi.example", "back_office")

        def customers(count: int) -> None:
            for _ in range(count):
                number = next(serials)
                new_contract(client, staff, billing_customer(f"Cliente {number}").id, f"S{number}")
                add_customer(f"Prospect {number}")  # a partner with nothing to bill: not needed by the page

        customers(3)
        bill_and_post(client, staff, "2026-01-05", "2026-01-06")
        few_run = start_run(client, staff, "2026-02-05")["id"]
        customers(6)
        bill_and_post(client, staff, "2026-02-05", "2026-02-06")
        many_run = start_run(client, staff, "2026-03-05")["id"]
        db.session.remove()
    office = app.test_client()
    login(office, "office@rossi.example")

    few_page, few = review_page(app, office, few_run)
    many_page, many = review_page(app, office, many_run)

    many_rows = review_rows(many_page)
    assert [row[0] for row in review_rows(few_page)] == ["Cliente 1", "Cliente 2", "Cliente 3"]
    # Customers 1-3 had February's invoice; 4-9 joined later and had January and February on one invoice.
    expected = [(f"Cliente {n}", "61.00", "61.00" if n <= 3 else "122.00") for n in range(1, 10)]
    assert sorted((row[0], row[5], row[6]) for row in many_rows) == expected
    assert "Prospect" not in many_page
    assert_not_growing(few, many)
