"""Inventory back office, the stock itself: stock moves (the list, a form per kind, reversing one), stock on hand with
its filters, the inventory count of a location, and the reorder suggestions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_admin.contrib.sqla.filters import DateBetweenFilter, FilterEqual, FilterLike
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core import clock, labels
from core.admin import SecuredView, arg_id
from core.db import db
from core.models import Partner
from core.permissions import has_permission
from core.validation import Checker, ValidationError
from modules.inventory import forms, locations, reorder, stock
from modules.inventory.admin import (
    EDIT,
    MOVE_KIND_LABELS,
    TIMES,
    VIEW,
    InventoryView,
    active_products,
    location_label,
    money,
    real_locations,
)
from modules.inventory.models import REAL_KINDS, Location, Product, StockMove, StockQuant

# The kinds a person posts from the move form (a count has its own page), what each asks, and its virtual end.
FORM_KINDS = ("receipt", "transfer", "delivery", "return", "scrap")
KIND_FIELDS = {
    "receipt": ("product", "quantity", "serials", "to_location", "partner", "reference", "move_date", "note"),
    "transfer": ("product", "quantity", "serials", "from_location", "to_location", "reference", "move_date", "note"),
    "delivery": ("product", "quantity", "serials", "from_location", "partner", "reference", "move_date", "note"),
    "return": ("product", "quantity", "serials", "partner", "to_location", "reference", "move_date", "note"),
    "scrap": ("product", "quantity", "serials", "from_location", "reference", "move_date", "note"),
}
VIRTUAL_FROM = {"receipt": "supplier", "return": "customer"}
VIRTUAL_TO = {"delivery": "customer", "scrap": "scrap"}
FIELD_LABELS = {
    "product": _l("Product"),
    "quantity": _l("Quantity"),
    "serials": _l("Serial numbers"),
    "from_location": _l("From"),
    "to_location": _l("To"),
    "partner": _l("Partner"),
    "reference": _l("Reference"),
    "move_date": _l("Date"),
    "note": _l("Notes"),
    "location": _l("Location"),
    "counted": _l("Counted"),
}
COUNT_SPARE_ROWS = 3


def last_moves(*where: Any, limit: int = 20) -> list[StockMove]:
    """The newest moves matching `where`, with what a line of them shows loaded at once."""
    return list(
        db.session.scalars(
            sa.select(StockMove)
            .where(*where)
            .options(
                selectinload(StockMove.product),
                selectinload(StockMove.from_location).selectinload(Location.parent),
                selectinload(StockMove.to_location).selectinload(Location.parent),
                selectinload(StockMove.partner),
                selectinload(StockMove.created_by),
            )
            .order_by(StockMove.move_date.desc(), StockMove.id.desc())
            .limit(limit)
        )
    )


def _partners(kind: str) -> list[Partner]:
    """Suppliers for a receipt, customers for a delivery or a return."""
    flag = Partner.is_supplier if kind == "receipt" else Partner.is_customer
    return list(
        db.session.scalars(sa.select(Partner).where(flag.is_(True), Partner.active.is_(True)).order_by(Partner.name))
    )


class MoveView(InventoryView):
    """Every stock move, newest first, never edited: the form posts one of each kind, a move's page reverses it."""

    allow_edit = False
    list_template = "inventory/admin/move_list.html"
    details_template = "inventory/admin/move_details.html"
    column_list = (
        "move_date",
        "kind",
        "product",
        "quantity",
        "from_location",
        "to_location",
        "serial",
        "partner",
        "reference",
        "created_by",
    )
    column_details_list = (
        "move_date",
        "kind",
        "product",
        "quantity",
        "from_location",
        "to_location",
        "serial",
        "partner",
        "reference",
        "note",
        "reverses",
        "created_by",
        "created_at",
    )
    column_export_list = (
        "move_date",
        "kind",
        "product.code",
        "quantity",
        "from_location",
        "to_location",
        "serial",
        "partner.name",
        "reference",
        "note",
        "created_by",
    )
    column_labels = {
        "move_date": _l("Date"),
        "kind": _l("Kind"),
        "product": _l("Product"),
        "product.code": _l("Product code"),
        "quantity": _l("Quantity"),
        "from_location": _l("From"),
        "to_location": _l("To"),
        "serial": _l("Serial number"),
        "partner": _l("Partner"),
        "partner.name": _l("Partner"),
        "reference": _l("Reference"),
        "note": _l("Notes"),
        "reverses": _l("Reverses"),
        "created_by": _l("By"),
    }
    column_enums = {"kind": "inventory_stock_move.kind"}
    column_filters = (
        FilterEqual(StockMove.kind, _l("Kind"), options=list(MOVE_KIND_LABELS.items())),
        FilterLike("product.code", _l("Product code")),
        FilterLike("partner.name", _l("Partner")),
        FilterLike(StockMove.reference, _l("Reference")),
        FilterLike(StockMove.serial, _l("Serial number")),
        DateBetweenFilter(StockMove.move_date, _l("Date")),
    )
    column_searchable_list = ("reference", "serial", "product.code", "product.description", "partner.name")
    column_sortable_list = ("move_date", "kind", "quantity", "reference", "serial")
    column_default_sort = [("move_date", True), ("id", True)]

    def get_query(self):
        return self._narrowed(super().get_query())

    def get_count_query(self):
        return self._narrowed(super().get_count_query())

    def _narrowed(self, query: Any) -> Any:
        """?product_id= and ?location_id= (from or to), the links of a product's and a location's pages."""
        if (product_id := arg_id("product_id")) is not None:
            query = query.filter(StockMove.product_id == product_id)
        if (location_id := arg_id("location_id")) is not None:
            query = query.filter(
                sa.or_(StockMove.from_location_id == location_id, StockMove.to_location_id == location_id)
            )
        return query

    @expose("/")
    def index_view(self):
        self._template_args["narrowed"] = ", ".join(
            labels.record_label(record)
            for record in (
                db.session.get(Product, arg_id("product_id")) if arg_id("product_id") else None,
                db.session.get(Location, arg_id("location_id")) if arg_id("location_id") else None,
            )
            if record is not None
        )
        self._template_args["form_kinds"] = [(kind, MOVE_KIND_LABELS[kind]) for kind in FORM_KINDS]
        return super().index_view()

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        if not self.can_create:
            abort(403)
        kind = request.values.get("kind", "receipt")
        if kind not in FORM_KINDS:
            kind = "receipt"
        errors: dict[str, str] = {}
        if request.method == "POST":
            try:
                moves = self._post(kind)
            except ValidationError as error:
                db.session.rollback()
                errors = error.errors
            else:
                db.session.commit()
                first = moves[0]
                flash(
                    _(
                        "Posted: %(move)s, from %(from)s to %(to)s.",
                        move=labels.record_label(first) if len(moves) == 1 else self._many(moves),
                        **{"from": location_label(first.from_location), "to": location_label(first.to_location)},
                    ),
                    "success",
                )
                return redirect(url_for(".details_view", id=first.id) if len(moves) == 1 else url_for(".index_view"))
        return self.render(
            "inventory/admin/move_form.html",
            kind=kind,
            kinds=[(code, MOVE_KIND_LABELS[code]) for code in FORM_KINDS],
            fields=KIND_FIELDS[kind],
            labels=FIELD_LABELS,
            products=active_products(),
            locations=real_locations(),
            partners=_partners(kind),
            errors=errors,
            values=request.form if request.method == "POST" else self._prefill(),
            today=clock.today().isoformat(),
            partner_required=kind in ("delivery", "return"),
        )

    @staticmethod
    def _many(moves: list[StockMove]) -> str:
        return f"{labels.number(sum((move.quantity for move in moves), Decimal(0)))} {TIMES} {moves[0].product.code}"

    @staticmethod
    def _prefill() -> dict[str, str]:
        """A product's or location's page links here with it chosen."""
        values = {}
        for name in ("product", "from_location", "to_location"):
            if (ident := arg_id(name)) is not None:
                values[name] = str(ident)
        return values

    def _post(self, kind: str) -> list[StockMove]:
        form = request.form
        check = Checker()
        values: dict[str, Any] = {}
        for name in ("product", "from_location", "to_location", "partner"):
            if name not in KIND_FIELDS[kind]:
                continue
            # A delivery and a return name their customer; a receipt's supplier may be left out.
            needed = name != "partner" or kind in ("delivery", "return")
            try:
                values[name] = forms.parse_id(form.get(name), name, required=needed)
            except ValidationError as error:
                check.errors.update(error.errors)
        serials = forms.serial_list(form.get("serials"))
        quantity_text = (form.get("quantity") or "").strip() or (str(len(serials)) if serials else "")
        try:
            quantity = forms.parse_quantity(quantity_text)
        except ValidationError as error:
            check.errors.update(error.errors)
            quantity = None
        try:
            move_date = forms.parse_date(form.get("move_date"))
        except ValidationError as error:
            check.errors.update(error.errors)
            move_date = None
        check.raise_if_any()
        from_id = locations.virtual(VIRTUAL_FROM[kind]).id if kind in VIRTUAL_FROM else values["from_location"]
        to_id = locations.virtual(VIRTUAL_TO[kind]).id if kind in VIRTUAL_TO else values["to_location"]
        return stock.post_move(
            values["product"],
            quantity,
            from_id,
            to_id,
            kind=kind,
            move_date=move_date,
            reference=forms.optional_text(form.get("reference"), 100),
            serials=serials,
            partner_id=values.get("partner"),
            user=current_user,
            note=forms.optional_text(form.get("note"), 2000),
        )

    @expose("/details/")
    def details_view(self):
        move = self.get_one(request.args.get("id", ""))
        if move is None:
            abort(404)
        reversed_by = db.session.scalar(sa.select(StockMove).where(StockMove.reverses_id == move.id))
        self._template_args.update(
            reversed_by=reversed_by,
            can_reverse=self._can_edit() and reversed_by is None and move.reverses_id is None,
        )
        return super().details_view()

    @expose("/reverse/", methods=("POST",))
    def reverse(self):
        if not self._can_edit():
            abort(403)
        move = self.get_one(request.args.get("id", ""))
        if move is None:
            abort(404)
        reverse = self.run_action(
            lambda: stock.reverse_move(move.id, user=current_user),
            lambda done: _("Reversed: %(move)s.", move=labels.record_label(done)),
            FIELD_LABELS,
        )
        return redirect(url_for(".details_view", id=reverse.id if reverse is not None else move.id))


class StockView(SecuredView):
    """What is where: on-hand per product and location, narrowed to a product, a location or a warehouse with its
    shelves (on-hand of a warehouse counts its whole subtree)."""

    permission = VIEW

    @expose("/")
    def index(self):
        product_id, location_id, warehouse_id = arg_id("product_id"), arg_id("location_id"), arg_id("warehouse_id")
        rows = stock.stock_rows(product_id=product_id, location_id=location_id, warehouse_id=warehouse_id)
        return self.render(
            "inventory/admin/stock.html",
            rows=rows,
            products=active_products(),
            locations=real_locations(),
            warehouses=real_locations(("warehouse",)),
            chosen={"product_id": product_id, "location_id": location_id, "warehouse_id": warehouse_id},
            money=money,
        )


class CountView(SecuredView):
    """The inventory count of one location: each product's counted quantity; the difference to the books is posted
    as a move to or from inventory loss. A product left empty is not counted (its on-hand stays)."""

    permission = EDIT

    @expose("/")
    def index(self):
        location = db.session.get(Location, arg_id("location_id")) if arg_id("location_id") else None
        if location is not None and location.kind not in REAL_KINDS:
            abort(404)
        return self._page(location)

    def _page(self, location: Location | None, errors: dict[str, str] | None = None, status: int = 200):
        quants = []
        if location is not None:
            quants = db.session.scalars(
                sa.select(StockQuant)
                .where(StockQuant.location_id == location.id, StockQuant.quantity != 0)
                .options(selectinload(StockQuant.product))
            ).all()
            quants = sorted(quants, key=lambda quant: quant.product.code)
        return (
            self.render(
                "inventory/admin/count.html",
                location=location,
                locations=real_locations(),
                quants=quants,
                products=active_products(),
                spare=range(COUNT_SPARE_ROWS),
                errors=errors or {},
                values=request.form,
            ),
            status,
        )

    @expose("/post/", methods=("POST",))
    def post(self):
        location = db.session.get(Location, arg_id("location_id")) if arg_id("location_id") else None
        if location is None or location.kind not in REAL_KINDS:
            abort(404)
        form = request.form
        counted: dict[int, str] = {}
        serials: dict[int, list[str]] = {}
        check = Checker()
        for key, value in form.items():
            if key.startswith("counted_") and key[8:].isdigit() and value.strip():
                counted[int(key[8:])] = value.strip()
            elif key.startswith("serials_") and key[8:].isdigit() and value.strip():
                serials[int(key[8:])] = forms.serial_list(value)
            elif key.startswith("spare_quantity_") and value.strip():
                row = key.removeprefix("spare_quantity_")
                try:
                    product_id = forms.parse_id(form.get(f"spare_product_{row}"), f"spare_product_{row}")
                except ValidationError:
                    check.fail(f"spare_product_{row}", _("Choose the product counted."))
                    continue
                counted[product_id] = value.strip()
        if not counted and not serials and not check.errors:
            check.fail("counted", _("Type at least one counted quantity."))
        try:
            check.raise_if_any()
            moves = stock.count_location(location.id, counted, user=current_user, serials=serials)
        except ValidationError as error:
            db.session.rollback()
            return self._page(location, error.errors, 422)
        db.session.commit()
        flash(
            _(
                "Count of %(location)s posted: %(count)s differences booked to inventory loss.",
                location=location_label(location),
                count=len(moves),
            ),
            "success",
        )
        return redirect(url_for("inventory_location.details_view", id=location.id))


class ReorderView(SecuredView):
    """What to order today: every product whose on-hand plus orders due at a warehouse is at or below its rule's
    minimum, with the quantity that brings it up to the maximum (in the supplier's multiples)."""

    permission = VIEW

    @expose("/")
    def index(self):
        return self.render(
            "inventory/admin/reorder.html",
            suggestions=reorder.suggestions(clock.today()),
            can_order=has_permission(current_user, EDIT),
        )
