"""FatturaPA 1.2.3 XML of a posted invoice (TD01) or credit note (TD04): FPR12 to businesses, FPA12 to public bodies.

Choices (docs/e-invoicing.md): amounts carry exactly 2 decimals, unit prices 2 to 6 (the XSD allows 2 to 8) and
quantities 2 to 3; a credit note repeats the credited amounts as positive values, as TD04 expects. Each line states
the VAT code it was made with: AliquotaIVA, and at 0% its Natura; one DatiRiepilogo per rate and Natura, with the
code's legal reference (RiferimentoNormativo). A public administration gets an FPA12 addressed to its 6-character
office code, with the contract's CIG/CUP in DatiContratto or DatiOrdineAcquisto (the CIG stands for the document
number when the contract has none). Under split payment (art. 17-ter DPR 633/72) the taxed rows say EsigibilitaIVA
"S" and the instalments ask only for the net. A customer outside Italy gets CodiceDestinatario XXXXXXX, CAP 00000,
no Provincia, and its VAT number split from its prefix (IdPaese ES, IdCodice B1234...). Texts are cut to the
schema's lengths and characters. Every file passes our own rules (fatturapa_rules.check) before it leaves: a file
that would not is refused with their messages. The file is `IT<VAT>_<progressive>.xml`, the progressive being the
document id in base 36, five characters.
"""

from __future__ import annotations

import datetime as dt
import re
import string
import unicodedata
import xml.etree.ElementTree as ET
from decimal import Decimal

from flask_babel import gettext as _

from core.db import db
from core.extension_points import DIRECT_DEBIT_MANDATES, DirectDebitMandate, implementations
from core.models import Company, Partner, VatCode
from core.partners import vat_display, vat_id
from core.validation import ValidationError
from core.vat_codes import GENERIC_NATURES, VALID_NATURES
from modules.invoicing.fatturapa_rules import check
from modules.invoicing.models import Invoice
from modules.invoicing.services import vat_rows

NAMESPACE = "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2"
DIGITS36 = string.digits + string.ascii_uppercase
DOCUMENT_TYPES = {"invoice": "TD01", "credit_note": "TD04"}
PAYMENT_MODES = {"bank_transfer": "MP05", "sepa_direct_debit": "MP19", "riba": "MP12", "cash": "MP01", "card": "MP08"}
NO_CODE = "0000000"
FOREIGN_CODE = "XXXXXXX"
FOREIGN_CAP = "00000"
MAX_LINES = 9999  # NumeroLinea
CODE_RE = re.compile(r"[A-Z0-9]+")
CAP_RE = re.compile(r"[0-9]{5}")
PROVINCE_RE = re.compile(r"[A-Z]{2}")
# Characters outside the schema's Latin-1 that texts commonly carry, and what stands for them.
REPLACEMENTS = str.maketrans(
    {
        "\u20ac": "EUR",  # euro sign
        "\u2018": "'",  # typographic quotes
        "\u2019": "'",
        "\u201a": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u2013": "-",  # en and em dashes
        "\u2014": "-",
        "\u2026": "...",
        "\u2022": "-",  # bullet
    }
)


def progressive(invoice_id: int) -> str:
    """The invoice id in base 36, five characters (ProgressivoInvio and the file name)."""
    digits = ""
    value = invoice_id
    while value:
        value, remainder = divmod(value, 36)
        digits = DIGITS36[remainder] + digits
    if len(digits) > 5:
        raise ValidationError({"id": _("The document id is too large for a FatturaPA progressive.")})
    return digits.rjust(5, "0")


def _company() -> Company:
    company = db.session.scalar(db.select(Company).order_by(Company.id).limit(1))
    if company is None or not company.vat_number:
        raise ValidationError({"company.vat_number": _("Enter the dealer's VAT number before issuing e-invoices.")})
    return company


def file_name(invoice: Invoice) -> str:
    company = _company()
    return f"{vat_display(company.vat_number, company.country)}_{progressive(invoice.id)}.xml"


def _money(value: Decimal) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01'))}"


def _decimals(value: Decimal, minimum: int, maximum: int) -> str:
    exponent = Decimal(value).normalize().as_tuple().exponent
    places = min(maximum, max(minimum, -exponent if isinstance(exponent, int) else 0))
    return f"{Decimal(value).quantize(Decimal(1).scaleb(-places))}"


def _text(value: str, length: int, limit: int = 0xFF) -> str:
    """`value` in the schema's characters (Latin-1, or ASCII with limit 0x7F), whitespace collapsed, cut to length."""
    characters = []
    for character in " ".join(value.translate(REPLACEMENTS).split()):
        if ord(character) > limit:
            # Accented letters outside the range keep their base letter (ő → o); anything else becomes "?".
            base = unicodedata.normalize("NFKD", character).encode("ascii", "ignore").decode()
            character = base or "?"
        characters.append(character)
    return "".join(characters)[:length].strip()


def _ascii(value: str, length: int) -> str:
    return _text(value, length, 0x7F)


def _add(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _address(parent: ET.Element, party: Company | Partner, field: str) -> None:
    missing = [name for name in ("street", "postal_code", "city") if not (getattr(party, name) or "").strip()]
    if missing:
        if field == "company":
            message = _("Needed on an e-invoice: fill in the dealer's address (Settings, Company).")
        else:
            message = _("Needed on an e-invoice: fill in the customer's address.")
        raise ValidationError({f"{field}.{missing[0]}": message})
    italian = (party.country or "IT") == "IT"
    postal_code = party.postal_code.strip()
    if italian and not CAP_RE.fullmatch(postal_code):
        raise ValidationError({f"{field}.postal_code": _("An Italian postal code (CAP) has 5 digits.")})
    sede = _add(parent, "Sede")
    _add(sede, "Indirizzo", _text(party.street, 60))
    _add(sede, "CAP", postal_code if italian else FOREIGN_CAP)
    _add(sede, "Comune", _text(party.city, 60))
    province = (party.province or "").strip().upper()
    if italian and PROVINCE_RE.fullmatch(province):
        _add(sede, "Provincia", province)
    _add(sede, "Nazione", (party.country or "IT").upper())


def _tax_ids(parent: ET.Element, party: Company | Partner, field: str) -> None:
    if not party.vat_number and not party.fiscal_code:
        raise ValidationError({f"{field}.vat_number": _("An e-invoice needs a VAT number or a fiscal code.")})
    if party.vat_number:
        country, number = vat_id(party.vat_number, party.country)
        ids = _add(parent, "IdFiscaleIVA")
        _add(ids, "IdPaese", country)
        _add(ids, "IdCodice", number[:28])
    if party.fiscal_code:
        _add(parent, "CodiceFiscale", party.fiscal_code.strip().upper().replace(" ", ""))


def _recipient(transmission: ET.Element, customer: Partner) -> None:
    """CodiceDestinatario (and PECDestinatario): the office code of a public body, the 7-character code otherwise."""
    code = (customer.sdi_code or "").strip().upper()
    if customer.public_administration:
        if len(code) != 6 or not CODE_RE.fullmatch(code):
            message = _("A public administration's e-invoice goes to its 6-character office code (codice univoco).")
            raise ValidationError({"customer.sdi_code": message})
        _add(transmission, "CodiceDestinatario", code)
        return
    if (customer.country or "IT") != "IT":
        _add(transmission, "CodiceDestinatario", FOREIGN_CODE)
        return
    if code and (len(code) != 7 or not CODE_RE.fullmatch(code)):
        raise ValidationError({"customer.sdi_code": _("The recipient code (codice destinatario) has 7 characters.")})
    _add(transmission, "CodiceDestinatario", code or NO_CODE)
    if not code and customer.pec:
        _add(transmission, "PECDestinatario", customer.pec.strip())


def _procurement(general: ET.Element, invoice: Invoice) -> None:
    """DatiOrdineAcquisto or DatiContratto: the contract's or order's reference, date, CUP and CIG."""
    if not (invoice.order_reference or invoice.order_date or invoice.cig or invoice.cup):
        return
    reference = invoice.order_reference or invoice.cig or invoice.cup
    if not reference:
        message = _("The e-invoice needs the order or contract number to go with its date.")
        raise ValidationError({"order_reference": message})
    element = _add(general, "DatiOrdineAcquisto" if invoice.order_kind == "order" else "DatiContratto")
    _add(element, "IdDocumento", _ascii(reference, 20))
    if invoice.order_date:
        _add(element, "Data", invoice.order_date.isoformat())
    if invoice.cup:
        _add(element, "CodiceCUP", invoice.cup)
    if invoice.cig:
        _add(element, "CodiceCIG", invoice.cig)


def _check_nature(field: str, rate: Decimal, nature: str | None) -> None:
    if nature in GENERIC_NATURES:
        message = _(
            "Natura %(nature)s is refused by the exchange system since 2021: choose a VAT code with one of its "
            "sub-cases (%(nature)s.1, %(nature)s.2, …).",
            nature=nature,
        )
        raise ValidationError({field: message})
    if not rate and not nature:
        raise ValidationError({field: _("A line at rate 0 needs a VAT code with its Natura (exempt, not subject, …).")})
    if rate and nature:
        raise ValidationError({field: _("A Natura goes only with a VAT code at rate 0.")})
    if nature and nature not in VALID_NATURES:
        raise ValidationError({field: _("Natura %(nature)s is not a known nature.", nature=nature)})


def _chargeability(invoice: Invoice, rate: Decimal, nature: str | None) -> str:
    """EsigibilitaIVA: S on the taxed rows under split payment, else the code's (never S on a row with Natura)."""
    if invoice.split_payment and rate:
        return "S"
    codes = {
        line.vat_code
        for line in invoice.lines
        if line.vat_code and Decimal(line.vat_rate) == rate and (line.vat_nature or None) == nature
    }
    chargeability = "I"
    if codes:
        found = db.session.scalars(db.select(VatCode.chargeability).where(VatCode.code.in_(sorted(codes)))).all()
        chargeability = found[0] if found else "I"
    return "I" if nature and chargeability == "S" else chargeability


def _mandate(customer_id: int) -> DirectDebitMandate | None:
    for provider in implementations(DIRECT_DEBIT_MANDATES):
        mandate = provider.direct_debit_mandate(customer_id)
        if mandate is not None:
            return mandate
    return None


def _instalments(invoice: Invoice) -> list[tuple[dt.date | None, Decimal]]:
    if invoice.payment_schedule:
        return [
            (dt.date.fromisoformat(item["due_date"]), Decimal(str(item["amount"]))) for item in invoice.payment_schedule
        ]
    # Posted before instalments were kept: one payment of the amount due at the due date.
    due = invoice.total - invoice.vat_total if invoice.split_payment else invoice.total
    return [(invoice.due_date, due)]


def _payment(body: ET.Element, invoice: Invoice, company: Company) -> None:
    method = invoice.payment_method or "bank_transfer"
    if method not in PAYMENT_MODES:
        raise ValidationError({"payment_method": _("Unknown payment method: %(method)s", method=method)})
    mode = PAYMENT_MODES[method]
    iban, payment_code = None, None
    if mode == "MP05" and company.iban:
        iban = company.iban
    elif mode == "MP19":
        mandate = _mandate(invoice.customer_id)
        if mandate is not None:
            iban, payment_code = mandate.iban, mandate.reference
    instalments = _instalments(invoice)
    payment = _add(body, "DatiPagamento")
    _add(payment, "CondizioniPagamento", "TP01" if len(instalments) > 1 else "TP02")
    for due_date, amount in instalments:
        detail = _add(payment, "DettaglioPagamento")
        _add(detail, "ModalitaPagamento", mode)
        if due_date:
            _add(detail, "DataScadenzaPagamento", due_date.isoformat())
        _add(detail, "ImportoPagamento", _money(amount))
        if iban:
            _add(detail, "IBAN", iban.replace(" ", "").upper())
        if payment_code:
            _add(detail, "CodicePagamento", _ascii(payment_code, 60))


def build(invoice: Invoice) -> bytes:
    """The FatturaPA XML of a posted document; ValidationError names what is missing or inconsistent."""
    if invoice.state != "posted":
        raise ValidationError({"state": _("Only a posted document has an e-invoice.")})
    if len(invoice.lines) > MAX_LINES:
        raise ValidationError({"lines": _("An e-invoice has at most %(max)d lines.", max=MAX_LINES)})
    company, customer = _company(), invoice.customer
    version = "FPA12" if customer.public_administration else "FPR12"
    ET.register_namespace("p", NAMESPACE)
    root = ET.Element(f"{{{NAMESPACE}}}FatturaElettronica", {"versione": version})

    header = _add(root, "FatturaElettronicaHeader")
    transmission = _add(header, "DatiTrasmissione")
    sender = _add(transmission, "IdTrasmittente")
    sender_country, sender_number = vat_id(company.vat_number, company.country)
    _add(sender, "IdPaese", sender_country)
    _add(sender, "IdCodice", sender_number)
    _add(transmission, "ProgressivoInvio", progressive(invoice.id))
    _add(transmission, "FormatoTrasmissione", version)
    _recipient(transmission, customer)

    seller = _add(header, "CedentePrestatore")
    seller_data = _add(seller, "DatiAnagrafici")
    _tax_ids(seller_data, company, "company")
    _add(_add(seller_data, "Anagrafica"), "Denominazione", _text(company.name, 80))
    _add(seller_data, "RegimeFiscale", company.tax_regime or "RF01")
    _address(seller, company, "company")

    buyer = _add(header, "CessionarioCommittente")
    buyer_data = _add(buyer, "DatiAnagrafici")
    _tax_ids(buyer_data, customer, "customer")
    _add(_add(buyer_data, "Anagrafica"), "Denominazione", _text(customer.name, 80))
    _address(buyer, customer, "customer")

    body = _add(root, "FatturaElettronicaBody")
    general = _add(body, "DatiGenerali")
    document = _add(general, "DatiGeneraliDocumento")
    _add(document, "TipoDocumento", DOCUMENT_TYPES[invoice.type])
    _add(document, "Divisa", "EUR")
    _add(document, "Data", invoice.issue_date.isoformat())
    _add(document, "Numero", _ascii(invoice.number, 20))
    if invoice.stamp_duty and invoice.stamp_duty > 0:
        stamp = _add(document, "DatiBollo")
        _add(stamp, "BolloVirtuale", "SI")
        _add(stamp, "ImportoBollo", _money(invoice.stamp_duty))
    _add(document, "ImportoTotaleDocumento", _money(invoice.total))
    _procurement(general, invoice)
    if invoice.original is not None:
        linked = _add(general, "DatiFattureCollegate")
        _add(linked, "IdDocumento", _ascii(invoice.original.number, 20))
        _add(linked, "Data", invoice.original.issue_date.isoformat())

    goods = _add(body, "DatiBeniServizi")
    for number, line in enumerate(invoice.lines, start=1):
        rate, nature = Decimal(line.vat_rate), line.vat_nature or None
        _check_nature(f"lines.{number - 1}.vat_code", rate, nature)
        detail = _add(goods, "DettaglioLinee")
        _add(detail, "NumeroLinea", str(number))
        _add(detail, "Descrizione", _text(line.description, 1000) or "-")
        _add(detail, "Quantita", _decimals(line.quantity, 2, 3))
        if line.unit and _ascii(line.unit, 10):
            _add(detail, "UnitaMisura", _ascii(line.unit, 10))
        if line.period_start and line.period_end:
            _add(detail, "DataInizioPeriodo", line.period_start.isoformat())
            _add(detail, "DataFinePeriodo", line.period_end.isoformat())
        _add(detail, "PrezzoUnitario", _decimals(line.unit_price, 2, 6))
        _add(detail, "PrezzoTotale", _money(line.amount))
        _add(detail, "AliquotaIVA", _money(rate))
        if nature:
            _add(detail, "Natura", nature)
    for row in vat_rows(invoice.lines):
        summary = _add(goods, "DatiRiepilogo")
        _add(summary, "AliquotaIVA", _money(row.rate))
        if row.nature:
            _add(summary, "Natura", row.nature)
        _add(summary, "ImponibileImporto", _money(row.base))
        _add(summary, "Imposta", _money(row.vat))
        _add(summary, "EsigibilitaIVA", _chargeability(invoice, row.rate, row.nature))
        if row.nature and row.reference and _text(row.reference, 100):
            _add(summary, "RiferimentoNormativo", _text(row.reference, 100))

    _payment(body, invoice, company)
    xml = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    errors = check(xml)
    if errors:
        raise ValidationError({"fatturapa": "; ".join(errors)})
    return xml
