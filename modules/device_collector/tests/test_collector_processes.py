"""`flask device-collector --processes N`: worker processes sharing the port, one that dies started again, all of
them stopped by the supervisor's SIGTERM; the devices' jobs stored once whichever worker took them."""

from __future__ import annotations

import os
import re
import signal
import time

import sqlalchemy as sa

from conftest import make_app, migrate
from core.db import db
from modules.device_accounting.models import Transaction
from modules.device_collector import simulator
from modules.device_collector.simulator import SimulatedDevice
from modules.device_collector.tests.collector_support import HOST, collector_process, run_async
from tests.pg_server import postgres_server  # noqa: F401  (fixture)
from tests.smtp_server import free_port

LISTENING = re.compile(r"listening on [\d.]+:\d+ \(pid (\d+)\)")


def _workers(log) -> list[int]:
    return [int(pid) for pid in LISTENING.findall(log.read_text())]


def _wait_for(condition, what: str, log, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}:\n{log.read_text()}"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def _work(host: str, port: int, ca_pem: str, codes, people, rounds: int) -> int:
    """Each device enrols, logs its user in by card and sends `rounds` batches of 3 jobs; the jobs acknowledged."""
    stored = 0
    for (serial, code), person in zip(codes, people, strict=True):
        cert_pem, key_pem = await simulator.enrol(host, port, ca_pem, code, serial)
        device = SimulatedDevice(serial, host, port, ca_pem, cert_pem, key_pem)
        await device.hello()
        assert (await device.login_card(person.card))["identified"] is True
        for _round in range(rounds):
            for _job in range(3):
                device.finish_job("print", 2, 0, user_id=person.id)
            result = await device.flush()
            stored += result.stored
        await device.close()
    return stored


def test_worker_processes_share_the_port_a_dead_one_comes_back_and_sigterm_stops_them_all(
    postgres_server,  # noqa: F811
    tmp_path,
):
    url = postgres_server.create_database("copydesk")
    migrate(make_app(url))
    app = make_app(url)
    with app.app_context():
        codes, people, ca_pem = simulator.prepare(4, 4)
    port, log = free_port(), tmp_path / "collector.log"
    try:
        with collector_process(app, url, port, log, "--processes", "2") as supervisor:
            _wait_for(lambda: len(set(_workers(log))) == 2, "two workers did not start", log)
            first, second = sorted(set(_workers(log)))
            assert supervisor.pid not in (first, second)

            assert run_async(_work(HOST, port, ca_pem, codes[:2], people[:2], rounds=2)) == 12

            os.kill(first, signal.SIGKILL)  # a worker dies: the supervisor starts another
            _wait_for(lambda: len(set(_workers(log)) - {first, second}) == 1, "no worker replaced the dead one", log)
            (replacement,) = set(_workers(log)) - {first, second}
            assert run_async(_work(HOST, port, ca_pem, codes[2:], people[2:], rounds=2)) == 12

            supervisor.send_signal(signal.SIGTERM)
            assert supervisor.wait(20) == 0
        assert not _alive(second) and not _alive(replacement)
        with app.app_context():
            seqs = db.session.execute(sa.select(Transaction.device_id, Transaction.device_seq)).all()
            assert len(seqs) == len(set(seqs)) == 24
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
