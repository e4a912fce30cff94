"""Batches of finished jobs from one device: stored once each, priced and charged as one by one, with per-batch SQL.

record_batch gives what operations.record_transaction gives for each item in turn (the same checks, prices,
charges, ledger records, balances after, rollups and quota warnings), but loads the device's installations, the
users, cost centers, quotas and prices once per batch, locks each paying balance once, and writes with a few bulk
statements. A per-device lock (PostgreSQL advisory, SQLite's write lock) keeps two collector instances from storing
the same device_seq twice.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from core import clock
from core.db import db, utcnow
from core.validation import Checker, ValidationError
from modules.device_accounting import operations, pricing, privacy, quotas, rollups
from modules.device_accounting.models import (
    Balance,
    CostCenter,
    LedgerEntry,
    PrintUser,
    Quota,
    Transaction,
)
from modules.rentals.validation import MAX_PAGES

ItemStatus = Literal["stored", "duplicate", "refused"]
TX_COLUMNS = (
    "customer_id",
    "device_id",
    "device_seq",
    "user_id",
    "cost_center_id",
    "function",
    "sides_bw",
    "sides_color",
    "sheets",
    "paper_size",
    "duplex",
    "status",
    "document_name",
    "started_at",
    "ended_at",
    "cost",
    "price_list_id",
    "quota_id",
    "balance_after",
)
# A CheckedJob's values in TX_COLUMNS' order, less the last two (quota_id, balance_after: the charge's).
_HEAD = operator.itemgetter(*TX_COLUMNS[:-2])
# The same for COPY, in three parts: the instants go as ISO 8601 text (the same instant, read by the server,
# where psycopg's conversion of datetimes was a third of COPY's time).
_TIMES = TX_COLUMNS.index("started_at")
_BEFORE_TIMES = operator.itemgetter(*TX_COLUMNS[:_TIMES])
_AFTER_TIMES = operator.itemgetter(*TX_COLUMNS[_TIMES + 2 : -2])
LEDGER_COLUMNS = ("balance_id", "period_start", "kind", "amount", "transaction_id", "created_at")
# pg_advisory_xact_lock(LOCK_CLASS, device id): the class keeps these locks apart from any other advisory lock.
LOCK_CLASS = 0x44414354  # "DACT"
# A batch that met a job stored meanwhile through record_transaction (no advisory lock there) starts over.
ATTEMPTS = 3
CHUNK = 5000
# SQLite's default limit of parameters in one statement (32766 since 3.32), with room to spare.
SQLITE_PARAMETERS = 30000


@dataclass
class ItemResult:
    """What became of one item: stored now, stored before (the transaction of then), or refused with field errors."""

    device_seq: int | None
    status: ItemStatus
    transaction_id: int | None = None
    cost: Decimal | None = None
    errors: dict[str, str] | None = None


def record_batch(device_id: int, items: list[dict]) -> list[ItemResult]:
    """Record the jobs of one device (its id comes from the caller, never from an item) in order: one result per
    item, the same outcome as operations.record_transaction for each in turn. Never commits; an item refused
    writes nothing, the others are written in the caller's transaction."""
    for attempt in range(ATTEMPTS):
        try:
            with db.session.begin_nested():
                return _Batch(device_id, items).record()
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _chunks(values: list, size: int = CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _copy(table: sa.Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """PostgreSQL: the rows through COPY on the session's connection (no statement of thousands of parameters to
    build and parse); elsewhere multi-row INSERTs. A driver error is raised as SQLAlchemy's (IntegrityError...)."""
    if not rows:
        return
    if not _postgres():
        for chunk in _chunks(rows, SQLITE_PARAMETERS // len(columns)):
            db.session.execute(sa.insert(table).values([dict(zip(columns, row, strict=True)) for row in chunk]))
        return
    statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    dbapi = db.session.get_bind().dialect.loaded_dbapi
    raw = db.session.connection().connection.dbapi_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except dbapi.Error as error:
        raise sa.exc.DBAPIError.instance(statement, None, error, dbapi.Error) from error


def _new_ids(table: sa.Table, count: int) -> list[int] | None:
    """PostgreSQL: `count` ids taken from the table's sequence, in order (COPY then writes them); None elsewhere."""
    if not _postgres() or not count:
        return None
    return list(
        db.session.scalars(
            sa.text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :count)"),
            {"table": table.name, "count": count},
        )
    )


class _Finder(operations.Finder):
    """operations.Finder answering from what the batch loaded once (one device, its users and cost centers)."""

    def __init__(self, device_id: int, zone: dt.tzinfo) -> None:
        self.device_id = device_id
        self.zone = zone
        self.device_known: bool | None = None
        self.customers: dict[dt.date, int | None] = {}
        self.users: dict[int, PrintUser | None] = {}
        self.centers: dict[int, CostCenter | None] = {}
        self.chargeable: dict[int, set[int]] = {}
        self.hidden: dict[int, bool] = {}
        self.books: dict[tuple, pricing.PriceBook] = {}

    def load(self, user_ids: set[int], center_ids: set[int]) -> None:
        for chunk in _chunks(sorted(user_ids)):
            query = sa.select(PrintUser).where(PrintUser.id.in_(chunk)).options(selectinload(PrintUser.cost_centers))
            for user in db.session.scalars(query):
                self.users[user.id] = user
                self.chargeable[user.id] = {center.id for center in user.cost_centers}
                if user.default_cost_center_id is not None:
                    self.chargeable[user.id].add(user.default_cost_center_id)
                    center_ids.add(user.default_cost_center_id)
        self.users.update({number: None for number in user_ids if number not in self.users})
        # Loaded into the session, so user.default_cost_center is found without a query.
        for chunk in _chunks(sorted(center_ids)):
            for center in db.session.scalars(sa.select(CostCenter).where(CostCenter.id.in_(chunk))):
                self.centers[center.id] = center
        self.centers.update({number: None for number in center_ids if number not in self.centers})

    def device_exists(self, device_id: int) -> bool:
        if device_id != self.device_id:
            return super().device_exists(device_id)
        if self.device_known is None:
            self.device_known = super().device_exists(device_id)
        return self.device_known

    def customer_of_device(self, device_id: int, on: dt.datetime) -> int | None:
        return self.customer_on_day(device_id, self.local_date(on))

    def customer_on_day(self, device_id: int, day: dt.date) -> int | None:
        if device_id != self.device_id:
            return super().customer_on_day(device_id, day)
        if day not in self.customers:
            self.customers[day] = super().customer_on_day(device_id, day)
        return self.customers[day]

    def user(self, user_id: int) -> PrintUser | None:
        if user_id not in self.users:
            self.users[user_id] = super().user(user_id)
        return self.users[user_id]

    def cost_center(self, center_id: int) -> CostCenter | None:
        if center_id not in self.centers:
            self.centers[center_id] = super().cost_center(center_id)
        return self.centers[center_id]

    def default_cost_center(self, user: PrintUser) -> CostCenter | None:
        number = user.default_cost_center_id
        return self.cost_center(number) if number is not None else None

    def chargeable_ids(self, user: PrintUser, active_only: bool) -> set[int]:
        if active_only or user.id not in self.chargeable:
            return super().chargeable_ids(user, active_only)
        return self.chargeable[user.id]

    def local_date(self, moment: dt.datetime) -> dt.date:
        return clock.as_utc(moment).astimezone(self.zone).date()

    def price_book(self, customer_id: int, function: str, on: dt.date) -> pricing.PriceBook:
        """pricing.cached_price_book (prices kept 10 s across batches), asked once per batch."""
        key = (customer_id, function, on)
        book = self.books.get(key)
        if book is None:
            book = self.books[key] = pricing.cached_price_book(customer_id, function, on)
        return book

    def document_name(self, customer_id: int, value: str) -> str | None:
        """privacy.document_name_kept with the customer's setting read once."""
        hidden = self.hidden.get(customer_id)
        if hidden is None:
            hidden = self.hidden[customer_id] = privacy.names_hidden(customer_id)
        return None if hidden else privacy.clean_document_name(value)


@dataclass(slots=True)
class _Item:
    """One item on its way: its sequence number, then its checked job or its errors, then the quota that pays.
    Without `check` it has taken the plain way so far (operations.plain_job), `data` being the item as sent."""

    index: int
    seq: int | None
    data: dict | None = None
    check: Checker | None = None
    job: operations.CheckedJob | None = None
    errors: dict[str, str] | None = None
    first: bool = False  # the first checked copy of its sequence number: its quota is known and locked
    quota: Quota | None = None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class _Batch:
    def __init__(self, device_id: int, items: list[dict]) -> None:
        self.device_id = device_id
        self.items = items
        self.now = utcnow()
        self.finder = _Finder(device_id, clock.timezone())
        self.results: list[ItemResult | None] = [None] * len(items)

    def record(self) -> list[ItemResult]:
        self._lock_device()
        parsed = self._keys()
        stored = self._stored({item.seq for item in parsed if item.seq is not None and item.errors is None})
        self._check(parsed, stored)
        self._charge_and_write(parsed, stored)
        return self.results  # type: ignore[return-value]

    def _lock_device(self) -> None:
        if _postgres():
            db.session.execute(
                sa.text("SELECT pg_advisory_xact_lock(:class_, :device)"),
                {"class_": LOCK_CLASS, "device": self.device_id},
            )
        else:
            quotas._take_write_lock()

    def _keys(self) -> list[_Item]:
        """Each item's device_seq (record_transaction looks for the stored one before checking anything else)."""
        parsed = []
        plain = type(self.device_id) is int and 1 <= self.device_id <= MAX_PAGES
        for index, raw in enumerate(self.items):
            if plain and type(raw) is dict:
                seq = raw.get("device_seq")
                if type(seq) is int and 0 <= seq <= operations.MAX_DEVICE_SEQ:
                    parsed.append(_Item(index, seq, raw))
                    continue
            check = Checker()
            try:
                data = operations.job_object(raw)
            except ValidationError as error:
                parsed.append(_Item(index, None, errors=dict(error.errors)))
                continue
            data = {**data, "device_id": self.device_id}
            _device_id, seq = operations.transaction_key(check, data)
            parsed.append(_Item(index, seq, data, check))
        return parsed

    def _stored(self, seqs: set[int]) -> dict[int, tuple[int, Decimal]]:
        found: dict[int, tuple[int, Decimal]] = {}
        table = Transaction.__table__
        if _postgres() and seqs:
            # One array parameter, not one parameter per number.
            rows = db.session.execute(
                sa.text(
                    f"SELECT device_seq, id, cost FROM {table.name} "
                    "WHERE device_id = :device AND device_seq = ANY(:seqs)"
                ),
                {"device": self.device_id, "seqs": sorted(seqs)},
            )
            return {seq: (number, cost) for seq, number, cost in rows}
        for chunk in _chunks(sorted(seqs)):
            rows = db.session.execute(
                sa.select(table.c.device_seq, table.c.id, table.c.cost).where(
                    table.c.device_id == self.device_id, table.c.device_seq.in_(chunk)
                )
            )
            found.update({seq: (number, cost) for seq, number, cost in rows})
        return found

    def _check(self, parsed: list[_Item], stored: dict[int, tuple[int, Decimal]]) -> None:
        """Check every item not stored before (repeats inside the batch too: the first may yet be refused)."""
        pending = [item for item in parsed if item.errors is None and item.seq not in stored]
        user_ids = {_int(item.data.get("user_id")) for item in pending}
        center_ids = {_int(item.data.get("cost_center_id")) for item in pending}
        self.finder.load(user_ids - {None}, center_ids - {None})
        for item in pending:
            if item.check is None:
                item.job = operations.plain_job(item.data, self.device_id, item.seq, self.now, self.finder)
                if item.job is not None:
                    continue
                # The exact way, as record_transaction goes: its errors and messages.
                item.check = Checker()
                item.data = {**item.data, "device_id": self.device_id}
                operations.transaction_key(item.check, item.data)
            try:
                item.job = operations.check_job(item.check, item.data, self.now, self.finder)
            except ValidationError as error:
                item.errors = dict(error.errors)

    def _quotas(self, jobs: list[operations.CheckedJob]) -> tuple[dict[int, Quota], dict[int, Quota]]:
        """The quotas of the users and shared cost centers these jobs name: by user id, by cost center id."""
        user_ids = sorted({job.user.id for job in jobs if job.user is not None})
        center_ids = sorted(
            {job.cost_center.id for job in jobs if job.cost_center is not None and job.cost_center.shared}
        )
        by_user: dict[int, Quota] = {}
        by_center: dict[int, Quota] = {}
        if not user_ids and not center_ids:
            return by_user, by_center
        for quota in db.session.scalars(
            sa.select(Quota).where(sa.or_(Quota.user_id.in_(user_ids), Quota.cost_center_id.in_(center_ids)))
        ):
            if quota.user_id is not None:
                by_user[quota.user_id] = quota
            else:
                by_center[quota.cost_center_id] = quota
        return by_user, by_center

    def _charge_and_write(self, parsed: list[_Item], stored: dict[int, tuple[int, Decimal]]) -> None:
        by_user, by_center = self._quotas([item.job for item in parsed if item.job is not None])

        def paying(job: operations.CheckedJob) -> Quota | None:  # quotas.paying_quota, from what was loaded
            center = job.cost_center
            if center is not None and center.shared and center.id in by_center:
                return by_center[center.id]
            return by_user.get(job.user.id) if job.user is not None else None

        # The balances the first copy of each sequence number pays: locked at once (repeats only when needed).
        first: set[int] = set()
        needed: dict[int, Quota] = {}
        for item in parsed:
            if item.job is not None and item.seq not in first:
                first.add(item.seq)
                item.first = True
                item.quota = paying(item.job)
                if item.quota is not None:
                    needed[item.quota.id] = item.quota
        today = self.finder.local_date(self.now)
        charges = _Charges(today)
        charges.lock(needed)

        taken: dict[int, int] = {}  # device_seq -> index of the item storing it
        rows: list[tuple[_Item, int | None, Decimal | None]] = []  # (item, quota id, balance after)
        for item in parsed:
            if item.seq is not None and item.seq in stored:
                number, cost = stored[item.seq]
                self.results[item.index] = ItemResult(item.seq, "duplicate", number, cost)
                continue
            if item.seq is not None and item.seq in taken:
                self.results[item.index] = ItemResult(item.seq, "duplicate")  # filled in once written
                continue
            if item.job is None:
                self.results[item.index] = ItemResult(item.seq, "refused", errors=item.errors)
                continue
            quota = item.quota if item.first else paying(item.job)
            quota_id = balance_after = None
            if quota is not None:
                try:
                    balance_after = charges.charge(quota, item.job.values["cost"], len(rows))
                except ValidationError as error:
                    self.results[item.index] = ItemResult(item.seq, "refused", errors=dict(error.errors))
                    continue
                quota_id = quota.id
            taken[item.seq] = item.index  # type: ignore[index]
            rows.append((item, quota_id, balance_after))

        ids = self._insert(rows)
        charges.write(ids)
        self._add_rollups(rows)
        for (item, _quota_id, _balance_after), number in zip(rows, ids, strict=True):
            self.results[item.index] = ItemResult(item.seq, "stored", number, item.job.values["cost"])
        for result in self.results:
            if result is not None and result.status == "duplicate" and result.transaction_id is None:
                first_copy = self.results[taken[result.device_seq]]
                result.transaction_id, result.cost = first_copy.transaction_id, first_copy.cost

    def _insert(self, rows: list[tuple[_Item, int | None, Decimal | None]]) -> list[int]:
        """The transactions, in order: ids taken first and COPY on PostgreSQL; elsewhere multi-row INSERTs, the ids
        read back by device_seq (the device is locked, so they are this batch's)."""
        if not rows:
            return []
        table = Transaction.__table__
        ids = _new_ids(table, len(rows))
        columns = (*(() if ids is None else ("id",)), *TX_COLUMNS, "refunded", "anonymised", "received_at")
        zero, now = Decimal(0), self.now
        if ids is None:
            copied = [(*_HEAD(item.job.values), quota, after, zero, False, now) for item, quota, after in rows]
        else:
            now_text = now.isoformat()
            copied = []
            for number, (item, quota, after) in zip(ids, rows, strict=True):
                values = item.job.values
                copied.append(
                    (
                        number,
                        *_BEFORE_TIMES(values),
                        values["started_at"].isoformat(),
                        values["ended_at"].isoformat(),
                        *_AFTER_TIMES(values),
                        quota,
                        after,
                        zero,
                        False,
                        now_text,
                    )
                )
        _copy(table, columns, copied)
        if ids is not None:
            return ids
        found = dict(
            db.session.execute(
                sa.select(table.c.device_seq, table.c.id).where(
                    table.c.device_id == self.device_id,
                    table.c.device_seq.in_([item.seq for item, _quota, _after in rows]),
                )
            ).all()
        )
        return [found[item.seq] for item, _quota, _after in rows]

    @staticmethod
    def _add_rollups(rows: list[tuple[_Item, int | None, Decimal | None]]) -> None:
        """rollups.add_transaction for every row, summed per rollup row first (rollups.add_days)."""
        days: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, Decimal(0)])
        for item, _quota, _after in rows:
            job = item.job
            values = job.values
            sums = days[
                (
                    values["customer_id"],
                    job.day,
                    values["user_id"] or 0,
                    values["cost_center_id"] or 0,
                    values["device_id"],
                    values["function"],
                    values["paper_size"],
                )
            ]
            sums[0] += 1
            sums[1] += values["sides_bw"] or 0
            sums[2] += values["sides_color"] or 0
            sums[3] += values["sheets"] or 0
            sums[4] += values["cost"]
        rollups.add_days(days)


class _Charges:
    """quotas.charge for many jobs: each balance locked and its due periods opened once, moved in memory in order,
    its ledger records written in bulk, the warning email sent at the job that passes W% (quotas._warn_if_due)."""

    def __init__(self, today: dt.date) -> None:
        self.today = today
        self.balances: dict[int, Balance] = {}
        self.running: dict[int, Decimal] = {}
        # Per quota watched for its warning: what the period spent so far; the row index where it passes W%.
        self.spent: dict[int, Decimal] = {}
        self.warn_at: dict[int, tuple[int, Decimal]] = {}
        self.entries: list[tuple[int, int, Decimal]] = []  # (quota id, row index, amount)
        self.quotas: dict[int, Quota] = {}

    def lock(self, needed: dict[int, Quota]) -> None:
        if not needed:
            return
        ids = sorted(needed)
        query = (
            sa.select(Balance)
            .where(Balance.quota_id.in_(ids))
            .order_by(Balance.quota_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        found = {balance.quota_id: balance for balance in db.session.scalars(query)}
        for quota_id in ids:
            self._take(needed[quota_id], found.get(quota_id))
        watched = [quota_id for quota_id in ids if self._watchable(needed[quota_id], self.balances[quota_id])]
        if watched:
            db.session.flush()
            spent = dict(
                db.session.execute(
                    sa.select(LedgerEntry.balance_id, sa.func.coalesce(sa.func.sum(LedgerEntry.amount), 0))
                    .join(Balance, Balance.id == LedgerEntry.balance_id)
                    .where(
                        Balance.quota_id.in_(watched),
                        LedgerEntry.period_start == Balance.period_start,
                        LedgerEntry.kind.in_(("charge", "refund")),
                    )
                    .group_by(LedgerEntry.balance_id)
                ).all()
            )
            for quota_id in watched:
                self.spent[quota_id] = -Decimal(spent.get(self.balances[quota_id].id, 0))

    def _take(self, quota: Quota, balance: Balance | None) -> Balance:
        """quotas.current_balance on a row already locked (or missing: its first period opens)."""
        if balance is None:
            balance = quotas._open_first(quota, self.today)
        quotas._open_due(quota, balance, self.today)
        self.quotas[quota.id] = quota
        self.balances[quota.id] = balance
        self.running[quota.id] = balance.balance
        return balance

    @staticmethod
    def _watchable(quota: Quota, balance: Balance) -> bool:
        """What quotas._warn_if_due asks before it reads the period's spending."""
        if quota.user_id is None or balance.warned_period == balance.period_start:
            return False
        user = db.session.get(PrintUser, quota.user_id)
        return user is not None and bool(user.email)

    def charge(self, quota: Quota, cost: Decimal, row: int) -> Decimal:
        """The balance after charging `cost` (quotas.charge); ValidationError when it cannot be stored."""
        if quota.id not in self.balances:
            self._take(quota, self._locked(quota))
            if self._watchable(quota, self.balances[quota.id]):
                db.session.flush()
                self.spent[quota.id] = quotas.spent_in_period(self.balances[quota.id])
        balance = self.balances[quota.id]
        new = self.running[quota.id] - cost
        if abs(new) >= quotas.BALANCE_LIMIT:
            balance.balance = self.running[quota.id]
            quotas._move(balance, -cost, "sides_bw")  # raises, with its message
        self.running[quota.id] = new
        if cost:
            self.entries.append((quota.id, row, -cost))
        if quota.id in self.spent and quota.id not in self.warn_at:
            self.spent[quota.id] += cost
            spent = self.spent[quota.id]
            if spent > 0 and spent * 100 >= balance.opening * quota.warning_percent:
                self.warn_at[quota.id] = (row, new)
        return new

    @staticmethod
    def _locked(quota: Quota) -> Balance | None:
        return db.session.scalars(
            sa.select(Balance)
            .where(Balance.quota_id == quota.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def write(self, ids: list[int]) -> None:
        """The charges' ledger records (those up to each warning first, then the warning, then the rest) and the
        balances."""
        before, after = [], []
        for quota_id, row, amount in self.entries:
            warn = self.warn_at.get(quota_id)
            (after if warn is not None and row > warn[0] else before).append((quota_id, row, amount))
        self._ledger(before, ids)
        for quota_id, (_row, value) in self.warn_at.items():
            self.balances[quota_id].balance = value
            quotas._warn_if_due(self.quotas[quota_id], self.balances[quota_id])
        self._ledger(after, ids)
        for quota_id, value in self.running.items():
            self.balances[quota_id].balance = value
        db.session.flush()

    def _ledger(self, entries: list[tuple[int, int, Decimal]], ids: list[int]) -> None:
        if not entries:
            return
        now = utcnow()
        rows = [
            (self.balances[quota_id].id, self.balances[quota_id].period_start, "charge", amount, ids[row], now)
            for quota_id, row, amount in entries
        ]
        db.session.flush()
        _copy(LedgerEntry.__table__, LEDGER_COLUMNS, rows)
