"""Device collector back office, what arrives: the live view of the last jobs from the devices, and the jobs a
device sent that the checks refused."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from flask import abort, jsonify, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import BaseSQLAFilter, FilterLike
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from core import labels
from core.admin import SecuredModelView, SecuredView
from core.db import contains, db, utcnow
from modules.device_accounting.admin import load_trees
from modules.device_accounting.admin_money import money
from modules.device_accounting.models import CostCenter, PrintUser, Transaction
from modules.device_collector.admin import VIEW, read_json
from modules.device_collector.models import CollectorDevice, RefusedTransaction
from modules.rentals.models import Device, DeviceModel

LIVE_ROWS = 50

# The fields of a job a device reports, as a refused job's errors name them.
JOB_FIELD_LABELS = {
    "device_seq": _l("Device's job number"),
    "user_id": _l("Print user"),
    "cost_center_id": _l("Cost center"),
    "function": _l("Function"),
    "sides_bw": _l("Black and white sides"),
    "sides_color": _l("Colour sides"),
    "sheets": _l("Sheets"),
    "paper_size": _l("Paper size"),
    "duplex": _l("Duplex"),
    "status": _l("Outcome"),
    "started_at": _l("Started"),
    "ended_at": _l("Ended"),
    "document_name": _l("Document"),
}


# Refused jobs.


class RefusedSerialFilter(BaseSQLAFilter):
    """Refused jobs of the devices whose serial number contains the text."""

    def apply(self, query: Any, value: Any, alias: Any = None) -> Any:
        devices = (
            sa.select(CollectorDevice.id)
            .join(Device, Device.id == CollectorDevice.device_id)
            .where(contains(Device.serial, value))
        )
        return query.filter(RefusedTransaction.collector_device_id.in_(devices))

    def operation(self) -> Any:
        return _l("contains")


def refused_errors(refused: RefusedTransaction) -> list[tuple[str, str]]:
    """(field label, problem) of each error, as the domain said it to the device."""
    errors = read_json(refused.errors)
    if not isinstance(errors, dict):
        return [("", str(refused.errors or ""))]
    return [(str(JOB_FIELD_LABELS.get(field.split(".")[0], field)), str(problem)) for field, problem in errors.items()]


def _errors_column(view: Any, context: Any, model: RefusedTransaction, name: str) -> str:
    return "; ".join(f"{field}: {problem}" if field else problem for field, problem in refused_errors(model))


class RefusedView(SecuredModelView):
    """Jobs a device sent that the checks refused (an unknown user, counts that do not add up): the device was told
    and dropped them, so nothing waits at the device; here staff see what was wrong."""

    permission = VIEW
    allow_create = False
    allow_edit = False
    details_template = "device_collector/admin/refused_details.html"
    column_list = ("collector_device", "collector_device.device.customer", "device_seq", "received_at", "errors")
    column_details_list = ("collector_device", "collector_device.device.customer", "device_seq", "received_at")
    column_export_list = ("collector_device", "device_seq", "received_at", "errors")
    column_labels = {
        "collector_device": _l("Device"),
        "collector_device_id": _l("Device"),
        "collector_device.device.customer": _l("Customer"),
        "device_seq": _l("Device's job number"),
        "received_at": _l("Received"),
        "errors": _l("What was wrong"),
        "payload": _l("What the device sent"),
    }
    column_formatters = {
        "errors": _errors_column,
        "device_seq": lambda view, context, model, name: str(model.device_seq),
    }
    column_formatters_export = {"errors": _errors_column}
    column_filters = (
        RefusedSerialFilter(RefusedTransaction.collector_device_id, _l("Serial number")),
        FilterLike(RefusedTransaction.errors, _l("What was wrong")),
    )
    column_sortable_list = ("received_at", "device_seq")
    column_default_sort = ("received_at", True)

    def get_query(self):
        device = selectinload(RefusedTransaction.collector_device).selectinload(CollectorDevice.device)
        return (
            super()
            .get_query()
            .options(
                device.selectinload(Device.model).selectinload(DeviceModel.manufacturer),
                device.selectinload(Device.customer),
            )
        )

    @expose("/details/")
    def details_view(self):
        refused = self.get_one(request.args.get("id", ""))
        if refused is None:
            abort(404)
        self._template_args.update(errors=refused_errors(refused), sent=refused_summary(refused))
        return super().details_view()


def refused_summary(refused: RefusedTransaction) -> dict[str, Any]:
    """What the device sent, readable: the job's fields by their labels, its print user and cost center by name when
    they exist, and the raw JSON for the technical details."""
    payload = read_json(refused.payload)
    if not isinstance(payload, dict):
        return {"rows": [], "raw": refused.payload or ""}
    rows: list[tuple[str, Any]] = []
    for field, value in payload.items():
        if field not in JOB_FIELD_LABELS or field == "device_seq":
            continue
        shown: Any = value
        if field in ("user_id", "cost_center_id") and isinstance(value, int) and 0 < value < 2**31:
            record = db.session.get(PrintUser if field == "user_id" else CostCenter, value)
            shown = labels.record_link(record) if record is not None else _("not found")
        elif field == "function":
            shown = labels.enum_label("device_accounting.function", value)
        elif field == "status":
            shown = labels.enum_label("device_accounting.job_status", value)
        elif field == "paper_size":
            shown = labels.enum_label("device_accounting.paper_size", value)
        elif field == "duplex" and isinstance(value, bool):
            shown = _("Yes") if value else _("No")
        elif field in ("started_at", "ended_at") and isinstance(value, str):
            try:
                shown = labels.local_datetime(dt.datetime.fromisoformat(value))
            except ValueError:
                shown = value
        elif isinstance(value, int) and not isinstance(value, bool):
            shown = labels.number(value)
        rows.append((str(JOB_FIELD_LABELS[field]), shown))
    return {"rows": rows, "raw": json.dumps(payload, indent=2, ensure_ascii=False)}


# The live view.


def latest_jobs(limit: int = LIVE_ROWS) -> list[Transaction]:
    """The last jobs the collector stored (the devices enrolled with it), newest first, with what their rows name."""
    found = list(
        db.session.scalars(
            sa.select(Transaction)
            .where(Transaction.device_id.in_(sa.select(CollectorDevice.device_id)))
            .options(
                selectinload(Transaction.device).selectinload(Device.model).selectinload(DeviceModel.manufacturer),
                selectinload(Transaction.customer),
                selectinload(Transaction.user),
                selectinload(Transaction.cost_center),
            )
            .order_by(Transaction.id.desc())
            .limit(limit)
        )
    )
    load_trees({tx.customer_id for tx in found if tx.cost_center_id})  # cost centers are named by their path
    return found


def _named(record: Any) -> dict[str, str | None] | None:
    if record is None:
        return None
    return {"name": labels.record_label(record), "url": labels.record_url(record)}


def job_row(tx: Transaction) -> dict[str, Any]:
    """One job as the live view shows it: every record by its name and link, money and moments in the reader's
    language and the dealer's time zone, codes by their labels."""
    return {
        "url": url_for("device_accounting_transaction.details_view", id=tx.id),
        "ended_at": labels.local_datetime(tx.ended_at, "medium"),
        "received_at": labels.local_datetime(tx.received_at, "medium"),
        "device": _named(tx.device),
        "customer": _named(tx.customer),
        "user": _named(tx.user),
        "cost_center": _named(tx.cost_center),
        "function": labels.enum_label("device_accounting.function", tx.function),
        "sides_bw": labels.number(tx.sides_bw),
        "sides_color": labels.number(tx.sides_color),
        "status": labels.enum_label("device_accounting.job_status", tx.status),
        "cost": money(tx.cost),
    }


class LiveView(SecuredView):
    """The last jobs from the devices on the collector, refreshed every few seconds while the page is open."""

    permission = VIEW
    REFRESH_SECONDS = 5

    @expose("/")
    def index(self):
        rows = [job_row(tx) for tx in latest_jobs()]
        return self.render(
            "device_collector/admin/live.html",
            rows=rows,
            feed_url=url_for(".feed"),
            refresh_ms=self.REFRESH_SECONDS * 1000,
            limit=LIVE_ROWS,
            updated=labels.local_datetime(utcnow(), "medium"),
        )

    @expose("/feed.json")
    def feed(self):
        rows = [job_row(tx) for tx in latest_jobs()]
        response = jsonify({"updated": labels.local_datetime(utcnow(), "medium"), "transactions": rows})
        response.headers["Cache-Control"] = "no-store"
        return response
