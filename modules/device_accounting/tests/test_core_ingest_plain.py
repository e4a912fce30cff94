"""A batch's quick way through the checks gives what check_job gives, and prices kept between batches follow a
change: at once when saved in this process, within 10 s when written elsewhere."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db, utcnow
from core.validation import Checker, ValidationError
from modules.device_accounting import operations, pricing
from modules.device_accounting.ingest import _Finder, record_batch
from modules.device_accounting.models import PriceEntry
from modules.device_accounting.pricing import save_price_list
from modules.device_accounting.tests import core_support as s


def _variants(machine, anna, bruno, centers) -> list[dict]:
    """Plain jobs and jobs a little off the plain form, each of which check_job accepts or refuses."""
    base = s.job(machine, 1, anna)
    changes = [
        {},
        {"user_id": None},
        {"sides_color": 3, "duplex": True, "paper_size": "A3", "function": "copy"},
        {"function": "scan", "sides_bw": 4, "sheets": 9, "status": "failed"},
        {"document_name": "  Offerta\x00.pdf "},
        {"document_name": ""},
        {"document_name": 7},
        {"cost_center_id": centers[0].id},
        {"cost_center_id": centers[1].id},  # anna may not charge it
        {"cost_center_id": str(centers[0].id)},
        {"cost_center_id": 999_999},
        {"user_id": bruno.id, "cost_center_id": centers[0].id},
        {"user_id": 999_999},
        {"user_id": "12"},
        {"user_id": True},
        {"function": "Print"},
        {"function": " print "},
        {"function": None},
        {"function": ["print"]},
        {"paper_size": "a4"},
        {"paper_size": ""},
        {"paper_size": None},
        {"status": None},
        {"status": "DONE"},
        {"sides_bw": "10"},
        {"sides_bw": -1},
        {"sides_bw": 10.0},
        {"sides_bw": None},
        {"sides_bw": operations.MAX_SIDES + 1},
        {"sides_color": True},
        {"sheets": None},
        {"sheets": "3"},
        {"duplex": 1},
        {"duplex": None},
        {"started_at": "2026-03-02T12:02:00+01:00"},  # after its end
        {"started_at": "2026-03-02T12:00:00", "ended_at": "2026-03-02T12:01:00"},  # the dealer's local time
        {"started_at": "2026-03-02T11:00:00Z", "ended_at": " 2026-03-02T11:01:00.123456Z "},
        {"ended_at": "2026-03-02T23:30:00-02:00"},  # the next day in Rome
        {"ended_at": "1989-12-31T23:00:00+00:00"},
        {"ended_at": "2026-13-02T12:00:00+01:00"},
        {"ended_at": ""},
        {"ended_at": dt.datetime(2026, 3, 2, 12, 1, tzinfo=dt.UTC)},
        {"ended_at": "2024-03-02T12:01:00+01:00", "started_at": "2024-03-02T12:00:00+01:00"},  # before installed
    ]
    return [{**base, **change} for change in changes]


def test_the_quick_way_gives_what_check_job_gives_or_leaves_the_job_to_it(db_session):
    studio = s.customer()
    machine = s.device("KY1", studio, since="2025-01-01")
    centers = [s.cost_center(studio, "Amministrazione"), s.cost_center(studio, "Archivio")]
    anna = s.print_user(studio, "anna", default_cost_center_id=centers[0].id)
    bruno = s.print_user(studio, "bruno", cost_center_ids=[centers[0].id])
    s.prices(studio.id, [("print", "bw", "any", "any", "0.012"), ("print", "color", "any", "any", "0.08", "0.05")])
    s.prices(
        None,
        [
            ("copy", "bw", "any", "any", "0.02"),
            ("copy", "color", "A3", "any", "0.2"),
            ("copy", "color", "any", "any", "0.1"),
        ],
    )
    now = utcnow()
    finder = _Finder(machine.id, operations.clock.timezone())
    quick = 0
    for data in _variants(machine, anna, bruno, centers):
        try:
            expected = operations.check_job(Checker(), {**data, "device_id": machine.id}, now)
        except ValidationError:
            expected = None
        got = operations.plain_job(data, machine.id, data["device_seq"], now, finder)
        if got is None:
            continue
        quick += 1
        assert expected is not None, data
        assert (got.values, got.user, got.cost_center, got.day) == (
            expected.values,
            expected.user,
            expected.cost_center,
            expected.day,
        ), data
    assert quick >= 8  # the plain jobs took the quick way


@pytest.fixture
def office(db_session):
    studio = s.customer()
    machine = s.device("KY1", studio)
    s.prices(studio.id, [("print", "bw", "any", "any", "0.01")], name="Bianchi")
    db.session.commit()
    return machine


def _cost(machine, seq: int) -> Decimal:
    (result,) = record_batch(machine.id, [s.job(machine, seq, None, sides_bw=10)])
    db.session.commit()
    return result.cost


def test_a_price_list_saved_here_prices_the_next_batch(office):
    assert _cost(office, 1) == Decimal("0.1000")
    price_list = db.session.scalars(sa.select(pricing.PriceList)).one()
    save_price_list(
        price_list.customer_id,
        {"entries": [{"function": "print", "colour": "bw", "price_per_side": "0.02"}]},
        price_list,
    )
    db.session.commit()
    assert _cost(office, 2) == Decimal("0.2000")


def test_a_price_written_elsewhere_prices_batches_within_ten_seconds(office, monkeypatch):
    assert _cost(office, 1) == Decimal("0.1000")
    # Another process: plain SQL the cache cannot see.
    with db.engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {PriceEntry.__tablename__} SET price_per_side = 0.03"))
    assert _cost(office, 2) == Decimal("0.1000")
    later = time.monotonic() + pricing.BOOK_SECONDS
    monkeypatch.setattr(pricing, "_clock", lambda: later)
    assert _cost(office, 3) == Decimal("0.3000")
