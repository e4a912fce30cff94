"""Prices to the cent: the most specific entry, the list valid on the job's day, fallbacks, fees, refusals on save."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from core.validation import ValidationError
from modules.device_accounting.models import PriceEntry, PriceList
from modules.device_accounting.operations import record_transaction
from modules.device_accounting.pricing import job_cost, save_price_list, side_price
from modules.device_accounting.tests import core_support as s

MARCH = dt.date(2026, 3, 2)


def price(customer_id, function, colour, size, duplex, on=MARCH) -> Decimal | None:
    entry, _list = side_price(customer_id, function, colour, size, duplex, on)
    return entry.price_per_side if entry is not None else None


def test_the_most_specific_entry_prices_a_side_size_first_then_duplex(db_session):
    s.prices(
        None,
        [
            ("print", "bw", "any", "any", "0.020"),
            ("print", "bw", "any", "yes", "0.015"),
            ("print", "bw", "A3", "any", "0.040"),
            ("print", "bw", "A3", "yes", "0.035"),
            ("print", "bw", "A5", "no", "0.011"),
        ],
    )

    assert price(None, "print", "bw", "A3", True) == Decimal("0.035")  # size and duplex exact
    assert price(None, "print", "bw", "A3", False) == Decimal("0.040")  # exact size beats exact duplex
    assert price(None, "print", "bw", "A4", True) == Decimal("0.015")
    assert price(None, "print", "bw", "A4", False) == Decimal("0.020")
    assert price(None, "print", "bw", "A5", False) == Decimal("0.011")
    assert price(None, "print", "bw", "A5", True) == Decimal("0.015")  # A5 duplex: only duplex `yes` matches
    assert price(None, "print", "bw", "other", False) == Decimal("0.020")


def test_a_jobs_cost_is_sides_times_prices_plus_the_fee_rounded_half_up_to_four_places(db_session):
    s.prices(
        None,
        [
            ("print", "bw", "any", "any", "0.012345", "0.01"),
            ("print", "color", "any", "any", "0.079500", "0.05"),
            ("copy", "bw", "any", "any", "0.000050"),
            ("copy", "color", "any", "any", "0.000150"),
        ],
    )

    # 37 x 0.012345 + 5 x 0.0795 + 0.05 (the colour entry's fee: the job has colour sides) = 0.904265
    assert job_cost(None, "print", 37, 5, "A4", False, MARCH) == (Decimal("0.9043"), _list_id())
    # No colour side: the black-and-white entry's fee. 37 x 0.012345 + 0.01 = 0.466765
    assert job_cost(None, "print", 37, 0, "A4", False, MARCH)[0] == Decimal("0.4668")
    # Half up, not half even: 0.00005 -> 0.0001 and 0.00045 -> 0.0005.
    assert job_cost(None, "copy", 1, 0, "A4", False, MARCH)[0] == Decimal("0.0001")
    assert job_cost(None, "copy", 0, 3, "A4", False, MARCH)[0] == Decimal("0.0005")
    # A job cancelled before its first side pays no fee.
    assert job_cost(None, "print", 0, 0, "A4", False, MARCH)[0] == Decimal("0.0000")


def _list_id() -> int:
    return db.session.scalar(sa.select(PriceList.id))


def test_the_customer_list_valid_on_the_jobs_day_wins_else_the_dealers(db_session):
    studio = s.customer()
    s.prices(None, [("print", "bw", "any", "any", "0.020")], valid_from="2026-01-01", name="Base 2026")
    s.prices(None, [("print", "bw", "any", "any", "0.022")], valid_from="2026-04-01", name="Base aprile")
    s.prices(studio.id, [("print", "bw", "any", "any", "0.015")], valid_from="2026-03-01", name="Bianchi")
    s.prices(studio.id, [("print", "bw", "any", "any", "0.010")], valid_from="2026-06-01", name="Bianchi estate")

    def on(day: str) -> Decimal | None:
        return price(studio.id, "print", "bw", "A4", False, dt.date.fromisoformat(day))

    assert on("2025-12-31") is None  # nothing valid yet: the job costs 0
    assert on("2026-02-28") == Decimal("0.020")  # the customer's first list starts on 1 March
    assert on("2026-03-01") == Decimal("0.015")
    assert on("2026-05-31") == Decimal("0.015")  # the dealer's April change does not reach a customer list
    assert on("2026-06-01") == Decimal("0.010")
    assert price(None, "print", "bw", "A4", False, dt.date(2026, 5, 31)) == Decimal("0.022")


def test_what_a_customer_list_does_not_price_comes_from_the_dealers_list_and_nothing_costs_0(db_session):
    studio = s.customer()
    dealer = s.prices(
        None,
        [
            ("print", "bw", "any", "any", "0.020"),
            ("print", "color", "any", "any", "0.090"),
            ("copy", "bw", "any", "any", "0.018"),
        ],
    )
    own = s.prices(studio.id, [("print", "bw", "any", "any", "0.012")])

    assert side_price(studio.id, "print", "bw", "A4", False, MARCH) == (_entry(own, "print", "bw"), own)
    assert side_price(studio.id, "copy", "bw", "A4", False, MARCH) == (_entry(dealer, "copy", "bw"), dealer)
    # Colour is not in the customer's list either: the dealer's colour price, and its list reported for the job.
    assert job_cost(studio.id, "print", 10, 2, "A4", False, MARCH) == (Decimal("0.3000"), dealer.id)
    assert job_cost(studio.id, "print", 10, 0, "A4", False, MARCH) == (Decimal("0.1200"), own.id)
    assert job_cost(studio.id, "fax", 10, 0, "A4", False, MARCH) == (Decimal("0"), None)
    assert job_cost(studio.id, "scan", 50, 50, "A4", True, MARCH) == (Decimal("0"), None)


def _entry(price_list: PriceList, function: str, colour: str) -> PriceEntry:
    return next(e for e in price_list.entries if e.function == function and e.colour == colour)


def test_a_failed_job_costs_what_it_output(db_session):
    studio = s.customer()
    machine = s.device("KY1", studio)
    s.prices(None, [("print", "bw", "any", "any", "0.02", "0.10")])

    tx, _created = record_transaction(s.job(machine, 1, status="failed", sides_bw=3))

    assert tx.status == "failed" and tx.cost == Decimal("0.1600")


def errors_of(data: dict, customer_id: int | None = None) -> dict[str, str]:
    with pytest.raises(ValidationError) as refused:
        save_price_list(customer_id, data)
    return refused.value.errors


def test_a_list_is_refused_naming_the_field_and_nothing_is_written(db_session):
    good = {"function": "print", "colour": "bw", "paper_size": "any", "duplex": "any", "price_per_side": "0.02"}
    data = {
        "name": "Listino",
        "valid_from": "2026-01-01",
        "entries": [
            good,
            {**good, "paper_size": "A3", "price_per_side": "0.03"},
            {**good, "paper_size": "A4", "price_per_side": "-0.01"},
            {**good, "function": "staple"},
            {**good, "colour": "sepia"},
            {**good, "paper_size": "A0"},
            {**good, "duplex": "maybe"},
            {**good, "paper_size": "A3", "price_per_side": "0.031"},
            {**good, "paper_size": "letter", "price_per_side": "0.0200001"},
            {**good, "paper_size": "A5", "job_fee": "-1"},
        ],
    }

    errors = errors_of(data)

    assert set(errors) == {
        "entries.2.price_per_side",
        "entries.3.function",
        "entries.4.colour",
        "entries.5.paper_size",
        "entries.6.duplex",
        "entries.7",
        "entries.8.price_per_side",
        "entries.9.job_fee",
    }
    assert "2" in errors["entries.7"] and "8" in errors["entries.7"]  # the two entries pricing the same thing
    assert db_session.scalar(sa.select(sa.func.count(PriceList.id))) == 0


def test_a_list_without_the_any_any_entry_of_a_function_and_colour_it_prices_is_refused(db_session):
    entries = [
        {"function": "print", "colour": "bw", "paper_size": "any", "duplex": "any", "price_per_side": "0.02"},
        {"function": "print", "colour": "color", "paper_size": "A4", "duplex": "any", "price_per_side": "0.08"},
        {"function": "copy", "colour": "bw", "paper_size": "any", "duplex": "yes", "price_per_side": "0.015"},
    ]

    errors = errors_of({"name": "Senza base", "valid_from": "2026-01-01", "entries": entries})

    assert set(errors) == {"entries.1", "entries.2"}
    assert db_session.scalar(sa.select(sa.func.count(PriceEntry.id))) == 0


def test_two_lists_of_one_owner_cannot_start_on_the_same_day(db_session):
    s.prices(None, [("print", "bw", "any", "any", "0.02")], valid_from="2026-01-01")
    entries = [{"function": "print", "colour": "bw", "price_per_side": "0.03"}]

    assert set(errors_of({"name": "Bis", "valid_from": "2026-01-01", "entries": entries})) == {"valid_from"}
    studio = s.customer()
    assert save_price_list(studio.id, {"name": "Bianchi", "valid_from": "2026-01-01", "entries": entries}).id


def test_a_price_change_never_touches_stored_costs(db_session):
    studio = s.customer()
    machine = s.device("KY1", studio)
    dealer = s.prices(None, [("print", "bw", "any", "any", "0.02")], valid_from="2026-01-01")
    first, _created = record_transaction(s.job(machine, 1))
    assert first.cost == Decimal("0.2000")

    # The same list edited, and moved back in time: the stored cost stays, new jobs pay the new price.
    save_price_list(
        None,
        {
            "valid_from": "2025-06-01",
            "entries": [{"function": "print", "colour": "bw", "price_per_side": "0.05"}],
        },
        dealer,
    )
    db_session.commit()
    second, _created = record_transaction(s.job(machine, 2))

    db_session.expire_all()
    assert [tx.cost for tx in s.transactions()] == [Decimal("0.2000"), Decimal("0.5000")]
    assert second.price_list_id == first.price_list_id == dealer.id
