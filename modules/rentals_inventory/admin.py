"""Back office of the bridge: shipments (ship consumables to a device, confirm or cancel portal requests) and which
products fit which device models."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload
from wtforms.validators import ValidationError as FormError

from core import labels
from core.admin import SecuredModelView, arg_id
from core.db import db
from core.validation import ValidationError
from modules.inventory.models import REAL_KINDS, Location, Product
from modules.rentals.devices import normalize_serial
from modules.rentals.models import Consumable, Device, DeviceModel
from modules.rentals_inventory import shipments
from modules.rentals_inventory.models import ProductFit, Shipment

VIEW = "inventory.view"
EDIT = "inventory.edit"
STATE_LABELS = {"requested": _l("Requested"), "shipped": _l("Shipped"), "cancelled": _l("Cancelled")}
TABLES = {"rentals_inventory_product_fit": _l("Product fit"), "rentals_inventory_shipment": _l("Shipment")}
FIELD_LABELS = {
    "device": _l("Device"),
    "product": _l("Product"),
    "quantity": _l("Quantity"),
    "from_location": _l("From"),
    "ship_date": _l("Ship date"),
    "serials": _l("Serial numbers"),
    "shipment": _l("Shipment"),
    "note": _l("Notes"),
}


def dealer_locations() -> list[Location]:
    """The warehouses, shelves and vans consumables ship from."""
    return list(
        db.session.scalars(
            sa.select(Location).where(Location.kind.in_(REAL_KINDS), Location.active.is_(True)).order_by(Location.name)
        )
    )


def fitted_products(model_id: int | None = None, colour: str | None = None) -> list[Product]:
    """Active products fitted to `model_id` (any model when None), of `colour` when given."""
    query = sa.select(Product).where(Product.active.is_(True), Product.id.in_(_fits(model_id))).order_by(Product.code)
    if colour:
        query = query.where(Product.colour == colour)
    return list(db.session.scalars(query))


def _fits(model_id: int | None) -> sa.Select:
    query = sa.select(ProductFit.product_id)
    return query if model_id is None else query.where(ProductFit.model_id == model_id)


class ShipmentView(SecuredModelView):
    """Shipments: the list, a shipment's page (confirm or cancel a request) and the "Ship consumables" form."""

    permission = VIEW
    edit_permission = EDIT
    allow_edit = False
    details_template = "rentals_inventory/admin/shipment_details.html"
    column_list = (
        "state",
        "device",
        "customer",
        "product",
        "colour",
        "quantity",
        "ship_date",
        "from_location",
        "billable",
        "requested_by",
        "requested_level",
        "requested_at",
    )
    column_details_list = (*column_list, "unit_price", "billed", "move", "shipped_at", "note")
    column_labels = {
        "state": _l("State"),
        "device": _l("Device"),
        "customer": _l("Customer"),
        "customer.name": _l("Customer"),
        "product": _l("Product"),
        "colour": _l("Colour"),
        "quantity": _l("Quantity"),
        "ship_date": _l("Ship date"),
        "from_location": _l("From"),
        "billable": _l("Billable"),
        "billed": _l("Invoiced"),
        "requested_by": _l("Requested by"),
        "requested_level": _l("Level reported (%)"),
        "requested_at": _l("Requested"),
        "unit_price": _l("Unit price"),
        "move": _l("Stock move"),
        "shipped_at": _l("Shipped"),
        "note": _l("Notes"),
    }
    column_enums = {"state": "shipment.state", "colour": "toner.colour"}
    column_filters = ("state", "billable", "customer.name", "ship_date")
    column_searchable_list = ("customer.name",)
    column_default_sort = ("created_at", True)

    def _narrowed(self, query):
        """`state` and `customer_id` in the address narrow the list (the dashboard card, the customer's panel)."""
        state = request.args.get("state")
        if state in STATE_LABELS:
            query = query.filter(Shipment.state == state)
        customer_id = arg_id("customer_id")
        if customer_id:
            query = query.filter(Shipment.customer_id == customer_id)
        return query

    def get_query(self):
        return self._narrowed(super().get_query())

    def get_count_query(self):
        return self._narrowed(super().get_count_query())

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        if not self.can_create:
            abort(403)
        values = request.form if request.method == "POST" else request.args
        device = _device_from(values)
        errors: dict[str, str] = {}
        if request.method == "POST":
            billable = {"yes": True, "no": False}.get(values.get("billable", ""))
            try:
                if device is None:
                    raise ValidationError(
                        {"device": _("No device has the serial number %(serial)s.", serial=values.get("serial", ""))}
                    )
                shipment = shipments.ship(
                    device.id,
                    values.get("product_id"),
                    values.get("quantity"),
                    values.get("from_location_id"),
                    ship_date=values.get("ship_date") or None,
                    billable=billable,
                    user=_current_user(),
                    note=values.get("note"),
                )
            except ValidationError as error:
                db.session.rollback()
                errors = error.errors
            else:
                db.session.commit()
                flash(_("Shipped %(shipment)s.", shipment=labels.record_label(shipment)), "success")
                return redirect(url_for(".details_view", id=shipment.id))
        return self.render(
            "rentals_inventory/admin/ship.html",
            device=device,
            products=fitted_products(device.model_id if device else None),
            locations=dealer_locations(),
            values=values,
            errors=errors,
            field_labels=FIELD_LABELS,
        )

    @expose("/details/")
    def details_view(self):
        shipment = self.get_one(request.args.get("id", ""))
        if shipment is None:
            abort(404)
        self._template_args.update(
            products=fitted_products(shipment.device.model_id, shipment.colour)
            if shipment.state == "requested"
            else [],
            locations=dealer_locations() if shipment.state == "requested" else [],
        )
        return super().details_view()

    @expose("/confirm/", methods=("POST",))
    def confirm(self):
        if not self.can_create:
            abort(403)
        shipment_id = _form_id("id")
        self.run_action(
            lambda: shipments.confirm(
                shipment_id,
                request.form.get("product_id"),
                request.form.get("from_location_id"),
                request.form.get("ship_date") or None,
                user=_current_user(),
            ),
            lambda shipment: _(
                "Shipped %(shipment)s; the contact is told by email.", shipment=labels.record_label(shipment)
            ),
            FIELD_LABELS,
        )
        return redirect(url_for(".details_view", id=shipment_id))

    @expose("/cancel/", methods=("POST",))
    def cancel(self):
        if not self.can_create:
            abort(403)
        shipment_id = _form_id("id")
        self.run_action(
            lambda: shipments.cancel(shipment_id, user=_current_user(), note=request.form.get("note")),
            _("The request is cancelled."),
            FIELD_LABELS,
        )
        return redirect(url_for(".details_view", id=shipment_id))


def _form_id(name: str) -> int | None:
    value = request.form.get(name, "")
    return int(value) if value.isdigit() and int(value) < 2**31 else None


def _current_user() -> Any:
    from flask_login import current_user

    return current_user._get_current_object()


def _device_from(values: Any) -> Device | None:
    """The device named by `device_id` (a link from its page) or by the serial typed."""
    query = sa.select(Device).options(selectinload(Device.model), selectinload(Device.customer))
    device_id = arg_id("device_id") if values is request.args else _form_id("device_id")
    if device_id:
        return db.session.scalar(query.where(Device.id == device_id))
    serial = (values.get("serial") or "").strip()
    if serial:
        return db.session.scalar(query.where(Device.serial == normalize_serial(serial[:60])).limit(1))
    return None


def _active_products() -> list[Product]:
    return list(db.session.scalars(sa.select(Product).where(Product.active.is_(True)).order_by(Product.code)))


def _models() -> list[DeviceModel]:
    return list(
        db.session.scalars(
            sa.select(DeviceModel).options(selectinload(DeviceModel.manufacturer)).order_by(DeviceModel.name)
        )
    )


def _consumables() -> list[Consumable]:
    return list(
        db.session.scalars(sa.select(Consumable).options(selectinload(Consumable.model)).order_by(Consumable.code))
    )


class ProductFitView(SecuredModelView):
    """Which products fit which device models, and the catalogue consumable (rated yield) each one is."""

    permission = VIEW
    edit_permission = EDIT
    allow_delete = True
    column_list = ("product", "model", "consumable")
    column_labels = {
        "product": _l("Product"),
        "model": _l("Device model"),
        "consumable": _l("Catalogue consumable"),
        "product.code": _l("Product"),
        "model.name": _l("Device model"),
    }
    column_searchable_list = ("product.code", "model.name")
    column_filters = ("model.name",)
    form_columns = ("product", "model", "consumable")
    form_args = {
        "product": {"query_factory": _active_products},
        "model": {"query_factory": _models},
        "consumable": {
            "query_factory": _consumables,
            "blank_text": _l("— none —"),
            "description": _l(
                "The model's toner or drum in the catalogue; its rated yield counts when the product has none."
            ),
        },
    }

    def on_model_change(self, form, model: ProductFit, is_created: bool) -> None:
        if model.consumable is not None and model.model is not None and model.consumable.model_id != model.model.id:
            raise FormError(
                _(
                    "%(consumable)s is not a consumable of %(model)s.",
                    consumable=model.consumable.code,
                    model=model.model,
                )
            )
        with db.session.no_autoflush:  # the new fit itself is not flushed yet, so it does not find itself
            taken = db.session.scalar(
                sa.select(ProductFit.id).where(
                    ProductFit.product_id == model.product.id,
                    ProductFit.model_id == model.model.id,
                    ProductFit.id != (model.id or 0),
                )
            )
        if taken:
            raise FormError(
                _("%(product)s is already fitted to %(model)s.", product=model.product.code, model=model.model)
            )


def shipment_label(shipment: Shipment) -> str:
    what = shipment.product.code if shipment.product else labels.enum_label("toner.colour", shipment.colour)
    return f"{what} · {shipment.device.serial}"


def register_labels(app: Any) -> None:
    """How the bridge's records are named and its codes read (core/labels.py)."""
    labels.register_enum(app, "shipment.state", STATE_LABELS)
    labels.register_enum(app, "audit.table", TABLES)
    labels.register_record(app, Shipment, shipment_label, needs=("product", "device"))
    labels.register_record(
        app, ProductFit, lambda fit: f"{fit.product.code} · {fit.model}", needs=("product", "model.manufacturer")
    )
