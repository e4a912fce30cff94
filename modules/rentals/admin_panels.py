"""Rentals' panels on other records' back-office pages: a customer's contracts and devices."""

from __future__ import annotations

import sqlalchemy as sa
from flask import url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core.db import db
from core.extension_points import RecordLink, RecordPanel
from core.labels import enum_label, local_date, record_label, record_url
from core.models import Partner
from core.permissions import has_permission
from modules.rentals.models import Contract, Device

SHOWN = 10


class RentalsPanels:
    """Customer -> its contracts and the devices standing at it (the contract and device pages are rentals' own)."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if kind != "customer":
            return []
        customer = db.session.get(Partner, record_id)
        if customer is None:
            return []
        panels = []
        if has_permission(current_user, "contracts.view"):
            contracts = db.session.scalars(
                sa.select(Contract)
                .where(Contract.customer_id == record_id)
                .order_by(Contract.start_date.desc(), Contract.id.desc())
                .limit(SHOWN)
            ).all()
            panels.append(
                RecordPanel(
                    _("Contracts"),
                    tuple(
                        RecordLink(
                            record_label(contract),
                            record_url(contract) or "",
                            f"{enum_label('contract.state', contract.state)} · {local_date(contract.start_date)}",
                        )
                        for contract in contracts
                    ),
                    more=RecordLink(
                        _("All contracts of %(customer)s", customer=customer.name),
                        url_for("rentals_contract.index_view", search=customer.name),
                    ),
                    empty=_("No contracts yet."),
                )
            )
        if has_permission(current_user, "devices.view"):
            devices = db.session.scalars(
                sa.select(Device)
                .where(Device.customer_id == record_id)
                .options(selectinload(Device.model))
                .order_by(Device.serial)
                .limit(SHOWN)
            ).all()
            panels.append(
                RecordPanel(
                    _("Devices"),
                    tuple(
                        RecordLink(record_label(device), record_url(device) or "", device.site or "")
                        for device in devices
                    ),
                    more=RecordLink(
                        _("All devices of %(customer)s", customer=customer.name),
                        url_for("rentals_device.index_view", search=customer.name),
                    ),
                    empty=_("No devices at this customer."),
                )
            )
        return panels
