"""Usage reports from the rollups: by user, cost center (with its subtree), device, function, day or month."""

from __future__ import annotations

import csv
import datetime as dt
import io
import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import render_template
from flask_babel import format_date, format_decimal, format_percent, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import selectinload

from core import clock
from core.csv_files import neutralise_formula
from core.db import db
from core.labels import record_label
from core.models import Company, Partner
from core.validation import Checker
from modules.device_accounting.models import (
    FUNCTIONS,
    CenterDailyUsage,
    CostCenter,
    DailyUsage,
    MonthlyUsage,
    PrintUser,
)
from modules.rentals.models import Device, DeviceModel, Installation

GROUP_BYS = ("user", "cost_center", "device", "function", "day", "month")
FILTERS = ("user_id", "cost_center_id", "device_id", "function")
# Functions whose sides come out of the device: the colour share is theirs (scans are read, not printed).
OUTPUT_FUNCTIONS = ("print", "copy", "fax")
SUMS = ("jobs", "sides_bw", "sides_color", "sheets", "cost")
GROUP_COLUMNS = {
    "user": "user_id",
    "cost_center": "cost_center_id",
    "device": "device_id",
    "function": "function",
    "day": "day",
    "month": "month",
}
TOP_USERS = 10
# The longest range a report covers (ten years of days, each listed when grouped by day).
MAX_DAYS = 3660
FIRST_YEAR, LAST_YEAR = 1900, 2999

FUNCTION_LABELS = {
    "print": _l("Print"),
    "copy": _l("Copy"),
    "scan": _l("Scan"),
    "fax": _l("Fax"),
    "email": _l("Scan to email"),
    "ftp": _l("Scan to FTP"),
}
GROUP_LABELS = {
    "user": _l("User"),
    "cost_center": _l("Cost center"),
    "device": _l("Device"),
    "function": _l("Function"),
    "day": _l("Day"),
    "month": _l("Month"),
}
GROUP_TITLES = {
    "user": _l("Usage by user"),
    "cost_center": _l("Usage by cost center"),
    "device": _l("Usage by device"),
    "function": _l("Usage by function"),
    "day": _l("Usage by day"),
    "month": _l("Usage by month"),
}


def function_label(code: str) -> str:
    return str(FUNCTION_LABELS.get(code, code))


def check_request(group_by: str | None, since: Any, until: Any, filters: dict[str, Any] | None = None) -> None:
    """ValidationError naming the field: an unknown grouping or filter, dates missing or in the wrong order."""
    check = Checker()
    if group_by is not None and group_by not in GROUP_BYS:
        check.fail("group_by", _("Choose one of: %(choices)s", choices=", ".join(GROUP_BYS)))
    for name, value, missing in (
        ("since", since, _("Give the first day of the report.")),
        ("until", until, _("Give the last day of the report.")),
    ):
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            check.fail(name, missing)
        elif not FIRST_YEAR <= value.year <= LAST_YEAR:
            check.fail(name, _("Give a date between %(first)d and %(last)d.", first=FIRST_YEAR, last=LAST_YEAR))
    if "since" not in check and "until" not in check:
        if until < since:
            check.fail("until", _("The last day must be on or after the first day."))
        elif (until - since).days >= MAX_DAYS:
            check.fail("until", _("A report covers at most %(years)d years.", years=MAX_DAYS // 366))
    if filters and filters.get("function") not in (None, *FUNCTIONS):
        check.fail("function", _("Choose one of: %(choices)s", choices=", ".join(FUNCTIONS)))
    for name in filters or {}:
        if name not in FILTERS:
            check.fail(name, _("Unknown filter."))
    check.raise_if_any()


def _date(check: Checker, field: str, text: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        check.fail(field, _("Give a date as YYYY-MM-DD."))
        return None


def _id(check: Checker, field: str, text: Any) -> int | None:
    text = str(text).strip()
    if not text.isdigit() or not 0 < int(text) < 2**31:
        check.fail(field, _("Choose one from the list."))
        return None
    return int(text)


def _quarter_start(today: dt.date) -> dt.date:
    """The first day of the month two months before `today`'s: 1 Oct for any day of December."""
    month = today.month - 2
    return dt.date(today.year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


def read_filters(args: Mapping[str, Any], default_group_by: str = "cost_center") -> dict[str, Any]:
    """A report page's query string (`since`, `until`, `group_by`, `user_id`, `cost_center_id`, `device_id`,
    `function`) read and checked: a dict for `usage(customer_id, **filters)`. Missing dates give the last three
    months, from the first of the month two months back to the dealer's today (a trend, not one early-month day); bad
    values raise ValidationError naming the field."""
    check = Checker()
    today = clock.today()
    since = _date(check, "since", args["since"]) if args.get("since") else _quarter_start(today)
    until = _date(check, "until", args["until"]) if args.get("until") else today
    group_by = args.get("group_by") or default_group_by
    filters: dict[str, Any] = {}
    for name in ("user_id", "cost_center_id", "device_id"):
        if args.get(name):
            filters[name] = _id(check, name, args[name])
    if args.get("function"):
        filters["function"] = args["function"]
    check.raise_if_any()
    check_request(group_by, since, until, filters)
    return {"group_by": group_by, "since": since, "until": until, **filters}


def filter_choices(customer_id: int) -> dict[str, list[tuple[Any, str]]]:
    """What the report filters offer for one customer, by label: users, cost centers (paths), the devices that
    stand or stood at the customer, functions. A few queries whatever the number of rows."""
    users = db.session.scalars(
        sa.select(PrintUser)
        .where(PrintUser.customer_id == customer_id)
        .order_by(PrintUser.full_name, PrintUser.username)
    )
    tree = _tree(customer_id)
    stood_there = sa.select(Installation.device_id).where(Installation.customer_id == customer_id)
    devices = db.session.scalars(
        sa.select(Device)
        .where(sa.or_(Device.customer_id == customer_id, Device.id.in_(stood_there)))
        .options(selectinload(Device.model).selectinload(DeviceModel.manufacturer))
        .order_by(Device.serial)
    )
    return {
        "users": [(user.id, str(user.full_name or user.username)) for user in users],
        "cost_centers": sorted(((cid, _path(tree, cid)) for cid in tree), key=lambda item: item[1].casefold()),
        "devices": [(device.id, record_label(device)) for device in devices],
        "functions": [(code, function_label(code)) for code in FUNCTIONS],
        "group_bys": [(code, str(label)) for code, label in GROUP_LABELS.items()],
    }


def _tree(customer_id: int) -> dict[int, tuple[int | None, str]]:
    """The customer's cost centers: id -> (parent id, name), in one query."""
    rows = db.session.execute(
        sa.select(CostCenter.id, CostCenter.parent_id, CostCenter.name).where(CostCenter.customer_id == customer_id)
    )
    return {center_id: (parent_id, name) for center_id, parent_id, name in rows}


def _children(tree: dict[int, tuple[int | None, str]]) -> dict[int | None, list[int]]:
    children: dict[int | None, list[int]] = defaultdict(list)
    for center_id, (parent_id, _name) in tree.items():
        children[parent_id if parent_id in tree else None].append(center_id)
    for ids in children.values():
        ids.sort(key=lambda center_id: tree[center_id][1].casefold())
    return children


def _subtree(tree: dict[int, tuple[int | None, str]], root: int) -> list[int]:
    """`root` and its descendants (a cycle in bad data is walked once)."""
    if root not in tree:
        return []
    children = _children(tree)
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        if node in found:
            continue
        found.append(node)
        stack.extend(children.get(node, []))
    return found


def _path(tree: dict[int, tuple[int | None, str]], center_id: int) -> str:
    names, node, seen = [], center_id, set()
    while node in tree and node not in seen:
        seen.add(node)
        names.append(tree[node][1])
        node = tree[node][0]
    return " / ".join(reversed(names))


# What the narrow rollup (CenterDailyUsage) can answer: reports grouped and filtered by these only.
CENTER_COLUMNS = {"cost_center_id", "function", "day", "month"}


class _Scope:
    """What one report reads: the customer's rollup rows of `since`..`until` matching the filters, from the tables
    that hold the fewest rows for it.

    A report grouped and filtered by cost center, function and time only reads CenterDailyUsage (a few hundred rows
    a day). Any other reads whole months from MonthlyUsage, and a partial month too when the customer has no job in
    it outside the range (the month so far), and the other days from DailyUsage; grouped by day, days only."""

    def __init__(self, customer_id: int, since: dt.date, until: dt.date, filters: dict[str, Any], tree=None,
                 columns: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.customer_id = customer_id
        self.filters = filters
        self.centers = None
        if filters.get("cost_center_id") is not None:
            tree = _tree(customer_id) if tree is None else tree
            self.centers = _subtree(tree, filters["cost_center_id"]) or [-1]
        used = {*columns, *(name for name, value in filters.items() if value is not None)}
        self.narrow = used <= CENTER_COLUMNS
        self.months: list[dt.date] = []
        self.ranges: list[tuple[dt.date, dt.date]] = []
        if self.narrow or "day" in columns:
            self.ranges.append((since, until))
            return
        for first in _months(since, until):
            last = _month_end(first)
            low, high = max(since, first), min(until, last)
            if (low, high) == (first, last) or not self._jobs_outside(first, last, low, high):
                self.months.append(first)
            elif self.ranges and self.ranges[-1][1] + dt.timedelta(days=1) == low:
                self.ranges[-1] = (self.ranges[-1][0], high)
            else:
                self.ranges.append((low, high))

    def _jobs_outside(self, first: dt.date, last: dt.date, low: dt.date, high: dt.date) -> bool:
        outside = sa.or_(
            sa.and_(DailyUsage.day >= first, DailyUsage.day < low),
            sa.and_(DailyUsage.day > high, DailyUsage.day <= last),
        )
        query = sa.select(DailyUsage.id).where(DailyUsage.customer_id == self.customer_id, outside).limit(1)
        return db.session.scalar(query) is not None

    def pieces(self) -> list[tuple[type, Any]]:
        """(model, condition on its date) of each table to read."""
        pieces: list[tuple[type, Any]] = []
        if self.months:
            pieces.append((MonthlyUsage, MonthlyUsage.month.in_(self.months)))
        if self.ranges:
            model = CenterDailyUsage if self.narrow else DailyUsage
            days = [sa.and_(model.day >= low, model.day <= high) for low, high in self.ranges]
            pieces.append((model, sa.or_(*days) if len(days) > 1 else days[0]))
        return pieces

    def conditions(self, model: type) -> list:
        conditions = [model.customer_id == self.customer_id]
        for name in ("user_id", "device_id", "function"):
            if self.filters.get(name) is not None:
                conditions.append(getattr(model, name) == self.filters[name])
        if self.centers is not None:
            conditions.append(model.cost_center_id.in_(self.centers))
        return conditions


def _month_end(first: dt.date) -> dt.date:
    return (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)


def _column(model: type, name: str):
    if name == "month":
        return MonthlyUsage.month if model is MonthlyUsage else model.day
    return getattr(model, name)


def _sums(scope: _Scope, *names: str, identified: bool = False) -> dict[Any, dict[str, Any]]:
    """Totals per value of the columns `names` (user_id, cost_center_id, device_id, function, day, month) over the
    scope's rows: one GROUP BY query per table read, merged (a month's days folded into the month). `identified`
    leaves out the jobs of no user."""
    result: dict[Any, dict[str, Any]] = {}
    for model, when in scope.pieces():
        columns = [_column(model, name) for name in names]
        query = (
            sa.select(*columns, *(sa.func.sum(getattr(model, name)) for name in SUMS))
            .where(*scope.conditions(model), when, *([model.user_id != 0] if identified else []))
            .group_by(*columns)
        )
        folds = "month" in names and model is not MonthlyUsage
        for row in db.session.execute(query):
            values = row[: len(names)]
            if folds:
                values = [
                    value.replace(day=1) if name == "month" else value
                    for name, value in zip(names, values, strict=True)
                ]
            key = values[0] if len(names) == 1 else tuple(values)
            figures = _figures(row[len(names) :])
            if key in result:
                _add(result[key], figures)
            else:
                result[key] = figures
    return dict(result)


def _figures(values) -> dict[str, Any]:
    jobs, bw, color, sheets, cost = values
    return {
        "jobs": int(jobs or 0),
        "sides_bw": int(bw or 0),
        "sides_color": int(color or 0),
        "sheets": int(sheets or 0),
        "cost": Decimal(cost or 0).quantize(Decimal("0.0001")),
    }


def _zero() -> dict[str, Any]:
    return _figures((0, 0, 0, 0, 0))


def _add(into: dict[str, Any], figures: dict[str, Any]) -> None:
    for name in SUMS:
        into[name] += figures[name]


def _row(key: Any, label: str, figures: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"key": key, "label": label, **figures, **extra}


def _by_cost(rows: list[dict]) -> list[dict]:
    return sorted(
        rows, key=lambda row: (-row["cost"], -(row["sides_bw"] + row["sides_color"]), row["label"].casefold())
    )


def usage(customer_id: int, group_by: str, since: dt.date, until: dt.date, **filters: Any) -> list[dict[str, Any]]:
    """The customer's usage from `since` to `until` (the dealer's days, inclusive), one row per group:
    {key, label, jobs, sides_bw, sides_color, sheets, cost}. Filters: user_id, cost_center_id (with its subtree),
    device_id, function. Users and devices come by cost, highest first; cost centers as a tree (each row includes
    its subtree, `depth` gives its level); functions in their usual order; days and months in order, each one of
    the range present (zeros where nothing was printed). Reads the rollups only (whole months from MonthlyUsage)."""
    check_request(group_by, since, until, filters)
    tree = _tree(customer_id) if group_by == "cost_center" or filters.get("cost_center_id") is not None else None
    scope = _Scope(customer_id, since, until, filters, tree, columns=(GROUP_COLUMNS[group_by],))
    if group_by == "user":
        return _users(scope)
    if group_by == "cost_center":
        return _cost_centers(_sums(scope, "cost_center_id"), tree, filters.get("cost_center_id"))
    if group_by == "device":
        return _devices(_sums(scope, "device_id"))
    if group_by == "function":
        return _functions(_sums(scope, "function"))
    if group_by == "day":
        days = _sums(scope, "day")
        return [
            _row(day.isoformat(), format_date(day, "medium"), days.get(day) or _zero())
            for day in (since + dt.timedelta(days=n) for n in range((until - since).days + 1))
        ]
    return _trend(_sums(scope, "month"), since, until)


def _functions(sums: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [_row(code, function_label(code), sums[code]) for code in FUNCTIONS if code in sums]


def _trend(sums: dict[dt.date, dict[str, Any]], since: dt.date, until: dt.date) -> list[dict[str, Any]]:
    return [
        _row(month.strftime("%Y-%m"), format_date(month, "LLLL yyyy"), sums.get(month) or _zero())
        for month in _months(since, until)
    ]


def _months(since: dt.date, until: dt.date) -> list[dt.date]:
    months, month = [], since.replace(day=1)
    while month <= until:
        months.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return months


def _user_names(customer_id: int, user_ids: list[int]) -> dict[int, str]:
    """The names of these print users of the customer (all of them in one query when there are many)."""
    query = sa.select(PrintUser.id, PrintUser.full_name, PrintUser.username).where(PrintUser.customer_id == customer_id)
    if len(user_ids) <= 500:
        query = query.where(PrintUser.id.in_(user_ids))
    return {user_id: str(full_name or username) for user_id, full_name, username in db.session.execute(query)}


def _users(scope: _Scope) -> list[dict[str, Any]]:
    sums = _sums(scope, "user_id")
    names = _user_names(scope.customer_id, [user_id for user_id in sums if user_id])
    deleted, nobody = str(_("Deleted user")), _none_user()
    rows = [
        _row(user_id or None, names.get(user_id, deleted) if user_id else nobody, figures)
        for user_id, figures in sums.items()
    ]
    return _by_cost(rows)


def _none_user() -> str:
    return str(_("No user (unidentified or anonymised)"))


def _devices(sums: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    devices = {
        device.id: device
        for device in db.session.scalars(
            sa.select(Device)
            .where(Device.id.in_(list(sums)))
            .options(selectinload(Device.model).selectinload(DeviceModel.manufacturer))
        )
    }
    rows = [
        _row(device_id, record_label(devices[device_id]) if device_id in devices else str(device_id), figures)
        for device_id, figures in sums.items()
    ]
    return _by_cost(rows)


def _cost_centers(own: dict[int, dict[str, Any]], tree: dict, root: int | None) -> list[dict[str, Any]]:
    """A row per cost center with usage in its subtree, each counting its descendants; then jobs charged to none."""
    children = _children(tree)
    rows: list[dict[str, Any]] = []

    def walk(center_id: int, depth: int, seen: set[int]) -> dict[str, Any]:
        seen.add(center_id)
        total = dict(own.get(center_id) or _zero())
        position = len(rows)
        for child in children.get(center_id, []):
            if child not in seen:
                _add(total, walk(child, depth + 1, seen))
        if total["jobs"] or total["cost"] or total["sides_bw"] or total["sides_color"]:
            rows.insert(position, _row(center_id, _path(tree, center_id), total, depth=depth))
        return total

    seen: set[int] = set()
    for top in [root] if root is not None else children.get(None, []):
        if top in tree:
            walk(top, 0, seen)
    if root is None:
        # Jobs charged to no cost center, or to one deleted since.
        missing = _zero()
        for center_id, figures in own.items():
            if center_id not in tree:
                _add(missing, figures)
        if missing["jobs"] or missing["cost"]:
            rows.append(_row(None, str(_("No cost center")), missing, depth=0))
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of rows that do not overlap (every grouping but cost centers, whose rows include their subtrees)."""
    total = _zero()
    for row in rows:
        _add(total, row)
    return total


def colour_share(sides_bw: int, sides_color: int) -> Decimal | None:
    """Colour sides over all sides, 0 to 1 (four places); None when nothing was printed."""
    printed = sides_bw + sides_color
    return (Decimal(sides_color) / printed).quantize(Decimal("0.0001")) if printed else None


def top_users(
    customer_id: int, since: dt.date, until: dt.date, limit: int = TOP_USERS, **filters: Any
) -> list[dict[str, Any]]:
    """The identified users who cost most (then printed most), as `usage` rows."""
    check_request(None, since, until, filters)
    return _top_users(_Scope(customer_id, since, until, filters, columns=("user_id",)), limit)


def _top_users(scope: _Scope, limit: int = TOP_USERS) -> list[dict[str, Any]]:
    pieces = scope.pieces()
    if len(pieces) == 1:  # one table to read: the database keeps the best `limit` rows
        (model, when), cost = pieces[0], sa.func.sum(pieces[0][0].cost)
        sides = sa.func.sum(model.sides_bw) + sa.func.sum(model.sides_color)
        query = (
            sa.select(model.user_id, *(sa.func.sum(getattr(model, name)) for name in SUMS))
            .where(*scope.conditions(model), when, model.user_id != 0)
            .group_by(model.user_id)
            .order_by(cost.desc(), sides.desc(), model.user_id)
            .limit(limit)
        )
        best = [(row[0], _figures(row[1:])) for row in db.session.execute(query)]
    else:
        sums = _sums(scope, "user_id", identified=True)
        best = sorted(
            sums.items(), key=lambda item: (-item[1]["cost"], -item[1]["sides_bw"] - item[1]["sides_color"], item[0])
        )[:limit]
    names = _user_names(scope.customer_id, [user_id for user_id, _figures in best])
    deleted = str(_("Deleted user"))
    return [_row(user_id, names.get(user_id, deleted), figures) for user_id, figures in best]


def summary(customer_id: int, since: dt.date, until: dt.date, **filters: Any) -> dict[str, Any]:
    """What the report page and the monthly email show: totals, colour share of printed sides (print, copy, fax),
    the top users by cost, usage by function, and the trend by month; two GROUP BY queries per table read."""
    check_request(None, since, until, filters)
    by_month_function = _sums(
        _Scope(customer_id, since, until, filters, columns=("month", "function")), "month", "function"
    )
    functions: dict[str, dict[str, Any]] = defaultdict(_zero)
    months: dict[dt.date, dict[str, Any]] = defaultdict(_zero)
    for (month, function), figures in by_month_function.items():
        _add(functions[function], figures)
        _add(months[month], figures)
    by_function = _functions(functions)
    printed = totals([row for row in by_function if row["key"] in OUTPUT_FUNCTIONS])
    return {
        "since": since,
        "until": until,
        "totals": totals(by_function),
        "printed": printed,
        "colour_share": colour_share(printed["sides_bw"], printed["sides_color"]),
        "top_users": _top_users(_Scope(customer_id, since, until, filters, columns=("user_id",))),
        "by_function": by_function,
        "trend": _trend(months, since, until),
    }


def chart_data(report: dict[str, Any]) -> dict[str, Any]:
    """The summary as the charts read it (JSON: labels, numbers; money as strings with their digits)."""

    def series(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "labels": [row["label"] for row in rows],
            "sides_bw": [row["sides_bw"] for row in rows],
            "sides_color": [row["sides_color"] for row in rows],
            "cost": [str(row["cost"]) for row in rows],
        }

    share = report["colour_share"]
    return {
        "locale": str(get_locale() or "en").replace("_", "-"),
        "trend": series(report["trend"]),
        "by_function": series(report["by_function"]),
        "top_users": series(report["top_users"]),
        "colour": {
            "labels": [str(_("Black and white")), str(_("Colour"))],
            "values": [report["printed"]["sides_bw"], report["printed"]["sides_color"]],
            "share": None if share is None else format_percent(share, "#,##0.0%"),
        },
        "text": {
            "sides_bw": str(_("Black and white sides")),
            "sides_color": str(_("Colour sides")),
            "cost": str(_("Cost")),
            "empty": str(_("Nothing was printed in this period.")),
        },
    }


CSV_COLUMNS = ("jobs", "sides_bw", "sides_color", "sheets", "cost")


def csv_headers(group_by: str) -> list[str]:
    return [
        str(GROUP_LABELS[group_by]),
        str(_("Number of jobs")),
        str(_("Black and white sides")),
        str(_("Colour sides")),
        str(_("Sheets")),
        str(_("Cost")),
    ]


def usage_csv(customer_id: int, group_by: str, since: dt.date, until: dt.date, **filters: Any) -> str:
    """The usage rows as CSV for spreadsheets and scripts: UTF-8 with a BOM, comma-separated, headers in the user's
    language, numbers with a decimal point, days and months in ISO form (2026-03-05, 2026-03), formulas neutralised."""
    rows = usage(customer_id, group_by, since, until, **filters)
    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\r\n")
    writer.writerow(csv_headers(group_by))
    for row in rows:
        name = row["key"] if group_by in ("day", "month") else row["label"]
        writer.writerow([neutralise_formula(str(name)), *(str(row[column]) for column in CSV_COLUMNS)])
    return "\ufeff" + output.getvalue()


def usage_pdf(customer_id: int, group_by: str, since: dt.date, until: dt.date, **filters: Any) -> bytes:
    """The report as a PDF in the current language: the totals, the usage by month, and the rows of `group_by`."""
    from xhtml2pdf import pisa

    rows = usage(customer_id, group_by, since, until, **filters)
    report = summary(customer_id, since, until, **filters)
    customer = db.session.get(Partner, customer_id)
    company = db.session.scalar(sa.select(Company).order_by(Company.id).limit(1))
    html = render_template(
        "device_accounting/pdf/usage_report.html",
        company=company,
        customer=customer,
        report=report,
        rows=rows,
        group_by=group_by,
        group_label=GROUP_LABELS[group_by],
        title=GROUP_TITLES[group_by],
        overlapping=group_by == "cost_center",
        total=report["totals"],
        money=lambda value: format_decimal(value, format="#,##0.00"),
        number=lambda value: format_decimal(value, format="#,##0"),
        percent=lambda value: "" if value is None else format_percent(value, "#,##0.0%"),
        day=lambda value: format_date(value, "medium"),
        bar=lambda value, most: 0 if not most else max(1, round(96 * value / most)),
    )
    output = io.BytesIO()
    result = pisa.CreatePDF(html, dest=output, encoding="utf-8")
    if result.err:
        raise RuntimeError(f"usage report of customer {customer_id}: xhtml2pdf reported {result.err} error(s)")
    return output.getvalue()


def export_filename(since: dt.date, until: dt.date, extension: str) -> str:
    """`utilizzo_2026-03-01_2026-03-31.pdf`: in the user's language, ASCII only."""
    word = unicodedata.normalize("NFKD", _("usage")).encode("ascii", "ignore").decode().replace(" ", "_")
    return f"{word}_{since.isoformat()}_{until.isoformat()}.{extension}"
