"""Inventory back office: products, the locations tree, serial numbers, reorder rules and orders due, the CSV import;
how inventory's records are named and its codes read; registers every view (moves, stock, counts and reorder
suggestions: admin_stock.py), the dashboard card and the customer panel (admin_panels.py) and the van page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import abort, redirect, request, url_for
from flask_admin import expose
from flask_babel import format_currency
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core import csv_import, labels
from core.admin import SecuredModelView, model_view
from core.context import ModuleContext
from core.db import db
from core.models import User
from core.permissions import STAFF_ROLES
from modules.inventory import forms, imports, locations, products, reorder, stock
from modules.inventory.models import (
    REAL_KINDS,
    ExpectedReceipt,
    Location,
    Product,
    ReorderRule,
    SerialNumber,
    StockMove,
    StockQuant,
)

VIEW = "inventory.view"
EDIT = "inventory.edit"

# The codes' labels are the domain's own (the same words in messages and on pages).
LOCATION_KIND_LABELS = locations.KIND_LABELS
MOVE_KIND_LABELS = stock.MOVE_KIND_LABELS
COLOUR_LABELS = products.COLOUR_LABELS
TABLES = {
    "inventory_product": _l("Product"),
    "inventory_location": _l("Stock location"),
    "inventory_stock_move": _l("Stock move"),
    "inventory_stock_quant": _l("Stock on hand"),
    "inventory_serial": _l("Serial number"),
    "inventory_reorder_rule": _l("Reorder rule"),
    "inventory_expected_receipt": _l("Order due from a supplier"),
}
RULE_FIELDS = {"product_id": "product", "warehouse_id": "warehouse"}
JOBS = {"modules.inventory.jobs:reorder_report": _l("Email the list of products to reorder")}
TIMES = "\N{MULTIPLICATION SIGN}"  # "3 x TK-1160" with the multiplication sign
PATH_NEEDS = ("parent", "parent.parent", "parent.parent.parent")


def money(value: Decimal | None) -> str:
    return "" if value is None else format_currency(value, "EUR")


def location_label(location: Location) -> str:
    """A virtual location by what it stands for ("Customers"); a real one by its path ("Milano / Shelf A")."""
    if location.kind not in REAL_KINDS:
        return labels.enum_label("inventory_location.kind", location.kind)
    names, current, seen = [], location, set()
    while current is not None and current.id not in seen:
        seen.add(current.id)
        names.append(current.name)
        current = current.parent
    return " / ".join(reversed(names))


def move_label(move: StockMove) -> str:
    return " · ".join(
        (
            labels.enum_label("inventory_stock_move.kind", move.kind),
            f"{labels.number(move.quantity)} {TIMES} {move.product.code}",
            labels.local_date(move.move_date),
        )
    )


def register_labels(app: Any) -> None:
    """How inventory's records are named and its codes read (core/labels.py)."""
    labels.register_enum(app, "inventory_location.kind", LOCATION_KIND_LABELS)
    labels.register_enum(app, "inventory_stock_move.kind", MOVE_KIND_LABELS)
    labels.register_enum(app, "inventory_product.colour", COLOUR_LABELS)
    labels.register_enum(app, "audit.table", TABLES)
    labels.register_enum(app, "job.func", JOBS)
    labels.register_record(app, Product, lambda product: f"{product.code} {product.description}")
    labels.register_record(app, Location, location_label, needs=PATH_NEEDS)
    labels.register_record(app, StockMove, move_label, needs=("product",))
    labels.register_record(app, SerialNumber, lambda unit: f"{unit.serial} · {unit.product.code}", needs=("product",))
    labels.register_record(
        app,
        ReorderRule,
        lambda rule: _(
            "Reorder %(product)s at %(warehouse)s", product=rule.product.code, warehouse=location_label(rule.warehouse)
        ),
        needs=("product", "warehouse"),
    )
    labels.register_record(
        app,
        ExpectedReceipt,
        lambda due: " · ".join(
            part for part in (due.reference, f"{labels.number(due.quantity)} {TIMES} {due.product.code}") if part
        ),
        needs=("product",),
    )
    labels.register_kind(
        app,
        "inventory_location",
        lambda ident: db.session.get(Location, ident),
        lambda ids: db.session.scalars(sa.select(Location).where(Location.id.in_(ids))).all(),
    )


def register(ctx: ModuleContext) -> None:
    """Labels first (other pages name these records), then the views, the dashboard card, the panel, the van page."""
    from core.extension_points import DASHBOARD, RECORD_PANELS
    from modules.inventory import admin_panels, admin_stock, views

    register_labels(ctx.app)
    add = ctx.add_admin_view
    add(admin_stock.StockView(name=_l("Stock on hand"), endpoint="inventory_stock_list"))
    add(model_view(admin_stock.MoveView, StockMove, _l("Stock moves"), "inventory_move"))
    add(model_view(ProductView, Product, _l("Products"), "inventory_product"))
    add(model_view(LocationView, Location, _l("Locations"), "inventory_location"))
    add(model_view(SerialView, SerialNumber, _l("Serial numbers"), "inventory_serial"))
    add(admin_stock.CountView(name=_l("Inventory count"), endpoint="inventory_count"))
    add(admin_stock.ReorderView(name=_l("To reorder"), endpoint="inventory_to_reorder"))
    add(model_view(ReorderRuleView, ReorderRule, _l("Reorder rules"), "inventory_reorder_rule"))
    add(model_view(ExpectedReceiptView, ExpectedReceipt, _l("Orders due"), "inventory_expected"))
    add(ImportView(name=_l("Import products and stock"), endpoint="inventory_import"))
    ctx.register(DASHBOARD, admin_panels.InventoryDashboard())
    ctx.register(RECORD_PANELS, admin_panels.InventoryPanels())
    views.register(ctx)


# Choices shared by the forms.


def real_locations(kinds: tuple[str, ...] = REAL_KINDS) -> list[Location]:
    """The active real locations of these kinds, by path, with their parents loaded for the labels."""
    found = db.session.scalars(
        sa.select(Location)
        .where(Location.kind.in_(kinds), Location.active.is_(True))
        .options(selectinload(Location.parent).selectinload(Location.parent))
    ).all()
    return sorted(found, key=location_label)


def warehouses() -> list[Location]:
    return real_locations(("warehouse",))


def active_products() -> list[Product]:
    return list(db.session.scalars(sa.select(Product).where(Product.active.is_(True)).order_by(Product.code)))


def technicians() -> list[User]:
    """The staff a van may belong to: technicians first."""
    found = db.session.scalars(sa.select(User).where(User.role.in_(STAFF_ROLES), User.active.is_(True))).all()
    return sorted(found, key=lambda user: (user.role != "technician", user.name.lower()))


def _money_column(view: Any, context: Any, model: Any, name: str) -> str:
    return money(getattr(model, name))


def _yes_no(view: Any, value: bool, name: str | None = None) -> str:
    return _("Yes") if value else _("No")


class InventoryView(SecuredModelView):
    """The base of inventory's model views: who may read and edit, yes/no said in words."""

    permission = VIEW
    edit_permission = EDIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.column_type_formatters = {**self.column_type_formatters, bool: _yes_no}
        self.column_type_formatters_detail = {**self.column_type_formatters_detail, bool: _yes_no}


# Products.


class ProductView(InventoryView):
    """The products the dealer stocks; a product's page shows where it is, its serials, rules and last moves."""

    details_template = "inventory/admin/product_details.html"
    column_list = ("code", "description", "colour", "yield_pages", "barcode", "sale_price", "on_hand", "active")
    column_details_list = (*products.FIELDS, "created_at")
    column_export_list = products.FIELDS
    column_labels = {
        "code": _l("Code"),
        "description": _l("Description"),
        "unit": _l("Unit"),
        "barcode": _l("Barcode (EAN)"),
        "cost": _l("Cost"),
        "sale_price": _l("Sale price"),
        "vat_rate": _l("VAT %"),
        "serial_tracked": _l("Tracked by serial number"),
        "colour": _l("Toner colour"),
        "yield_pages": _l("Yield (pages at 5%)"),
        "active": _l("In use"),
        "on_hand": _l("On hand"),
    }
    column_enums = {"colour": "inventory_product.colour"}
    column_formatters = {
        "cost": _money_column,
        "sale_price": _money_column,
        "on_hand": lambda view, context, model, name: labels.number(view.totals().get(model.id, Decimal(0))),
    }
    column_formatters_export = {
        "cost": lambda view, context, model, name: model.cost,
        "sale_price": lambda view, context, model, name: model.sale_price,
    }
    column_searchable_list = ("code", "description", "barcode")
    column_filters = ("colour", "serial_tracked", "active")
    column_sortable_list = ("code", "description", "colour", "yield_pages", "sale_price")
    column_default_sort = "code"
    form_columns = (
        "code",
        "description",
        "unit",
        "barcode",
        "cost",
        "sale_price",
        "vat_rate",
        "serial_tracked",
        "colour",
        "yield_pages",
        "active",
    )
    form_choices = {"colour": [("", _l("— none (drum, waste bin, staples, parts) —")), *COLOUR_LABELS.items()]}
    form_args = {
        "code": {"description": _l("The dealer's code (SKU); for a consumable, the manufacturer's code.")},
        "barcode": {"description": _l("The EAN on the box: the van page finds the product by scanning it.")},
        "serial_tracked": {"description": _l("Each unit moves by its own serial number (devices, some drums).")},
        "yield_pages": {"description": _l("Toner and drums: the pages at 5 percent coverage (ISO/IEC 19752, 19798).")},
    }

    def totals(self) -> dict[int, Decimal]:
        """On-hand of every product across the real locations, worked out once per request for the whole list."""
        from flask import g

        if "inventory_totals" not in g:
            rows = db.session.execute(
                sa.select(StockQuant.product_id, sa.func.sum(StockQuant.quantity))
                .join(Location, Location.id == StockQuant.location_id)
                .where(Location.kind.in_(REAL_KINDS))
                .group_by(StockQuant.product_id)
            )
            g.inventory_totals = {product_id: quantity for product_id, quantity in rows}
        return g.inventory_totals

    def _values(self, form: Any) -> dict[str, Any]:
        return {name: form[name].data for name in products.FIELDS if name in form}

    def create_model(self, form: Any) -> Any:
        return self.save_form(form, lambda: products.save_product(None, **self._values(form)))

    def update_model(self, form: Any, model: Product) -> bool:
        return self.save_form(form, lambda: products.save_product(model, **self._values(form))) is not False

    @expose("/details/")
    def details_view(self):
        product = self.get_one(request.args.get("id", ""))
        if product is None:
            abort(404)
        from modules.inventory.admin_stock import last_moves

        units = db.session.scalars(
            sa.select(SerialNumber)
            .where(SerialNumber.product_id == product.id)
            .options(selectinload(SerialNumber.location).selectinload(Location.parent))
            .order_by(SerialNumber.serial)
            .limit(200)
        ).all()
        rules = db.session.scalars(
            sa.select(ReorderRule)
            .where(ReorderRule.product_id == product.id)
            .options(selectinload(ReorderRule.warehouse))
        ).all()
        self._template_args.update(
            rows=stock.stock_rows(product_id=product.id),
            units=units,
            rules=rules,
            moves=last_moves(StockMove.product_id == product.id),
            money=money,
            can_move=self._can_edit(),
        )
        return super().details_view()


# Locations.


class LocationView(InventoryView):
    """The locations as a tree: warehouses with their shelves, the vans with their technician, then the virtual
    locations (suppliers, customers, scrapped, inventory loss), which the stock rules create and nobody edits."""

    list_template = "inventory/admin/location_tree.html"
    details_template = "inventory/admin/location_details.html"
    can_export = False
    column_list = ("name", "kind", "parent", "technician", "active")
    column_details_list = ("name", "kind", "parent", "technician", "active")
    column_labels = {
        "name": _l("Name"),
        "kind": _l("Kind"),
        "parent": _l("Inside"),
        "technician": _l("Technician"),
        "active": _l("In use"),
    }
    column_enums = {"kind": "inventory_location.kind"}
    form_columns = ("name", "kind", "parent", "technician", "active")
    form_choices = {"kind": [(kind, LOCATION_KIND_LABELS[kind]) for kind in REAL_KINDS]}
    form_args = {
        "parent": {
            "query_factory": lambda: real_locations(("warehouse", "shelf")),
            "get_label": location_label,
            "blank_text": _l("— none: a warehouse or a van —"),
            "description": _l("A shelf is inside a warehouse or another shelf."),
        },
        "technician": {
            "query_factory": technicians,
            "blank_text": _l("— nobody —"),
            "description": _l("A van is the stock of one technician, who sees it on their phone page."),
        },
    }

    @expose("/")
    def index_view(self):
        everything = db.session.scalars(
            sa.select(Location).options(selectinload(Location.technician), selectinload(Location.parent))
        ).all()
        children: dict[int | None, list[Location]] = {}
        for location in everything:
            if location.kind in REAL_KINDS:
                children.setdefault(location.parent_id, []).append(location)
        for siblings in children.values():
            siblings.sort(key=lambda location: (location.kind != "warehouse", location.name.lower()))
        totals = dict(
            db.session.execute(
                sa.select(StockQuant.location_id, sa.func.sum(StockQuant.quantity)).group_by(StockQuant.location_id)
            ).all()
        )
        virtual = sorted(
            (location for location in everything if location.kind not in REAL_KINDS),
            key=lambda location: location.kind,
        )
        return self.render(
            self.list_template,
            children=children,
            virtual=virtual,
            totals=totals,
            can_create=self.can_create,
        )

    def on_form_prefill(self, form: Any, id: Any) -> None:
        location = self.get_one(id)
        if location is not None and location.kind not in REAL_KINDS:
            abort(404)

    def _values(self, form: Any) -> dict[str, Any]:
        return {
            "name": form.name.data,
            "kind": form.kind.data,
            "parent_id": form.parent.data.id if form.parent.data else None,
            "technician_id": form.technician.data.id if form.technician.data else None,
            "active": form.active.data,
        }

    def create_model(self, form: Any) -> Any:
        return self.save_form(form, lambda: locations.save_location(None, **self._values(form)))

    def update_model(self, form: Any, model: Location) -> bool:
        return self.save_form(form, lambda: locations.save_location(model, **self._values(form))) is not False

    @expose("/details/")
    def details_view(self):
        location = self.get_one(request.args.get("id", ""))
        if location is None:
            abort(404)
        from modules.inventory.admin_stock import last_moves

        real = location.kind in REAL_KINDS
        inside = db.session.scalars(
            sa.select(Location).where(Location.parent_id == location.id).order_by(Location.name)
        ).all()
        self._template_args.update(
            rows=stock.stock_rows(warehouse_id=location.id) if real else [],
            inside=inside,
            real=real,
            moves=last_moves(
                sa.or_(StockMove.from_location_id == location.id, StockMove.to_location_id == location.id)
            ),
            can_count=self._can_edit() and real,
        )
        return super().details_view()


# Serial numbers.


class SerialView(InventoryView):
    """Where each unit of a serial-tracked product is now; its page shows every move of that unit."""

    allow_create = False
    allow_edit = False
    details_template = "inventory/admin/serial_details.html"
    column_list = ("serial", "product", "location")
    column_details_list = ("serial", "product", "location")
    column_export_list = ("serial", "product.code", "location")
    column_labels = {
        "serial": _l("Serial number"),
        "product": _l("Product"),
        "product.code": _l("Product code"),
        "location": _l("Location"),
    }
    column_searchable_list = ("serial", "product.code")
    column_default_sort = "serial"

    @expose("/details/")
    def details_view(self):
        unit = self.get_one(request.args.get("id", ""))
        if unit is None:
            abort(404)
        from modules.inventory.admin_stock import last_moves

        self._template_args["moves"] = last_moves(
            StockMove.product_id == unit.product_id, StockMove.serial == unit.serial, limit=200
        )
        return super().details_view()


# Reorder rules and orders due.


class ReorderRuleView(InventoryView):
    """Per product and warehouse: when on-hand plus orders due falls to the minimum, order up to the maximum."""

    column_list = ("product", "warehouse", "min_quantity", "max_quantity", "multiple")
    column_details_list = column_list
    column_export_list = ("product.code", "warehouse", "min_quantity", "max_quantity", "multiple")
    column_labels = {
        "product": _l("Product"),
        "product.code": _l("Product code"),
        "warehouse": _l("Warehouse"),
        "min_quantity": _l("Minimum"),
        "max_quantity": _l("Maximum"),
        "multiple": _l("Order in multiples of"),
    }
    column_searchable_list = ("product.code", "product.description")
    form_columns = ("product", "warehouse", "min_quantity", "max_quantity", "multiple")
    form_args = {
        "product": {"query_factory": active_products},
        "warehouse": {
            "query_factory": warehouses,
            "get_label": location_label,
            "description": _l("On-hand counts the warehouse with all its shelves."),
        },
        "min_quantity": {"description": _l("Reorder when on-hand plus orders due is at or below this.")},
        "max_quantity": {"description": _l("Order up to this.")},
        "multiple": {"description": _l("The supplier's pack: 1, or 6 for a box of six.")},
    }

    def _values(self, form: Any) -> dict[str, Any]:
        return {
            "product_id": form.product.data.id if form.product.data else None,
            "warehouse_id": form.warehouse.data.id if form.warehouse.data else None,
            "min_quantity": form.min_quantity.data,
            "max_quantity": form.max_quantity.data,
            "multiple": form.multiple.data,
        }

    def create_model(self, form: Any) -> Any:
        return self.save_form(form, lambda: reorder.save_rule(None, **self._values(form)), RULE_FIELDS)

    def update_model(self, form: Any, model: ReorderRule) -> bool:
        return self.save_form(form, lambda: reorder.save_rule(model, **self._values(form)), RULE_FIELDS) is not False


class ExpectedReceiptView(InventoryView):
    """What was ordered from suppliers and has not arrived: it counts as incoming for the reorder rules until it is
    marked received (post the receipt as a stock move when the goods come)."""

    column_list = ("expected_date", "product", "warehouse", "quantity", "reference", "received")
    column_details_list = (*column_list, "created_at")
    column_labels = {
        "expected_date": _l("Expected"),
        "product": _l("Product"),
        "warehouse": _l("Warehouse"),
        "quantity": _l("Quantity"),
        "reference": _l("Order reference"),
        "received": _l("Received"),
    }
    column_filters = ("received", "expected_date")
    column_searchable_list = ("reference", "product.code")
    column_default_sort = ("expected_date", True)
    allow_edit = False
    details_template = "inventory/admin/expected_details.html"
    form_columns = ("product", "warehouse", "quantity", "expected_date", "reference")
    form_args = {
        "product": {"query_factory": active_products},
        "warehouse": {"query_factory": warehouses, "get_label": location_label},
    }

    def create_form(self, obj: Any = None) -> Any:
        """Filled from the reorder list's link: product, warehouse and the quantity to order."""
        form = super().create_form(obj)
        if request.method == "GET":
            from core.admin import arg_id

            if (product_id := arg_id("product_id")) is not None:
                form.product.data = db.session.get(Product, product_id)
            if (warehouse_id := arg_id("warehouse_id")) is not None:
                form.warehouse.data = db.session.get(Location, warehouse_id)
            quantity = request.args.get("quantity", "")
            if quantity.replace(".", "", 1).isdigit():
                form.quantity.data = Decimal(quantity)
        return form

    def create_model(self, form: Any) -> Any:
        return self.save_form(
            form,
            lambda: reorder.expect_receipt(
                form.product.data.id if form.product.data else None,
                form.warehouse.data.id if form.warehouse.data else None,
                form.quantity.data,
                expected_date=form.expected_date.data,
                reference=form.reference.data,
            ),
            RULE_FIELDS,
        )

    @expose("/details/")
    def details_view(self):
        due = self.get_one(request.args.get("id", ""))
        if due is None:
            abort(404)
        self._template_args.update(
            can_receive=self._can_edit() and not due.received,
            places=[
                place
                for place in real_locations(("warehouse", "shelf"))
                if place.id in locations.subtree_ids(due.warehouse_id)
            ],
        )
        return super().details_view()

    @expose("/receive/", methods=("POST",))
    def receive(self):
        if not self._can_edit():
            abort(403)
        due = self.get_one(request.args.get("id", ""))
        if due is None:
            abort(404)
        place = request.form.get("to_location", "")
        self.run_action(
            lambda: reorder.receive(
                due.id,
                int(place) if place.isdigit() and int(place) < 2**31 else None,
                serials=forms.serial_list(request.form.get("serials")),
                user=current_user,
            ),
            lambda done: _("Received into stock: %(order)s.", order=labels.record_label(done)),
            {"to_location": _("To"), "serials": _("Serial numbers"), "quantity": _("Quantity"), "receipt": _("Order")},
        )
        return redirect(url_for(".details_view", id=due.id))


class ImportView(csv_import.ImportView):
    """Upload a CSV of products or of opening stock, see every row's errors, then write all rows or none."""

    permission = EDIT  # the importers' own: the menu shows it to who may import
    importers = (imports.ProductImporter, imports.OpeningStockImporter)
    heading = _l("Import products and opening stock")
