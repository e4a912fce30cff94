"""The collector end to end: the real server on a free port, driven over TLS by the simulator as a device would."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from modules.device_accounting.models import Transaction
from modules.device_collector import enrolment, pki, simulator
from modules.device_collector.models import CollectorDevice, EnrolmentCode, RefusedTransaction
from modules.device_collector.simulator import DeviceClient, DeviceError, SimulatedDevice
from modules.device_collector.tests.collector_support import in_own_thread, run_async, running_collector
from modules.metering.models import Reading
from modules.rentals.models import Device


def _prepare(app, devices: int = 1, users: int = 2):
    with app.app_context():
        return simulator.prepare(devices, users)


def _enrolled(app, collector, devices: int = 1, users: int = 2, **options):
    """Enrolled simulated devices (over the wire, with their one-time codes) and the print users."""
    codes, people, ca_pem = _prepare(app, devices, users)
    assert ca_pem == collector.ca_pem
    machines = []
    for serial, code in codes:
        cert_pem, key_pem = run_async(simulator.enrol(collector.host, collector.port, ca_pem, code, serial))
        machines.append(SimulatedDevice(serial, collector.host, collector.port, ca_pem, cert_pem, key_pem, **options))
    return machines, people


def _stored(app, serial: str) -> list[tuple[int, int]]:
    """(device_seq, transaction id) of every transaction stored for the device, in order."""
    with app.app_context():
        rows = db.session.execute(
            sa.select(Transaction.device_seq, Transaction.id)
            .join(Device, Device.id == Transaction.device_id)
            .where(Device.serial == serial)
            .order_by(Transaction.device_seq)
        ).all()
        db.session.remove()
        return [tuple(row) for row in rows]


def _job(device: SimulatedDevice, user_id: int, sides: int = 10, **fields) -> dict:
    return device.finish_job("print", sides, 0, user_id=user_id, **fields)


def test_a_device_enrols_logs_in_by_card_and_pin_authorizes_prints_and_sends_counters(app):
    with running_collector(app) as collector:
        (device,), (anna, _bruno) = _enrolled(app, collector, language="it")

        async def session():
            settings = await device.hello()
            assert settings["device"] == {
                "serial": "SIM-0001",
                "model": "Kyocera TASKalfa 2554ci",
                "customer": "Simulated customer",
            }
            assert set(settings["login_methods"]) == {"card", "pin", "password"}
            assert {meter["code"] for meter in settings["meters"]} == {"bw", "color"}
            assert settings["limits"]["max_batch"] >= 500

            by_card = await device.login_card(anna.card)
            assert by_card["identified"] is True
            assert by_card["user"]["id"] == anna.id
            assert Decimal(by_card["balance"]) == Decimal("500")
            by_pin = await device.login_pin(anna.pin)
            assert by_pin["identified"] is True and by_pin["user"]["id"] == anna.id
            wrong = await device.login_pin("0000")
            assert wrong["identified"] is False and wrong["reason"] == "wrong_pin"
            unknown = await device.login_card("NOSUCHCARD")
            assert unknown["identified"] is False

            allowed = await device.authorize(anna.id, "print", 10, 2)
            assert allowed["allowed"] is True
            assert Decimal(allowed["cost"]) == Decimal("0.20")  # 10 x 0.01 + 2 x 0.05
            too_much = await device.authorize(anna.id, "print", 0, 20_000)
            assert too_much["allowed"] is False and too_much["reason"] == "quota_exceeded"
            assert 0 < too_much["allowed_sides"] < 20_000

            device.finish_job("print", 10, 2, user_id=anna.id, document_name="Bilancio.pdf")
            device.finish_job("scan", 4, 0, user_id=anna.id)
            flushed = await device.flush()
            assert (flushed.stored, flushed.duplicates, flushed.refused, flushed.pending) == (2, 0, 0, 0)
            assert [device.acknowledged[seq]["status"] for seq in (1, 2)] == ["stored", "stored"]
            assert Decimal(device.acknowledged[1]["cost"]) == Decimal("0.20")
            after = await device.login_card(anna.card)
            assert Decimal(after["balance"]) == Decimal("499.80")

            reading = await device.send_counters({"bw": 12_010, "color": 3_002})
            assert reading["reading_id"]
            beat = await device.heartbeat()
            assert beat["server_time"]
            await device.close()
            return reading["reading_id"]

        reading_id = run_async(session())

    stored = _stored(app, "SIM-0001")
    assert [seq for seq, _id in stored] == [1, 2]
    with app.app_context():
        first = db.session.get(Transaction, stored[0][1])
        assert (first.user_id, first.function, first.sides_bw, first.sides_color) == (anna.id, "print", 10, 2)
        assert first.cost == Decimal("0.20")
        reading = db.session.get(Reading, reading_id)
        assert reading.source == "device"
        assert reading.device.serial == "SIM-0001"
        assert reading.counters == {"bw": 12_010, "color": 3_002}
        collector_device = db.session.scalars(sa.select(CollectorDevice)).one()
        assert collector_device.firmware == simulator.FIRMWARE
        assert collector_device.last_seen_at is not None


def test_the_simulation_plays_sessions_and_every_job_is_stored_once(app):
    with running_collector(app) as collector:
        report = in_own_thread(
            simulator.run_simulation,
            collector.host,
            collector.port,
            devices=3,
            users=6,
            jobs=90,
            offline_every=12,
            seed=7,
            app=app,
        )
    assert report.errors == []
    assert report.pending == 0
    assert report.offline_periods > 0
    assert report.jobs > 0 and report.acknowledged == report.jobs
    assert report.stored == report.jobs and report.duplicates == 0
    assert report.login_failures > 0 or report.sessions > 0
    with app.app_context():
        count = db.session.scalar(sa.select(sa.func.count()).select_from(Transaction))
        distinct = db.session.scalar(
            sa.select(sa.func.count()).select_from(
                sa.select(Transaction.device_id, Transaction.device_seq).distinct().subquery()
            )
        )
        readings = db.session.scalar(sa.select(sa.func.count()).where(Reading.source == "device"))
    assert count == distinct == report.stored
    assert readings == report.readings
    assert any("tx/s" in line for line in report.as_lines())


def test_a_revoked_device_is_refused_at_once_and_on_its_next_connection(app):
    with running_collector(app) as collector:
        (device,), (anna, _bruno) = _enrolled(app, collector)

        async def before():
            await device.hello()
            assert (await device.login_card(anna.card))["identified"] is True

        async def after():
            with pytest.raises(DeviceError) as refused:
                await device.login_card(anna.card)
            assert refused.value.code == "revoked"
            assert device.client is None or not device.client.connected
            with pytest.raises(DeviceError) as again:
                await device.hello()
            assert again.value.code == "revoked"

        async def connected_session():
            await before()
            # Staff revoke the device (stolen) while it is connected.
            await asyncio.to_thread(_revoke, app, "SIM-0001")
            await after()

        run_async(connected_session())


def _revoke(app, serial: str) -> None:
    with app.app_context():
        collector_device = db.session.scalars(
            sa.select(CollectorDevice)
            .join(Device, Device.id == CollectorDevice.device_id)
            .where(Device.serial == serial)
        ).one()
        enrolment.revoke(collector_device, "stolen", None)
        db.session.commit()
        db.session.remove()


def test_a_resent_or_replayed_batch_is_stored_once_and_acknowledged_again(app):
    with running_collector(app) as collector:
        (device,), (anna, bruno) = _enrolled(app, collector)

        async def session():
            for user in (anna, bruno, anna):
                _job(device, user.id)
            batch = [dict(item) for item in device.buffer]
            first = await device.flush()
            assert first.stored == 3
            ids = {seq: device.acknowledged[seq]["transaction_id"] for seq in (1, 2, 3)}

            # The device lost the acks and sends the same jobs again, plus a new one.
            device.buffer = [*batch, _job(device, bruno.id)]
            again = await device.flush()
            assert (again.stored, again.duplicates, again.pending) == (1, 3, 0)
            assert {seq: device.acknowledged[seq]["transaction_id"] for seq in (1, 2, 3)} == ids
            assert [device.acknowledged[seq]["status"] for seq in (1, 2, 3, 4)] == ["duplicate"] * 3 + ["stored"]

            # A frame replayed byte for byte on another connection, and a job twice in one frame.
            client = DeviceClient()
            await client.connect(collector.host, collector.port, collector.ca_pem, device.cert_pem, device.key_pem)
            await client.request(
                "HELLO",
                {"protocol_version": 1, "serial": device.serial, "firmware": "replay", "capabilities": []},
            )
            replayed = await client.request("TXN", {"transactions": [batch[0], batch[0], batch[1]]})
            assert [item["status"] for item in replayed["results"]] == ["duplicate"] * 3
            assert (replayed["stored"], replayed["duplicates"]) == (0, 3)
            await client.close()
            await device.close()

        run_async(session())
    assert [seq for seq, _id in _stored(app, "SIM-0001")] == [1, 2, 3, 4]


def test_a_client_killed_between_send_and_ack_resends_and_the_job_is_stored_once(app):
    with running_collector(app) as collector:
        (device,), (anna, _bruno) = _enrolled(app, collector)
        for _n in range(3):
            _job(device, anna.id)

        async def killed():
            client = DeviceClient()
            await client.connect(collector.host, collector.port, collector.ca_pem, device.cert_pem, device.key_pem)
            await client.request(
                "HELLO", {"protocol_version": 1, "serial": device.serial, "firmware": "sim", "capabilities": []}
            )
            await client.send("TXN", {"transactions": device.buffer})
            client.abort()  # gone before the ack: power cut, crash

        run_async(killed())
        # The collector read the frame whole: it stores it (and cannot deliver the ack).
        deadline = time.monotonic() + 10
        while len(_stored(app, "SIM-0001")) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        stored = _stored(app, "SIM-0001")
        assert [seq for seq, _id in stored] == [1, 2, 3]

        async def resend():
            result = await device.flush()
            await device.close()
            return result

        result = run_async(resend())
        assert (result.stored, result.duplicates, result.pending) == (0, 3, 0)
        assert [device.acknowledged[seq]["transaction_id"] for seq in (1, 2, 3)] == [id_ for _seq, id_ in stored]
    assert _stored(app, "SIM-0001") == stored


def test_a_refused_job_is_acknowledged_and_kept_for_staff_nothing_is_lost(app):
    with running_collector(app) as collector:
        (device,), (anna, _bruno) = _enrolled(app, collector)
        _job(device, anna.id)
        _job(device, 999_999)  # a user the customer does not have
        _job(device, anna.id, sides=5)

        async def session():
            result = await device.flush()
            await device.close()
            return result

        result = run_async(session())
    assert (result.stored, result.refused, result.pending) == (2, 1, 0)
    assert device.acknowledged[2]["status"] == "refused"
    assert "user_id" in device.acknowledged[2]["errors"]
    assert [seq for seq, _id in _stored(app, "SIM-0001")] == [1, 3]
    with app.app_context():
        kept = db.session.scalars(sa.select(RefusedTransaction)).one()
        assert kept.device_seq == 2
        assert "user_id" in kept.errors


def test_a_device_enrols_by_the_fingerprint_staff_read_out_and_a_wrong_one_sends_nothing(app):
    with running_collector(app) as collector:
        ((serial, code),), _people, _ca_pem = _prepare(app)
        with app.app_context():
            shown = pki.display_fingerprint(pki.ensure_ca().fingerprint)  # as the enrolment page shows it
        wrong = shown[:-2] + ("00" if not shown.endswith("00") else "11")
        with pytest.raises(simulator.WrongFingerprint):
            run_async(simulator.enrol_by_fingerprint(collector.host, collector.port, wrong, code, serial))
        with app.app_context():
            assert db.session.scalars(sa.select(EnrolmentCode.used_at)).all() == [None]  # the code was not sent

        typed = shown.lower().replace(":", " ")  # as a technician may type it
        ca_pem, cert_pem, key_pem = run_async(
            simulator.enrol_by_fingerprint(collector.host, collector.port, typed, code, serial)
        )
        assert ca_pem == collector.ca_pem
        device = SimulatedDevice(serial, collector.host, collector.port, ca_pem, cert_pem, key_pem)

        async def session():
            settings = await device.hello()
            await device.close()
            return settings

        assert run_async(session())["device"]["serial"] == serial
