"""Two deliveries of the last unit at the same moment, each on its own connection: one wins, the other is refused."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from core.db import db
from core.validation import ValidationError
from modules.inventory import locations, stock
from modules.inventory.tests import support

HOLD = 0.6  # seconds the first delivery keeps its transaction open after posting


def _deliver(app, ids, results, name, posted=None, go=None, serials=()):
    """Post a delivery of one unit on a connection of its own; with `posted`, hold the transaction open a while."""
    with app.app_context():
        try:
            if go is not None:
                go.wait(5)
            started = time.monotonic()
            stock.post_move(
                ids["product"],
                Decimal("1"),
                ids["from"],
                ids["to"],
                kind="delivery",
                partner_id=ids["partner"],
                serials=serials,
            )
            if posted is not None:
                posted.set()
                time.sleep(HOLD)
            db.session.commit()
            results[name] = ("ok", time.monotonic() - started)
        except ValidationError as error:
            db.session.rollback()
            results[name] = (error.errors, time.monotonic() - started)
        finally:
            db.session.remove()


def _setup(serial_tracked=False):
    """The van holds one unit; an earlier delivery made every row the race touches exist already (no insert waits)."""
    here = support.place()
    item = support.product("M5526" if serial_tracked else "TK-5240K", serial_tracked=serial_tracked)
    serials = ["VCF000", "VCF001"] if serial_tracked else ()
    support.receive(item, 2, here.van, serials=serials)
    customer = locations.virtual("customer").id
    stock.post_move(
        item.id, Decimal("1"), here.van.id, customer, kind="delivery", partner_id=here.customer.id, serials=serials[:1]
    )
    db.session.commit()
    ids = {"product": item.id, "from": here.van.id, "to": customer, "partner": here.customer.id}
    return here, item, ids


def test_the_second_delivery_waits_for_the_first_then_is_refused(app, db_session):
    here, item, ids = _setup()
    results: dict[str, tuple] = {}
    posted = threading.Event()
    first = threading.Thread(target=_deliver, args=(app, ids, results, "first", posted))
    second = threading.Thread(target=_deliver, args=(app, ids, results, "second", None, posted))
    first.start()
    second.start()
    first.join(15)
    second.join(15)
    assert results["first"][0] == "ok"
    assert results["second"][0] == {"quantity": "Only 0 pz of TK-5240K on hand at Van Rossi."}
    # It was not refused on a stale read: it waited on the first one's row lock until that committed.
    assert results["second"][1] >= HOLD * 0.8
    db.session.expire_all()
    assert stock.on_hand(item.id, here.van.id) == 0
    assert support.moves_count() == 3  # the receipt, the earlier delivery and one of the two


@pytest.mark.parametrize("serial_tracked", [False, True])
def test_two_deliveries_released_together_one_wins(app, db_session, serial_tracked):
    here, item, ids = _setup(serial_tracked)
    results: dict[str, tuple] = {}
    go = threading.Event()
    serials = ["VCF001"] if serial_tracked else ()
    threads = [
        threading.Thread(target=_deliver, args=(app, ids, results, name, None, go, serials)) for name in ("a", "b")
    ]
    for thread in threads:
        thread.start()
    go.set()
    for thread in threads:
        thread.join(15)
    outcomes = [outcome for outcome, _took in results.values()]
    assert outcomes.count("ok") == 1
    [refused] = [outcome for outcome in outcomes if outcome != "ok"]
    assert set(refused) == {"serials" if serial_tracked else "quantity"}
    db.session.expire_all()
    assert stock.on_hand(item.id, here.van.id) == 0
    assert stock.on_hand(item.id, ids["to"]) == 2
    assert support.moves_count() == (4 if serial_tracked else 3)
