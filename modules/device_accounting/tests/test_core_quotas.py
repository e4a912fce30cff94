"""Quotas to the cent: periods in the dealer's time zone, reset and rollover with cap, overdraft, ledger, warnings."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
import time_machine

from core.db import db
from core.models import OutboxMessage
from core.validation import ValidationError
from modules.device_accounting import quotas
from modules.device_accounting.models import LedgerEntry
from modules.device_accounting.operations import record_transaction, refund
from modules.device_accounting.quotas import adjust, current_balance, open_due_periods, recompute, save_quota
from modules.device_accounting.tests import core_support as s

D = Decimal


@pytest.fixture
def office(db_session):
    """A customer with one installed device, one user (Italian, with email) and the dealer's prices: 0.01 a side."""
    studio = s.customer()
    machine = s.device("KY1", studio)
    user = s.print_user(studio, "mrossi", email="mario.rossi@example.com", language="it")
    s.simple_prices(bw="0.01", color="0.05")
    return studio, machine, user


def spend(machine, user, seq: int, amount: str, **fields):
    """A job costing `amount` (black-and-white sides at 0.01)."""
    sides = int(D(amount) / D("0.01"))
    tx, created = record_transaction(s.job(machine, seq, user, sides_bw=sides, **fields))
    assert created
    return tx


def test_periods_start_on_day_1_or_monday_in_the_dealers_time_zone(db_session):
    assert quotas.period_start("monthly", dt.date(2026, 3, 31)) == dt.date(2026, 3, 1)
    assert quotas.period_start("weekly", dt.date(2026, 3, 8)) == dt.date(2026, 3, 2)  # a Sunday -> its Monday
    assert quotas.next_period_start("monthly", dt.date(2026, 12, 1)) == dt.date(2027, 1, 1)
    assert quotas.next_period_start("weekly", dt.date(2026, 3, 2)) == dt.date(2026, 3, 9)
    # 23:30 UTC on 31 March is 01:30 on 1 April in Rome: April's period has begun there.
    assert quotas._today(s.at("2026-03-31T23:30:00+00:00")) == dt.date(2026, 4, 1)


def test_reset_gives_a_each_period_and_carries_a_negative_balance(office):
    _studio, machine, user = office
    with time_machine.travel(s.at("2026-03-02T10:00:00+01:00"), tick=False) as clock:
        quota = s.quota(user, "20.00", mode="reset", overdraft="5.00")
        spend(machine, user, 1, "5.00")
        assert s.balance_of(quota).balance == D("15.0000")

        clock.move_to(s.at("2026-04-01T00:30:00+02:00"))
        balance = current_balance(quota)
        assert (balance.period_start, balance.opening, balance.balance) == (dt.date(2026, 4, 1), D(20), D(20))

        spend(machine, user, 2, "23.50")  # 3.50 of the overdraft used
        clock.move_to(s.at("2026-05-04T09:00:00+02:00"))
        assert current_balance(quota).balance == D("16.5000")  # 20.00 - 3.50 carried


def test_rollover_adds_a_up_to_the_cap_and_carries_a_negative_balance(office):
    _studio, machine, user = office
    with time_machine.travel(s.at("2026-03-02T10:00:00+01:00"), tick=False) as clock:
        quota = s.quota(user, "20.00", mode="rollover", rollover_cap="30.00", overdraft="5.00")
        spend(machine, user, 1, "16.00")  # 4.00 left

        clock.move_to(s.at("2026-04-01T08:00:00+02:00"))
        assert current_balance(quota).balance == D("24.0000")  # min(4 + 20, 30)

        clock.move_to(s.at("2026-05-01T08:00:00+02:00"))
        assert current_balance(quota).balance == D("30.0000")  # min(24 + 20, 30)

        spend(machine, user, 2, "33.50")
        assert s.balance_of(quota).balance == D("-3.5000")
        clock.move_to(s.at("2026-06-01T08:00:00+02:00"))
        assert current_balance(quota).balance == D("16.5000")  # min(-3.50 + 20, 30)

        # A top-up beyond the cap lasts until the period ends: the rule caps the next opening.
        adjust(quota, D("40.00"), "Progetto straordinario", None)
        clock.move_to(s.at("2026-07-01T08:00:00+02:00"))
        assert current_balance(quota).balance == D("30.0000")


def test_periods_missed_while_nobody_printed_open_one_after_the_other(office):
    _studio, machine, user = office
    with time_machine.travel(s.at("2026-01-15T10:00:00+01:00"), tick=False) as clock:
        quota = s.quota(user, "20.00", mode="rollover", rollover_cap="50.00")
        spend(machine, user, 1, "18.00")
        clock.move_to(s.at("2026-04-10T10:00:00+02:00"))
        balance = current_balance(quota)

        openings = db.session.execute(
            sa.select(LedgerEntry.period_start, LedgerEntry.amount)
            .where(LedgerEntry.balance_id == balance.id, LedgerEntry.kind == "opening")
            .order_by(LedgerEntry.id)
        ).all()
        assert openings == [
            (dt.date(2026, 1, 1), D(20)),
            (dt.date(2026, 2, 1), D(22)),
            (dt.date(2026, 3, 1), D(42)),
            (dt.date(2026, 4, 1), D(50)),
        ]
        assert recompute(balance) == balance.balance == D(50)


def test_the_period_job_opens_every_due_period_once(office):
    studio, _machine, user = office
    weekly_user = s.print_user(studio, "lbianchi")
    with time_machine.travel(s.at("2026-03-04T10:00:00+01:00"), tick=False):
        monthly = s.quota(user, "20.00")
        weekly = s.quota(weekly_user, "5.00", period="weekly")
    assert open_due_periods(s.at("2026-03-08T23:00:00+01:00")) == 0
    assert open_due_periods(s.at("2026-03-09T00:10:00+01:00")) == 1  # Monday in Rome
    assert open_due_periods(s.at("2026-04-01T00:10:00+02:00")) == 4  # April for one, three Mondays for the other
    assert open_due_periods(s.at("2026-04-01T00:20:00+02:00")) == 0
    assert s.balance_of(monthly).period_start == dt.date(2026, 4, 1)
    assert s.balance_of(weekly).period_start == dt.date(2026, 3, 30)


def test_a_job_of_an_offline_device_is_charged_to_the_current_period_even_below_the_overdraft(office):
    _studio, machine, user = office
    with time_machine.travel(s.at("2026-04-02T10:00:00+02:00"), tick=False):
        quota = s.quota(user, "2.00", overdraft="1.00")
        tx = spend(
            machine, user, 7, "4.00", ended_at="2026-03-30T12:00:00+02:00", started_at="2026-03-30T11:59:00+02:00"
        )
        balance = s.balance_of(quota)
        assert balance.period_start == dt.date(2026, 4, 1)
        assert balance.balance == tx.balance_after == D("-2.0000")  # recorded, never dropped
        assert recompute(balance) == balance.balance


def test_refunds_and_adjustments_are_records_with_who_and_why_and_the_balance_is_their_sum(office, db_session):
    from tests.api_support import add_user

    _studio, machine, user = office
    staff = add_user("back_office")
    with time_machine.travel(s.at("2026-03-02T10:00:00+01:00"), tick=False):
        quota = s.quota(user, "20.00")
        tx = spend(machine, user, 1, "3.20")
        refund(tx, D("1.20"), "Inceppamento carta", staff)
        adjust(quota, D("5"), "Ricarica", staff)
        adjust(quota, "-0.50", "Correzione", staff)

        assert s.ledger(quota) == [
            ("opening", D("20.0000")),
            ("charge", D("-3.2000")),
            ("refund", D("1.2000")),
            ("adjustment", D("5.0000")),
            ("adjustment", D("-0.5000")),
        ]
        balance = s.balance_of(quota)
        assert balance.balance == recompute(balance) == D("22.5000")
        entries = db_session.scalars(sa.select(LedgerEntry).where(LedgerEntry.kind.in_(("refund", "adjustment"))))
        assert {(e.reason, e.actor_id) for e in entries} == {
            ("Inceppamento carta", staff.id),
            ("Ricarica", staff.id),
            ("Correzione", staff.id),
        }


def test_a_bad_adjustment_is_refused_naming_the_field(office):
    _studio, _machine, user = office
    quota = s.quota(user)
    for amount, reason, fields in ((D(0), "x", {"amount"}), ("1.23456", "x", {"amount"}), (D(1), " ", {"reason"})):
        with pytest.raises(ValidationError) as refused:
            adjust(quota, amount, reason, None)
        assert set(refused.value.errors) == fields
    assert [kind for kind, _amount in s.ledger(quota)] == ["opening"]


def test_the_warning_is_emailed_once_per_period_when_spending_reaches_w_percent(office, db_session):
    _studio, machine, user = office
    user.language = "es"
    with time_machine.travel(s.at("2026-03-02T10:00:00+01:00"), tick=False) as clock:
        s.quota(user, "20.00", warning_percent=80)
        spend(machine, user, 1, "10.00")
        spend(machine, user, 2, "5.99")
        assert db_session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 0
        spend(machine, user, 3, "0.01")  # 16.00 spent: 80% of 20.00
        spend(machine, user, 4, "2.00")
        messages = db_session.scalars(sa.select(OutboxMessage)).all()
        assert [(m.recipients, m.template, m.language) for m in messages] == [
            (["mario.rossi@example.com"], "device_accounting/quota_warning", "es")
        ]
        assert "16,00" in messages[0].body_text and "20,00" in messages[0].body_text
        assert "80%" in messages[0].subject

        clock.move_to(s.at("2026-04-01T10:00:00+02:00"))
        spend(machine, user, 5, "17.00")
        assert db_session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 2


def test_a_refund_counts_against_spending_an_adjustment_does_not(office, db_session):
    _studio, machine, user = office
    with time_machine.travel(s.at("2026-03-02T10:00:00+01:00"), tick=False):
        quota = s.quota(user, "10.00", warning_percent=50)
        tx = spend(machine, user, 1, "4.00")
        refund(tx, D("1.00"), "Inceppamento", None)
        adjust(quota, D("10.00"), "Ricarica", None)
        spend(machine, user, 2, "1.99")  # 4.99 spent of the 10.00 opening
        assert db_session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 0
        spend(machine, user, 3, "0.01")
        assert db_session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 1


def test_a_quota_is_refused_naming_the_field(office):
    studio, _machine, user = office
    other = s.customer("Altro Cliente")
    stranger = s.print_user(other, "estraneo")
    plain = s.cost_center(studio, "Amministrazione")
    cases = [
        ({"user_id": user.id, "amount": "20", "mode": "rollover"}, {"rollover_cap"}),
        ({"user_id": user.id, "amount": "20", "mode": "rollover", "rollover_cap": "10"}, {"rollover_cap"}),
        ({"user_id": user.id, "amount": "-1"}, {"amount"}),
        (
            {"user_id": user.id, "amount": "20", "overdraft": "-1", "warning_percent": 0},
            {"overdraft", "warning_percent"},
        ),
        ({"user_id": user.id, "amount": "20", "period": "daily", "mode": "carry"}, {"period", "mode"}),
        ({"user_id": stranger.id, "amount": "20"}, {"user_id"}),
        ({"cost_center_id": plain.id, "amount": "20"}, {"cost_center_id"}),
        ({"amount": "20"}, {"user_id"}),
    ]
    for data, fields in cases:
        with pytest.raises(ValidationError) as refused:
            save_quota(studio.id, data)
        assert set(refused.value.errors) == fields, data
    s.quota(user)
    with pytest.raises(ValidationError) as refused:
        s.quota(user)
    assert set(refused.value.errors) == {"user_id"}


def test_a_change_of_quota_applies_from_the_next_period(office):
    _studio, _machine, user = office
    with time_machine.travel(s.at("2026-03-02T10:00:00+01:00"), tick=False) as clock:
        quota = s.quota(user, "20.00")
        save_quota(quota.customer_id, {"amount": "35.00"}, quota)
        assert current_balance(quota).balance == D(20)
        clock.move_to(s.at("2026-04-01T10:00:00+02:00"))
        assert current_balance(quota).balance == D(35)
