"""Cost centers: a tree per customer (sibling names unique, no cycles), shared accounts and default privileges."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from core.db import db
from core.validation import Checker, ValidationError
from modules.device_accounting.models import FUNCTIONS, CostCenter, PrintUser, Quota, Transaction, user_cost_center
from modules.rentals.validation import MAX_PAGES, check_customer

PRIVILEGE_FIELDS = ("allowed_functions", "color_allowed", "max_sides", "duplex_forced")
# Paths are written `Amministrazione / Contabilità`: a name may not hold the separator.
PATH_SEPARATOR = "/"


def check_privileges(check: Checker, data: dict[str, Any]) -> dict[str, Any]:
    """The privilege fields present in `data`, checked; None means "inherit" (from the cost center, or allow)."""
    values: dict[str, Any] = {}
    if "allowed_functions" in data:
        functions = data["allowed_functions"]
        if functions is None:
            values["allowed_functions"] = None
        elif isinstance(functions, str | bytes) or not isinstance(functions, Iterable):
            check.fail("allowed_functions", _("Choose one of: %(choices)s", choices=", ".join(FUNCTIONS)))
        else:
            chosen = [str(function).strip().lower() for function in functions]
            unknown = [function for function in chosen if function not in FUNCTIONS]
            if unknown:
                check.fail(
                    "allowed_functions",
                    _(
                        "Unknown function %(value)s; choose among: %(choices)s",
                        value=unknown[0][:20],
                        choices=", ".join(FUNCTIONS),
                    ),
                )
            else:
                values["allowed_functions"] = [function for function in FUNCTIONS if function in chosen]
    for field in ("color_allowed", "duplex_forced"):
        if field in data:
            value = data[field]
            values[field] = None if value is None or value == "" else check.boolean(field, value)
    if "max_sides" in data:
        value = data["max_sides"]
        values["max_sides"] = None if value is None or value == "" else check.integer("max_sides", value, 1, MAX_PAGES)
    return values


def split_path(path: str) -> list[str]:
    """`Amministrazione / Contabilità` -> ["Amministrazione", "Contabilità"]; raises on an empty part."""
    parts = [part.strip() for part in (path or "").split(PATH_SEPARATOR)]
    if not parts or any(not part for part in parts):
        raise ValidationError(
            {
                "path": _(
                    "Write a cost center as its names from the top, e.g. %(example)s.",
                    example="Amministrazione / Contabilità",
                )
            }
        )
    return parts


def find_by_path(customer_id: int, path: str) -> CostCenter | None:
    """The customer's cost center at `path` (names compared ignoring case), or None."""
    node: CostCenter | None = None
    for name in split_path(path):
        node = _child_named(customer_id, node.id if node else None, name)
        if node is None:
            return None
    return node


def resolve_path(
    customer_id: int, path: str, create: bool = False, field: str = "path"
) -> tuple[CostCenter, list[str]]:
    """The cost center at `path` and the paths created on the way (only with `create`); else a `field` error."""
    try:
        names = split_path(path)
    except ValidationError as error:
        raise ValidationError({field: error.errors["path"]}) from None
    node: CostCenter | None = None
    created: list[str] = []
    for name in names:
        found = _child_named(customer_id, node.id if node else None, name)
        if found is None:
            shown = f"{node.path} / {name}" if node else name
            if not create:
                raise ValidationError({field: _("There is no cost center %(path)s at this customer.", path=shown)})
            try:
                found = save_cost_center(customer_id, {"name": name, "parent_id": node.id if node else None})
            except ValidationError as error:
                raise ValidationError({field: f"{shown}: {next(iter(error.errors.values()))}"}) from None
            created.append(shown)
        node = found
    assert node is not None
    return node, created


def save_cost_center(customer_id: int, data: dict[str, Any], cost_center: CostCenter | None = None) -> CostCenter:
    """Create a cost center, or change the fields `data` holds; raises ValidationError (nothing written) when wrong.

    Fields: name, code, parent_id, shared, active, allowed_functions, color_allowed, max_sides, duplex_forced.
    Sibling names are unique ignoring case, a code is unique in the customer, the parent is one of the customer's and
    not the cost center itself or below it. Deactivating a cost center deactivates everything below it.
    """
    check = Checker()
    creating = cost_center is None
    customer = check_customer(check, "customer_id", customer_id, required=True)
    if not creating and customer is not None and customer.id != cost_center.customer_id:
        check.fail("customer_id", _("A cost center cannot move to another customer."))
    values: dict[str, Any] = {}
    if creating or "name" in data:
        name = check.text("name", data.get("name"), 100, required=True)
        if name is not None and PATH_SEPARATOR in name:
            check.fail("name", _("A cost center's name cannot contain %(sign)s.", sign=PATH_SEPARATOR))
        elif name is not None:
            values["name"] = name
    if "code" in data:
        values["code"] = check.text("code", data.get("code"), 40)
    if creating or "parent_id" in data:
        values["parent_id"] = _check_parent(check, customer, data.get("parent_id"), cost_center)
    for field, default in (("shared", False), ("active", True)):
        if creating or field in data:
            values[field] = check.boolean(field, data.get(field), default=default)
    values |= check_privileges(check, data)
    check.raise_if_any()
    assert customer is not None

    parent_id = values.get("parent_id", None if creating else cost_center.parent_id)
    name = values.get("name", None if creating else cost_center.name)
    own_id = None if creating else cost_center.id
    if ("name" in values or "parent_id" in values) and _sibling_named(customer.id, parent_id, name, own_id):
        check.fail("name", _("Another cost center at the same place is already called %(name)s.", name=name))
    owner = _code_owner(customer.id, values["code"], own_id) if values.get("code") else None
    if owner is not None:
        check.fail("code", _("%(name)s already has the code %(code)s.", name=owner.path, code=owner.code))
    active = values.get("active", None if creating else cost_center.active)
    if active and parent_id is not None and (creating or not cost_center.active or "parent_id" in values):
        parent = db.session.get(CostCenter, parent_id)
        if parent is not None and not parent.active:
            check.fail("parent_id", _("The cost center %(name)s is not active.", name=parent.path))
    check.raise_if_any()

    if creating:
        cost_center = CostCenter(customer_id=customer.id)
        db.session.add(cost_center)
    deactivating = not creating and cost_center.active and values.get("active") is False
    for field, value in values.items():
        setattr(cost_center, field, value)
    db.session.flush()
    if deactivating:
        below = [center_id for center_id in subtree_ids(cost_center.id) if center_id != cost_center.id]
        for center in db.session.scalars(sa.select(CostCenter).where(CostCenter.id.in_(below))) if below else ():
            center.active = False
        db.session.flush()
    return cost_center


def subtree_ids(cost_center_id: int) -> list[int]:
    """The cost center and everything below it (its id first, then level by level); [] for an unknown id."""
    customer_id = db.session.scalar(sa.select(CostCenter.customer_id).where(CostCenter.id == cost_center_id))
    if customer_id is None:
        return []
    children: dict[int | None, list[int]] = {}
    for center_id, parent_id in db.session.execute(
        sa.select(CostCenter.id, CostCenter.parent_id)
        .where(CostCenter.customer_id == customer_id)
        .order_by(CostCenter.name, CostCenter.id)
    ):
        children.setdefault(parent_id, []).append(center_id)
    found, level, seen = [], [cost_center_id], {cost_center_id}
    while level:
        found += level
        level = [child for node in level for child in children.get(node, ()) if child not in seen]
        seen.update(level)
    return found


def paths(customer_ids: Iterable[int]) -> dict[int, str]:
    """The path of every cost center of these customers, by id, in one query (for lists and labels)."""
    customer_ids = set(customer_ids)
    if not customer_ids:
        return {}
    rows = db.session.execute(
        sa.select(CostCenter.id, CostCenter.parent_id, CostCenter.name).where(CostCenter.customer_id.in_(customer_ids))
    ).all()
    parent_of = {row.id: row.parent_id for row in rows}
    name_of = {row.id: row.name for row in rows}
    result: dict[int, str] = {}
    for center_id in name_of:
        names, node, seen = [], center_id, set()
        while node is not None and node not in seen and node in name_of:
            seen.add(node)
            names.append(name_of[node])
            node = parent_of[node]
        result[center_id] = " / ".join(reversed(names))
    return result


def delete_cost_center(cost_center: CostCenter) -> None:
    """Delete a cost center nothing uses yet; else a `cost_center` error saying what uses it (deactivate it instead)."""
    uses = [
        (sa.select(CostCenter.id).where(CostCenter.parent_id == cost_center.id), _("it has cost centers below it")),
        (sa.select(Transaction.id).where(Transaction.cost_center_id == cost_center.id), _("jobs were charged to it")),
        (sa.select(Quota.id).where(Quota.cost_center_id == cost_center.id), _("it has a quota")),
        (
            sa.select(user_cost_center.c.user_id).where(user_cost_center.c.cost_center_id == cost_center.id),
            _("print users may charge it"),
        ),
        (
            sa.select(PrintUser.id).where(PrintUser.default_cost_center_id == cost_center.id),
            _("print users may charge it"),
        ),
    ]
    for query, reason in uses:
        if db.session.scalar(query.limit(1)) is not None:
            raise ValidationError(
                {
                    "cost_center": _(
                        "%(name)s cannot be deleted: %(reason)s. Deactivate it instead.",
                        name=cost_center.path,
                        reason=reason,
                    )
                }
            )
    db.session.delete(cost_center)
    db.session.flush()


def _check_parent(check: Checker, customer: Any, value: Any, cost_center: CostCenter | None) -> int | None:
    if value is None or value == "":
        return None
    parent_id = check.integer("parent_id", value, 1, MAX_PAGES)
    if parent_id is None or customer is None:
        return None
    parent = db.session.get(CostCenter, parent_id)
    if parent is None or parent.customer_id != customer.id:
        check.fail("parent_id", _("This customer has no cost center with id %(id)s.", id=parent_id))
        return None
    if cost_center is not None and cost_center.id is not None and parent_id in subtree_ids(cost_center.id):
        check.fail(
            "parent_id",
            _("%(name)s cannot go under itself or one of the cost centers below it.", name=cost_center.path),
        )
        return None
    return parent_id


def _children(customer_id: int, parent_id: int | None) -> list[CostCenter]:
    return list(
        db.session.scalars(
            sa.select(CostCenter)
            .where(
                CostCenter.customer_id == customer_id,
                CostCenter.parent_id.is_(None) if parent_id is None else CostCenter.parent_id == parent_id,
            )
            .order_by(CostCenter.id)
        )
    )


def _child_named(customer_id: int, parent_id: int | None, name: str) -> CostCenter | None:
    # Compared in Python: SQLite's lower() folds ASCII letters only (CONTABILITÀ would not meet contabilità).
    key = name.strip().casefold()
    return next((child for child in _children(customer_id, parent_id) if child.name.casefold() == key), None)


def _sibling_named(customer_id: int, parent_id: int | None, name: str, own_id: int | None) -> bool:
    found = _child_named(customer_id, parent_id, name)
    return found is not None and found.id != own_id


def _code_owner(customer_id: int, code: str, own_id: int | None) -> CostCenter | None:
    key = code.casefold()
    others = db.session.scalars(
        sa.select(CostCenter).where(CostCenter.customer_id == customer_id, CostCenter.code.is_not(None))
    )
    return next((other for other in others if other.id != own_id and other.code.casefold() == key), None)
