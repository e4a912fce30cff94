"""Property tests: whatever moves are posted or refused, on-hand everywhere equals the sum of the moves in minus out."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import wipe_rows
from core.db import db
from core.settings import set_setting
from core.validation import ValidationError
from modules.inventory import locations, stock
from modules.inventory.models import REAL_KINDS, Location, StockMove, StockQuant
from modules.inventory.tests import support

quantities = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("20"), places=3)
operation = st.one_of(
    st.tuples(st.just("receipt"), st.integers(0, 1), st.integers(0, 2), st.integers(0, 2), quantities),
    st.tuples(st.just("transfer"), st.integers(0, 1), st.integers(0, 2), st.integers(0, 2), quantities),
    st.tuples(st.just("delivery"), st.integers(0, 1), st.integers(0, 2), st.integers(0, 2), quantities),
    st.tuples(st.just("scrap"), st.integers(0, 1), st.integers(0, 2), st.integers(0, 2), quantities),
    st.tuples(st.just("count"), st.integers(0, 1), st.integers(0, 2), st.integers(0, 2), quantities),
    st.tuples(st.just("reverse"), st.integers(0, 1), st.integers(0, 30), st.integers(0, 2), quantities),
)


def _apply(op, items, places, partner, moves):
    kind, item_index, a, b, quantity = op
    item = items[item_index]
    virtual = {name: locations.virtual(name).id for name in ("supplier", "customer", "scrap")}
    if kind == "receipt":
        return stock.post_move(item, quantity, virtual["supplier"], places[b], kind="receipt")
    if kind == "transfer":
        return stock.post_move(item, quantity, places[a], places[b], kind="transfer")
    if kind == "delivery":
        return stock.post_move(item, quantity, places[a], virtual["customer"], kind="delivery", partner_id=partner)
    if kind == "scrap":
        return stock.post_move(item, quantity, places[a], virtual["scrap"], kind="scrap")
    if kind == "count":
        return stock.count_location(places[a], {item: quantity})
    if moves:
        return [stock.reverse_move(moves[a % len(moves)])]
    return []


def _sums_of_moves() -> dict[tuple[int, int], Decimal]:
    sums: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for move in db.session.scalars(sa.select(StockMove)):
        sums[(move.product_id, move.to_location_id)] += move.quantity
        sums[(move.product_id, move.from_location_id)] -= move.quantity
    return sums


def _check_invariants(allow_negative: bool) -> None:
    db.session.expire_all()
    sums = _sums_of_moves()
    quants = {(q.product_id, q.location_id): Decimal(q.quantity) for q in db.session.scalars(sa.select(StockQuant))}
    for key in set(sums) | set(quants):
        assert quants.get(key, Decimal("0")) == sums.get(key, Decimal("0")), key
    kinds = {location.id: location.kind for location in db.session.scalars(sa.select(Location))}
    if not allow_negative:
        for (_product, location_id), quantity in quants.items():
            if kinds[location_id] in REAL_KINDS:
                assert quantity >= 0
    # A warehouse's subtree on-hand is the sum over its shelves.
    for (product_id, location_id), _quantity in quants.items():
        if kinds[location_id] == "warehouse":
            tree = locations.subtree_ids(location_id)
            expected = sum((quants.get((product_id, lid), Decimal("0")) for lid in tree), Decimal("0"))
            assert stock.on_hand(product_id, location_id, subtree=True) == expected


def _run(app, operations, allow_negative):
    wipe_rows(app)
    with app.app_context():
        try:
            here = support.place()
            items = [support.product().id, support.product("DK-1150").id]
            if allow_negative:
                set_setting(stock.ALLOW_NEGATIVE_SETTING, True)
                db.session.commit()
            places = [here.warehouse.id, here.shelf.id, here.van.id]
            posted: list[int] = []
            for op in operations:
                try:
                    moves = _apply(op, items, places, here.customer.id, posted)
                    db.session.commit()
                    posted += [move.id for move in moves]
                except ValidationError:
                    db.session.rollback()
            _check_invariants(allow_negative)
        finally:
            db.session.remove()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, max_size=25))
def test_on_hand_equals_the_sum_of_moves_and_never_goes_negative(app, operations):
    _run(app, operations, allow_negative=False)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, max_size=25))
def test_on_hand_equals_the_sum_of_moves_when_negative_stock_is_allowed(app, operations):
    _run(app, operations, allow_negative=True)
