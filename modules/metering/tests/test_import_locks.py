"""Two CSV imports at once naming the same devices in opposite orders both finish, one after the other."""

from __future__ import annotations

import contextlib
import threading

import pytest
import sqlalchemy as sa

from core.db import db
from modules.metering.imports import ReadingImporter
from modules.metering.models import Reading
from modules.metering.tests import support as s

FIRST_THEN_SECOND = "serial,taken_at,bw\nKY1111111,2026-02-02 09:30,11000\nKY2222222,2026-02-02 09:30,21000\n"
SECOND_THEN_FIRST = "serial,taken_at,bw\nKY2222222,2026-02-03 09:30,22000\nKY1111111,2026-02-03 09:30,12000\n"


def test_two_imports_of_the_same_devices_in_opposite_orders_both_finish(app, db_session):
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("SQLite has one writer at a time: row locks are proven on PostgreSQL")
    customer = s.customer()
    first, second = s.device("KY1111111", meters=("bw",)), s.device("KY2222222", meters=("bw",))
    s.contract(customer.id, [(first, {"bw": 10_000}), (second, {"bw": 20_000})])
    db.session.commit()
    # Each import pauses after its first reading until the other has written its own first one (or 3 s went by):
    # locking device by device, each then holds one device and waits for the other's.
    first_written = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    class PausingImporter(ReadingImporter):
        def write(self, entry):
            written = super().write(entry)
            if not getattr(self, "paused", False):
                self.paused = True
                with contextlib.suppress(threading.BrokenBarrierError):  # the other waits for our locks: go on
                    first_written.wait(timeout=3)
            return written

    def run(name: str, text: str) -> None:
        with app.app_context():
            try:
                result = PausingImporter().run(text, commit=True)
                outcomes[name] = (result.ok, result.written, result.errors)
            except Exception as error:  # a deadlock, reported by the assertion
                outcomes[name] = repr(error)
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=run, args=("first", FIRST_THEN_SECOND)),
        threading.Thread(target=run, args=("second", SECOND_THEN_FIRST)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert outcomes == {"first": (True, 2, []), "second": (True, 2, [])}
    db.session.expire_all()
    counters = sorted((r.device.serial, r.counters["bw"]) for r in db.session.scalars(sa.select(Reading)))
    assert counters == [("KY1111111", 11_000), ("KY1111111", 12_000), ("KY2222222", 21_000), ("KY2222222", 22_000)]
