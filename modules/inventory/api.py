"""/api/v1 products, locations, stock, stock-moves and reorder-suggestions: inventory for staff tokens."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import url_for
from flask.views import MethodView

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, answering, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.db import contains
from core.validation import ValidationError
from modules.inventory import locations, products, reorder, stock
from modules.inventory.models import COLOURS, LOCATION_KINDS, MOVE_KINDS, REAL_KINDS, Location, Product, StockMove

VIEW, EDIT, VAN = "inventory.view", "inventory.edit", "inventory.van"

products_blp = ApiBlueprint(
    "inventory_api_products", __name__, url_prefix="/products", description="Products in stock."
)
locations_blp = ApiBlueprint(
    "inventory_api_locations",
    __name__,
    url_prefix="/locations",
    description="Warehouses, shelves, vans, virtual places.",
)
stock_blp = ApiBlueprint(
    "inventory_api_stock", __name__, url_prefix="/stock", description="On-hand per product, location."
)
moves_blp = ApiBlueprint(
    "inventory_api_moves", __name__, url_prefix="/stock-moves", description="Stock moves: posted once, never edited."
)
reorder_blp = ApiBlueprint(
    "inventory_api_reorder", __name__, url_prefix="/reorder-suggestions", description="What to order, by reorder rule."
)
BLUEPRINTS = (products_blp, locations_blp, stock_blp, moves_blp, reorder_blp)

# The services name fields by what they are; the API by the body's keys.
MOVE_FIELDS = {
    "product": "product_id",
    "from_location": "from_location_id",
    "to_location": "to_location_id",
    "partner": "partner_id",
    "move": "move_id",
}


@contextmanager
def _renamed(fields: dict[str, str]) -> Iterator[None]:
    """Re-raise a ValidationError with its fields named as the API's body names them."""
    try:
        yield
    except ValidationError as error:
        raise ValidationError({fields.get(name, name): message for name, message in error.errors.items()}) from None


# Products


class ProductSchema(ma.Schema):
    id = Integer(dump_only=True)
    code = String(required=True, validate=ma.validate.Length(min=1, max=40), metadata={"description": "SKU."})
    description = String(required=True, validate=ma.validate.Length(min=1, max=200))
    unit = String(validate=ma.validate.Length(min=1, max=10), metadata={"description": "Default pz."})
    barcode = String(allow_none=True, validate=ma.validate.Length(max=20), metadata={"description": "EAN, unique."})
    cost = DecimalString()
    sale_price = DecimalString()
    vat_rate = DecimalString(metadata={"description": "Percent, default 22."})
    serial_tracked = Boolean()
    colour = String(allow_none=True, validate=ma.validate.OneOf(COLOURS))
    yield_pages = Integer(allow_none=True, validate=ma.validate.Range(min=1, max=products.MAX_YIELD))
    active = Boolean()
    created_at = UtcDateTime(dump_only=True)


class ProductPatchSchema(ProductSchema):
    code = String(validate=ma.validate.Length(min=1, max=40))
    description = String(validate=ma.validate.Length(min=1, max=200))


class ProductListArgs(PageArgs):
    q = String(validate=ma.validate.Length(max=100), metadata={"description": "Part of the code or description."})
    barcode = String(validate=ma.validate.Length(max=20))
    colour = String(validate=ma.validate.OneOf(COLOURS))
    active = Boolean()


@products_blp.route("")
class Products(MethodView):
    @require(VIEW)
    @products_blp.arguments(ProductListArgs, location="query")
    @products_blp.response(200, page_schema(ProductSchema))
    def get(self, args: dict[str, Any]):
        """List products

        Ordered by code.
        """
        query = sa.select(Product).order_by(Product.code, Product.id)
        if args.get("q"):
            query = query.where(sa.or_(contains(Product.code, args["q"]), contains(Product.description, args["q"])))
        if args.get("barcode"):
            query = query.where(Product.barcode == args["barcode"])
        if args.get("colour"):
            query = query.where(Product.colour == args["colour"])
        if "active" in args:
            query = query.where(Product.active.is_(args["active"]))
        return paginate(query, args)

    @require(EDIT)
    @products_blp.arguments(ProductSchema)
    @products_blp.response(201, ProductSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a product

        The code and the barcode are unique (any case).
        """
        with committing():
            product = products.save_product(None, **data)
        return product, 201, {"Location": url_for("inventory_api_products.ProductItem", product_id=product.id)}


@products_blp.route(f"/<{ID_PATH}:product_id>")
class ProductItem(MethodView):
    @require(VIEW)
    @products_blp.response(200, ProductSchema)
    @products_blp.alt_response(404, response="NOT_FOUND")
    def get(self, product_id: int):
        """Read a product"""
        return get_or_404(sa.select(Product).where(Product.id == product_id))

    @require(EDIT)
    @products_blp.arguments(ProductPatchSchema)
    @products_blp.response(200, ProductSchema)
    @products_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], product_id: int):
        """Update a product

        Only the fields sent change. A product that has moved keeps `serial_tracked`.
        """
        product = get_or_404(sa.select(Product).where(Product.id == product_id))
        with committing():
            products.save_product(product, **data)
        return product


# Locations


class LocationSchema(ma.Schema):
    id = Integer(dump_only=True)
    name = String(required=True, validate=ma.validate.Length(min=1, max=100))
    kind = String(
        required=True,
        validate=ma.validate.OneOf(REAL_KINDS),
        metadata={
            "description": "warehouse, shelf or van; the virtual locations ("
            + ", ".join(kind for kind in LOCATION_KINDS if kind not in REAL_KINDS)
            + ") exist once each and are listed too."
        },
    )
    parent_id = id_field(allow_none=True, metadata={"description": "A shelf's warehouse or shelf."})
    technician_id = id_field(allow_none=True, metadata={"description": "A van's technician (a staff user)."})
    active = Boolean()
    path = String(dump_only=True, metadata={"description": "The location with its ancestors: Main / Shelf A."})


class LocationListArgs(PageArgs):
    kind = String(validate=ma.validate.OneOf(LOCATION_KINDS))
    parent_id = id_field()
    active = Boolean()


def _dump_location(location: Location, every: dict[int, Location]) -> dict[str, Any]:
    fields = ("id", "name", "kind", "parent_id", "technician_id", "active")
    return {**{name: getattr(location, name) for name in fields}, "path": locations.path_name(location, every)}


@locations_blp.route("")
class Locations(MethodView):
    @require(VIEW)
    @locations_blp.arguments(LocationListArgs, location="query")
    @locations_blp.response(200, page_schema(LocationSchema))
    def get(self, args: dict[str, Any]):
        """List locations

        Ordered by id (a parent before its shelves when created first). The virtual locations appear once used.
        """
        query = sa.select(Location).order_by(Location.id)
        if args.get("kind"):
            query = query.where(Location.kind == args["kind"])
        if args.get("parent_id"):
            query = query.where(Location.parent_id == args["parent_id"])
        if "active" in args:
            query = query.where(Location.active.is_(args["active"]))
        page = paginate(query, args)
        every = locations.all_locations()
        return {**page, "items": [_dump_location(location, every) for location in page["items"]]}

    @require(EDIT)
    @locations_blp.arguments(LocationSchema)
    @locations_blp.response(201, LocationSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a location

        A warehouse and a van stand at the top; a shelf under a warehouse or a shelf; a van belongs to one user.
        """
        with committing(), _renamed({"parent": "parent_id", "technician": "technician_id"}):
            location = locations.save_location(None, **data)
        headers = {"Location": url_for("inventory_api_locations.LocationItem", location_id=location.id)}
        return _dump_location(location, locations.all_locations()), 201, headers


@locations_blp.route(f"/<{ID_PATH}:location_id>")
class LocationItem(MethodView):
    @require(VIEW)
    @locations_blp.response(200, LocationSchema)
    @locations_blp.alt_response(404, response="NOT_FOUND")
    def get(self, location_id: int):
        """Read a location"""
        location = get_or_404(sa.select(Location).where(Location.id == location_id))
        return _dump_location(location, locations.all_locations())


# Stock on hand


class StockArgs(PageArgs):
    product_id = id_field()
    location_id = id_field(metadata={"description": "That location only."})
    warehouse_id = id_field(metadata={"description": "The location and everything under it (its shelves)."})


class StockRowSchema(ma.Schema):
    product_id = Integer()
    product_code = String()
    location_id = Integer()
    location = String(metadata={"description": "The location's path."})
    quantity = DecimalString()


@stock_blp.route("")
class Stock(MethodView):
    @require(VIEW)
    @stock_blp.arguments(StockArgs, location="query")
    @stock_blp.response(200, page_schema(StockRowSchema))
    def get(self, args: dict[str, Any]):
        """On-hand stock

        Non-zero quantities at warehouses, shelves and vans, by product code then location name.
        """
        location_id = args.get("location_id")
        rows = stock.stock_rows(args.get("product_id"), location_id, args.get("warehouse_id"))
        every = locations.all_locations()
        start = (args["page"] - 1) * args["per_page"]
        items = [
            {
                "product_id": row.product.id,
                "product_code": row.product.code,
                "location_id": row.location.id,
                "location": locations.path_name(row.location, every),
                "quantity": row.quantity,
            }
            for row in rows[start : start + args["per_page"]]
        ]
        return {"items": items, "page": args["page"], "per_page": args["per_page"], "total": len(rows)}


# Stock moves


class MoveInSchema(ma.Schema):
    product_id = id_field(required=True)
    quantity = DecimalString(required=True, metadata={"description": "More than zero, up to 3 decimals."})
    from_location_id = id_field(required=True)
    to_location_id = id_field(required=True)
    kind = String(required=True, validate=ma.validate.OneOf(MOVE_KINDS))
    move_date = ma.fields.Date(metadata={"description": "Default today; never in the future."})
    reference = String(allow_none=True, validate=ma.validate.Length(max=100))
    serials = ma.fields.List(
        String(validate=ma.validate.Length(min=1, max=60)),
        validate=ma.validate.Length(max=stock.MAX_SERIALS),
        metadata={"description": "One per unit, for a product tracked by serial number."},
    )
    partner_id = id_field(allow_none=True, metadata={"description": "The customer of a delivery or return."})
    note = String(allow_none=True, validate=ma.validate.Length(max=2000))


class MoveSchema(ma.Schema):
    id = Integer()
    product_id = Integer()
    quantity = DecimalString()
    from_location_id = Integer()
    to_location_id = Integer()
    kind = String()
    move_date = ma.fields.Date()
    reference = String(allow_none=True)
    serial = String(allow_none=True)
    partner_id = Integer(allow_none=True)
    reverses_id = Integer(allow_none=True)
    note = String(allow_none=True)
    created_by_id = Integer(allow_none=True)
    created_at = UtcDateTime()


class MovesCreatedSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MoveSchema), metadata={"description": "One move per serial number."})


class MoveListArgs(PageArgs):
    product_id = id_field()
    location_id = id_field(metadata={"description": "Moves from or to this location."})
    kind = String(validate=ma.validate.OneOf(MOVE_KINDS))
    date_from = ma.fields.Date(data_key="from")
    date_to = ma.fields.Date(data_key="to")
    serial = String(validate=ma.validate.Length(max=60))
    partner_id = id_field()


class ReverseSchema(ma.Schema):
    note = String(allow_none=True, validate=ma.validate.Length(max=2000))


@moves_blp.route("")
class Moves(MethodView):
    @require(VIEW)
    @moves_blp.arguments(MoveListArgs, location="query")
    @moves_blp.response(200, page_schema(MoveSchema))
    def get(self, args: dict[str, Any]):
        """List stock moves

        Newest first (date, then id).
        """
        query = stock.moves_query(
            args.get("product_id"),
            args.get("location_id"),
            args.get("kind"),
            args.get("date_from"),
            args.get("date_to"),
            args.get("serial"),
            args.get("partner_id"),
        )
        return paginate(query, args)

    @require(EDIT, VAN)
    @moves_blp.arguments(MoveInSchema)
    @moves_blp.response(201, MovesCreatedSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Post a stock move

        Kinds: `receipt` (supplier → warehouse, shelf or van), `transfer` (between those), `delivery` (→ customer,
        with `partner_id`), `return` (customer → stock, or stock → supplier), `scrap` (→ scrap), `count` (to or from
        inventory loss). Refused with `422` naming the field, nothing written: `quantity` zero or negative or more
        than on hand, an unknown `from_location_id`/`to_location_id`, `serials` at another location, or a location
        the user may not use (only inventory.edit receives from the supplier or books to inventory loss; a
        technician moves only from or to its own van).
        """
        with committing(), _renamed(MOVE_FIELDS):
            moves = stock.post_move(
                data["product_id"],
                data["quantity"],
                data["from_location_id"],
                data["to_location_id"],
                kind=data["kind"],
                move_date=data.get("move_date"),
                reference=data.get("reference"),
                serials=data.get("serials") or (),
                partner_id=data.get("partner_id"),
                user=api_user(),
                note=data.get("note"),
            )
        location = url_for("inventory_api_moves.MoveItem", move_id=moves[0].id)
        return {"items": moves}, 201, {"Location": location}


@moves_blp.route(f"/<{ID_PATH}:move_id>")
class MoveItem(MethodView):
    @require(VIEW)
    @moves_blp.response(200, MoveSchema)
    @moves_blp.alt_response(404, response="NOT_FOUND")
    def get(self, move_id: int):
        """Read a stock move"""
        return get_or_404(sa.select(StockMove).where(StockMove.id == move_id))


@moves_blp.route(f"/<{ID_PATH}:move_id>/reverse")
class MoveReverse(MethodView):
    @require(EDIT)
    @moves_blp.arguments(ReverseSchema)
    @moves_blp.response(201, MoveSchema, headers={"Location": {"schema": {"type": "string"}}})
    @moves_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], move_id: int):
        """Reverse a stock move

        Posts the reverse move (locations swapped, dated today). `422` when already reversed, itself a reverse, or
        the stock it takes back is no longer there.
        """
        get_or_404(sa.select(StockMove).where(StockMove.id == move_id))
        with committing(), _renamed(MOVE_FIELDS):
            move = stock.reverse_move(move_id, api_user(), note=data.get("note"))
        return move, 201, {"Location": url_for("inventory_api_moves.MoveItem", move_id=move.id)}


# Reorder suggestions


class SuggestionSchema(ma.Schema):
    product_id = Integer()
    product_code = String()
    warehouse_id = Integer()
    warehouse = String()
    on_hand = DecimalString()
    incoming = DecimalString()
    minimum = DecimalString()
    maximum = DecimalString()
    order_quantity = DecimalString()


class SuggestionListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(SuggestionSchema))


@reorder_blp.route("")
class ReorderSuggestions(MethodView):
    @require(VIEW)
    @reorder_blp.response(200, SuggestionListSchema)
    def get(self):
        """What to order

        One item per reorder rule whose warehouse (with its shelves) has on-hand + incoming at or below the
        minimum: `order_quantity` brings it up to the maximum in whole multiples. By warehouse, then product code.
        """
        with answering():
            found = reorder.suggestions()
        return {
            "items": [
                {
                    "product_id": s.product.id,
                    "product_code": s.product.code,
                    "warehouse_id": s.warehouse.id,
                    "warehouse": s.warehouse.name,
                    "on_hand": s.on_hand,
                    "incoming": s.incoming,
                    "minimum": s.minimum,
                    "maximum": s.maximum,
                    "order_quantity": s.order_quantity,
                }
                for s in found
            ]
        }
