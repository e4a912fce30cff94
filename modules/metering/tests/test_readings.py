"""Storing readings: once per device, time and counters; review decisions audited; signals; estimated readings."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core.models import AuditLog
from core.signals import reading_accepted
from core.validation import ValidationError
from modules.metering.estimates import create_due_estimates
from modules.metering.models import Reading
from modules.metering.readings import approve_reading, record_reading, reject_reading
from modules.metering.tests import support as s

NOW = s.at("2026-12-31")


@pytest.fixture
def device(db_session):
    customer = s.customer()
    device = s.device("KY1")
    s.contract(customer.id, [(device, {"bw": 10_000, "color": 2_000})])
    db_session.commit()
    return device


def count_readings(db_session) -> int:
    return db_session.scalar(sa.select(sa.func.count()).select_from(Reading))


def test_same_reading_submitted_twice_is_stored_once(device, db_session):
    first = record_reading(device.id, s.at("2026-02-02"), {"bw": 11_850, "color": 2_310}, now=NOW)
    again = record_reading(device.id, "2026-02-02T12:00:00+00:00", {"color": "2310", "bw": "11850"}, now=NOW)
    db_session.commit()
    assert first.created and not again.created
    assert again.reading.id == first.reading.id
    assert count_readings(db_session) == 1


def test_reading_keeps_counters_toner_levels_source_and_who_entered_it(device, db_session):
    from tests.auth_support import make_user

    user = make_user("tech@example.com", role="technician")
    reading = record_reading(
        device.id, s.at("2026-02-02"), {"bw": 11_850}, {"black": 40, "cyan": 5}, "portal", entered_by=user.id, now=NOW
    ).reading
    db_session.commit()
    stored = db_session.get(Reading, reading.id)
    assert stored.counters == {"bw": 11_850}
    assert stored.supply_levels == {"black": 40, "cyan": 5}
    assert (stored.source, stored.entered_by, stored.status) == ("portal", user.id, "accepted")


def test_naive_time_is_the_dealers_local_time(device, db_session):
    reading = record_reading(device.id, "2026-02-02 09:30", {"bw": 11_000}, now=NOW).reading
    # Rome is UTC+1 in winter.
    assert reading.taken_at.replace(tzinfo=dt.UTC) == s.at("2026-02-02", dt.time(8, 30))


def test_accepted_reading_is_announced_after_commit_only(device, db_session, app):
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    with reading_accepted.connected_to(receiver, sender=app):
        reading = record_reading(device.id, s.at("2026-02-02"), {"bw": 11_000}, now=NOW).reading
        assert received == []
        db_session.commit()
        record_reading(device.id, s.at("2026-02-03"), {"bw": 11_100}, now=NOW)
        db_session.rollback()
    assert received == [{"reading_id": reading.id, "device_id": device.id}]


def _held(device, db_session) -> Reading:
    s.read(device, "2026-03-02", bw=16_000, color=2_000)
    reading = record_reading(device.id, s.at("2026-04-01"), {"bw": 46_000}, now=NOW).reading
    db_session.commit()
    assert reading.status == "pending_review"
    return reading


def test_staff_accepting_a_held_reading_is_audited_and_announced(device, db_session, app):
    reading = _held(device, db_session)
    received = []
    with reading_accepted.connected_to(lambda sender, **kw: received.append(kw["reading_id"]), sender=app):
        approve_reading(reading, None)
        db_session.commit()
    assert reading.status == "accepted"
    assert received == [reading.id]
    actions = db_session.scalars(sa.select(AuditLog.action).where(AuditLog.object_id == str(reading.id))).all()
    assert "reading.approved" in actions


def test_accepting_a_held_reading_reads_its_stored_time_as_utc(device, db_session):
    """SQLite hands the stored time back without a zone: it is UTC, not the dealer's time two hours off (which here
    is the time of another reading, with other counters)."""
    s.read(device, "2026-03-02", bw=16_000, color=2_000)
    # 06:00 and 08:00 UTC: 08:00 and 10:00 in Rome (summer time)
    record_reading(device.id, s.at("2026-04-01", dt.time(6, 0)), {"bw": 16_100, "color": 2_000}, now=NOW)
    reading = record_reading(device.id, s.at("2026-04-01", dt.time(8, 0)), {"bw": 46_000}, now=NOW).reading
    db_session.commit()
    assert reading.status == "pending_review"
    approve_reading(db_session.get(Reading, reading.id), None)
    db_session.commit()
    assert reading.status == "accepted"


def test_staff_rejecting_a_held_reading_needs_a_reason_and_is_audited(device, db_session):
    reading = _held(device, db_session)
    with pytest.raises(ValidationError) as caught:
        reject_reading(reading, None, " ")
    assert "reason" in caught.value.errors
    reject_reading(reading, None, "Typed one digit too many")
    db_session.commit()
    assert (reading.status, reading.reason) == ("rejected", "Typed one digit too many")
    audit = db_session.scalars(sa.select(AuditLog).where(AuditLog.action == "reading.rejected")).one()
    assert audit.object_id == str(reading.id)


def test_a_rejected_reading_no_longer_counts_as_the_last_value(device, db_session):
    reading = _held(device, db_session)
    reject_reading(reading, None, "wrong")
    db_session.commit()
    assert record_reading(device.id, s.at("2026-04-02"), {"bw": 19_000}, now=NOW).reading.status == "accepted"


def test_only_held_readings_can_be_decided(device, db_session):
    reading = s.read(device, "2026-02-02", bw=11_000)
    with pytest.raises(ValidationError):
        approve_reading(reading, None)


def test_missing_month_is_estimated_after_grace_when_the_contract_says_so(db_session):
    """Worked example D with the real models: 100 pages a day over 90 days, May missing, estimate 23,100 on 31 May."""
    customer = s.customer()
    device = s.device("EST1", meters=("bw",))
    s.contract(
        customer.id,
        [(device, {"bw": 10_000})],
        estimate_missing=True,
        allowances=[{"meter": "bw", "included": 0, "bands": [{"up_to": None, "price": "0.01"}]}],
    )
    s.read(device, "2026-01-30", bw=11_000)
    s.read(device, "2026-04-30", bw=20_000)
    db_session.commit()
    assert create_due_estimates(dt.date(2026, 6, 10)) == []  # May's grace runs to 10 June
    created = create_due_estimates(dt.date(2026, 6, 11))
    db_session.commit()
    assert [(r.status, r.source, r.counters) for r in created] == [("estimated", "estimate", {"bw": 23_100})]
    assert s.local_day(created[0]) == dt.date(2026, 5, 31)
    assert create_due_estimates(dt.date(2026, 6, 11)) == []


def test_no_estimate_when_the_contract_does_not_allow_it(db_session):
    customer = s.customer()
    device = s.device("EST2", meters=("bw",))
    s.contract(customer.id, [(device, {"bw": 10_000})])
    s.read(device, "2026-01-30", bw=11_000)
    s.read(device, "2026-04-30", bw=20_000)
    assert create_due_estimates(dt.date(2026, 7, 1)) == []
