"""Partners and the dealer's company: validation of fiscal identifiers, and their admin views."""

from __future__ import annotations

import re

from flask import Flask
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from stdnum import iban as std_iban
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.it import codicefiscale, iva
from wtforms import FileField
from wtforms import ValidationError as FormValidationError

from core.admin import SecuredModelView, model_view
from core.models import Company, Partner, PartnerContact
from core.validation import Checker

SDI_RE = re.compile(r"^[A-Z0-9]{7}$")
LANGUAGES = ("it", "en", "es")


def normalize_vat(value: str | None, country: str = "IT") -> str | None:
    """A VAT number in its compact form with no country prefix for Italy; raises ValueError with a user message."""
    if not value or not value.strip():
        return None
    country = (country or "IT").upper()
    compact = value.strip().upper().replace(" ", "")
    try:
        if country == "IT":
            return iva.validate(compact[2:] if compact.startswith("IT") else compact)
        if not compact[:2].isalpha():
            compact = country + compact
        return eu_vat.validate(compact)
    except ValidationError:
        raise ValueError(_("%(value)s is not a valid VAT number", value=value)) from None


def vat_id(vat_number: str, country: str | None = "IT") -> tuple[str, str]:
    """(country prefix, number) of a stored VAT number: Italian ones are stored bare, others with their prefix."""
    compact = vat_number.strip().upper().replace(" ", "")
    if compact[:2].isalpha():
        return compact[:2], compact[2:]
    return (country or "IT").upper(), compact


def vat_display(vat_number: str | None, country: str | None = "IT") -> str:
    """A VAT number as printed, with its country prefix once (IT00743110157, ESB12345674)."""
    return "".join(vat_id(vat_number, country)) if vat_number else ""


def normalize_fiscal_code(value: str | None, country: str = "IT") -> str | None:
    """An Italian codice fiscale (16 characters for people, 11 digits for companies)."""
    if not value or not value.strip():
        return None
    compact = value.strip().upper().replace(" ", "")
    if (country or "IT").upper() != "IT":
        return compact
    try:
        if len(compact) == 11:
            return iva.validate(compact)
        return codicefiscale.validate(compact)
    except ValidationError:
        raise ValueError(_("%(value)s is not a valid fiscal code", value=value)) from None


def normalize_sdi_code(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    compact = value.strip().upper()
    if not SDI_RE.match(compact):
        raise ValueError(_("The SDI code must be 7 letters or digits"))
    return compact


def normalize_iban(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    try:
        return std_iban.validate(value)
    except ValidationError:
        raise ValueError(_("%(value)s is not a valid IBAN", value=value)) from None


def validate_partner_fields(data: dict) -> tuple[dict, dict[str, str]]:
    """Normalize partner fields; returns (clean values, errors by field). Nothing is written."""
    clean, check = dict(data), Checker()
    country = (data.get("country") or "IT").upper()
    normalizers = {
        "vat_number": lambda v: normalize_vat(v, country),
        "fiscal_code": lambda v: normalize_fiscal_code(v, country),
        "sdi_code": normalize_sdi_code,
    }
    for field, normalize in normalizers.items():
        if field in data:
            try:
                clean[field] = normalize(data[field])
            except ValueError as exc:
                check.fail(field, str(exc))
    if "language" in data and data["language"] not in LANGUAGES:
        check.fail("language", _("Choose one of: %(choices)s", choices=", ".join(LANGUAGES)))
    if "name" in data and not (data["name"] or "").strip():
        check.fail("name", _("The name is required"))
    return clean, check.errors


def _form_validator(normalize, with_country: bool = False):
    """A WTForms validator that normalizes the field in place, or shows the user message of the ValueError."""

    def validator(form, field):
        try:
            if with_country:
                country = form.country.data if hasattr(form, "country") else "IT"
                field.data = normalize(field.data, country or "IT")
            else:
                field.data = normalize(field.data)
        except ValueError as exc:
            raise FormValidationError(str(exc)) from None

    return validator


_vat_validator = _form_validator(normalize_vat, with_country=True)
_fiscal_code_validator = _form_validator(normalize_fiscal_code, with_country=True)


# Field labels shared by the partner and company forms and lists.
FIELD_LABELS = {
    "name": _l("Legal name"),
    "vat_number": _l("VAT number"),
    "fiscal_code": _l("Fiscal code"),
    "email": _l("Email"),
    "pec": _l("PEC (certified email)"),
    "sdi_code": _l("SDI code (e-invoice)"),
    "phone": _l("Phone"),
    "language": _l("Language"),
    "payment_terms_days": _l("Payment terms (days)"),
    "payment_end_of_month": _l("Payment at end of month"),
    "split_payment": _l("Split payment"),
    "is_customer": _l("Customer"),
    "is_supplier": _l("Supplier"),
    "active": _l("Active"),
    "notes": _l("Notes"),
    "street": _l("Street"),
    "city": _l("City"),
    "postal_code": _l("Postal code"),
    "province": _l("Province"),
    "country": _l("Country (ISO code)"),
    "iban": _l("IBAN"),
    "tax_regime": _l("Tax regime (FatturaPA)"),
    "contacts": _l("Contacts"),
    "created_at": _l("Created"),
}


class PartnerView(SecuredModelView):
    permission = "partners.view"
    edit_permission = "partners.edit"
    # The modules' panels (contracts, devices, invoices, reading requests) under the fields: core.admin.record_panels.
    details_template = "admin/partner_details.html"
    column_list = ("name", "vat_number", "city", "email", "language", "is_customer", "active")
    column_searchable_list = ("name", "vat_number", "fiscal_code", "email", "city")
    column_filters = ("is_customer", "is_supplier", "active", "split_payment", "city", "province", "language")
    column_default_sort = "name"
    column_labels = FIELD_LABELS
    column_enums = {"language": "language"}
    form_excluded_columns = ("created_at",)
    inline_models = (
        (
            PartnerContact,
            {
                "column_labels": {
                    "name": _l("Name"),
                    "email": _l("Email"),
                    "phone": _l("Phone"),
                    "receives_readings": _l("Receives reading requests"),
                    "receives_invoices": _l("Receives invoices"),
                }
            },
        ),
    )
    form_choices = {"language": [("it", "Italiano"), ("en", "English"), ("es", "Español")]}
    form_args = {
        "vat_number": {"validators": [_vat_validator]},
        "fiscal_code": {"validators": [_fiscal_code_validator]},
        "sdi_code": {"validators": [_form_validator(normalize_sdi_code)]},
    }


LOGO_TYPES = {"image/png", "image/jpeg"}
LOGO_MAX_BYTES = 1024 * 1024


def _logo_validator(form, field):
    upload = field.data
    if not upload or not getattr(upload, "filename", ""):
        return
    if upload.mimetype not in LOGO_TYPES:
        raise FormValidationError(_("The logo must be a PNG or JPEG image"))
    content = upload.read(LOGO_MAX_BYTES + 1)
    upload.seek(0)
    if len(content) > LOGO_MAX_BYTES:
        raise FormValidationError(_("The logo must be smaller than 1 MB"))


class CompanyView(SecuredModelView):
    permission = "company.manage"
    edit_permission = "company.manage"
    column_list = ("name", "vat_number", "city", "iban")
    column_labels = FIELD_LABELS
    form_excluded_columns = ("logo", "logo_mimetype")
    form_extra_fields = {
        "logo_upload": FileField(_l("Logo (PNG or JPEG, printed on invoices)"), validators=[_logo_validator])
    }

    def on_model_change(self, form, model, is_created):
        upload = form.logo_upload.data
        if upload and getattr(upload, "filename", ""):
            model.logo = upload.read()
            model.logo_mimetype = upload.mimetype

    form_args = {
        "vat_number": {"validators": [_vat_validator]},
        "fiscal_code": {"validators": [_fiscal_code_validator]},
        "sdi_code": {"validators": [_form_validator(normalize_sdi_code)]},
        "iban": {"validators": [_form_validator(normalize_iban)]},
    }


def init_app(app: Flask) -> None:
    admin = app.extensions["copydesk"].admin
    admin.add_view(model_view(PartnerView, Partner, _l("Customers and suppliers"), "core_partner", _l("Partners")))
    admin.add_view(model_view(CompanyView, Company, _l("Company"), "core_company", _l("Settings")))
