"""The device-accounting forms of the back office save through the module's services, so a refusal names the field
and writes nothing: print users, cost centers, price lists, quotas, directories, privacy, chargeback, CSV import."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from modules.device_accounting.models import (
    AccountingSettings,
    Balance,
    Chargeback,
    CostCenter,
    Directory,
    PriceList,
    PrintUser,
    Quota,
)
from modules.device_accounting.tests import admin_support as s
from modules.rentals.contracts import create_contract

ADMIN = "/admin"


@pytest.fixture
def client(app, office):
    return s.staff(app, "back_office")


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def test_a_print_user_is_created_through_the_form_and_a_taken_username_is_refused_on_its_field(app, office, client):
    url = f"{ADMIN}/device_accounting_user/new/"
    data = {
        "customer": office.customer_id,
        "username": "gneri",
        "full_name": "Giulia Neri",
        "email": "giulia@rossi.example",
        "language": "it",
        "active": "y",
        "default_cost_center": office.child_id,
        "cost_centers": [office.center_id],
        "allowed_functions": ["print", "scan"],
        "color_allowed": "no",
        "max_sides": "50",
        "duplex_forced": "",
    }
    assert s.post(client, url, data, url).status_code == 302
    with app.app_context():
        user = db.session.scalar(sa.select(PrintUser).where(PrintUser.username == "gneri"))
        assert (user.allowed_functions, user.color_allowed, user.max_sides, user.duplex_forced) == (
            ["print", "scan"],
            False,
            50,
            None,
        )
        assert {center.name for center in user.cost_centers} == {"Amministrazione", "Contabilità"}
    taken = s.post(client, url, {**data, "username": "MROSSI", "email": ""}, url)
    assert taken.status_code == 200
    assert "MROSSI" in s.text_of(taken.get_data(as_text=True))  # the message under the username names it
    assert _count(app, PrintUser) == 3
    bad = s.post(client, url, {**data, "username": "nuovo", "email": "", "max_sides": "molti"}, url)
    assert "molti" in s.text_of(bad.get_data(as_text=True))
    assert _count(app, PrintUser) == 3


def test_cost_centers_are_listed_as_paths_and_a_sibling_name_is_unique(app, office, client):
    url = f"{ADMIN}/device_accounting_cost_center/new/"
    data = {"customer": office.customer_id, "parent": office.center_id, "name": "Paghe", "active": "y"}
    assert s.post(client, url, data, url).status_code == 302
    assert "Amministrazione / Paghe" in s.text_of(
        client.get(f"{ADMIN}/device_accounting_cost_center/").get_data(as_text=True)
    )
    again = s.post(client, url, {**data, "name": "paghe"}, url)
    assert again.status_code == 200 and "paghe" in s.text_of(again.get_data(as_text=True))
    assert _count(app, CostCenter, CostCenter.name.in_(("Paghe", "paghe"))) == 1


def _entry(index: int, function: str, colour: str, size: str, duplex: str, price: str) -> dict:
    prefix = f"entries-{index}"
    return {
        f"{prefix}-function": function,
        f"{prefix}-colour": colour,
        f"{prefix}-paper_size": size,
        f"{prefix}-duplex": duplex,
        f"{prefix}-price_per_side": price,
        f"{prefix}-job_fee": "",
    }


def test_a_price_list_without_its_defaults_is_refused_and_a_whole_one_saved(app, office, client):
    url = f"{ADMIN}/device_accounting_price_list/new/"
    head = {"customer_id": office.customer_id, "name": "Listino Rossi", "valid_from": "2026-01-01"}
    only_a3 = {**head, **_entry(0, "print", "bw", "A3", "any", "0,02"), **_entry(1, "print", "bw", "any", "any", "")}
    refused = s.post(client, url, only_a3, url)
    assert refused.status_code == 422
    assert 'id="form-errors"' in refused.get_data(as_text=True)
    assert _count(app, PriceList, PriceList.customer_id == office.customer_id) == 0
    whole = {**head, **_entry(0, "print", "bw", "A3", "any", "0,02"), **_entry(1, "print", "bw", "any", "any", "0,009")}
    saved = s.post(client, url, whole, url, follow_redirects=True)
    assert saved.status_code == 200
    with app.app_context():
        price_list = db.session.scalar(sa.select(PriceList).where(PriceList.customer_id == office.customer_id))
        assert sorted((e.paper_size, e.price_per_side) for e in price_list.entries) == [
            ("A3", Decimal("0.020000")),
            ("any", Decimal("0.009000")),
        ]
    assert "0,009" in s.text_of(saved.get_data(as_text=True))


def test_a_quota_is_created_with_its_first_period_and_a_cap_below_the_amount_is_refused(app, office, client):
    url = f"{ADMIN}/device_accounting_quota/new/"
    data = {
        "customer": office.customer_id,
        "user": office.other_user_id,
        "period": "monthly",
        "amount": "20,00",
        "mode": "rollover",
        "rollover_cap": "10",
        "overdraft": "0",
        "warning_percent": "80",
    }
    refused = s.post(client, url, data, url)
    assert refused.status_code == 200
    assert _count(app, Quota, Quota.user_id == office.other_user_id) == 0
    assert s.post(client, url, {**data, "rollover_cap": "30,00"}, url).status_code == 302
    with app.app_context():
        quota = db.session.scalar(sa.select(Quota).where(Quota.user_id == office.other_user_id))
        assert (quota.amount, quota.rollover_cap) == (Decimal("20.0000"), Decimal("30.0000"))
        assert db.session.scalar(sa.select(Balance.balance).where(Balance.quota_id == quota.id)) == Decimal("20")


def test_a_directory_keeps_its_bind_password_write_only_and_records_a_failed_sync(app, office, client):
    url = f"{ADMIN}/device_accounting_directory/new/"
    data = {
        "customer": office.customer_id,
        "url": "ldap://127.0.0.1:9",
        "bind_dn": "cn=reader,dc=rossi,dc=local",
        "bind_password": "segreto-di-prova",
        "base_dn": "ou=people,dc=rossi,dc=local",
        "user_filter": "(objectClass=person)",
        "username_attribute": "uid",
        "name_attribute": "cn",
        "email_attribute": "mail",
        "department_attribute": "departmentNumber",
        "card_attribute": "",
        "sync_every_hours": "",
    }
    assert s.post(client, url, data, url).status_code == 302
    with app.app_context():
        directory = db.session.scalar(sa.select(Directory))
        sealed, ident = directory.bind_password_sealed, directory.id
    assert sealed and "segreto-di-prova" not in sealed
    details = f"{ADMIN}/device_accounting_directory/details/?id={ident}"
    edit = f"{ADMIN}/device_accounting_directory/edit/?id={ident}"
    for page in (details, edit):
        assert "segreto-di-prova" not in client.get(page).get_data(as_text=True)
    changed = {key: value for key, value in data.items() if key != "customer"}
    assert (
        s.post(
            client, edit, {**changed, "bind_password": "", "base_dn": "ou=staff,dc=rossi,dc=local"}, edit
        ).status_code
        == 302
    )
    with app.app_context():
        directory = db.session.get(Directory, ident)
        assert (directory.base_dn, directory.bind_password_sealed) == ("ou=staff,dc=rossi,dc=local", sealed)

    synced = s.post(client, f"{ADMIN}/device_accounting_directory/sync/?id={ident}", {}, details, follow_redirects=True)
    assert synced.status_code == 200
    with app.app_context():
        result = db.session.get(Directory, ident).last_sync_result
    assert result["status"] == "failed"  # nothing listens on port 9: recorded, shown on the page
    assert result["error"] in s.text_of(client.get(details).get_data(as_text=True))


def test_privacy_settings_and_a_refused_number_of_months(app, office, client):
    url = f"{ADMIN}/device_accounting_privacy/new/"
    refused = s.post(client, url, {"customer": office.customer_id, "anonymise_after_months": "0"}, url)
    assert refused.status_code == 200
    assert _count(app, AccountingSettings) == 0
    data = {"customer": office.customer_id, "hide_document_names": "y", "anonymise_after_months": "12"}
    assert s.post(client, url, data, url).status_code == 302
    with app.app_context():
        settings = db.session.get(AccountingSettings, office.customer_id)
        assert (settings.hide_document_names, settings.anonymise_after_months) == (True, 12)


def test_chargeback_once_per_contract(app, office, client):
    with app.app_context():
        contract = create_contract(
            {
                "customer_id": office.customer_id,
                "start_date": dt.date(2026, 1, 1),
                "period_months": 1,
                "fee": Decimal("50.00"),
                "allowances": [],
                "devices": [],
            }
        )
        db.session.commit()
        contract_id = contract.id
    url = f"{ADMIN}/device_accounting_chargeback/new/"
    assert s.post(client, url, {"contract": contract_id, "start_date": "2026-02-01"}, url).status_code == 302
    again = s.post(client, url, {"contract": contract_id, "start_date": "2026-03-01"}, url)
    assert again.status_code == 200
    with app.app_context():
        assert db.session.scalars(sa.select(Chargeback.start_date)).all() == [dt.date(2026, 2, 1)]
    listed = s.text_of(client.get(f"{ADMIN}/device_accounting_chargeback/").get_data(as_text=True))
    assert "Studio Rossi" in listed


def test_print_users_are_imported_from_a_csv_with_their_cards(app, office, client):
    url = f"{ADMIN}/device_accounting_import/"
    csv_text = (
        "customer,username,full_name,cards\n"
        "Studio Rossi,aneri,Anna Neri,0007001\n"
        "Studio Rossi,bgialli,Bruno Gialli,07002\n"
    )
    checked = s.post(
        client,
        f"{url}run/",
        {"kind": "print_users", "file": (io.BytesIO(csv_text.encode()), "utenti.csv")},
        url,
        content_type="multipart/form-data",
    )
    assert checked.status_code == 200
    assert _count(app, PrintUser) == 2  # checked, not written yet
    imported = s.post(client, f"{url}run/", {"kind": "print_users", "step": "import", "content": csv_text}, url)
    assert imported.status_code == 302
    with app.app_context():
        cards = {user.username: [c.number for c in user.cards] for user in db.session.scalars(sa.select(PrintUser))}
    assert cards["aneri"] == ["0007001"] and cards["bgialli"] == ["07002"]
