"""Offline: a device keeps its jobs while the collector or the database is away and sends them when back; nothing
acknowledged is lost, nothing is counted twice, and the collector recovers by itself."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
import sqlalchemy as sa

from conftest import make_app, migrate
from core.db import db
from modules.device_accounting.models import Transaction
from modules.device_collector import simulator
from modules.device_collector.models import CollectorDevice
from modules.device_collector.simulator import BufferFull, DeviceError, SimulatedDevice
from modules.device_collector.tests.collector_support import collector_process, run_async, running_collector
from modules.rentals.models import Device
from tests.pg_server import postgres_server  # noqa: F401  (fixture)
from tests.smtp_server import free_port


def _seqs(app, serial: str) -> list[int]:
    with app.app_context():
        seqs = list(
            db.session.scalars(
                sa.select(Transaction.device_seq)
                .join(Device, Device.id == Transaction.device_id)
                .where(Device.serial == serial)
                .order_by(Transaction.device_seq)
            )
        )
        db.session.remove()
        return seqs


def _enrol(host: str, port: int, ca_pem: str, codes, **options) -> list[SimulatedDevice]:
    async def all_():
        found = []
        for serial, code in codes:
            cert_pem, key_pem = await simulator.enrol(host, port, ca_pem, code, serial)
            found.append(SimulatedDevice(serial, host, port, ca_pem, cert_pem, key_pem, **options))
        return found

    return run_async(all_())


def test_the_device_keeps_its_jobs_while_the_collector_is_unreachable_and_sends_them_when_back(app, tmp_path):
    buffer = tmp_path / "SIM-0001.json"
    with app.app_context():
        codes, (anna,), ca_pem = simulator.prepare(1, 1)
    with running_collector(app) as collector:
        (device,) = _enrol(collector.host, collector.port, ca_pem, codes, buffer_path=buffer)
        device.finish_job("print", 3, 0, user_id=anna.id)
        assert run_async(device.flush()).stored == 1
        run_async(device.close())

    # The collector is gone: the device keeps working and buffering (on disk).
    for sides in (1, 2, 3, 4, 5):
        device.finish_job("copy", sides, 0, user_id=anna.id)
    away = run_async(device.flush())
    assert (away.acknowledged, away.pending, away.stopped) == (0, 5, "connection")
    saved = json.loads(buffer.read_text())
    assert saved["next_seq"] == 7
    assert [item["device_seq"] for item in saved["buffer"]] == [2, 3, 4, 5, 6]

    # The device restarts (its buffer read back from disk), the collector comes back on another address.
    with running_collector(app) as collector:
        again = SimulatedDevice(
            "SIM-0001", collector.host, collector.port, ca_pem, device.cert_pem, device.key_pem, buffer_path=buffer
        )
        assert (again.next_seq, len(again.buffer)) == (7, 5)
        back = run_async(again.flush())
        assert (back.stored, back.duplicates, back.pending, back.stopped) == (5, 0, 0, None)
        again.finish_job("print", 1, 0, user_id=anna.id)
        assert run_async(again.flush()).stored == 1
        run_async(again.close())
    assert _seqs(app, "SIM-0001") == [1, 2, 3, 4, 5, 6, 7]
    assert json.loads(buffer.read_text())["buffer"] == []


def test_offline_limits_from_hello_stop_the_device_taking_jobs(app):
    with app.app_context():
        codes, (anna,), ca_pem = simulator.prepare(1, 1)
    with running_collector(app) as collector:
        (device,) = _enrol(collector.host, collector.port, ca_pem, codes)
        with app.app_context():
            db.session.scalars(sa.select(CollectorDevice)).one().offline_max_jobs = 3
            db.session.commit()
        settings = run_async(device.hello())
        assert settings["offline"]["max_jobs"] == 3
        device.go_offline()
        for _n in range(3):
            device.finish_job("print", 1, 0, user_id=anna.id)
        with pytest.raises(BufferFull):
            device.finish_job("print", 1, 0, user_id=anna.id)
        assert run_async(device.flush()).stopped == "offline"
        device.come_back()
        assert run_async(device.flush()).stored == 3
        device.finish_job("print", 1, 0, user_id=anna.id)
        assert run_async(device.flush()).stored == 1
        run_async(device.close())
    assert _seqs(app, "SIM-0001") == [1, 2, 3, 4]


# --- the database stopped and started again under a collector running as its own process --------------------------


@pytest.fixture
def outage(postgres_server, tmp_path):  # noqa: F811
    """A migrated database on a PostgreSQL of the test's own, and `flask device-collector` running against it."""
    url = postgres_server.create_database("copydesk")
    migrate(make_app(url))
    app = make_app(url)
    port = free_port()
    log = tmp_path / "collector.log"
    with app.app_context():
        simulator.prepare(0, 0)  # the device CA and the server certificate's owner exist before the collector
    try:
        with collector_process(app, url, port, log) as process:
            yield app, port, process, log
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


class _Worker:
    """A device working on its own while the test plays with the database: login, authorize, print, send; when the
    collector says try later (or the link drops) it keeps the job in its buffer, as a real device does."""

    def __init__(self, device: SimulatedDevice, user_id: int, card: str) -> None:
        self.device, self.user_id, self.card = device, user_id, card
        self.try_later = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if (await self.device.login_card(self.card))["identified"]:
                    await self.device.authorize(self.user_id, "print", 2, 0)
            except DeviceError as error:
                assert error.code == "try_later", error
                self.try_later += 1
            except OSError:
                pass
            self.device.finish_job("print", 2, 0, user_id=self.user_id)
            result = await self.device.flush(batch=50)
            if result.stopped == "try_later":
                self.try_later += 1
            await asyncio.sleep(0.02)


def _acknowledged(devices: list[SimulatedDevice]) -> dict[str, set[int]]:
    return {device.serial: set(device.acknowledged) for device in devices}


async def _drain(device: SimulatedDevice, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while device.buffer:
        result = await device.flush()
        if result.pending and time.monotonic() > deadline:
            raise AssertionError(f"{device.serial}: {result}")
        if result.pending:
            await asyncio.sleep(0.2)


def test_the_database_stopped_and_restarted_during_a_run_loses_nothing_acknowledged_and_counts_nothing_twice(
    outage,
    postgres_server,  # noqa: F811
):
    app, port, process, log = outage
    with app.app_context():
        codes, people, ca_pem = simulator.prepare(4, 4)
    devices = _enrol("127.0.0.1", port, ca_pem, codes)
    probe, workers = devices[0], [_Worker(d, p.id, p.card) for d, p in zip(devices[1:], people[1:], strict=True)]
    anna = people[0]

    async def run() -> dict[str, dict[str, set[int]]]:
        stop = asyncio.Event()
        running = [asyncio.create_task(worker.run(stop)) for worker in workers]
        deadline = time.monotonic() + 20
        while not all(worker.device.acknowledged for worker in workers):
            for task in running:
                if task.done():
                    task.result()  # a worker that failed says why
            assert time.monotonic() < deadline, "nothing acknowledged before the outage"
            await asyncio.sleep(0.1)
        assert (await probe.login_card(anna.card))["identified"] is True
        acked_before = _acknowledged(devices)

        await asyncio.to_thread(postgres_server.stop)
        await asyncio.sleep(0.5)
        down = _acknowledged(devices)

        with pytest.raises(DeviceError) as later:
            await probe.login_card(anna.card)
        assert later.value.code == "try_later"
        assert later.value.retry_after and later.value.retry_after > 0
        for _n in range(3):
            probe.finish_job("copy", 1, 0, user_id=anna.id)
        refused = await probe.flush()
        assert (refused.acknowledged, refused.pending, refused.stopped) == (0, 3, "try_later")
        await asyncio.sleep(1.5)  # the other devices keep working meanwhile
        still_down = _acknowledged(devices)
        assert still_down == down, "something was acknowledged while the database was down"
        assert all(worker.try_later for worker in workers)

        await asyncio.to_thread(postgres_server.start)
        await asyncio.sleep(0.5)  # the devices keep working through the recovery
        stop.set()
        await asyncio.gather(*running)
        for device in devices:
            await _drain(device)
        assert (await probe.login_card(anna.card))["identified"] is True
        for device in devices:
            await device.close()
        return {"before": acked_before, "down": down}

    seen = run_async(run())

    assert process.poll() is None, "the collector was restarted or died"
    total = 0
    for device in devices:
        finished = set(range(1, device.next_seq))
        stored = _seqs(app, device.serial)
        assert len(stored) == len(set(stored)), f"{device.serial} counted twice"
        assert set(stored) == finished == set(device.acknowledged)
        assert seen["down"][device.serial] <= set(stored)
        total += len(finished)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Transaction)) == total
    text = log.read_text()
    assert anna.pin not in text and anna.card not in text  # refusals are logged without credentials
