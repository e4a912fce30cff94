"""Inventory on other back-office pages: the dashboard's card of products to reorder, and a customer's deliveries
and returns from stock on the customer's page."""

from __future__ import annotations

from flask import url_for
from flask_babel import gettext as _
from flask_login import current_user

from core import clock
from core.db import db
from core.extension_points import DashboardCard, RecordLink, RecordPanel
from core.labels import number, record_label, record_url
from core.models import Partner
from core.permissions import has_permission
from modules.inventory import reorder
from modules.inventory.admin import VIEW
from modules.inventory.admin_stock import last_moves
from modules.inventory.models import StockMove

SHOWN = 10


class InventoryDashboard:
    """Products at or below their reorder minimum today (the same list the daily email sends)."""

    def dashboard_cards(self) -> list[DashboardCard]:
        if not has_permission(current_user, VIEW):
            return []
        due = reorder.suggestions(clock.today())
        return [DashboardCard(_("Products to reorder"), number(len(due)), url_for("inventory_to_reorder.index"))]


class InventoryPanels:
    """Customer -> the last deliveries to it and returns from it, each a link to its move."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if kind != "customer" or not has_permission(current_user, VIEW):
            return []
        customer = db.session.get(Partner, record_id)
        if customer is None:
            return []
        moves = last_moves(StockMove.partner_id == record_id, StockMove.kind.in_(("delivery", "return")), limit=SHOWN)
        return [
            RecordPanel(
                _("Deliveries from stock"),
                tuple(
                    RecordLink(
                        record_label(move),
                        record_url(move) or "",
                        " · ".join(part for part in (move.product.description, move.reference or "") if part),
                    )
                    for move in moves
                ),
                more=RecordLink(
                    _("All stock moves of %(customer)s", customer=customer.name),
                    url_for("inventory_move.index_view", search=customer.name),
                ),
                empty=_("Nothing delivered from stock yet."),
            )
        ]
