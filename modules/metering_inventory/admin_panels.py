"""The consumption check on a device's page: its verdict per toner over the default window, linking to the detail."""

from __future__ import annotations

from flask import url_for
from flask_babel import gettext as _
from flask_login import current_user

from core.extension_points import RecordLink, RecordPanel
from core.permissions import has_permission
from modules.metering_inventory import consumption
from modules.metering_inventory.admin import COLOUR_LABELS, VERDICT_LABELS


class ConsumptionPanels:
    """Device -> its consumption check (default window), one line per toner with E, U and the verdict."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if kind != "device" or not has_permission(current_user, "inventory.view"):
            return []
        url = url_for("metering_inventory_check.device", device_id=record_id)
        items = []
        for row in consumption.consumption_check(None, record_id):
            verdict = str(VERDICT_LABELS[row.verdict])
            if row.explained is not None:
                verdict = _("%(verdict)s, explained", verdict=verdict)
            figures = (
                ""
                if row.expected is None
                else _(
                    "E %(expected)s, U %(consumed)s",
                    expected=consumption.quantized(row.expected),
                    consumed=consumption.quantized(row.consumed),
                )
            )
            items.append(
                RecordLink(str(COLOUR_LABELS[row.colour]), url, " · ".join(t for t in (verdict, figures) if t))
            )
        return [
            RecordPanel(
                _("Consumption check"),
                tuple(items),
                more=RecordLink(_("Shipments and readings"), url),
                empty=_("This device was on no contract in this window."),
            )
        ]
