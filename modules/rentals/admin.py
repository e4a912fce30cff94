"""Rentals back office: catalogue, devices, contracts (form, readable page, device moves) and the CSV import page."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from babel.numbers import format_currency, format_percent
from flask import Response, abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import format_date, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from wtforms.validators import ValidationError

from core import clock, csv_import, labels, procurement, validation, vat_codes
from core.admin import SecuredModelView
from core.db import db
from core.models import Partner, VatCode
from modules.rentals import contract_lines, forms, imports
from modules.rentals.catalogue import KNOWN_METERS, METER_CODE_RE
from modules.rentals.contracts import contract_periods, create_contract, current_state, update_contract
from modules.rentals.devices import create_device, update_device
from modules.rentals.models import (
    DEVICE_STATUSES,
    TONER_COLOURS,
    Consumable,
    Contract,
    ContractLine,
    Device,
    MeterType,
)

STATUS_LABELS = {
    "in_stock": _l("In stock"),
    "installed": _l("Installed"),
    "in_repair": _l("In repair"),
    "retired": _l("Retired"),
}
STATE_LABELS = {"draft": _l("Draft"), "active": _l("Active"), "suspended": _l("Suspended"), "ended": _l("Ended")}
COLOUR_LABELS = {"black": _l("Black"), "cyan": _l("Cyan"), "magenta": _l("Magenta"), "yellow": _l("Yellow")}
PERIODS_SHOWN = 24
STATIC_FOLDER = str(Path(__file__).parent / "static")


def price(value: Decimal) -> str:
    """A price per page in the page's language with the digits it has, at least the currency's: 0,012 €, 0,00 €."""
    return format_currency(_significant(value), "EUR", locale=get_locale(), decimal_quantization=False)


def percent(value: Decimal) -> str:
    """A percentage such as 2.5 in the page's language: 2,5% in Italian, 2,5 % in Spanish."""
    return format_percent(_significant(value / 100), locale=get_locale(), decimal_quantization=False)


def _significant(value: Decimal) -> Decimal:
    # Without the stored trailing zeros (0.010000 -> 0.01), and without the exponent normalize() gives 100 (1E+2).
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


def _date(view, context, model, name) -> str:
    value = getattr(model, name)
    return format_date(value) if value else ""


def _customers() -> list[Partner]:
    return list(db.session.scalars(sa.select(Partner).where(Partner.is_customer.is_(True)).order_by(Partner.name)))


def _meters() -> list[MeterType]:
    return list(db.session.scalars(sa.select(MeterType).order_by(MeterType.code)))


def _vat_codes() -> list[VatCode]:
    """The active VAT codes in the dealer's order (the shipped ones are added on a new installation)."""
    vat_codes.ensure_defaults()
    query = sa.select(VatCode).where(VatCode.active.is_(True)).order_by(VatCode.position, VatCode.code)
    return list(db.session.scalars(query))


_vat_code_column = labels.foreign_column(VatCode)


def _contract_vat(view: Any, context: Any, model: Contract, name: str) -> Any:
    """The code, linked to its page, or for a contract without one (billing its rate's default code) the rate."""
    if model.vat_code:
        return _vat_code_column(view, context, model, name)
    return percent(model.vat_rate)


def _label(labels: dict) -> Any:
    return lambda view, context, model, name: labels.get(getattr(model, name), getattr(model, name))


def _contract_state(view: Any, context: Any, model: Contract, name: str) -> str:
    """Ended once its end date has passed, even before the periodic job writes it down."""
    state = current_state(model)
    return STATE_LABELS.get(state, state)


class MeterTypeView(SecuredModelView):
    permission = "devices.view"
    edit_permission = "devices.edit"
    column_list = ("code", "label_en", "label_it", "label_es")
    column_labels = {
        "code": _l("Code"),
        "label_en": _l("English"),
        "label_it": _l("Italian"),
        "label_es": _l("Spanish"),
    }
    form_columns = ("code", "label_en", "label_it", "label_es")
    form_args = {"code": {"description": _l("Lower-case letters, digits and _, e.g. bw, color, a3_bw.")}}

    def on_model_change(self, form, model: MeterType, is_created: bool) -> None:
        if not METER_CODE_RE.match(model.code or ""):
            raise ValidationError(_("Use lower-case letters, digits and _, starting with a letter."))


class ManufacturerView(SecuredModelView):
    permission = "devices.view"
    edit_permission = "devices.edit"
    column_list = ("name",)
    column_labels = {"name": _l("Name")}
    column_searchable_list = ("name",)
    column_default_sort = "name"


class DeviceModelView(SecuredModelView):
    permission = "devices.view"
    edit_permission = "devices.edit"
    column_list = ("manufacturer", "name", "color", "paper_format", "meters")
    column_labels = {
        "manufacturer": _l("Manufacturer"),
        "name": _l("Model"),
        "color": _l("Colour"),
        "paper_format": _l("Paper"),
        "meters": _l("Meters"),
        "consumables": _l("Consumables"),
    }
    column_searchable_list = ("name", "manufacturer.name")
    column_filters = ("manufacturer.name", "color", "paper_format")
    column_default_sort = "name"
    form_columns = ("manufacturer", "name", "color", "paper_format", "meters", "consumables")
    form_choices = {"paper_format": [("A4", "A4"), ("A3", "A3")]}
    form_args = {"meters": {"description": _l("The counters this model has.")}}
    inline_models = (
        (
            Consumable,
            {
                "form_columns": ("id", "code", "colour", "rated_yield"),
                "form_choices": {"colour": [(c, COLOUR_LABELS[c]) for c in TONER_COLOURS]},
                "column_labels": {"code": _l("Code"), "colour": _l("Colour"), "rated_yield": _l("Rated yield (5%)")},
            },
        ),
    )

    def on_model_change(self, form, model, is_created: bool) -> None:
        if not model.meters:
            raise ValidationError(_("Choose at least one meter."))
        for consumable in model.consumables:
            if consumable.rated_yield is None or consumable.rated_yield <= 0:
                raise ValidationError(_("The rated yield must be a positive number of pages."))


class DeviceView(SecuredModelView):
    permission = "devices.view"
    edit_permission = "devices.edit"
    details_template = "rentals/admin/device_details.html"
    column_list = ("serial", "manufacturer", "model", "customer", "site", "status", "asset_tag", "ip_address")
    column_labels = {
        "serial": _l("Serial number"),
        "manufacturer": _l("Manufacturer"),
        "model": _l("Model"),
        "customer": _l("Customer"),
        "site": _l("Site"),
        "status": _l("Status"),
        "asset_tag": _l("Asset tag"),
        "ip_address": _l("IP address"),
        "notes": _l("Notes"),
        "manufacturer.name": _l("Manufacturer"),
        "model.name": _l("Model"),
        "customer.name": _l("Customer"),
    }
    column_searchable_list = ("serial", "asset_tag", "ip_address", "customer.name", "model.name")
    column_filters = ("status", "customer.name", "manufacturer.name", "model.name")
    column_default_sort = "serial"
    column_formatters = {"status": _label(STATUS_LABELS)}
    form_columns = ("model", "serial", "asset_tag", "ip_address", "status", "customer", "site", "notes")
    form_choices = {"status": [(s, STATUS_LABELS[s]) for s in DEVICE_STATUSES]}
    form_args = {
        "customer": {
            "query_factory": _customers,
            "blank_text": _l("— no customer —"),
            "description": _l("Set by the contract when the device joins one."),
        },
        "site": {"description": _l("Where it stands at the customer: address, floor, office.")},
        "ip_address": {"description": _l("For reading the counters over the network.")},
    }

    def edit_form(self, obj=None):
        # The model is chosen once: a device's meters and contract counters depend on it.
        form = super().edit_form(obj)
        del form.model
        return form

    def _data(self, form) -> dict[str, Any]:
        data = {key: form[key].data for key in ("serial", "asset_tag", "ip_address", "status", "site", "notes")}
        data["customer_id"] = form.customer.data.id if form.customer.data else None
        return data

    def create_model(self, form):
        model = form.model.data
        data = {**self._data(form), "manufacturer": model.manufacturer.name, "model": model.name}
        return self.save_form(form, lambda: create_device(data), {"customer_id": "customer"})

    def update_model(self, form, model: Device) -> bool:
        saved = self.save_form(form, lambda: update_device(model, self._data(form)), {"customer_id": "customer"})
        return saved is not False

    def details_extra(self, device: Device) -> dict[str, Any]:
        lines = db.session.scalars(
            sa.select(ContractLine).where(ContractLine.device_id == device.id).order_by(ContractLine.start_date.desc())
        ).all()
        return {"lines": lines, "status_labels": STATUS_LABELS}

    @expose("/details/")
    def details_view(self):
        device = self.get_one(request.args.get("id", ""))
        if device is None:
            abort(404)
        self._template_args.update(self.details_extra(device))
        return super().details_view()


class ContractView(SecuredModelView):
    """Contracts: the list with search and filters, a form with allowance and band rows, and a readable page."""

    permission = "contracts.view"
    edit_permission = "contracts.edit"
    column_list = ("number", "customer", "state", "start_date", "end_date", "period_months", "fee", "vat_code")
    column_labels = {
        "vat_code": _l("VAT code"),
        "number": _l("Number"),
        "customer": _l("Customer"),
        "customer.name": _l("Customer"),
        "state": _l("State"),
        "start_date": _l("Start"),
        "end_date": _l("End"),
        "period_months": _l("Period"),
        "fee": _l("Fee"),
    }
    column_searchable_list = ("number", "customer.name")
    column_filters = ("state", "customer.name", "period_months", "start_date", "end_date")
    column_default_sort = ("start_date", True)
    column_formatters = {
        "state": _contract_state,
        "period_months": lambda view, context, model, name: forms.PERIOD_LABELS.get(model.period_months),
        "number": lambda view, context, model, name: Markup('<a href="{}">{}</a>').format(
            url_for(".details_view", id=model.id), model.number
        ),
        "start_date": _date,
        "end_date": _date,
        "fee": lambda view, context, model, name: format_currency(model.fee, "EUR", locale=get_locale()),
        "vat_code": _contract_vat,
    }
    # A spreadsheet gets plain dates and numbers, not the page's formats.
    column_formatters_export = {
        "state": _contract_state,
        "period_months": lambda view, context, model, name: forms.PERIOD_LABELS.get(model.period_months),
    }
    can_export = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The contract page's script (rentals-contract.js) is served from this module's static folder.
        super().__init__(*args, static_folder=STATIC_FOLDER, **kwargs)

    def _form(self, contract: Contract | None) -> forms.ContractForm:
        if request.method == "POST":
            form = forms.ContractForm()
        else:
            # A new contract for a customer chosen beforehand (?customer_id=) starts with its proposed VAT code.
            customer = db.session.get(Partner, request.args.get("customer_id", type=int) or 0)
            form = forms.ContractForm(data=forms.initial_data(contract, customer if contract is None else None))
            forms.add_spare_rows(form)
        self._set_choices(form)
        return form

    def _set_choices(self, form: forms.ContractForm) -> None:
        customers = [(str(c.id), c.name) for c in _customers()]
        meters = {m.code: m.label(_language()) for m in _meters()}
        for code, names in KNOWN_METERS.items():
            meters.setdefault(code, names[0])
        forms.set_choices(
            form,
            customers,
            [(code, f"{code} — {label}") for code, label in sorted(meters.items())],
            [(code.code, vat_codes.record_label(code)) for code in _vat_codes()],
        )

    def _save(self, form: forms.ContractForm, contract: Contract | None) -> Response | None:
        data, fields = forms.form_data(form)
        try:
            contract = create_contract(data) if contract is None else update_contract(contract, data)
        except validation.ValidationError as error:
            db.session.rollback()
            self._template_args["form_errors"] = forms.show_errors(error.errors, fields)
            forms.add_spare_rows(form)
            return None
        db.session.commit()
        flash(_("Contract %(number)s saved.", number=contract.number), "success")
        return redirect(url_for(".details_view", id=contract.id))

    @expose("/new/", methods=("GET", "POST"))
    def create_view(self):
        if not self.can_create:
            abort(403)
        form = self._form(None)
        return self._submit(form, None)

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        if not self.can_edit:
            abort(403)
        contract = self.get_one(request.args.get("id", ""))
        if contract is None:
            abort(404)
        return self._submit(self._form(contract), contract)

    def _submit(self, form: forms.ContractForm, contract: Contract | None):
        if request.method == "POST" and request.form.get("more_rows"):
            forms.add_more_rows(form)
            self._set_choices(form)
        elif request.method == "POST" and form.validate():
            response = self._save(form, contract)
            if response is not None:
                return response
            self._set_choices(form)
        problems, rows_with_problems = forms.error_summary(form)
        return self.render(
            "rentals/admin/contract_form.html",
            form=form,
            contract=contract,
            problems=problems,
            rows_with_problems=rows_with_problems,
        )

    @expose("/details/")
    def details_view(self):
        contract = self.get_one(request.args.get("id", ""))
        if contract is None:
            abort(404)
        return self._details(contract)

    def _details(self, contract: Contract, errors: dict[str, str] | None = None, action: str = "", status: int = 200):
        until = max(clock.today(), contract.start_date) + dt.timedelta(days=366)
        all_periods = contract_periods(contract, until)
        free_devices = db.session.scalars(
            sa.select(Device)
            .where(
                Device.status != "retired",
                ~Device.id.in_(sa.select(ContractLine.device_id).where(ContractLine.end_date.is_(None))),
            )
            .order_by(Device.serial)
        ).all()
        meters = {m.code: m.label(_language()) for m in _meters()}
        return (
            self.render(
                "rentals/admin/contract_details.html",
                contract=contract,
                periods=all_periods[-PERIODS_SHOWN:],
                periods_hidden=max(0, len(all_periods) - PERIODS_SHOWN),
                free_devices=free_devices,
                meters=meters,
                state_labels=STATE_LABELS,
                state=current_state(contract),
                period_labels=forms.PERIOD_LABELS,
                fee_timing_labels=forms.FEE_TIMING_LABELS,
                vat_code=_billed_vat_code(contract),
                vat_code_label=vat_codes.record_label,
                reference_text=procurement.reference_text,
                errors=errors or {},
                action=action,
                values=request.form,
                today=clock.today(),
                price=price,
                percent=percent,
            ),
            status,
        )

    def _counters(self, prefix: str) -> dict[str, str]:
        return {
            key.removeprefix(prefix): value.strip()
            for key, value in request.form.items()
            if key.startswith(prefix) and value.strip()
        }

    def _device_action(self, run) -> Any:
        if not self.can_edit:
            abort(403)
        contract = self.get_one(request.args.get("id", ""))
        if contract is None:
            abort(404)
        try:
            message = run(contract)
        except validation.ValidationError as error:
            db.session.rollback()
            contract = self.get_one(str(contract.id))
            return self._details(contract, error.errors, request.form.get("action", ""), 422)
        db.session.commit()
        flash(message, "success")
        return redirect(url_for(".details_view", id=contract.id))

    @expose("/devices/add/", methods=("POST",))
    def add_device(self):
        def run(contract: Contract) -> str:
            line = contract_lines.add_device(
                contract, request.form.get("device_id"), request.form.get("start_date"), self._counters("counter_")
            )
            return _("Device %(serial)s joined the contract.", serial=line.device.serial)

        return self._device_action(run)

    @expose("/devices/remove/", methods=("POST",))
    def remove_device(self):
        def run(contract: Contract) -> str:
            line = contract_lines.remove_device(
                contract, request.form.get("device_id"), request.form.get("end_date"), self._counters("end_")
            )
            return _("Device %(serial)s left the contract.", serial=line.device.serial)

        return self._device_action(run)

    @expose("/devices/swap/", methods=("POST",))
    def swap_device(self):
        def run(contract: Contract) -> str:
            line = contract_lines.swap_device(
                contract,
                request.form.get("device_id"),
                request.form.get("new_device_id"),
                request.form.get("date"),
                self._counters("end_"),
                self._counters("counter_"),
            )
            return _("Device %(serial)s took the place of the old one.", serial=line.device.serial)

        return self._device_action(run)

    @expose("/state/", methods=("POST",))
    def change_state(self):
        def run(contract: Contract) -> str:
            update_contract(contract, {"state": request.form.get("state")})
            return _("The contract is now %(state)s.", state=STATE_LABELS[contract.state])

        return self._device_action(run)


def _billed_vat_code(contract: Contract) -> VatCode | None:
    """The code the contract bills: its own, else its rate's default code (None when the rate has none)."""
    try:
        return vat_codes.resolve(contract.vat_code, contract.vat_rate, "vat_code")
    except validation.ValidationError:
        return None


def _language() -> str:
    return getattr(current_user, "language", None) or "en"


class ImportView(csv_import.ImportView):
    """Upload a CSV of devices or contracts, see every row's errors, then write all rows or none."""

    importers = (imports.DeviceImporter, imports.ContractImporter)


RENTALS_TABLES = {
    "rentals_meter_type": _l("Meter type"),
    "rentals_manufacturer": _l("Manufacturer"),
    "rentals_device_model": _l("Device model"),
    "rentals_consumable": _l("Consumable"),
    "rentals_device": _l("Device"),
    "rentals_installation": _l("Installation"),
    "rentals_contract": _l("Contract"),
    "rentals_allowance": _l("Allowance"),
    "rentals_price_band": _l("Price band"),
    "rentals_contract_line": _l("Contract line"),
    "rentals_line_counter": _l("Line counter"),
}


def register_labels(app: Any) -> None:
    """How rentals' records are named and its codes read (core/labels.py)."""
    from modules.rentals.models import DeviceModel, Manufacturer

    labels.register_enum(app, "device.status", STATUS_LABELS)
    labels.register_enum(app, "contract.state", STATE_LABELS)
    labels.register_enum(app, "toner.colour", COLOUR_LABELS)
    labels.register_enum(app, "contract.fee_timing", forms.FEE_TIMING_LABELS)
    labels.register_enum(app, "contract.order_kind", forms.ORDER_KIND_LABELS)
    labels.register_enum(app, "audit.table", RENTALS_TABLES)
    labels.register_enum(
        app,
        "job.func",
        {"modules.rentals.jobs:end_lapsed_contracts": _l("Renew or end the contracts past their end date")},
    )
    labels.register_record(app, Contract, lambda contract: contract.number)
    labels.register_record(
        app, Device, lambda device: f"{device.serial} · {device.model}", needs=("model.manufacturer",)
    )
    labels.register_record(
        app, DeviceModel, lambda model: f"{model.manufacturer} {model.name}", needs=("manufacturer",)
    )
    labels.register_record(app, Manufacturer, lambda manufacturer: manufacturer.name)
    labels.register_record(app, MeterType, lambda meter: meter.label(str(get_locale())))
    labels.register_kind(
        app,
        "contract",
        lambda ident: db.session.get(Contract, ident),
        lambda ids: db.session.scalars(sa.select(Contract).where(Contract.id.in_(ids))).all(),
    )
    labels.register_kind(
        app,
        "device",
        lambda ident: db.session.get(Device, ident),
        lambda ids: db.session.scalars(
            sa.select(Device)
            .where(Device.id.in_(ids))
            .options(sa.orm.selectinload(Device.model).selectinload(DeviceModel.manufacturer))
        ).all(),
    )
    labels.register_kind(
        app,
        "meter",
        lambda code: db.session.get(MeterType, code),
        lambda codes: db.session.scalars(sa.select(MeterType).where(MeterType.code.in_(codes))).all(),
    )
