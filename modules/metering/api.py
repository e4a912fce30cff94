"""/api/v1/readings and /api/v1/devices/{id}/meter-replacements: readings in and out, meter replacements."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask.views import MethodView
from flask_babel import gettext as _

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.errors import ApiProblem
from core.api.fields import Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.auth.scoping import confined_customer, customer_scoped
from core.db import db
from core.permissions import has_permission, is_staff
from core.validation import MAX_COUNTER
from modules.metering.history import replacements
from modules.metering.models import READING_STATUSES, Reading
from modules.metering.readings import approve_reading, record_reading, reject_reading
from modules.metering.replacements import record_replacement
from modules.metering.scoping import visible_readings
from modules.metering.validation import ENTRY_SOURCES
from modules.rentals.models import Device

CUSTOMER_SOURCES = ("api", "portal")

readings_blp = ApiBlueprint(
    "metering_readings", __name__, url_prefix="/readings", description="Meter readings of devices."
)
replacements_blp = ApiBlueprint(
    "metering_replacements", __name__, url_prefix="/devices", description="Meter replacements and resets."
)


class ReadingInSchema(ma.Schema):
    device_id = id_field(required=True)
    taken_at = UtcDateTime(
        required=True,
        metadata={"description": "When the counters were read; without a UTC offset, the dealer's local time."},
    )
    counters = ma.fields.Dict(
        keys=String(validate=ma.validate.Length(min=1, max=20)),
        values=ma.fields.Raw(metadata={"type": "integer", "minimum": 0, "maximum": MAX_COUNTER}),
        required=True,
        metadata={"description": 'Counters by meter, e.g. {"bw": 12345, "color": 2345}; some meters may be left out.'},
    )
    supplies = ma.fields.Dict(
        keys=String(validate=ma.validate.Length(min=1, max=20)),
        values=ma.fields.Raw(metadata={"type": "integer", "minimum": 0, "maximum": 100}),
        metadata={"description": 'Toner levels in percent by colour (black, cyan, magenta, yellow): {"black": 40}.'},
    )
    source = String(
        validate=ma.validate.OneOf(ENTRY_SOURCES),
        metadata={"description": "The channel (default api); a customer's token may send api or portal."},
    )


class ReadingSchema(ma.Schema):
    id = Integer()
    device_id = Integer()
    serial = ma.fields.String(attribute="device.serial")
    taken_at = UtcDateTime()
    counters = ma.fields.Dict(keys=ma.fields.String(), values=Integer())
    supplies = ma.fields.Dict(keys=ma.fields.String(), values=Integer(), attribute="supply_levels")
    source = ma.fields.String()
    status = ma.fields.String(metadata={"enum": list(READING_STATUSES)})
    reason = ma.fields.String(allow_none=True, metadata={"description": "Why it waits for review or was rejected."})
    warnings = ma.fields.List(ma.fields.String(), attribute="warning_list")
    created_at = UtcDateTime()


class ReadingListArgs(PageArgs):
    device_id = id_field()
    since = UtcDateTime(metadata={"description": "Readings taken at or after this moment."})
    until = UtcDateTime(metadata={"description": "Readings taken at or before this moment."})
    status = String(validate=ma.validate.OneOf(READING_STATUSES))


class ReplacementSchema(ma.Schema):
    id = Integer(dump_only=True)
    device_id = Integer(dump_only=True)
    date = ma.fields.Date(required=True, metadata={"description": "The day of the replacement or reset."})
    meter = String(required=True, validate=ma.validate.Length(min=1, max=20))
    old_final = ma.fields.Raw(required=True, metadata={"type": "integer", "description": "The old meter's last value."})
    new_start = ma.fields.Raw(required=True, metadata={"type": "integer", "description": "The new meter's value."})
    notes = String(allow_none=True, validate=ma.validate.Length(max=2000))


def _visible_device_query(device_id: int) -> sa.Select:
    return customer_scoped(sa.select(Device).where(Device.id == device_id), Device.customer_id, api_user())


@readings_blp.route("")
class Readings(MethodView):
    @require("readings.view", "portal.readings")
    @readings_blp.arguments(ReadingListArgs, location="query")
    @readings_blp.response(200, page_schema(ReadingSchema))
    def get(self, args: dict[str, Any]):
        """List readings

        Newest first. A customer's token lists only the readings taken while the device was on one of its
        contracts: a device that moved from another customer brings none of that customer's readings along.
        """
        query = visible_readings(sa.select(Reading), api_user()).order_by(Reading.taken_at.desc(), Reading.id.desc())
        if args.get("device_id"):
            query = query.where(Reading.device_id == args["device_id"])
        if args.get("since"):
            query = query.where(Reading.taken_at >= args["since"])
        if args.get("until"):
            query = query.where(Reading.taken_at <= args["until"])
        if args.get("status"):
            query = query.where(Reading.status == args["status"])
        return paginate(query, args)

    @require("readings.edit", "portal.readings")
    @readings_blp.arguments(ReadingInSchema)
    @readings_blp.response(201, ReadingSchema)
    @readings_blp.alt_response(200, schema=ReadingSchema, description="The same reading was already stored.")
    def post(self, data: dict[str, Any]):
        """Record a reading

        Validated like every other channel: a counter lower than the last accepted one (without a recorded meter
        replacement) is refused with `422` naming `counters.<meter>`; a jump far beyond the device's usual volume is
        stored with status `pending_review` for staff to check. `warnings` lists meters that were not given. Sending
        the same device, time and counters again answers `200` with the reading already stored. A customer's token
        may send only readings dated while the device is on one of its contracts (else `422` naming `taken_at`).
        """
        user = api_user()
        if db.session.scalars(_visible_device_query(data["device_id"])).first() is None:
            raise ApiProblem(422, errors={"device_id": _("There is no device with id %(id)s.", id=data["device_id"])})
        source = data.get("source", "api")
        if not is_staff(user) and source not in CUSTOMER_SOURCES:
            raise ApiProblem(422, errors={"source": _("Choose one of: %(choices)s", choices="api, portal")})
        with committing():
            recorded = record_reading(
                data["device_id"],
                data["taken_at"],
                data["counters"],
                data.get("supplies"),
                source,
                entered_by=user.id,
                customer_id=confined_customer(user),
            )
        return recorded.reading, 201 if recorded.created else 200


@readings_blp.route(f"/<{ID_PATH}:reading_id>")
class ReadingItem(MethodView):
    @require("readings.view", "portal.readings")
    @readings_blp.response(200, ReadingSchema)
    def get(self, reading_id: int):
        """Get a reading

        A customer's token gets only a reading of its own tenure (see the list); any other answers `404`.
        """
        return get_or_404(visible_readings(sa.select(Reading).where(Reading.id == reading_id), api_user()))


class RejectSchema(ma.Schema):
    reason = String(required=True, metadata={"description": "Why the reading is rejected (at most 500 characters)."})


def _held_reading(reading_id: int) -> Reading:
    """A reading for a reviewer: staff with `readings.edit` only; to anyone else it does not exist."""
    user = api_user()
    if not is_staff(user) or not has_permission(user, "readings.edit"):
        raise ApiProblem(404)
    return get_or_404(sa.select(Reading).where(Reading.id == reading_id))


def _review_status(errors: dict[str, str]) -> int:
    return 409 if "status" in errors else 422


@readings_blp.route(f"/<{ID_PATH}:reading_id>/approve")
class ReadingApproval(MethodView):
    @readings_blp.response(200, ReadingSchema)
    @readings_blp.doc(responses={404: "NOT_FOUND", 409: "CONFLICT"})
    def post(self, reading_id: int):
        """Accept a reading held for review

        For staff who review readings (`readings.edit`); to any other token the reading does not exist (`404`). The
        reading is checked again against what was recorded since; a reading not held for review answers `409`. The
        reading request it answers is completed at once.
        """
        reading = _held_reading(reading_id)
        with committing(_review_status):
            approve_reading(reading, api_user().id)
        return reading


@readings_blp.route(f"/<{ID_PATH}:reading_id>/reject")
class ReadingRejection(MethodView):
    @readings_blp.arguments(RejectSchema)
    @readings_blp.response(200, ReadingSchema)
    @readings_blp.doc(responses={404: "NOT_FOUND", 409: "CONFLICT"})
    def post(self, data: dict[str, Any], reading_id: int):
        """Reject a reading held for review

        For staff who review readings (`readings.edit`); to any other token the reading does not exist (`404`).
        `reason` is required (`422` naming `reason` when empty); a reading not held for review answers `409`. A
        reading request it completed opens again at once (overdue when its deadline has passed), unless another
        reading answers it.
        """
        reading = _held_reading(reading_id)
        with committing(_review_status):
            reject_reading(reading, api_user().id, data["reason"])
        return reading


@replacements_blp.route(f"/<{ID_PATH}:device_id>/meter-replacements")
class Replacements(MethodView):
    @require("readings.view")
    @replacements_blp.response(200, ReplacementSchema(many=True))
    def get(self, device_id: int):
        """List a device's meter replacements

        Oldest first.
        """
        get_or_404(_visible_device_query(device_id))
        return replacements(device_id)

    @require("readings.edit")
    @replacements_blp.arguments(ReplacementSchema)
    @replacements_blp.response(201, ReplacementSchema)
    def post(self, data: dict[str, Any], device_id: int):
        """Record a meter replacement or reset

        From `date` on, the meter counts from `new_start`: a lower counter is accepted, and usage across the
        replacement is (old_final - previous reading) + (current - new_start).
        """
        get_or_404(_visible_device_query(device_id))
        with committing():
            event = record_replacement(
                device_id,
                data["date"],
                data["meter"],
                data["old_final"],
                data["new_start"],
                entered_by=api_user().id,
                notes=data.get("notes"),
            )
        return event
