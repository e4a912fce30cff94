"""The collector on other back-office pages: a device's collector state with its actions (enrol, revoke) on the
rentals device page, and the dashboard's card of enrolled devices not seen for a day."""

from __future__ import annotations

import sqlalchemy as sa
from flask import url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core.db import db
from core.extension_points import DashboardCard, RecordLink, RecordPanel
from core.labels import enum_label, local_datetime, number
from core.permissions import has_permission
from modules.device_collector.admin import VIEW, can_manage
from modules.device_collector.enrolment import code_condition, current_certificate, device_state, state_condition
from modules.device_collector.models import CollectorDevice, EnrolmentCode
from modules.rentals.models import Device


class CollectorPanels:
    """Device -> whether it is enrolled with the collector, when it was last heard of, its certificate, and the
    buttons to create an enrolment code or revoke it."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if kind != "device" or not has_permission(current_user, VIEW):
            return []
        device = db.session.get(Device, record_id)
        if device is None:
            return []
        enrolled = db.session.scalar(
            sa.select(CollectorDevice)
            .where(CollectorDevice.device_id == record_id)
            .options(selectinload(CollectorDevice.certificates))
        )
        open_code = db.session.scalar(
            sa.select(EnrolmentCode)
            .where(EnrolmentCode.device_id == record_id, code_condition("open"))
            .order_by(EnrolmentCode.created_at.desc())
            .limit(1)
        )
        items: list[RecordLink] = []
        state = device_state(enrolled) if enrolled is not None else None
        if enrolled is not None:
            page = url_for("device_collector_device.details_view", id=enrolled.id)
            if state == "revoked":
                detail = _("on %(moment)s", moment=local_datetime(enrolled.revoked_at))
                if enrolled.revoked_reason:
                    detail = f"{detail}: {enrolled.revoked_reason}"
            elif enrolled.last_seen_at is not None:
                detail = _("last seen %(moment)s", moment=local_datetime(enrolled.last_seen_at))
            else:
                detail = _("enrolled %(moment)s", moment=local_datetime(enrolled.enrolled_at))
            items.append(RecordLink(enum_label("device_collector.state", state), page, detail))
            certificate = current_certificate(enrolled) if state != "revoked" else None
            if certificate is not None:
                items.append(
                    RecordLink(
                        _("Certificate"), page, _("expires %(moment)s", moment=local_datetime(certificate.not_after))
                    )
                )
            if enrolled.firmware:
                items.append(RecordLink(_("Firmware"), page, enrolled.firmware))
        if open_code is not None:
            items.append(
                RecordLink(
                    _("Enrolment code waiting to be used"),
                    url_for("device_collector_code.details_view", id=open_code.id),
                    _("until %(moment)s", moment=local_datetime(open_code.expires_at)),
                )
            )
        actions: list[RecordLink] = []
        if can_manage() and device.status != "retired":
            enrol = _("Enrol again") if enrolled is not None else _("Enrol with the collector")
            actions.append(RecordLink(enrol, url_for("device_collector_code.enrol", device_id=record_id)))
            if enrolled is not None and state != "revoked":
                actions.append(RecordLink(_("Revoke"), url_for("device_collector_device.revoke", id=enrolled.id)))
        return [
            RecordPanel(
                _("Device collector"),
                tuple(items),
                more=RecordLink(_("Enrolled devices"), url_for("device_collector_device.index_view")),
                actions=tuple(actions),
                empty=_("Not enrolled with the collector: the device does not report to Copydesk by itself yet."),
            )
        ]


class CollectorDashboard:
    """Enrolled devices not heard of for a day (switched off, unplugged, or the app stopped)."""

    def dashboard_cards(self) -> list[DashboardCard]:
        if not has_permission(current_user, VIEW):
            return []
        stale = db.session.scalar(
            sa.select(sa.func.count()).select_from(CollectorDevice).where(state_condition("stale"))
        )
        return [
            DashboardCard(
                _("Devices not seen for a day"),
                number(stale or 0),
                url_for("device_collector_device.index_view", state="stale"),
            )
        ]
