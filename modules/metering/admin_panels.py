"""Metering on other records' pages and on the dashboard: readings, requests and missing readings, each a link."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core import clock, labels
from core.admin import SecuredView
from core.db import db
from core.extension_points import DashboardCard, RecordLink, RecordPanel
from core.labels import local_date, local_datetime, number, record_url
from core.models import Partner
from core.permissions import has_permission
from modules.metering.admin import STATUS_LABELS
from modules.metering.admin_campaigns import BOARD_LABELS
from modules.metering.billing import all_missing_readings, missing_readings
from modules.metering.history import meter_label
from modules.metering.models import Reading, ReadingRequest, ReadingRequestItem
from modules.rentals.models import Contract, ContractLine, Device

SHOWN = 10


def enter_reading(device_id: int) -> RecordLink:
    """The staff entry page with the device chosen."""
    return RecordLink(_("Enter a reading"), url_for("metering_entry.index", device_id=device_id))


def _reading_link(reading: Reading) -> RecordLink:
    counters = ", ".join(f"{meter_label(v.meter)} {number(v.value)}" for v in reading.values)
    detail = f"{counters} · {STATUS_LABELS.get(reading.status, reading.status)}"
    url = record_url(reading) or url_for("metering_reading.details_view", id=reading.id)
    return RecordLink(local_datetime(reading.taken_at), url, detail)


def _request_link(item_request: ReadingRequest) -> RecordLink:
    label = _("Due %(date)s", date=local_date(item_request.due_date))
    url = url_for("metering_campaigns.index", q=item_request.customer.name)
    return RecordLink(label, url, str(BOARD_LABELS.get(item_request.status, item_request.status)))


def _readings(*where: sa.ColumnElement[bool]) -> list[Reading]:
    return list(
        db.session.scalars(
            sa.select(Reading)
            .where(*where)
            .options(selectinload(Reading.values))
            .order_by(Reading.taken_at.desc(), Reading.id.desc())
            .limit(SHOWN)
        )
    )


def contract_missing(contract: Contract, as_of: dt.date) -> list[dict]:
    return [item for item in missing_readings(contract.customer_id, as_of) if item["contract_id"] == contract.id]


def missing_link(item: dict) -> RecordLink:
    """A missing reading as a link to the entry page for its device."""
    period = f"{local_date(item['period_start'])} \u2013 {local_date(item['period_end'])}"
    label = f"{item['serial']} · {meter_label(item['meter'])} · {period}"
    detail = _("a reading closes the period until %(date)s", date=local_date(item["grace_until"]))
    return RecordLink(label, enter_reading(item["device_id"]).url, detail)


class MeteringPanels:
    """Device -> readings, requests; contract -> readings, missing readings; customer -> reading requests."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if not has_permission(current_user, "readings.view"):
            return []
        if kind == "device":
            return self._device(record_id)
        if kind == "contract":
            return self._contract(record_id)
        if kind == "customer":
            customer = db.session.get(Partner, record_id)
            return [] if customer is None else [self._requests(ReadingRequest.customer_id == record_id, customer.name)]
        return []

    def record_actions(self, kind: str, record_id: int) -> list[RecordLink]:
        if kind == "device" and has_permission(current_user, "readings.edit"):
            return [enter_reading(record_id)]
        return []

    def _actions(self, device_id: int) -> tuple[RecordLink, ...]:
        return tuple(self.record_actions("device", device_id))

    def _device(self, device_id: int) -> list[RecordPanel]:
        device = db.session.get(Device, device_id)
        if device is None:
            return []
        readings = RecordPanel(
            _("Readings"),
            tuple(_reading_link(reading) for reading in _readings(Reading.device_id == device_id)),
            more=RecordLink(
                _("All readings of %(serial)s", serial=device.serial),
                url_for("metering_reading.index_view", search=device.serial),
            ),
            actions=self._actions(device_id),
            empty=_("No readings yet."),
        )
        on_request = sa.select(ReadingRequestItem.request_id).where(ReadingRequestItem.device_id == device_id)
        return [
            readings,
            self._requests(ReadingRequest.id.in_(on_request), device.customer.name if device.customer else ""),
        ]

    def _requests(self, where: sa.ColumnElement[bool], customer_name: str) -> RecordPanel:
        found = db.session.scalars(
            sa.select(ReadingRequest)
            .where(where)
            .options(selectinload(ReadingRequest.customer))
            .order_by(ReadingRequest.due_date.desc(), ReadingRequest.id.desc())
            .limit(SHOWN)
        ).all()
        return RecordPanel(
            _("Reading requests"),
            tuple(_request_link(found_request) for found_request in found),
            more=RecordLink(_("Reading requests board"), url_for("metering_campaigns.index", q=customer_name)),
            empty=_("No reading requests yet."),
        )

    def _contract(self, contract_id: int) -> list[RecordPanel]:
        contract = db.session.get(Contract, contract_id)
        if contract is None:
            return []
        lines = db.session.scalars(sa.select(ContractLine).where(ContractLine.contract_id == contract_id)).all()
        # The readings taken while each device was on this contract.
        stays = [
            sa.and_(
                Reading.device_id == line.device_id,
                Reading.taken_at >= clock.day_start(line.start_date),
                *(
                    ()
                    if line.end_date is None
                    else (Reading.taken_at < clock.day_start(line.end_date + dt.timedelta(1)),)
                ),
            )
            for line in lines
        ]
        readings = _readings(sa.or_(*stays)) if stays else []
        devices = {line.device_id: line.device for line in lines}
        panel = RecordPanel(
            _("Readings"),
            tuple(
                RecordLink(link.label, link.url, f"{devices[r.device_id].serial} · {link.detail}")
                for r in readings
                for link in (_reading_link(r),)
            ),
            more=RecordLink(
                _("All readings of %(customer)s", customer=contract.customer.name),
                url_for("metering_reading.index_view", search=contract.customer.name),
            ),
            empty=_("No readings of this contract's devices yet."),
        )
        missing = RecordPanel(
            _("Missing readings"),
            tuple(missing_link(item) for item in contract_missing(contract, clock.today())),
            more=RecordLink(_("All missing readings"), url_for("metering_missing.index")),
            empty=_("No reading is missing: every ended period can be billed."),
        )
        return [panel, missing]


def all_missing(as_of: dt.date) -> list[dict]:
    """What a billing run as of `as_of` would list as missing, over every customer with a billable contract."""
    return all_missing_readings(as_of)


class MeteringDashboard:
    """Readings to review, requests overdue, readings missing for a run today."""

    def dashboard_cards(self) -> list[DashboardCard]:
        if not has_permission(current_user, "readings.view"):
            return []

        def count(model, *where) -> int:
            return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0

        review = count(Reading, Reading.status == "pending_review")
        overdue = count(ReadingRequest, ReadingRequest.status == "overdue")
        return [
            DashboardCard(_("Readings to review"), number(review), url_for("metering_review.index")),
            DashboardCard(
                _("Reading requests overdue"), number(overdue), url_for("metering_campaigns.index", status="overdue")
            ),
            DashboardCard(
                _("Readings missing for billing"),
                number(len(all_missing(clock.today()))),
                url_for("metering_missing.index"),
            ),
        ]


class MissingReadingsView(SecuredView):
    """Every period a billing run today could not bill for lack of a closing reading, each with a link to enter it."""

    permission = "readings.view"

    @expose("/")
    def index(self):
        today = clock.today()
        items = all_missing(today)
        contracts = {
            c.id: c
            for c in db.session.scalars(
                sa.select(Contract)
                .where(Contract.id.in_({item["contract_id"] for item in items}))
                .options(selectinload(Contract.customer))
            )
        }
        labels.preload("meter", {item["meter"] for item in items})
        rows = [(item, contracts[item["contract_id"]], missing_link(item)) for item in items]
        return self.render(
            "metering/admin/missing.html",
            rows=rows,
            today=today,
            can_enter=has_permission(current_user, "readings.edit"),
            meter_label=meter_label,
        )
