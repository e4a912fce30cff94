"""The locations tree: warehouses with shelves, one van per technician, the virtual locations made on first use."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.db import db, insert_once
from core.models import User
from core.validation import ValidationError
from modules.inventory.models import LOCATION_KINDS, REAL_KINDS, VIRTUAL_KINDS, Location
from modules.inventory.validation import Checker

KIND_LABELS = {
    "warehouse": _l("Warehouse"),
    "shelf": _l("Shelf"),
    "van": _l("Van"),
    "supplier": _l("Supplier"),
    "customer": _l("Customer"),
    "scrap": _l("Scrap"),
    "loss": _l("Inventory loss"),
}
# The names the virtual locations get when first used (shown translated through their kind's label).
VIRTUAL_NAMES = {"supplier": "Supplier", "customer": "Customer", "scrap": "Scrap", "loss": "Inventory loss"}
assert set(KIND_LABELS) == set(LOCATION_KINDS)


def virtual(kind: str) -> Location:
    """The one virtual location of `kind` (supplier, customer, scrap, loss), created on first use."""
    if kind not in VIRTUAL_KINDS:
        raise ValueError(f"not a virtual location kind: {kind}")
    query = sa.select(Location).where(Location.virtual_kind == kind)
    location = db.session.scalars(query).first()
    if location is None:
        insert_once(
            Location.__table__, {"name": VIRTUAL_NAMES[kind], "kind": kind, "virtual_kind": kind, "active": True}
        )
        location = db.session.scalars(query).one()
    return location


def van_of(user: Any) -> Location | None:
    """The van tied to `user` (a technician), if any."""
    if user is None or getattr(user, "id", None) is None:
        return None
    return db.session.scalars(sa.select(Location).where(Location.technician_id == user.id)).first()


def all_locations() -> dict[int, Location]:
    """Every location by id, in one query (the tree is small: a few warehouses, shelves and vans)."""
    return {location.id: location for location in db.session.scalars(sa.select(Location))}


def children_map(locations: dict[int, Location] | None = None) -> dict[int | None, list[int]]:
    locations = all_locations() if locations is None else locations
    children: dict[int | None, list[int]] = {}
    for location in locations.values():
        children.setdefault(location.parent_id, []).append(location.id)
    return children


def subtree_ids(location_id: int, children: dict[int | None, list[int]] | None = None) -> list[int]:
    """`location_id` and every location under it (a warehouse's shelves, their shelves, ...)."""
    children = children_map() if children is None else children
    found, todo = [], [location_id]
    while todo:
        current = todo.pop()
        if current in found:
            continue
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def warehouse_of(location_id: int, locations: dict[int, Location] | None = None) -> Location | None:
    """The warehouse a location is in (itself for a warehouse); None for vans and virtual locations."""
    locations = all_locations() if locations is None else locations
    seen: set[int] = set()
    current = locations.get(location_id)
    while current is not None and current.id not in seen:
        if current.kind == "warehouse":
            return current
        seen.add(current.id)
        current = locations.get(current.parent_id) if current.parent_id else None
    return None


def path_name(location: Location, locations: dict[int, Location] | None = None) -> str:
    """ "Main warehouse / Shelf A / Bin 3": the location with its ancestors."""
    locations = all_locations() if locations is None else locations
    names, seen = [], set()
    current: Location | None = location
    while current is not None and current.id not in seen:
        names.append(current.name)
        seen.add(current.id)
        current = locations.get(current.parent_id) if current.parent_id else None
    return " / ".join(reversed(names))


def find_location(text: str) -> Location | None:
    """A location by its path ("Main warehouse / Shelf A") or, when unambiguous, its bare name (CSV, CLI)."""
    wanted = " / ".join(part.strip() for part in text.split("/") if part.strip()).casefold()
    if not wanted:
        return None
    locations = all_locations()
    by_path = [loc for loc in locations.values() if path_name(loc, locations).casefold() == wanted]
    if len(by_path) == 1:
        return by_path[0]
    by_name = [loc for loc in locations.values() if loc.name.casefold() == wanted]
    return by_name[0] if len(by_name) == 1 else None


def save_location(
    location: Location | None,
    *,
    name: Any,
    kind: Any,
    parent_id: Any = None,
    technician_id: Any = None,
    active: Any = True,
) -> Location:
    """Create (`location` None) or change a warehouse, shelf or van; the virtual locations are not edited here.

    A warehouse and a van stand at the top of the tree; a shelf is under a warehouse or another shelf. A van belongs
    to one staff user (a technician), and a user has one van at most. Fields: `name`, `kind`, `parent`, `technician`.
    """
    check = Checker()
    name = check.text("name", name, 100, required=True)
    kind = check.choice("kind", kind, REAL_KINDS)
    if location is not None and location.is_virtual:
        check.fail("kind", _("The virtual locations cannot be changed."))
    if location is not None and kind and kind != location.kind and _has_stock(location.id):
        check.fail("kind", _("A location with stock keeps its kind."))
    parent = None
    if parent_id not in (None, ""):
        parent = db.session.get(Location, int(parent_id)) if str(parent_id).isdigit() else None
        if parent is None:
            check.fail("parent", _("Unknown location."))
    if kind == "shelf":
        misplaced = parent.kind not in ("warehouse", "shelf") if parent is not None else "parent" not in check
        if misplaced:
            check.fail("parent", _("A shelf stands in a warehouse or on another shelf."))
        elif parent is not None and location is not None and parent.id in subtree_ids(location.id):
            check.fail("parent", _("A location cannot stand inside itself."))
    elif kind in ("warehouse", "van") and parent is not None:
        check.fail("parent", _("A warehouse or a van stands at the top of the tree."))
    technician = None
    if technician_id not in (None, ""):
        technician = db.session.get(User, int(technician_id)) if str(technician_id).isdigit() else None
        if technician is None or technician.role not in ("technician", "dealer_admin", "back_office"):
            check.fail("technician", _("Choose a staff user."))
            technician = None
    if kind == "van" and technician is None and "technician" not in check:
        check.fail("technician", _("A van belongs to a technician."))
    if kind != "van" and technician is not None:
        check.fail("technician", _("Only a van belongs to a technician."))
    if technician is not None:
        other = van_of(technician)
        if other is not None and (location is None or other.id != location.id):
            check.fail("technician", _("%(user)s already has the van %(van)s.", user=technician.email, van=other.name))
    if name and "parent" not in check and _name_taken(name, parent.id if parent else None, location):
        check.fail("name", _("Another location here already has this name."))
    check.raise_if_any()
    if location is None:
        location = Location()
        db.session.add(location)
    location.name = name
    location.kind = kind
    location.parent_id = parent.id if parent else None
    location.technician_id = technician.id if technician else None
    location.active = bool(active)
    db.session.flush()
    return location


def _name_taken(name: str, parent_id: int | None, location: Location | None) -> bool:
    query = sa.select(Location.id).where(
        sa.func.lower(Location.name) == name.lower(),
        Location.parent_id.is_(None) if parent_id is None else Location.parent_id == parent_id,
        Location.virtual_kind.is_(None),
    )
    if location is not None and location.id is not None:
        query = query.where(Location.id != location.id)
    return db.session.scalar(query.limit(1)) is not None


def _has_stock(location_id: int) -> bool:
    from modules.inventory.models import StockQuant

    return (
        db.session.scalar(
            sa.select(StockQuant.product_id).where(StockQuant.location_id == location_id, StockQuant.quantity != 0)
        )
        is not None
    )


def refuse_unknown(field: str, location_id: Any) -> Location:
    """The location with `location_id`, or a ValidationError on `field`."""
    location = db.session.get(Location, location_id) if isinstance(location_id, int) else None
    if location is None:
        raise ValidationError({field: _("Unknown location.")})
    return location
