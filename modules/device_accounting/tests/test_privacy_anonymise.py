"""Anonymisation after N months: users and names gone from old jobs, every report over cost centers still the same."""

from __future__ import annotations

import datetime as dt
import operator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core import clock
from core.db import db, utcnow
from modules.device_accounting import reports, rollups
from modules.device_accounting.customer_settings import save_settings
from modules.device_accounting.models import Balance, DailyUsage, LedgerEntry, Transaction
from modules.device_accounting.operations import record_transaction, refund
from modules.device_accounting.pricing import save_price_list
from modules.device_accounting.privacy import anonymise_cutoff, anonymise_due
from modules.device_accounting.quotas import recompute, save_quota
from modules.device_accounting.tests import core_support as c
from modules.device_accounting.tests import reports_support as r
from modules.device_accounting.tests.scan_support import places_holding
from modules.rentals.periods import add_months

MONTHS = 3
GROUPINGS = ("cost_center", "device", "function", "day", "month")
# What anonymising leaves of a job: everything but who printed it and the document's name.
figures_of = operator.attrgetter(
    "cost_center_id",
    "device_id",
    "function",
    "sides_bw",
    "sides_color",
    "sheets",
    "cost",
    "refunded",
    "paper_size",
    "ended_at",
)


def _daily_rows(customer_id: int) -> dict[tuple, tuple]:
    rows = db.session.scalars(sa.select(DailyUsage).where(DailyUsage.customer_id == customer_id)).all()
    return {
        tuple(getattr(row, name) for name in rollups.KEY): tuple(getattr(row, name) for name in rollups.SUMS)
        for row in rows
    }


def _reports(customer_id: int, since: dt.date, until: dt.date) -> dict[str, list[dict]]:
    return {group_by: reports.usage(customer_id, group_by, since, until) for group_by in GROUPINGS}


@pytest.fixture
def office(app, db_session):
    """Three months' setting at one customer; jobs before and after the cutoff, recorded and charged for real."""
    partner = r.customer("Studio Riservato")
    other = r.customer("Studio Aperto")
    save_settings(partner.id, {"anonymise_after_months": MONTHS})
    admin = r.cost_center(partner.id, "Amministrazione")
    accounts = r.cost_center(partner.id, "Contabilità", parent=admin)
    sales = r.cost_center(partner.id, "Vendite")
    anna = r.print_user(partner.id, "anna", "Anna Rossi", center=accounts)
    bruno = r.print_user(partner.id, "bruno", "Bruno Neri", center=sales)
    first = r.device("ANON-1", customer_id=partner.id)
    second = r.device("ANON-2", customer_id=partner.id)
    elsewhere = r.device("ANON-3", customer_id=other.id)
    save_price_list(
        partner.id,
        {
            "name": "Listino",
            "valid_from": dt.date(2020, 1, 1),
            "entries": [
                {"function": "print", "colour": "bw", "price_per_side": "0.05"},
                {"function": "print", "colour": "color", "price_per_side": "0.15"},
            ],
        },
    )
    quota = save_quota(partner.id, {"user_id": anna.id, "period": "monthly", "amount": "50.00", "mode": "reset"})
    db.session.commit()

    start = utcnow().replace(microsecond=0)
    # Recorded as a device reports them: priced, charged to Anna's quota (ledger), counted in the rollups.
    recorded = []
    for seq, (sides_bw, sides_color) in enumerate([(10, 0), (4, 2), (0, 6)], start=900_001):
        report = c.job(
            first,
            seq,
            anna,
            cost_center_id=accounts.id,
            sides_bw=sides_bw,
            sides_color=sides_color,
            document_name=f"Bilancio-riservato-{seq - 900_000}.xlsx",
            started_at=(start - dt.timedelta(minutes=2)).isoformat(),
            ended_at=start.isoformat(),
        )
        tx, _created = record_transaction(report)
        recorded.append(tx)
    refund(recorded[0], Decimal("0.2000"), "inceppamento", None)

    now = clock.day_start(add_months(clock.local_date(start), MONTHS + 1)) + dt.timedelta(hours=10)
    cutoff = clock.day_start(anonymise_cutoff(MONTHS, now))
    more = [
        # Old: before the cutoff; one of them by nobody (its rollup row is user 0 already, to merge into).
        r.job(
            partner.id,
            second.id,
            start - dt.timedelta(days=3),
            user_id=bruno.id,
            cost_center_id=sales.id,
            function="copy",
            sides_bw=30,
            paper_size="A3",
            cost="1.5000",
        ),
        r.job(
            partner.id,
            second.id,
            start - dt.timedelta(days=3),
            cost_center_id=sales.id,
            function="copy",
            sides_bw=5,
            paper_size="A3",
            cost="0.2500",
        ),
        r.job(
            partner.id,
            first.id,
            cutoff - dt.timedelta(minutes=1),
            user_id=bruno.id,
            cost_center_id=sales.id,
            sides_bw=2,
            cost="0.1000",
        ),
        # Recent: the cutoff's own day and later keep their user.
        r.job(
            partner.id,
            first.id,
            cutoff + dt.timedelta(minutes=1),
            user_id=bruno.id,
            cost_center_id=sales.id,
            sides_bw=3,
            cost="0.1500",
        ),
        r.job(
            partner.id,
            second.id,
            now - dt.timedelta(days=10),
            user_id=anna.id,
            cost_center_id=accounts.id,
            function="scan",
            sides_bw=12,
            cost="0",
        ),
        # Another customer, without the setting: never touched.
        r.job(other.id, elsewhere.id, start - dt.timedelta(days=60), user_id=None, sides_bw=1, cost="0.0500"),
    ]
    more[2].document_name = "Lettera-Bruno-riservata.docx"
    more[3].document_name = "Lettera-recente.docx"
    other_user = r.print_user(other.id, "ospite", "Ospite")
    more[5].user_id = other_user.id
    db.session.commit()
    rollups.rebuild(other.id)
    db.session.commit()
    return {
        "customer": partner,
        "other": other,
        "now": now,
        "cutoff": cutoff,
        "since": clock.local_date(start) - dt.timedelta(days=90),
        "until": clock.local_date(now),
        "old": [tx.id for tx in recorded] + [more[0].id, more[1].id, more[2].id],
        "recent": [more[3].id, more[4].id],
        "elsewhere": more[5].id,
        "users": (anna.id, bruno.id),
        "quota": quota.id,
    }


def test_old_jobs_lose_their_user_and_name_and_keep_everything_else(office):
    before = {tx.id: tx for tx in db.session.scalars(sa.select(Transaction))}
    kept = {tx_id: figures_of(tx) for tx_id, tx in before.items()}
    assert anonymise_due(office["now"]) == len(office["old"])
    db.session.commit()
    db.session.expire_all()

    for tx_id in office["old"]:
        tx = db.session.get(Transaction, tx_id)
        assert (tx.user_id, tx.document_name, tx.quota_id, tx.balance_after, tx.anonymised) == (
            None,
            None,
            None,
            None,
            True,
        )
    for tx_id in [*office["recent"], office["elsewhere"]]:
        tx = db.session.get(Transaction, tx_id)
        assert tx.user_id is not None and tx.anonymised is False
    assert db.session.get(Transaction, office["recent"][0]).document_name == "Lettera-recente.docx"
    for tx_id, figures in kept.items():
        tx = db.session.get(Transaction, tx_id)
        assert figures_of(tx) == figures

    # No way back to the user: names gone from every table, ledger entries no longer point at the jobs...
    for name in ("Bilancio-riservato-1.xlsx", "Bilancio-riservato-3.xlsx", "Lettera-Bruno-riservata.docx"):
        assert places_holding(name) == []
    linked = db.session.scalars(
        sa.select(LedgerEntry).where(
            sa.or_(LedgerEntry.transaction_id.in_(office["old"]), LedgerEntry.refund_id.is_not(None))
        )
    ).all()
    assert linked == []
    # ...while the balance still equals its ledger.

    balance = db.session.scalars(sa.select(Balance).where(Balance.quota_id == office["quota"])).one()
    assert recompute(balance) == balance.balance


def test_reports_over_cost_centers_devices_and_functions_keep_their_totals(office):
    customer_id = office["customer"].id
    before = _reports(customer_id, office["since"], office["until"])
    by_user = reports.usage(customer_id, "user", office["since"], office["until"])
    other_rows = _daily_rows(office["other"].id)

    anonymise_due(office["now"])
    db.session.commit()
    db.session.expire_all()

    assert _reports(customer_id, office["since"], office["until"]) == before
    after_by_user = reports.usage(customer_id, "user", office["since"], office["until"])
    assert reports.totals(after_by_user) == reports.totals(by_user)
    nobody = next(row for row in after_by_user if row["key"] is None)
    assert nobody["jobs"] == len(office["old"])
    anna, bruno = office["users"]
    assert {row["key"] for row in after_by_user} == {None, anna, bruno}  # their recent jobs only
    bruno_row = next(row for row in after_by_user if row["key"] == bruno)
    assert (bruno_row["jobs"], bruno_row["cost"]) == (1, Decimal("0.1500"))

    # The rollups hold no user before the cutoff's day, and are what a rebuild from the raw jobs gives.
    first_kept_day = clock.local_date(office["cutoff"])
    merged = _daily_rows(customer_id)
    assert all(key[2] == 0 for key in merged if key[1] < first_kept_day)
    rollups.rebuild(customer_id)
    db.session.flush()
    assert _daily_rows(customer_id) == merged
    assert _daily_rows(office["other"].id) == other_rows


def test_a_second_run_changes_nothing(office):
    assert anonymise_due(office["now"]) == len(office["old"])
    db.session.commit()
    rows = _daily_rows(office["customer"].id)
    assert anonymise_due(office["now"]) == 0
    db.session.commit()
    assert _daily_rows(office["customer"].id) == rows


def test_without_the_setting_nothing_is_anonymised(office):
    save_settings(office["customer"].id, {"anonymise_after_months": None})
    db.session.commit()
    assert anonymise_due(office["now"]) == 0
    assert db.session.scalar(sa.select(sa.func.count()).where(Transaction.anonymised.is_(True))) == 0


@pytest.mark.parametrize(
    ("today", "months", "first_kept"),
    [("2026-06-15", 3, "2026-03-15"), ("2026-05-31", 3, "2026-02-28"), ("2028-03-31", 1, "2028-02-29")],
)
def test_the_cutoff_counts_calendar_months_in_the_dealers_time_zone(app, db_session, today, months, first_kept):
    # 00:30 in Rome is still the previous day in UTC: the dealer's day counts.
    now = dt.datetime.combine(dt.date.fromisoformat(today), dt.time(0, 30), clock.timezone())
    assert anonymise_cutoff(months, now) == dt.date.fromisoformat(first_kept)
