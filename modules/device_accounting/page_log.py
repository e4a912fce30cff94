"""CUPS page_log import: each printed job a `print` transaction at its queue's device, stored once, resumed after
rotation; a line that cannot be used is reported with its number and skipped (docs/print-server.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from core.db import db
from core.validation import ValidationError
from modules.device_accounting.held_jobs import map_cups_user
from modules.device_accounting.models import (
    HeldJob,
    PageLogCursor,
    PageLogJob,
    PrintServer,
    PrintServerPrinter,
)
from modules.device_accounting.operations import MAX_SIDES, record_transaction
from modules.device_accounting.print_servers import page_log_allowed, page_log_refusal

log = logging.getLogger(__name__)

# The line to put in cupsd.conf (docs/print-server.md). CUPS 2.2 and later write one line per job when it has
# been processed: `%P` is the word "total" and `%C` the job's impressions (pages times copies, counted by CUPS's
# filters); an attribute the job does not have is written "-". The title comes last: it may hold spaces.
PAGE_LOG_FORMAT = "%p %j %u %T %P %C %{sides} %{media} %{print-color-mode} %{job-uuid} %{job-name}"
CUPSD_CONF_LINE = f"PageLogFormat {PAGE_LOG_FORMAT}"

# Page-log jobs are stored at their queue's device under device_seq = PAGE_LOG_SEQ_BASE + the PageLogJob's id: a
# range no device's own numbering reaches (operations.MAX_DEVICE_SEQ is 2**62 - 1, the collector protocol caps
# device_seq at 2**53 - 1). A number taken already is refused, never shared.
PAGE_LOG_SEQ_BASE = 2**62
# CUPS writes a line for every attempt at a job: a job retried within this window is the same job.
RETRY_WINDOW = dt.timedelta(days=7)
# The files a rotated log goes to: CUPS's own (MaxLogSize) and logrotate's (Debian's cups-daemon, delaycompress).
ROTATED_SUFFIXES = (".O", ".1", ".0")
MAX_LINE = 8192

_LINE = re.compile(
    r"(?P<queue>\S+) (?P<job>\d+) (?P<user>.+?) \[(?P<time>[^\]]+)\] (?P<page>\S+) (?P<count>\S+) "
    r"(?P<sides>\S+) (?P<media>\S+) (?P<color>\S+) (?P<uuid>\S+)(?: (?P<title>.*))?"
)
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_TIME = re.compile(r"(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})")
_PAPER = {
    "a4": "A4",
    "iso_a4_210x297mm": "A4",
    "a3": "A3",
    "iso_a3_297x420mm": "A3",
    "a5": "A5",
    "iso_a5_148x210mm": "A5",
    "letter": "letter",
    "na_letter_8.5x11in": "letter",
}
_MONO = {"monochrome", "bi-level", "process-monochrome", "process-bi-level"}


class PageLogLineError(ValueError):
    """A line that is not in the documented format; the message says what is wrong, in the user's language."""


@dataclass(frozen=True)
class PageLogLine:
    """One job of the page log: `pages` is what CUPS counted, copies included."""

    queue: str
    cups_job_id: int
    user: str
    job_time: dt.datetime
    pages: int
    duplex: bool
    paper_size: str
    color: bool
    job_uuid: str | None
    title: str | None


@dataclass
class PageLogResult:
    """What an import did: jobs charged, lines seen before, secure-queue jobs (charged at release), and the lines
    skipped as (line number, reason)."""

    imported: int = 0
    repeated: int = 0
    held: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _time(text: str) -> dt.datetime:
    """CUPS's common-log time, `01/Dec/2026:21:30:17 +0000` (English month names whatever the locale)."""
    match = _TIME.fullmatch(text.strip())
    if match is None or match.group(2) not in _MONTHS:
        raise PageLogLineError(_("The time is not in the form [01/Dec/2026:21:30:17 +0000]: %(time)s", time=text))
    day, month, year, hour, minute, second, sign, off_h, off_m = match.groups()
    offset = dt.timedelta(hours=int(off_h), minutes=int(off_m)) * (1 if sign == "+" else -1)
    try:
        moment = dt.datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=dt.timezone(offset)
        )
    except ValueError:
        raise PageLogLineError(_("There is no such time: %(time)s", time=text)) from None
    return moment.astimezone(dt.UTC)


def _paper(media: str) -> str:
    if media == "-":
        return "A4"
    for part in media.split(","):
        name = part.strip().lower().split(".")[0]
        if name in _PAPER:
            return _PAPER[name]
    return "other"


def parse_line(text: str) -> PageLogLine:
    """One line written with PAGE_LOG_FORMAT; PageLogLineError saying what is wrong otherwise."""
    text = text.rstrip("\r\n")
    match = _LINE.fullmatch(text)
    if match is None:
        raise PageLogLineError(_("This line is not in the format of docs/print-server.md (PageLogFormat)."))
    if match["page"] != "total":
        raise PageLogLineError(
            _(
                'Only the lines of CUPS 2.2 and later ("total" and the page count) are read; this one says %(page)s.',
                page=match["page"][:20],
            )
        )
    if not match["count"].isdigit() or int(match["count"]) > MAX_SIDES:
        raise PageLogLineError(_("The page count is not a whole number: %(count)s", count=match["count"][:20]))
    job_id = int(match["job"])
    if not 0 < job_id < 2**31:
        raise PageLogLineError(_("The CUPS job number is out of range: %(job)s", job=match["job"][:20]))
    user = match["user"].strip()
    if len(user) > 100 or len(match["queue"]) > 127:
        raise PageLogLineError(_("The queue or user name is too long."))
    title = match["title"]
    return PageLogLine(
        queue=match["queue"],
        cups_job_id=job_id,
        user=user,
        job_time=_time(match["time"]),
        pages=int(match["count"]),
        duplex=match["sides"].lower().startswith("two-sided"),
        paper_size=_paper(match["media"]),
        color=match["color"] != "-" and match["color"].lower() not in _MONO,
        job_uuid=None if match["uuid"] == "-" else match["uuid"],
        title=None if title in (None, "", "-") else title[:500],
    )


# --- reading the file --------------------------------------------------------------------------------------------


def _digest(first_line: bytes) -> str:
    return hashlib.sha256(first_line).hexdigest()


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.readline(MAX_LINE)


def _complete_lines(path: Path, offset: int):
    """(line number, text, end offset) of each complete line from `offset` on; a last line still being written (no
    newline yet) is left for the next import. Line numbers count from the file's start."""
    with path.open("rb") as handle:
        number = 0
        if offset:
            prefix = handle.read(offset)
            number = prefix.count(b"\n")
        position = offset
        for raw in handle:
            if not raw.endswith(b"\n"):
                return
            number += 1
            position += len(raw)
            yield number, raw.decode("utf-8", "replace"), position


def _rotated_copy(path: Path, cursor: PageLogCursor) -> Path | None:
    """The file the log was rotated to, still holding the lines after the cursor: the same inode (a rename), or the
    same first line and at least as long (a copy)."""
    for suffix in ROTATED_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        try:
            stat = candidate.stat()
        except OSError:
            continue
        if stat.st_size < cursor.offset:
            continue
        if (cursor.inode is not None and stat.st_ino == cursor.inode) or _digest(
            _head(candidate)
        ) == cursor.head_digest:
            return candidate
    return None


def _cursor(server: PrintServer, key: str) -> PageLogCursor:
    query = sa.select(PageLogCursor).where(PageLogCursor.print_server_id == server.id, PageLogCursor.path == key)
    cursor = db.session.scalars(query.with_for_update()).first()
    if cursor is None:
        cursor = PageLogCursor(print_server_id=server.id, path=key, inode=None, offset=0, head_digest=_digest(b""))
        db.session.add(cursor)
        db.session.flush()
    return cursor


def import_page_log(server: PrintServer, path: str | os.PathLike, *, from_start: bool = False) -> PageLogResult:
    """Import the lines of `path` not read before for `server`; the caller commits.

    The cursor (per server and path) remembers how far the file was read: a file rotated since (renamed or copied
    to page_log.O/.1/.0, a new one started) is first read to its end, then the new file from its start. Every line
    is stored once (PageLogJob), so reading lines again (`from_start`, a lost cursor) adds nothing. OSError when the
    file cannot be read.
    """
    file = Path(path)
    key = str(file.resolve())[:500]
    stat = file.stat()
    head = _digest(_head(file))
    cursor = _cursor(server, key)
    result = PageLogResult()
    same_file = cursor.inode == stat.st_ino and cursor.head_digest == head and cursor.offset <= stat.st_size
    start = cursor.offset if same_file and not from_start else 0
    if not same_file and not from_start and cursor.inode is not None:
        rotated = _rotated_copy(file, cursor)
        if rotated is not None:
            _import_lines(server, rotated, cursor.offset, result, f"{rotated.name}: ")
    cursor.offset = _import_lines(server, file, start, result)
    cursor.inode, cursor.head_digest = stat.st_ino, head
    db.session.flush()
    return result


def _import_lines(server: PrintServer, file: Path, offset: int, result: PageLogResult, prefix: str = "") -> int:
    """Import each complete line of `file` from `offset`; the offset after the last one."""
    end = offset
    for number, text, line_end in _complete_lines(file, offset):
        end = line_end
        if not text.strip():
            continue
        message = _import_line(server, text, result)
        if message is not None:
            result.errors.append((number, prefix + message))
            log.warning("page log %s line %d: %s", file, number, message)
    return end


# --- one line ----------------------------------------------------------------------------------------------------


def _is_held(server: PrintServer, line: PageLogLine) -> bool:
    """A job of the secure queue: copydesk-hold submitted it under the key "<job id>:<job-uuid>" (held_jobs stores
    "<print server id>:<key>"), and it is charged when released."""
    prefix = f"{server.id}:{line.cups_job_id}"
    key = HeldJob.submission_key
    match = key == f"{prefix}:{line.job_uuid}" if line.job_uuid else sa.or_(key == prefix, key.startswith(f"{prefix}:"))
    found = db.session.scalar(sa.select(HeldJob.id).where(HeldJob.print_server_id == server.id, match).limit(1))
    return found is not None


def _seen(server: PrintServer, line: PageLogLine) -> bool:
    """The same line read before, or another attempt at the same CUPS job (CUPS logs each retry)."""
    return (
        db.session.scalar(
            sa.select(PageLogJob.id)
            .where(
                PageLogJob.print_server_id == server.id,
                PageLogJob.queue == line.queue,
                PageLogJob.cups_job_id == line.cups_job_id,
                PageLogJob.job_time.between(line.job_time - RETRY_WINDOW, line.job_time + RETRY_WINDOW),
            )
            .limit(1)
        )
        is not None
    )


def _import_line(server: PrintServer, text: str, result: PageLogResult) -> str | None:
    """Store one line's job; the reason in words when it is skipped (nothing of it is written then)."""
    if len(text) > MAX_LINE:
        return _("The line is longer than %(max)d characters.", max=MAX_LINE)
    try:
        line = parse_line(text)
    except PageLogLineError as error:
        return str(error)
    if _is_held(server, line):
        result.held += 1
        return None
    if _seen(server, line):
        result.repeated += 1
        return None
    printer = db.session.scalar(
        sa.select(PrintServerPrinter).where(
            PrintServerPrinter.print_server_id == server.id, PrintServerPrinter.queue == line.queue
        )
    )
    if printer is None:
        return _(
            "The queue %(queue)s is not linked to a device of print server %(server)s.",
            queue=line.queue,
            server=server.name,
        )
    user = map_cups_user(server, line.user)
    if user is None:
        return _("The CUPS user %(user)s is no print user of %(customer)s.", user=line.user, customer=server.customer)
    try:
        with db.session.begin_nested():
            job = PageLogJob(
                print_server_id=server.id,
                queue=line.queue,
                cups_job_id=line.cups_job_id,
                job_time=line.job_time,
                user_name=line.user,
            )
            db.session.add(job)
            db.session.flush()
            tx, created = record_transaction(
                {
                    "device_id": printer.device_id,
                    "device_seq": PAGE_LOG_SEQ_BASE + job.id,
                    "user_id": user.id,
                    "function": "print",
                    "sides_bw": 0 if line.color else line.pages,
                    "sides_color": line.pages if line.color else 0,
                    "paper_size": line.paper_size,
                    "duplex": line.duplex,
                    "status": "done",
                    "document_name": line.title,
                    "started_at": line.job_time,
                    "ended_at": line.job_time,
                }
            )
            if not created:
                raise _SeqTaken(tx.device_seq)
            job.transaction_id = tx.id
            db.session.flush()
    except IntegrityError:
        # The same line stored meanwhile by another import.
        result.repeated += 1
        return None
    except ValidationError as error:
        return error.messages()
    except _SeqTaken as taken:
        return _("The device already has a job numbered %(number)s.", number=taken.number)
    result.imported += 1
    return None


class _SeqTaken(Exception):
    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


# --- the scheduled import ----------------------------------------------------------------------------------------


def import_configured_logs() -> list[tuple[PrintServer, PageLogResult]]:
    """Import the page log of every active print server that names one (page_log_path), committing after each
    server (the scheduled job `jobs.import_page_logs`). A file that cannot be read is line 0 of its result."""
    done = []
    servers = db.session.scalars(
        sa.select(PrintServer)
        .where(PrintServer.active.is_(True), PrintServer.page_log_path.is_not(None))
        .order_by(PrintServer.id)
    ).all()
    for server in servers:
        try:
            if page_log_allowed(server.page_log_path):
                result = import_page_log(server, server.page_log_path)
            else:
                result = PageLogResult(errors=[(0, page_log_refusal())])
        except OSError as error:
            result = PageLogResult(
                errors=[(0, _("The page log cannot be read: %(error)s", error=error.strerror or error))]
            )
            log.warning("page log of print server %s: %s", server.id, error)
        db.session.commit()
        done.append((server, result))
    return done
