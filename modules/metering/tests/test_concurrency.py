"""Readings of one device sent at the same moment, from real threads with their own sessions: counters never go back."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from core.clock import as_utc
from core.db import db
from core.settings import set_setting
from core.validation import ValidationError
from modules.metering.models import Reading
from modules.metering.readings import record_reading
from modules.metering.tests import support as s

ROUNDS = 10


@pytest.fixture
def device_id(app):
    with app.app_context():
        customer = s.customer()
        device = s.device("KY1", meters=("bw",))
        s.contract(customer.id, [(device, {"bw": 10_000})])
        # No reading is held for review as an unusual jump here: each one is accepted or refused.
        set_setting("metering.jump_min_pages", 10**9)
        db.session.commit()
        return device.id


def send_together(app, device_id: int, readings: list[tuple]) -> list[str]:
    """Record each (taken_at, counters) in its own thread and session, all released at once; what each got."""
    barrier = threading.Barrier(len(readings))
    outcomes: list[str] = [""] * len(readings)

    def send(index: int, taken_at, counters) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                recorded = record_reading(device_id, taken_at, counters, source="api", now=s.at("2030-01-01"))
                db.session.commit()
                outcomes[index] = recorded.reading.status
            except ValidationError as error:
                db.session.rollback()
                outcomes[index] = "refused: " + "; ".join(error.errors)
            except Exception as error:  # reported by the assertion, not lost in the thread
                db.session.rollback()
                outcomes[index] = f"error: {error!r}"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=send, args=(i, *reading)) for i, reading in enumerate(readings)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def stored(app, device_id: int) -> list[tuple]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(Reading).where(Reading.device_id == device_id, Reading.status == "accepted")
        ).all()
        return sorted((as_utc(r.taken_at), r.counters["bw"]) for r in rows)


def never_backwards(sequence: list[tuple]) -> bool:
    values = [value for _at, value in sequence]
    return values == sorted(values)


def test_earlier_higher_and_later_lower_readings_sent_together_cannot_both_stand(app, device_id):
    for round_ in range(ROUNDS):
        day = 1 + 2 * round_
        earlier = (s.at(f"2026-02-{day:02d}"), {"bw": 20_000 + 1_000 * round_ + 900})
        later = (s.at(f"2026-02-{day + 1:02d}"), {"bw": 20_000 + 1_000 * round_ + 100})
        outcomes = send_together(app, device_id, [earlier, later])
        assert not any(outcome.startswith("error") for outcome in outcomes), outcomes
        assert outcomes.count("accepted") == 1, f"round {round_}: {outcomes}"
        assert never_backwards(stored(app, device_id)), f"round {round_}: {stored(app, device_id)}"


def test_two_readings_at_the_same_instant_with_different_counters_cannot_both_stand(app, device_id):
    for round_ in range(ROUNDS):
        at = s.at(f"2026-03-{1 + round_:02d}")
        outcomes = send_together(
            app, device_id, [(at, {"bw": 30_000 + 1_000 * round_}), (at, {"bw": 30_500 + 1_000 * round_})]
        )
        assert not any(outcome.startswith("error") for outcome in outcomes), outcomes
        assert outcomes.count("accepted") == 1, f"round {round_}: {outcomes}"
    instants = [at for at, _value in stored(app, device_id)]
    assert len(instants) == len(set(instants)) == ROUNDS


def test_a_second_reading_at_the_same_instant_with_other_counters_is_refused(db_session):
    customer = s.customer()
    device = s.device("KY1", meters=("bw",))
    s.contract(customer.id, [(device, {"bw": 10_000})])
    s.read(device, "2026-02-02", bw=11_000)
    db_session.commit()
    with pytest.raises(ValidationError) as refused:
        s.read(device, "2026-02-02", bw=11_500)
    assert list(refused.value.errors) == ["counters.bw"] and "11000" in refused.value.errors["counters.bw"]
