"""Usage reports: each grouping, cost centers with their subtree, the dealer's days, filters, summary, CSV and PDF."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from flask_babel import force_locale
from pypdf import PdfReader

from core.db import db
from core.validation import ValidationError
from modules.device_accounting import reports
from modules.device_accounting.tests import reports_support as s

MARCH = (dt.date(2026, 3, 1), dt.date(2026, 3, 31))


@pytest.fixture
def office(db_session):
    """Studio Bianchi: Amministrazione / Contabilità / Paghe and Produzione; three users, two devices; a month of jobs,
    one job just after midnight of 1 April (Rome), one in April; another customer's job in March."""
    customer = s.customer("Studio Bianchi")
    admin = s.cost_center(customer.id, "Amministrazione")
    accounts = s.cost_center(customer.id, "Contabilità", admin)
    payroll = s.cost_center(customer.id, "Paghe", accounts)
    production = s.cost_center(customer.id, "Produzione")
    anna = s.print_user(customer.id, "arossi", "Anna Rossi", accounts)
    luca = s.print_user(customer.id, "lbruni", "Luca Bruni", payroll)
    marco = s.print_user(customer.id, "mverdi", "Marco Verdi", production)
    first = s.device("RB1001", customer.id)
    second = s.device("RB1002", customer.id, model="TASKalfa 2554ci")
    c = customer.id
    s.job(c, first.id, s.at("2026-03-02"), user_id=anna.id, cost_center_id=accounts.id, sides_bw=10, sides_color=2,
          cost="0.3000")  # fmt: skip
    s.job(c, second.id, s.at("2026-03-10"), user_id=anna.id, cost_center_id=accounts.id, function="copy", sides_bw=5,
          cost="0.0500")  # fmt: skip
    s.job(c, first.id, s.at("2026-03-15"), user_id=luca.id, cost_center_id=payroll.id, sides_color=4, cost="0.4000")
    s.job(c, second.id, s.at("2026-03-20"), user_id=marco.id, cost_center_id=production.id, sides_bw=20,
          paper_size="A3", cost="0.2000")  # fmt: skip
    s.job(c, second.id, s.at("2026-03-20", 11), user_id=marco.id, cost_center_id=production.id, function="scan",
          sides_bw=8, sheets=0)  # fmt: skip
    # 22:30 UTC on 31 March is 00:30 on 1 April in Rome: an April job.
    s.job(c, first.id, s.at("2026-03-31", 22, 30), function="fax", sides_bw=3, cost="0.0300")
    s.job(c, first.id, s.at("2026-04-02"), user_id=anna.id, cost_center_id=accounts.id, sides_bw=1, cost="0.0100")
    other = s.customer("Ferri Logistica")
    other_device = s.device("RX9001", other.id)
    s.job(other.id, other_device.id, s.at("2026-03-05"), sides_bw=100, cost="1.0000")
    db.session.commit()
    return {
        "customer": c,
        "centers": {"admin": admin.id, "accounts": accounts.id, "payroll": payroll.id, "production": production.id},
        "users": {"anna": anna.id, "luca": luca.id, "marco": marco.id},
        "devices": {"first": first.id, "second": second.id},
    }


def _by_key(rows):
    return {row["key"]: row for row in rows}


def test_a_cost_centers_row_includes_the_cost_centers_under_it(office):
    rows = reports.usage(office["customer"], "cost_center", *MARCH)
    centers = office["centers"]
    assert [(row["label"], row["depth"], row["jobs"], row["cost"]) for row in rows] == [
        ("Amministrazione", 0, 3, Decimal("0.7500")),
        ("Amministrazione / Contabilità", 1, 3, Decimal("0.7500")),
        ("Amministrazione / Contabilità / Paghe", 2, 1, Decimal("0.4000")),
        ("Produzione", 0, 2, Decimal("0.2000")),
    ]
    assert [row["key"] for row in rows] == [centers[name] for name in ("admin", "accounts", "payroll", "production")]


def test_filtering_by_a_cost_center_takes_its_subtree(office):
    rows = reports.usage(office["customer"], "user", *MARCH, cost_center_id=office["centers"]["accounts"])
    assert [(row["label"], row["jobs"], row["sides_bw"], row["sides_color"]) for row in rows] == [
        ("Luca Bruni", 1, 0, 4),
        ("Anna Rossi", 2, 15, 2),
    ]
    assert reports.usage(office["customer"], "user", *MARCH, cost_center_id=999999) == []


def test_users_by_cost_and_a_job_of_nobody_after_them(office):
    # April holds Anna's job and the fax nobody identified for (00:30 on 1 April in Rome).
    rows = reports.usage(office["customer"], "user", dt.date(2026, 4, 1), dt.date(2026, 4, 30))
    assert [(row["key"], row["jobs"], row["cost"]) for row in rows] == [
        (None, 1, Decimal("0.0300")),
        (office["users"]["anna"], 1, Decimal("0.0100")),
    ]
    assert rows[0]["label"] == "No user (unidentified or anonymised)"


def test_devices_functions_and_days_are_named_for_people(office):
    devices = _by_key(reports.usage(office["customer"], "device", *MARCH))
    assert devices[office["devices"]["first"]]["label"] == "RB1001 · Kyocera ECOSYS M5526cdw"
    assert devices[office["devices"]["second"]]["sides_bw"] == 33
    functions = reports.usage(office["customer"], "function", *MARCH)
    assert [(row["key"], row["label"], row["jobs"]) for row in functions] == [
        ("print", "Print", 3),
        ("copy", "Copy", 1),
        ("scan", "Scan", 1),
    ]
    days = reports.usage(office["customer"], "day", *MARCH)
    assert len(days) == 31 and days[0]["key"] == "2026-03-01" and days[0]["jobs"] == 0
    assert _by_key(days)["2026-03-20"]["jobs"] == 2
    assert days[-1]["jobs"] == 0  # the late fax counts on 1 April


def test_months_in_the_dealers_language_every_month_of_the_range(office):
    with force_locale("it"):
        rows = reports.usage(office["customer"], "month", dt.date(2026, 2, 1), dt.date(2026, 4, 30))
    assert [(row["key"], row["label"], row["jobs"]) for row in rows] == [
        ("2026-02", "febbraio 2026", 0),
        ("2026-03", "marzo 2026", 5),
        ("2026-04", "aprile 2026", 2),
    ]


def test_other_filters_and_another_customer_stay_apart(office):
    c = office["customer"]
    assert reports.totals(reports.usage(c, "function", *MARCH, device_id=office["devices"]["first"]))["jobs"] == 2
    assert reports.totals(reports.usage(c, "device", *MARCH, function="scan"))["sides_bw"] == 8
    assert reports.totals(reports.usage(c, "day", *MARCH, user_id=office["users"]["marco"]))["jobs"] == 2
    # The other customer's 100 sides in March are not here.
    assert reports.totals(reports.usage(c, "device", *MARCH))["sides_bw"] == 43


@pytest.mark.parametrize(
    ("group_by", "since", "until", "field"),
    [
        ("week", MARCH[0], MARCH[1], "group_by"),
        ("user", MARCH[1], MARCH[0], "until"),
        ("user", "2026-03-01", MARCH[1], "since"),
        ("user", dt.date(2010, 1, 1), dt.date(2026, 1, 1), "until"),
    ],
)
def test_bad_requests_name_the_field(office, group_by, since, until, field):
    with pytest.raises(ValidationError) as raised:
        reports.usage(office["customer"], group_by, since, until)
    assert set(raised.value.errors) == {field}


def test_read_filters_reads_a_query_string_and_names_bad_fields(office):
    read = reports.read_filters({"since": "2026-03-01", "until": "2026-03-31", "group_by": "user", "user_id": "7"})
    assert read == {"group_by": "user", "since": MARCH[0], "until": MARCH[1], "user_id": 7}
    with pytest.raises(ValidationError) as raised:
        reports.read_filters({"since": "1 marzo", "until": "2026-03-31", "device_id": "abc"})
    assert set(raised.value.errors) == {"since", "device_id"}


def test_summary_totals_colour_share_of_printed_sides_top_users_and_trend(office):
    report = reports.summary(office["customer"], *MARCH)
    assert report["totals"] == {"jobs": 5, "sides_bw": 43, "sides_color": 6, "sheets": 41, "cost": Decimal("0.9500")}
    # Printed sides only (print, copy, fax): the 8 scanned sides are not printed.
    assert report["printed"]["sides_bw"] == 35 and report["printed"]["sides_color"] == 6
    assert report["colour_share"] == Decimal("0.1463")
    assert [row["label"] for row in report["top_users"]] == ["Luca Bruni", "Anna Rossi", "Marco Verdi"]
    assert [row["key"] for row in report["trend"]] == ["2026-03"]
    data = reports.chart_data(report)
    assert data["trend"]["cost"] == ["0.9500"] and data["colour"]["values"] == [35, 6]


def test_csv_is_machine_readable_with_translated_headers(office):
    text = reports.usage_csv(office["customer"], "day", dt.date(2026, 3, 19), dt.date(2026, 3, 20))
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == ["Day", "Number of jobs", "Black and white sides", "Colour sides", "Sheets", "Cost"]
    assert rows[1:] == [
        ["2026-03-19", "0", "0", "0", "0", "0.0000"],
        ["2026-03-20", "2", "28", "0", "20", "0.2000"],
    ]


def test_csv_neutralises_a_formula_in_a_name(office):
    user = s.print_user(office["customer"], "evil", '=HYPERLINK("x")')
    s.job(office["customer"], office["devices"]["first"], s.at("2026-03-03"), user_id=user.id, sides_bw=1, cost="0.01")
    db.session.commit()
    text = reports.usage_csv(office["customer"], "user", *MARCH)
    names = [row[0] for row in csv.reader(io.StringIO(text[1:]))]
    assert '\'=HYPERLINK("x")' in names


def test_pdf_holds_the_customer_the_rows_and_the_totals(office):
    with force_locale("it"):
        content = reports.usage_pdf(office["customer"], "cost_center", *MARCH)
    assert content.startswith(b"%PDF")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    assert "Studio Bianchi" in text
    assert "Amministrazione / Contabilità / Paghe" in text
    assert "0,95" in text  # the month's cost, in Italian
    assert "marzo 2026" in text


RANGES = [
    (dt.date(2026, 3, 1), dt.date(2026, 3, 31)),  # a whole month
    (dt.date(2026, 3, 28), dt.date(2026, 4, 1)),  # days of two months, jobs outside on both sides
    (dt.date(2026, 4, 1), dt.date(2026, 4, 20)),  # the month so far: no job after it
    (dt.date(2026, 3, 29), dt.date(2026, 3, 29)),  # one day (summer time starts in Rome)
]


@pytest.mark.parametrize("group_by", reports.GROUP_BYS)
def test_every_grouping_of_every_range_equals_the_raw_jobs(db_session, group_by):
    """Whichever rollup a report reads (the narrow days, whole months, the days), its figures are the raw jobs'."""
    import random

    import sqlalchemy as sa

    from core import clock
    from modules.device_accounting.models import Transaction
    from modules.device_accounting.tests.test_reports_rollups import _random_jobs

    _random_jobs(random.Random(11), 150)
    db.session.commit()
    jobs = db.session.scalars(sa.select(Transaction)).all()
    customer_id = jobs[0].customer_id
    center = next(tx.cost_center_id for tx in jobs if tx.cost_center_id and tx.customer_id == customer_id)
    column = {
        "day": None,
        "month": None,
        **{k: v for k, v in reports.GROUP_COLUMNS.items() if k not in ("day", "month")},
    }
    for since, until in RANGES:
        for filters in ({}, {"cost_center_id": center}, {"function": "print"}):
            rows = reports.usage(customer_id, group_by, since, until, **filters)
            expected: dict = {}
            for tx in jobs:
                day = clock.local_date(tx.ended_at)
                if tx.customer_id != customer_id or not since <= day <= until:
                    continue
                if filters.get("cost_center_id") and tx.cost_center_id != center:
                    continue  # the center has no children here
                if filters.get("function") and tx.function != filters["function"]:
                    continue
                if group_by == "day":
                    key = day.isoformat()
                elif group_by == "month":
                    key = day.strftime("%Y-%m")
                else:
                    key = getattr(tx, column[group_by]) or None
                entry = expected.setdefault(key, [0, 0, 0, Decimal("0")])
                entry[0] += 1
                entry[1] += tx.sides_bw
                entry[2] += tx.sides_color
                entry[3] += tx.cost - tx.refunded
            got = {row["key"]: [row["jobs"], row["sides_bw"], row["sides_color"], row["cost"]] for row in rows}
            assert {k: v for k, v in got.items() if v[0]} == expected, (since, until, filters)


@pytest.mark.parametrize(
    ("today", "since"),
    [(dt.date(2026, 12, 1), dt.date(2026, 10, 1)), (dt.date(2026, 2, 28), dt.date(2025, 12, 1))],
)
def test_a_report_without_dates_shows_the_last_three_months_so_a_first_of_the_month_is_no_empty_page(
    app, db_session, today, since
):
    import time_machine

    with time_machine.travel(dt.datetime(today.year, today.month, today.day, 12, tzinfo=dt.UTC), tick=False):
        filters = reports.read_filters({})
    assert (filters["since"], filters["until"]) == (since, today)
