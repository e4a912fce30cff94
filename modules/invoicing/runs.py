"""Billing runs: ask every enabled BillableSource for each customer's lines as of a date, one draft per contract.

A run is split into chunks of customers, each a background job with a deterministic id (`billing-run:<id>:<n>`).
Each customer is billed in its own transaction, its drafts stored together in a savepoint (a few statements for all
of them): a source that fails, or a line that another run billed at the same moment (the UNIQUE billed ref), is
recorded on the run and the others go on. Running a run again, or two runs at once, bills nothing twice: lines whose
(source, source_ref) is already billed are skipped, and a concurrent insert of the same ref fails on the constraint:
the customer's drafts are then stored again contract by contract, each in a savepoint, and only that one is undone.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale, format_date
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from core import clock, jobs
from core.db import db, refresh_statistics, utcnow
from core.extension_points import (
    BILLABLE_SOURCE,
    BillableLine,
    ChunkPreparer,
    MissingReadingsReporter,
    implementations,
)
from core.models import JobRecord, Partner
from core.outbox import mail_language
from core.settings import get_setting
from core.validation import ValidationError
from modules.invoicing.models import BillingRun, Invoice, RunCustomer, RunIssue
from modules.invoicing.services import billed_keys, create_draft, create_drafts

DEFAULT_CHUNK_SIZE = 50
# The tables a run fills and looks up as it goes: their statistics are refreshed before each chunk.
FILLED_TABLES = ("invoicing_invoice", "invoicing_invoice_line", "invoicing_billed_ref")
DEFAULT_MAX_AS_OF_DAYS_AHEAD = 31
DEFAULT_MAX_AS_OF_YEARS_BACK = 10
DEFAULT_MAX_LINES_PER_DRAFT = 500
# Lines of one invoice, in a stable order: by period, fees before usage, then as the source gave them.
KIND_ORDER = {"fee": 0}


def as_of_window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The earliest and latest `as_of` of a run: settings `invoicing.max_as_of_years_back` and `..._days_ahead`."""
    today = today or clock.today()
    years = int(get_setting("invoicing.max_as_of_years_back", DEFAULT_MAX_AS_OF_YEARS_BACK))
    days = int(get_setting("invoicing.max_as_of_days_ahead", DEFAULT_MAX_AS_OF_DAYS_AHEAD))
    earliest = dt.date(today.year - years, today.month, min(today.day, 28))
    return earliest, today + dt.timedelta(days=days)


def validate_as_of(as_of: dt.date) -> None:
    """ValidationError naming `as_of` when it is outside the window: a run far ahead would bill years of fees."""
    today = clock.today()
    earliest, latest = as_of_window(today)
    if as_of > latest:
        days = (latest - today).days
        message = _(
            "Bill at most %(days)d days ahead: choose a date on or before %(date)s.",
            days=days,
            date=format_date(latest),
        )
        raise ValidationError({"as_of": message})
    if as_of < earliest:
        years = today.year - earliest.year
        message = _(
            "Runs go back at most %(years)d years: choose a date on or after %(date)s.",
            years=years,
            date=format_date(earliest),
        )
        raise ValidationError({"as_of": message})


def create_run(as_of: dt.date, user_id: int | None = None) -> BillingRun:
    """A queued run as of `as_of` (staged; commit, then `launch_run`); ValidationError when `as_of` is out of range."""
    validate_as_of(as_of)
    run = BillingRun(as_of=as_of, status="queued", total=0, done=0, created_by=user_id)
    db.session.add(run)
    db.session.flush()
    return run


def customer_ids() -> list[int]:
    """Every active customer, by id: sources decide which of them have anything due."""
    query = sa.select(Partner.id).where(Partner.is_customer.is_(True), Partner.active.is_(True)).order_by(Partner.id)
    return list(db.session.scalars(query))


def launch_run(run_id: int) -> None:
    """Split the run's customers into chunks and enqueue one job per chunk (inline without Redis)."""
    from modules.invoicing.jobs import run_chunk

    customers = customer_ids()
    size = max(1, int(get_setting("invoicing.run_chunk_size", DEFAULT_CHUNK_SIZE)))
    run = db.session.get(BillingRun, run_id)
    run.total = len(customers)
    if not customers:
        run.status, run.finished_at = "done", utcnow()
    db.session.commit()
    for index, start in enumerate(range(0, len(customers), size)):
        jobs.enqueue(run_chunk, run_id, customers[start : start + size], job_id=f"{chunk_job_prefix(run_id)}{index}")


def chunk_job_prefix(run_id: int) -> str:
    """The job ids of a run's chunks are this prefix and the chunk's number."""
    return f"billing-run:{run_id}:"


def _issue(run_id: int, kind: str, customer_id: int | None, message: str | None = None, **fields: Any) -> None:
    db.session.add(RunIssue(run_id=run_id, kind=kind, customer_id=customer_id, message=message, **fields))


def _sort_key(item: tuple[int, BillableLine]) -> tuple:
    order, line = item
    return (line.period_start or dt.date.min, KIND_ORDER.get(line.kind, 1), order)


def _group_by_invoice(lines: list[BillableLine]) -> dict[int | None, list[BillableLine]]:
    """Lines per contract (None: lines without a contract, one invoice per customer), duplicates dropped."""
    groups: dict[int | None, list[BillableLine]] = defaultdict(list)
    seen: set[tuple[str, str]] = set()
    for _order, line in sorted(enumerate(lines), key=_sort_key):
        key = (line.source, line.source_ref)
        if key not in seen:
            seen.add(key)
            groups[line.contract_id].append(line)
    return groups


def _due(
    run: BillingRun, customer_id: int, contract_id: int | None, lines: list[BillableLine], already: set[tuple[str, str]]
) -> list[BillableLine]:
    """The lines of one draft: those not `already` billed, at most `invoicing.max_lines_per_draft` (else an issue)."""
    new = [line for line in lines if (line.source, line.source_ref) not in already]
    most = int(get_setting("invoicing.max_lines_per_draft", DEFAULT_MAX_LINES_PER_DRAFT))
    if len(new) > most:
        message = _(
            "%(due)d lines are due: this draft holds the first %(most)d (setting invoicing.max_lines_per_draft); "
            "run again to bill the rest.",
            due=len(new),
            most=most,
        )
        _issue(run.id, "error", customer_id, message, contract_id=contract_id)
        new = new[:most]
    return new


def _conflict(run: BillingRun, customer_id: int, contract_id: int | None) -> None:
    message = _("Not billed: another run billed some of these lines at the same time; run again to bill the rest.")
    _issue(run.id, "error", customer_id, message, contract_id=contract_id)


def _bill_group(run: BillingRun, customer_id: int, contract_id: int | None, lines: list[BillableLine]) -> None:
    """Draft one invoice of `lines` in a savepoint: a conflict or bad line undoes only it."""
    savepoint = db.session.begin_nested()
    try:
        create_draft(customer_id, lines, contract_id=contract_id, billing_run_id=run.id)
    except IntegrityError:
        savepoint.rollback()
        _conflict(run, customer_id, contract_id)
        return
    except ValidationError as error:
        savepoint.rollback()
        _issue(run.id, "error", customer_id, str(error), contract_id=contract_id)
        return
    savepoint.commit()


def _bill_drafts(run: BillingRun, customer_id: int, drafts: list[tuple[int | None, list[BillableLine]]]) -> None:
    """Store a customer's drafts together in one savepoint; when another run billed one of their lines meanwhile (the
    UNIQUE billed ref), undo that and store them contract by contract, so only the conflicting one is left out."""
    if len(drafts) > 1:
        savepoint = db.session.begin_nested()
        try:
            _invoices, errors = create_drafts(customer_id, drafts, billing_run_id=run.id)
        except IntegrityError:
            savepoint.rollback()
        else:
            savepoint.commit()
            for contract_id, error in errors.items():
                _issue(run.id, "error", customer_id, str(error), contract_id=contract_id)
            return
    for contract_id, lines in drafts:
        _bill_group(run, customer_id, contract_id, lines)


def _ask_sources(run: BillingRun, customer_id: int) -> tuple[list[BillableLine], list[dict[str, Any]]]:
    lines: list[BillableLine] = []
    missing: list[dict[str, Any]] = []
    for source in implementations(BILLABLE_SOURCE):
        name = getattr(source, "name", type(source).__name__)
        try:
            lines.extend(source.billable_lines(customer_id, run.as_of))
            if isinstance(source, MissingReadingsReporter):
                missing.extend(source.missing_readings(customer_id, run.as_of))
        except Exception as exc:  # one source failing must not stop the run: recorded, the others still bill
            db.session.rollback()
            _issue(run.id, "error", customer_id, f"{name}: {exc.__class__.__name__}: {exc}")
    return lines, missing


def bill_customer(run: BillingRun, customer: Partner) -> None:
    """Bill one customer in the current transaction (the caller commits): its drafts, missing readings, errors."""
    with force_locale(mail_language(customer.language)):
        lines, missing = _ask_sources(run, customer.id)
    for item in missing:
        fields = {key: item.get(key) for key in ("contract_id", "device_id", "meter", "period_start", "period_end")}
        _issue(run.id, "missing", customer.id, **fields)
    already = billed_keys((line.source, line.source_ref) for line in lines)
    drafts = [
        (contract_id, _due(run, customer.id, contract_id, group, already))
        for contract_id, group in _group_by_invoice(lines).items()
    ]
    _bill_drafts(run, customer.id, [(contract_id, new) for contract_id, new in drafts if new])


def _mark_done(run_id: int, customer_id: int) -> bool:
    """Record the customer as done and advance the progress; False when a retried chunk had already done it."""
    savepoint = db.session.begin_nested()
    try:
        db.session.add(RunCustomer(run_id=run_id, customer_id=customer_id))
        db.session.flush()
    except IntegrityError:
        savepoint.rollback()
        return False
    savepoint.commit()
    db.session.execute(sa.update(BillingRun).where(BillingRun.id == run_id).values(done=BillingRun.done + 1))
    return True


def _other_chunks(run_id: int, customer_ids: list[int]) -> list[str]:
    """The job statuses of the run's other chunks (core_job), this chunk being the one with these arguments."""
    rows = db.session.execute(
        sa.select(JobRecord.status, JobRecord.args).where(JobRecord.id.startswith(chunk_job_prefix(run_id)))
    ).all()
    return [status for status, args in rows if args != [run_id, customer_ids]]


def _settle(run_id: int, customer_ids: list[int], outcome: str) -> None:
    """Set the run's status as this chunk starts ("running"), fails ("failed") or ends ("finished").

    A run is done once every customer is, whichever chunk (or retry of one) gets there; failed while a chunk's last
    try failed; else running. A failing chunk marks the run before its job record says so: while another chunk's job
    still shows running, a failed run stays failed.
    """
    # UPDATE first: it takes the row lock on PostgreSQL and the write lock on SQLite, so chunks settle one by one.
    db.session.execute(sa.update(BillingRun).where(BillingRun.id == run_id).values(status=BillingRun.status))
    current, done, total = db.session.execute(
        sa.select(BillingRun.status, BillingRun.done, BillingRun.total).where(BillingRun.id == run_id)
    ).one()
    others = _other_chunks(run_id, customer_ids)
    values: dict[str, Any] = {"status": "running"}
    if outcome == "failed":
        values["status"] = "failed"
    elif outcome == "finished" and done >= total:
        values = {"status": "done", "finished_at": utcnow()}
    elif "failed" in others or (current == "failed" and "running" in others):
        values["status"] = "failed"
    db.session.execute(sa.update(BillingRun).where(BillingRun.id == run_id).values(**values))


def _prepare_chunk(run: BillingRun, customer_ids: list[int]) -> list[ChunkPreparer]:
    """Let each source that can read ahead for the chunk; one that fails answers customer by customer instead."""
    prepared = []
    for source in implementations(BILLABLE_SOURCE):
        if not isinstance(source, ChunkPreparer):
            continue
        try:
            source.prepare_chunk(customer_ids, run.as_of)
        except Exception:  # reading ahead is an optimisation: billable_lines still answers each customer alone
            db.session.rollback()
            source.forget_chunk()
            current_app.logger.exception("%s could not prepare a chunk of run %s", source.name, run.id)
            continue
        prepared.append(source)
    return prepared


def bill_chunk(run_id: int, customer_ids: list[int]) -> None:
    """Bill each customer of a chunk in its own transaction; the run's status follows its chunks (`_settle`)."""
    _settle(run_id, customer_ids, "running")
    db.session.commit()
    refresh_statistics(*FILLED_TABLES)
    run = db.session.get(BillingRun, run_id)
    finished = set(
        db.session.scalars(
            sa.select(RunCustomer.customer_id).where(
                RunCustomer.run_id == run_id, RunCustomer.customer_id.in_(customer_ids)
            )
        )
    )
    preparers = _prepare_chunk(run, [customer_id for customer_id in customer_ids if customer_id not in finished])
    try:
        for customer_id in customer_ids:
            if customer_id in finished:
                continue
            customer = db.session.get(Partner, customer_id)
            if customer is not None:
                bill_customer(run, customer)
            if _mark_done(run_id, customer_id):
                db.session.commit()
            else:
                db.session.rollback()
    except Exception as exc:
        db.session.rollback()
        _issue(run_id, "error", None, f"{exc.__class__.__name__}: {exc}")
        _settle(run_id, customer_ids, "failed")
        db.session.commit()
        raise
    finally:
        for source in preparers:
            source.forget_chunk()
    _settle(run_id, customer_ids, "finished")
    db.session.commit()


def run_invoices(run_id: int) -> list[Invoice]:
    return list(db.session.scalars(sa.select(Invoice).where(Invoice.billing_run_id == run_id).order_by(Invoice.id)))


def run_issues(run_id: int, kind: str) -> list[RunIssue]:
    query = sa.select(RunIssue).where(RunIssue.run_id == run_id, RunIssue.kind == kind).order_by(RunIssue.id)
    return list(db.session.scalars(query))
