"""Sources prepared for a chunk of a billing run (core's ChunkPreparer) answer exactly as customer by customer."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale

from core import signals
from core.db import db
from core.extension_points import ChunkPreparer
from modules.metering.billing import OverageSource
from modules.metering.replacements import record_replacement
from modules.metering.tests import support as s
from modules.rentals.models import Allowance, Contract, Device

D = dt.date.fromisoformat
AS_OF = D("2026-04-05")


def _customers() -> list[int]:
    """Four customers: pooled devices priced by bands, a missing month closed by interpolation with a minimum
    charge, a device with no reading yet, and one without any contract."""
    pooled = s.customer("Pooled")
    first, second = s.device("CHA1", meters=("bw",)), s.device("CHA2", meters=("bw",))
    s.contract(
        pooled.id,
        [(first, {"bw": 1_000}), (second, {"bw": 5_000})],
        allowances=[
            {
                "meter": "bw",
                "included": 3_000,
                "pooled": True,
                "bands": [{"up_to": 1_000, "price": "0.010"}, {"up_to": None, "price": "0.008"}],
            }
        ],
    )
    for day, one, two in (("2026-01-31", 3_000, 8_000), ("2026-03-02", 6_500, 9_000), ("2026-03-31", 7_000, 12_000)):
        s.read(first, day, bw=one)
        s.read(second, day, bw=two)
    gaps = s.customer("Gaps")
    device = s.device("CHB1")
    s.contract(gaps.id, [(device, {"bw": 10_000, "color": 2_000})], minimum_charge="80.00", escalation_percent="3")
    s.read(device, "2026-01-30", bw=12_000, color=2_100)
    s.read(device, "2026-03-31", bw=15_000, color=2_900, source="api")
    waiting = s.customer("Waiting")
    s.contract(waiting.id, [(s.device("CHC1"), {"bw": 0, "color": 0})])
    idle = s.customer("Idle")
    db.session.commit()
    return [pooled.id, gaps.id, waiting.id, idle.id]


def _answers(source, customer_id: int) -> tuple[list, list | None]:
    with force_locale("it"):
        lines = source.billable_lines(customer_id, AS_OF)
        missing = source.missing_readings(customer_id, AS_OF) if hasattr(source, "missing_readings") else None
    return lines, missing


def _store(lines) -> None:
    """What invoicing does once it took the lines: metering records their closings."""
    for name in {line.source for line in lines}:
        taken = [(line.source_ref, line.extra) for line in lines if line.source == name]
        signals.lines_billed.send(current_app._get_current_object(), source=name, lines=taken)


def test_a_prepared_chunk_bills_what_each_customer_alone_bills(db_session):
    customers = _customers()
    for source in (OverageSource(),):
        assert isinstance(source, ChunkPreparer)
        alone = {customer_id: _answers(source, customer_id) for customer_id in customers}
        db.session.rollback()
        assert alone[customers[0]][0] and alone[customers[1]][0]
        source.prepare_chunk(customers, AS_OF)
        try:
            for customer_id in customers:
                # Each customer is billed and committed in turn, as a run's chunk does.
                assert _answers(source, customer_id) == alone[customer_id]
                _store(alone[customer_id][0])
                db.session.commit()
            # Once billed, the closings stored since the chunk was prepared are those it answers with.
            prepared = {customer_id: _answers(source, customer_id) for customer_id in customers}
        finally:
            source.forget_chunk()
        assert prepared == {customer_id: _answers(source, customer_id) for customer_id in customers}


def test_what_is_recorded_after_the_chunk_was_prepared_is_billed(db_session):
    customers = _customers()
    waiting = customers[2]
    source = OverageSource()
    device = db.session.scalar(sa.select(Device).where(Device.serial == "CHC1"))
    source.prepare_chunk(customers, AS_OF)
    try:
        assert _answers(source, waiting)[0] == []
        assert len(_answers(source, waiting)[1]) == 6  # bw and colour, January to March
        # Another process records readings and a meter replacement while the chunk is billed.
        s.read(device, "2026-01-31", bw=1_500, color=300)
        record_replacement(device.id, "2026-02-15", "bw", 1_800, 0, today=D("2030-01-01"))
        s.read(device, "2026-02-28", bw=400, color=400)
        s.read(device, "2026-03-31", bw=2_000, color=700)
        db.session.commit()
        prepared = _answers(source, waiting)
    finally:
        source.forget_chunk()
    assert prepared == _answers(source, waiting)
    lines, missing = prepared
    assert missing == []
    overage = {(line.meter, line.period_start.month): int(line.quantity) for line in lines if line.kind == "overage"}
    # bw: 1,500, then 300 + 400 across the replacement, then 1,600 pages; colour: 300, 100, 300; 1,000 / 200 included
    assert overage == {("bw", 1): 500, ("bw", 3): 600, ("color", 1): 100, ("color", 3): 100}


def test_a_contract_changed_after_the_chunk_was_prepared_is_billed_as_it_now_stands(db_session):
    customers = _customers()
    pooled = customers[0]
    source = OverageSource()
    before = _answers(source, pooled)[0]
    db.session.rollback()
    source.prepare_chunk(customers, AS_OF)
    try:
        # Staff raise the pooled allowance while the chunk is being billed.
        allowance = db.session.scalar(sa.select(Allowance).join(Contract).where(Contract.customer_id == pooled))
        allowance.included = 20_000
        db.session.commit()
        prepared = _answers(source, pooled)[0]
    finally:
        source.forget_chunk()
    assert [line for line in before if line.kind == "overage"]
    assert [line for line in prepared if line.kind == "overage"] == []
    assert prepared == _answers(source, pooled)[0]
