"""What the collector answers to each message of a connected device (docs/device-protocol.md); never commits."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import joinedload

from core import clock
from core.db import db, utcnow
from core.models import Partner
from core.validation import ValidationError
from modules.device_accounting import held_jobs, ingest, operations, users
from modules.device_accounting.customer_settings import settings_of
from modules.device_accounting.models import HeldJob, PrintUser, Transaction
from modules.device_collector import enrolment, pki
from modules.device_collector.models import LOGIN_METHODS, CollectorDevice, RefusedTransaction
from modules.device_collector.protocol import MAX_BATCH, MAX_FRAME, SUPPORTED_VERSIONS, DeviceSession, ProtocolError
from modules.metering.readings import record_reading
from modules.rentals.devices import normalize_serial

# What HELLO tells the device when the server did not put its own idle timeout in session.extra["idle_timeout"].
DEFAULT_IDLE_TIMEOUT = 60.0
# last_seen_at is written at most this often per connection (a heartbeat every few seconds is not a write each).
SEEN_EVERY = dt.timedelta(minutes=1)
# Bytes of a held document in one RELEASE reply: base64 writes 4 characters for 3 bytes, so a chunk's frame
# (699,052 characters of data and a few hundred of envelope) stays well within MAX_FRAME.
RELEASE_CHUNK = 512 * 1024
# Held jobs in one HELD_JOBS reply (the oldest; `more` tells there are others): titles of 500 characters fit too.
HELD_JOBS_LISTED = 200


def handle(session: DeviceSession, type_: str, body: dict) -> dict:
    """The reply body to one request of `session`'s device, or ProtocolError. Runs inside an app context; the
    caller commits (also after a refused IDENTIFY: the wrong PIN stays counted)."""
    handler = HANDLERS.get(type_)
    if handler is None:
        raise ProtocolError("unknown_message", f"Unknown message type {type_[:40]!r}.")
    with force_locale(_device_language(session)):
        if type_ != "ENROL":
            if session.collector_device_id is None or session.device_id is None:
                raise ProtocolError("not_enrolled", _("This device is not enrolled: enrol it with a code first."))
            if type_ != "HELLO" and not session.hello_done:
                raise ProtocolError("hello_required", _("Send HELLO first."))
        try:
            return handler(session, body)
        except ValidationError as error:
            raise ProtocolError("invalid_message", error.messages(), fields=dict(error.errors)) from None
        except enrolment.EnrolmentRefused as refused:
            if refused.reason in ("not_enrolled", "revoked"):  # a certificate never given, or revoked: closes
                raise ProtocolError(refused.reason, refused.message) from None
            raise ProtocolError("enrolment_refused", refused.message, reason=refused.reason) from None


# --- shared pieces -----------------------------------------------------------------------------------------------


def _language(code: str | None) -> str | None:
    """One of the app's languages for a device's or a user's code ("it", "it-IT", "it_IT"); None when unknown."""
    base = (code or "").replace("-", "_").split("_")[0].lower()
    return base if base in current_app.config["LANGUAGES"] else None


def _device_language(session: DeviceSession) -> str:
    return session.language or current_app.config["BABEL_DEFAULT_LOCALE"]


@contextmanager
def _user_locale(session: DeviceSession, user: PrintUser | None) -> Iterator[None]:
    """Texts for the print user at the device: in their language when known, else the device's."""
    with force_locale(_language(user.language if user is not None else None) or _device_language(session)):
        yield


def _moment(value: dt.datetime) -> str:
    """ISO 8601 in the dealer's time zone, with its offset."""
    return clock.as_utc(value).astimezone(clock.timezone()).isoformat(timespec="seconds")


def _server_time() -> str:
    return clock.as_utc(utcnow()).astimezone(clock.timezone()).isoformat(timespec="milliseconds")


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _plain(value: Any) -> Any:
    """`value` as JSON: Decimal as a decimal string, moments as ISO 8601 with offset."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return _money(value)
    if isinstance(value, dt.datetime):
        return _moment(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _collector(session: DeviceSession) -> CollectorDevice:
    collector = db.session.get(CollectorDevice, session.collector_device_id)
    if collector is None:
        raise ProtocolError("not_enrolled", _("This device is not enrolled: enrol it with a code first."))
    return collector


def _seen(session: DeviceSession, collector: CollectorDevice | None = None, **what: Any) -> None:
    """Note the device as seen (and what it said about itself); without news, at most once a minute."""
    now = utcnow()
    last = session.extra.get("seen_at")
    if not what and last is not None and now - last < SEEN_EVERY:
        return
    enrolment.touch(collector or _collector(session), address=session.address, **what)
    session.extra["seen_at"] = now


def _login_methods(collector: CollectorDevice) -> list[str]:
    chosen = {method.strip() for method in (collector.login_methods or "").split(",")}
    return [method for method in LOGIN_METHODS if method in chosen]


# --- enrolment and renewal ---------------------------------------------------------------------------------------


class _SerialMismatch(Exception):
    """Raised inside the enrolment's savepoint, so the code stays usable."""


def _enrol(session: DeviceSession, body: dict) -> dict:
    serial = body.get("serial")
    pki.ensure_ca()  # outside the savepoint: a first CA is committed on its own
    try:
        with db.session.begin_nested():
            collector, certificate, not_after = enrolment.redeem_code(body["code"], body["csr"], session.address)
            if serial is not None and normalize_serial(serial) != normalize_serial(collector.device.serial):
                raise _SerialMismatch
    except _SerialMismatch:
        db.session.expire_all()  # what the savepoint read (the code's used_at) is rolled back too
        message = _("This enrolment code is for another device: check the serial number.")
        raise ProtocolError("invalid_message", message, fields={"serial": message}) from None
    return {
        "certificate": certificate,
        "ca_certificate": pki.ca_certificate_pem(),
        "expires_at": _moment(not_after),
        "device": {"serial": collector.device.serial},
    }


def _renew(session: DeviceSession, body: dict) -> dict:
    collector = _collector(session)
    try:
        certificate, not_after = enrolment.renew(collector, session.certificate_fingerprint or "", body["csr"])
    except enrolment.EnrolmentRefused as refused:
        if refused.reason != "not_due":
            raise
        raise ProtocolError(
            "invalid_message", refused.message, reason="not_due", fields={"csr": refused.message}
        ) from None
    _seen(session, collector)
    return {"certificate": certificate, "ca_certificate": pki.ca_certificate_pem(), "expires_at": _moment(not_after)}


# --- HELLO and HEARTBEAT -----------------------------------------------------------------------------------------


def _hello(session: DeviceSession, body: dict) -> dict:
    versions = [version for version in SUPPORTED_VERSIONS if version <= body["protocol_version"]]
    if not versions:
        raise ProtocolError(
            "unsupported_version",
            _("Protocol version %(version)s is not supported.", version=body["protocol_version"]),
            supported_versions=sorted(SUPPORTED_VERSIONS),
        )
    collector = _collector(session)
    device = collector.device
    if normalize_serial(body["serial"]) != normalize_serial(device.serial):
        message = _("This certificate belongs to the device with serial %(serial)s.", serial=device.serial)
        raise ProtocolError("invalid_message", message, fields={"serial": message})
    version = max(versions)
    session.language = _language(body.get("language"))
    session.protocol_version, session.serial, session.hello_done = version, device.serial, True
    _seen(
        session,
        collector,
        firmware=body["firmware"],
        protocol_version=version,
        capabilities=list(body["capabilities"]),
    )
    now = utcnow()
    customer_id = operations.customer_of_device(device.id, now)
    customer = db.session.get(Partner, customer_id) if customer_id is not None else None
    enrolment.certificate_in_use(collector, session.certificate_fingerprint or "")
    expires_at, renew = enrolment.renewal_due(collector, session.certificate_fingerprint or "")
    language = _device_language(session)
    return {
        "protocol_version": version,
        "server_time": _server_time(),
        "device": {
            "serial": device.serial,
            "model": str(device.model),
            "customer": customer.name if customer else None,
        },
        "login_methods": _login_methods(collector),
        "privacy": {"hide_document_names": bool(customer_id and settings_of(customer_id).hide_document_names)},
        "offline": {"max_jobs": collector.offline_max_jobs, "max_hours": collector.offline_max_hours},
        # The meters readings are checked against (metering refuses others): the model's, in the device's language.
        "meters": [{"code": meter.code, "label": meter.label(language)} for meter in device.model.meters],
        "limits": {
            "max_frame": MAX_FRAME,
            "max_batch": MAX_BATCH,
            "idle_timeout": session.extra.get("idle_timeout", DEFAULT_IDLE_TIMEOUT),
        },
        "certificate": {"expires_at": _moment(expires_at), "renew": renew},
    }


def _heartbeat(session: DeviceSession, body: dict) -> dict:
    _seen(session)
    return {"server_time": _server_time()}


# --- IDENTIFY and AUTHORIZE --------------------------------------------------------------------------------------


def _not_installed(error: ValidationError) -> str | None:
    """The message of a refusal because the device stands at no customer (nothing the device sent is wrong)."""
    return error.errors.get("device_id")


def _claimed_user(session: DeviceSession, body: dict) -> PrintUser | None:
    """The print user a card or username names, for the language of a refusal; None for a PIN alone."""
    if "card" not in body and "username" not in body:
        return None
    customer_id = operations.customer_of_device(session.device_id, utcnow())
    if customer_id is None:
        return None
    if "card" in body:
        card = users.find_by_card(customer_id, body["card"])
        return card.user if card is not None else None
    return users.find_by_username(customer_id, body["username"])


def _identify(session: DeviceSession, body: dict) -> dict:
    collector = _collector(session)
    _seen(session, collector)
    # Whoever identified before is gone from the panel: only a new success names the user of the held jobs.
    session.extra.pop("identified_user_id", None)
    session.extra.pop("release", None)
    given = [method for method, key in (("card", "card"), ("pin", "pin"), ("password", "password")) if key in body]
    if len(given) == 1 and given[0] not in _login_methods(collector):
        return {
            "identified": False,
            "reason": "method_not_allowed",
            "message": _("This way of logging in is not enabled on this device."),
        }
    with _user_locale(session, _claimed_user(session, body)):
        try:
            found = operations.identify(
                session.device_id,
                card=body.get("card"),
                pin=body.get("pin"),
                username=body.get("username"),
                password=body.get("password"),
            )
        except operations.IdentifyRefused as refused:
            answer = {"identified": False, "reason": refused.reason, "message": refused.message}
            if refused.locked_until is not None:
                answer["locked_until"] = _moment(refused.locked_until)
            return answer
        except ValidationError as error:
            if (message := _not_installed(error)) is not None:
                return {"identified": False, "reason": "device_not_installed", "message": message}
            raise
    session.extra["identified_user_id"] = found.user.id
    return {"identified": True, **_plain(found.as_dict())}


def _authorize(session: DeviceSession, body: dict) -> dict:
    _seen(session)
    user_id = body.get("user_id")
    # Held for the request (operations.authorize finds it in the identity map), with the default cost center.
    user = (
        db.session.get(PrintUser, user_id, options=[joinedload(PrintUser.default_cost_center)])
        if isinstance(user_id, int) and 0 < user_id < 2**31
        else None
    )
    with _user_locale(session, user):
        try:
            answer = operations.authorize({**body, "device_id": session.device_id})
        except ValidationError as error:
            if (message := _not_installed(error)) is not None:
                return {"allowed": False, "reason": "device_not_installed", "message": message, "balance": None}
            raise
    return _plain(answer)


# --- TXN and COUNTERS --------------------------------------------------------------------------------------------


def _keep_refused(collector_device_id: int, items: list[dict], results: list[ingest.ItemResult]) -> None:
    """Keep each refused item for staff, once per (device, device_seq): a resent one is already there."""
    now = utcnow()
    rows, seen = [], set()
    for item, result in zip(items, results, strict=True):
        if result.status != "refused" or result.device_seq is None or result.device_seq in seen:
            continue
        seen.add(result.device_seq)
        payload = {key: value for key, value in item.items() if key != "document_name"}
        rows.append(
            {
                "collector_device_id": collector_device_id,
                "device_seq": result.device_seq,
                "received_at": now,
                "errors": json.dumps(result.errors or {}, ensure_ascii=False, sort_keys=True),
                "payload": json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str),
            }
        )
    if not rows:
        return
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[db.session.get_bind().dialect.name]
    db.session.execute(
        insert(RefusedTransaction).on_conflict_do_nothing(index_elements=["collector_device_id", "device_seq"]),
        rows,
    )


def _txn(session: DeviceSession, body: dict) -> dict:
    _seen(session)
    items = body["transactions"]
    results = ingest.record_batch(session.device_id, items)
    _keep_refused(session.collector_device_id, items, results)
    replies = []
    for item, result in zip(items, results, strict=True):
        reply: dict[str, Any] = {"device_seq": result.device_seq, "status": result.status}
        if result.transaction_id is not None:
            reply["transaction_id"] = result.transaction_id
            reply["cost"] = _money(result.cost)
        if result.errors:
            reply["errors"] = dict(result.errors)
        if item.get("held_job_id") is not None:
            reply["held_job"] = _released_by_txn(session, item["held_job_id"], result)
        replies.append(reply)
    counts = {status: sum(result.status == status for result in results) for status in ("stored", "duplicate")}
    return {
        "results": replies,
        "stored": counts["stored"],
        "duplicates": counts["duplicate"],
        "refused": len(results) - counts["stored"] - counts["duplicate"],
    }


def _counters(session: DeviceSession, body: dict) -> dict:
    _seen(session)
    recorded = record_reading(
        session.device_id, body["taken_at"], body["counters"], body.get("supplies"), source="device"
    )
    return {"reading_id": recorded.reading.id, "status": recorded.reading.status, "warnings": list(recorded.warnings)}


# --- held print jobs: HELD_JOBS, RELEASE, DELETE -----------------------------------------------------------------


@dataclass
class _OpenRelease:
    """The document a RELEASE is streaming on this connection (session.extra["release"]): checked and unsealed once,
    at its first chunk; dropped after its last chunk, at the next IDENTIFY, or when another job is asked for."""

    job_id: int
    user_id: int
    document: bytes
    digest: str
    mime_type: str


def _identified_user(session: DeviceSession) -> PrintUser:
    """The print user the last IDENTIFY of this connection found: the held jobs are theirs to see and release."""
    user_id = session.extra.get("identified_user_id")
    user = db.session.get(PrintUser, user_id) if user_id is not None else None
    if user is None:
        raise ProtocolError("identify_required", _("Identify the user at the panel (IDENTIFY) first."))
    return user


def _device_customer(session: DeviceSession) -> int | None:
    return operations.customer_of_device(session.device_id, utcnow())


def _unknown_job() -> str:
    return _("This held job does not exist or cannot be printed at this device.")


def _held_refusal(
    session: DeviceSession, user: PrintUser, job_id: int, error: ValidationError, *, owner_only: bool = False
) -> tuple[str, str]:
    """(reason, message) for a refusal of held_jobs (its message, in the user's language): `reason`, for the
    device's logic, is read from the job. A job of another customer (or none) is "job_unknown" whatever held_jobs
    said: the device learns nothing of it. `owner_only`: a delegate may not do it (DELETE)."""
    customer_id = _device_customer(session)
    if customer_id is None:
        return "device_not_installed", _("This device is not installed at a customer.")
    if "quota" in error.errors:
        return "quota_exceeded", error.errors["quota"]
    job = db.session.get(HeldJob, job_id)
    if job is None or job.customer_id != customer_id or user.customer_id != customer_id:
        return "job_unknown", _unknown_job()
    message = error.errors.get("job") or error.messages()
    if job.user_id != user.id and (owner_only or not held_jobs.may_release_for(user, job.user_id)):
        return "not_yours", message
    if job.state == "expired" or (job.state == "held" and clock.as_utc(job.expires_at) <= utcnow()):
        return "expired", message
    if job.state != "held":
        return "not_held", message
    if not job.user.active:
        return "user_disabled", message
    return "not_allowed", message  # the owner's privileges forbid it (colour, sides, ...)


def _listed(job: HeldJob, user: PrintUser) -> dict[str, Any]:
    owner = None
    if job.user_id != user.id:
        owner = {"id": job.user.id, "username": job.user.username, "full_name": job.user.full_name}
    return {
        "id": job.id,
        "title": job.title,
        "pages": job.pages,
        "copies": job.copies,
        "color": job.color,
        "duplex": job.duplex,
        "paper_size": job.paper_size,
        "size": job.document_size,
        "mime_type": job.mime_type,
        "submitted_at": _moment(job.submitted_at),
        "expires_at": _moment(job.expires_at),
        "estimated_cost": _money(job.estimated_cost),
        "owner": owner,
    }


def _held_jobs(session: DeviceSession, body: dict) -> dict:
    _seen(session)
    user = _identified_user(session)
    jobs = held_jobs.releasable_jobs(user, session.device_id)
    return {"jobs": [_listed(job, user) for job in jobs[:HELD_JOBS_LISTED]], "more": len(jobs) > HELD_JOBS_LISTED}


def _still_held(session: DeviceSession, job_id: int) -> tuple[str, str] | None:
    """None while the job being streamed is held; else (reason, message): deleted or expired meanwhile."""
    state = db.session.scalar(sa.select(HeldJob.state).where(HeldJob.id == job_id))
    if state == "held":
        return None
    if state == "expired":
        return "expired", _("This held job has expired: its document was deleted.")
    if state is None:
        return "job_unknown", _unknown_job()
    return "not_held", _("This held job is no longer waiting: it was printed or deleted.")


def _release(session: DeviceSession, body: dict) -> dict:
    _seen(session)
    user = _identified_user(session)
    job_id, offset = body["job_id"], body["offset"]
    current: _OpenRelease | None = session.extra.get("release")
    with _user_locale(session, user):
        if offset == 0 or current is None or (current.job_id, current.user_id) != (job_id, user.id):
            # The first chunk (or the first on this connection): every check of a release, nothing changed.
            session.extra.pop("release", None)
            try:
                opened = held_jobs.open_release(job_id, user, session.device_id)
            except ValidationError as error:
                reason, message = _held_refusal(session, user, job_id, error)
                return {"allowed": False, "reason": reason, "message": message}
            current = _OpenRelease(job_id, user.id, opened.document, opened.digest, opened.job.mime_type)
            # Who released it, for the TXN that reports the print (charged to the owner, whose quota was checked).
            session.extra.setdefault("releasers", {})[job_id] = user.id
        elif (gone := _still_held(session, job_id)) is not None:
            session.extra.pop("release", None)
            return {"allowed": False, "reason": gone[0], "message": gone[1]}
        size = len(current.document)
        if offset >= size:
            session.extra.pop("release", None)
            message = _("The document has %(size)d bytes: the offset must be below that.", size=size)
            raise ProtocolError("invalid_message", message, fields={"offset": message})
    chunk = current.document[offset : offset + RELEASE_CHUNK]
    last = offset + len(chunk) >= size
    if last:
        session.extra.pop("release", None)
    else:
        session.extra["release"] = current
    return {
        "allowed": True,
        "job_id": job_id,
        "offset": offset,
        "length": len(chunk),
        "size": size,
        "digest": current.digest,
        "mime_type": current.mime_type,
        "data": base64.b64encode(chunk).decode("ascii"),
        "last": last,
    }


def _delete(session: DeviceSession, body: dict) -> dict:
    _seen(session)
    user = _identified_user(session)
    job_id = body["job_id"]
    with _user_locale(session, user):
        job = db.session.get(HeldJob, job_id)
        if job is None or job.customer_id != _device_customer(session):
            return {"deleted": False, "reason": "job_unknown", "message": _unknown_job()}
        try:
            held_jobs.delete_held_job(job_id, user)
        except ValidationError as error:
            reason, message = _held_refusal(session, user, job_id, error, owner_only=True)
            return {"deleted": False, "reason": reason, "message": message}
    current = session.extra.get("release")
    if current is not None and current.job_id == job_id:
        session.extra.pop("release", None)
    return {"deleted": True, "job_id": job_id}


def _released_by_txn(session: DeviceSession, job_id: int, result: ingest.ItemResult) -> dict[str, Any]:
    """Mark the held job a TXN item printed as released by its stored transaction (again for a duplicate: the same
    transaction, so nothing changes). The job printed: a job that cannot be marked never refuses its transaction.
    Released by the user who fetched it on this connection (a delegate, maybe), else by the transaction's user."""
    answer: dict[str, Any] = {"id": job_id, "released": False}
    if result.status == "refused" or result.transaction_id is None:
        answer["message"] = _("The job stays held: its transaction was refused.")
        return answer
    transaction = db.session.get(Transaction, result.transaction_id)
    releaser_id = session.extra.get("releasers", {}).get(job_id)
    user = db.session.get(PrintUser, releaser_id) if releaser_id is not None else None
    user = user or (transaction.user if transaction is not None else None)
    if user is None:
        answer["message"] = _("A held job is released by a user: send the user_id of its owner.")
        return answer
    try:
        with db.session.begin_nested():
            held_jobs.mark_released(job_id, session.device_id, user, transaction)
    except ValidationError as error:
        answer["message"] = error.messages()
        return answer
    session.extra.get("releasers", {}).pop(job_id, None)
    answer["released"] = True
    return answer


HANDLERS: dict[str, Callable[[DeviceSession, dict], dict]] = {
    "ENROL": _enrol,
    "RENEW": _renew,
    "HELLO": _hello,
    "IDENTIFY": _identify,
    "AUTHORIZE": _authorize,
    "TXN": _txn,
    "COUNTERS": _counters,
    "HEARTBEAT": _heartbeat,
    "HELD_JOBS": _held_jobs,
    "RELEASE": _release,
    "DELETE": _delete,
}
