"""The customer's reading portal: devices with their last and due readings, the counter form with a review step, the
confirmation, the history, and the page an emailed request link opens.

Two ways in: a portal login (customer_admin, customer_user: permission portal.readings) sees all of its customer's
devices; an emailed link grants the browser session that one request's page only (see campaigns.py). Every reading
goes through readings.record_reading, as staff, API and CSV readings do, so the checks and messages are the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, make_response, redirect, render_template, request, session, url_for
from flask_babel import force_locale, format_date, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm import selectinload

from core.auth.scoping import confined_customer, customer_or_404, customer_scoped
from core.auth.services import user_language
from core.auth.views import csrf_failed
from core.clock import as_utc, local_date
from core.db import db, utcnow
from core.models import Partner
from core.outbox import queue_email
from core.permissions import has_permission
from core.portal import portal_view
from core.validation import ValidationError
from modules.metering import campaigns, scoping
from modules.metering.history import KnownValue, devices_last_values, local_time, meter_label, stays
from modules.metering.models import SUPPLY_COLOURS, Reading, ReadingRequest, ReadingRequestItem
from modules.metering.readings import record_reading
from modules.metering.validation import CLOCK_SKEW, typed_counter, typed_number_symbols, validate_reading
from modules.rentals.models import Contract, ContractLine, Device, DeviceModel

bp = Blueprint(
    "metering_portal",
    __name__,
    url_prefix="/portal/readings",
    static_folder="static",
    static_url_path="/static",
)
bp.register_error_handler(CSRFError, csrf_failed)

GRANTS_KEY = "metering_requests"
CONFIRMED_KEY = "metering_confirmed"
# The review step fixes the reading's time; confirming within this window keeps it, so a double click stores one.
REVIEW_WINDOW = dt.timedelta(hours=2)
HISTORY_LIMIT = 100
COLOUR_LABELS = {"black": _l("Black"), "cyan": _l("Cyan"), "magenta": _l("Magenta"), "yellow": _l("Yellow")}
STATUS_LABELS = {
    "accepted": _l("Received"),
    "pending_review": _l("Being checked"),
    "rejected": _l("Not accepted"),
    "estimated": _l("Estimated"),
}
SHOWN_STATUSES = tuple(STATUS_LABELS)


@dataclass
class Field:
    """One input of the form: a meter's counter or a toner level, with what the customer typed and its error."""

    name: str
    label: str
    value: str = ""
    error: str | None = None
    previous: KnownValue | None = None


@dataclass
class Entry:
    """One device in the form: its meters and toner levels, and what checking them found."""

    device: Device
    meters: list[Field]
    toners: list[Field]
    due: dt.date | None = None
    error: str | None = None
    skipped: bool = False
    held: bool = False
    counters: dict[str, int] = field(default_factory=dict)
    supplies: dict[str, int] = field(default_factory=dict)

    @property
    def blank(self) -> bool:
        return not any(f.value.strip() for f in (*self.meters, *self.toners))

    @property
    def invalid(self) -> bool:
        return bool(self.error) or any(f.error for f in (*self.meters, *self.toners))


# Who may see what


def _with_models(query: sa.Select) -> sa.Select:
    """`query` (a select of Device) loading the model, make and meters the pages show with it, not once per device."""
    return query.options(
        selectinload(Device.model).options(selectinload(DeviceModel.manufacturer), selectinload(DeviceModel.meters))
    )


def customer_devices(customer_id: int) -> list[Device]:
    """The devices now on the customer's contracts, with the model and meters the pages show."""
    query = (
        _with_models(sa.select(Device))
        .join(ContractLine, ContractLine.device_id == Device.id)
        .join(Contract, Contract.id == ContractLine.contract_id)
        .where(
            Contract.customer_id == customer_id,
            Contract.state.in_(("active", "suspended")),
            ContractLine.end_date.is_(None),
        )
        .order_by(Device.serial)
    )
    return list(db.session.scalars(query).unique())


def customer_readings(
    customer_id: int,
    device_ids: list[int] | None = None,
    limit: int = HISTORY_LIMIT,
    customer_stays: list | None = None,
) -> list:
    """The customer's readings the portal shows, newest first: only those of its tenure (see scoping.py)."""
    return scoping.customer_readings(customer_id, device_ids, SHOWN_STATUSES, limit, customer_stays)


def _granted(request_id: int) -> bool:
    """Whether this session opened a link of the request that is still valid in the database (it may have expired or
    been moved earlier since; the session keeps only the link's id)."""
    link_id = session.get(GRANTS_KEY, {}).get(str(request_id))
    return campaigns.link_valid(link_id, request_id)


def allowed_request(request_id: int) -> ReadingRequest:
    """The request, when a still valid emailed link opened it in this session or a user of its customer asks; else
    404, or 410 when this session's link has expired."""
    reading_request = db.session.get(ReadingRequest, request_id) if 0 < request_id < 2**31 else None
    if reading_request is None:
        abort(404)
    if has_permission(current_user, "portal.readings") and confined_customer() == reading_request.customer_id:
        return reading_request
    if _granted(request_id):
        return reading_request
    if str(request_id) in session.get(GRANTS_KEY, {}):
        abort(make_response(render_template("metering/portal/link_error.html", reason="expired"), 410))
    abort(404)


def portal_url(endpoint: str, **values: Any) -> str:
    """A link within the reading pages; a visitor who came by an emailed link keeps the language it opened in."""
    if not current_user.is_authenticated and "lang" not in values:
        locale = get_locale()
        values["lang"] = locale.language if locale else None
    return url_for(endpoint, **values)


@bp.context_processor
def _helpers() -> dict:
    return {
        "portal_url": portal_url,
        "meter_label": meter_label,
        "colour_labels": COLOUR_LABELS,
        "status_labels": STATUS_LABELS,
        "show_time": local_time,
        "show_date": lambda value: format_date(local_date(value)),
        "number_symbols": typed_number_symbols,
    }


# The form


def build_entries(
    devices: list[Device], customer_id: int, form: Any = None, due: dict[int, dt.date] | None = None
) -> list[Entry]:
    """The form's entries for `devices`, filled with what was posted, each counter beside the last value known while
    the device was the customer's."""
    language = get_locale().language if get_locale() else "en"
    form = form or {}
    entries = []
    last_of = devices_last_values(devices, customer_id)
    for device in devices:
        last = last_of[device.id]
        meters = [
            Field(
                name=f"d{device.id}-{meter.code}",
                label=meter.label(language),
                value=str(form.get(f"d{device.id}-{meter.code}", ""))[:40],
                previous=last.get(meter.code),
            )
            for meter in device.model.meters
        ]
        colours = SUPPLY_COLOURS if device.model.color else ("black",)
        toners = [
            Field(
                name=f"d{device.id}-toner-{colour}",
                label=str(COLOUR_LABELS[colour]),
                value=str(form.get(f"d{device.id}-toner-{colour}", ""))[:10],
            )
            for colour in colours
        ]
        entries.append(Entry(device, meters, toners, due=(due or {}).get(device.id)))
    return entries


def check(entries: list[Entry], taken_at: dt.datetime, customer_id: int) -> bool:
    """Validate every filled-in device as record_reading will; blank devices are skipped. True when all are fine."""
    for entry in entries:
        entry.error = None
        entry.skipped = entry.blank
        if entry.skipped:
            continue
        for meter in entry.meters:
            meter.error = None
            if not meter.value.strip():
                meter.error = _("Enter the %(meter)s counter.", meter=meter.label)
        for toner in entry.toners:
            toner.error = None
        entry.counters = {m.name.rsplit("-", 1)[1]: typed_counter(m.value) for m in entry.meters if m.value.strip()}
        entry.supplies = {t.name.rsplit("-", 1)[1]: t.value.strip() for t in entry.toners if t.value.strip()}
        try:
            checked = validate_reading(
                entry.device, taken_at, entry.counters, entry.supplies, source="portal", customer_id=customer_id
            )
        except ValidationError as exc:
            _place_errors(entry, exc.errors)
            continue
        entry.counters, entry.supplies = checked.counters, checked.supplies
        entry.held = checked.status == "pending_review"
    return not any(entry.invalid for entry in entries) and not all(entry.skipped for entry in entries)


def _place_errors(entry: Entry, errors: dict[str, str]) -> None:
    fields = {f"counters.{m.name.rsplit('-', 1)[1]}": m for m in entry.meters}
    fields.update({f"supplies.{t.name.rsplit('-', 1)[1]}": t for t in entry.toners})
    for name, message in errors.items():
        target = fields.get(name)
        if target is not None:
            target.error = target.error or message
        else:
            entry.error = message


def submit(entries: list[Entry], taken_at: dt.datetime, user_id: int | None, customer_id: int) -> list[Reading] | None:
    """Record every checked entry in one transaction; on any error nothing is written and the errors are placed."""
    readings = []
    for entry in entries:
        if entry.skipped:
            continue
        try:
            recorded = record_reading(
                entry.device,
                taken_at,
                entry.counters,
                entry.supplies,
                source="portal",
                entered_by=user_id,
                customer_id=customer_id,
            )
        except ValidationError as exc:
            db.session.rollback()
            _place_errors(entry, exc.errors)
            return None
        readings.append(recorded.reading)
    return readings


def _taken_at(posted: str | None) -> dt.datetime:
    """The moment fixed by the review step, when it is recent; else now."""
    now = utcnow().replace(microsecond=0)
    try:
        when = as_utc(dt.datetime.fromisoformat(posted or ""))
    except ValueError:
        return now
    return when if now - REVIEW_WINDOW <= when <= now + CLOCK_SKEW else now


def _confirmation(readings: list[Reading], customer: Partner, recipients: list[str], language: str) -> None:
    if not recipients:
        return
    entries = [
        {
            "model": str(reading.device.model),
            "serial": reading.device.serial,
            "taken_at": reading.taken_at,
            "counters": [
                (next((m.label(language) for m in reading.device.model.meters if m.code == code), code), value)
                for code, value in reading.counters.items()
            ],
            "held": reading.status == "pending_review",
        }
        for reading in readings
    ]
    with_times = [{**entry, "taken_at": _local_text(entry["taken_at"], language)} for entry in entries]
    queue_email(
        recipients,
        "metering/confirmation",
        language,
        {"customer": customer, "entries": with_times},
        dedupe_key=f"reading-confirmation:{min(r.id for r in readings)}",
    )


def _local_text(value: dt.datetime, language: str) -> str:
    with force_locale(language):
        return local_time(value)


def _entry_page(
    devices: list[Device],
    customer: Partner,
    reading_request: ReadingRequest | None,
    action: str,
    due: dict[int, dt.date],
):
    """GET: the form; POST step=review: check and show the numbers; step=confirm: record them; step=edit: back."""
    posted = request.method == "POST"
    entries = build_entries(devices, customer.id, request.form if posted else None, due)
    step = request.form.get("step") if posted else None
    values = {"entries": entries, "customer": customer, "reading_request": reading_request, "action": action}
    if step not in ("review", "confirm"):
        return render_template("metering/portal/enter.html", **values)
    taken_at = _taken_at(request.form.get("taken_at")) if step == "confirm" else utcnow().replace(microsecond=0)
    if not check(entries, taken_at, customer.id):
        nothing = all(entry.skipped for entry in entries)
        form_error = _("Enter the counters of at least one device.") if nothing else None
        return render_template("metering/portal/enter.html", form_error=form_error, **values), 422
    if step == "review":
        return render_template("metering/portal/review.html", taken_at=taken_at, **values)
    user_id = current_user.id if current_user.is_authenticated else None
    readings = submit(entries, taken_at, user_id, customer.id)
    if readings is None:
        return render_template("metering/portal/enter.html", **values), 422
    _complete_requests(customer.id, reading_request, readings)
    if current_user.is_authenticated:
        _confirmation(readings, customer, [current_user.email], user_language(current_user))
    else:
        _confirmation(readings, customer, campaigns.reading_contacts(customer), customer.language)
    db.session.commit()
    session[CONFIRMED_KEY] = [reading.id for reading in readings]
    if reading_request is not None:
        return redirect(portal_url(".done", request_id=reading_request.id))
    return redirect(portal_url(".done"))


def _complete_requests(customer_id: int, reading_request: ReadingRequest | None, readings: list[Reading]) -> None:
    """The readings just sent answer the request they were sent for, and may answer the customer's other ones."""
    query = sa.select(ReadingRequest).where(
        ReadingRequest.customer_id == customer_id, ReadingRequest.status.in_(("pending", "overdue"))
    )
    campaigns.refresh_all(db.session.scalars(query.order_by(ReadingRequest.id)).all())
    if reading_request is not None:
        campaigns.answer(reading_request, readings)


def _due_dates(customer_id: int) -> dict[int, dt.date]:
    """For each device of the customer still waiting on a request, the earliest due date asked."""
    rows = db.session.execute(
        sa.select(ReadingRequestItem.device_id, sa.func.min(ReadingRequest.due_date))
        .join(ReadingRequest, ReadingRequest.id == ReadingRequestItem.request_id)
        .where(
            ReadingRequest.customer_id == customer_id,
            ReadingRequest.status.in_(("pending", "overdue")),
            ReadingRequestItem.reading_id.is_(None),
        )
        .group_by(ReadingRequestItem.device_id)
    )
    return dict(rows.all())


# Pages


@bp.route("/")
@portal_view("portal.readings")
def index():
    customer_id = customer_or_404()
    devices = customer_devices(customer_id)
    due = _due_dates(customer_id)
    requests = db.session.scalars(
        customer_scoped(
            sa.select(ReadingRequest).where(ReadingRequest.status.in_(("pending", "overdue"))),
            ReadingRequest.customer_id,
        ).order_by(ReadingRequest.due_date)
    ).all()
    held = stays(customer_id)  # read once for the last counters and the recent readings
    return render_template(
        "metering/portal/index.html",
        devices=devices,
        last=devices_last_values(devices, customer_id, held),
        due=due,
        requests=requests,
        recent=customer_readings(customer_id, limit=5, customer_stays=held),
    )


@bp.route("/enter", methods=("GET", "POST"))
@portal_view("portal.readings")
def enter():
    customer_id = customer_or_404()
    devices = customer_devices(customer_id)
    wanted = request.args.get("device", type=int)
    if wanted is not None:
        devices = [device for device in devices if device.id == wanted]
        if not devices:
            abort(404)
    return _entry_page(
        devices,
        db.session.get(Partner, customer_id),
        None,
        url_for(".enter", device=wanted),
        _due_dates(customer_id),
    )


@bp.route("/request/<int:request_id>", methods=("GET", "POST"))
def request_page(request_id: int):
    reading_request = allowed_request(request_id)
    waiting = campaigns.open_items(reading_request)
    if not waiting:
        return render_template(
            "metering/portal/request_done.html",
            reading_request=reading_request,
            readings=customer_readings(
                reading_request.customer_id, [item.device_id for item in reading_request.items], limit=20
            ),
        )
    loaded = {
        device.id: device
        for device in db.session.scalars(
            _with_models(sa.select(Device)).where(Device.id.in_([item.device_id for item in waiting]))
        )
    }
    return _entry_page(
        [loaded[item.device_id] for item in waiting],
        reading_request.customer,
        reading_request,
        portal_url(".request_page", request_id=request_id),
        {item.device_id: reading_request.due_date for item in waiting},
    )


@bp.route("/link/<token>")
def open_link(token: str):
    try:
        reading_request, link = campaigns.open_link(token)
    except campaigns.LinkError as exc:
        status = 410 if exc.reason == "expired" else 404
        return render_template("metering/portal/link_error.html", reason=exc.reason), status
    db.session.commit()
    grants = {key: value for key, value in session.get(GRANTS_KEY, {}).items() if _granted(int(key))}
    grants[str(reading_request.id)] = link.id
    session[GRANTS_KEY] = grants
    language = None if current_user.is_authenticated else reading_request.customer.language
    return redirect(url_for(".request_page", request_id=reading_request.id, lang=language))


@bp.route("/done")
@bp.route("/done/<int:request_id>")
def done(request_id: int | None = None):
    reading_request = allowed_request(request_id) if request_id is not None else None
    if reading_request is None and not has_permission(current_user, "portal.readings"):
        abort(404)
    customer_id = reading_request.customer_id if reading_request is not None else customer_or_404()
    readings = scoping.readings_by_id(customer_id, session.get(CONFIRMED_KEY) or [])
    if not readings:
        if reading_request is not None:
            return redirect(portal_url(".request_page", request_id=reading_request.id))
        return redirect(url_for(".index"))
    return render_template("metering/portal/done.html", readings=readings, reading_request=reading_request)


@bp.route("/history")
@portal_view("portal.readings")
def history():
    customer_id = customer_or_404()
    devices = customer_devices(customer_id)
    wanted = request.args.get("device", type=int)
    if wanted is not None and wanted not in {device.id for device in devices}:
        abort(404)
    readings = customer_readings(customer_id, [wanted] if wanted is not None else None)
    return render_template("metering/portal/history.html", devices=devices, readings=readings, wanted=wanted)
