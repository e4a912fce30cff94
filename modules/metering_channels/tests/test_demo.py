"""The meter channels demo, loaded as `make run` loads it (`flask demo load`) on the channels app's modules: the
paused mailbox with its sealed password, last night's counter report emails read into the devices they name (one held
for review), the unknown serial in the unmatched queue with its reason, two SNMP devices with their last poll;
loading it again adds nothing."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db
from modules.metering.models import Reading
from modules.metering_channels import demo, emails
from modules.metering_channels.imap_poll import PURPOSE
from modules.metering_channels.models import CounterEmail, Mailbox, SnmpDevice, SnmpPoll
from modules.metering_channels.snmp import unseal_secret
from modules.rentals.models import Device
from tests.demo_snapshot import load_demo


def counts() -> dict[str, int]:
    return {
        model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
        for model in (Mailbox, CounterEmail, Reading, SnmpDevice, SnmpPoll)
    }


@pytest.fixture
def demo_app(app):
    assert "demo data loaded: metering_channels" in load_demo(app)
    with app.app_context():
        yield app


def test_the_mailbox_is_configured_paused_with_its_password_sealed(demo_app):
    from core.crypto import unseal

    mailbox = db.session.scalar(sa.select(Mailbox).where(Mailbox.name == demo.MAILBOX))
    assert mailbox.active is False and mailbox.host == "imap.copyservice.example"
    assert "demo-placeholder" not in mailbox.password_sealed
    assert unseal(mailbox.password_sealed, PURPOSE) == "demo-placeholder"
    assert clock.local_date(mailbox.last_polled_at) == clock.today() - dt.timedelta(days=1)
    assert (mailbox.processed_count, mailbox.unmatched_count) == (3, 1)


def test_the_emails_became_readings_of_the_devices_they_name(demo_app):
    found = {mail.serial: mail for mail in db.session.scalars(sa.select(CounterEmail))}
    assert set(found) == {serial for serial, *_rest in demo.EMAILS}
    yesterday = clock.today() - dt.timedelta(days=1)
    states = {}
    for serial, mail in found.items():
        if serial == demo.UNKNOWN_SERIAL:
            continue
        device = db.session.scalar(sa.select(Device).where(Device.serial == serial))
        reading = db.session.get(Reading, mail.reading_id)
        assert (mail.device_id, reading.device_id, reading.source) == (device.id, device.id, "email")
        assert clock.local_date(reading.taken_at) == yesterday
        # Later and higher than the demo's last readings: metering took them (the last one it holds).
        earlier = db.session.scalars(
            sa.select(Reading).where(Reading.device_id == device.id, Reading.id != reading.id)
        ).all()
        assert all(other.taken_at < reading.taken_at for other in earlier)
        states[serial] = (mail.state, reading.status)
    assert states == {
        "3100R400123": ("read", "accepted"),
        "A7PU021001234": ("pending_review", "pending_review"),
        "2XK0124001": ("read", "accepted"),
    }
    held = found["A7PU021001234"]
    assert "counter rose by" in held.reason
    ricoh = db.session.get(Reading, found["3100R400123"].reading_id)
    # Its CSV's "Scanner: Total Scans" column is not read yet (the profile splits the header at the colon).
    assert {"bw", "color"} <= set(ricoh.counters)


def test_the_unknown_serial_waits_in_the_unmatched_queue_with_its_reason(demo_app):
    queue = db.session.scalars(emails.queue_query()).all()
    assert [(mail.serial, mail.state) for mail in queue] == [(demo.UNKNOWN_SERIAL, "unmatched")]
    assert queue[0].reason == f"No device has serial number {demo.UNKNOWN_SERIAL}."
    assert queue[0].profile == "kyocera" and queue[0].counters


def test_two_snmp_devices_with_their_last_poll(demo_app):
    rows = db.session.scalars(sa.select(SnmpDevice).order_by(SnmpDevice.id)).all()
    assert [(row.device.serial, row.version, row.last_outcome) for row in rows] == [
        ("PHBLR01299", "2c", "read"),
        ("VCF1234567", "2c", "unreachable"),
    ]
    assert all("public" not in row.community_sealed and unseal_secret(row.community_sealed) == "public" for row in rows)
    polls = {poll.device.serial: poll for poll in db.session.scalars(sa.select(SnmpPoll))}
    read, unreachable = polls["PHBLR01299"], polls["VCF1234567"]
    reading = db.session.get(Reading, read.reading_id)
    assert (reading.source, reading.status, reading.counters) == ("snmp", "accepted", demo.SNMP_COUNTERS)
    assert read.message == "Read bw 48215."
    # Polled at the default schedule's 18:00 yesterday, dealer time.
    polled = clock.as_utc(read.at).astimezone(clock.timezone())
    assert (polled.date(), polled.hour) == (clock.today() - dt.timedelta(days=1), 18)
    assert unreachable.reading_id is None and unreachable.message == "No answer from 192.168.10.21:161."
    assert rows[1].last_error == unreachable.message and rows[1].last_ok_at is None


def test_loading_again_adds_nothing(demo_app):
    before = counts()
    assert before["CounterEmail"] == 4 and before["SnmpPoll"] == 2
    again = demo_app.test_cli_runner().invoke(args=["demo", "load"])
    assert again.exit_code == 0, again.output
    db.session.expire_all()
    assert counts() == before
