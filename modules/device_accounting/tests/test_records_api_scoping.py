"""A customer admin on every device-accounting record route with another customer's ids: 404, nothing changed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.db import db
from modules.device_accounting import users
from modules.device_accounting.cost_centers import save_cost_center
from modules.device_accounting.customer_settings import settings_of
from modules.device_accounting.models import Card, CostCenter, PriceList, PrintUser, Quota
from modules.device_accounting.tests.records_support import API, admin_of, customer, problem_fields


@pytest.fixture
def world(db_session):
    """Two customers, each with a cost center, a user with a card and PIN, a quota and a price list."""
    ids = {}
    for key, name in (("own", "Studio Legale Bianchi"), ("other", "Farmacia Rossi")):
        partner = customer(name)
        center = save_cost_center(partner.id, {"name": "Direzione", "shared": True})
        user = users.save_user(partner.id, {"username": "mrossi", "default_cost_center_id": center.id})
        card = users.add_card(user, "0004521")
        users.set_pin(user, "4821")
        quota = Quota(customer_id=partner.id, user_id=user.id, amount=Decimal("20"), mode="reset", period="monthly")
        price_list = PriceList(customer_id=partner.id, name=f"Listino {name}", valid_from=_day())
        db.session.add_all([quota, price_list])
        db.session.commit()
        ids[key] = {
            "customer": partner.id,
            "center": center.id,
            "user": user.id,
            "card": card.id,
            "quota": quota.id,
            "price_list": price_list.id,
        }
    ids["admin"] = admin_of(db.session.get(type(partner), ids["own"]["customer"]))
    return ids


def _day():
    import datetime as dt

    return dt.date(2026, 1, 1)


def routes(own: dict, other: dict) -> list[tuple[str, str, dict | None]]:
    """Every record route, with the other customer's ids (and a card of theirs under our own user)."""
    user, card, center, quota = other["user"], other["card"], other["center"], other["quota"]
    return [
        ("get", f"/users/{user}", None),
        ("patch", f"/users/{user}", {"active": False}),
        ("delete", f"/users/{user}", None),
        ("get", f"/users/{user}/cards", None),
        ("post", f"/users/{user}/cards", {"number": "999"}),
        ("get", f"/users/{user}/cards/{card}", None),
        ("patch", f"/users/{user}/cards/{card}", {"active": False}),
        ("post", f"/users/{user}/cards/{card}/disable", None),
        ("get", f"/users/{own['user']}/cards/{card}", None),
        ("patch", f"/users/{own['user']}/cards/{card}", {"active": False}),
        ("post", f"/users/{own['user']}/cards/{card}/disable", None),
        ("post", f"/users/{user}/pin", {"pin": "1234"}),
        ("post", f"/users/{user}/pin", {}),
        ("delete", f"/users/{user}/pin", None),
        ("post", f"/users/{user}/password", {"password": "correct horse battery"}),
        ("delete", f"/users/{user}/password", None),
        ("get", f"/cost-centers/{center}", None),
        ("patch", f"/cost-centers/{center}", {"name": "Presa"}),
        ("delete", f"/cost-centers/{center}", None),
        ("get", f"/price-lists/{other['price_list']}", None),
        ("get", f"/quotas/{quota}", None),
        ("patch", f"/quotas/{quota}", {"amount": "99.00"}),
        ("delete", f"/quotas/{quota}", None),
        ("post", f"/quotas/{quota}/adjustments", {"amount": "5.00", "reason": "Ricarica"}),
        ("get", f"/quotas/{quota}/ledger", None),
        ("get", f"/settings/{other['customer']}", None),
        ("patch", f"/settings/{other['customer']}", {"hide_document_names": True}),
    ]


def snapshot(other: dict) -> tuple:
    db.session.expire_all()
    user = db.session.get(PrintUser, other["user"])
    return (
        user.active,
        user.pin_digest,
        user.password_hash,
        [(card.number, card.active) for card in db.session.query(Card).filter_by(customer_id=other["customer"])],
        db.session.get(CostCenter, other["center"]).name,
        db.session.get(Quota, other["quota"]).amount,
        settings_of(other["customer"]).hide_document_names,
    )


def test_every_route_answers_404_for_another_customers_ids_and_changes_nothing(client, world):
    before = snapshot(world["other"])

    answers = {
        (method, path): getattr(client, method)(f"{API}{path}", json=body, headers=world["admin"]).status_code
        for method, path, body in routes(world["own"], world["other"])
    }

    assert {key: status for key, status in answers.items() if status != 404} == {}
    assert snapshot(world["other"]) == before


def test_the_same_routes_work_on_the_admins_own_ids(client, world):
    own = world["own"]
    reads = [(method, path) for method, path, _body in routes(own, own) if method == "get"]

    statuses = {path: client.get(f"{API}{path}", headers=world["admin"]).status_code for _method, path in reads}

    assert set(statuses.values()) == {200}, statuses


def test_lists_show_only_the_admins_customer_even_when_filtered_by_another(client, world):
    own, other, admin = world["own"], world["other"], world["admin"]

    for resource in ("users", "cost-centers", "quotas", "settings"):
        everything = client.get(f"{API}/{resource}", headers=admin).get_json()
        filtered = client.get(f"{API}/{resource}?customer_id={other['customer']}", headers=admin).get_json()
        assert {item["customer_id"] for item in everything["items"]} == {own["customer"]}, resource
        assert filtered["items"] == [] and filtered["total"] == 0, resource
    by_card = client.get(f"{API}/users?card=0004521", headers=admin).get_json()["items"]
    assert [user["id"] for user in by_card] == [own["user"]]


def test_another_customers_ids_in_a_body_are_422_naming_the_field(client, world):
    own, other, admin = world["own"], world["other"], world["admin"]

    user_elsewhere = client.post(
        f"{API}/users", json={"username": "x", "customer_id": other["customer"]}, headers=admin
    )
    their_center = client.patch(
        f"{API}/users/{own['user']}", json={"cost_center_ids": [other["center"]]}, headers=admin
    )
    their_parent = client.post(
        f"{API}/cost-centers", json={"name": "Reparto", "parent_id": other["center"]}, headers=admin
    )
    their_holder = client.post(f"{API}/quotas", json={"user_id": other["user"], "amount": "10.00"}, headers=admin)

    assert set(problem_fields(user_elsewhere)) == {"customer_id"}
    assert set(problem_fields(their_center)) == {"cost_center_ids"}
    assert set(problem_fields(their_parent)) == {"parent_id"}
    assert set(problem_fields(their_holder)) == {"user_id"}
    assert db.session.query(PrintUser).filter_by(customer_id=other["customer"]).count() == 1


def test_a_customer_admin_reads_prices_but_does_not_set_them(client, world):
    own, admin = world["own"], world["admin"]
    dealer = PriceList(customer_id=None, name="Listino base", valid_from=_day())
    db.session.add(dealer)
    db.session.commit()

    listed = client.get(f"{API}/price-lists", headers=admin).get_json()["items"]
    writes = [
        client.post(f"{API}/price-lists", json={"name": "x", "valid_from": "2026-02-01", "entries": []}, headers=admin),
        client.patch(f"{API}/price-lists/{own['price_list']}", json={"name": "Sconto"}, headers=admin),
        client.delete(f"{API}/price-lists/{own['price_list']}", headers=admin),
    ]

    assert [item["name"] for item in listed] == ["Listino base", "Listino Studio Legale Bianchi"]
    assert [response.status_code for response in writes] == [403, 403, 403]
