"""Held print jobs: submitted by a print server, kept sealed, listed and released at a device, deleted or expired."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import format_decimal
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from core import clock
from core.crypto import SealBroken, seal_bytes, unseal_bytes
from core.db import db, utcnow
from core.validation import Checker, ValidationError, fail
from modules.device_accounting.customer_settings import settings_of
from modules.device_accounting.models import (
    PAPER_SIZES,
    HeldDocument,
    HeldJob,
    PrintDelegate,
    PrintServer,
    PrintServerUser,
    PrintUser,
    Transaction,
)
from modules.device_accounting.operations import authorize, customer_of_device
from modules.device_accounting.pricing import price_book
from modules.device_accounting.privacy import document_name_kept
from modules.device_accounting.users import username_key

log = logging.getLogger(__name__)

DOCUMENT_PURPOSE = "held documents"
# The default of COPYDESK_HELD_JOB_MAX_BYTES (core/config.py): 50 MiB.
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024
MAX_COPIES = 999
MAX_SUBMISSION_KEY = 200
MAX_DELEGATES = 100
PDF_MIME_TYPE = "application/pdf"
# A PDF's header may follow some bytes of junk (the specification allows it within the first 1024 bytes).
PDF_HEADER_WINDOW = 1024


def max_document_bytes() -> int:
    """The largest document a print server may submit (config COPYDESK_HELD_JOB_MAX_BYTES)."""
    return int(current_app.config.get("COPYDESK_HELD_JOB_MAX_BYTES") or MAX_DOCUMENT_BYTES)


def too_large_message(limit: int) -> str:
    """The refusal of a document above `limit` bytes, in the user's language."""
    size = _("%(size)s MB", size=format_decimal(round(limit / 1_000_000, 1)))
    return _("The document is larger than %(limit)s.", limit=size)


# --- documents ---------------------------------------------------------------------------------------------------


def count_pdf_pages(data: bytes) -> int:
    """The pages of a PDF document; ValidationError on `document` when it is empty, not a PDF, or unreadable."""
    from pypdf import PdfReader

    if not data:
        fail("document", _("The document is empty."))
    if b"%PDF-" not in data[:PDF_HEADER_WINDOW]:
        fail("document", _("The document is not a PDF."))
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            fail("document", _("The PDF is protected by a password: it cannot be printed from here."))
        pages = len(reader.pages)
    except ValidationError:
        raise
    except Exception as error:  # pypdf raises many kinds (PdfReadError, ValueError, KeyError...) on a broken file
        log.info("held job document unreadable: %s", error)
        fail("document", _("The PDF cannot be read: it is damaged or incomplete."))
    if pages < 1:
        fail("document", _("The PDF has no pages."))
    return pages


def document_of(job: HeldJob) -> bytes:
    """The plain document of a held job; ValidationError on `job` when it is gone or no key opens it."""
    stored = db.session.get(HeldDocument, job.id)
    if stored is None:
        fail("job", _("The document of this job is no longer stored."))
    try:
        return unseal_bytes(stored.content, DOCUMENT_PURPOSE)
    except SealBroken:
        fail("job", _("The document of this job cannot be opened: the server's key has changed."))


def _drop_document(job_id: int) -> None:
    db.session.execute(sa.delete(HeldDocument).where(HeldDocument.held_job_id == job_id))


# --- users -------------------------------------------------------------------------------------------------------


def map_cups_user(print_server: PrintServer, cups_user: str) -> PrintUser | None:
    """The print user a CUPS user name stands for: the print server's mapping, else the print user of the same
    username (ignoring case) of the print server's customer; None when neither exists."""
    name = (cups_user or "").strip()
    if not name:
        return None
    mapped = db.session.scalar(
        sa.select(PrintUser)
        .join(PrintServerUser, PrintServerUser.print_user_id == PrintUser.id)
        .where(PrintServerUser.print_server_id == print_server.id, PrintServerUser.cups_user == name)
    )
    if mapped is not None:
        return mapped
    return db.session.scalars(
        sa.select(PrintUser).where(
            PrintUser.customer_id == print_server.customer_id, PrintUser.username_key == username_key(name)
        )
    ).first()


def _owners_for(user: PrintUser) -> list[int]:
    """The user and the users who delegated their held jobs to them."""
    delegated = db.session.scalars(sa.select(PrintDelegate.owner_id).where(PrintDelegate.delegate_id == user.id))
    return [user.id, *delegated]


def may_release_for(user: PrintUser, owner_id: int) -> bool:
    """May `user` release the held jobs of the print user `owner_id` (their own, or delegated to them)?"""
    if owner_id == user.id:
        return True
    return (
        db.session.scalar(
            sa.select(PrintDelegate.id).where(PrintDelegate.owner_id == owner_id, PrintDelegate.delegate_id == user.id)
        )
        is not None
    )


def set_delegates(owner: PrintUser, delegate_ids: list[int]) -> list[PrintDelegate]:
    """Who may release `owner`'s held jobs: exactly these print users of the same customer (field `delegates`)."""
    wanted: list[int] = []
    for value in delegate_ids or ():
        if isinstance(value, bool) or not isinstance(value, int):
            fail("delegates", _("Choose print users of the same customer."))
        if value not in wanted:
            wanted.append(value)
    if len(wanted) > MAX_DELEGATES:
        fail("delegates", _("At most %(max)d delegates.", max=MAX_DELEGATES))
    if owner.id in wanted:
        fail("delegates", _("A user cannot be their own delegate."))
    found = set(
        db.session.scalars(
            sa.select(PrintUser.id).where(PrintUser.id.in_(wanted or [0]), PrintUser.customer_id == owner.customer_id)
        )
    )
    if len(found) != len(wanted):
        fail("delegates", _("Choose print users of the same customer."))
    current = {
        row.delegate_id: row
        for row in db.session.scalars(sa.select(PrintDelegate).where(PrintDelegate.owner_id == owner.id))
    }
    for delegate_id, row in current.items():
        if delegate_id not in found:
            db.session.delete(row)
    for delegate_id in wanted:
        if delegate_id not in current:
            db.session.add(PrintDelegate(owner_id=owner.id, delegate_id=delegate_id))
    db.session.flush()
    return list(
        db.session.scalars(
            sa.select(PrintDelegate).where(PrintDelegate.owner_id == owner.id).order_by(PrintDelegate.id)
        )
    )


# --- submit ------------------------------------------------------------------------------------------------------


def estimated_cost(customer_id: int, pages: int, copies: int, color: bool, duplex: bool, paper_size: str, on: dt.date):
    """What the job would cost printed on the dealer's day `on`: the customer's price book for `print`."""
    sides = pages * copies
    cost, _list_id = price_book(customer_id, "print", on).job_cost(
        0 if color else sides, sides if color else 0, paper_size, duplex
    )
    return cost


def _stored(submission_key: str) -> HeldJob | None:
    return db.session.scalars(sa.select(HeldJob).where(HeldJob.submission_key == submission_key)).first()


def _paper_size(check: Checker, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return "A4"
    if isinstance(value, str):
        for size in PAPER_SIZES:
            if value.strip().lower() == size.lower():
                return size
    check.fail("paper_size", _("Choose one of: %(choices)s", choices=", ".join(PAPER_SIZES)))
    return None


def _copies(check: Checker, value: Any) -> int | None:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COPIES:
        check.fail("copies", _("Enter a whole number from 1 to %(max)d.", max=MAX_COPIES))
        return None
    return value


def submit_held_job(
    print_server: PrintServer,
    cups_user: str,
    document: bytes,
    *,
    title: str | None = None,
    copies: int = 1,
    color: bool = False,
    duplex: bool = False,
    paper_size: str = "A4",
    submission_key: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[HeldJob, bool]:
    """Hold a print job for the print user `cups_user` stands for: (the job, True) when new, (the one stored, False)
    for a `submission_key` stored before (a retried submission), whatever else this copy says.

    The pages are counted from the PDF; the estimated cost comes from the customer's prices for `print`; the title
    is dropped when the customer hides document names; the document is sealed at rest and the job expires after the
    customer's held-job hours. Bad input raises ValidationError on `user`, `document`, `copies`, `paper_size` or
    `submission_key`, and nothing is written.
    """
    check = Checker()
    if submission_key is not None:
        if (
            not isinstance(submission_key, str)
            or not submission_key.strip()
            or len(submission_key) > MAX_SUBMISSION_KEY
        ):
            check.fail("submission_key", _("At most %(max)d characters.", max=MAX_SUBMISSION_KEY))
        else:
            stored = _stored(submission_key)
            if stored is not None:
                return stored, False
    user = map_cups_user(print_server, cups_user)
    if user is None:
        check.fail(
            "user",
            _(
                "No print user of %(customer)s is called %(user)s.",
                customer=print_server.customer.name,
                user=(cups_user or "").strip() or "-",
            ),
        )
    elif not user.active:
        check.fail("user", _("The print user %(user)s is disabled.", user=user.username))
    copies_value = _copies(check, copies)
    size = _paper_size(check, paper_size)
    data = document if isinstance(document, bytes | bytearray | memoryview) else b""
    data = bytes(data)
    limit = max_document_bytes()
    pages = None
    if len(data) > limit:
        check.fail("document", too_large_message(limit))
    else:
        try:
            pages = count_pdf_pages(data)
        except ValidationError as error:
            for field, message in error.errors.items():
                check.fail(field, message)
    check.raise_if_any()
    now = now or utcnow()
    customer_id = print_server.customer_id
    color, duplex = bool(color), bool(duplex)
    hours = settings_of(customer_id).held_job_hours or 4
    job = HeldJob(
        customer_id=customer_id,
        user_id=user.id,
        print_server_id=print_server.id,
        submission_key=submission_key,
        title=document_name_kept(customer_id, title) if title else None,
        pages=pages,
        copies=copies_value,
        color=color,
        duplex=duplex,
        paper_size=size,
        estimated_cost=estimated_cost(customer_id, pages, copies_value, color, duplex, size, clock.local_date(now)),
        submitted_at=now,
        expires_at=now + dt.timedelta(hours=hours),
        state="held",
        document_size=len(data),
        document_digest=hashlib.sha256(data).hexdigest(),
        mime_type=PDF_MIME_TYPE,
    )
    try:
        with db.session.begin_nested():
            db.session.add(job)
            db.session.flush()
            db.session.add(HeldDocument(held_job_id=job.id, content=seal_bytes(data, DOCUMENT_PURPOSE)))
            db.session.flush()
    except IntegrityError:
        # The same submission stored meanwhile by another request (the unique key waited for it).
        stored = _stored(submission_key) if submission_key else None
        if stored is None:
            raise
        return stored, False
    return job, True


# --- list and release --------------------------------------------------------------------------------------------


def _aware(value: dt.datetime) -> dt.datetime:
    return clock.as_utc(value)


def releasable_jobs(user: PrintUser, device_id: int, now: dt.datetime | None = None) -> list[HeldJob]:
    """The held, unexpired jobs `user` may release at the device: their own and those of the users who delegated to
    them, when the device stands at their customer now; oldest first."""
    now = now or utcnow()
    if customer_of_device(device_id, now) != user.customer_id:
        return []
    return list(
        db.session.scalars(
            sa.select(HeldJob)
            .where(
                HeldJob.customer_id == user.customer_id,
                HeldJob.user_id.in_(_owners_for(user)),
                HeldJob.state == "held",
                HeldJob.expires_at > now,
            )
            .order_by(HeldJob.submitted_at, HeldJob.id)
        )
    )


@dataclass
class Release:
    """A held job about to print: the job and its plain document, with the document's SHA-256 hex and size."""

    job: HeldJob
    document: bytes
    digest: str
    size: int


def _not_found(job_id: Any) -> ValidationError:
    return ValidationError({"job": _("There is no held job %(id)s for you.", id=job_id)})


def _releasable(job_id: int, user: PrintUser, now: dt.datetime) -> HeldJob:
    """The job, if `user` may release it now; ValidationError on `job` otherwise."""
    job = db.session.get(HeldJob, job_id) if isinstance(job_id, int) and not isinstance(job_id, bool) else None
    if job is None or job.customer_id != user.customer_id:
        raise _not_found(job_id)
    if not may_release_for(user, job.user_id):
        fail("job", _("This job belongs to another user."))
    if job.state == "expired" or (job.state == "held" and _aware(job.expires_at) <= now):
        fail("job", _("This job has expired."))
    if job.state != "held":
        fail("job", _("This job is no longer held: it was released or deleted."))
    return job


def _quota_check(job: HeldJob, device_id: int) -> None:
    """The job's owner pays: AUTHORIZE's rules (privileges, then balance + overdraft) on the job's sides."""
    sides = job.pages * job.copies
    answer = authorize(
        {
            "device_id": device_id,
            "user_id": job.user_id,
            "function": "print",
            "sides_bw": 0 if job.color else sides,
            "sides_color": sides if job.color else 0,
            "paper_size": job.paper_size,
            "duplex": job.duplex,
        }
    )
    if answer["allowed"]:
        return
    field = "quota" if answer.get("reason") == "quota_exceeded" else "job"
    fail(field, answer.get("message") or _("This job may not print."))


def open_release(job_id: int, user: PrintUser, device_id: int, now: dt.datetime | None = None) -> Release:
    """What a device prints when `user` releases the job there: the job and its plain document.

    Refused with ValidationError on `job` (no such job of theirs, another user's not delegated to them, expired,
    no longer held, a device not at their customer now, or privileges that forbid it) or `quota` (the paying
    balance plus overdraft cannot pay its estimated cost: AUTHORIZE's rules, at release). Changes nothing.
    """
    now = now or utcnow()
    job = _releasable(job_id, user, now)
    if customer_of_device(device_id, now) != job.customer_id:
        fail("job", _("This device is not at your company: release the job at one of its devices."))
    _quota_check(job, device_id)
    document = document_of(job)
    return Release(job=job, document=document, digest=job.document_digest, size=job.document_size)


def mark_released(job_id: int, device_id: int, user: PrintUser, transaction: Transaction) -> HeldJob:
    """The job printed at the device as `transaction`: released (by `user`, a delegate when not the owner), its
    document deleted. The same transaction again changes nothing; ValidationError on `job` otherwise."""
    job = db.session.get(HeldJob, job_id) if isinstance(job_id, int) and not isinstance(job_id, bool) else None
    if job is None or job.customer_id != user.customer_id:
        raise _not_found(job_id)
    if job.state == "released" and job.transaction_id == transaction.id:
        return job
    if job.state != "held":
        fail("job", _("This job is no longer held: it was released or deleted."))
    if not may_release_for(user, job.user_id):
        fail("job", _("This job belongs to another user."))
    if transaction.user_id != job.user_id:
        # RELEASE checked the owner's quota: the print is the owner's to pay, whoever released it.
        fail("job", _("Report the print of a held job under its owner, who pays for it."))
    job.state = "released"
    job.ended_at = utcnow()
    job.released_device_id = device_id
    job.released_by_id = user.id if user.id != job.user_id else None
    job.transaction_id = transaction.id
    _drop_document(job.id)
    db.session.flush()
    return job


def delete_held_job(job_id: int, user: PrintUser | None, *, staff: bool = False) -> HeldJob:
    """The owner (or staff, `staff=True`) deletes a held job: state deleted, its document removed; ValidationError
    on `job` for a job that is not theirs or no longer held."""
    job = db.session.get(HeldJob, job_id) if isinstance(job_id, int) and not isinstance(job_id, bool) else None
    if job is None or (not staff and (user is None or job.customer_id != user.customer_id)):
        raise _not_found(job_id)
    if not staff and job.user_id != user.id:
        fail("job", _("This job belongs to another user."))
    if job.state != "held":
        fail("job", _("This job is no longer held: it was released or deleted."))
    job.state = "deleted"
    job.ended_at = utcnow()
    _drop_document(job.id)
    db.session.flush()
    return job


def expire_held_jobs(now: dt.datetime | None = None) -> int:
    """Every held job past its expiry becomes expired and its document is deleted; how many."""
    now = now or utcnow()
    expired = db.session.execute(
        sa.update(HeldJob)
        .where(HeldJob.state == "held", HeldJob.expires_at <= now)
        .values(state="expired", ended_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    # Whatever job has ended keeps no document (this also removes any left behind).
    db.session.execute(
        sa.delete(HeldDocument).where(
            HeldDocument.held_job_id.in_(sa.select(HeldJob.id).where(HeldJob.state != "held"))
        )
    )
    db.session.expire_all()
    return expired
