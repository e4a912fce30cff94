"""What was billed is metering's state: its receivers of lines_billed and lines_released, without invoicing.

The scenarios billed by the real invoicing (runs, cancels, credit notes) are in tests/test_billed_closings.py.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import current_app

from core import signals
from core.db import db
from modules.metering.billing import OverageSource
from modules.metering.models import BilledClosing
from modules.metering.tests import support as s

ONLY_BW = [{"meter": "bw", "included": 1000, "bands": [{"up_to": None, "price": "0.01"}]}]


def test_receivers_ignore_other_sources_and_roll_back_with_the_invoice(db_session):
    customer = s.customer()
    device = s.device("KYH6", meters=("bw",))
    s.contract(customer.id, [(device, {"bw": 10_000})], allowances=ONLY_BW)
    s.read(device, "2026-02-02", bw=11_850)
    db.session.commit()
    (line,) = OverageSource().billable_lines(customer.id, dt.date(2026, 2, 5))
    app = current_app._get_current_object()
    signals.lines_billed.send(app, source="rentals", lines=[(line.source_ref, line.extra)])
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BilledClosing)) == 0
    signals.lines_billed.send(app, source="metering", lines=[(line.source_ref, line.extra)])
    db.session.rollback()  # the draft failed: nothing was billed
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BilledClosing)) == 0
    signals.lines_billed.send(app, source="metering", lines=[(line.source_ref, line.extra)])
    signals.lines_released.send(app, source="rentals", source_refs=[line.source_ref])
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(BilledClosing)) == 1
