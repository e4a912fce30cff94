"""Refreshing many reading requests at once links each device to the reading `refresh` would pick (its window, its
stay on the contract, the channels that count) and costs the same few statements for many devices as for few."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from core.db import db, utcnow
from modules.metering import campaigns
from modules.metering.models import Reading, ReadingRequest, ReadingRequestItem
from modules.metering.tests import support as s
from modules.rentals.contract_lines import remove_device
from tests.query_counter import assert_not_growing, count_queries

D = dt.date.fromisoformat


def ask(customer_id: int, due: str, since: str, lines: list[tuple[int, int]]) -> ReadingRequest:
    """A pending request of the customer due on `due` for the (contract, device) lines, readings counting from
    `since`."""
    request = ReadingRequest(
        customer_id=customer_id, due_date=D(due), deadline=D(due), status="pending", reminders=0, created_at=utcnow()
    )
    request.items = [
        ReadingRequestItem(device_id=device_id, contract_id=contract_id, period_end=D(due), since=D(since))
        for contract_id, device_id in lines
    ]
    db.session.add(request)
    db.session.flush()
    return request


def read(device: s.Device, day: str, bw: int, status: str | None = None, source: str | None = None) -> int:
    """A reading of the device at noon of `day`, stored with `status` and `source` when given; its id."""
    reading = s.read(device, day, bw=bw, color=2_000)
    if status is not None:
        reading.status = status
    if source is not None:
        reading.source = source
    db.session.flush()
    return reading.id


def linked(request: ReadingRequest) -> dict[int, int | None]:
    return {item.device_id: item.reading_id for item in request.items}


def test_each_device_gets_the_latest_reading_of_its_window_and_stay_and_only_full_requests_complete(db_session):
    bianchi, verdi = s.customer("Studio Bianchi"), s.customer("Farmacia Verdi")
    kept, leaving, held, other = (s.device(serial) for serial in ("KY1", "KY2", "KY3", "KY4"))
    contract = s.contract(bianchi.id, [(d, {"bw": 10_000, "color": 2_000}) for d in (kept, leaving, held)])
    verdis = s.contract(verdi.id, [(other, {"bw": 10_000, "color": 2_000})])
    db.session.commit()
    read(kept, "2026-01-20", 10_500)  # before the January request's window
    read(kept, "2026-01-28", 11_000)
    january_kept = read(kept, "2026-01-29", 11_100)
    february_kept = read(kept, "2026-02-25", 12_000)  # late for January, still answers it: the latest since then
    january_leaving = read(leaving, "2026-01-31", 11_000)
    remove_device(contract, leaving.id, "2026-02-10", {"bw": 11_500, "color": 2_000})
    read(leaving, "2026-02-15", 12_000)  # the device left on the 10th: whoever has it now sent this one
    read(held, "2026-01-29", 11_000, status="pending_review")
    january_held = read(held, "2026-01-30", 11_100, status="pending_review")  # held for review: it counts
    read(held, "2026-02-01", 11_200, status="rejected")
    read(held, "2026-02-02", 11_300, source="estimate")
    read(other, "2026-02-26", 12_000, status="rejected")
    january = ask(bianchi.id, "2026-01-30", "2026-01-25", [(contract.id, d.id) for d in (kept, leaving, held)])
    february = ask(bianchi.id, "2026-02-27", "2026-02-20", [(contract.id, d.id) for d in (kept, leaving)])
    verdis_request = ask(verdi.id, "2026-02-27", "2026-02-20", [(verdis.id, other.id)])
    db.session.commit()

    completed = campaigns.refresh_all(db.session.scalars(sa.select(ReadingRequest).order_by(ReadingRequest.id)))
    db.session.commit()

    assert completed == [january]
    assert linked(january) == {kept.id: february_kept, leaving.id: january_leaving, held.id: january_held}
    assert linked(february) == {kept.id: february_kept, leaving.id: None}
    assert linked(verdis_request) == {other.id: None}
    assert (january.status, february.status, verdis_request.status) == ("completed", "pending", "pending")
    assert january.completed_at is not None and february.completed_at is None
    # One request at a time, the same answer.
    assert campaigns.refresh(february) is False and linked(february) == {kept.id: february_kept, leaving.id: None}
    assert db.session.get(Reading, january_kept).status == "accepted"


def requests_of(customer_id: int, contract_id: int, device_ids: list[int], count: int) -> None:
    """`count` monthly requests of the customer for the devices, from January."""
    for month in range(1, count + 1):
        due = dt.date(2026, month, 27).isoformat()
        ask(customer_id, due, due, [(contract_id, device_id) for device_id in device_ids])
    db.session.commit()


def test_refreshing_four_times_the_requests_and_devices_sends_no_more_statements(app, db_session):
    def measure(serials: list[str], count: int) -> tuple[list, list[str]]:
        partner = s.customer(f"Studio {serials[0]}")
        devices = [s.device(serial) for serial in serials]
        contract = s.contract(partner.id, [(d, {"bw": 10_000, "color": 2_000}) for d in devices])
        for month in range(1, count + 1):
            read(devices[0], f"2026-{month:02d}-28", 11_000 + month)
        requests_of(partner.id, contract.id, [d.id for d in devices], count)
        query = sa.select(ReadingRequest).where(ReadingRequest.customer_id == partner.id).order_by(ReadingRequest.id)
        with count_queries(app) as queries:
            requests = db.session.scalars(query).all()
            completed = campaigns.refresh_all(requests)
            db.session.commit()
        return [linked(r) for r in requests], completed, queries

    few_links, few_completed, few = measure(["KA1", "KA2"], 2)
    many_links, many_completed, many = measure([f"KB{n}" for n in range(1, 9)], 8)

    assert few_completed == [] and many_completed == []
    assert all(sum(reading is not None for reading in links.values()) == 1 for links in few_links + many_links)
    assert_not_growing(few, many)
