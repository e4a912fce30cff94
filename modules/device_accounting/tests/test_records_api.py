"""The device-accounting CRUD API as its callers see it: print users with cards and PINs, cost centers, settings."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from core.db import db
from modules.device_accounting import users
from modules.device_accounting.models import Card, CostCenter, PrintUser, Transaction
from modules.device_accounting.tests.records_support import API, count, created, customer, problem_fields
from modules.rentals.devices import create_device
from tests.api_support import bearer


def new_user(client, headers, username="mrossi", **body) -> dict:
    return created(client.post(f"{API}/users", json={"username": username, **body}, headers=headers))


def test_a_customer_admin_adds_a_user_with_card_0004521_and_4521_is_another_card(client, admin, bianchi):
    mario = new_user(client, admin, "mrossi", full_name="Mario Rossi", cards=["0004521"], pin="4821")
    laura = new_user(client, admin, "lbianchi", full_name="Laura Bianchi", cards=["4521"])

    by_card = client.get(f"{API}/users?card=0004521", headers=admin).get_json()["items"]
    by_short_card = client.get(f"{API}/users?card=4521", headers=admin).get_json()["items"]

    assert mario["customer_id"] == bianchi.id
    assert [card["number"] for card in mario["cards"]] == ["0004521"]
    assert (mario["has_pin"], mario["has_password"], laura["has_pin"]) == (True, False, False)
    assert [user["username"] for user in by_card] == ["mrossi"]
    assert [user["username"] for user in by_short_card] == ["lbianchi"]


def test_no_secret_is_ever_in_an_answer(client, admin, bianchi):
    user = new_user(client, admin, cards=["0004521"], pin="482193", password="correct horse battery")
    stored = db.session.get(PrintUser, user["id"])

    bodies = [
        client.get(f"{API}/users/{user['id']}", headers=admin).get_data(as_text=True),
        client.get(f"{API}/users", headers=admin).get_data(as_text=True),
    ]

    for body in bodies:
        assert stored.pin_digest not in body and stored.password_hash not in body
        assert "482193" not in body and "pin_digest" not in body and "password_hash" not in body


def test_a_pin_of_three_digits_is_a_422_on_pin_and_writes_nothing(client, admin, bianchi):
    refused = client.post(
        f"{API}/users", json={"username": "mrossi", "cards": ["0004521"], "pin": "123"}, headers=admin
    )
    user = new_user(client, admin)
    on_pin_route = client.post(f"{API}/users/{user['id']}/pin", json={"pin": "123"}, headers=admin)

    assert problem_fields(refused) == {"pin": "Il PIN è composto da 4 a 8 cifre."}
    assert problem_fields(on_pin_route) == {"pin": "Il PIN è composto da 4 a 8 cifre."}
    assert count(Card) == 0 and count(PrintUser) == 1
    assert client.get(f"{API}/users/{user['id']}", headers=admin).get_json()["has_pin"] is False


def test_a_card_already_used_by_another_user_is_a_422_naming_them_and_writes_nothing(client, admin, bianchi):
    mario = new_user(client, admin, "mrossi", full_name="Mario Rossi", cards=["0004521"])
    laura = new_user(client, admin, "lbianchi")

    on_card_route = client.post(f"{API}/users/{laura['id']}/cards", json={"number": "0004521"}, headers=admin)
    on_create = client.post(f"{API}/users", json={"username": "gverdi", "cards": ["0004521"]}, headers=admin)

    # The customer admin reads the API in their language (Italian).
    message = "La tessera 0004521 è già usata da Mario Rossi (mrossi)."
    assert problem_fields(on_card_route) == {"number": message}
    assert problem_fields(on_create) == {"cards": message}
    assert count(PrintUser) == 2 and count(Card) == 1
    assert db.session.get(PrintUser, mario["id"]).cards[0].number == "0004521"


def test_a_lost_card_is_disabled_keeps_its_number_and_returns_only_to_its_user(client, admin, bianchi):
    mario = new_user(client, admin, "mrossi", cards=["0004521"])
    laura = new_user(client, admin, "lbianchi")
    card = mario["cards"][0]
    base = f"{API}/users/{mario['id']}/cards/{card['id']}"

    disabled = client.post(f"{base}/disable", headers=admin)
    taken = client.post(f"{API}/users/{laura['id']}/cards", json={"number": "0004521"}, headers=admin)
    enabled = client.patch(base, json={"active": True}, headers=admin)
    again = client.patch(base, json={"active": False}, headers=admin)

    assert disabled.status_code == 200 and disabled.get_json()["active"] is False
    assert disabled.get_json()["disabled_at"] is not None
    assert "disattivata" in problem_fields(taken)["number"]
    assert enabled.get_json()["active"] is True and enabled.get_json()["disabled_at"] is None
    assert again.get_json()["active"] is False
    assert client.get(f"{API}/users/{mario['id']}/cards", headers=admin).get_json()[0]["number"] == "0004521"


def test_pin_reset_chooses_a_pin_once_and_ends_the_lockout(client, admin, bianchi):
    user = new_user(client, admin, pin="4821")
    stored = db.session.get(PrintUser, user["id"])
    stored.pin_locked_until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)
    db.session.commit()

    reset = client.post(f"{API}/users/{user['id']}/pin", json={}, headers=admin)
    read = client.get(f"{API}/users/{user['id']}", headers=admin).get_json()
    chosen = client.post(f"{API}/users/{user['id']}/pin", json={"pin": "12345678"}, headers=admin)

    pin = reset.get_json()["pin"]
    assert reset.status_code == 200 and len(pin) == 6 and pin.isdigit()
    assert read["pin_locked_until"] is None and read["has_pin"] is True
    assert chosen.get_json() == {"pin": None, "has_pin": True}
    assert users.find_by_pin(bianchi.id, "12345678").id == user["id"]
    assert client.delete(f"{API}/users/{user['id']}/pin", headers=admin).status_code == 204
    assert users.find_by_pin(bianchi.id, "12345678") is None


def test_a_pin_taken_in_the_customer_is_refused_without_saying_whose(client, admin, bianchi):
    new_user(client, admin, "mrossi", full_name="Mario Rossi", pin="4821")
    laura = new_user(client, admin, "lbianchi")

    message = problem_fields(client.post(f"{API}/users/{laura['id']}/pin", json={"pin": "4821"}, headers=admin))["pin"]

    assert "già in uso" in message and "Rossi" not in message and "mrossi" not in message


def test_password_set_and_removed(client, admin, bianchi):
    user = new_user(client, admin)

    short = client.post(f"{API}/users/{user['id']}/password", json={"password": "short"}, headers=admin)
    done = client.post(f"{API}/users/{user['id']}/password", json={"password": "correct horse battery"}, headers=admin)

    assert "password" in problem_fields(short)
    assert done.status_code == 204
    assert users.check_password(db.session.get(PrintUser, user["id"]), "correct horse battery")
    assert client.get(f"{API}/users/{user['id']}", headers=admin).get_json()["has_password"] is True
    assert client.delete(f"{API}/users/{user['id']}/password", headers=admin).status_code == 204
    assert client.get(f"{API}/users/{user['id']}", headers=admin).get_json()["has_password"] is False


def test_bad_user_input_is_a_422_naming_each_field_and_changes_nothing(client, admin, bianchi):
    user = new_user(client, admin, "mrossi", email="mario@example.com")

    response = client.patch(
        f"{API}/users/{user['id']}",
        json={
            "username": "MROSSI2",
            "email": "mario@",
            "language": "fr",
            "max_sides": 5,
            "default_cost_center_id": 999,
        },
        headers=admin,
    )
    unknown_function = client.patch(f"{API}/users/{user['id']}", json={"allowed_functions": ["telex"]}, headers=admin)
    duplicate = client.post(f"{API}/users", json={"username": "MRossi"}, headers=admin)

    assert set(problem_fields(response)) == {"email", "language", "default_cost_center_id"}
    assert set(problem_fields(unknown_function)) == {"allowed_functions.0"}
    assert set(problem_fields(duplicate)) == {"username"}
    db.session.expire_all()
    stored = db.session.get(PrintUser, user["id"])
    assert (stored.username, stored.email, stored.max_sides) == ("mrossi", "mario@example.com", None)


def test_users_charge_the_cost_centers_of_their_customer(client, admin, bianchi):
    top = created(client.post(f"{API}/cost-centers", json={"name": "Amministrazione"}, headers=admin))
    accounts = created(
        client.post(f"{API}/cost-centers", json={"name": "Contabilità", "parent_id": top["id"]}, headers=admin)
    )
    user = new_user(client, admin, default_cost_center_id=accounts["id"], cost_center_ids=[top["id"]])

    filtered = client.get(f"{API}/users?cost_center_id={accounts['id']}", headers=admin).get_json()["items"]

    assert accounts["path"] == "Amministrazione / Contabilità"
    assert (user["default_cost_center_id"], sorted(user["cost_center_ids"])) == (
        accounts["id"],
        sorted([top["id"], accounts["id"]]),
    )
    assert [row["id"] for row in filtered] == [user["id"]]


def test_a_user_with_jobs_is_not_deleted_one_without_is(client, staff, bianchi):
    kept = new_user(client, staff, "mrossi", customer_id=bianchi.id)
    gone = new_user(client, staff, "lbianchi", customer_id=bianchi.id)
    device = create_device({"serial": "KY1", "manufacturer": "Kyocera", "model": "M5526", "meters": ["bw"]})
    moment = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    db.session.add(
        Transaction(
            customer_id=bianchi.id,
            device_id=device.id,
            device_seq=1,
            user_id=kept["id"],
            function="print",
            sides_bw=2,
            started_at=moment,
            ended_at=moment,
            cost=Decimal("0.0200"),
        )
    )
    db.session.commit()

    refused = client.delete(f"{API}/users/{kept['id']}", headers=staff)
    deleted = client.delete(f"{API}/users/{gone['id']}", headers=staff)

    assert "deactivate" in problem_fields(refused, 409)["user"]
    assert deleted.status_code == 204
    assert [user.username for user in db.session.query(PrintUser)] == ["mrossi"]


# Cost centers


def test_cost_centers_are_a_tree_without_cycles(client, admin, bianchi):
    top = created(client.post(f"{API}/cost-centers", json={"name": "Amministrazione", "code": "AM"}, headers=admin))
    child = created(
        client.post(f"{API}/cost-centers", json={"name": "Contabilità", "parent_id": top["id"]}, headers=admin)
    )

    cycle = client.patch(f"{API}/cost-centers/{top['id']}", json={"parent_id": child["id"]}, headers=admin)
    twin = client.post(f"{API}/cost-centers", json={"name": "contabilità", "parent_id": top["id"]}, headers=admin)
    tops = client.get(f"{API}/cost-centers?top=true", headers=admin).get_json()["items"]
    shared = client.patch(f"{API}/cost-centers/{child['id']}", json={"shared": True}, headers=admin)

    assert "parent_id" in problem_fields(cycle)
    assert "name" in problem_fields(twin)
    assert [center["path"] for center in tops] == ["Amministrazione"]
    assert shared.get_json()["shared"] is True and shared.get_json()["path"] == "Amministrazione / Contabilità"
    assert client.delete(f"{API}/cost-centers/{top['id']}", headers=admin).status_code == 409
    assert client.delete(f"{API}/cost-centers/{child['id']}", headers=admin).status_code == 204
    assert count(CostCenter) == 1


def test_staff_name_the_customer_and_lists_filter_by_it(client, staff, bianchi):
    rossi = customer("Farmacia Rossi")
    missing = client.post(f"{API}/cost-centers", json={"name": "Direzione"}, headers=staff)
    for partner in (bianchi, rossi):
        created(
            client.post(f"{API}/cost-centers", json={"name": "Direzione", "customer_id": partner.id}, headers=staff)
        )
        new_user(client, staff, "mrossi", customer_id=partner.id)

    centers = client.get(f"{API}/cost-centers?customer_id={rossi.id}", headers=staff).get_json()
    listed = client.get(f"{API}/users?customer_id={bianchi.id}", headers=staff).get_json()

    assert problem_fields(missing) == {"customer_id": "This field is required."}
    assert [center["customer_id"] for center in centers["items"]] == [rossi.id]
    assert [user["customer_id"] for user in listed["items"]] == [bianchi.id]
    assert client.get(f"{API}/users", headers=staff).get_json()["total"] == 2


# Settings


def test_settings_default_then_change(client, admin, bianchi):
    before = client.get(f"{API}/settings/{bianchi.id}", headers=admin).get_json()
    changed = client.patch(
        f"{API}/settings/{bianchi.id}", json={"hide_document_names": True, "anonymise_after_months": 24}, headers=admin
    )
    bad = client.patch(f"{API}/settings/{bianchi.id}", json={"anonymise_after_months": 0}, headers=admin)
    listed = client.get(f"{API}/settings", headers=admin).get_json()["items"]

    assert before == {"customer_id": bianchi.id, "hide_document_names": False, "anonymise_after_months": None}
    assert changed.get_json()["hide_document_names"] is True
    assert "anonymise_after_months" in problem_fields(bad)
    assert listed == [{"customer_id": bianchi.id, "hide_document_names": True, "anonymise_after_months": 24}]


# Permissions


def test_who_may_read_and_change(client, bianchi):
    user = new_user(client, bearer("dealer_admin"), customer_id=bianchi.id)
    technician = bearer("technician")
    customer_user = bearer("customer_user", customer=bianchi)

    assert client.get(f"{API}/users/{user['id']}", headers=technician).status_code == 200
    assert client.patch(f"{API}/users/{user['id']}", json={"active": False}, headers=technician).status_code == 403
    assert client.get(f"{API}/users", headers=customer_user).status_code == 403
    assert client.get(f"{API}/cost-centers", headers=customer_user).status_code == 403
