"""Reorder rules: when on-hand + incoming at a warehouse is at or below the minimum, order up to the maximum."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.orm import selectinload

from core import clock
from core.db import db
from core.settings import get_setting
from modules.inventory.locations import all_locations, children_map, subtree_ids
from modules.inventory.models import ExpectedReceipt, Location, Product, ReorderRule, StockQuant
from modules.inventory.validation import MAX_QUANTITY, Checker

THOUSANDTH = Decimal("0.001")


@dataclass(frozen=True)
class Suggestion:
    """What to order of one product for one warehouse, and the figures behind it."""

    product: Product
    warehouse: Location
    on_hand: Decimal
    incoming: Decimal
    minimum: Decimal
    maximum: Decimal
    order_quantity: Decimal


def order_quantity(
    on_hand: Decimal, incoming: Decimal, minimum: Decimal, maximum: Decimal, multiple: Decimal
) -> Decimal:
    """Up to `maximum` in whole `multiple`s (rounded up) when on-hand + incoming ≤ `minimum`; else 0."""
    available = on_hand + incoming
    if available > minimum:
        return Decimal("0")
    missing = maximum - available
    if missing <= 0:
        return Decimal("0")
    packs = (missing / multiple).to_integral_value(rounding=ROUND_CEILING)
    return packs * multiple


def suggestions(today: dt.date | None = None) -> list[Suggestion]:
    """Every active product's rule whose warehouse (with its shelves) needs an order, by warehouse then product code.

    On-hand counts the warehouse's whole subtree; incoming is the orders due not yet received (`ExpectedReceipt`),
    whatever their date. `today` is the day the list is for (the dealer's today by default).
    """
    today = today or clock.today()
    rules = list(
        db.session.scalars(
            sa.select(ReorderRule)
            .join(Product, Product.id == ReorderRule.product_id)
            .where(Product.active.is_(True))
            .options(selectinload(ReorderRule.product), selectinload(ReorderRule.warehouse))
        )
    )
    if not rules:
        return []
    locations = all_locations()
    children = children_map(locations)
    trees = {rule.warehouse_id: subtree_ids(rule.warehouse_id, children) for rule in rules}
    product_ids = {rule.product_id for rule in rules}
    stock: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    quants = db.session.execute(
        sa.select(StockQuant.product_id, StockQuant.location_id, StockQuant.quantity).where(
            StockQuant.product_id.in_(product_ids)
        )
    )
    for product_id, location_id, quantity in quants:
        stock[(product_id, location_id)] += Decimal(quantity)
    incoming: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    due = db.session.execute(
        sa.select(ExpectedReceipt.product_id, ExpectedReceipt.warehouse_id, sa.func.sum(ExpectedReceipt.quantity))
        .where(ExpectedReceipt.received.is_(False), ExpectedReceipt.product_id.in_(product_ids))
        .group_by(ExpectedReceipt.product_id, ExpectedReceipt.warehouse_id)
    )
    for product_id, warehouse_id, quantity in due:
        incoming[(product_id, warehouse_id)] += Decimal(quantity)
    found = []
    for rule in rules:
        here = sum((stock[(rule.product_id, location_id)] for location_id in trees[rule.warehouse_id]), Decimal("0"))
        coming = incoming[(rule.product_id, rule.warehouse_id)]
        amount = order_quantity(here, coming, rule.min_quantity, rule.max_quantity, rule.multiple)
        if amount > 0:
            figures = (here, coming, rule.min_quantity, rule.max_quantity, amount)
            found.append(Suggestion(rule.product, rule.warehouse, *(Decimal(f).quantize(THOUSANDTH) for f in figures)))
    found.sort(key=lambda s: (s.warehouse.name.casefold(), s.product.code.casefold()))
    return found


def _warehouse(check: Checker, warehouse_id: Any) -> Location | None:
    warehouse = db.session.get(Location, warehouse_id) if isinstance(warehouse_id, int) else None
    if warehouse is None:
        check.fail("warehouse", _("Unknown location."))
    elif warehouse.kind != "warehouse":
        check.fail("warehouse", _("Choose a warehouse."))
        return None
    return warehouse


def _product(check: Checker, product_id: Any) -> Product | None:
    product = db.session.get(Product, product_id) if isinstance(product_id, int) else None
    if product is None:
        check.fail("product", _("Unknown product."))
    return product


def save_rule(
    rule: ReorderRule | None,
    *,
    product_id: Any,
    warehouse_id: Any,
    min_quantity: Any,
    max_quantity: Any,
    multiple: Any = 1,
) -> ReorderRule:
    """Create or change a reorder rule. Fields: `product`, `warehouse`, `min_quantity`, `max_quantity`, `multiple`."""
    check = Checker()
    product = _product(check, product_id)
    warehouse = _warehouse(check, warehouse_id)
    low = check.number("min_quantity", min_quantity, 3, MAX_QUANTITY)
    high = check.number("max_quantity", max_quantity, 3, MAX_QUANTITY)
    pack = check.number("multiple", multiple if multiple not in (None, "") else 1, 3, MAX_QUANTITY)
    if pack is not None and pack == 0:
        check.fail("multiple", _("The quantity must be more than zero."))
    if low is not None and high is not None and high < low:
        check.fail("max_quantity", _("The maximum is at least the minimum."))
    if product is not None and warehouse is not None:
        query = sa.select(ReorderRule.id).where(
            ReorderRule.product_id == product.id, ReorderRule.warehouse_id == warehouse.id
        )
        if rule is not None and rule.id is not None:
            query = query.where(ReorderRule.id != rule.id)
        if db.session.scalar(query) is not None:
            check.fail("product", _("This product already has a reorder rule for this warehouse."))
    check.raise_if_any()
    if rule is None:
        rule = ReorderRule()
        db.session.add(rule)
    rule.product_id, rule.warehouse_id = product.id, warehouse.id
    rule.min_quantity, rule.max_quantity, rule.multiple = low, high, pack
    db.session.flush()
    return rule


def expect_receipt(
    product_id: Any, warehouse_id: Any, quantity: Any, *, expected_date: Any = None, reference: Any = None
) -> ExpectedReceipt:
    """Record an order placed with a supplier: it counts as incoming until received. Fields as named."""
    check = Checker()
    product = _product(check, product_id)
    warehouse = _warehouse(check, warehouse_id)
    amount = check.quantity("quantity", quantity)
    day = check.date("expected_date", expected_date, required=False)
    reference = check.text("reference", reference, 100)
    check.raise_if_any()
    receipt = ExpectedReceipt(
        product_id=product.id, warehouse_id=warehouse.id, quantity=amount, expected_date=day, reference=reference
    )
    db.session.add(receipt)
    db.session.flush()
    return receipt


def receive(
    receipt_id: Any,
    location_id: Any = None,
    *,
    quantity: Any = None,
    serials: Any = (),
    user: Any = None,
    move_date: Any = None,
) -> ExpectedReceipt:
    """Book an order due as received: a receipt move from the supplier into its warehouse (or a shelf of it)."""
    from core.validation import fail
    from modules.inventory.locations import virtual
    from modules.inventory.stock import post_move

    receipt = db.session.get(ExpectedReceipt, receipt_id) if isinstance(receipt_id, int) else None
    if receipt is None:
        fail("receipt", _("Unknown order."))
    if receipt.received:
        fail("receipt", _("This order has already been received."))
    target = receipt.warehouse_id if location_id is None else location_id
    if target not in subtree_ids(receipt.warehouse_id):
        fail("to_location", _("Receive the order into its warehouse or one of its shelves."))
    post_move(
        receipt.product_id,
        receipt.quantity if quantity is None else quantity,
        virtual("supplier").id,
        target,
        kind="receipt",
        move_date=move_date,
        reference=receipt.reference,
        serials=serials,
        user=user,
    )
    receipt.received = True
    db.session.flush()
    return receipt


REORDER_EMAILS_SETTING = "inventory.reorder_emails"
REORDER_PAGE = "inventory_to_reorder.index"  # the back office's "To reorder" page (admin_stock.ReorderView)


def warehouse_staff() -> list[tuple[str, str | None, str]]:
    """Who gets the reorder report, as (email, language, name to greet): the addresses of the setting
    `inventory.reorder_emails` (a list, or text separated by commas) in the default language when it is set, else
    every active staff user whose role may edit inventory (dealer_admin, back_office), each in their language."""
    from core.auth.services import user_language
    from core.models import User
    from core.permissions import PERMISSIONS

    configured = get_setting(REORDER_EMAILS_SETTING, None)
    if configured:
        items = configured if isinstance(configured, list) else str(configured).split(",")
        emails = [str(item).strip() for item in items if str(item).strip()]
        return [(email, None, email.partition("@")[0]) for email in emails]
    roles = [role for role, granted in PERMISSIONS.items() if "inventory.edit" in granted]
    users = db.session.scalars(sa.select(User).where(User.role.in_(roles), User.active.is_(True)).order_by(User.email))
    return [(user.email, user_language(user), user.name or user.email) for user in users]


def send_reorder_report(today: dt.date | None = None) -> int:
    """Queue today's list of what to order to the warehouse staff, once a day each; returns the new emails queued.

    Nothing is sent on a day with nothing to order. The caller commits.
    """
    from core.outbox import queue_email

    today = today or clock.today()
    found = suggestions(today)
    if not found:
        return 0
    link = None
    if REORDER_PAGE in current_app.view_functions:
        from core.auth.services import external_url

        link = external_url(REORDER_PAGE)
    sent = 0
    for email, language, name in warehouse_staff():
        message = queue_email(
            [email],
            "inventory/reorder_report",
            language,
            {"today": today, "suggestions": found, "name": name, "link": link},
            dedupe_key=f"inventory-reorder:{today.isoformat()}:{email.lower()}",
        )
        sent += message in db.session.new  # a repeated run finds the day's message by its dedupe key
    return sent
