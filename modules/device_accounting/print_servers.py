"""Print servers: a customer's CUPS servers, their tokens (shown once), and their CUPS user and queue mappings."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from pathlib import Path

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from core import clock
from core.db import db, utcnow
from core.validation import Checker, fail
from modules.device_accounting.models import PrintServer, PrintServerPrinter, PrintServerUser, PrintUser
from modules.device_accounting.operations import customer_of_device
from modules.rentals.models import Device
from modules.rentals.validation import check_customer

# A print server token never looks like a staff API token (`cdk_`), so neither is ever taken for the other.
TOKEN_PREFIX = "cdps_"
HINT_LENGTH = 8
# last_seen_at is written at most once in this interval.
SEEN_INTERVAL = dt.timedelta(minutes=1)
NAME_LENGTH = 100
CUPS_USER_LENGTH = 100
QUEUE_LENGTH = 127
PATH_LENGTH = 500


def token_digest(token: str) -> str:
    """The stored form of a print server token: SHA-256 hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, token_digest(token), token[-4:]


def _text(check: Checker, field: str, value: object, length: int, required: bool = True) -> str | None:
    text = "" if value is None else str(value).strip()
    if not text:
        if required:
            check.fail(field, _("This field is required."))
        return None
    if len(text) > length or any(ord(char) < 32 or ord(char) == 127 for char in text):
        check.fail(field, _("At most %(max)d characters, without control characters.", max=length))
        return None
    return text


def _name_taken(customer_id: int, name: str, own_id: int | None) -> bool:
    query = sa.select(PrintServer.id).where(
        PrintServer.customer_id == customer_id, sa.func.lower(PrintServer.name) == name.lower()
    )
    if own_id is not None:
        query = query.where(PrintServer.id != own_id)
    return db.session.scalar(query) is not None


def page_log_allowed(path: str) -> bool:
    """Whether the back office may have `path` read as a page log: a file inside COPYDESK_PAGE_LOG_DIRS, so a
    staff member cannot make the server read (and quote) any other file it can open."""
    resolved = Path(path).resolve()
    folders = [Path(folder).resolve() for folder in current_app.config.get("COPYDESK_PAGE_LOG_DIRS") or ()]
    return Path(path).is_absolute() and any(resolved.is_relative_to(folder) for folder in folders)


def page_log_refusal() -> str:
    """Why a page log path was refused, in the user's language."""
    folders = ", ".join(current_app.config.get("COPYDESK_PAGE_LOG_DIRS") or ()) or "-"
    return _("Page logs are read from these folders only: %(folders)s (COPYDESK_PAGE_LOG_DIRS).", folders=folders)


def _page_log_path(check: Checker, value: str | None) -> str | None:
    path = _text(check, "page_log_path", value, PATH_LENGTH, required=False)
    if path and not page_log_allowed(path):
        check.fail("page_log_path", page_log_refusal())
        return None
    return path


def create_print_server(customer_id: int, name: str, page_log_path: str | None = None) -> tuple[PrintServer, str]:
    """A new print server of the customer and its token, which is stored only as a digest and not shown again.
    ValidationError on `customer_id`, `name` (empty, too long, taken) or `page_log_path`."""
    check = Checker()
    customer = check_customer(check, "customer_id", customer_id, required=True)
    clean_name = _text(check, "name", name, NAME_LENGTH)
    path = _page_log_path(check, page_log_path)
    if customer is not None and clean_name and _name_taken(customer.id, clean_name, None):
        check.fail(
            "name",
            _("%(customer)s already has a print server called %(name)s.", customer=customer.name, name=clean_name),
        )
    check.raise_if_any()
    token, digest, hint = _new_token()
    server = PrintServer(
        customer_id=customer.id, name=clean_name, page_log_path=path, token_digest=digest, token_hint=hint, active=True
    )
    db.session.add(server)
    db.session.flush()
    return server, token


def update_print_server(server: PrintServer, data: dict) -> PrintServer:
    """Change `name`, `page_log_path` or `active` (the keys `data` holds); ValidationError naming the field."""
    check = Checker()
    values = {}
    if "name" in data:
        values["name"] = _text(check, "name", data["name"], NAME_LENGTH)
        if values["name"] and _name_taken(server.customer_id, values["name"], server.id):
            check.fail("name", _("This customer already has a print server called %(name)s.", name=values["name"]))
    if "page_log_path" in data:
        values["page_log_path"] = _page_log_path(check, data["page_log_path"])
    if "active" in data:
        if not isinstance(data["active"], bool):
            check.fail("active", _("Must be true or false."))
        else:
            values["active"] = data["active"]
    check.raise_if_any()
    for key, value in values.items():
        setattr(server, key, value)
    db.session.flush()
    return server


def rotate_token(server: PrintServer) -> str:
    """A new token for the print server (the old one stops working at once); shown once."""
    token, digest, hint = _new_token()
    server.token_digest, server.token_hint = digest, hint
    db.session.flush()
    return token


def print_server_by_token(token: str | None) -> PrintServer | None:
    """The active print server this token belongs to, else None; notes when it was seen, at most once a minute."""
    if not token or not token.startswith(TOKEN_PREFIX):
        return None
    server = db.session.scalars(sa.select(PrintServer).where(PrintServer.token_digest == token_digest(token))).first()
    if server is None or not server.active:
        return None
    now = utcnow()
    if server.last_seen_at is None or now - clock.as_utc(server.last_seen_at) >= SEEN_INTERVAL:
        server.last_seen_at = now
        db.session.commit()
    return server


def map_user(server: PrintServer, cups_user: str, print_user_id: int) -> PrintServerUser:
    """The CUPS user name `cups_user` stands for this print user of the server's customer (replacing any earlier
    mapping of that name); ValidationError on `cups_user` or `print_user_id`."""
    check = Checker()
    name = _text(check, "cups_user", cups_user, CUPS_USER_LENGTH)
    user = db.session.get(PrintUser, print_user_id) if isinstance(print_user_id, int) else None
    if user is None or user.customer_id != server.customer_id:
        check.fail("print_user_id", _("Choose a print user of %(customer)s.", customer=server.customer.name))
    check.raise_if_any()
    row = db.session.scalars(
        sa.select(PrintServerUser).where(
            PrintServerUser.print_server_id == server.id, PrintServerUser.cups_user == name
        )
    ).first()
    if row is None:
        row = PrintServerUser(print_server_id=server.id, cups_user=name)
        db.session.add(row)
    row.print_user_id = user.id
    db.session.flush()
    return row


def unmap_user(server: PrintServer, cups_user: str) -> None:
    """Forget the mapping of `cups_user` (it maps by username again); ValidationError on `cups_user` if none."""
    row = db.session.scalars(
        sa.select(PrintServerUser).where(
            PrintServerUser.print_server_id == server.id, PrintServerUser.cups_user == (cups_user or "").strip()
        )
    ).first()
    if row is None:
        fail("cups_user", _("%(user)s is not mapped on this print server.", user=cups_user))
    db.session.delete(row)
    db.session.flush()


def map_printer(server: PrintServer, queue: str, device_id: int) -> PrintServerPrinter:
    """The CUPS queue `queue` prints on this device (its page-log jobs are charged there); ValidationError on `queue`
    or `device`."""
    check = Checker()
    name = _text(check, "queue", queue, QUEUE_LENGTH)
    if name and any(char.isspace() or char in "/#" for char in name):
        check.fail("queue", _("A CUPS queue name has no spaces, slashes or #."))
        name = None
    device = (
        db.session.get(Device, device_id) if isinstance(device_id, int) and not isinstance(device_id, bool) else None
    )
    if device is None:
        check.fail("device", _("There is no such device."))
    elif customer_of_device(device.id, utcnow()) != server.customer_id:
        check.fail(
            "device",
            _("%(serial)s is not installed at %(customer)s.", serial=device.serial, customer=server.customer.name),
        )
    check.raise_if_any()
    row = db.session.scalars(
        sa.select(PrintServerPrinter).where(
            PrintServerPrinter.print_server_id == server.id, PrintServerPrinter.queue == name
        )
    ).first()
    if row is None:
        row = PrintServerPrinter(print_server_id=server.id, queue=name)
        db.session.add(row)
    row.device_id = device.id
    db.session.flush()
    return row


def unmap_printer(server: PrintServer, queue: str) -> None:
    """Forget the device of `queue`; ValidationError on `queue` if it has none."""
    row = db.session.scalars(
        sa.select(PrintServerPrinter).where(
            PrintServerPrinter.print_server_id == server.id, PrintServerPrinter.queue == (queue or "").strip()
        )
    ).first()
    if row is None:
        fail("queue", _("The queue %(queue)s has no device on this print server.", queue=queue))
    db.session.delete(row)
    db.session.flush()


def device_of_queue(server: PrintServer, queue: str) -> int | None:
    """The device a queue of the print server prints on, or None."""
    return db.session.scalar(
        sa.select(PrintServerPrinter.device_id).where(
            PrintServerPrinter.print_server_id == server.id, PrintServerPrinter.queue == queue
        )
    )
