"""Reading campaigns: when each contract's readings are due, the emailed requests with their signed links, reminders
and overdue requests.

A request asks one customer for the counters of the devices due on one date (unique per customer and date), and is
emailed through the outbox to the customer's reading contacts. Every email carries its own signed link: the token
(itsdangerous, signed with SECRET_KEY) holds the request id and a random nonce stored only as its SHA-256, and expires
after `metering.link_days`, never before the deadline plus the reminders' span. Opening it grants the browser
session access to that one request's page, not a portal login. Every function here can run twice: requests are
unique per (customer, due date) and each email has a dedupe key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from core.auth.services import external_url
from core.clock import as_utc, day_start, local_date
from core.db import db, utcnow
from core.models import OutboxMessage, Partner
from core.outbox import queue_email
from core.settings import get_setting
from modules.metering.models import (
    Reading,
    ReadingRequest,
    ReadingRequestItem,
    ReadingRequestLink,
    ReadingSchedule,
)
from modules.rentals.models import Contract, ContractLine
from modules.rentals.periods import Period, periods

DEFAULT_RULE = "last_working_day"
DEFAULT_REMINDER_DAYS = 3
DEFAULT_MAX_REMINDERS = 3
DEFAULT_LINK_DAYS = 30
# Requests still open this long after their deadline are looked at again (a late reading completes them).
LATE_WINDOW_DAYS = 90
# Readings a customer has sent (accepted, or held for the dealer's review) answer a request; estimates do not.
RECEIVED_STATUSES = ("accepted", "pending_review")
LINK_SALT = "metering.request-link"


class LinkError(Exception):
    """A request link that cannot be used: `reason` is "expired" or "invalid"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Due:
    """A device whose counters a contract period needs, and the window in which a reading closes that period."""

    customer_id: int
    due_date: dt.date
    device_id: int
    contract_id: int
    period_end: dt.date
    since: dt.date
    deadline: dt.date


# When readings are due


def last_working_day(start: dt.date, end: dt.date) -> dt.date:
    """The last Monday-to-Friday day from `start` to `end`; `end` when the span has none."""
    day = end
    while day.weekday() >= 5 and day > start:
        day -= dt.timedelta(days=1)
    return day if day.weekday() < 5 else end


def due_date_for(period: Period, schedule: ReadingSchedule | None) -> dt.date:
    """The day the period's reading is requested, by the contract's schedule (default: its last working day)."""
    rule = schedule.rule if schedule is not None else DEFAULT_RULE
    if rule == "period_end":
        return period.end
    if rule == "days_before_end":
        return max(period.start, period.end - dt.timedelta(days=schedule.days))
    return last_working_day(period.start, period.end)


def _schedules(contract_ids: Iterable[int]) -> dict[int, ReadingSchedule]:
    rows = db.session.scalars(sa.select(ReadingSchedule).where(ReadingSchedule.contract_id.in_(list(contract_ids))))
    return {row.contract_id: row for row in rows}


def received_reading(device_id: int, since: dt.date, until: dt.date | None) -> int | None:
    """The id of the latest reading sent for the device from `since` to `until` (dealer days; None: no end)."""
    query = sa.select(Reading.id).where(
        Reading.device_id == device_id,
        Reading.source != "estimate",
        Reading.status.in_(RECEIVED_STATUSES),
        Reading.taken_at >= day_start(since),
    )
    if until is not None:
        query = query.where(Reading.taken_at < day_start(until + dt.timedelta(days=1)))
    return db.session.scalar(query.order_by(Reading.taken_at.desc(), Reading.id.desc()).limit(1))


def due_devices(
    today: dt.date, wanted: Callable[[Period, dt.date, dt.date], bool], customer_ids: Iterable[int] | None = None
) -> list[Due]:
    """The devices of active contracts still without a reading for the periods `wanted(period, due, deadline)` picks."""
    query = sa.select(Contract).where(Contract.state == "active").order_by(Contract.id)
    if customer_ids is not None:
        query = query.where(Contract.customer_id.in_(list(customer_ids)))
    contracts = list(db.session.scalars(query))
    schedules = _schedules(c.id for c in contracts)
    result = []
    for contract in contracts:
        for period in periods(contract.start_date, contract.period_months, contract.end_date, until=today):
            due = due_date_for(period, schedules.get(contract.id))
            deadline = period.end + dt.timedelta(days=contract.grace_days)
            if not wanted(period, due, deadline):
                continue
            since = min(period.start + dt.timedelta(days=contract.grace_days), due)
            for line in contract.lines:
                if not _on_contract(line, due) or received_reading(line.device_id, since, deadline) is not None:
                    continue
                result.append(Due(contract.customer_id, due, line.device_id, contract.id, period.end, since, deadline))
    return result


def _on_contract(line: ContractLine, day: dt.date) -> bool:
    # A device that left has its final counters; one that joins on the due day has just had them read.
    return line.end_date is None and line.start_date < day


# Requests


def create_due_requests(today: dt.date, customer_ids: Iterable[int] | None = None) -> list[ReadingRequest]:
    """Create and email the requests due by `today` (due date reached, deadline not passed); return the new ones.

    Running it again creates and sends nothing new. The caller commits.
    """
    found = due_devices(today, lambda period, due, deadline: due <= today <= deadline, customer_ids)
    return _open_requests(found, today)


def request_now(customer_id: int, today: dt.date) -> list[ReadingRequest]:
    """Ask a customer now for the counters of the current periods, before their due date; return the new requests."""
    found = due_devices(today, lambda period, due, deadline: period.start <= today <= period.end, [customer_id])
    return _open_requests(found, today)


def _open_requests(found: list[Due], today: dt.date) -> list[ReadingRequest]:
    groups: dict[tuple[int, dt.date], list[Due]] = {}
    for due in found:
        groups.setdefault((due.customer_id, due.due_date), []).append(due)
    created = []
    for (customer_id, due_date), dues in sorted(groups.items()):
        request, new = _find_or_create(customer_id, due_date, max(d.deadline for d in dues))
        if request.status != "pending":
            continue
        have = {item.device_id for item in request.items}
        for due in dues:
            if due.device_id not in have:
                have.add(due.device_id)
                request.items.append(
                    ReadingRequestItem(
                        device_id=due.device_id,
                        contract_id=due.contract_id,
                        period_end=due.period_end,
                        since=due.since,
                    )
                )
        request.deadline = max(request.deadline, *(d.deadline for d in dues))
        db.session.flush()
        if new:
            send_email(request, "request", f"reading-request:{request.id}", today)
            created.append(request)
    return created


def _find_or_create(customer_id: int, due_date: dt.date, deadline: dt.date) -> tuple[ReadingRequest, bool]:
    """The request of (customer, due date), created when missing; True when this call created it.

    INSERT ... ON CONFLICT DO NOTHING rather than a savepoint: two runs at once create one request, and no savepoint
    commits while this transaction holds queued emails.
    """
    table = ReadingRequest.__table__
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[db.session.get_bind().dialect.name]
    created = db.session.scalar(
        insert(table)
        .values(
            customer_id=customer_id,
            due_date=due_date,
            deadline=deadline,
            status="pending",
            reminders=0,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["customer_id", "due_date"])
        .returning(table.c.id)
    )
    request = db.session.scalar(
        sa.select(ReadingRequest).where(ReadingRequest.customer_id == customer_id, ReadingRequest.due_date == due_date)
    )
    return request, created is not None


def refresh(request: ReadingRequest) -> bool:
    """Link each item to the reading that answers it (whatever channel it came by, late ones too); complete the
    request when all have one. Returns whether the request is complete."""
    return bool(refresh_all([request]))


def refresh_all(requests: Iterable[ReadingRequest]) -> list[ReadingRequest]:
    """`refresh` for many requests at once, in the same few statements however many items they have: their items
    with their readings, the contract lines' end dates, the devices' readings. Returns the complete ones, in order."""
    requests = list(requests)
    if not requests:
        return []
    db.session.flush()
    items: dict[int, list[ReadingRequestItem]] = {request.id: [] for request in requests}
    query = (
        sa.select(ReadingRequestItem)
        .options(joinedload(ReadingRequestItem.reading))
        .where(ReadingRequestItem.request_id.in_(list(items)))
        .order_by(ReadingRequestItem.id)
    )
    for item in db.session.scalars(query):
        items[item.request_id].append(item)
    waiting = [
        item
        for group in items.values()
        for item in group
        if item.reading is None or item.reading.status not in RECEIVED_STATUSES
    ]
    ends = _stay_ends(waiting)
    found = _received_readings(
        [(item.device_id, item.since, ends[(item.contract_id, item.device_id)]) for item in waiting]
    )
    for item in waiting:
        item.reading_id = found[(item.device_id, item.since, ends[(item.contract_id, item.device_id)])]
    db.session.flush()
    completed = []
    for request in requests:
        group = items[request.id]
        set_committed_value(request, "items", group)  # as loaded again after the flush, without loading it again
        if group and all(item.reading_id is not None for item in group):
            if request.status != "completed":
                request.status = "completed"
                request.completed_at = utcnow()
            completed.append(request)
    return completed


def _stay_ends(items: list[ReadingRequestItem]) -> dict[tuple[int, int], dt.date | None]:
    """For each (contract, device) of the items, the last day the device was on that contract (None: still there): a
    reading taken later belongs to whoever has the device then, and answers none of this customer's requests."""
    pairs = {(item.contract_id, item.device_id) for item in items}
    if not pairs:
        return {}
    rows = db.session.execute(
        sa.select(ContractLine.contract_id, ContractLine.device_id, ContractLine.end_date).where(
            ContractLine.contract_id.in_(sorted({contract_id for contract_id, _ in pairs})),
            ContractLine.device_id.in_(sorted({device_id for _, device_id in pairs})),
        )
    )
    found: dict[tuple[int, int], list[dt.date | None]] = {pair: [] for pair in pairs}
    for contract_id, device_id, end_date in rows:
        if (contract_id, device_id) in found:
            found[(contract_id, device_id)].append(end_date)
    return {pair: None if not ends or None in ends else max(ends) for pair, ends in found.items()}


def _received_readings(
    windows: list[tuple[int, dt.date, dt.date | None]],
) -> dict[tuple[int, dt.date, dt.date | None], int | None]:
    """`received_reading` for each (device, since, until), in one statement: the readings sent for the devices from
    the earliest `since`, matched to each window here."""
    wanted = set(windows)
    if not wanted:
        return {}
    query = sa.select(Reading.id, Reading.device_id, Reading.taken_at).where(
        Reading.device_id.in_(sorted({device_id for device_id, _, _ in wanted})),
        Reading.source != "estimate",
        Reading.status.in_(RECEIVED_STATUSES),
        Reading.taken_at >= day_start(min(since for _, since, _ in wanted)),
    )
    if all(until is not None for _, _, until in wanted):
        last = max(until for _, _, until in wanted)
        query = query.where(Reading.taken_at < day_start(last + dt.timedelta(days=1)))
    by_device: dict[int, list[tuple[dt.datetime, int]]] = {}
    for reading_id, device_id, taken_at in db.session.execute(query):
        by_device.setdefault(device_id, []).append((as_utc(taken_at), reading_id))
    for readings in by_device.values():
        readings.sort(reverse=True)  # latest first, the higher id first at the same moment
    result = {}
    for device_id, since, until in wanted:
        start = day_start(since)
        stop = day_start(until + dt.timedelta(days=1)) if until is not None else None
        result[(device_id, since, until)] = next(
            (
                reading_id
                for taken_at, reading_id in by_device.get(device_id, [])
                if start <= taken_at and (stop is None or taken_at < stop)
            ),
            None,
        )
    return result


def answer(request: ReadingRequest, readings: Iterable[Reading]) -> bool:
    """Readings sent through the request's own link answer its items, whenever in the period they come; then refresh.

    The `since` window only decides which readings of other channels count; one sent for this very request does.
    """
    by_device = {reading.device_id: reading for reading in readings if reading.status in RECEIVED_STATUSES}
    for item in request.items:
        if item.reading_id is None and item.device_id in by_device:
            item.reading = by_device[item.device_id]
    return refresh(request)


def answer_reading(reading: Reading) -> list[ReadingRequest]:
    """Complete, in the caller's transaction, the open requests a reading just received (or approved) answers.

    Every channel's write path calls it (readings.py), so a request never waits for the daily run to see a reading.
    """
    query = (
        sa.select(ReadingRequest)
        .join(ReadingRequestItem, ReadingRequestItem.request_id == ReadingRequest.id)
        .where(
            ReadingRequest.status.in_(("pending", "overdue")),
            ReadingRequestItem.device_id == reading.device_id,
            ReadingRequestItem.reading_id.is_(None),
        )
        .order_by(ReadingRequest.id)
        .distinct()
    )
    return refresh_all(db.session.scalars(query).all())


def requests_answered_by(reading_id: int) -> list[ReadingRequest]:
    """The requests one of whose devices the reading answers."""
    query = (
        sa.select(ReadingRequest)
        .join(ReadingRequestItem, ReadingRequestItem.request_id == ReadingRequest.id)
        .where(ReadingRequestItem.reading_id == reading_id)
        .order_by(ReadingRequest.id)
        .distinct()
    )
    return list(db.session.scalars(query))


def release_reading(reading: Reading, today: dt.date) -> list[ReadingRequest]:
    """A reading that no longer counts (staff rejected it) stops answering its requests, in the caller's transaction.

    Each device it answered looks for another reading (`refresh`); a completed request left with a device waiting
    opens again, `completed_at` cleared: pending, so reminders go on, or overdue when its deadline has passed, as
    `mark_overdue` would have made it. Returns the requests opened again.
    """
    answered = requests_answered_by(reading.id)
    for request in answered:
        for item in request.items:
            if item.reading_id == reading.id:
                item.reading = None
    db.session.flush()
    reopened = []
    for request in answered:
        if refresh(request) or request.status != "completed":
            continue
        request.status = "pending"
        request.completed_at = None
        if request.deadline < today:
            _make_overdue(request, today)
        reopened.append(request)
    return reopened


def open_items(request: ReadingRequest) -> list[ReadingRequestItem]:
    """The request's devices still waiting for their counters."""
    return [item for item in request.items if item.reading_id is None]


def send_reminders(today: dt.date) -> list[ReadingRequest]:
    """Remind every pending request last emailed `metering.reminder_days` ago, at most `metering.max_reminders`
    times, until its reading arrives or its deadline passes."""
    every = int(get_setting("metering.reminder_days", DEFAULT_REMINDER_DAYS))
    most = int(get_setting("metering.max_reminders", DEFAULT_MAX_REMINDERS))
    query = sa.select(ReadingRequest).where(
        ReadingRequest.status == "pending",
        ReadingRequest.last_sent_on.is_not(None),
        ReadingRequest.last_sent_on <= today - dt.timedelta(days=every),
        ReadingRequest.reminders < most,
        ReadingRequest.deadline >= today,
    )
    reminded = []
    requests = db.session.scalars(query.order_by(ReadingRequest.id)).all()
    completed = refresh_all(requests)
    for request in requests:
        if request in completed:
            continue
        number = request.reminders + 1
        if send_email(request, "reminder", f"reading-reminder:{request.id}:{number}", today, number=number):
            request.reminders = number
            reminded.append(request)
    return reminded


def mark_overdue(today: dt.date) -> list[ReadingRequest]:
    """Mark pending requests past their deadline overdue; for contracts that estimate missing readings, estimate."""
    query = sa.select(ReadingRequest).where(ReadingRequest.status == "pending", ReadingRequest.deadline < today)
    overdue = []
    for request in db.session.scalars(query.order_by(ReadingRequest.id)).all():
        if refresh(request):
            continue
        _make_overdue(request, today)
        overdue.append(request)
    return overdue


def _make_overdue(request: ReadingRequest, today: dt.date) -> None:
    """The request is overdue (since now, unless it already was once); its contracts that estimate, estimate."""
    from modules.metering.estimates import create_due_estimates

    request.status = "overdue"
    request.overdue_at = request.overdue_at or utcnow()
    estimating = sorted({item.contract_id for item in open_items(request) if item.contract.estimate_missing})
    if estimating:
        create_due_estimates(today, estimating)


def refresh_open(today: dt.date) -> None:
    """Complete the requests whose readings arrived by another channel (staff, CSV, API), late ones included."""
    query = sa.select(ReadingRequest).where(
        ReadingRequest.status.in_(("pending", "overdue")),
        ReadingRequest.deadline >= today - dt.timedelta(days=LATE_WINDOW_DAYS),
    )
    refresh_all(db.session.scalars(query.order_by(ReadingRequest.id)).all())


def run_campaigns(today: dt.date) -> None:
    """The day's work, in order: readings that arrived, new requests, reminders, overdue requests. Not committed."""
    refresh_open(today)
    create_due_requests(today)
    send_reminders(today)
    mark_overdue(today)


def resend(request: ReadingRequest, today: dt.date) -> OutboxMessage | None:
    """Email the request again now, with a fresh link (staff's one-click resend)."""
    count = db.session.scalar(
        sa.select(sa.func.count(ReadingRequestLink.id)).where(ReadingRequestLink.request_id == request.id)
    )
    return send_email(request, "request", f"reading-resend:{request.id}:{count + 1}", today, resend=True)


# Emails and links


def reading_contacts(customer: Partner) -> list[str]:
    """Where reading requests go: the contacts marked for readings, else the customer's own address."""
    addresses = [contact.email for contact in customer.contacts if contact.receives_readings and contact.email]
    if not addresses and customer.email:
        addresses = [customer.email]
    return list(dict.fromkeys(address.strip() for address in addresses))


def send_email(request: ReadingRequest, kind: str, dedupe_key: str, today: dt.date, **context) -> OutboxMessage | None:
    """Queue the `kind` email (request, reminder) of a request with a new link; None when it was already written or
    the customer has no address to write to."""
    if db.session.scalar(sa.select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)) is not None:
        return None
    recipients = reading_contacts(request.customer)
    if not recipients:
        current_app.logger.warning("reading request %s: customer %s has no email address", request.id, request.customer)
        return None
    link, expires_at = issue_link(request)
    message = queue_email(
        recipients,
        f"metering/{kind}",
        request.customer.language,
        {
            "request": request,
            "customer": request.customer,
            "items": open_items(request) or request.items,
            # The last whole day the link works: it expires at the start of the next one.
            "expires_on": local_date(expires_at - dt.timedelta(seconds=1)),
            **context,
        },
        dedupe_key=dedupe_key,
        secrets={"link": link},
    )
    request.sent_at = request.sent_at or utcnow()
    request.last_sent_on = today
    return message


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=LINK_SALT)


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def link_days() -> int:
    return int(get_setting("metering.link_days", DEFAULT_LINK_DAYS))


def link_expiry(request: ReadingRequest) -> dt.datetime:
    """When a link issued now expires: `metering.link_days` from now, and never before the end of the request's
    deadline plus the reminders' span (`reminder_days` x `max_reminders`), so the last reminder's link still works."""
    every = int(get_setting("metering.reminder_days", DEFAULT_REMINDER_DAYS))
    most = int(get_setting("metering.max_reminders", DEFAULT_MAX_REMINDERS))
    last_day = request.deadline + dt.timedelta(days=every * most)
    return max(utcnow() + dt.timedelta(days=link_days()), day_start(last_day + dt.timedelta(days=1)))


def issue_link(request: ReadingRequest) -> tuple[str, dt.datetime]:
    """A new signed link to the request's page and when it expires (its row decides; see `link_expiry`)."""
    nonce = secrets.token_urlsafe(24)
    expires_at = link_expiry(request)
    db.session.add(ReadingRequestLink(request_id=request.id, nonce_hash=_hash(nonce), expires_at=expires_at))
    token = _serializer().dumps({"r": request.id, "n": nonce})
    return external_url("metering_portal.open_link", token=token), expires_at


def open_link(token: str, now: dt.datetime | None = None) -> tuple[ReadingRequest, ReadingRequestLink]:
    """The request a link opens and the link's row; raises LinkError. Records the first opening."""
    now = now or utcnow()
    try:
        # No max_age: the link's row holds its expiry, which can lie beyond `link_days` (see `link_expiry`).
        data = _serializer().loads(token)
    except BadSignature as exc:
        raise LinkError("invalid") from exc
    if not isinstance(data, dict) or not isinstance(data.get("r"), int) or not isinstance(data.get("n"), str):
        raise LinkError("invalid")
    link = db.session.scalar(
        sa.select(ReadingRequestLink).where(
            ReadingRequestLink.nonce_hash == _hash(data["n"]), ReadingRequestLink.request_id == data["r"]
        )
    )
    if link is None:
        raise LinkError("invalid")
    if as_utc(link.expires_at) <= now:
        raise LinkError("expired")
    request = link.request
    if request.opened_at is None:
        request.opened_at = now
    return request, link


def link_valid(link_id: object, request_id: int, now: dt.datetime | None = None) -> bool:
    """Whether the link row `link_id` (as a session kept it) still opens request `request_id`: it exists, belongs to
    that request and has not expired. Asked on every use, so moving `expires_at` earlier ends the grants at once."""
    if not isinstance(link_id, int) or isinstance(link_id, bool) or not 0 < link_id < 2**31:
        return False
    link = db.session.get(ReadingRequestLink, link_id)
    return link is not None and link.request_id == request_id and as_utc(link.expires_at) > (now or utcnow())


def request_messages(request_ids: Iterable[int]) -> dict[int, list[OutboxMessage]]:
    """The emails written for each request, oldest first (their dedupe keys name the request)."""
    ids = list(request_ids)
    result: dict[int, list[OutboxMessage]] = {request_id: [] for request_id in ids}
    if not ids:
        return result
    keys = sa.or_(
        *(
            condition
            for request_id in ids
            for condition in (
                OutboxMessage.dedupe_key == f"reading-request:{request_id}",
                OutboxMessage.dedupe_key.like(f"reading-reminder:{request_id}:%"),
                OutboxMessage.dedupe_key.like(f"reading-resend:{request_id}:%"),
            )
        )
    )
    for message in db.session.scalars(sa.select(OutboxMessage).where(keys).order_by(OutboxMessage.id)):
        request_id = int(message.dedupe_key.split(":")[1])
        if request_id in result:
            result[request_id].append(message)
    return result
