"""/api/v1/devices/{id}/shipments: a device's consumable shipments, and shipping consumables to it."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from sqlalchemy.orm import selectinload

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.auth.scoping import confined_customer, customer_scoped
from core.db import db
from core.validation import ValidationError
from modules.rentals.models import Device
from modules.rentals_inventory import shipments
from modules.rentals_inventory.models import SHIPMENT_STATES, Shipment

shipments_blp = ApiBlueprint(
    "rentals_inventory_shipments",
    __name__,
    url_prefix="/devices",
    description="Consumable shipments to devices (toner, drums), billable or not by the device's contract.",
)

# The domain functions name the product and the location; the API's body names their ids.
BODY_FIELDS = {"product": "product_id", "from_location": "from_location_id", "device": "device_id"}


class ShipmentSchema(ma.Schema):
    id = Integer()
    device_id = Integer()
    customer_id = Integer()
    product_id = Integer(allow_none=True, metadata={"description": "None while a portal request awaits a product."})
    product_code = String(allow_none=True)
    colour = String(allow_none=True)
    quantity = DecimalString()
    state = String(metadata={"description": "One of: " + ", ".join(SHIPMENT_STATES)})
    billable = Boolean(metadata={"description": "Invoiced as a consumable sale (the contract excludes consumables)."})
    billed = Boolean()
    from_location_id = Integer(allow_none=True, metadata={"description": "Staff only: None for a customer's token."})
    from_location = String(allow_none=True, metadata={"description": "Staff only: None for a customer's token."})
    ship_date = ma.fields.Date(allow_none=True)
    unit_price = DecimalString(allow_none=True)
    requested_level = Integer(allow_none=True)
    requested_at = UtcDateTime(allow_none=True)
    shipped_at = UtcDateTime(allow_none=True)
    note = String(
        allow_none=True,
        metadata={"description": "Staff notes; a customer's token sees only the note of its own pending request."},
    )

    @ma.pre_dump
    def _flatten(self, shipment: Shipment, **kwargs: Any) -> dict[str, Any]:
        keys = (
            "id",
            "device_id",
            "customer_id",
            "product_id",
            "colour",
            "quantity",
            "state",
            "billable",
            "billed",
            "from_location_id",
            "ship_date",
            "unit_price",
            "requested_level",
            "requested_at",
            "shipped_at",
            "note",
        )
        shown = {
            **{key: getattr(shipment, key) for key in keys},
            "product_code": shipment.product.code if shipment.product else None,
            "from_location": shipment.from_location.name if shipment.from_location else None,
        }
        if confined_customer(api_user()) is not None:
            # The dealer's own: which shelf or van it left from, and staff notes (a request still shows its own).
            own_note = shipment.state == "requested" and shipment.requested_by_id is not None
            shown.update(from_location_id=None, from_location=None, note=shipment.note if own_note else None)
        return shown


class ShipmentCreateSchema(ma.Schema):
    product_id = id_field(required=True)
    quantity = DecimalString(required=True, metadata={"description": "More than zero, at most 3 decimals."})
    from_location_id = id_field(required=True, metadata={"description": "A warehouse, shelf or van."})
    ship_date = ma.fields.Date(metadata={"description": "Defaults to the dealer's today."})
    billable = Boolean(
        allow_none=True,
        metadata={"description": "Defaults to the device's contract: not when it includes consumables."},
    )
    serials = ma.fields.List(String(validate=ma.validate.Length(min=1, max=60)), validate=ma.validate.Length(max=500))
    note = String(allow_none=True, validate=ma.validate.Length(max=2000))


class ShipmentListArgs(PageArgs):
    state = String(validate=ma.validate.OneOf(SHIPMENT_STATES))


def _device(device_id: int) -> Device:
    return get_or_404(customer_scoped(db.select(Device), Device.customer_id, api_user()).where(Device.id == device_id))


@shipments_blp.route(f"/<{ID_PATH}:device_id>/shipments")
class DeviceShipments(MethodView):
    @require("inventory.view", "portal.access")
    @shipments_blp.arguments(ShipmentListArgs, location="query")
    @shipments_blp.response(200, page_schema(ShipmentSchema))
    @shipments_blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any], device_id: int):
        """List a device's shipments

        Newest first. A customer's token sees the shipments made to its own company only.
        """
        _device(device_id)
        query = customer_scoped(
            db.select(Shipment).options(selectinload(Shipment.product), selectinload(Shipment.from_location)),
            Shipment.customer_id,
            api_user(),
        ).where(Shipment.device_id == device_id)
        if args.get("state"):
            query = query.where(Shipment.state == args["state"])
        return paginate(query.order_by(Shipment.created_at.desc(), Shipment.id.desc()), args)

    @require("inventory.edit", "inventory.van")
    @shipments_blp.arguments(ShipmentCreateSchema)
    @shipments_blp.response(201, ShipmentSchema)
    @shipments_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], device_id: int):
        """Ship consumables to a device

        A delivery move from `from_location_id` (a warehouse, shelf or van; a technician only from their own van)
        to the customer location. The product must fit the device's model. `billable` defaults to the device's
        contract on the ship date; a billable shipment is invoiced once by the next billing run.
        """
        device = _device(device_id)
        with committing():
            try:
                shipment = shipments.ship(
                    device.id,
                    data["product_id"],
                    data["quantity"],
                    data["from_location_id"],
                    ship_date=data.get("ship_date"),
                    billable=data.get("billable"),
                    user=api_user(),
                    serials=data.get("serials") or (),
                    note=data.get("note"),
                )
            except ValidationError as error:
                raise ValidationError(
                    {BODY_FIELDS.get(key, key): message for key, message in error.errors.items()}
                ) from None
        return shipment, 201
