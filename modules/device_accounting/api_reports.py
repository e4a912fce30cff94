"""/api/v1/device-accounting/reports/usage: a customer's usage by user, cost center, device, function or time."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import Response
from flask.views import MethodView
from flask_babel import gettext as _

from core.api import register_api
from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.errors import ApiProblem
from core.api.fields import DecimalString, Integer, String
from core.api.helpers import answering, id_field
from core.auth.scoping import confined_customer
from core.context import ModuleContext
from core.db import db
from core.models import Partner
from modules.device_accounting import reports
from modules.device_accounting.models import FUNCTIONS

blp = ApiBlueprint(
    "device_accounting_reports",
    __name__,
    url_prefix="/device-accounting/reports",
    description="Job accounting reports: the usage of a customer's MFPs, from the daily rollups.",
)
FORMATS = ("json", "csv")


class UsageArgs(ma.Schema):
    customer_id = id_field(
        metadata={"description": "The customer; required for staff, a customer's token may leave it out."}
    )
    group_by = String(required=True, validate=ma.validate.OneOf(reports.GROUP_BYS))
    since = ma.fields.Date(required=True, metadata={"description": "The first day (the dealer's), inclusive."})
    until = ma.fields.Date(required=True, metadata={"description": "The last day (the dealer's), inclusive."})
    user_id = id_field(metadata={"description": "Only this print user's jobs."})
    cost_center_id = id_field(metadata={"description": "Only this cost center's jobs, with those under it."})
    device_id = id_field(metadata={"description": "Only this device's jobs."})
    function = String(validate=ma.validate.OneOf(FUNCTIONS))
    format = String(
        validate=ma.validate.OneOf(FORMATS),
        metadata={"description": "json (default) or csv (UTF-8 with BOM, headers in the caller's language)."},
    )


class FiguresSchema(ma.Schema):
    jobs = Integer()
    sides_bw = Integer()
    sides_color = Integer()
    sheets = Integer()
    cost = DecimalString(places=4, metadata={"description": "Cost less refunds, 4 places."})


class UsageRowSchema(FiguresSchema):
    key = ma.fields.Raw(
        allow_none=True,
        metadata={
            "description": "The group: a user, cost center or device id (null: none), a function code, a day "
            "(2026-03-05) or a month (2026-03)."
        },
    )
    label = ma.fields.String(metadata={"description": "The group's name in the caller's language."})
    depth = Integer(metadata={"description": "Cost centers only: the level in the tree (0 at the top)."})


class UsageReportSchema(ma.Schema):
    customer_id = Integer()
    group_by = ma.fields.String()
    since = ma.fields.Date()
    until = ma.fields.Date()
    rows = ma.fields.List(ma.fields.Nested(UsageRowSchema))
    totals = ma.fields.Nested(FiguresSchema)


def _customer(args: dict[str, Any]) -> int:
    """The customer asked for: a customer's token gets its own (another's id answers as an unknown one)."""
    confined = confined_customer(api_user())
    wanted = args.get("customer_id")
    unknown = ApiProblem(422, errors={"customer_id": _("There is no customer with id %(id)s.", id=wanted)})
    if confined is not None:
        if wanted is not None and wanted != confined:
            raise unknown
        return confined
    if wanted is None:
        raise ApiProblem(422, errors={"customer_id": _("Choose the customer.")})
    if db.session.scalar(sa.select(Partner.id).where(Partner.id == wanted)) is None:
        raise unknown
    return wanted


@blp.route("/usage")
class Usage(MethodView):
    @require("print_accounting.view", "portal.print_accounting")
    @blp.arguments(UsageArgs, location="query")
    @blp.response(200, UsageReportSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY")
    def get(self, args: dict[str, Any]):
        """Usage of a customer's devices

        Sides (black and white, colour), sheets, jobs and cost (less refunds) from `since` to `until`, the dealer's
        days, inclusive, grouped by `user`, `cost_center` (each row includes the cost centers under it: its
        `depth` gives its level, and `totals` is the customer's whole usage), `device`, `function`, `day` or
        `month` (every day or month of the range, zeros included). Users and devices come by cost, highest first.
        `since` after `until` is a `422` naming `until`. A customer's token reads only its own customer.
        `format=csv` answers the rows as CSV instead (`text/csv`).
        """
        customer_id = _customer(args)
        filters = {name: args[name] for name in ("user_id", "cost_center_id", "device_id", "function") if name in args}
        since, until, group_by = args["since"], args["until"], args["group_by"]
        with answering():
            if args.get("format") == "csv":
                content = reports.usage_csv(customer_id, group_by, since, until, **filters)
                response = Response(content.encode("utf-8"), content_type="text/csv; charset=utf-8")
                name = reports.export_filename(since, until, "csv")
                response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
                return response
            rows = reports.usage(customer_id, group_by, since, until, **filters)
            total = (
                reports.totals(reports.usage(customer_id, "function", since, until, **filters))
                if group_by == "cost_center"
                else reports.totals(rows)
            )
        return {
            "customer_id": customer_id,
            "group_by": group_by,
            "since": since,
            "until": until,
            "rows": rows,
            "totals": total,
        }


def register(ctx: ModuleContext) -> None:
    register_api(ctx.app, blp)
