"""Device operations as services: identify a user, authorize a job, record a finished job once, refund it."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import format_decimal
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from core import clock
from core.db import db, utcnow
from core.labels import local_datetime
from core.models import User
from core.validation import Checker, ValidationError
from modules.device_accounting import quotas, rollups, users
from modules.device_accounting.directory import DirectoryUnavailable, authenticate
from modules.device_accounting.models import (
    FUNCTIONS,
    JOB_STATUSES,
    PAPER_SIZES,
    SCAN_FUNCTIONS,
    CostCenter,
    PinAttempt,
    PrintUser,
    Quota,
    Refund,
    Transaction,
)
from modules.device_accounting.pricing import PriceBook, job_cost, price_book, round_cost, unit_prices
from modules.device_accounting.privacy import document_name_kept
from modules.device_accounting.privileges import Privileges, effective_privileges, refusal
from modules.rentals.models import Device, Installation
from modules.rentals.validation import MAX_PAGES

PIN_TRIES = 5
PIN_WINDOW = dt.timedelta(minutes=15)
PIN_LOCK = dt.timedelta(minutes=15)
# Sides of one job: beyond ten million it is a broken counter, not a job.
MAX_SIDES = 10_000_000
# A device's own job numbers (API, collector) stay below 2**62; the numbers above are the print servers' page-log
# jobs (page_log.py), which the same record path stores.
MAX_DEVICE_SEQ = 2**62 - 1
MAX_STORED_SEQ = 2**63 - 1
MIN_YEAR, MAX_YEAR = 1990, 2199
TEXT_LIMIT = 500


class IdentifyRefused(Exception):
    """Nobody is identified: `status` 401 (unknown, wrong, disabled), 423 (PIN locked, `locked_until`) or 503 (the
    customer's directory cannot answer); `reason` is a code for the device, `message` the words for the user."""

    def __init__(self, status: int, reason: str, message: str, locked_until: dt.datetime | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.message, self.locked_until = status, reason, message, locked_until


@dataclass
class Identity:
    """Who is at the device: the user, the cost centers they may charge, privileges and the paying balance."""

    user: PrintUser
    cost_centers: list[CostCenter]
    privileges: Privileges
    balance: Decimal | None
    overdraft: Decimal | None

    def as_dict(self) -> dict[str, Any]:
        user = self.user
        return {
            "user": {
                "id": user.id,
                "username": user.username,
                "full_name": user.full_name,
                "language": user.language,
                "default_cost_center_id": user.default_cost_center_id,
            },
            "cost_centers": [
                {
                    "id": center.id,
                    "name": center.name,
                    "code": center.code,
                    "path": center.path,
                    "shared": center.shared,
                }
                for center in self.cost_centers
            ],
            "privileges": self.privileges.as_dict(),
            "balance": self.balance,
            "overdraft": self.overdraft,
        }


# --- where a device is -------------------------------------------------------------------------------------------


def customer_of_device(device_id: int, on: dt.datetime) -> int | None:
    """The customer where the device was installed at `on` (its rentals installation open that day; on a day it
    moved, the new one); None when it stood at no customer."""
    return customer_on_day(device_id, clock.local_date(on))


def customer_on_day(device_id: int, day: dt.date) -> int | None:
    """customer_of_device for the dealer's day `day`."""
    return db.session.scalar(
        sa.select(Installation.customer_id)
        .where(
            Installation.device_id == device_id,
            Installation.start_date <= day,
            sa.or_(Installation.end_date.is_(None), Installation.end_date >= day),
        )
        .order_by(Installation.start_date.desc(), Installation.id.desc())
        .limit(1)
    )


class Finder:
    """Where the checks of a job find the records it names: here one query each (the session's identity map helps);
    ingest.py's batch finder loads each kind once for a whole batch and gives the same answers."""

    def device_exists(self, device_id: int) -> bool:
        return db.session.get(Device, device_id) is not None

    def customer_of_device(self, device_id: int, on: dt.datetime) -> int | None:
        return customer_of_device(device_id, on)

    def user(self, user_id: int) -> PrintUser | None:
        return db.session.get(PrintUser, user_id)

    def cost_center(self, center_id: int) -> CostCenter | None:
        return db.session.get(CostCenter, center_id)

    def chargeable_ids(self, user: PrintUser, active_only: bool) -> set[int]:
        return {center.id for center in chargeable_cost_centers(user, active_only)}

    def local_date(self, moment: dt.datetime) -> dt.date:
        return clock.local_date(moment)

    def customer_on_day(self, device_id: int, day: dt.date) -> int | None:
        return customer_on_day(device_id, day)

    def default_cost_center(self, user: PrintUser) -> CostCenter | None:
        return user.default_cost_center

    def price_book(self, customer_id: int, function: str, on: dt.date) -> PriceBook:
        return price_book(customer_id, function, on)

    def document_name(self, customer_id: int, value: str) -> str | None:
        return document_name_kept(customer_id, value)


FINDER = Finder()


def _device_customer(
    check: Checker, device_id: Any, on: dt.datetime, fallback: dt.datetime | None = None, finder: Finder = FINDER
):
    """(device id, customer id) for `device_id`, failing `device_id` for an unknown device or one at no customer."""
    number = check.integer("device_id", device_id, 1, MAX_PAGES)
    if number is None:
        return None, None
    if not finder.device_exists(number):
        check.fail("device_id", _("There is no device with id %(id)s.", id=number))
        return None, None
    customer_id = finder.customer_of_device(number, on)
    if customer_id is None and fallback is not None:
        customer_id = finder.customer_of_device(number, fallback)
    if customer_id is None:
        check.fail("device_id", _("This device is not installed at a customer."))
    return number, customer_id


# --- identify ----------------------------------------------------------------------------------------------------


def _refused_unknown() -> IdentifyRefused:
    return IdentifyRefused(401, "unknown_card", _("This card is not known."))


def _refused_disabled() -> IdentifyRefused:
    return IdentifyRefused(401, "user_disabled", _("This user is disabled: ask your administrator."))


def _refused_locked(until: dt.datetime) -> IdentifyRefused:
    return IdentifyRefused(
        423,
        "pin_locked",
        _("Too many wrong PINs: PIN entry is locked until %(time)s.", time=local_datetime(until)),
        locked_until=clock.as_utc(until),
    )


def _device_pin_lock(device_id: int, now: dt.datetime) -> dt.datetime | None:
    """Until when PIN entry at the device is locked: 5 wrong PINs typed alone within 15 minutes lock it for 15
    minutes from the fifth (tries during a lock are not counted, so it does not grow)."""
    times = [
        clock.as_utc(at)
        for at in db.session.scalars(
            sa.select(PinAttempt.at)
            .where(
                PinAttempt.device_id == device_id,
                PinAttempt.user_id.is_(None),
                PinAttempt.at > now - PIN_WINDOW - PIN_LOCK,
            )
            .order_by(PinAttempt.at)
        )
    ]
    until = None
    for index in range(PIN_TRIES - 1, len(times)):
        if times[index] - times[index - PIN_TRIES + 1] < PIN_WINDOW:
            until = times[index] + PIN_LOCK
    return until if until is not None and until > now else None


def _wrong_pin(customer_id: int, device_id: int, user: PrintUser | None, now: dt.datetime) -> IdentifyRefused:
    """Record a wrong PIN (of `user`, or typed alone at the device) and say what the device shows."""
    db.session.add(PinAttempt(customer_id=customer_id, device_id=device_id, user_id=user.id if user else None, at=now))
    db.session.flush()
    if user is not None:
        tries = db.session.scalar(
            sa.select(sa.func.count()).where(PinAttempt.user_id == user.id, PinAttempt.at > now - PIN_WINDOW)
        )
        if tries >= PIN_TRIES:
            user.pin_locked_until = now + PIN_LOCK
            # The lock is on the user now; the next count starts after it.
            db.session.execute(sa.delete(PinAttempt).where(PinAttempt.user_id == user.id))
            return _refused_locked(user.pin_locked_until)
    else:
        until = _device_pin_lock(device_id, now)
        if until is not None:
            return _refused_locked(until)
    return IdentifyRefused(401, "wrong_pin", _("Wrong PIN."))


def _user_pin_lock(user: PrintUser, now: dt.datetime) -> dt.datetime | None:
    if user.pin_locked_until is not None and clock.as_utc(user.pin_locked_until) > now:
        return clock.as_utc(user.pin_locked_until)
    return None


def _by_pin(customer_id: int, device_id: int, pin: str, username: str | None, now: dt.datetime) -> PrintUser:
    if username is not None:
        user = users.find_by_username(customer_id, username)
        if user is None:
            until = _device_pin_lock(device_id, now)
            if until is not None:
                raise _refused_locked(until)
            raise _wrong_pin(customer_id, device_id, None, now)
        until = _user_pin_lock(user, now)
        if until is not None:
            raise _refused_locked(until)
        if user.pin_digest is None or user.pin_digest != users.pin_digest(customer_id, pin.strip()):
            raise _wrong_pin(customer_id, device_id, user, now)
    else:
        until = _device_pin_lock(device_id, now)
        if until is not None:
            raise _refused_locked(until)
        user = users.find_by_pin(customer_id, pin)
        if user is None:
            raise _wrong_pin(customer_id, device_id, None, now)
        until = _user_pin_lock(user, now)
        if until is not None:
            raise _refused_locked(until)
    db.session.execute(sa.delete(PinAttempt).where(PinAttempt.user_id == user.id))
    return user


def _by_password(customer_id: int, username: str, password: str) -> PrintUser:
    user = users.find_by_username(customer_id, username)
    wrong = IdentifyRefused(401, "wrong_password", _("Wrong username or password."))
    if user is None:
        users.check_password(None, password)  # the same time as a wrong password
        raise wrong
    if user.directory_user:
        try:
            accepted = authenticate(customer_id, user.username, password)
        except DirectoryUnavailable as error:
            raise IdentifyRefused(503, "directory_unavailable", error.message) from None
    else:
        accepted = users.check_password(user, password)
    if not accepted:
        raise wrong
    return user


def chargeable_cost_centers(user: PrintUser, active_only: bool = True) -> list[CostCenter]:
    """The cost centers the user may charge: the user's list and the default one, ordered by path."""
    centers = {center.id: center for center in user.cost_centers}
    if user.default_cost_center is not None:
        centers.setdefault(user.default_cost_center.id, user.default_cost_center)
    found = [center for center in centers.values() if center.active or not active_only]
    return sorted(found, key=lambda center: (center.path.lower(), center.id))


def identity(user: PrintUser, now: dt.datetime | None = None) -> Identity:
    """What the device is told about an identified user (balance of the quota paying for the default cost center)."""
    center = user.default_cost_center
    quota, balance = quotas.paying_balance(user, center, now)
    return Identity(
        user=user,
        cost_centers=chargeable_cost_centers(user),
        privileges=effective_privileges(user, center),
        balance=balance,
        overdraft=quota.overdraft if quota is not None else None,
    )


def identify(device_id: int, card=None, pin=None, username=None, password=None) -> Identity:
    """Identify the user at a device by card (the exact string), PIN (alone, or with the username) or username and
    password (the customer's directory for its users). Raises IdentifyRefused (see there) or ValidationError.

    Wrong PINs are recorded (PinAttempt) even when refused: the caller commits after a refusal too.
    """
    now = utcnow()
    check = Checker()
    device_id, customer_id = _device_customer(check, device_id, now)
    given = [name for name, value in (("card", card), ("pin", pin), ("password", password)) if value is not None]
    for name, value in (("card", card), ("pin", pin), ("username", username), ("password", password)):
        if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 256):
            check.fail(name, _("This field must be a non-empty text."))
    if not given:
        check.fail("card", _("Send a card number, a PIN, or a username and password."))
    elif len(given) > 1:
        check.fail(given[1], _("Send only one of: card, PIN, username and password."))
    elif card is not None and username is not None:
        check.fail("username", _("A card identifies its user without a username."))
    elif password is not None and username is None:
        check.fail("username", _("This field is required."))
    if username is not None and pin is None and password is None and card is None:
        check.errors.pop("card", None)
        check.fail("password", _("This field is required."))
    if pin is not None and isinstance(pin, str) and "pin" not in check and not pin.strip().isdigit():
        check.fail("pin", _("A PIN is digits only."))
    check.raise_if_any()
    if card is not None:
        found = users.find_by_card(customer_id, card)
        if found is None:
            raise _refused_unknown()
        if not found.active:
            raise IdentifyRefused(401, "card_disabled", _("This card is disabled: ask your administrator."))
        user = found.user
    elif pin is not None:
        user = _by_pin(customer_id, device_id, pin, username, now)
    else:
        user = _by_password(customer_id, username, password)
    if not user.active:
        raise _refused_disabled()
    return identity(user, now)


# --- the shape of a job ------------------------------------------------------------------------------------------


def _moment(check: Checker, field: str, value: Any) -> dt.datetime | None:
    """An instant: an aware datetime or ISO 8601 text; without an offset it is the dealer's local time."""
    if value is None or (isinstance(value, str) and not value.strip()):
        check.fail(field, _("This field is required."))
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            check.fail(field, _("Not a date and time (YYYY-MM-DDTHH:MM:SS+01:00): %(value)s", value=value[:40]))
            return None
    if not isinstance(value, dt.datetime):
        check.fail(field, _("Not a date and time (YYYY-MM-DDTHH:MM:SS+01:00): %(value)s", value=str(value)[:40]))
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=clock.timezone())
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        check.fail(field, _("The year must be between %(min)d and %(max)d.", min=MIN_YEAR, max=MAX_YEAR))
        return None
    return value.astimezone(dt.UTC)


def _user(
    check: Checker, value: Any, customer_id: int | None, required: bool, finder: Finder = FINDER
) -> PrintUser | None:
    number = check.integer("user_id", value, 1, MAX_PAGES, required=required)
    if number is None:
        return None
    user = finder.user(number)
    if user is None or (customer_id is not None and user.customer_id != customer_id):
        check.fail("user_id", _("The customer of this device has no print user with id %(id)s.", id=number))
        return None
    return user


def _cost_center(
    check: Checker,
    value: Any,
    customer_id: int | None,
    user: PrintUser | None,
    active_only: bool,
    finder: Finder = FINDER,
) -> CostCenter | None:
    """The cost center chosen at the device (one the user may charge), else the user's default."""
    if value is None:
        return user.default_cost_center if user is not None else None
    number = check.integer("cost_center_id", value, 1, MAX_PAGES)
    if number is None:
        return None
    center = finder.cost_center(number)
    if center is None or (customer_id is not None and center.customer_id != customer_id):
        check.fail("cost_center_id", _("The customer of this device has no cost center with id %(id)s.", id=number))
        return None
    if user is not None and center.id not in finder.chargeable_ids(user, active_only):
        check.fail("cost_center_id", _("%(user)s may not charge %(center)s.", user=user, center=center.path))
        return None
    if active_only and not center.active:
        check.fail("cost_center_id", _("%(center)s is disabled.", center=center.path))
        return None
    return center


def _code(check: Checker, field: str, value: Any, choices: tuple[str, ...], default: str | None = None) -> str | None:
    if value is None and default is not None:
        return default
    if isinstance(value, str):
        for choice in choices:
            if value.strip().lower() == choice.lower():
                return choice
    if value is None:
        check.fail(field, _("This field is required."))
    else:
        check.fail(field, _("Choose one of: %(choices)s", choices=", ".join(choices)))
    return None


def _sides(check: Checker, field: str, value: Any, required: bool = True) -> int | None:
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        check.fail(field, _("Must not be negative."))
        return None
    return check.integer(field, value, 0, MAX_SIDES)


def _flag(check: Checker, field: str, value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    check.fail(field, _("Must be true or false."))
    return False


def _job(check: Checker, data: dict) -> dict[str, Any]:
    """The job's function, sides, paper size and duplex, checked (shared by authorize and record)."""
    return {
        "function": _code(check, "function", data.get("function"), FUNCTIONS),
        "sides_bw": _sides(check, "sides_bw", data.get("sides_bw", 0)),
        "sides_color": _sides(check, "sides_color", data.get("sides_color", 0)),
        "paper_size": _code(check, "paper_size", data.get("paper_size"), PAPER_SIZES, "A4"),
        "duplex": _flag(check, "duplex", data.get("duplex")),
    }


def job_object(data: Any) -> dict:
    """The job as sent: an object, else ValidationError."""
    if not isinstance(data, dict):
        raise ValidationError({"function": _("Send the job as an object.")})
    return data


# --- authorize ---------------------------------------------------------------------------------------------------


def _sides_that_fit(job: dict[str, Any], customer_id: int, available: Decimal, today: dt.date) -> int:
    """How many of the job's sides fit in `available`: each priced as the dearest kind of side the job has, with
    the job fee once."""
    prices = unit_prices(customer_id, job["function"], job["paper_size"], job["duplex"], today)
    kinds = [colour for colour in ("bw", "color") if job[f"sides_{colour}"]]
    if not kinds:
        return 0
    price = max(prices[colour] for colour in kinds)
    fee = prices["color_fee"] if job["sides_color"] else prices["bw_fee"]
    total = job["sides_bw"] + job["sides_color"]
    room = available - fee
    if room <= 0 or price <= 0:
        return 0
    sides = min(total - 1, math.floor(room / price))
    while sides > 0 and round_cost(sides * price + fee) > available:
        sides -= 1
    return max(sides, 0)


def authorize(data: dict) -> dict:
    """May this job run? {allowed, allowed_sides?, reason?, message?, cost, balance}.

    data: device_id, user_id, cost_center_id?, function, sides_bw, sides_color, paper_size, duplex. Privileges first
    (functions, colour, maximum sides, duplex forced), then the balance: the estimated cost must be at most balance +
    overdraft. When only part fits, `allowed_sides` says how many sides may print. Bad input raises ValidationError.
    """
    now = utcnow()
    check = Checker()
    data = job_object(data)
    _device_id, customer_id = _device_customer(check, data.get("device_id"), now)
    user = _user(check, data.get("user_id"), customer_id, required=True)
    center = _cost_center(check, data.get("cost_center_id"), customer_id, user, active_only=True)
    job = _job(check, data)
    check.raise_if_any()
    quota, balance = quotas.paying_balance(user, center, now)
    answer: dict[str, Any] = {"allowed": False, "balance": balance}
    if not user.active:
        return {**answer, "reason": "user_disabled", "message": _("This user is disabled: ask your administrator.")}
    outside = refusal(effective_privileges(user, center), **job_args(job))
    if outside is not None:
        reason, message, sides = outside
        answer.update(reason=reason, message=message)
        if sides:
            answer["allowed_sides"] = sides
        return answer
    today = clock.local_date(now)
    cost, _list_id = job_cost(customer_id, **job, on=today)
    answer["cost"] = cost
    if balance is None or cost <= balance + quota.overdraft:
        answer["allowed"] = True
        return answer
    available = balance + quota.overdraft
    answer.update(reason="quota_exceeded", message=_("Your print quota does not cover this job."))
    sides = _sides_that_fit(job, customer_id, available, today)
    if sides:
        answer["allowed_sides"] = sides
        answer["message"] = _("Your print quota covers %(sides)d sides of this job.", sides=sides)
    return answer


def job_args(job: dict[str, Any]) -> dict[str, Any]:
    return {key: job[key] for key in ("function", "sides_bw", "sides_color", "duplex")}


# --- record a transaction ----------------------------------------------------------------------------------------


def _stored(device_id: int, device_seq: int) -> Transaction | None:
    return db.session.scalars(
        sa.select(Transaction)
        .where(Transaction.device_id == device_id, Transaction.device_seq == device_seq)
        .execution_options(populate_existing=True)
    ).first()


def _default_sheets(function: str, sides: int, duplex: bool) -> int:
    if function in SCAN_FUNCTIONS:
        return 0
    return (sides + 1) // 2 if duplex else sides


def _document_name(customer_id: int, value: Any, finder: Finder = FINDER) -> str | None:
    """The name to store, or None when the customer hides names (the name goes nowhere, not even a log line)."""

    if value is None or not isinstance(value, str):
        return None
    return finder.document_name(customer_id, value)


def transaction_key(check: Checker, data: dict) -> tuple[int | None, int | None]:
    """The (device id, device sequence number) a job is stored once under; None for a malformed one (failed)."""
    device_number = check.integer("device_id", data.get("device_id"), 1, MAX_PAGES)
    device_seq = check.integer("device_seq", data.get("device_seq"), 0, MAX_STORED_SEQ)
    return device_number, device_seq


@dataclass(slots=True)
class CheckedJob:
    """A finished job that passed its checks: its Transaction's columns, the user and cost center that pay, and the
    dealer's day it ended (which priced it and holds its rollups)."""

    values: dict[str, Any]
    user: PrintUser | None
    cost_center: CostCenter | None
    day: dt.date


def check_job(check: Checker, data: dict, now: dt.datetime, finder: Finder = FINDER) -> CheckedJob:
    """The checks of a finished job (after `transaction_key` on the same checker) and its price: raises
    ValidationError naming each bad field. Shared by record_transaction and ingest.record_batch."""
    started = _moment(check, "started_at", data.get("started_at"))
    ended = _moment(check, "ended_at", data.get("ended_at"))
    if started is not None and ended is not None and ended < started:
        check.fail("ended_at", _("A job cannot end before it started."))
    device_id, customer_id = _device_customer(check, data.get("device_id"), ended or now, fallback=now, finder=finder)
    user = _user(check, data.get("user_id"), customer_id, required=False, finder=finder) if customer_id else None
    center = _cost_center(check, data.get("cost_center_id"), customer_id, user, active_only=False, finder=finder)
    job = _job(check, data)
    sheets = _sides(check, "sheets", data.get("sheets"), required=False)
    status = _code(check, "status", data.get("status"), JOB_STATUSES, "done")
    document = data.get("document_name")
    if document is not None and not isinstance(document, str):
        check.fail("document_name", _("This field must be a text."))
    check.raise_if_any()
    if sheets is None:
        sheets = _default_sheets(job["function"], job["sides_bw"] + job["sides_color"], job["duplex"])
    day = finder.local_date(ended)
    book = finder.price_book(customer_id, job["function"], day)
    cost, price_list_id = book.job_cost(job["sides_bw"], job["sides_color"], job["paper_size"], job["duplex"])
    values = {
        "customer_id": customer_id,
        "device_id": device_id,
        "device_seq": check.integer("device_seq", data.get("device_seq"), 0, MAX_STORED_SEQ),
        "user_id": user.id if user else None,
        "cost_center_id": center.id if center else None,
        "sheets": sheets,
        "status": status,
        "document_name": _document_name(customer_id, document, finder),
        "started_at": started,
        "ended_at": ended,
        "cost": cost,
        "price_list_id": price_list_id,
        **job,
    }
    return CheckedJob(values, user, center, day)


def _exact_codes(choices: tuple[str, ...], default: str | None = None) -> dict[str | None, str]:
    """_code's answer for each exact spelling of a choice (and for None when there is a default)."""
    codes: dict[str | None, str] = {}
    for choice in choices:
        codes.setdefault(choice, next(c for c in choices if c.lower() == choice.strip().lower()))
    if default is not None:
        codes[None] = default
    return codes


_FUNCTION_CODES = _exact_codes(FUNCTIONS)
_PAPER_CODES = _exact_codes(PAPER_SIZES, "A4")
_STATUS_CODES = _exact_codes(JOB_STATUSES, "done")


def _plain_moment(value: Any) -> dt.datetime | None:
    """_moment for ISO 8601 text with an offset, in the years allowed; None for anything else (no error)."""
    if type(value) is not str:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None or not MIN_YEAR <= moment.year <= MAX_YEAR:
        return None
    return moment.astimezone(dt.UTC)


def _plain_count(value: Any, maximum: int = MAX_SIDES) -> bool:
    return type(value) is int and 0 <= value <= maximum


def plain_job(data: dict, device_id: int, device_seq: int, now: dt.datetime, finder: Finder) -> CheckedJob | None:
    """check_job's CheckedJob for a job in its plain form, in a fraction of its time (ingest.record_batch): the
    job's device (`device_id`) and number (`device_seq`) already checked valid, times as ISO 8601 text with an
    offset, numbers as ints, codes spelled exactly, and every check passed. None for anything else, without
    telling why: check_job then gives the same outcome, field errors included, so nothing here may accept an
    input check_job would refuse or read differently."""
    started = _plain_moment(data.get("started_at"))
    ended = _plain_moment(data.get("ended_at"))
    if started is None or ended is None or ended < started or not finder.device_exists(device_id):
        return None
    day = finder.local_date(ended)
    customer_id = finder.customer_on_day(device_id, day)
    if customer_id is None:
        return None
    user = None
    user_id = data.get("user_id")
    if user_id is not None:
        if type(user_id) is not int or not 1 <= user_id <= MAX_PAGES:
            return None
        user = finder.user(user_id)
        if user is None or user.customer_id != customer_id:
            return None
    center_id = data.get("cost_center_id")
    if center_id is None:
        center = finder.default_cost_center(user) if user is not None else None
    else:
        if type(center_id) is not int or not 1 <= center_id <= MAX_PAGES:
            return None
        center = finder.cost_center(center_id)
        if center is None or center.customer_id != customer_id:
            return None
        if user is not None and center.id not in finder.chargeable_ids(user, False):
            return None
    function, paper_size, status = data.get("function"), data.get("paper_size"), data.get("status")
    if not (type(function) is str and (paper_size is None or type(paper_size) is str)):
        return None
    if not (status is None or type(status) is str):
        return None
    function, paper_size, status = (
        _FUNCTION_CODES.get(function),
        _PAPER_CODES.get(paper_size),
        _STATUS_CODES.get(status),
    )
    sides_bw, sides_color, duplex = data.get("sides_bw", 0), data.get("sides_color", 0), data.get("duplex")
    sheets, document = data.get("sheets"), data.get("document_name")
    if function is None or paper_size is None or status is None:
        return None
    if not (_plain_count(sides_bw) and _plain_count(sides_color) and (sheets is None or _plain_count(sheets))):
        return None
    if duplex is None:
        duplex = False
    elif duplex is not True and duplex is not False:
        return None
    if document is not None:
        if type(document) is not str:
            return None
        document = finder.document_name(customer_id, document)
    if sheets is None:
        sheets = _default_sheets(function, sides_bw + sides_color, duplex)
    cost, price_list_id = finder.price_book(customer_id, function, day).job_cost(
        sides_bw, sides_color, paper_size, duplex
    )
    values = {
        "customer_id": customer_id,
        "device_id": device_id,
        "device_seq": device_seq,
        "user_id": user.id if user else None,
        "cost_center_id": center.id if center else None,
        "sheets": sheets,
        "status": status,
        "document_name": document,
        "started_at": started,
        "ended_at": ended,
        "cost": cost,
        "price_list_id": price_list_id,
        "function": function,
        "sides_bw": sides_bw,
        "sides_color": sides_color,
        "paper_size": paper_size,
        "duplex": duplex,
    }
    return CheckedJob(values, user, center, day)


def record_transaction(data: dict) -> tuple[Transaction, bool]:
    """Store a finished job once per (device, device_seq): (the transaction, True) when new, (the one stored, False)
    when it arrived before (a retried frame, a resent buffer), whatever else this copy says.

    data: device_id, device_seq, user_id?, cost_center_id?, function, sides_bw, sides_color, sheets?, paper_size,
    duplex, status, document_name?, started_at, ended_at. Priced on the dealer's day of `ended_at`, charged to the
    paying balance of now (a job from an offline device lands in the current period, below the overdraft if need
    be), counted in the daily rollups. Bad input raises ValidationError naming the field; nothing is written.
    Many jobs of one device at once: ingest.record_batch, the same outcome with per-batch SQL.
    """

    now = utcnow()
    check = Checker()
    data = job_object(data)
    device_number, device_seq = transaction_key(check, data)
    if device_number is not None and device_seq is not None:
        stored = _stored(device_number, device_seq)
        if stored is not None:
            return stored, False
    job = check_job(check, data, now)
    tx = Transaction(**job.values, refunded=Decimal(0), received_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(tx)
            db.session.flush()
    except IntegrityError:
        # The same job stored meanwhile by another request (the unique (device, device_seq) waited for it).
        stored = _stored(tx.device_id, tx.device_seq)
        if stored is None:
            raise
        return stored, False
    quota = quotas.paying_quota(job.user, job.cost_center)
    if quota is not None:
        quotas.charge(quota, tx)
    rollups.add_transaction(tx)
    return tx, True


# --- refunds -----------------------------------------------------------------------------------------------------


def refundable(tx: Transaction) -> Decimal:
    """What may still be refunded of a transaction: its cost less what was refunded already."""
    return tx.cost - (tx.refunded or Decimal(0))


def refund(transaction: Transaction, amount: Decimal, reason: str, actor: User | None) -> Refund:
    """Give back all or part of a transaction's cost (never beyond it), raising the paying balance by as much."""

    check = Checker()
    number = check.decimal("amount", amount, 4, Decimal(10) ** 10)
    if number is not None and number == 0:
        check.fail("amount", _("A refund must be more than zero."))
    text = check.text("reason", reason, TEXT_LIMIT, required=True)
    check.raise_if_any()
    quotas._take_write_lock()
    tx = db.session.scalars(
        sa.select(Transaction)
        .where(Transaction.id == transaction.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    left = refundable(tx)
    if number > left:
        raise ValidationError(
            {"amount": _("At most %(amount)s of this job can still be refunded.", amount=_money(left))}
        )
    item = Refund(transaction_id=tx.id, amount=number, reason=text, actor_id=actor.id if actor else None)
    db.session.add(item)
    tx.refunded = (tx.refunded or Decimal(0)) + number
    db.session.flush()
    quota = db.session.get(Quota, tx.quota_id) if tx.quota_id is not None else None
    if quota is not None:
        quotas.credit(
            quota, number, "refund", transaction_id=tx.id, refund_id=item.id, reason=text, actor_id=item.actor_id
        )
    rollups.add_refund(tx, number)
    return item


def _money(value: Decimal) -> str:
    return format_decimal(value, format="#,##0.00##")
