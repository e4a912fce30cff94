"""VAT codes: the FatturaPA Natura list, the shipped default set, validation, resolving a line's code, the code to
propose for a customer, and the codes' admin view."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_admin import expose
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape
from stdnum.eu import vat as eu_vat
from wtforms.validators import Optional

from core import labels
from core.admin import SecuredModelView, model_view
from core.db import db
from core.models import VatCode
from core.validation import Checker, ValidationError

# The Natura codes of FatturaPA 1.2.x with their official descriptions (Agenzia delle Entrate, specifiche tecniche).
VALID_NATURES: dict[str, str] = {
    "N1": "Escluse ex art. 15 del DPR 633/72",
    "N2.1": "Non soggette ad IVA ai sensi degli artt. da 7 a 7-septies del DPR 633/72",
    "N2.2": "Non soggette - altri casi",
    "N3.1": "Non imponibili - esportazioni",
    "N3.2": "Non imponibili - cessioni intracomunitarie",
    "N3.3": "Non imponibili - cessioni verso San Marino",
    "N3.4": "Non imponibili - operazioni assimilate alle cessioni all'esportazione",
    "N3.5": "Non imponibili - a seguito di dichiarazioni d'intento",
    "N3.6": "Non imponibili - altre operazioni che non concorrono alla formazione del plafond",
    "N4": "Esenti",
    "N5": "Regime del margine / IVA non esposta in fattura",
    "N6.1": "Inversione contabile - cessione di rottami e altri materiali di recupero",
    "N6.2": "Inversione contabile - cessione di oro e argento ai sensi della legge 7/2000 nonché di oreficeria usata",
    "N6.3": "Inversione contabile - subappalto nel settore edile",
    "N6.4": "Inversione contabile - cessione di fabbricati",
    "N6.5": "Inversione contabile - cessione di telefoni cellulari",
    "N6.6": "Inversione contabile - cessione di prodotti elettronici",
    "N6.7": "Inversione contabile - prestazioni comparto edile e settori connessi",
    "N6.8": "Inversione contabile - operazioni settore energetico",
    "N6.9": "Inversione contabile - altri casi",
    "N7": "IVA assolta in altro stato UE",
}
# The same, in the user's language (the Italian ones above are what the XML and the PDF say).
NATURE_LABELS: dict[str, Any] = {
    "N1": _l("Excluded under art. 15 DPR 633/72"),
    "N2.1": _l("Not subject to VAT under arts. 7 to 7-septies DPR 633/72"),
    "N2.2": _l("Not subject to VAT - other cases"),
    "N3.1": _l("Non-taxable - exports"),
    "N3.2": _l("Non-taxable - intra-EU supplies"),
    "N3.3": _l("Non-taxable - supplies to San Marino"),
    "N3.4": _l("Non-taxable - operations treated as exports"),
    "N3.5": _l("Non-taxable - after a declaration of intent"),
    "N3.6": _l("Non-taxable - other operations outside the plafond"),
    "N4": _l("Exempt"),
    "N5": _l("Margin scheme / VAT not shown on the invoice"),
    "N6.1": _l("Reverse charge - scrap and recovered materials"),
    "N6.2": _l("Reverse charge - gold and silver"),
    "N6.3": _l("Reverse charge - building subcontracting"),
    "N6.4": _l("Reverse charge - buildings"),
    "N6.5": _l("Reverse charge - mobile phones"),
    "N6.6": _l("Reverse charge - electronic products"),
    "N6.7": _l("Reverse charge - building and related services"),
    "N6.8": _l("Reverse charge - energy sector"),
    "N6.9": _l("Reverse charge - other cases"),
    "N7": _l("VAT paid in another EU state"),
}
# Refused by the exchange system (SdI) since 1 January 2021: each must name its sub-case.
GENERIC_NATURES = ("N2", "N3", "N6")
CHARGEABILITY_LABELS: dict[str, Any] = {
    "I": _l("Immediate"),
    "D": _l("Deferred"),
    "S": _l("Split payment"),
}
CODE_FIELDS = (
    "code",
    "rate",
    "description_it",
    "description_en",
    "description_es",
    "nature",
    "legal_reference",
    "chargeability",
    "stamp_duty",
    "active",
    "position",
)
CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9.\-_]{0,9}$")
MAX_RATE = Decimal("100")
MAX_POSITION = 9999
# EU member states by ISO country code (stdnum lists Greece as GR, Northern Ireland's XI is not a country).
EU_COUNTRIES = frozenset(code.upper() for code in eu_vat.MEMBER_STATES if code != "xi")


def _code(code, rate, it, en, es, nature=None, reference=None, stamp=False, position=0) -> dict[str, Any]:
    return {
        "code": code,
        "rate": Decimal(rate),
        "description_it": it,
        "description_en": en,
        "description_es": es,
        "nature": nature,
        "legal_reference": reference,
        "chargeability": "I",
        "stamp_duty": stamp,
        "active": True,
        "position": position,
    }


DEFAULT_CODES: tuple[dict[str, Any], ...] = (
    _code("22", "22", "IVA 22%", "VAT 22%", "IVA 22%", position=10),
    _code("10", "10", "IVA 10%", "VAT 10%", "IVA 10%", position=20),
    _code("5", "5", "IVA 5%", "VAT 5%", "IVA 5%", position=30),
    _code("4", "4", "IVA 4%", "VAT 4%", "IVA 4%", position=40),
    _code(
        "N1",
        "0",
        "Escluso art. 15 DPR 633/72",
        "Excluded, art. 15 DPR 633/72",
        "Excluido, art. 15 DPR 633/72",
        "N1",
        "Art. 15 DPR 633/72",
        stamp=True,
        position=100,
    ),
    _code(
        "N2.1",
        "0",
        "Non soggetto art. 7-ter DPR 633/72 (servizi a soggetti UE o esteri)",
        "Not subject, art. 7-ter DPR 633/72 (services to EU or foreign businesses)",
        "No sujeto, art. 7-ter DPR 633/72 (servicios a empresas de la UE o extranjeras)",
        "N2.1",
        "Art. 7-ter DPR 633/72",
        stamp=True,
        position=110,
    ),
    _code(
        "N2.2",
        "0",
        "Non soggetto - altri casi",
        "Not subject - other cases",
        "No sujeto - otros casos",
        "N2.2",
        "Art. 2 DPR 633/72",
        stamp=True,
        position=120,
    ),
    _code(
        "N3.1",
        "0",
        "Non imponibile - esportazioni art. 8 DPR 633/72",
        "Non-taxable - exports, art. 8 DPR 633/72",
        "No imponible - exportaciones, art. 8 DPR 633/72",
        "N3.1",
        "Art. 8 c. 1 lett. a DPR 633/72",
        stamp=True,
        position=130,
    ),
    _code(
        "N3.2",
        "0",
        "Non imponibile - cessioni intracomunitarie art. 41 DL 331/93",
        "Non-taxable - intra-EU supplies, art. 41 DL 331/93",
        "No imponible - entregas intracomunitarias, art. 41 DL 331/93",
        "N3.2",
        "Art. 41 DL 331/93",
        stamp=False,
        position=140,
    ),
    _code(
        "N3.5",
        "0",
        "Non imponibile - dichiarazione d'intento art. 8 c. 1 lett. c DPR 633/72",
        "Non-taxable - declaration of intent, art. 8 c. 1 lett. c DPR 633/72",
        "No imponible - declaración de intención, art. 8 c. 1 lett. c DPR 633/72",
        "N3.5",
        "Art. 8 c. 1 lett. c DPR 633/72",
        stamp=True,
        position=150,
    ),
    _code(
        "N4",
        "0",
        "Esente art. 10 DPR 633/72",
        "Exempt, art. 10 DPR 633/72",
        "Exento, art. 10 DPR 633/72",
        "N4",
        "Art. 10 DPR 633/72",
        stamp=True,
        position=160,
    ),
    _code(
        "N5",
        "0",
        "Regime del margine art. 36 DL 41/95",
        "Margin scheme, art. 36 DL 41/95",
        "Régimen del margen, art. 36 DL 41/95",
        "N5",
        "Art. 36 DL 41/95",
        stamp=False,
        position=170,
    ),
    _code(
        "N6.9",
        "0",
        "Inversione contabile - altri casi art. 17 DPR 633/72",
        "Reverse charge - other cases, art. 17 DPR 633/72",
        "Inversión del sujeto pasivo - otros casos, art. 17 DPR 633/72",
        "N6.9",
        "Art. 17 DPR 633/72",
        stamp=False,
        position=180,
    ),
    _code(
        "N7",
        "0",
        "IVA assolta in altro stato UE",
        "VAT paid in another EU state",
        "IVA pagada en otro estado de la UE",
        "N7",
        "Art. 74-sexies DPR 633/72",
        stamp=False,
        position=190,
    ),
)


def ensure_defaults() -> None:
    """Insert the shipped codes when the dealer has none yet (flushed; the caller commits)."""
    if db.session.scalar(sa.select(sa.func.count()).select_from(VatCode)):
        return
    db.session.add_all(VatCode(**values) for values in DEFAULT_CODES)
    db.session.flush()


def _fmt_rate(rate: Decimal) -> str:
    return f"{rate.normalize():f}"


def resolve(vat_code: str | None, vat_rate: Decimal | None, field: str) -> VatCode:
    """The active VAT code a line uses: `vat_code` when given, else the default code of a rate above 0.

    A 0% line without a code is refused (its Natura would be unknown), and so is an unknown or inactive code; the
    ValidationError names `field`."""
    ensure_defaults()
    if vat_code not in (None, ""):
        found = db.session.get(VatCode, str(vat_code).strip().upper())
        if found is None:
            raise ValidationError({field: _("There is no VAT code %(code)s.", code=vat_code)})
        if not found.active:
            raise ValidationError({field: _("The VAT code %(code)s is no longer in use.", code=found.code)})
        return found
    if vat_rate is None or Decimal(vat_rate) == 0:
        raise ValidationError(
            {
                field: _(
                    "A line at 0% needs a VAT code with its Natura (N1, N2.1, N4, ...): choose one of the codes at 0%."
                )
            }
        )
    found = db.session.scalars(
        sa.select(VatCode)
        .where(VatCode.rate == Decimal(vat_rate), VatCode.nature.is_(None), VatCode.active.is_(True))
        .order_by(VatCode.position, VatCode.code)
        .limit(1)
    ).first()
    if found is None:
        message = _("No VAT code in use has the rate %(rate)s%%: add one or choose a code.", rate=_fmt_rate(vat_rate))
        raise ValidationError({field: message})
    return found


def _check_nature(check: Checker, nature: str | None, rate: Decimal | None) -> str | None:
    nature = (nature or "").strip().upper() or None
    if nature in GENERIC_NATURES:
        sub_cases = {
            "N2": _("choose N2.1 or N2.2"),
            "N3": _("choose one of N3.1 to N3.6"),
            "N6": _("choose one of N6.1 to N6.9"),
        }[nature]
        check.fail(
            "nature",
            _(
                "%(nature)s alone is refused by the exchange system (SdI) since 2021: %(sub_cases)s.",
                nature=nature,
                sub_cases=sub_cases,
            ),
        )
        return None
    if nature is not None and nature not in VALID_NATURES:
        check.fail("nature", _("Unknown Natura %(nature)s: choose one of the list.", nature=nature))
        return None
    if rate is not None:
        if rate == 0 and nature is None:
            check.fail("nature", _("A code at 0% needs its Natura: it tells the exchange system why there is no VAT."))
        elif rate > 0 and nature is not None:
            check.fail("nature", _("Only a code at 0% has a Natura: leave it empty for a rate above 0."))
    return nature


def validate_code_fields(data: dict, existing: VatCode | None = None) -> dict:
    """The clean values of a VAT code's fields in `data` (all of them for a new code, defaults filled in).

    Checked against the rest of the code (`existing`'s values where `data` does not give them); a ValidationError
    names the field: `code` (format, taken, changed), `rate`, `nature` (generic N2/N3/N6, unknown, missing at 0%,
    present above 0%), `legal_reference` (required with a Natura), `chargeability`, the descriptions, `position`.
    Nothing is written."""
    check, clean = Checker(), {}
    creating = existing is None
    current = {name: getattr(existing, name) for name in CODE_FIELDS} if existing is not None else {}
    given = {name: value for name, value in data.items() if name in CODE_FIELDS}
    for name in sorted(set(data) - set(given)):
        check.fail(name, _("Unknown field."))
    if creating or "code" in given:
        code = (check.text("code", given.get("code"), 10, required=True) or "").upper()
        if code and not CODE_RE.match(code):
            check.fail("code", _("Capital letters, digits, dots and dashes, at most 10 (22, N2.1)."))
        elif code and existing is not None and code != existing.code:
            check.fail("code", _("The code of a VAT code cannot change: add a new code and stop using this one."))
        elif code and creating and db.session.get(VatCode, code) is not None:
            check.fail("code", _("The VAT code %(code)s already exists.", code=code))
        clean["code"] = code
    if creating or "rate" in given:
        clean["rate"] = check.decimal("rate", given.get("rate"), 2, MAX_RATE, maximum=MAX_RATE)
    rate = clean.get("rate", current.get("rate"))
    for name in ("description_it", "description_en", "description_es"):
        if creating or name in given:
            clean[name] = check.text(name, given.get(name), 200, required=name == "description_it")
    for name in ("description_en", "description_es"):
        if name in clean and clean[name] is None:
            clean[name] = clean.get("description_it") or current.get("description_it")
    nature_given = creating or "nature" in given or "rate" in given
    nature = given["nature"] if "nature" in given else current.get("nature")
    if nature_given:
        clean["nature"] = _check_nature(check, nature, rate if "rate" not in check else None)
    if creating or "legal_reference" in given:
        clean["legal_reference"] = check.text("legal_reference", given.get("legal_reference"), 100)
    reference = clean.get("legal_reference", current.get("legal_reference"))
    nature = clean.get("nature", current.get("nature"))
    if nature and not reference and "nature" not in check:
        check.fail(
            "legal_reference",
            _("An invoice without VAT must cite the law that allows it (art. 21 DPR 633/72), e.g. Art. 10 DPR 633/72."),
        )
    if creating or "chargeability" in given:
        value = given.get("chargeability")
        value = value.strip().upper() if isinstance(value, str) else value
        clean["chargeability"] = check.choice("chargeability", value or "I", tuple(CHARGEABILITY_LABELS))
    chargeability = clean.get("chargeability", current.get("chargeability"))
    if chargeability == "S" and rate is not None and rate == 0 and "chargeability" not in check:
        check.fail("chargeability", _("Split payment concerns the VAT of a taxed rate: a code at 0% has none."))
    for name, default in (("stamp_duty", False), ("active", True)):
        if creating or name in given:
            clean[name] = check.boolean(name, given.get(name), default=current.get(name, default))
    if creating or "position" in given:
        position = given.get("position")
        clean["position"] = (
            0 if position in (None, "") else check.integer("position", position, 0, MAX_POSITION, required=False)
        )
    check.raise_if_any()
    return clean


def save_code(existing: VatCode | None, data: dict) -> VatCode:
    """Create a VAT code (`existing` None) or change the fields of `data` on one; flushed, the caller commits."""
    clean = validate_code_fields(data, existing)
    if existing is None:
        existing = VatCode(**clean)
        db.session.add(existing)
    else:
        for name, value in clean.items():
            setattr(existing, name, value)
    db.session.flush()
    return existing


def propose_code(partner: Any) -> str:
    """The code to preselect for a customer: N2.1 (not subject, art. 7-ter) for a business outside Italy, that is a
    customer with a valid EU VAT number in another member state or any VAT number outside the EU; else 22."""
    country = (getattr(partner, "country", None) or "IT").upper()
    vat_number = (getattr(partner, "vat_number", None) or "").strip().upper().replace(" ", "")
    if country == "IT" or not vat_number:
        return "22"
    if country in EU_COUNTRIES:
        prefixed = vat_number if vat_number[:2].isalpha() else ("EL" if country == "GR" else country) + vat_number
        return "N2.1" if eu_vat.is_valid(prefixed) and prefixed[:2] != "IT" else "22"
    return "N2.1"


def is_reverse_charge(nature: str | None) -> bool:
    """Whether the customer accounts for the VAT itself ("reverse charge" on the PDF): N6.x, and N2.1 services."""
    return bool(nature) and (nature.startswith("N6") or nature == "N2.1")


def description(code: VatCode, language: str) -> str:
    """The code's description in `language` (it, en, es), else the Italian one."""
    return getattr(code, f"description_{(language or 'it')[:2].lower()}", None) or code.description_it


def nature_label(nature: str | None) -> str:
    """A Natura with its description in the user's language: "N2.1 — Not subject to VAT ..."."""
    if not nature:
        return ""
    label = NATURE_LABELS.get(nature)
    return f"{nature} — {label}" if label is not None else nature


def record_label(code: VatCode) -> str:
    """How a page names a code: "22 — IVA 22%", never the bare number (a page shows many numbers)."""
    return f"{code.code} — {description(code, _language())}"


def _language() -> str:
    locale = get_locale()
    return locale.language if locale is not None else "it"


VAT_CODE_LABELS = {
    "code": _l("Code"),
    "rate": _l("Rate (%)"),
    "description": _l("Description"),
    "description_it": _l("Description (Italian)"),
    "description_en": _l("Description (English)"),
    "description_es": _l("Description (Spanish)"),
    "nature": _l("Natura (e-invoice)"),
    "legal_reference": _l("Legal reference"),
    "chargeability": _l("VAT chargeability"),
    "stamp_duty": _l("Counts toward stamp duty"),
    "active": _l("In use"),
    "position": _l("Position in lists"),
}


def _description_column(view, context, model: VatCode, name: str) -> str:
    return description(model, _language())


def _nature_column(view, context, model: VatCode, name: str) -> Markup | str:
    return escape(nature_label(model.nature))


class VatCodeView(SecuredModelView):
    """The dealer's VAT codes: a rate, or 0% with its Natura and the law it cites. Shipped with the usual set; a code
    that is no longer wanted is taken out of use (lines and contracts keep referring to it), never deleted."""

    permission = "billing.manage"
    edit_permission = "billing.manage"
    column_list = (
        "code",
        "rate",
        "description",
        "nature",
        "legal_reference",
        "chargeability",
        "stamp_duty",
        "active",
    )
    column_details_list = CODE_FIELDS
    column_export_list = column_list
    column_labels = VAT_CODE_LABELS
    column_enums = {"chargeability": "vat_code.chargeability"}
    column_formatters = {"description": _description_column, "nature": _nature_column}
    column_formatters_detail = {"nature": _nature_column}
    column_formatters_export = {"description": _description_column, "nature": _nature_column}
    column_sortable_list = ("code", "rate", "position")
    column_default_sort = [("position", False), ("code", False)]
    column_searchable_list = ("code", "description_it", "description_en", "description_es", "legal_reference")
    column_filters = ("rate", "nature", "active")
    form_columns = CODE_FIELDS
    form_choices = {
        # The official (Italian) wording: it is what the e-invoice and the PDF say.
        "nature": [(code, f"{code} — {text}") for code, text in VALID_NATURES.items()],
        "chargeability": list(CHARGEABILITY_LABELS.items()),
    }
    form_args = {
        "code": {"description": _l("What contracts and invoice lines name: 22, N2.1. It cannot change later.")},
        "rate": {"description": _l("0 for a code without VAT: it then needs its Natura and legal reference.")},
        "nature": {"description": _l("Only for codes at 0%; N2, N3 and N6 alone are refused by the exchange system.")},
        "description_en": {"description": _l("Empty: the Italian description."), "validators": [Optional()]},
        "description_es": {"description": _l("Empty: the Italian description."), "validators": [Optional()]},
        "legal_reference": {"description": _l("Printed on the invoice and sent as RiferimentoNormativo.")},
        "stamp_duty": {"description": _l("Exempt and non-taxable amounts: above 77.47 EUR the invoice bears 2 EUR.")},
        "active": {"description": _l("Untick to stop offering it: what already uses it keeps it.")},
    }

    def _values(self, form: Any) -> dict[str, Any]:
        return {name: form[name].data for name in CODE_FIELDS if name in form}

    def create_model(self, form: Any) -> Any:
        return self.save_form(form, lambda: save_code(None, self._values(form)))

    def update_model(self, form: Any, model: VatCode) -> bool:
        return self.save_form(form, lambda: save_code(model, self._values(form))) is not False

    @expose("/")
    def index_view(self):
        # A new dealer sees the shipped set at once.
        ensure_defaults()
        db.session.commit()
        return super().index_view()


def init_app(app: Flask) -> None:
    labels.register_enum(app, "vat_code.chargeability", CHARGEABILITY_LABELS)
    labels.register_enum(app, "audit.table", {"core_vat_code": _l("VAT code")})
    labels.register_record(app, VatCode, record_label)
    admin = app.extensions["copydesk"].admin
    admin.add_view(model_view(VatCodeView, VatCode, _l("VAT codes"), "core_vat_code", _l("Settings")))
