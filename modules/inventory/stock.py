"""Stock moves: posted once under row locks, never edited, undone by a reverse move; on-hand, stock rows, counts.

On-hand of a product at a location is the sum of its moves in minus its moves out. `StockQuant` keeps that sum per
(product, location), updated in the same transaction as the move under a row lock (SELECT ... FOR UPDATE on
PostgreSQL; SQLite serialises writers with BEGIN IMMEDIATE), so two moves of the last unit at the same moment
cannot both pass the check: the second waits for the first to commit, then reads what is left and is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import format_date, format_decimal
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from core import clock
from core.db import db
from core.models import Partner
from core.permissions import has_permission
from core.settings import get_setting
from core.validation import ValidationError, fail
from modules.inventory.locations import all_locations, children_map, subtree_ids, van_of, virtual
from modules.inventory.models import MOVE_KINDS, REAL_KINDS, Location, Product, SerialNumber, StockMove, StockQuant
from modules.inventory.validation import Checker

ALLOW_NEGATIVE_SETTING = "inventory.allow_negative_stock"
DEFAULT_ALLOW_NEGATIVE = False
MAX_SERIALS = 500  # serials in one move (one move row each)

MOVE_KIND_LABELS = {
    "receipt": _l("Receipt"),
    "transfer": _l("Transfer"),
    "delivery": _l("Delivery"),
    "return": _l("Return"),
    "scrap": _l("Scrap"),
    "count": _l("Inventory count"),
}
assert set(MOVE_KIND_LABELS) == set(MOVE_KINDS)

REAL = frozenset(REAL_KINDS)
# Which (from, to) location kinds each move kind allows. A reverse move swaps its original's, whatever they were.
MOVE_RULES: dict[str, tuple[tuple[frozenset[str], frozenset[str]], ...]] = {
    "receipt": ((frozenset({"supplier"}), REAL),),
    "transfer": ((REAL, REAL),),
    "delivery": ((REAL, frozenset({"customer"})),),
    "return": ((frozenset({"customer"}), REAL), (REAL, frozenset({"supplier"}))),
    "scrap": ((REAL, frozenset({"scrap"})),),
    "count": ((frozenset({"loss"}), REAL), (REAL, frozenset({"loss"}))),
}
# Only inventory.edit receives from the supplier, returns to it, or books inventory losses.
STAFF_ONLY_KINDS = frozenset({"supplier", "loss"})


def allow_negative() -> bool:
    return bool(get_setting(ALLOW_NEGATIVE_SETTING, DEFAULT_ALLOW_NEGATIVE))


def normalize_serial(value: Any) -> str:
    return "".join(str(value or "").split()).upper()


def qty(value: Decimal) -> str:
    """A quantity for a message, in the user's language, without trailing zeros."""
    return format_decimal(value, format="#,##0.###")


def may_use(user: Any, from_location: Location, to_location: Location) -> dict[str, str] | None:
    """Why `user` may not move stock between these locations (field errors), or None when they may.

    No user (the CLI, an import run by the system, a job): allowed. `inventory.edit` (dealer_admin, back_office):
    any locations. `inventory.van` alone (a technician): only from or to their own van, and the other end neither
    the supplier, nor inventory loss, nor another van.
    """
    if user is None:
        return None
    if has_permission(user, "inventory.edit"):
        return None
    if not has_permission(user, "inventory.van"):
        return {"from_location": _("You may not move stock.")}
    van = van_of(user)
    if van is None:
        return {"from_location": _("You have no van: ask the warehouse staff to give you one.")}
    if van.id not in (from_location.id, to_location.id):
        return {"from_location": _("You move stock only from or to your own van.")}
    other, field = (to_location, "to_location") if from_location.id == van.id else (from_location, "from_location")
    if other.kind in STAFF_ONLY_KINDS:
        return {field: _("Only the warehouse staff move stock from or to %(location)s.", location=location_name(other))}
    if other.kind == "van":
        return {field: _("Move stock to another van through the warehouse.")}
    return None


def location_name(location: Location) -> str:
    """A location for messages: a virtual one by its kind's translated name."""
    if location.virtual_kind:
        from modules.inventory.locations import KIND_LABELS

        return str(KIND_LABELS[location.virtual_kind])
    return location.name


def _kind_problem(kind: str, origin: Location, target: Location) -> dict[str, str] | None:
    rules = MOVE_RULES[kind]
    if any(origin.kind in froms and target.kind in tos for froms, tos in rules):
        return None
    label = MOVE_KIND_LABELS[kind]
    if not any(origin.kind in froms for froms, _tos in rules):
        return {
            "from_location": _("%(kind)s cannot come from %(location)s.", kind=label, location=location_name(origin))
        }
    return {"to_location": _("%(kind)s cannot go to %(location)s.", kind=label, location=location_name(target))}


def _location(field: str, value: Any, check: Checker) -> Location | None:
    if value is None or value == "":
        check.fail(field, _("This field is required."))
        return None
    location = db.session.get(Location, value) if isinstance(value, int) and not isinstance(value, bool) else None
    if location is None:
        check.fail(field, _("Unknown location."))
    return location


def _insert(table: sa.Table) -> Any:
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _lock_quants(product_id: int, location_ids: Iterable[int]) -> dict[int, Decimal]:
    """Lock the (product, location) quants, creating missing ones at zero, in location order (no deadlocks)."""
    ids = sorted(set(location_ids))
    rows = [{"product_id": product_id, "location_id": location_id, "quantity": Decimal("0")} for location_id in ids]
    db.session.execute(_insert(StockQuant.__table__).values(rows).on_conflict_do_nothing())
    quant = StockQuant.__table__.c
    query = (
        sa.select(quant.location_id, quant.quantity)
        .where(quant.product_id == product_id, quant.location_id.in_(ids))
        .order_by(quant.location_id)
        .with_for_update()
    )
    return {location_id: Decimal(quantity) for location_id, quantity in db.session.execute(query)}


def _add(product_id: int, location_id: int, delta: Decimal) -> None:
    db.session.execute(
        sa.update(StockQuant)
        .where(StockQuant.product_id == product_id, StockQuant.location_id == location_id)
        .values(quantity=StockQuant.quantity + delta)
        .execution_options(synchronize_session=False)
    )
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, StockQuant) and obj.product_id == product_id and obj.location_id == location_id:
            db.session.expire(obj)


@dataclass
class _Move:
    """A move's checked input, before it is posted."""

    product: Product
    quantity: Decimal
    origin: Location
    target: Location
    kind: str
    move_date: dt.date
    reference: str | None
    serials: list[str]
    partner_id: int | None
    note: str | None
    user: Any
    reverses: StockMove | None = None


def post_move(
    product_id: Any,
    quantity: Any,
    from_location_id: Any,
    to_location_id: Any,
    *,
    kind: str,
    move_date: Any = None,
    reference: Any = None,
    serials: Iterable[Any] = (),
    partner_id: Any = None,
    user: Any = None,
    note: Any = None,
) -> list[StockMove]:
    """Post a stock move (one per serial for a serial-tracked product) and update on-hand; the caller commits.

    Refused with a ValidationError naming the field, writing nothing: `product` (unknown; inactive for a receipt),
    `quantity` (zero, negative, more decimals than three, fractional for serials, more than on hand unless the
    setting `inventory.allow_negative_stock` allows it), `from_location` / `to_location` (unknown, the same, not
    allowed for the kind of move or for the user, inactive destination), `kind`, `move_date` (in the future),
    `serials` (missing for a tracked product, given for an untracked one, one per unit, twice, already elsewhere),
    `partner` (a delivery or a return from a customer names the customer), `reference`, `note`.
    """
    move = _check(
        product_id,
        quantity,
        from_location_id,
        to_location_id,
        kind,
        move_date,
        reference,
        serials,
        partner_id,
        user,
        note,
    )
    return _post(move)


def _check(
    product_id: Any,
    quantity: Any,
    from_location_id: Any,
    to_location_id: Any,
    kind: Any,
    move_date: Any,
    reference: Any,
    serials: Iterable[Any],
    partner_id: Any,
    user: Any,
    note: Any,
    reverses: StockMove | None = None,
) -> _Move:
    check = Checker()
    kind = check.choice("kind", kind, MOVE_KINDS)
    product = None
    if isinstance(product_id, int) and not isinstance(product_id, bool):
        product = db.session.get(Product, product_id)
    if product is None:
        check.fail("product", _("Unknown product."))
    elif not product.active and kind == "receipt" and reverses is None:
        check.fail("product", _("The product %(product)s is no longer in use.", product=product.code))
    tracked = bool(product and product.serial_tracked)
    amount = check.quantity("quantity", quantity, whole=tracked)
    origin = _location("from_location", from_location_id, check)
    target = _location("to_location", to_location_id, check)
    if origin is not None and target is not None:
        if origin.id == target.id:
            check.fail("to_location", _("A move goes to another location than the one it comes from."))
        elif kind and reverses is None and (problem := _kind_problem(kind, origin, target)):
            for field, message in problem.items():
                check.fail(field, message)
        if target.id != origin.id and not target.active and reverses is None:
            check.fail("to_location", _("The location %(location)s is no longer in use.", location=target.name))
        if "from_location" not in check and "to_location" not in check:
            for field, message in (may_use(user, origin, target) or {}).items():
                check.fail(field, message)
    day = check.date("move_date", move_date, required=False) or clock.today()
    if day > clock.today():
        check.fail("move_date", _("A move cannot be dated in the future."))
    reference = check.text("reference", reference, 100)
    note = check.text("note", note, 2000)
    wanted = [normalize_serial(serial) for serial in (serials or ())]
    if any(not serial for serial in wanted):
        check.fail("serials", _("A serial number is empty."))
    elif any(len(serial) > 60 or "\x00" in serial for serial in wanted):
        check.fail("serials", _("A serial number has at most 60 characters."))
    elif len(wanted) > MAX_SERIALS:
        check.fail("serials", _("At most %(max)d serial numbers in one move.", max=MAX_SERIALS))
    elif len(set(wanted)) != len(wanted):
        twice = next(serial for serial in wanted if wanted.count(serial) > 1)
        check.fail("serials", _("The serial number %(serial)s is given twice.", serial=twice))
    if product is not None:
        if tracked and not wanted:
            check.fail(
                "serials", _("%(product)s is tracked by serial number: give the serial numbers.", product=product.code)
            )
        elif tracked and amount is not None and Decimal(len(wanted)) != amount:
            check.fail(
                "serials",
                _(
                    "Give one serial number per unit: %(count)d for a quantity of %(quantity)s.",
                    count=len(wanted),
                    quantity=qty(amount),
                ),
            )
        elif not tracked and wanted:
            check.fail("serials", _("%(product)s is not tracked by serial number.", product=product.code))
    partner = None
    if partner_id not in (None, ""):
        if isinstance(partner_id, int) and not isinstance(partner_id, bool):
            partner = db.session.get(Partner, partner_id)
        if partner is None:
            check.fail("partner", _("Unknown customer."))
    needs_partner = kind == "delivery" or (kind == "return" and origin is not None and origin.kind == "customer")
    if needs_partner and partner is None and "partner" not in check and reverses is None:
        check.fail("partner", _("Choose the customer."))
    check.raise_if_any()
    return _Move(
        product,
        amount,
        origin,
        target,
        kind,
        day,
        reference,
        wanted,
        partner.id if partner else None,
        note,
        user,
        reverses,
    )


def _post(move: _Move) -> list[StockMove]:
    product, origin, target = move.product, move.origin, move.target
    with db.session.begin_nested():
        quants = _lock_quants(product.id, (origin.id, target.id))
        if origin.kind in REAL and not move.serials and not allow_negative():
            available = quants[origin.id]
            if available < move.quantity:
                fail(
                    "quantity",
                    _(
                        "Only %(available)s %(unit)s of %(product)s on hand at %(location)s.",
                        available=qty(max(available, Decimal("0"))),
                        unit=product.unit,
                        product=product.code,
                        location=origin.name,
                    ),
                )
        if move.serials:
            _move_serials(product, move.serials, origin, target)
        user_id = getattr(move.user, "id", None)
        rows = []
        for serial in move.serials or [None]:
            row = StockMove(
                product_id=product.id,
                quantity=Decimal("1") if serial else move.quantity,
                from_location_id=origin.id,
                to_location_id=target.id,
                kind=move.kind,
                move_date=move.move_date,
                reference=move.reference,
                serial=serial,
                partner_id=move.partner_id,
                reverses_id=move.reverses.id if move.reverses is not None else None,
                note=move.note,
                created_by_id=user_id,
            )
            db.session.add(row)
            rows.append(row)
        _add(product.id, origin.id, -move.quantity)
        _add(product.id, target.id, move.quantity)
        db.session.flush()
    return rows


def _move_serials(product: Product, serials: list[str], origin: Location, target: Location) -> None:
    """Every serial must be at `origin` (or new, coming from a virtual location); it goes to `target`."""
    query = (
        sa.select(SerialNumber)
        .where(SerialNumber.product_id == product.id, SerialNumber.serial.in_(serials))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    found = {row.serial: row for row in db.session.scalars(query)}
    locations = None
    for serial in serials:
        row = found.get(serial)
        if row is not None and row.location_id != origin.id:
            locations = locations or all_locations()
            where = locations.get(row.location_id)
            fail(
                "serials",
                _(
                    "The serial number %(serial)s is at %(location)s, not at %(origin)s.",
                    serial=serial,
                    location=location_name(where) if where else "?",
                    origin=location_name(origin),
                ),
            )
        if row is None and origin.kind in REAL:
            fail("serials", _("The serial number %(serial)s is not at %(origin)s.", serial=serial, origin=origin.name))
    for serial in serials:
        row = found.get(serial)
        if row is None:
            db.session.add(SerialNumber(product_id=product.id, serial=serial, location_id=target.id))
        else:
            row.location_id = target.id


def reverse_move(move_id: Any, user: Any = None, *, note: Any = None) -> StockMove:
    """Undo a move by its reverse (same product, quantity and serial, the locations swapped), dated today.

    Refused (field `move`): unknown, already reversed, itself a reverse move; and, like any move, when the stock it
    takes back is no longer there (field `quantity` or `serials`) or the user may not use the locations.
    """
    original = None
    if isinstance(move_id, int) and not isinstance(move_id, bool):
        original = db.session.scalars(
            sa.select(StockMove)
            .where(StockMove.id == move_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()
    if original is None:
        fail("move", _("Unknown stock move."))
    if original.reverses_id is not None:
        fail("move", _("This move undoes another one: post a new move instead."))
    if db.session.scalar(sa.select(StockMove.id).where(StockMove.reverses_id == original.id)) is not None:
        fail("move", _("This move has already been reversed."))
    move = _check(
        original.product_id,
        original.quantity,
        original.to_location_id,
        original.from_location_id,
        original.kind,
        None,
        original.reference,
        [original.serial] if original.serial else (),
        original.partner_id,
        user,
        note or _("Reverse of the move of %(date)s.", date=format_date(original.move_date)),
        reverses=original,
    )
    return _post(move)[0]


def on_hand(product_id: int, location_id: int, subtree: bool = False) -> Decimal:
    """What is at the location (with `subtree`, at it and every location under it)."""
    ids = subtree_ids(location_id) if subtree else [location_id]
    total = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(StockQuant.quantity), 0)).where(
            StockQuant.product_id == product_id, StockQuant.location_id.in_(ids)
        )
    )
    return Decimal(total)


@dataclass(frozen=True)
class StockRow:
    """On-hand of one product at one real location."""

    product: Product
    location: Location
    quantity: Decimal


def stock_rows(
    product_id: int | None = None, location_id: int | None = None, warehouse_id: int | None = None
) -> list[StockRow]:
    """Non-zero on-hand at real locations, by product code then location; `warehouse_id` takes its whole subtree."""
    query = (
        sa.select(StockQuant)
        .join(Location, Location.id == StockQuant.location_id)
        .join(Product, Product.id == StockQuant.product_id)
        .where(StockQuant.quantity != 0, Location.kind.in_(REAL_KINDS))
        .options(selectinload(StockQuant.product), selectinload(StockQuant.location))
        .order_by(Product.code, Location.name, Location.id)
    )
    if product_id is not None:
        query = query.where(StockQuant.product_id == product_id)
    if location_id is not None:
        query = query.where(StockQuant.location_id == location_id)
    if warehouse_id is not None:
        query = query.where(StockQuant.location_id.in_(subtree_ids(warehouse_id, children_map())))
    return [StockRow(quant.product, quant.location, Decimal(quant.quantity)) for quant in db.session.scalars(query)]


def count_location(
    location_id: Any,
    counted: dict[int, Any],
    user: Any = None,
    *,
    serials: dict[int, Iterable[str]] | None = None,
    move_date: Any = None,
    reference: Any = None,
) -> list[StockMove]:
    """Book an inventory count: each product counted at the location gets the difference to or from `loss`.

    `counted` maps product id to the quantity found; a product not in it is not counted (its stock stays). A product
    tracked by serial number is counted by its serials (`serials[product_id]`): the ones missing go to loss, the ones
    found that were not booked here come from loss (a serial booked at another real location is refused). Errors name
    `counted.<product id>` or `serials.<product id>`; nothing is written when any product is refused.
    """
    check = Checker()
    location = _location("location", location_id if isinstance(location_id, int) else None, check)
    if location is not None and location.kind not in REAL:
        check.fail("location", _("Only a warehouse, a shelf or a van is counted."))
    check.raise_if_any()
    loss = virtual("loss")
    found_serials = {int(key): [normalize_serial(s) for s in value] for key, value in (serials or {}).items()}
    product_ids = sorted({*map(int, counted), *found_serials})
    products = {p.id: p for p in db.session.scalars(sa.select(Product).where(Product.id.in_(product_ids)))}
    quantities: dict[int, Decimal] = {}
    for product_id in product_ids:
        product = products.get(product_id)
        if product is None:
            check.fail(f"counted.{product_id}", _("Unknown product."))
            continue
        if product.serial_tracked:
            if product_id not in found_serials:
                check.fail(
                    f"serials.{product_id}",
                    _("%(product)s is tracked by serial number: give the serial numbers.", product=product.code),
                )
            continue
        value = counted.get(product_id)
        if isinstance(value, int | Decimal) and not isinstance(value, bool) and value == 0:
            quantities[product_id] = Decimal("0")
        elif (number := check.number(f"counted.{product_id}", value, 3, Decimal("1000000000"))) is not None:
            quantities[product_id] = number
    check.raise_if_any()
    moves: list[StockMove] = []
    errors: dict[str, str] = {}
    with db.session.begin_nested():
        for product_id in product_ids:
            product = products[product_id]
            try:
                moves += _count_one(
                    product,
                    location,
                    loss,
                    quantities.get(product_id),
                    found_serials.get(product_id),
                    user,
                    move_date,
                    reference,
                )
            except ValidationError as error:
                field = "serials" if product.serial_tracked else "counted"
                errors.setdefault(f"{field}.{product_id}", " ".join(error.errors.values()))
        if errors:
            raise ValidationError(errors)
    return moves


def _count_one(
    product: Product,
    location: Location,
    loss: Location,
    quantity: Decimal | None,
    found: list[str] | None,
    user: Any,
    move_date: Any,
    reference: Any,
) -> list[StockMove]:
    current = _lock_quants(product.id, (location.id, loss.id))[location.id]
    common = {"kind": "count", "move_date": move_date, "reference": reference, "user": user}
    if found is not None:
        here = set(
            db.session.scalars(
                sa.select(SerialNumber.serial).where(
                    SerialNumber.product_id == product.id, SerialNumber.location_id == location.id
                )
            )
        )
        missing = sorted(here - set(found))
        extra = [serial for serial in dict.fromkeys(found) if serial not in here]
        moves = []
        if missing:
            moves += post_move(product.id, Decimal(len(missing)), location.id, loss.id, serials=missing, **common)
        if extra:
            moves += post_move(product.id, Decimal(len(extra)), loss.id, location.id, serials=extra, **common)
        return moves
    difference = quantity - current
    if difference > 0:
        return post_move(product.id, difference, loss.id, location.id, **common)
    if difference < 0:
        return post_move(product.id, -difference, location.id, loss.id, **common)
    return []


def moves_query(
    product_id: int | None = None,
    location_id: int | None = None,
    kind: str | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    serial: str | None = None,
    partner_id: int | None = None,
) -> sa.Select:
    """Moves newest first, filtered; a location matches moves from or to it."""
    query = sa.select(StockMove).order_by(StockMove.move_date.desc(), StockMove.id.desc())
    if product_id is not None:
        query = query.where(StockMove.product_id == product_id)
    if location_id is not None:
        query = query.where(sa.or_(StockMove.from_location_id == location_id, StockMove.to_location_id == location_id))
    if kind is not None:
        query = query.where(StockMove.kind == kind)
    if start is not None:
        query = query.where(StockMove.move_date >= start)
    if end is not None:
        query = query.where(StockMove.move_date <= end)
    if serial:
        query = query.where(StockMove.serial == normalize_serial(serial))
    if partner_id is not None:
        query = query.where(StockMove.partner_id == partner_id)
    return query
