"""A contract whose end date has passed is ended: on its pages at once, in the database by the periodic job."""

from __future__ import annotations

import datetime as dt
import re

import time_machine

from core.db import db
from modules.rentals import jobs
from modules.rentals.billing import RentalFeeSource
from modules.rentals.catalogue import find_or_create_model
from modules.rentals.contracts import create_contract
from modules.rentals.devices import create_device
from modules.rentals.models import Contract
from modules.rentals.tests.test_admin import logged_in
from tests.auth_support import make_customer

# 10:00 in Rome on 1 December 2026.
DECEMBER = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


def june_contract() -> int:
    """Hotel Bellavista's: monthly in arrears, 1 March to 15 June 2026, its device still on it."""
    find_or_create_model("Canon", "imageRUNNER ADVANCE DX C3826i", ["bw", "color"])
    device = create_device({"serial": "VBB7654321", "manufacturer": "Canon", "model": "imageRUNNER ADVANCE DX C3826i"})
    contract = create_contract(
        {
            "customer_id": make_customer(),
            "start_date": "2026-03-01",
            "end_date": "2026-06-15",
            "fee": "60.00",
            "fee_timing": "arrears",
            "devices": [{"device_id": device.id, "start_date": "2026-03-01", "counters": {"bw": 5000, "color": 10}}],
        }
    )
    db.session.commit()
    assert contract.state == "active"
    return contract.id


def test_contract_past_its_end_date_shows_ended_before_the_job_runs(app):
    with app.app_context():
        contract_id = june_contract()
    with time_machine.travel(DECEMBER, tick=False):
        client = logged_in(app, "dealer_admin")
        details = client.get(f"/admin/rentals_contract/details/?id={contract_id}").get_data(as_text=True)
        listing = client.get("/admin/rentals_contract/").get_data(as_text=True)

    assert 'data-state="ended">Ended</span>' in details
    assert ">Suspend<" not in details and ">End<" not in details  # no state change offered any more
    row = re.search(r"<tr>(?:(?!</tr>).)*1/2026.*?</tr>", listing, re.S).group(0)
    assert "Ended" in row and "Active" not in row


def test_daily_job_ends_contracts_past_their_end_date_and_billing_still_bills_their_last_periods(app):
    with app.app_context():
        contract_id = june_contract()
        with time_machine.travel(dt.datetime(2026, 6, 15, 21, 30, tzinfo=dt.UTC), tick=False):  # 23:30 in Rome
            jobs.end_lapsed_contracts()
            assert db.session.get(Contract, contract_id).state == "active"  # its last day
        with time_machine.travel(DECEMBER, tick=False):
            jobs.end_lapsed_contracts()
            db.session.expire_all()
            contract = db.session.get(Contract, contract_id)
            lines = RentalFeeSource().billable_lines(contract.customer_id, dt.date(2026, 12, 1))

        assert contract.state == "ended"
        assert [(line.period_start, line.period_end) for line in lines] == [
            (dt.date(2026, 3, 1), dt.date(2026, 3, 31)),
            (dt.date(2026, 4, 1), dt.date(2026, 4, 30)),
            (dt.date(2026, 5, 1), dt.date(2026, 5, 31)),
            (dt.date(2026, 6, 1), dt.date(2026, 6, 15)),
        ]
