"""Jobs arriving at the same moment, from real threads with their own sessions: stored once, charged once, no lost
update of the balance (PostgreSQL row locks)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from modules.device_accounting.models import Balance, LedgerEntry, Transaction
from modules.device_accounting.operations import record_transaction
from modules.device_accounting.tests import core_support as s

ROUNDS = 5

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def office(app):
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL's row locks")
    with app.app_context():
        studio = s.customer()
        machine = s.device("KY1", studio)
        user = s.print_user(studio, "mrossi")
        s.simple_prices(bw="0.01")
        quota = s.quota(user, "100.00")
        db.session.commit()
        return machine.id, user.id, quota.id


def send_together(app, jobs: list[dict]) -> list[str]:
    """Record each job in its own thread and session, all released at once; what each got."""
    barrier = threading.Barrier(len(jobs))
    outcomes = [""] * len(jobs)

    def send(index: int, data: dict) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                _tx, created = record_transaction(data)
                db.session.commit()
                outcomes[index] = "created" if created else "stored"
            except Exception as error:  # reported by the assertion, not lost in the thread
                db.session.rollback()
                outcomes[index] = f"error: {error!r}"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=send, args=(i, data)) for i, data in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def job(machine_id: int, user_id: int, seq: int, sides: int) -> dict:
    return {
        "device_id": machine_id,
        "device_seq": seq,
        "user_id": user_id,
        "function": "print",
        "sides_bw": sides,
        "started_at": "2026-03-02T12:00:00+01:00",
        "ended_at": "2026-03-02T12:01:00+01:00",
    }


def test_the_same_job_sent_twice_at_once_is_stored_and_charged_once(app, office):
    machine_id, user_id, quota_id = office
    for round_ in range(ROUNDS):
        outcomes = send_together(app, [job(machine_id, user_id, round_, 100)] * 3)
        assert sorted(outcomes) == ["created", "stored", "stored"], outcomes
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Transaction.id))) == ROUNDS
        charges = db.session.scalar(sa.select(sa.func.count(LedgerEntry.id)).where(LedgerEntry.kind == "charge"))
        assert charges == ROUNDS
        balance = db.session.scalar(sa.select(Balance.balance).where(Balance.quota_id == quota_id))
        assert balance == Decimal("100") - ROUNDS * Decimal("1.00")


def test_different_jobs_of_one_user_at_once_lose_no_charge(app, office):
    machine_id, user_id, quota_id = office
    outcomes = send_together(app, [job(machine_id, user_id, 1000 + n, 10 * (n + 1)) for n in range(6)])
    assert outcomes == ["created"] * 6, outcomes
    with app.app_context():
        balance = db.session.scalar(sa.select(Balance.balance).where(Balance.quota_id == quota_id))
        assert balance == Decimal("100") - Decimal("0.01") * sum(10 * (n + 1) for n in range(6))
