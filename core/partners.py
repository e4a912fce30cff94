"""Partners and the dealer's company: validation of fiscal identifiers, and their admin views."""

from __future__ import annotations

import re

from flask import Flask
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from stdnum import iban as std_iban
from stdnum import util as std_util
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.it import codicefiscale, iva
from wtforms import FileField
from wtforms import ValidationError as FormValidationError
from wtforms.validators import NumberRange

from core import images, labels, vat_codes
from core.admin import SecuredModelView, model_view
from core.models import Company, Partner, PartnerContact
from core.validation import Checker
from core.vat_codes import EU_COUNTRIES

SDI_RE = re.compile(r"^[A-Z0-9]{7}$")
# A public administration's office code (Codice Univoco Ufficio, from the IPA index) has 6 characters.
PA_OFFICE_RE = re.compile(r"^[A-Z0-9]{6}$")
# A VAT number of a country stdnum does not know: letters and digits, as long as FatturaPA's IdCodice allows.
FOREIGN_VAT_RE = re.compile(r"^[A-Z0-9]{2,28}$")
LANGUAGES = ("it", "en", "es")
PAYMENT_METHODS = ("bank_transfer", "sepa_direct_debit", "riba", "cash", "card")
PAYMENT_METHOD_LABELS = {
    "bank_transfer": _l("Bank transfer"),
    "sepa_direct_debit": _l("SEPA direct debit"),
    "riba": _l("RiBa (bank receipt)"),
    "cash": _l("Cash"),
    "card": _l("Payment card"),
}
MAX_INSTALMENTS = 12


def pa_office_code_needed() -> str:
    """The message of a public administration saved without its office code."""
    return _("A public administration needs its office code (Codice Univoco Ufficio, 6 letters or digits).")


def normalize_vat(value: str | None, country: str = "IT") -> str | None:
    """A VAT number in its compact form with no country prefix for Italy; raises ValueError with a user message."""
    if not value or not value.strip():
        return None
    country = (country or "IT").upper()
    compact = value.strip().upper().replace(" ", "")
    try:
        if country == "IT":
            return iva.validate(compact[2:] if compact.startswith("IT") else compact)
        if country not in EU_COUNTRIES:
            return _normalize_foreign_vat(compact, country)
        if not compact[:2].isalpha():
            compact = country + compact
        return eu_vat.validate(compact)
    except ValidationError:
        raise ValueError(_("%(value)s is not a valid VAT number", value=value)) from None


def _normalize_foreign_vat(compact: str, country: str) -> str:
    """A VAT number outside the EU: checked by stdnum's module for the country when there is one (Switzerland's
    CHE-123.456.789 MWST, the UK's GB...), else letters and digits only."""
    module = std_util.get_cc_module(country.lower(), "vat")
    if module is not None:
        return module.validate(compact)
    compact = re.sub(r"[.\-/]", "", compact)
    if not FOREIGN_VAT_RE.match(compact):
        raise ValidationError()
    return compact


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


def normalize_sdi_code(value: str | None, public_administration: bool = False) -> str | None:
    """The e-invoice address: a business's 7-character SDI code, a public administration's 6-character office code
    (required for it: FPA12 invoices are delivered to that office)."""
    compact = (value or "").strip().upper().replace(" ", "")
    if public_administration:
        if not compact:
            raise ValueError(pa_office_code_needed())
        if not PA_OFFICE_RE.match(compact):
            raise ValueError(
                _(
                    "A public administration is addressed by its office code (Codice Univoco Ufficio, from the IPA "
                    "index): exactly 6 letters or digits, not %(length)d.",
                    length=len(compact),
                )
            )
        return compact
    if not compact:
        return None
    if not SDI_RE.match(compact):
        raise ValueError(
            _(
                "The SDI code of a business is exactly 7 letters or digits, not %(length)d; a public administration's "
                "6-character office code needs the partner marked as public administration.",
                length=len(compact),
            )
        )
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
    public_administration = check.boolean("public_administration", data.get("public_administration"))
    if "public_administration" in data:
        clean["public_administration"] = public_administration
    normalizers = {
        "vat_number": lambda v: normalize_vat(v, country),
        "fiscal_code": lambda v: normalize_fiscal_code(v, country),
        "sdi_code": lambda v: normalize_sdi_code(v, public_administration),
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
    if "payment_method" in data:
        clean["payment_method"] = check.choice("payment_method", data["payment_method"], PAYMENT_METHODS)
    if "payment_instalments" in data:
        clean["payment_instalments"] = check.integer(
            "payment_instalments", data["payment_instalments"], 1, MAX_INSTALMENTS
        )
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


def _sdi_code_validator(form, field):
    """The SDI code's length depends on whether the partner is a public administration (6) or not (7)."""
    public_administration = bool(form.public_administration.data) if hasattr(form, "public_administration") else False
    try:
        field.data = normalize_sdi_code(field.data, public_administration)
    except ValueError as exc:
        raise FormValidationError(str(exc)) from None


_vat_validator = _form_validator(normalize_vat, with_country=True)
_fiscal_code_validator = _form_validator(normalize_fiscal_code, with_country=True)


# Field labels shared by the partner and company forms and lists.
FIELD_LABELS = {
    "name": _l("Legal name"),
    "vat_number": _l("VAT number"),
    "fiscal_code": _l("Fiscal code"),
    "email": _l("Email"),
    "pec": _l("PEC (certified email)"),
    "sdi_code": _l("SDI code (e-invoice; a public administration's 6-character office code)"),
    "phone": _l("Phone"),
    "language": _l("Language"),
    "payment_terms_days": _l("Payment terms (days)"),
    "payment_end_of_month": _l("Payment at end of month"),
    "split_payment": _l("Split payment"),
    "public_administration": _l("Public administration"),
    "payment_method": _l("Payment method"),
    "payment_instalments": _l("Instalments"),
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
    column_filters = (
        "is_customer",
        "is_supplier",
        "active",
        "public_administration",
        "split_payment",
        "city",
        "province",
        "language",
    )
    column_default_sort = "name"
    column_labels = FIELD_LABELS
    column_enums = {"language": "language", "payment_method": "partner.payment_method"}
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
    form_choices = {
        "language": [("it", "Italiano"), ("en", "English"), ("es", "Español")],
        "payment_method": list(PAYMENT_METHOD_LABELS.items()),
    }
    form_args = {
        "vat_number": {"validators": [_vat_validator]},
        "fiscal_code": {"validators": [_fiscal_code_validator]},
        "sdi_code": {
            "validators": [_sdi_code_validator],
            "description": _l(
                "7 letters or digits for a business; for a public administration its 6-character office code "
                "(Codice Univoco Ufficio, from the IPA index)."
            ),
        },
        "public_administration": {
            "description": _l(
                "Receives FPA12 e-invoices at its office code; usually also split payment (some bodies are exempt)."
            )
        },
        "payment_instalments": {
            "validators": [
                NumberRange(1, MAX_INSTALMENTS, message=_l("Between 1 and 12 instalments.")),
            ],
            "description": _l("Equal instalments, each due the payment terms after the previous one."),
        },
    }

    def validate_form(self, form) -> bool:
        valid = super().validate_form(form)
        # An empty SDI code skips the field's own check (it is optional for others): a public administration needs one.
        pa = getattr(form, "public_administration", None)
        sdi_code = getattr(form, "sdi_code", None)
        if valid and pa is not None and sdi_code is not None and pa.data and not (sdi_code.data or "").strip():
            form.sdi_code.errors = [*form.sdi_code.errors, pa_office_code_needed()]
            return False
        return valid


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
    if not images.readable(content):
        raise FormValidationError(_("The logo must be a PNG or JPEG image"))


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
            # Stored at the size it is printed at (images.LOGO_MAX_SIZE): each PDF lays out a small image.
            model.logo, model.logo_mimetype = images.fit(upload.read(), upload.mimetype)

    form_args = {
        "vat_number": {"validators": [_vat_validator]},
        "fiscal_code": {"validators": [_fiscal_code_validator]},
        "sdi_code": {"validators": [_form_validator(normalize_sdi_code)]},
        "iban": {"validators": [_form_validator(normalize_iban)]},
    }


def init_app(app: Flask) -> None:
    labels.register_enum(app, "partner.payment_method", PAYMENT_METHOD_LABELS)
    admin = app.extensions["copydesk"].admin
    admin.add_view(model_view(PartnerView, Partner, _l("Customers and suppliers"), "core_partner", _l("Partners")))
    admin.add_view(model_view(CompanyView, Company, _l("Company"), "core_company", _l("Settings")))
    # VAT codes are core's too; registered here, beside the company, until core.app lists them as a feature.
    vat_codes.init_app(app)
