"""Contracts: their terms, allowances and price bands, state changes and periods."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _

from core import clock, procurement, vat_codes
from core.db import db
from core.models import Partner, VatCode
from core.sequences import format_number, next_number
from core.validation import MAX_COUNTER, Checker, ValidationError, fail
from modules.rentals import periods as rules
from modules.rentals.catalogue import KNOWN_METERS, meter_type
from modules.rentals.contract_lines import check_join, join_contract
from modules.rentals.models import Allowance, Contract, MeterType, PriceBand
from modules.rentals.validation import MAX_PAGES, as_int, check_customer

CONTRACT_SEQUENCE = "contract"
MAX_PERIODS = 1200
MONEY_LIMIT = Decimal(10) ** 10
PRICE_LIMIT = Decimal(10) ** 6
CONTRACT_TERMS = (
    "start_date",
    "end_date",
    "period_months",
    "fee",
    "fee_timing",
    "grace_days",
    "minimum_charge",
    "escalation_percent",
    "estimate_missing",
    "vat_rate",
    "auto_renew",
    "renewal_months",
    "notice_days",
    "invoice_notes",
    "consumables_included",
    "assumed_coverage",
)
# What the e-invoices of the contract carry: its VAT code and the customer's procurement references (FatturaPA
# DatiContratto / DatiOrdineAcquisto). Apart from CONTRACT_TERMS, whose order the CSV import's columns follow.
EINVOICE_TERMS = ("vat_code", "cig", "cup", "order_kind", "order_reference", "order_date")
STATE_CHANGES = {
    "draft": {"active"},
    "active": {"suspended", "ended"},
    "suspended": {"active", "ended"},
    "ended": set(),
}


def _check_terms(
    check: Checker, data: dict[str, Any], contract: Contract | None, customer: Partner | None = None
) -> dict[str, Any]:
    """Convert and check the contract terms present in `data` (all of them for a new contract)."""
    new = contract is None
    clean: dict[str, Any] = {}

    def given(key: str) -> bool:
        return new or key in data

    if given("start_date"):
        clean["start_date"] = check.date("start_date", data.get("start_date"))
    if given("end_date"):
        clean["end_date"] = check.date("end_date", data.get("end_date"), required=False)
    if given("period_months"):
        clean["period_months"] = check.choice(
            "period_months", as_int(data.get("period_months", 1)), rules.PERIOD_MONTHS
        )
    if given("fee"):
        clean["fee"] = check.decimal("fee", _default(data.get("fee"), "0"), 2, MONEY_LIMIT)
    if given("fee_timing"):
        clean["fee_timing"] = check.choice("fee_timing", data.get("fee_timing") or "advance", rules.FEE_TIMINGS)
    if given("grace_days"):
        clean["grace_days"] = check.integer("grace_days", _default(data.get("grace_days"), 10), 0, 365)
    if given("minimum_charge"):
        clean["minimum_charge"] = check.decimal("minimum_charge", data.get("minimum_charge"), 2, MONEY_LIMIT, False)
    if given("escalation_percent"):
        value = _default(data.get("escalation_percent"), "0")
        clean["escalation_percent"] = check.decimal("escalation_percent", value, 3, Decimal(100), maximum=Decimal(100))
    if given("estimate_missing"):
        clean["estimate_missing"] = check.boolean("estimate_missing", data.get("estimate_missing"))
    clean.update(_check_vat(check, data, contract, customer))
    clean.update(_check_procurement(check, data, new))
    if given("auto_renew"):
        clean["auto_renew"] = check.boolean("auto_renew", data.get("auto_renew"))
    if given("renewal_months"):
        clean["renewal_months"] = check.integer("renewal_months", _default(data.get("renewal_months"), 12), 1, 120)
    if given("notice_days"):
        clean["notice_days"] = check.integer("notice_days", _default(data.get("notice_days"), 90), 0, 3650)
    if given("invoice_notes"):
        clean["invoice_notes"] = check.text("invoice_notes", data.get("invoice_notes"), 2000)
    if given("consumables_included"):
        clean["consumables_included"] = check.boolean(
            "consumables_included", data.get("consumables_included"), default=True
        )
    if given("assumed_coverage"):
        value = _default(data.get("assumed_coverage"), "5")
        coverage = check.decimal("assumed_coverage", value, 2, Decimal(100), maximum=Decimal(100))
        if coverage == 0:
            check.fail("assumed_coverage", _("Must be more than 0."))
        clean["assumed_coverage"] = coverage
    start = clean.get("start_date", contract.start_date if contract else None)
    end = clean.get("end_date", contract.end_date if contract else None)
    if start and end and end < start:
        check.fail("end_date", _("The end date is before the start date."))
    if contract is not None and start:
        for line in contract.lines:
            if line.start_date < start:
                check.fail("start_date", _("Device %(serial)s joined before this date.", serial=line.device.serial))
                break
    if contract is not None and end:
        for line in contract.lines:
            if (line.end_date or line.start_date) > end:
                check.fail(
                    "end_date", _("Device %(serial)s is on the contract after this date.", serial=line.device.serial)
                )
                break
    return clean


def _check_vat(
    check: Checker, data: dict[str, Any], contract: Contract | None, customer: Partner | None
) -> dict[str, Any]:
    """The VAT code and its rate. A code sets the rate; a rate alone (older API clients) bills the rate's default code
    (vat_code None), and 0% has none: it needs a code with its Natura. Neither, on a new contract or with the code
    sent empty: the code proposed for the customer (core.vat_codes.propose_code, N2.1 for a foreign business)."""
    code = _default(data.get("vat_code"), None)
    if code is not None:
        if not isinstance(code, str):
            check.fail("vat_code", _("Not a VAT code: %(value)s", value=str(code)[:40]))
            return {}
        found = _resolve(check, code.strip(), None, "vat_code")
        return {"vat_code": found.code, "vat_rate": found.rate} if found else {}
    if _default(data.get("vat_rate"), None) is not None:
        rate = check.decimal("vat_rate", data.get("vat_rate"), 2, Decimal(100), maximum=Decimal(100))
        if rate is None or _resolve(check, None, rate, "vat_code" if rate == 0 else "vat_rate") is None:
            return {}
        return {"vat_code": None, "vat_rate": rate}
    if contract is not None and "vat_code" not in data and "vat_rate" not in data:
        return {}
    if contract is not None and "customer_id" not in data:
        customer = contract.customer
    if customer is None:
        return {}
    found = _resolve(check, vat_codes.propose_code(customer), None, "vat_code")
    return {"vat_code": found.code, "vat_rate": found.rate} if found else {}


def _resolve(check: Checker, code: str | None, rate: Decimal | None, field: str) -> VatCode | None:
    try:
        return vat_codes.resolve(code, rate, field)
    except ValidationError as error:
        check.fail(field, error.errors.get(field) or error.messages())
        return None


def _check_procurement(check: Checker, data: dict[str, Any], new: bool) -> dict[str, Any]:
    """CIG, CUP and the customer's own contract or purchase order, checked by core.procurement (of an existing
    contract, those given). The kind defaults to contract, and an empty number means the contract's own number."""
    fields = [field for field in procurement.FIELDS if new or field in data]
    if "order_kind" in fields:
        data = {**data, "order_kind": _default(data.get("order_kind"), "contract")}
    return procurement.check_procurement(check, data, fields)


def _default(value: Any, default: Any) -> Any:
    return default if value is None or (isinstance(value, str) and not value.strip()) else value


def _check_allowances(check: Checker, allowances: Any) -> list[dict[str, Any]]:
    if allowances is None:
        return []
    if not isinstance(allowances, list | tuple):
        check.fail("allowances", _("Not a list of allowances."))
        return []
    clean = []
    seen: set[str] = set()
    for i, allowance in enumerate(allowances):
        prefix = f"allowances.{i}"
        if not isinstance(allowance, dict):
            check.fail(prefix, _("Not an allowance."))
            continue
        meter = check.text(f"{prefix}.meter", allowance.get("meter"), 20, required=True)
        if meter is not None:
            meter = meter.lower()
            if meter not in KNOWN_METERS and db.session.get(MeterType, meter) is None:
                check.fail(f"{prefix}.meter", _("%(code)s is not a meter of any device model.", code=meter))
            elif meter in seen:
                check.fail(f"{prefix}.meter", _("Meter %(code)s has two allowances.", code=meter))
            seen.add(meter)
        included = check.integer(f"{prefix}.included", _default(allowance.get("included"), 0), 0, MAX_PAGES)
        pooled = check.boolean(f"{prefix}.pooled", allowance.get("pooled"))
        bands = _check_bands(check, f"{prefix}.bands", allowance.get("bands"))
        clean.append({"meter": meter, "included": included, "pooled": pooled, "bands": bands})
    return clean


def _check_bands(check: Checker, prefix: str, bands: Any) -> list[tuple[int | None, Decimal]]:
    if not isinstance(bands, list | tuple) or not bands:
        check.fail(prefix, _("At least one price band is required (a single price is one band with no upper bound)."))
        return []
    clean: list[tuple[int | None, Decimal]] = []
    previous = 0
    ok = True
    for j, band in enumerate(bands):
        field = f"{prefix}.{j}"
        if not isinstance(band, dict):
            check.fail(field, _("Not a price band."))
            ok = False
            continue
        up_to = check.integer(f"{field}.up_to", band.get("up_to"), 1, MAX_COUNTER, required=False)
        price = check.decimal(f"{field}.price", band.get("price"), 6, PRICE_LIMIT)
        raw_up_to = band.get("up_to")
        if up_to is None and raw_up_to not in (None, ""):
            ok = False
            continue
        if up_to is None and j != len(bands) - 1:
            check.fail(f"{field}.up_to", _("Only the last band may have no upper bound."))
            ok = False
        elif up_to is not None and up_to <= previous:
            check.fail(
                f"{field}.up_to",
                _(
                    "The upper bounds must be ascending: %(value)s is not above %(previous)s.",
                    value=up_to,
                    previous=previous,
                ),
            )
            ok = False
        elif up_to is not None:
            previous = up_to
        if price is None:
            ok = False
        clean.append((up_to, price))
    if ok and clean and clean[-1][0] is not None:
        check.fail(prefix, _("The last band must have no upper bound, so every overage page has a price."))
    if ok:
        try:
            rules.validate_bands(clean)
        except ValueError as exc:
            check.fail(prefix, str(exc))
    return clean


def _write_allowances(contract: Contract, allowances: list[dict[str, Any]]) -> None:
    contract.allowances.clear()
    db.session.flush()
    for allowance in allowances:
        meter_type(allowance["meter"])
        contract.allowances.append(
            Allowance(
                meter=allowance["meter"],
                included=allowance["included"],
                pooled=allowance["pooled"],
                bands=[
                    PriceBand(position=position, up_to=up_to, price=price)
                    for position, (up_to, price) in enumerate(allowance["bands"])
                ],
            )
        )


def create_contract(data: dict[str, Any]) -> Contract:
    """A new contract with its allowances and devices; `active` when it has a device, else `draft`."""
    check = Checker()
    customer = check_customer(check, "customer_id", data.get("customer_id"), required=True)
    terms = _check_terms(check, data, None, customer)
    allowances = _check_allowances(check, data.get("allowances"))
    devices = data.get("devices") or []
    if not isinstance(devices, list | tuple):
        check.fail("devices", _("Not a list of devices."))
        devices = []
    # Devices are checked against the terms even when those have errors, so every problem is reported at once.
    probe = Contract(customer_id=customer.id if customer else None, state="draft", **_probe_terms(terms))
    seen: set[int] = set()
    planned = []
    for i, entry in enumerate(devices):
        prefix = f"devices.{i}"
        if not isinstance(entry, dict):
            check.fail(prefix, _("Not a device entry."))
            continue
        start = entry.get("start_date") or terms.get("start_date")
        planned.append(check_join(check, prefix, probe, entry.get("device_id"), start, entry.get("counters"), seen))
    check.raise_if_any()
    year = clock.today().year
    contract = Contract(
        number=format_number(next_number(CONTRACT_SEQUENCE, year), year),
        customer_id=customer.id,
        state="draft",
        **terms,
    )
    db.session.add(contract)
    _write_allowances(contract, allowances)
    for device, start, counters in planned:
        join_contract(contract, device, start, counters)
    db.session.flush()
    return contract


def _probe_terms(terms: dict[str, Any]) -> dict[str, Any]:
    return {key: terms.get(key) for key in ("start_date", "end_date")}


def update_contract(contract: Contract, data: dict[str, Any]) -> Contract:
    """Change the terms present in `data`; `allowances`, when present, replace the contract's allowances."""
    check = Checker()
    clean: dict[str, Any] = {}
    customer = None
    if "customer_id" in data:
        customer = check_customer(check, "customer_id", data["customer_id"], required=True)
        if customer and customer.id != contract.customer_id and contract.lines:
            check.fail("customer_id", _("The contract has devices: its customer cannot change."))
        clean["customer_id"] = customer.id if customer else None
    clean.update(_check_terms(check, data, contract, customer))
    allowances = _check_allowances(check, data["allowances"]) if "allowances" in data else None
    if "allowances" in data and data["allowances"] is None:
        check.fail("allowances", _("Not a list of allowances."))
    if "state" in data and data["state"] != contract.state:
        _check_state_change(check, contract, data["state"], clean.get("end_date", contract.end_date))
    check.raise_if_any()
    for key, value in clean.items():
        setattr(contract, key, value)
    if allowances is not None:
        _write_allowances(contract, allowances)
    if "state" in data:
        contract.state = data["state"]
    db.session.flush()
    return contract


def _check_state_change(check: Checker, contract: Contract, state: Any, end_date: dt.date | None) -> None:
    if state not in STATE_CHANGES:
        check.fail("state", _("Choose one of: %(choices)s", choices=", ".join(STATE_CHANGES)))
    elif state not in STATE_CHANGES[contract.state]:
        check.fail("state", _("A contract cannot go from %(old)s to %(new)s.", old=contract.state, new=state))
    elif state == "active" and not contract.open_lines:
        check.fail("state", _("Add at least one device before activating the contract."))
    elif state == "ended" and contract.open_lines:
        check.fail("state", _("Remove the devices with their final counters before ending the contract."))
    elif state == "ended" and end_date is None:
        check.fail("end_date", _("An ended contract needs its end date."))


LAPSING_STATES = ("active", "suspended")


def current_state(contract: Contract, today: dt.date | None = None) -> str:
    """The state as of the dealer's today: an active or suspended contract whose end date has passed has ended,
    unless it renews automatically (the hourly job moves its end date, see `renewed_end_date`)."""
    today = today or clock.today()
    if (
        contract.state in LAPSING_STATES
        and contract.end_date is not None
        and contract.end_date < today
        and not contract.auto_renew
    ):
        return "ended"
    return contract.state


def renewed_end_date(contract: Contract, today: dt.date) -> dt.date:
    """The end date of an auto-renewing contract renewed as many times as it takes not to be past on `today`.

    Each renewal adds the contract's renewal term (`renewal_months`) counted from the start date, as its periods are
    (`periods.add_months`), keeping the end's place in the contract's months: 31 Jan to 27 Feb renewed by one month
    ends on 30 Mar (the end of the period 28 Feb to 30 Mar), then 29 Apr; an end date that is not a period's last day
    keeps its distance from the month boundary before it.
    """
    start, end = contract.start_date, contract.end_date
    after = end + dt.timedelta(days=1)
    months = (after.year - start.year) * 12 + after.month - start.month
    if rules.add_months(start, months) > after:
        months -= 1
    rest = after - rules.add_months(start, months)
    while end < today:
        months += contract.renewal_months
        end = rules.add_months(start, months) + rest - dt.timedelta(days=1)
    return end


def _lapsed(today: dt.date, auto_renew: bool) -> list[Contract]:
    query = db.select(Contract).where(
        Contract.state.in_(LAPSING_STATES), Contract.end_date < today, Contract.auto_renew.is_(auto_renew)
    )
    return list(db.session.scalars(query.order_by(Contract.id)))


def renew_lapsed_contracts(today: dt.date | None = None) -> list[Contract]:
    """Every active or suspended auto-renewing contract whose end date is before `today` gets its renewed end date
    (`renewed_end_date`) and keeps its state; the audit log records the end date's change. The caller commits."""
    today = today or clock.today()
    renewed = _lapsed(today, auto_renew=True)
    for contract in renewed:
        contract.end_date = renewed_end_date(contract, today)
    db.session.flush()
    return renewed


def end_lapsed_contracts(today: dt.date | None = None) -> list[Contract]:
    """Every active or suspended contract that does not renew by itself and whose end date is before `today`, marked
    ended; its devices stay on it until they are collected with their final counters, and billing goes on billing
    its periods up to the end date. The caller commits."""
    today = today or clock.today()
    lapsed = _lapsed(today, auto_renew=False)
    for contract in lapsed:
        contract.state = "ended"
    db.session.flush()
    return lapsed


def contract_periods(contract: Contract, until: dt.date | None) -> list[dict[str, Any]]:
    """The contract's periods up to `until` with escalated, prorated fee, escalated prices and each device's days."""
    check = Checker()
    until = check.date("until", until, required=contract.end_date is None)
    check.raise_if_any()
    last = min(d for d in (until, contract.end_date) if d is not None)
    months = (last.year - contract.start_date.year) * 12 + last.month - contract.start_date.month
    if months // contract.period_months >= MAX_PERIODS:
        fail("until", _("At most %(max)d periods at a time.", max=MAX_PERIODS))
    result = []
    for period in rules.periods(contract.start_date, contract.period_months, contract.end_date, until):
        years = rules.escalation_years(contract.start_date, period.start)
        result.append(
            {
                "index": period.index,
                "start": period.start,
                "end": period.end,
                "period_days": period.period_days,
                "active_days": period.active_days,
                "fee": rules.period_fee(contract.fee, contract.escalation_percent, contract.start_date, period),
                "prices": {
                    allowance.meter: [
                        {
                            "up_to": band.up_to,
                            "price": rules.escalate_price(band.price, contract.escalation_percent, years),
                        }
                        for band in allowance.bands
                    ]
                    for allowance in contract.allowances
                },
                "devices": [
                    {
                        "device_id": line.device_id,
                        "serial": line.device.serial,
                        "active_days": days,
                    }
                    for line in contract.lines
                    if (days := rules.device_active_days(period, line.start_date, line.end_date)) > 0
                ],
            }
        )
    return result
