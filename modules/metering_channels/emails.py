"""Counter report emails: each message once (by its Message-ID), read by its make's profile, matched to a device by
serial and recorded through metering's one validation path; what cannot be matched waits in the unmatched queue."""

from __future__ import annotations

import datetime as dt
import email
import hashlib
import logging
import re
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql, sqlite

from core import audit, labels
from core.db import db, utcnow
from core.validation import ValidationError, fail
from modules.metering.history import meter_label
from modules.metering.models import SUPPLY_COLOURS, Reading
from modules.metering.readings import record_reading
from modules.metering_channels import email_profiles
from modules.metering_channels.models import CounterEmail, Mailbox
from modules.rentals.devices import normalize_serial
from modules.rentals.models import Device

log = logging.getLogger(__name__)

# States whose email became a reading; the queue's wait for staff (who assign or discard them).
READ_STATES = ("read", "pending_review", "assigned")
QUEUE_STATES = ("unmatched", "refused")
MAX_RAW = 25 * 1024 * 1024  # a larger message is stored without its body, unmatched, and read by nobody


def message_key(msg: Message | None, raw: bytes) -> str:
    """The Message-ID (without its angle brackets), or the SHA-256 of the raw message when it has none."""
    try:
        ident = str(msg.get("Message-ID", "") if msg is not None else "").strip().strip("<>").strip()
    except Exception:  # a header the parser cannot even read
        ident = ""
    if ident and len(ident) <= 255:
        return ident
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _header(msg: Message | None, name: str, size: int) -> str:
    if msg is None:
        return ""
    try:
        value = str(make_header(decode_header(str(msg.get(name, "")))))
    except Exception:  # undecodable words: keep the header as it came
        value = str(msg.get(name, "") or "")
    return " ".join(value.split())[:size]


def _parse(raw: bytes) -> Message | None:
    try:
        return email.message_from_bytes(raw, policy=policy.compat32)
    except Exception:
        return None


def import_message(
    raw: bytes,
    *,
    mailbox_id: int | None = None,
    uidvalidity: int | None = None,
    uid: int | None = None,
    user_id: int | None = None,
) -> CounterEmail:
    """Store a received counter report once and turn it into a reading when it can; never raises on bad input.

    The same message again (same Message-ID, or same bytes without one) returns the stored email untouched. The
    caller commits.
    """
    return receive(raw, mailbox_id=mailbox_id, uidvalidity=uidvalidity, uid=uid, user_id=user_id)[0]


def receive(
    raw: bytes,
    *,
    mailbox_id: int | None = None,
    uidvalidity: int | None = None,
    uid: int | None = None,
    user_id: int | None = None,
    size: int | None = None,
) -> tuple[CounterEmail, bool]:
    """`import_message`, also saying whether the email is new (False: it had been received before).

    `size`: the whole message's size when `raw` is only its header (the IMAP poll does not fetch a message over
    MAX_RAW). A message over MAX_RAW is stored with its header only, unmatched, as too large to read.
    """
    raw = bytes(raw or b"")
    size = max(size or 0, len(raw))
    too_large = size > MAX_RAW
    if too_large:
        raw = _header_bytes(raw)
    msg = _parse(raw)
    key = message_key(msg, raw)
    existing = db.session.scalar(sa.select(CounterEmail).where(CounterEmail.message_key == key))
    if existing is not None:
        return existing, False
    row = {
        "mailbox_id": mailbox_id,
        "message_key": key,
        "uidvalidity": uidvalidity,
        "uid": uid,
        "received_at": utcnow(),
        "sender": parseaddr(_header(msg, "From", 400))[1][:254],
        "subject": _header(msg, "Subject", 300),
        "raw": raw,
        "state": "unmatched",
    }
    # ON CONFLICT DO NOTHING: two polls of one mailbox at once store the email once; the second finds the first's.
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[db.session.get_bind().dialect.name]
    email_id = db.session.execute(
        insert(CounterEmail)
        .values(**row)
        .on_conflict_do_nothing(index_elements=["message_key"])
        .returning(CounterEmail.id)
    ).scalar()
    if email_id is None:
        return db.session.scalars(sa.select(CounterEmail).where(CounterEmail.message_key == key)).one(), False
    counter_email = db.session.get(CounterEmail, email_id)
    if too_large:
        _unmatched(
            counter_email,
            _(
                "The message is too large to read (%(size)s MB; at most %(max)s MB): only its header was kept.",
                size=labels.number(round(size / 1024 / 1024, 1)),
                max=labels.number(MAX_RAW // (1024 * 1024)),
            ),
        )
    else:
        try:
            with db.session.begin_nested():  # whatever _read wrote is undone when it breaks
                _read(counter_email, msg, user_id)
        except Exception:  # a message no profile foresaw: it waits for staff, the poll goes on
            log.exception("counter report email %s could not be read", email_id)
            _unmatched(counter_email, _("The message could not be read: see it in the queue."))
    db.session.flush()
    return counter_email, True


def _header_bytes(raw: bytes) -> bytes:
    """The header of a raw message (up to the first empty line), at most 64 KB."""
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    return raw[: min(end, 64 * 1024)] + b"\r\n\r\n"


def _read(counter_email: CounterEmail, msg: Message | None, user_id: int | None) -> None:
    """Parse the email, find its device by serial and record the reading; a failure is the email's state."""
    if msg is None or not msg.keys():
        return _unmatched(counter_email, _("The message could not be read as an email."))
    profile = email_profiles.detect(msg)
    if profile is None:
        return _unmatched(counter_email, _("Not a counter report of a known make (%(makes)s).", makes=_makes()))
    report = profile.parse(msg)
    counter_email.profile = profile.name
    counter_email.serial = normalize_serial(report.serial)[:60] if report.serial else None
    counter_email.counters = report.counters or None
    counter_email.supplies = report.supplies or None
    # Stored in UTC: SQLite keeps no offset, so a local time would read back as UTC.
    counter_email.taken_at = report.taken_at.astimezone(dt.UTC) if report.taken_at else None
    if not counter_email.serial:
        return _unmatched(counter_email, _("The report gives no serial number."))
    if not report.counters:
        return _unmatched(counter_email, _("The report gives no counter."))
    mailbox = db.session.get(Mailbox, counter_email.mailbox_id) if counter_email.mailbox_id else None
    if mailbox is not None and not sender_allowed(mailbox.allowed_senders, counter_email.sender):
        return _unmatched(
            counter_email,
            _(
                "%(sender)s is not among the senders mailbox %(mailbox)s accepts counter reports from.",
                sender=counter_email.sender or _("(no sender)"),
                mailbox=mailbox.name,
            ),
        )
    device, reason = find_device(counter_email.serial, profile.make)
    if device is None:
        return _unmatched(counter_email, reason)
    _record(counter_email, device, user_id)


def allowed_senders(text: str | None) -> list[str]:
    """A mailbox's allowed senders as entries: addresses (a@b.it) and domains (b.it, written also @b.it)."""
    return [
        entry.lower().lstrip("@") if entry.startswith("@") else entry.lower()
        for entry in re.split(r"[\s,;]+", text or "")
        if entry
    ]


def sender_allowed(text: str | None, sender: str) -> bool:
    """Whether `sender` is an allowed sender (an empty list allows anyone)."""
    entries = allowed_senders(text)
    if not entries:
        return True
    sender = (sender or "").lower()
    domain = sender.rpartition("@")[2]
    return bool(sender) and any(sender == entry if "@" in entry else domain == entry for entry in entries)


def _makes() -> str:
    return ", ".join(profile.make for profile in email_profiles.PROFILES)


def _unmatched(counter_email: CounterEmail, reason: str) -> None:
    counter_email.state = "unmatched"
    counter_email.reason = reason


def find_device(serial: str, make: str | None) -> tuple[Device | None, str]:
    """The device with this serial (of this make when several makes share it), or None and why in plain words."""
    devices = db.session.scalars(sa.select(Device).where(Device.serial == serial).order_by(Device.id)).all()
    if len(devices) > 1 and make:
        same_make = [d for d in devices if d.manufacturer.name.lower() == make.lower()]
        devices = same_make or devices
    if not devices:
        return None, _("No device has serial number %(serial)s.", serial=serial or "-")
    if len(devices) > 1:
        return None, _("Several devices have serial number %(serial)s.", serial=serial)
    return devices[0], ""


def profile_make(counter_email: CounterEmail) -> str | None:
    profile = email_profiles.by_name(counter_email.profile)
    return profile.make if profile else None


def _meters(counter_email: CounterEmail, device: Device) -> dict[str, int]:
    profile = email_profiles.by_name(counter_email.profile)
    counters = {str(k): v for k, v in (counter_email.counters or {}).items() if isinstance(v, int)}
    return profile.meters(counters, device.model.meter_codes) if profile else {}


def _reading(counter_email: CounterEmail, device: Device, user_id: int | None) -> Reading:
    """The email's counters and toner levels as `device`'s reading, through metering's one validation path.

    Raises ValidationError (nothing written) when none of the counters is a meter of the device or metering refuses.
    """
    counters = _meters(counter_email, device)
    if not counters:
        fail(
            "device_id",
            _(
                "None of the report's counters is a meter of device %(serial)s (it has %(meters)s).",
                serial=device.serial,
                meters=", ".join(meter_label(code) for code in device.model.meter_codes),
            ),
        )
    taken_at = counter_email.taken_at or counter_email.received_at
    colours = SUPPLY_COLOURS if device.model.color else ("black",)
    supplies = {
        colour: value
        for colour, value in (counter_email.supplies or {}).items()
        if colour in colours and isinstance(value, int)
    }
    recorded = record_reading(device.id, taken_at, counters, supplies or None, source="email", entered_by=user_id)
    reading = recorded.reading
    counter_email.device_id = device.id
    counter_email.reading_id = reading.id
    counter_email.reason = reading.reason if reading.status == "pending_review" else None
    return reading


def _record(counter_email: CounterEmail, device: Device, user_id: int | None) -> None:
    """Record the email's reading for the device its serial names; a refused one keeps metering's reason."""
    counter_email.device_id = device.id
    try:
        reading = _reading(counter_email, device, user_id)
    except ValidationError as error:
        counter_email.state = "refused"
        counter_email.reason = error.messages()
        return
    counter_email.state = "pending_review" if reading.status == "pending_review" else "read"


def _locked(counter_email: CounterEmail) -> CounterEmail:
    """The email's row again, locked (PostgreSQL) and as stored now: two staff acting on it wait for each other."""
    return db.session.scalars(
        sa.select(CounterEmail)
        .where(CounterEmail.id == counter_email.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def assign(counter_email: CounterEmail, device_id: int | None, user_id: int | None) -> CounterEmail:
    """Staff say which device an unmatched (or refused) email is from: its counters (and toner levels) become that
    device's reading. Raises ValidationError (nothing written) when the email was handled meanwhile, the device is
    wrong or its counters fail metering's checks."""
    counter_email = _locked(counter_email)
    if counter_email.state not in QUEUE_STATES:
        fail("state", _("This email is not waiting to be assigned."))
    device = db.session.get(Device, device_id) if isinstance(device_id, int) else None
    if device is None:
        fail("device_id", _("Choose a device."))
    if not counter_email.counters:
        fail("counters", _("The email gives no counter to record."))
    reading = _reading(counter_email, device, user_id)
    counter_email.state = "assigned"
    counter_email.handled_at = utcnow()
    counter_email.handled_by = user_id
    changes = {"state": "assigned", "device_id": device.id, "reading_id": reading.id}
    audit.record("counter_email.assigned", CounterEmail.__tablename__, counter_email.id, changes)
    db.session.flush()
    return counter_email


def discard(counter_email: CounterEmail, user_id: int | None) -> CounterEmail:
    """Staff drop an email of the queue that is no counter report worth a reading (spam, a test, a duplicate)."""
    counter_email = _locked(counter_email)
    if counter_email.state not in QUEUE_STATES:
        fail("state", _("This email is not waiting to be assigned."))
    counter_email.state = "discarded"
    counter_email.handled_at = utcnow()
    counter_email.handled_by = user_id
    audit.record("counter_email.discarded", CounterEmail.__tablename__, counter_email.id, {"state": "discarded"})
    db.session.flush()
    return counter_email


def queue_query() -> sa.Select:
    """The emails waiting for staff, newest first."""
    return (
        sa.select(CounterEmail)
        .where(CounterEmail.state.in_(QUEUE_STATES))
        .order_by(CounterEmail.received_at.desc(), CounterEmail.id.desc())
    )
