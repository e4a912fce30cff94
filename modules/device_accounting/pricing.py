"""Price lists: saving them checked, finding the price of a side (most specific entry) and a job's cost on a date."""

from __future__ import annotations

import datetime as dt
import time
import weakref
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

import sqlalchemy as sa
from flask_babel import gettext as _

from core.db import db
from core.labels import enum_label
from core.validation import Checker, ValidationError
from modules.device_accounting.models import (
    COLOURS,
    FUNCTIONS,
    PAPER_SIZES,
    PRICE_DUPLEX,
    PRICE_SIZES,
    PriceEntry,
    PriceList,
)
from modules.rentals.validation import check_customer

COST_PLACES = Decimal("0.0001")
# A side costing 100 or a job fee of 10,000 is a typing mistake; the bounds also keep a job's cost storable.
PRICE_LIMIT = Decimal(100)
FEE_LIMIT = Decimal(10_000)
MAX_ENTRIES = 500
# The enums the back office registers for these codes (core.labels); an unregistered code shows as it is.
FUNCTION_ENUM = "device_accounting.function"
COLOUR_ENUM = "device_accounting.colour"


def round_cost(value: Decimal) -> Decimal:
    """A cost as stored: 4 places, half up (the rules)."""
    return Decimal(value).quantize(COST_PLACES, rounding=ROUND_HALF_UP)


def _code(check: Checker, field_name: str, value: Any, choices: tuple[str, ...], default: str | None) -> str | None:
    """One of `choices`, matched without regard to case (`a4` is `A4`); empty gives `default`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is not None:
            return default
        check.fail(field_name, _("This field is required."))
        return None
    if isinstance(value, str):
        for choice in choices:
            if value.strip().lower() == choice.lower():
                return choice
    check.fail(field_name, _("Choose one of: %(choices)s", choices=", ".join(choices)))
    return None


def duplex_code(value: Any) -> Any:
    """A price entry's duplex: `yes`, `no` or `any`; true and false stand for yes and no."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return value


def _check_entries(check: Checker, entries: Any) -> list[dict[str, Any]]:
    if entries is None:
        check.fail("entries", _("Add at least one price."))
        return []
    if not isinstance(entries, list | tuple):
        check.fail("entries", _("Give the prices as a list of entries."))
        return []
    if not entries:
        check.fail("entries", _("Add at least one price."))
        return []
    if len(entries) > MAX_ENTRIES:
        check.fail("entries", _("At most %(max)d prices in one list.", max=MAX_ENTRIES))
        return []
    clean: list[dict[str, Any]] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for index, raw in enumerate(entries):
        prefix = f"entries.{index}"
        if not isinstance(raw, dict):
            check.fail(prefix, _("Each price is an object with function, colour, size, duplex and price."))
            continue
        entry = {
            "function": _code(check, f"{prefix}.function", raw.get("function"), FUNCTIONS, None),
            "colour": _code(check, f"{prefix}.colour", raw.get("colour"), COLOURS, None),
            "paper_size": _code(check, f"{prefix}.paper_size", raw.get("paper_size"), PRICE_SIZES, "any"),
            "duplex": _code(check, f"{prefix}.duplex", duplex_code(raw.get("duplex")), PRICE_DUPLEX, "any"),
            "price_per_side": check.decimal(f"{prefix}.price_per_side", raw.get("price_per_side"), 6, PRICE_LIMIT),
            "job_fee": check.decimal(f"{prefix}.job_fee", raw.get("job_fee"), 4, FEE_LIMIT, required=False),
        }
        unknown = sorted(set(raw) - {*entry, "id"})
        if unknown:
            check.fail(f"{prefix}.{unknown[0]}", _("Unknown field."))
        key = (entry["function"], entry["colour"], entry["paper_size"], entry["duplex"])
        if None not in key:
            if key in seen:
                check.fail(
                    prefix,
                    _(
                        "The same function, colour, size and duplex are priced twice (entries %(first)d and "
                        "%(second)d).",
                        first=seen[key] + 1,
                        second=index + 1,
                    ),
                )
            seen.setdefault(key, index)
        clean.append(entry)
    # Every (function, colour) priced needs its catch-all entry: size `any`, duplex `any`.
    firsts: dict[tuple[str, str], int] = {}
    for (function, colour, _size, _duplex), index in seen.items():
        firsts.setdefault((function, colour), index)
    for (function, colour), index in firsts.items():
        if (function, colour, "any", "any") not in seen:
            check.fail(
                f"entries.{index}",
                _(
                    "%(function)s in %(colour)s has no price for any size and any duplex: add one, it prices "
                    "every job the other entries do not match.",
                    function=enum_label(FUNCTION_ENUM, function),
                    colour=enum_label(COLOUR_ENUM, colour),
                ),
            )
    return clean


def save_price_list(customer_id: int | None, data: dict, price_list: PriceList | None = None) -> PriceList:
    """Create (or replace the contents of) the dealer's default list (`customer_id` None) or a customer's list.

    `data`: name, valid_from, entries [{function, colour, paper_size (default any), duplex (yes/no/any, default any),
    price_per_side, job_fee?}]. Refuses, naming the field, negative or malformed prices, unknown codes, an entry
    priced twice, and a list without the `any`/`any` entry of a function and colour it prices. Stored costs of
    transactions never change: a new price applies to jobs dated from `valid_from` on.
    """
    check = Checker()
    if not isinstance(data, dict):
        raise ValidationError({"entries": _("Give the price list as an object.")})
    if customer_id is not None:
        check_customer(check, "customer_id", customer_id, required=True)
    if price_list is not None and price_list.customer_id != customer_id:
        check.fail("customer_id", _("A price list cannot move to another customer."))
    name = check.text("name", data.get("name", price_list.name if price_list else None), 100, required=True)
    valid_from = check.date("valid_from", data.get("valid_from", price_list.valid_from if price_list else None))
    entries = _check_entries(check, data.get("entries")) if "entries" in data or price_list is None else None
    if valid_from is not None and "valid_from" not in check:
        owner = PriceList.customer_id.is_(None) if customer_id is None else PriceList.customer_id == customer_id
        clash = sa.select(PriceList.id).where(owner, PriceList.valid_from == valid_from)
        if price_list is not None and price_list.id is not None:
            clash = clash.where(PriceList.id != price_list.id)
        if db.session.scalar(clash) is not None:
            check.fail("valid_from", _("Another price list of the same owner starts on this day."))
    check.raise_if_any()
    if price_list is None:
        price_list = PriceList(customer_id=customer_id)
        db.session.add(price_list)
    price_list.name = name
    price_list.valid_from = valid_from
    if entries is not None:
        # The old entries go first: a replaced entry has the same key as its successor (unique per list).
        price_list.entries.clear()
        db.session.flush()
        price_list.entries.extend(PriceEntry(**entry) for entry in entries)
    db.session.flush()
    return price_list


def _best(lists: list[tuple[Any, list]], colour: str, paper_size: str, duplex: str) -> tuple[Any, Any]:
    """The entry pricing one side and its list among `lists` ((list, entries), the customer's first): the first
    list with a match, its exact size before `any`, then its exact duplex before `any`; (None, None) without."""
    for price_list, entries in lists:
        matches = [
            entry
            for entry in entries
            if entry.colour == colour and entry.paper_size in (paper_size, "any") and entry.duplex in (duplex, "any")
        ]
        if matches:
            return max(matches, key=lambda e: (e.paper_size != "any", e.duplex != "any")), price_list
    return None, None


@dataclass
class _Prices:
    """The lists valid on one day for one customer, with their entries of one function, loaded once."""

    customer_list: PriceList | None
    dealer_list: PriceList | None
    entries: dict[int, list[PriceEntry]] = field(default_factory=dict)

    def best(self, colour: str, paper_size: str, duplex: str) -> tuple[PriceEntry | None, PriceList | None]:
        lists = [(pl, self.entries.get(pl.id, [])) for pl in (self.customer_list, self.dealer_list) if pl is not None]
        return _best(lists, colour, paper_size, duplex)


def _list_on(customer_id: int | None, on: dt.date) -> PriceList | None:
    owner = PriceList.customer_id.is_(None) if customer_id is None else PriceList.customer_id == customer_id
    return db.session.scalars(
        sa.select(PriceList).where(owner, PriceList.valid_from <= on).order_by(PriceList.valid_from.desc()).limit(1)
    ).first()


def _prices(customer_id: int | None, function: str, on: dt.date) -> _Prices:
    prices = _Prices(_list_on(customer_id, on) if customer_id is not None else None, _list_on(None, on))
    ids = [price_list.id for price_list in (prices.customer_list, prices.dealer_list) if price_list is not None]
    if ids:
        for entry in db.session.scalars(
            sa.select(PriceEntry).where(PriceEntry.price_list_id.in_(ids), PriceEntry.function == function)
        ):
            prices.entries.setdefault(entry.price_list_id, []).append(entry)
    return prices


def side_price(
    customer_id: int | None, function: str, colour: str, paper_size: str, duplex: bool, on: dt.date
) -> tuple[PriceEntry | None, PriceList | None]:
    """The entry pricing one side, and its list: the customer's list valid on `on` (the latest `valid_from` on or
    before it), else the dealer's default list valid then; (None, None) when neither prices it (it costs 0)."""
    return _prices(customer_id, function, on).best(colour, paper_size, "yes" if duplex else "no")


class Price(NamedTuple):
    """One price entry as plain values (no session needed)."""

    colour: str
    paper_size: str
    duplex: str
    price_per_side: Decimal
    job_fee: Decimal | None


class PriceBook:
    """What prices one function for one customer on one day: the entries of the customer's list and the dealer's
    valid then, as plain values, so a book outlives its session (cached_price_book) and prices many jobs."""

    def __init__(self, lists: list[tuple[int, list[Price]]]) -> None:
        self.lists = lists  # [(price list id, its entries of the function)], the customer's list first
        self._sides: dict[tuple[str, str, bool], tuple[Price | None, int | None]] = {}

    @classmethod
    def load(cls, customer_id: int | None, function: str, on: dt.date) -> PriceBook:
        prices = _prices(customer_id, function, on)
        lists = [
            (
                price_list.id,
                [
                    Price(entry.colour, entry.paper_size, entry.duplex, entry.price_per_side, entry.job_fee)
                    for entry in prices.entries.get(price_list.id, ())
                ],
            )
            for price_list in (prices.customer_list, prices.dealer_list)
            if price_list is not None
        ]
        return cls(lists)

    def side(self, colour: str, paper_size: str, duplex: bool) -> tuple[Price | None, int | None]:
        """The entry pricing one side and its list's id (side_price's choice); (None, None) when nothing prices it."""
        key = (colour, paper_size, duplex)
        found = self._sides.get(key)
        if found is None:
            found = self._sides[key] = _best(self.lists, colour, paper_size, "yes" if duplex else "no")
        return found

    def job_cost(self, sides_bw: int, sides_color: int, paper_size: str, duplex: bool) -> tuple[Decimal, int | None]:
        """See job_cost."""
        bw_entry, bw_list = self.side("bw", paper_size, duplex)
        color_entry, color_list = self.side("color", paper_size, duplex) if sides_color else (None, None)
        cost = Decimal(0)
        if sides_bw and bw_entry is not None:
            cost += sides_bw * bw_entry.price_per_side
        if sides_color and color_entry is not None:
            cost += sides_color * color_entry.price_per_side
        fee_entry, fee_list = (color_entry, color_list) if sides_color else (bw_entry, bw_list)
        if (sides_bw or sides_color) and fee_entry is not None and fee_entry.job_fee:
            cost += fee_entry.job_fee
        return round_cost(cost), fee_list or bw_list or color_list

    def unit_prices(self, paper_size: str, duplex: bool) -> dict[str, Decimal]:
        """See unit_prices."""
        out: dict[str, Decimal] = {}
        for colour in COLOURS:
            entry, _list = self.side(colour, paper_size, duplex)
            out[colour] = entry.price_per_side if entry is not None else Decimal(0)
            out[f"{colour}_fee"] = (entry.job_fee or Decimal(0)) if entry is not None else Decimal(0)
        return out


def price_book(customer_id: int | None, function: str, on: dt.date) -> PriceBook:
    """The prices of `function` for the customer's jobs of the dealer's day `on`, read now."""
    return PriceBook.load(customer_id, function, on)


BOOK_SECONDS = 10.0
BOOKS_LIMIT = 10_000
_clock = time.monotonic
# cached_price_book: per engine (so one process's databases never mix), (customer, function, day) -> (expires, book).
_books: weakref.WeakKeyDictionary[Any, dict[tuple, tuple[float, PriceBook]]] = weakref.WeakKeyDictionary()


def cached_price_book(customer_id: int | None, function: str, on: dt.date) -> PriceBook:
    """price_book, kept BOOK_SECONDS (10 s) for the next batches of jobs (ingest.record_batch).

    So a price list saved in another process (the back office, another collector) prices jobs from at most 10 s
    after its commit. That delay is harmless: a list applies to jobs from its `valid_from` day, set ahead of time,
    and no one can tell a job recorded in those seconds from one that ended just before the change. Price lists
    and entries written in this process empty the cache at once (see _prices_written).
    """
    bind = db.session.get_bind()
    books = _books.get(bind)
    if books is None:
        books = _books.setdefault(bind, {})
    key = (customer_id, function, on)
    now = _clock()
    found = books.get(key)
    if found is not None and found[0] > now:
        return found[1]
    book = price_book(customer_id, function, on)
    if len(books) >= BOOKS_LIMIT:
        books.clear()
    books[key] = (now + BOOK_SECONDS, book)
    return book


_PRICE_TABLES = (PriceList.__table__, PriceEntry.__table__)


@sa.event.listens_for(sa.engine.Engine, "after_execute")
def _prices_written(connection: sa.Connection, statement: Any, *_args: Any) -> None:
    """Any insert, update or delete of price lists or entries in this process (ORM or not) empties the cache, and
    does again when its transaction ends: another thread may have read the old prices meanwhile."""
    if isinstance(statement, sa.sql.dml.UpdateBase) and any(statement.table is table for table in _PRICE_TABLES):
        connection.info["device_accounting.prices_changed"] = True
        _forget_books()


@sa.event.listens_for(sa.engine.Engine, "commit")
@sa.event.listens_for(sa.engine.Engine, "rollback")
def _prices_settled(connection: sa.Connection) -> None:
    # A link that broke (the database went away) has no info left to read: forget, to be sure.
    if connection.invalidated or connection.info.pop("device_accounting.prices_changed", False):
        _forget_books()


def _forget_books() -> None:
    for books in list(_books.values()):
        books.clear()


def job_cost(
    customer_id: int | None,
    function: str,
    sides_bw: int,
    sides_color: int,
    paper_size: str,
    duplex: bool,
    on: dt.date,
) -> tuple[Decimal, int | None]:
    """The cost of a job, rounded to 0.0001 half up, and the id of the list that priced it.

    cost = sides_bw * price(bw) + sides_color * price(color) + job fee. The job fee (and the list reported) is the
    colour entry's when the job has a colour side, else the black-and-white entry's; a job that output nothing
    (cancelled before the first side) pays no fee. Sides nobody prices cost 0.
    """
    return price_book(customer_id, function, on).job_cost(sides_bw, sides_color, paper_size, duplex)


def unit_prices(
    customer_id: int | None, function: str, paper_size: str, duplex: bool, on: dt.date
) -> dict[str, Decimal]:
    """Price per side by colour and the job fee of each colour's entry (0 where nothing prices), for estimates."""
    return price_book(customer_id, function, on).unit_prices(paper_size, duplex)


__all__ = [
    "PAPER_SIZES",
    "PriceBook",
    "cached_price_book",
    "job_cost",
    "price_book",
    "round_cost",
    "save_price_list",
    "side_price",
    "unit_prices",
]
