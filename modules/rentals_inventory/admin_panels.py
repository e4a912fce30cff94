"""The bridge's panels on other records' pages: a device's shipments (and "Ship consumables"), a customer's toner
requests waiting and latest shipments; the dashboard card of requests to confirm."""

from __future__ import annotations

import sqlalchemy as sa
from flask import url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core.db import db
from core.extension_points import DashboardCard, RecordLink, RecordPanel
from core.labels import enum_label, local_date, number, record_label, record_url
from core.permissions import has_permission
from modules.rentals_inventory.models import Shipment

SHOWN = 10


def _detail(shipment: Shipment) -> str:
    when = local_date(shipment.ship_date) if shipment.ship_date else local_date(shipment.requested_at.date())
    parts = [enum_label("shipment.state", shipment.state), when]
    if shipment.billable:
        parts.append(_("billable"))
    return " · ".join(parts)


def _links(shipments: list[Shipment]) -> tuple[RecordLink, ...]:
    return tuple(RecordLink(record_label(s), record_url(s) or "", _detail(s)) for s in shipments)


def _shipments(*where) -> list[Shipment]:
    return list(
        db.session.scalars(
            sa.select(Shipment)
            .options(selectinload(Shipment.product), selectinload(Shipment.device))
            .where(*where)
            .order_by(Shipment.created_at.desc(), Shipment.id.desc())
            .limit(SHOWN)
        )
    )


class ShipmentPanels:
    """Device -> its shipments; customer -> its toner requests waiting and its latest shipments."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if kind not in ("device", "customer") or not has_permission(current_user, "inventory.view"):
            return []
        if kind == "device":
            actions = ()
            if has_permission(current_user, "inventory.edit"):
                actions = (
                    RecordLink(
                        _("Ship consumables"), url_for("rentals_inventory_shipment.create_view", device_id=record_id)
                    ),
                )
            return [
                RecordPanel(
                    _("Consumable shipments"),
                    _links(_shipments(Shipment.device_id == record_id)),
                    actions=actions,
                    empty=_("No consumables shipped to this device yet."),
                )
            ]
        waiting = _shipments(Shipment.customer_id == record_id, Shipment.state == "requested")
        latest = _shipments(Shipment.customer_id == record_id, Shipment.state == "shipped")
        return [
            RecordPanel(_("Toner requests to confirm"), _links(waiting), empty=_("No toner request is waiting.")),
            RecordPanel(
                _("Consumable shipments"),
                _links(latest),
                more=RecordLink(
                    _("All shipments"), url_for("rentals_inventory_shipment.index_view", customer_id=record_id)
                ),
                empty=_("No consumables shipped to this customer yet."),
            ),
        ]


class ShipmentDashboard:
    """Toner requests from the portal waiting for the dealer to confirm them."""

    def dashboard_cards(self) -> list[DashboardCard]:
        if not has_permission(current_user, "inventory.view"):
            return []
        waiting = db.session.scalar(sa.select(sa.func.count()).where(Shipment.state == "requested")) or 0
        return [
            DashboardCard(
                _("Toner requests to confirm"),
                number(waiting),
                url_for("rentals_inventory_shipment.index_view", state="requested"),
            )
        ]
