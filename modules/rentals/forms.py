"""The contract form of the back office: terms, allowance rows and band rows as plain inputs, no JSON.

Values stay text here and are converted and checked by contracts.py, so the form shows the same messages as the
API and the CSV import. Blank allowance and band rows are ignored, so the form always offers spare rows.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, FieldList, Form, FormField, SelectField, StringField, TextAreaField
from wtforms.widgets import DateInput, NumberInput

from core import vat_codes
from core.models import Partner
from core.procurement import ORDER_KINDS
from core.validation import ValidationError
from modules.rentals.contracts import CONTRACT_TERMS, EINVOICE_TERMS
from modules.rentals.models import Contract
from modules.rentals.periods import FEE_TIMINGS, PERIOD_MONTHS

SPARE_ALLOWANCES = 2
SPARE_BANDS = 2
PERIOD_LABELS = {
    1: _l("Monthly"),
    2: _l("Every two months"),
    3: _l("Quarterly"),
    6: _l("Half-yearly"),
    12: _l("Yearly"),
}
FEE_TIMING_LABELS = {"advance": _l("In advance"), "arrears": _l("In arrears")}
ORDER_KIND_LABELS = {"contract": _l("Contract"), "order": _l("Purchase order")}
# The form chooses a VAT code, which sets the rate: it has no VAT % of its own.
TERM_FIELDS = (*(key for key in CONTRACT_TERMS if key != "vat_rate"), *EINVOICE_TERMS)


def _decimal_input(**kwargs: Any) -> StringField:
    return StringField(render_kw={"inputmode": "decimal", "autocomplete": "off"}, **kwargs)


class BandForm(Form):
    up_to = StringField(_l("Up to (pages)"), widget=NumberInput(min=1), render_kw={"placeholder": _l("no limit")})
    price = _decimal_input(label=_l("Price per page"))


class AllowanceForm(Form):
    meter = SelectField(_l("Meter"), choices=[], validate_choice=False)
    included = StringField(_l("Included pages"), widget=NumberInput(min=0))
    pooled = BooleanField(_l("Pooled"))
    bands = FieldList(FormField(BandForm), min_entries=1)


class ContractForm(FlaskForm):
    customer_id = SelectField(_l("Customer"), choices=[], validate_choice=False)
    start_date = StringField(_l("Start date"), widget=DateInput())
    end_date = StringField(_l("End date"), widget=DateInput(), description=_l("Empty for an open-ended contract."))
    period_months = SelectField(_l("Period"), choices=[(str(m), PERIOD_LABELS[m]) for m in PERIOD_MONTHS])
    fee = _decimal_input(label=_l("Fee per period"), default="0.00")
    fee_timing = SelectField(_l("Fee billed"), choices=[(t, FEE_TIMING_LABELS[t]) for t in FEE_TIMINGS])
    grace_days = StringField(
        _l("Grace days"),
        widget=NumberInput(min=0),
        default="10",
        description=_l("A reading up to this many days after a period's end still closes it."),
    )
    minimum_charge = _decimal_input(
        label=_l("Minimum charge"), description=_l("Minimum of fee + overage per period; empty for none.")
    )
    escalation_percent = _decimal_input(
        label=_l("Yearly escalation %"), default="0", description=_l("Fee and prices grow at each anniversary.")
    )
    estimate_missing = BooleanField(_l("Estimate missing readings after the grace days"))
    vat_code = SelectField(
        _l("VAT code"),
        choices=[],
        validate_choice=False,
        description=_l("A foreign business customer is proposed the non-taxable code (N2.1)."),
    )
    auto_renew = BooleanField(_l("Renews automatically"))
    renewal_months = StringField(_l("Renewal term (months)"), widget=NumberInput(min=1), default="12")
    notice_days = StringField(
        _l("Notice period (days)"), widget=NumberInput(min=0), default="90", description=_l("Before the end date.")
    )
    invoice_notes = TextAreaField(_l("Notes printed on invoices"))
    consumables_included = BooleanField(
        _l("Consumables included"), default=True, description=_l("Toner shipped to its devices is not invoiced.")
    )
    assumed_coverage = _decimal_input(
        label=_l("Assumed coverage %"),
        default="5",
        description=_l("The page coverage the consumption check expects (5 percent is the rated yield's)."),
    )
    # Checked by contracts.py like the other terms (missing: a contract).
    order_kind = SelectField(
        _l("Customer's document"),
        choices=[(kind, ORDER_KIND_LABELS[kind]) for kind in ORDER_KINDS],
        validate_choice=False,
    )
    order_reference = StringField(
        _l("Customer's contract or order number"),
        render_kw={"maxlength": 20},
        description=_l("Printed on e-invoices; empty: this contract's number."),
    )
    order_date = StringField(_l("Date of the customer's document"), widget=DateInput())
    cig = StringField(
        _l("CIG"), render_kw={"maxlength": 10}, description=_l("Tender identification code, 10 characters.")
    )
    cup = StringField(_l("CUP"), render_kw={"maxlength": 15}, description=_l("Public project code, 15 characters."))
    allowances = FieldList(FormField(AllowanceForm), min_entries=1)


def initial_data(contract: Contract | None, customer: Partner | None = None) -> dict[str, Any]:
    """The form's values for an existing contract, or the defaults for a new one (for `customer`, when chosen)."""
    if contract is None:
        if customer is None:
            return {}
        return {"customer_id": str(customer.id), "vat_code": vat_codes.propose_code(customer)}
    data: dict[str, Any] = {key: getattr(contract, key) for key in TERM_FIELDS}
    data = {key: "" if value is None else value for key, value in data.items()}
    data["vat_code"] = contract.vat_code or _default_code(contract.vat_rate)
    data["period_months"] = str(contract.period_months)
    data["customer_id"] = str(contract.customer_id)
    data["allowances"] = [
        {
            "meter": allowance.meter,
            "included": str(allowance.included),
            "pooled": allowance.pooled,
            "bands": [
                {"up_to": "" if b.up_to is None else str(b.up_to), "price": str(b.price)} for b in allowance.bands
            ],
        }
        for allowance in contract.allowances
    ]
    return data


def add_spare_rows(form: ContractForm) -> None:
    """Offer blank rows: a few more allowances, and a few more bands in every allowance."""
    filled = sum(1 for entry in form.allowances if entry.form.meter.data)
    while len(form.allowances) < filled + SPARE_ALLOWANCES:
        form.allowances.append_entry()
    for entry in form.allowances:
        filled_bands = sum(1 for band in entry.form.bands if (band.form.price.data or band.form.up_to.data))
        while len(entry.form.bands) < filled_bands + SPARE_BANDS:
            entry.form.bands.append_entry()


def add_more_rows(form: ContractForm) -> None:
    """The "More rows" button: one more allowance row, and one more band row in every allowance."""
    form.allowances.append_entry()
    for entry in form.allowances:
        entry.form.bands.append_entry()


def _default_code(rate: Any) -> str:
    """The code a contract without one bills at its rate, or "" (the form then proposes one for the customer)."""
    try:
        return vat_codes.resolve(None, rate, "vat_code").code
    except ValidationError:
        return ""


def set_choices(
    form: ContractForm,
    customers: list[tuple[str, str]],
    meters: list[tuple[str, str]],
    codes: list[tuple[str, str]],
) -> None:
    form.customer_id.choices = [("", _l("Choose a customer")), *customers]
    form.vat_code.choices = [("", _l("The code proposed for the customer")), *codes]
    for entry in form.allowances:
        entry.form.meter.choices = [("", "—"), *meters]


def form_data(form: ContractForm) -> tuple[dict[str, Any], dict[str, Any]]:
    """The input of create_contract/update_contract from the form, and where each of their field paths lives in it.

    Blank rows are skipped, so `allowances.1` of those functions may be the form's third row: the map says which.
    """
    data: dict[str, Any] = {key: getattr(form, key).data for key in TERM_FIELDS}
    data["customer_id"] = form.customer_id.data or None
    # Empty: the code proposed for the customer (contracts.create_contract / update_contract).
    data["vat_code"] = form.vat_code.data or None
    fields: dict[str, Any] = {key: getattr(form, key) for key in (*TERM_FIELDS, "customer_id")}
    fields["allowances"] = form.allowances
    allowances = []
    for entry in form.allowances:
        row = entry.form
        bands = [band.form for band in row.bands if (band.form.price.data or band.form.up_to.data or "").strip()]
        if not row.meter.data and not (row.included.data or "").strip() and not bands:
            continue
        i = len(allowances)
        allowances.append(
            {
                "meter": row.meter.data,
                "included": row.included.data,
                "pooled": row.pooled.data,
                "bands": [{"up_to": band.up_to.data or None, "price": band.price.data} for band in bands],
            }
        )
        fields[f"allowances.{i}"] = row.meter
        fields[f"allowances.{i}.bands"] = row.bands
        for name in ("meter", "included", "pooled"):
            fields[f"allowances.{i}.{name}"] = getattr(row, name)
        for j, band in enumerate(bands):
            fields[f"allowances.{i}.bands.{j}"] = band.price
            fields[f"allowances.{i}.bands.{j}.up_to"] = band.up_to
            fields[f"allowances.{i}.bands.{j}.price"] = band.price
    data["allowances"] = allowances
    return data, fields


def show_errors(errors: dict[str, str], fields: dict[str, Any]) -> list[str]:
    """Put each service error on its form field; returns the messages that have no field of their own.

    An error on a whole list of bands goes on its allowance's meter, so the row shows it.
    """
    unplaced = []
    for path, message in errors.items():
        field = fields.get(path)
        if isinstance(field, FieldList) and path.endswith(".bands"):
            field = fields[path.removesuffix(".bands") + ".meter"]
        if field is None or isinstance(field, FieldList):
            unplaced.append(f"{_label(path, fields)}{message}")
            continue
        _append_error(field, message)
    return unplaced


def error_summary(form: ContractForm) -> tuple[list[tuple[str, str, str]], int]:
    """The alert above the form: (field id, where, message) for each error, and how many allowance rows have one.

    A mistake in a band row far down a long form is otherwise easy to miss.
    """
    items = []
    for name, field in form._fields.items():
        if name != "allowances":
            items.extend((field.id, field.label.text, message) for message in field.errors)
    rows = 0
    for number, entry in enumerate(form.allowances, start=1):
        row = entry.form
        meter = row.meter.data
        where = _("Allowance for %(meter)s", meter=meter) if meter else _("Allowance row %(num)d", num=number)
        found = [
            (field.id, _("%(allowance)s, %(field)s", allowance=where, field=field.label.text), message)
            for field in (row.meter, row.included, row.pooled)
            for message in field.errors
        ]
        for band_number, band_entry in enumerate(row.bands, start=1):
            band = band_entry.form
            found.extend(
                (field.id, _("%(allowance)s, band %(num)d", allowance=where, num=band_number), message)
                for field in (band.up_to, band.price)
                for message in field.errors
            )
        rows += bool(found)
        items.extend(found)
    return items, rows


def _append_error(field: Any, message: str) -> None:
    field.errors = [*field.errors, message]


def _label(path: str, fields: dict[str, Any]) -> str:
    head = path.split(".")[0]
    field = fields.get(head)
    return f"{field.label.text}: " if field is not None and hasattr(field, "label") else ""
