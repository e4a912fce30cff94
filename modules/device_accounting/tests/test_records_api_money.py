"""Price lists and quotas through the CRUD API: saved by da-core's pricing and quotas, balances shown, bad input 422."""

from __future__ import annotations

from modules.device_accounting.models import LedgerEntry, PriceEntry, PriceList, Quota
from modules.device_accounting.tests.records_support import API, count, created, problem_fields

ENTRIES = [
    {"function": "print", "colour": "bw", "price_per_side": "0.010000"},
    {"function": "print", "colour": "color", "price_per_side": "0.080000"},
    {"function": "print", "colour": "color", "paper_size": "A3", "duplex": "any", "price_per_side": "0.150000"},
]


def test_staff_save_a_customer_price_list_and_the_customer_admin_reads_it(client, staff, admin, bianchi):
    body = {"customer_id": bianchi.id, "name": "Listino 2026", "valid_from": "2026-01-01", "entries": ENTRIES}

    saved = created(client.post(f"{API}/price-lists", json=body, headers=staff))
    read = client.get(f"{API}/price-lists/{saved['id']}", headers=admin).get_json()

    assert read["customer_id"] == bianchi.id and read["name"] == "Listino 2026"
    assert [
        (entry["function"], entry["colour"], entry["paper_size"], entry["price_per_side"]) for entry in read["entries"]
    ] == [
        ("print", "bw", "any", "0.010000"),
        ("print", "color", "any", "0.080000"),
        ("print", "color", "A3", "0.150000"),
    ]


def test_a_price_list_without_its_catch_all_entry_is_422_and_nothing_is_written(client, staff):
    body = {
        "name": "Listino base",
        "valid_from": "2026-01-01",
        "entries": [{"function": "copy", "colour": "bw", "paper_size": "A4", "price_per_side": "0.01"}],
    }

    response = client.post(f"{API}/price-lists", json=body, headers=staff)
    bad_code = client.post(
        f"{API}/price-lists",
        json={**body, "entries": [{"function": "telex", "colour": "bw", "price_per_side": "0.01"}]},
        headers=staff,
    )

    assert set(problem_fields(response)) == {"entries.0"}
    assert set(problem_fields(bad_code)) == {"entries.0.function"}
    assert count(PriceList) == 0 and count(PriceEntry) == 0


def test_a_patch_replaces_entries_and_an_unused_list_is_deleted(client, staff):
    saved = created(
        client.post(
            f"{API}/price-lists",
            json={"name": "Listino base", "valid_from": "2026-01-01", "entries": ENTRIES},
            headers=staff,
        )
    )

    renamed = client.patch(f"{API}/price-lists/{saved['id']}", json={"name": "Listino dealer"}, headers=staff)
    replaced = client.patch(f"{API}/price-lists/{saved['id']}", json={"entries": ENTRIES[:1]}, headers=staff)
    dealer_only = client.get(f"{API}/price-lists?dealer=true", headers=staff).get_json()

    assert renamed.get_json()["name"] == "Listino dealer" and len(renamed.get_json()["entries"]) == 3
    assert [entry["colour"] for entry in replaced.get_json()["entries"]] == ["bw"]
    assert [item["customer_id"] for item in dealer_only["items"]] == [None]
    assert client.delete(f"{API}/price-lists/{saved['id']}", headers=staff).status_code == 204
    assert count(PriceList) == 0


def _user(client, headers, username: str = "mrossi") -> int:
    return created(client.post(f"{API}/users", json={"username": username}, headers=headers))["id"]


def test_a_customer_admin_sets_a_monthly_quota_of_20_with_rollover_cap_30(client, admin, bianchi):
    user_id = _user(client, admin)

    quota = created(
        client.post(
            f"{API}/quotas",
            json={
                "user_id": user_id,
                "period": "monthly",
                "amount": "20.00",
                "mode": "rollover",
                "rollover_cap": "30.00",
            },
            headers=admin,
        )
    )
    read = client.get(f"{API}/quotas/{quota['id']}", headers=admin).get_json()

    assert (read["customer_id"], read["user_id"], read["mode"]) == (bianchi.id, user_id, "rollover")
    assert (read["amount"], read["rollover_cap"]) == ("20.0000", "30.0000")
    assert (read["balance"]["opening"], read["balance"]["balance"], read["balance"]["available"]) == (
        "20.0000",
        "20.0000",
        "20.0000",
    )
    listed = client.get(f"{API}/quotas?user_id={user_id}", headers=admin).get_json()["items"]
    assert [item["id"] for item in listed] == [quota["id"]]


def test_bad_quota_input_is_422_naming_the_field(client, admin):
    user_id = _user(client, admin)

    low_cap = client.post(
        f"{API}/quotas",
        json={"user_id": user_id, "amount": "20.00", "mode": "rollover", "rollover_cap": "10.00"},
        headers=admin,
    )
    no_holder = client.post(f"{API}/quotas", json={"amount": "20.00"}, headers=admin)
    float_amount = client.post(f"{API}/quotas", json={"user_id": user_id, "amount": 20.0}, headers=admin)

    assert set(problem_fields(low_cap)) == {"rollover_cap"}
    assert set(problem_fields(no_holder)) == {"user_id"}
    assert set(problem_fields(float_amount)) == {"amount"}
    assert count(Quota) == 0


def test_adjustments_move_the_balance_show_in_the_ledger_and_keep_the_quota(client, admin):
    user_id = _user(client, admin)
    quota = created(client.post(f"{API}/quotas", json={"user_id": user_id, "amount": "20.00"}, headers=admin))

    adjusted = client.post(
        f"{API}/quotas/{quota['id']}/adjustments", json={"amount": "-2.50", "reason": "Correzione"}, headers=admin
    )
    read = client.get(f"{API}/quotas/{quota['id']}", headers=admin).get_json()
    ledger = client.get(f"{API}/quotas/{quota['id']}/ledger", headers=admin).get_json()["items"]
    refused = client.delete(f"{API}/quotas/{quota['id']}", headers=admin)

    assert adjusted.status_code == 201 and adjusted.get_json()["reason"] == "Correzione"
    assert read["balance"]["balance"] == "17.5000"
    assert sorted((entry["kind"], entry["amount"]) for entry in ledger) == [
        ("adjustment", "-2.5000"),
        ("opening", "20.0000"),
    ]
    assert "quota" in problem_fields(refused, 409)
    assert count(Quota) == 1


def test_a_quota_without_movements_is_deleted_and_a_patch_changes_the_next_periods(client, admin):
    user_id = _user(client, admin)
    quota = created(client.post(f"{API}/quotas", json={"user_id": user_id, "amount": "20.00"}, headers=admin))

    patched = client.patch(
        f"{API}/quotas/{quota['id']}", json={"amount": "25.00", "warning_percent": 90}, headers=admin
    )
    deleted = client.delete(f"{API}/quotas/{quota['id']}", headers=admin)

    assert (patched.get_json()["amount"], patched.get_json()["warning_percent"]) == ("25.0000", 90)
    assert patched.get_json()["balance"]["balance"] == "20.0000"
    assert deleted.status_code == 204
    assert count(Quota) == 0 and count(LedgerEntry) == 0


def test_a_user_with_a_quota_is_not_deleted(client, admin):
    user_id = _user(client, admin)
    created(client.post(f"{API}/quotas", json={"user_id": user_id, "amount": "20.00"}, headers=admin))

    refused = client.delete(f"{API}/users/{user_id}", headers=admin)

    assert "elimina prima la quota" in problem_fields(refused, 409)["user"]
    assert count(Quota) == 1
