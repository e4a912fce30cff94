"""Device operations: identify (card, PIN with lockout, password), authorize, record once, refund."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
import time_machine

from core.db import db
from core.validation import ValidationError
from modules.device_accounting import users
from modules.device_accounting.models import AccountingSettings, DailyUsage, LedgerEntry, Refund, Transaction
from modules.device_accounting.operations import (
    IdentifyRefused,
    authorize,
    customer_of_device,
    identify,
    record_transaction,
    refund,
)
from modules.device_accounting.tests import core_support as s
from modules.rentals.devices import move_device

D = Decimal
NOW = s.at("2026-03-02T10:00:00+01:00")


@pytest.fixture
def office(db_session):
    studio = s.customer()
    machine = s.device("KY1", studio)
    admin_center = s.cost_center(studio, "Amministrazione")
    user = s.print_user(studio, "mrossi", email="mario.rossi@example.com", default_cost_center_id=admin_center.id)
    s.simple_prices(bw="0.01", color="0.05")
    db_session.commit()
    return studio, machine, user


def refused(**kwargs) -> IdentifyRefused:
    with pytest.raises(IdentifyRefused) as error:
        identify(**kwargs)
    return error.value


# --- identify ----------------------------------------------------------------------------------------------------


def test_a_card_number_is_an_exact_string(office):
    _studio, machine, user = office
    users.add_card(user, "0004521")

    assert identify(machine.id, card="0004521").user.id == user.id
    unknown = refused(device_id=machine.id, card="4521")
    assert (unknown.status, unknown.reason) == (401, "unknown_card")


def test_a_disabled_card_or_user_is_refused_with_the_reason(office):
    _studio, machine, user = office
    lost = users.add_card(user, "111")
    users.add_card(user, "222")
    users.disable_card(lost)

    assert (refused(device_id=machine.id, card="111").reason, identify(machine.id, card="222").user) == (
        "card_disabled",
        user,
    )
    user.active = False
    disabled = refused(device_id=machine.id, card="222")
    assert (disabled.status, disabled.reason) == (401, "user_disabled")


def test_the_identity_has_the_cost_centers_privileges_and_balance(office):
    studio, machine, user = office
    sales = s.cost_center(studio, "Vendite", allowed_functions=["print", "scan"], color_allowed=False)
    users.save_user(
        studio.id,
        {"cost_center_ids": [user.default_cost_center_id, sales.id], "default_cost_center_id": sales.id},
        user,
    )
    users.add_card(user, "0004521")
    s.quota(user, "20.00", overdraft="2.50")

    found = identify(machine.id, card="0004521").as_dict()

    assert found["user"]["username"] == "mrossi"
    assert [center["path"] for center in found["cost_centers"]] == ["Amministrazione", "Vendite"]
    assert found["privileges"] == {
        "functions": ["print", "scan"],
        "color_allowed": False,
        "max_sides": None,
        "duplex_forced": False,
    }
    assert (found["balance"], found["overdraft"]) == (D("20.0000"), D("2.5000"))


def test_the_devices_customer_is_where_it_stands_now(office, db_session):
    studio, machine, user = office
    users.add_card(user, "0004521")
    elsewhere = s.customer("Altro Cliente")
    move_device(machine, elsewhere.id, None, dt.date(2026, 2, 1))

    assert customer_of_device(machine.id, s.at("2026-01-31T12:00:00+01:00")) == studio.id
    assert customer_of_device(machine.id, s.at("2026-02-01T12:00:00+01:00")) == elsewhere.id
    assert refused(device_id=machine.id, card="0004521").reason == "unknown_card"
    move_device(machine, None, None, dt.date(2026, 2, 2))
    with pytest.raises(ValidationError) as error:
        identify(machine.id, card="0004521")
    assert set(error.value.errors) == {"device_id"}


def test_a_username_and_password_identify_a_user(office):
    _studio, machine, user = office
    users.set_password(user, "correct horse battery")

    assert identify(machine.id, username="MRossi", password="correct horse battery").user == user
    assert refused(device_id=machine.id, username="mrossi", password="wrong password").reason == "wrong_password"
    assert refused(device_id=machine.id, username="nobody", password="correct horse battery").status == 401


def test_identify_without_a_credential_or_with_two_is_bad_input(office):
    _studio, machine, _user = office
    for kwargs, field in (
        ({}, "card"),
        ({"card": "1", "pin": "1234"}, "pin"),
        ({"password": "secret"}, "username"),
        ({"username": "mrossi"}, "password"),
        ({"pin": "12ab"}, "pin"),
    ):
        with pytest.raises(ValidationError) as error:
            identify(machine.id, **kwargs)
        assert field in error.value.errors, kwargs


def test_five_wrong_pins_of_a_user_lock_that_pin_for_15_minutes(office, db_session):
    _studio, machine, user = office
    users.set_pin(user, "2468")
    db_session.commit()
    with time_machine.travel(NOW, tick=False) as clock:
        for minute in range(4):
            clock.move_to(NOW + dt.timedelta(minutes=minute))
            assert refused(device_id=machine.id, pin="1111", username="mrossi").status == 401
        clock.move_to(NOW + dt.timedelta(minutes=10))
        fifth = refused(device_id=machine.id, pin="1111", username="mrossi")
        assert (fifth.status, fifth.reason) == (423, "pin_locked")
        assert fifth.locked_until == NOW + dt.timedelta(minutes=25)

        clock.move_to(NOW + dt.timedelta(minutes=24))
        assert refused(device_id=machine.id, pin="2468", username="mrossi").status == 423  # the right PIN, locked
        assert refused(device_id=machine.id, pin="2468").status == 423  # typed alone: still that user's PIN
        clock.move_to(NOW + dt.timedelta(minutes=25, seconds=1))
        assert identify(machine.id, pin="2468", username="mrossi").user == user
        assert identify(machine.id, pin="2468").user == user


def test_wrong_pins_spread_over_more_than_15_minutes_do_not_lock(office):
    _studio, machine, user = office
    users.set_pin(user, "2468")
    with time_machine.travel(NOW, tick=False) as clock:
        for minute in (0, 4, 8, 12, 16, 20):
            clock.move_to(NOW + dt.timedelta(minutes=minute))
            assert refused(device_id=machine.id, pin="0000", username="mrossi").status == 401
        assert identify(machine.id, pin="2468", username="mrossi").user == user


def test_five_wrong_pins_typed_alone_lock_pin_entry_at_that_device(office, db_session):
    studio, machine, user = office
    other_device = s.device("KY2", studio)
    users.set_pin(user, "2468")
    with time_machine.travel(NOW, tick=False) as clock:
        for attempt in range(5):
            clock.move_to(NOW + dt.timedelta(minutes=attempt))
            answer = refused(device_id=machine.id, pin=f"99{attempt:02d}")
        assert (answer.status, answer.locked_until) == (423, NOW + dt.timedelta(minutes=19))
        clock.move_to(NOW + dt.timedelta(minutes=10))
        assert refused(device_id=machine.id, pin="2468").status == 423
        assert identify(other_device.id, pin="2468").user == user
        assert identify(machine.id, pin="2468", username="mrossi").user == user  # the user's own PIN is not locked
        clock.move_to(NOW + dt.timedelta(minutes=19, seconds=1))
        assert identify(machine.id, pin="2468").user == user


# --- authorize ---------------------------------------------------------------------------------------------------


def ask(machine, user, **job) -> dict:
    data = {"device_id": machine.id, "user_id": user.id, "function": "print", "sides_bw": 10, "sides_color": 0}
    return authorize({**data, **job})


def test_authorize_checks_the_privileges_with_the_reason(office):
    studio, machine, user = office
    users.save_user(
        studio.id,
        {
            "allowed_functions": ["print", "copy", "scan"],
            "color_allowed": False,
            "max_sides": 100,
            "duplex_forced": True,
        },
        user,
    )

    assert ask(machine, user, function="fax")["reason"] == "function_not_allowed"
    assert ask(machine, user, sides_color=1, duplex=True)["reason"] == "color_not_allowed"
    assert ask(machine, user, function="scan", sides_color=20)["allowed"] is True  # a colour scan prints nothing
    too_many = ask(machine, user, sides_bw=120, duplex=True)
    assert (too_many["allowed"], too_many["reason"], too_many["allowed_sides"]) == (False, "too_many_sides", 100)
    assert ask(machine, user, sides_bw=4)["reason"] == "duplex_required"
    assert ask(machine, user, sides_bw=1)["allowed"] is True  # one side needs no duplex
    assert ask(machine, user, duplex=True)["allowed"] is True


def test_privileges_come_from_the_cost_center_tree_unless_the_user_overrides_them(office):
    studio, machine, user = office
    parent = s.cost_center(studio, "Direzione", color_allowed=False, max_sides=50)
    child = s.cost_center(studio, "Segreteria", parent_id=parent.id)
    users.save_user(studio.id, {"cost_center_ids": [child.id], "max_sides": 80}, user)

    refusal = ask(machine, user, cost_center_id=child.id, sides_color=2)
    assert refusal["reason"] == "color_not_allowed"
    assert ask(machine, user, cost_center_id=child.id, sides_bw=80)["allowed"] is True
    assert ask(machine, user, cost_center_id=child.id, sides_bw=81)["allowed_sides"] == 80
    assert ask(machine, user, sides_color=2)["allowed"] is True  # the default cost center lets colour through


def test_a_job_is_allowed_up_to_balance_plus_overdraft_and_told_how_many_sides_fit(office):
    _studio, machine, user = office
    with time_machine.travel(NOW, tick=False):
        s.quota(user, "1.00", overdraft="0.50")
        assert ask(machine, user, sides_bw=150) == {"allowed": True, "balance": D("1.0000"), "cost": D("1.5000")}
        denied = ask(machine, user, sides_bw=100, sides_color=12)  # 1.00 + 0.60 > 1.50
        assert denied["allowed"] is False and denied["reason"] == "quota_exceeded"
        assert denied["balance"] == D("1.0000")
        assert denied["allowed_sides"] == 30  # each side priced as a colour one: 30 x 0.05 = 1.50
        assert ask(machine, user, sides_bw=0, sides_color=31)["allowed_sides"] == 30


def test_authorize_without_a_quota_allows_and_says_no_balance(office):
    _studio, machine, user = office
    assert ask(machine, user, sides_bw=10_000) == {"allowed": True, "balance": None, "cost": D("100.0000")}


def test_authorize_refuses_bad_input_naming_the_field(office):
    studio, machine, user = office
    stranger = s.print_user(s.customer("Altro"), "estraneo")
    locked_away = s.cost_center(studio, "Magazzino")
    for job, field in (
        ({"function": "staple"}, "function"),
        ({"sides_bw": -1}, "sides_bw"),
        ({"paper_size": "A0"}, "paper_size"),
        ({"user_id": stranger.id}, "user_id"),
        ({"cost_center_id": locked_away.id}, "cost_center_id"),
        ({"device_id": 999_999}, "device_id"),
    ):
        with pytest.raises(ValidationError) as error:
            ask(machine, user, **job)
        assert set(error.value.errors) == {field}, job


# --- record ------------------------------------------------------------------------------------------------------


def test_a_job_is_stored_once_per_device_and_sequence_number(office, db_session):
    _studio, machine, user = office
    with time_machine.travel(NOW, tick=False):
        quota = s.quota(user, "20.00")
        first, created = record_transaction(s.job(machine, 41, user, sides_bw=30))
        db_session.commit()
        again, created_again = record_transaction(s.job(machine, 41, user, sides_bw=999, function="staple"))

    assert (created, created_again, again.id) == (True, False, first.id)
    assert again.sides_bw == 30 and again.cost == D("0.3000")
    assert s.balance_of(quota).balance == D("19.7000")
    assert [kind for kind, _amount in s.ledger(quota)] == ["opening", "charge"]
    rollup = db_session.scalars(sa.select(DailyUsage)).one()
    assert (rollup.jobs, rollup.sides_bw, rollup.cost) == (1, 30, D("0.3000"))


def test_the_same_sequence_number_on_another_device_is_another_job(office):
    studio, machine, user = office
    other = s.device("KY2", studio)
    assert record_transaction(s.job(machine, 1, user))[1] and record_transaction(s.job(other, 1, user))[1]
    assert len(s.transactions()) == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"function": "staple"}, "function"),
        ({"sides_bw": -3}, "sides_bw"),
        ({"sides_color": "many"}, "sides_color"),
        ({"paper_size": "B4"}, "paper_size"),
        ({"status": "lost"}, "status"),
        ({"ended_at": "2026-03-02T11:00:00+01:00"}, "ended_at"),
        ({"started_at": "yesterday"}, "started_at"),
        ({"device_id": 999_999}, "device_id"),
        ({"device_seq": -1}, "device_seq"),
        ({"duplex": "yes"}, "duplex"),
    ],
)
def test_a_bad_job_is_refused_naming_the_field_and_nothing_is_written(office, db_session, fields, field):
    _studio, machine, user = office
    quota = s.quota(user)
    with pytest.raises(ValidationError) as error:
        record_transaction(s.job(machine, 1, user, **fields))
    assert set(error.value.errors) == {field}
    assert s.transactions() == [] and [kind for kind, _ in s.ledger(quota)] == ["opening"]
    assert db_session.scalar(sa.select(sa.func.count(DailyUsage.id))) == 0


def test_a_job_must_name_a_user_and_cost_center_the_device_customer_allows(office):
    studio, machine, user = office
    stranger = s.print_user(s.customer("Altro"), "estraneo")
    not_his = s.cost_center(studio, "Magazzino")
    for fields, field in (({"user_id": stranger.id}, "user_id"), ({"cost_center_id": not_his.id}, "cost_center_id")):
        with pytest.raises(ValidationError) as error:
            record_transaction(s.job(machine, 1, user, **fields))
        assert set(error.value.errors) == {field}


def test_a_job_is_charged_to_the_chosen_cost_center_else_the_default_and_a_shared_one_pays_itself(office):
    studio, machine, user = office
    shared = s.cost_center(studio, "Progetto Alfa", shared=True)
    users.save_user(studio.id, {"cost_center_ids": [shared.id]}, user)
    with time_machine.travel(NOW, tick=False):
        own = s.quota(user, "20.00")
        project = s.quota(shared, "100.00")
        plain, _ = record_transaction(s.job(machine, 1, user, sides_bw=50))
        chosen, _ = record_transaction(s.job(machine, 2, user, sides_bw=200, cost_center_id=shared.id))

    assert (plain.cost_center_id, plain.quota_id) == (user.default_cost_center_id, own.id)
    assert (chosen.cost_center_id, chosen.quota_id, chosen.balance_after) == (shared.id, project.id, D("98.0000"))
    assert (s.balance_of(own).balance, s.balance_of(project).balance) == (D("19.5000"), D("98.0000"))


def test_a_job_nobody_identified_for_is_stored_without_user_or_charge(office):
    _studio, machine, _user = office
    tx, created = record_transaction(s.job(machine, 5, None, document_name="offerta.pdf"))
    assert created and tx.user_id is None and tx.quota_id is None and tx.cost == D("0.1000")
    assert tx.document_name == "offerta.pdf"


def test_a_hidden_document_name_is_never_stored(office, db_session):
    studio, machine, user = office
    db_session.add(AccountingSettings(customer_id=studio.id, hide_document_names=True))
    db_session.flush()
    tx, _created = record_transaction(s.job(machine, 1, user, document_name="Lettera di licenziamento.docx"))
    db_session.commit()
    assert tx.document_name is None
    assert db_session.scalar(sa.select(sa.func.count()).where(Transaction.document_name.is_not(None))) == 0


def test_sheets_default_to_the_sides_and_duplex(office):
    _studio, machine, user = office
    simplex, _ = record_transaction(s.job(machine, 1, user, sides_bw=5))
    duplex, _ = record_transaction(s.job(machine, 2, user, sides_bw=5, duplex=True))
    scan, _ = record_transaction(s.job(machine, 3, user, function="scan", sides_bw=5))
    given, _ = record_transaction(s.job(machine, 4, user, sides_bw=5, sheets=7))
    assert [tx.sheets for tx in (simplex, duplex, scan, given)] == [5, 3, 0, 7]


# --- refund ------------------------------------------------------------------------------------------------------


def test_a_refund_is_never_beyond_the_cost_and_raises_the_balance(office, db_session):
    from tests.api_support import add_user

    _studio, machine, user = office
    staff = add_user("back_office")
    with time_machine.travel(NOW, tick=False):
        quota = s.quota(user, "20.00")
        tx, _ = record_transaction(s.job(machine, 1, user, sides_bw=250))  # 2.50
        first = refund(tx, D("1.00"), "Inceppamento carta", staff)
        refund(tx, "1.5", "Stampa sbiadita", None)
        with pytest.raises(ValidationError) as error:
            refund(tx, D("0.0001"), "Ancora", staff)
        assert set(error.value.errors) == {"amount"}
        for amount, reason, field in ((D("-1"), "x", "amount"), (D(0), "x", "amount"), (D(1), "", "reason")):
            with pytest.raises(ValidationError) as error:
                refund(tx, amount, reason, staff)
            assert set(error.value.errors) == {field}

    assert (first.actor_id, first.reason, first.amount) == (staff.id, "Inceppamento carta", D("1.0000"))
    assert tx.refunded == tx.cost == D("2.5000")
    assert s.balance_of(quota).balance == D("20.0000")
    assert db_session.scalar(sa.select(sa.func.count(Refund.id))) == 2
    rollup = db_session.scalars(sa.select(DailyUsage)).one()
    assert (rollup.jobs, rollup.cost) == (1, D("0.0000"))


def test_a_refund_of_a_job_from_an_earlier_period_raises_the_current_balance(office):
    _studio, machine, user = office
    with time_machine.travel(NOW, tick=False) as clock:
        quota = s.quota(user, "20.00")
        tx, _ = record_transaction(s.job(machine, 1, user, sides_bw=300))
        clock.move_to(s.at("2026-04-03T10:00:00+02:00"))
        refund(tx, D("3.00"), "Lavoro ripetuto", None)
        balance = s.balance_of(quota)
        assert (balance.period_start, balance.balance) == (dt.date(2026, 4, 1), D("23.0000"))
        entry = db.session.scalars(sa.select(LedgerEntry).where(LedgerEntry.kind == "refund")).one()
        assert (entry.period_start, entry.transaction_id) == (dt.date(2026, 4, 1), tx.id)
