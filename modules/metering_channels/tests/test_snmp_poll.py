"""Polling configured devices against a real SNMP agent (snmpsim): answers become readings with source `snmp`
through metering's one validation; an unreachable device, a wrong community, another serial, a broken answer or a
counter going backwards is reported in the poll log and never stored as a reading."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db
from core.settings import set_setting
from modules.metering.models import Reading
from modules.metering.tests import support as s
from modules.metering_channels.jobs_snmp import due_ids, poll_due_devices
from modules.metering_channels.models import SnmpDevice, SnmpPoll
from modules.metering_channels.snmp import poll_devices, seal_secret
from tests.snmp_server import free_udp_port


def configure(agent, serial, community=None, *, meters=("bw", "color"), start=None, port=None, **fields):
    """A customer's device on contract since 2026-01-01 (counters `start`) polled at the agent with `community`."""
    customer = s.customer(f"Customer of {serial}")
    device = s.device(serial, meters)
    s.contract(customer.id, [(device, start or dict.fromkeys(meters, 1_000))])
    snmp_device = SnmpDevice(
        device_id=device.id,
        host=agent.host,
        port=port or agent.port,
        version=fields.pop("version", "2c"),
        community_sealed=seal_secret(community),
        active=True,
        **fields,
    )
    db.session.add(snmp_device)
    db.session.commit()
    return device


def readings(device) -> list[Reading]:
    return list(db.session.scalars(sa.select(Reading).where(Reading.device_id == device.id)))


def last_poll(device) -> SnmpPoll:
    return db.session.scalars(
        sa.select(SnmpPoll).where(SnmpPoll.device_id == device.id).order_by(SnmpPoll.id.desc())
    ).first()


def test_poll_stores_the_counters_as_an_snmp_reading(db_session, snmp_agent):
    device = configure(snmp_agent, "KYO2553001", "kyocera")
    poll_devices([device.id])
    db_session.commit()
    [reading] = readings(device)
    assert (reading.source, reading.status) == ("snmp", "accepted")
    assert reading.counters == {"bw": 15_200, "color": 4_000}
    assert reading.supply_levels == {"black": 40, "magenta": 100}
    poll = last_poll(device)
    assert (poll.outcome, poll.reading_id) == ("read", reading.id)
    snmp_device = db_session.scalar(sa.select(SnmpDevice).where(SnmpDevice.device_id == device.id))
    assert snmp_device.last_outcome == "read" and snmp_device.last_ok_at is not None and snmp_device.last_error is None


def test_many_devices_are_polled_at_once_each_into_its_own_meters(db_session, snmp_agent):
    kyocera = configure(snmp_agent, "KYO2553001", "kyocera")
    canon = configure(snmp_agent, "2SK05123", "canon")
    lexmark = configure(snmp_agent, "4602LEX621", "lexmark", meters=("bw",))  # mono: its color 0 is not a meter
    polls = poll_devices()
    db_session.commit()
    assert sorted(poll.outcome for poll in polls) == ["read", "read", "read"]
    assert readings(kyocera)[0].counters == {"bw": 15_200, "color": 4_000}
    assert readings(canon)[0].counters == {"bw": 21_000, "color": 6_500}
    assert readings(lexmark)[0].counters == {"bw": 27_000}
    assert readings(lexmark)[0].supply_levels == {"black": 85}


def test_snmpv3_device_is_read_with_its_sealed_keys(db_session, snmp_agent):
    device = configure(
        snmp_agent,
        "RIC3000123",
        version="3",
        v3_user=snmp_agent.v3_user,
        v3_auth_protocol="SHA",
        v3_auth_key_sealed=seal_secret(snmp_agent.v3_auth_key),
        v3_priv_protocol="AES",
        v3_priv_key_sealed=seal_secret(snmp_agent.v3_priv_key),
    )
    poll_devices([device.id])
    db_session.commit()
    assert readings(device)[0].counters == {"bw": 45_000, "color": 15_000}


@pytest.mark.parametrize(
    ("serial", "community", "dead_port", "outcome", "words"),
    [
        ("KYO2553001", "kyocera", True, "unreachable", "No answer from"),
        ("KYO2553001", "not-the-community", False, "auth_failed", "not to this community"),
        ("OTHER-SERIAL", "kyocera", False, "serial_mismatch", "serial KYO2553001, not OTHER-SERIAL"),
        ("KYOBROKEN1", "broken", False, "bad_answer", "negative counter"),
    ],
)
def test_failed_polls_are_reported_not_stored(db_session, snmp_agent, serial, community, dead_port, outcome, words):
    device = configure(snmp_agent, serial, community, port=free_udp_port() if dead_port else None)
    set_setting("metering_channels.snmp_timeout", 0.5)
    set_setting("metering_channels.snmp_retries", 0)
    db_session.commit()
    poll_devices([device.id])
    db_session.commit()
    assert readings(device) == []
    poll = last_poll(device)
    assert poll.outcome == outcome
    assert words in poll.message
    snmp_device = db_session.scalar(sa.select(SnmpDevice).where(SnmpDevice.device_id == device.id))
    assert snmp_device.last_outcome == outcome and snmp_device.last_error == poll.message


def test_counter_lower_than_on_file_is_refused_as_from_the_portal(db_session, snmp_agent):
    device = configure(snmp_agent, "KYO2553001", "kyocera", start={"bw": 90_000, "color": 2_000})
    poll_devices([device.id])
    db_session.commit()
    assert readings(device) == []
    poll = last_poll(device)
    assert poll.outcome == "refused"
    assert "Black and white counter 15,200 is lower than the last one, 90,000" in poll.message


def test_cli_poll_polls_every_device_and_says_how_it_went(app, snmp_agent):
    with app.app_context():
        device_id = configure(snmp_agent, "XRX8130456", "xerox").id
    result = app.test_cli_runner().invoke(args=["metering", "snmp", "poll"])
    assert result.exit_code == 0, result.output
    assert "XRX8130456: read - Read Black and white 40,000, Colour 12,000." in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(Reading.device_id == device_id)) == 1


def test_agent_devices_are_left_to_the_agent(db_session, snmp_agent):
    customer = s.customer("Agent customer")
    device = configure(snmp_agent, "SH3071789", "sharp", agent_customer_id=customer.id)
    assert poll_devices() == []
    assert readings(device) == []


def local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=clock.timezone())


def test_job_polls_each_device_once_per_polling_hour_even_when_late(db_session, snmp_agent):
    device = configure(snmp_agent, "KYO2553001", "kyocera")
    snmp_device = db_session.scalar(sa.select(SnmpDevice).where(SnmpDevice.device_id == device.id))
    assert due_ids(local(2, 6, 40), [6, 18]) == [device.id]  # never polled; a run 40 minutes late still polls
    snmp_device.last_polled_at = local(2, 6, 41)
    db_session.commit()
    assert due_ids(local(2, 6, 45), [6, 18]) == []  # the same slot again: not twice
    assert due_ids(local(2, 17, 59), [6, 18]) == []
    assert due_ids(local(2, 18, 2), [6, 18]) == [device.id]
    assert due_ids(local(3, 5, 0), [6, 18]) == [device.id]  # yesterday's 18:00 slot was missed
    assert due_ids(local(2, 18, 2), []) == []


def test_one_device_with_unreadable_credentials_does_not_stop_the_job(db_session, snmp_agent):
    broken = configure(snmp_agent, "KYO2553001", "kyocera")
    fine = configure(snmp_agent, "2SK05123", "canon")
    snmp_device = db_session.scalar(sa.select(SnmpDevice).where(SnmpDevice.device_id == broken.id))
    snmp_device.community_sealed = "gAAAA-sealed-with-a-key-no-longer-there"
    set_setting("metering_channels.snmp_hours", list(range(24)))
    db_session.commit()
    poll_due_devices()
    db_session.expire_all()
    assert readings(broken) == []
    assert last_poll(broken).outcome == "auth_failed"
    assert "cannot be read any more" in last_poll(broken).message
    assert readings(fine)[0].counters == {"bw": 21_000, "color": 6_500}


def test_a_page_count_is_bw_on_a_black_only_model_only(db_session, snmp_agent):
    mono = configure(snmp_agent, "GEN4000555", "generic_mono", meters=("bw",))
    colour = configure(snmp_agent, "GENC5000777", "colour_unnamed")  # a colour MFP naming none of its toners
    poll_devices()
    db_session.commit()
    assert readings(mono)[0].counters == {"bw": 8_100}
    assert readings(colour) == []
    assert last_poll(colour).outcome == "bad_answer"


def test_kyocera_without_fax_is_read(db_session, snmp_agent):
    device = configure(snmp_agent, "KYONOFAX01", "kyocera_nofax")
    poll_devices([device.id])
    db_session.commit()
    assert readings(device)[0].counters == {"bw": 15_000, "color": 4_000}


def test_a_device_over_its_deadline_is_reported_unreachable(db_session, snmp_agent):
    device = configure(snmp_agent, "KYO2553001", "kyocera")
    set_setting("metering_channels.snmp_deadline", 0.001)
    db_session.commit()
    poll_devices([device.id])
    db_session.commit()
    assert readings(device) == []
    assert last_poll(device).outcome == "unreachable"


def test_poll_messages_name_meters_and_colours_in_the_dealers_language(app, db_session, snmp_agent):
    device = configure(snmp_agent, "KYO2553001", "kyocera")
    with app.test_request_context("/?lang=it"):
        poll_devices([device.id])
        db_session.commit()
        message = last_poll(device).message
    assert "15.200" in message and "4.000" in message
    assert "Ciano" in message and "Giallo" in message
    assert "bw" not in message and "cyan" not in message
