"""/api/v1/consumption-check: the consumption check's figures per device and toner colour over a window."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask.views import MethodView

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.errors import ApiProblem
from core.api.fields import DecimalString, Integer
from core.api.helpers import answering, get_or_404, id_field
from core.auth.scoping import confined_customer, customer_scoped
from modules.metering_inventory.consumption import VERDICTS, CheckRow, check_window, consumption_check, quantized
from modules.metering_inventory.consumption import tolerance as current_tolerance
from modules.rentals.models import Device

blp = ApiBlueprint(
    "metering_inventory_api",
    __name__,
    url_prefix="/consumption-check",
    description="The toner consumption check: pages printed against cartridges used.",
)


class CheckArgs(ma.Schema):
    customer_id = id_field()
    device_id = id_field()
    from_ = ma.fields.Date(
        data_key="from", metadata={"description": "First day of the window (default: 12 months ago)."}
    )
    to = ma.fields.Date(metadata={"description": "Last day of the window (default: today)."})


class CheckRowSchema(ma.Schema):
    device_id = Integer(attribute="device.id")
    serial = ma.fields.String(attribute="device.serial")
    customer_id = Integer()
    customer = ma.fields.String(attribute="contract.customer.name")
    contract = ma.fields.String(attribute="contract.number")
    colour = ma.fields.String(metadata={"enum": ["black", "cyan", "magenta", "yellow"]})
    from_ = ma.fields.Date(data_key="from", attribute="start")
    to = ma.fields.Date(attribute="end")
    pages = Integer(allow_none=True, metadata={"description": "Pages that use this toner; null without readings."})
    coverage = DecimalString(metadata={"description": "The contract's assumed coverage in percent."})
    yield_pages = DecimalString(
        data_key="yield", allow_none=True, metadata={"description": "Pages a cartridge yields."}
    )
    shipped = DecimalString(metadata={"description": "Cartridges shipped to the device in the window (S)."})
    level_from = Integer(allow_none=True)
    level_to = Integer(allow_none=True)
    expected = DecimalString(allow_none=True, metadata={"description": "E = pages x coverage / 5 / yield."})
    consumed = DecimalString(metadata={"description": "U = S + (level_from - level_to) / 100."})
    ratio = DecimalString(allow_none=True, metadata={"description": "R = U / E; null when E is 0."})
    verdict = ma.fields.String(metadata={"enum": list(VERDICTS)})
    explained = ma.fields.Boolean()


class CheckSchema(ma.Schema):
    from_ = ma.fields.Date(data_key="from")
    to = ma.fields.Date()
    tolerance = DecimalString()
    items = ma.fields.List(ma.fields.Nested(CheckRowSchema))


def _shown(row: CheckRow) -> dict[str, Any]:
    return {
        "device": row.device,
        "customer_id": row.customer_id,
        "contract": row.contract,
        "colour": row.colour,
        "start": row.start,
        "end": row.end,
        "pages": row.pages,
        "coverage": row.coverage,
        "yield_pages": None if row.yield_pages is None else quantized(row.yield_pages, "1"),
        "shipped": row.shipped,
        "level_from": row.level_from,
        "level_to": row.level_to,
        "expected": None if row.expected is None else quantized(row.expected),
        "consumed": quantized(row.consumed),
        "ratio": None if row.ratio is None else quantized(row.ratio),
        "verdict": row.verdict,
        "explained": row.explained is not None,
    }


@blp.route("")
class ConsumptionCheck(MethodView):
    @require("inventory.view", "portal.readings")
    @blp.arguments(CheckArgs, location="query")
    @blp.response(200, CheckSchema)
    def get(self, args: dict[str, Any]):
        """The consumption check

        Per device and toner colour over the window (default: the last 12 months, or since the device came to the
        customer): `pages` from the accepted readings, `expected` cartridges E, `consumed` cartridges U, `ratio` R and
        the `verdict` (`over_consumption`, `under_consumption`, `normal`, or `unknown` without readings or a yield).
        Figures are decimal strings to two places. A customer's token sees only its own devices.
        """
        user = api_user()
        own = confined_customer(user)
        customer_id = args.get("customer_id")
        if own is not None:
            if customer_id is not None and customer_id != own:
                raise ApiProblem(404)
            customer_id = own
        device_id = args.get("device_id")
        if device_id is not None:
            get_or_404(customer_scoped(sa.select(Device).where(Device.id == device_id), Device.customer_id, user))
        with answering():
            start, end = check_window(args.get("from_"), args.get("to"))
            rows = consumption_check(customer_id, device_id, start, end)
        return {"from_": start, "to": end, "tolerance": current_tolerance(), "items": [_shown(row) for row in rows]}
