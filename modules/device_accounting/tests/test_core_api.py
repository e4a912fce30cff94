"""The device operations' API as an integrator sees it: identify, authorize, transactions, refunds, scoping, 422s."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
import time_machine

from core.db import db
from modules.device_accounting import users
from modules.device_accounting.models import DailyUsage, LedgerEntry, Refund, Transaction
from modules.device_accounting.tests import core_support as s
from tests.api_support import bearer

URL = "/api/v1/device-accounting"
PROBLEM = "application/problem+json"
NOW = s.at("2026-03-02T10:00:00+01:00")


@pytest.fixture
def office(db_session):
    studio = s.customer()
    machine = s.device("KY1", studio)
    user = s.print_user(studio, "mrossi", email="Mario.Rossi@example.com")
    users.add_card(user, "0004521")
    s.simple_prices(bw="0.01", color="0.05")
    db_session.commit()
    return studio, machine, user


def problem_fields(response, status: int = 422) -> dict[str | None, str]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_identify_by_card_finds_0004521_and_not_4521(client, office, staff):
    _studio, machine, user = office

    found = client.post(f"{URL}/identify", json={"device_id": machine.id, "card": "0004521"}, headers=staff)
    assert found.status_code == 200, found.get_data(as_text=True)
    body = found.get_json()
    assert body["user"]["id"] == user.id and body["user"]["username"] == "mrossi"
    assert body["balance"] is None and body["privileges"]["color_allowed"] is True

    unknown = client.post(f"{URL}/identify", json={"device_id": machine.id, "card": "4521"}, headers=staff)
    assert unknown.status_code == 401 and unknown.mimetype == PROBLEM
    assert unknown.get_json()["reason"] == "unknown_card" and unknown.get_json()["detail"]

    as_number = client.post(f"{URL}/identify", json={"device_id": machine.id, "card": 4521}, headers=staff)
    assert set(problem_fields(as_number)) == {"card"}


def test_a_locked_pin_is_423_with_until_when_and_the_wrong_tries_are_kept(client, office, staff):
    _studio, machine, user = office
    users.set_pin(user, "2468")
    db.session.commit()
    body = {"device_id": machine.id, "pin": "1357", "username": "mrossi"}
    with time_machine.travel(NOW, tick=False):
        statuses = [client.post(f"{URL}/identify", json=body, headers=staff).status_code for _try in range(4)]
        locked = client.post(f"{URL}/identify", json=body, headers=staff)
    assert statuses == [401] * 4
    assert locked.status_code == 423 and locked.get_json()["reason"] == "pin_locked"
    assert dt.datetime.fromisoformat(locked.get_json()["locked_until"]) == NOW + dt.timedelta(minutes=15)


def test_authorize_answers_allowed_or_why_not_with_the_balance(client, office, staff):
    _studio, machine, user = office
    with time_machine.travel(NOW, tick=False):
        s.quota(user, "1.00")
        db.session.commit()
        job = {"device_id": machine.id, "user_id": user.id, "function": "copy", "sides_bw": 80, "sides_color": 0}
        allowed = client.post(f"{URL}/authorize", json=job, headers=staff)
        denied = client.post(f"{URL}/authorize", json={**job, "sides_bw": 101}, headers=staff)
    assert allowed.get_json() == {"allowed": True, "balance": "1.0000", "cost": "0.8000"}
    body = denied.get_json()
    assert (body["allowed"], body["reason"], body["allowed_sides"], body["balance"]) == (
        False,
        "quota_exceeded",
        100,
        "1.0000",
    )


def test_a_transaction_is_201_then_200_with_the_one_stored(client, office, staff):
    _studio, machine, user = office
    with time_machine.travel(NOW, tick=False):
        s.quota(user, "20.00")
        db.session.commit()
        job = s.job(machine, 77, user, sides_bw=12, sides_color=3, document_name="Preventivo.pdf")
        first = client.post(f"{URL}/transactions", json=job, headers=staff)
        again = client.post(f"{URL}/transactions", json=job, headers=staff)
    assert first.status_code == 201, first.get_data(as_text=True)
    stored = first.get_json()
    assert (stored["cost"], stored["balance_after"], stored["document_name"]) == ("0.2700", "19.7300", "Preventivo.pdf")
    assert stored["ended_at"].startswith("2026-03-02T11:01:00")
    assert again.status_code == 200 and again.get_json()["id"] == stored["id"]
    assert count(Transaction) == 1 and count(DailyUsage) == 1


def test_a_batch_answers_one_result_per_item_and_stores_the_ones_accepted(client, office, staff):
    _studio, machine, user = office
    stranger = s.print_user(s.customer("Altro Cliente"), "estraneo")
    db.session.commit()
    batch = [
        s.job(machine, 1, user),
        s.job(machine, 2, stranger),
        s.job(machine, 1, user),
        s.job(machine, 3, user, device_id=999_999),
        s.job(machine, 4, None, function="scan", sides_color=20),
    ]
    response = client.post(f"{URL}/transactions", json=batch, headers=staff)
    assert response.status_code == 207, response.get_data(as_text=True)
    results = response.get_json()["results"]
    assert [(r["index"], r["status"]) for r in results] == [(0, 201), (1, 422), (2, 200), (3, 422), (4, 201)]
    assert {e["field"] for e in results[1]["errors"]} == {"user_id"}
    assert {e["field"] for e in results[3]["errors"]} == {"device_id"}
    assert results[2]["transaction"]["id"] == results[0]["transaction"]["id"]
    assert count(Transaction) == 2


def test_a_batch_with_a_malformed_item_is_refused_whole_naming_it(client, office, staff):
    _studio, machine, user = office
    batch = [
        s.job(machine, 1, user),
        s.job(machine, 2, user, function="staple"),
        "not a job",
        s.job(machine, 4, user, sides_bw=-4),
    ]
    response = client.post(f"{URL}/transactions", json=batch, headers=staff)
    assert set(problem_fields(response)) == {"1.function", "2", "3.sides_bw"}
    assert count(Transaction) == 0
    for body in ([], [s.job(machine, n, user) for n in range(1001)], "text"):
        assert set(problem_fields(client.post(f"{URL}/transactions", json=body, headers=staff))) == {None}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"function": "staple"}, "function"),
        ({"sides_bw": -1}, "sides_bw"),
        ({"sides_color": -5}, "sides_color"),
        ({"paper_size": "B4"}, "paper_size"),
        ({"ended_at": "2026-03-02T10:00:00+01:00"}, "ended_at"),
        ({"device_id": 999_999}, "device_id"),
        ({"sides_bw": 2.0}, "sides_bw"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_bad_transaction_is_422_naming_the_field_and_nothing_is_written(client, office, staff, fields, field):
    _studio, machine, user = office
    response = client.post(f"{URL}/transactions", json=s.job(machine, 1, user, **fields), headers=staff)
    assert set(problem_fields(response)) == {field}
    assert count(Transaction) == 0 and count(DailyUsage) == 0 and count(LedgerEntry) == 0


def test_only_tokens_that_edit_job_accounting_may_post(client, office):
    studio, machine, user = office
    for headers in (bearer("technician"), bearer("customer_admin", customer=studio)):
        for path, body in (
            ("identify", {"device_id": machine.id, "card": "0004521"}),
            ("authorize", {"device_id": machine.id, "user_id": user.id, "function": "print"}),
            ("transactions", s.job(machine, 1, user)),
        ):
            assert client.post(f"{URL}/{path}", json=body, headers=headers).status_code == 403
    assert count(Transaction) == 0


def _jobs(office):
    studio, machine, user = office
    sales = s.cost_center(studio, "Vendite")
    export = s.cost_center(studio, "Estero", parent_id=sales.id)
    colleague = s.print_user(studio, "lbianchi", email="luca.bianchi@example.com", default_cost_center_id=export.id)
    other = s.customer("Altro Cliente")
    other_machine = s.device("KY9", other)
    outsider = s.print_user(other, "estraneo", email="mario.rossi@example.com")
    from modules.device_accounting.operations import record_transaction

    mine, _ = record_transaction(s.job(machine, 1, user))
    theirs, _ = record_transaction(s.job(machine, 2, colleague))
    foreign, _ = record_transaction(s.job(other_machine, 1, outsider))
    db.session.commit()
    return studio, other, mine.id, theirs.id, foreign.id, sales.id


def listed(client, headers, query: str = "") -> list[int]:
    response = client.get(f"{URL}/transactions{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return sorted(item["id"] for item in response.get_json()["items"])


def test_the_list_is_scoped_to_the_customer_and_a_customer_user_sees_only_their_own_jobs(client, office):
    studio, other, mine, theirs, foreign, _sales = _jobs(office)

    assert listed(client, bearer("technician")) == sorted([mine, theirs, foreign])
    admin = bearer("customer_admin", customer=studio)
    assert listed(client, admin) == sorted([mine, theirs])
    assert listed(client, admin, f"?customer_id={other.id}") == []
    person = bearer("customer_user", customer=studio, email="mario.rossi@example.com")
    assert listed(client, person) == [mine]
    stranger = bearer("customer_user", customer=studio, email="nobody@example.com")
    assert listed(client, stranger) == []


def test_the_list_filters_by_user_cost_center_device_function_and_time(client, office):
    studio, _other, mine, theirs, foreign, sales = _jobs(office)
    staff = bearer("back_office")
    _studio, machine, user = office

    assert listed(client, staff, f"?user_id={user.id}") == [mine]
    assert listed(client, staff, f"?customer_id={studio.id}&device_id={machine.id}") == sorted([mine, theirs])
    assert listed(client, staff, "?function=copy") == []
    assert listed(client, staff, f"?cost_center_id={sales}") == [theirs]  # its subtree: Vendite / Estero
    assert listed(client, staff, "?since=2026-03-02T12:00:00&until=2026-03-02T12:05:00") == sorted(
        [mine, theirs, foreign]
    )
    assert listed(client, staff, "?since=2026-03-02T11:05:00Z") == []
    assert set(problem_fields(client.get(f"{URL}/transactions?function=staple", headers=staff))) == {"function"}


def test_a_customer_admin_refunds_its_own_customers_job_not_another_ones(client, office):
    studio, _other, mine, _theirs, foreign, _sales = _jobs(office)
    admin = bearer("customer_admin", customer=studio)

    done = client.post(
        f"{URL}/transactions/{mine}/refunds", json={"amount": "0.05", "reason": "Inceppata"}, headers=admin
    )
    assert done.status_code == 201, done.get_data(as_text=True)
    assert (done.get_json()["amount"], done.get_json()["refunded"]) == ("0.0500", "0.0500")
    too_much = client.post(f"{URL}/transactions/{mine}/refunds", json={"amount": "0.06", "reason": "x"}, headers=admin)
    assert set(problem_fields(too_much)) == {"amount"}
    away = client.post(f"{URL}/transactions/{foreign}/refunds", json={"amount": "0.01", "reason": "x"}, headers=admin)
    assert away.status_code == 404
    person = bearer("customer_user", customer=studio, email="mario.rossi@example.com")
    assert (
        client.post(
            f"{URL}/transactions/{mine}/refunds", json={"amount": "0.01", "reason": "x"}, headers=person
        ).status_code
        == 403
    )
    assert count(Refund) == 1
