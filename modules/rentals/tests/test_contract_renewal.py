"""A contract that renews automatically is renewed, not ended, when its end date passes: the end date moves by its
renewal term as many times as it takes to reach today, counted from the start date as its periods are, in the audit
log; one that does not renew still ends. The clock is frozen either side of the dealer's midnight."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
import time_machine

from core.db import db
from core.models import AuditLog
from modules.rentals import jobs
from modules.rentals.billing import RentalFeeSource
from modules.rentals.catalogue import find_or_create_model
from modules.rentals.contracts import create_contract
from modules.rentals.devices import create_device
from modules.rentals.models import Contract
from modules.rentals.tests.test_admin import logged_in
from tests.auth_support import make_customer

D = dt.date.fromisoformat
# Rome is UTC+1 in winter: 23:30 on 31 December and 00:30 on 1 January there.
LAST_EVENING = dt.datetime(2026, 12, 31, 22, 30, tzinfo=dt.UTC)
FIRST_NIGHT = dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC)


def contract(customer_id: int, serial: str, **terms) -> int:
    find_or_create_model("Kyocera", "ECOSYS M5526cdw", ["bw", "color"])
    device = create_device({"serial": serial, "manufacturer": "Kyocera", "model": "ECOSYS M5526cdw"})
    data = {
        "customer_id": customer_id,
        "fee": "50.00",
        "devices": [{"device_id": device.id, "counters": {"bw": 1000, "color": 100}}],
        **terms,
    }
    created = create_contract(data)
    db.session.commit()
    return created.id


def run_job_at(app, instant: dt.datetime) -> None:
    with time_machine.travel(instant, tick=False), app.app_context():
        jobs.end_lapsed_contracts()


def state_and_end(app, contract_id: int) -> tuple[str, dt.date]:
    with app.app_context():
        row = db.session.get(Contract, contract_id)
        return row.state, row.end_date


def end_date_changes(app, contract_id: int) -> list[tuple[str, str, list]]:
    with app.app_context():
        rows = db.session.scalars(
            sa.select(AuditLog)
            .where(
                AuditLog.object_type == "rentals_contract",
                AuditLog.object_id == str(contract_id),
                AuditLog.action == "update",
            )
            .order_by(AuditLog.id)
        )
        return [(row.actor, row.action, row.changes["end_date"]) for row in rows if "end_date" in (row.changes or {})]


def test_auto_renewing_contract_renews_by_its_term_after_its_last_day_and_the_other_ends(app):
    with app.app_context():
        customer = make_customer()
        renewing = contract(
            customer, "KY1", start_date="2026-01-01", end_date="2026-12-31", auto_renew=True, renewal_months=12
        )
        ending = contract(customer, "KY2", start_date="2026-01-01", end_date="2026-12-31")

    run_job_at(app, LAST_EVENING)  # its last day in Rome: nothing to do yet
    assert state_and_end(app, renewing) == ("active", D("2026-12-31"))
    assert state_and_end(app, ending) == ("active", D("2026-12-31"))

    # Past midnight in Rome, before the hourly job: the page already tells them apart.
    with time_machine.travel(FIRST_NIGHT, tick=False):
        client = logged_in(app, "dealer_admin")
        renewing_page = client.get(f"/admin/rentals_contract/details/?id={renewing}").get_data(as_text=True)
        ending_page = client.get(f"/admin/rentals_contract/details/?id={ending}").get_data(as_text=True)
    assert 'data-state="active"' in renewing_page and 'data-state="ended"' not in renewing_page
    assert 'data-state="ended"' in ending_page

    run_job_at(app, FIRST_NIGHT)
    assert state_and_end(app, renewing) == ("active", D("2027-12-31"))
    assert state_and_end(app, ending) == ("ended", D("2026-12-31"))
    assert end_date_changes(app, renewing) == [("system", "update", ["2026-12-31", "2027-12-31"])]
    with app.app_context():
        lines = RentalFeeSource().billable_lines(customer, D("2027-01-01"))
    # The renewed contract bills January 2027 in advance; the ended one bills nothing after its end.
    assert sorted((line.period_start, line.period_end) for line in lines if line.period_start.year == 2027) == [
        (D("2027-01-01"), D("2027-01-31"))
    ]

    run_job_at(app, FIRST_NIGHT + dt.timedelta(hours=1))  # the next hourly run changes nothing
    assert state_and_end(app, renewing) == ("active", D("2027-12-31"))
    assert len(end_date_changes(app, renewing)) == 1


def test_contract_renewed_as_many_times_as_it_takes_to_reach_today(app):
    with app.app_context():
        renewing = contract(
            make_customer(), "KY1", start_date="2024-03-01", end_date="2025-02-28", auto_renew=True, renewal_months=12
        )
    # The job did not run for two years (the worker was down): 28 Feb 2026, 28 Feb 2027, then 29 Feb 2028.
    run_job_at(app, dt.datetime(2027, 6, 1, 8, tzinfo=dt.UTC))
    assert state_and_end(app, renewing) == ("active", D("2028-02-29"))
    assert end_date_changes(app, renewing) == [("system", "update", ["2025-02-28", "2028-02-29"])]


def test_month_end_start_renews_onto_its_next_periods(app):
    """31 January plus one month: the periods are 31 Jan-27 Feb, 28 Feb-30 Mar, 31 Mar-29 Apr, 30 Apr-30 May."""
    with app.app_context():
        customer = make_customer()
        renewing = contract(
            customer, "KY1", start_date="2026-01-31", end_date="2026-02-27", auto_renew=True, renewal_months=1
        )

    run_job_at(app, dt.datetime(2026, 2, 27, 22, 30, tzinfo=dt.UTC))  # 23:30 on 27 Feb in Rome
    assert state_and_end(app, renewing) == ("active", D("2026-02-27"))

    run_job_at(app, dt.datetime(2026, 2, 27, 23, 30, tzinfo=dt.UTC))  # 00:30 on 28 Feb in Rome
    assert state_and_end(app, renewing) == ("active", D("2026-03-30"))
    with app.app_context():
        lines = RentalFeeSource().billable_lines(customer, D("2026-02-28"))
    assert sorted((line.period_start, line.period_end) for line in lines) == [
        (D("2026-01-31"), D("2026-02-27")),
        (D("2026-02-28"), D("2026-03-30")),
    ]

    run_job_at(app, dt.datetime(2026, 5, 15, 8, tzinfo=dt.UTC))
    assert state_and_end(app, renewing) == ("active", D("2026-05-30"))
    assert end_date_changes(app, renewing) == [
        ("system", "update", ["2026-02-27", "2026-03-30"]),
        ("system", "update", ["2026-03-30", "2026-05-30"]),
    ]


def test_end_date_off_the_periods_keeps_its_place_in_the_month(app):
    """A contract from 1 March to 15 June (mid-period) renewed by 12 months ends on 15 June of the next year."""
    with app.app_context():
        renewing = contract(
            make_customer(), "KY1", start_date="2026-03-01", end_date="2026-06-15", auto_renew=True, renewal_months=12
        )
    run_job_at(app, dt.datetime(2026, 6, 16, 8, tzinfo=dt.UTC))
    assert state_and_end(app, renewing) == ("active", D("2027-06-15"))


def test_suspended_auto_renewing_contract_is_renewed_and_stays_suspended(app):
    with app.app_context():
        renewing = contract(
            make_customer(), "KY1", start_date="2026-01-01", end_date="2026-06-30", auto_renew=True, renewal_months=6
        )
        db.session.get(Contract, renewing).state = "suspended"
        db.session.commit()
    run_job_at(app, dt.datetime(2026, 7, 1, 8, tzinfo=dt.UTC))
    assert state_and_end(app, renewing) == ("suspended", D("2026-12-31"))
