"""GET /api/v1/device-accounting/reports/usage: strict parameters, 422 naming the field, customers see only theirs."""

from __future__ import annotations

import pytest

from core.db import db
from modules.device_accounting.tests import reports_support as s
from tests.api_support import bearer

URL = "/api/v1/device-accounting/reports/usage"
MARCH = "since=2026-03-01&until=2026-03-31"


@pytest.fixture
def usage(db_session):
    customer = s.customer("Studio Bianchi")
    admin = s.cost_center(customer.id, "Amministrazione")
    accounts = s.cost_center(customer.id, "Contabilità", admin)
    anna = s.print_user(customer.id, "arossi", "Anna Rossi", accounts)
    device = s.device("RB1001", customer.id)
    s.job(customer.id, device.id, s.at("2026-03-02"), user_id=anna.id, cost_center_id=accounts.id, sides_bw=10,
          sides_color=2, cost="0.3000")  # fmt: skip
    s.job(customer.id, device.id, s.at("2026-04-02"), user_id=anna.id, sides_bw=1, cost="0.0100")
    other = s.customer("Ferri Logistica")
    other_device = s.device("RX9001", other.id)
    s.job(other.id, other_device.id, s.at("2026-03-05"), sides_bw=100, cost="1.0000")
    db.session.commit()
    return {"customer": customer, "other": other, "admin": admin.id, "accounts": accounts.id, "anna": anna.id}


def _fields(response) -> set[str]:
    return {error["field"] for error in response.get_json()["errors"]}


def test_staff_read_a_customers_usage_by_cost_center(client, usage):
    headers = bearer("technician")
    response = client.get(f"{URL}?customer_id={usage['customer'].id}&group_by=cost_center&{MARCH}", headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    assert [(row["key"], row["label"], row["depth"], row["cost"]) for row in body["rows"]] == [
        (usage["admin"], "Amministrazione", 0, "0.3000"),
        (usage["accounts"], "Amministrazione / Contabilità", 1, "0.3000"),
    ]
    assert body["totals"] == {"jobs": 1, "sides_bw": 10, "sides_color": 2, "sheets": 12, "cost": "0.3000"}
    assert (body["since"], body["until"], body["group_by"]) == ("2026-03-01", "2026-03-31", "cost_center")


def test_months_and_filters(client, usage):
    headers = bearer("back_office")
    query = f"customer_id={usage['customer'].id}&group_by=month&since=2026-03-01&until=2026-04-30"
    query += f"&user_id={usage['anna']}"
    body = client.get(f"{URL}?{query}", headers=headers).get_json()
    assert [(row["key"], row["jobs"]) for row in body["rows"]] == [("2026-03", 1), ("2026-04", 1)]
    assert body["totals"]["cost"] == "0.3100"


def test_a_customer_token_reads_its_own_customer_only(client, usage):
    headers = bearer("customer_admin", customer=usage["customer"], email="admin@bianchi.example")
    own = client.get(f"{URL}?group_by=device&{MARCH}", headers=headers)
    assert own.status_code == 200
    assert [row["label"] for row in own.get_json()["rows"]] == ["RB1001 · Kyocera ECOSYS M5526cdw"]
    other = client.get(f"{URL}?customer_id={usage['other'].id}&group_by=device&{MARCH}", headers=headers)
    assert other.status_code == 422 and _fields(other) == {"customer_id"}
    assert "Ferri" not in other.get_data(as_text=True)


def test_a_customer_user_without_reports_and_no_token_are_refused(client, usage):
    user = bearer("customer_user", customer=usage["customer"], email="user@bianchi.example")
    assert client.get(f"{URL}?group_by=device&{MARCH}", headers=user).status_code == 403
    assert client.get(f"{URL}?customer_id={usage['customer'].id}&group_by=device&{MARCH}").status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("group_by=week&since=2026-03-01&until=2026-03-31", "group_by"),
        ("group_by=user&since=2026-03-31&until=2026-03-01", "until"),
        ("group_by=user&since=31/03/2026&until=2026-04-01", "since"),
        ("group_by=month&since=2026-01-01&until=9999-12-31", "until"),
        ("group_by=user&until=2026-04-01", "since"),
        ("group_by=user&since=2026-03-01&until=2026-04-01&colour=1", "colour"),
        ("group_by=user&since=2026-03-01&until=2026-04-01&function=print3d", "function"),
        ("group_by=user&since=2026-03-01&until=2026-04-01&format=xlsx", "format"),
    ],
)
def test_bad_parameters_are_a_422_naming_the_field(client, usage, query, field):
    response = client.get(f"{URL}?customer_id={usage['customer'].id}&{query}", headers=bearer("dealer_admin"))
    assert response.status_code == 422
    assert _fields(response) == {field}


def test_staff_must_name_an_existing_customer(client, usage):
    headers = bearer("dealer_admin")
    missing = client.get(f"{URL}?group_by=user&{MARCH}", headers=headers)
    assert missing.status_code == 422 and _fields(missing) == {"customer_id"}
    unknown = client.get(f"{URL}?customer_id=999999&group_by=user&{MARCH}", headers=headers)
    assert unknown.status_code == 422 and _fields(unknown) == {"customer_id"}


def test_csv_format(client, usage):
    response = client.get(
        f"{URL}?customer_id={usage['customer'].id}&group_by=user&{MARCH}&format=csv", headers=bearer("dealer_admin")
    )
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data().decode("utf-8")
    assert text.startswith("\ufeffUser,Number of jobs,")
    assert "Anna Rossi,1,10,2,12,0.3000" in text
