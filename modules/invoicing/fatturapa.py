"""FatturaPA 1.2.2 XML (FPR12, private parties) of a posted invoice (TD01) or credit note (TD04).

Choices (docs/invoicing.md): amounts carry exactly 2 decimals and unit prices 2 to 6 (the XSD allows 2 to 8);
quantities 2 to 3; a credit note repeats the credited amounts as positive values, as TD04 expects; a 0% line is
Natura N2.2 ("non soggette - altri casi"), to be reviewed by the dealer's accountant for special regimes. A customer
outside Italy gets CodiceDestinatario XXXXXXX and its VAT number split from its prefix (IdPaese ES, IdCodice B1234...).
A customer under split payment (Partner.split_payment) gets EsigibilitaIVA "S" on its taxed summary rows and an
ImportoPagamento of the net (total - VAT): it pays the VAT to the State.
The file is
`IT<VAT>_<progressive>.xml`, the progressive being the document id in base 36, five characters.
"""

from __future__ import annotations

import string
import xml.etree.ElementTree as ET
from decimal import Decimal

from flask_babel import gettext as _

from core.db import db
from core.models import Company, Partner
from core.partners import vat_display, vat_id
from core.validation import ValidationError
from modules.invoicing.models import Invoice
from modules.invoicing.services import vat_summary

NAMESPACE = "http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2"
DIGITS36 = string.digits + string.ascii_uppercase
DOCUMENT_TYPES = {"invoice": "TD01", "credit_note": "TD04"}
ZERO_RATE_NATURE = "N2.2"
NO_CODE = "0000000"
FOREIGN_CODE = "XXXXXXX"


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


def _add(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _address(parent: ET.Element, party: Company | Partner, field: str) -> None:
    missing = [name for name in ("street", "postal_code", "city") if not getattr(party, name)]
    if missing:
        raise ValidationError({f"{field}.{missing[0]}": _("Needed on an e-invoice: fill in the address.")})
    sede = _add(parent, "Sede")
    _add(sede, "Indirizzo", party.street[:60])
    _add(sede, "CAP", party.postal_code if party.country == "IT" else "00000")
    _add(sede, "Comune", party.city[:60])
    if party.province and party.country == "IT":
        _add(sede, "Provincia", party.province.upper()[:2])
    _add(sede, "Nazione", party.country or "IT")


def _tax_ids(parent: ET.Element, party: Company | Partner, field: str) -> None:
    if not party.vat_number and not party.fiscal_code:
        raise ValidationError({f"{field}.vat_number": _("An e-invoice needs a VAT number or a fiscal code.")})
    if party.vat_number:
        country, number = vat_id(party.vat_number, party.country)
        ids = _add(parent, "IdFiscaleIVA")
        _add(ids, "IdPaese", country)
        _add(ids, "IdCodice", number)
    if party.fiscal_code:
        _add(parent, "CodiceFiscale", party.fiscal_code)


def build(invoice: Invoice) -> bytes:
    """The FatturaPA XML of a posted document."""
    if invoice.state != "posted":
        raise ValidationError({"state": _("Only a posted document has an e-invoice.")})
    company, customer = _company(), invoice.customer
    ET.register_namespace("p", NAMESPACE)
    root = ET.Element(f"{{{NAMESPACE}}}FatturaElettronica", {"versione": "FPR12"})

    header = _add(root, "FatturaElettronicaHeader")
    transmission = _add(header, "DatiTrasmissione")
    sender = _add(transmission, "IdTrasmittente")
    sender_country, sender_number = vat_id(company.vat_number, company.country)
    _add(sender, "IdPaese", sender_country)
    _add(sender, "IdCodice", sender_number)
    _add(transmission, "ProgressivoInvio", progressive(invoice.id))
    _add(transmission, "FormatoTrasmissione", "FPR12")
    foreign = (customer.country or "IT") != "IT"
    _add(transmission, "CodiceDestinatario", FOREIGN_CODE if foreign else customer.sdi_code or NO_CODE)
    if not foreign and not customer.sdi_code and customer.pec:
        _add(transmission, "PECDestinatario", customer.pec)

    seller = _add(header, "CedentePrestatore")
    seller_data = _add(seller, "DatiAnagrafici")
    _tax_ids(seller_data, company, "company")
    _add(_add(seller_data, "Anagrafica"), "Denominazione", company.name[:80])
    _add(seller_data, "RegimeFiscale", company.tax_regime or "RF01")
    _address(seller, company, "company")

    buyer = _add(header, "CessionarioCommittente")
    buyer_data = _add(buyer, "DatiAnagrafici")
    _tax_ids(buyer_data, customer, "customer")
    _add(_add(buyer_data, "Anagrafica"), "Denominazione", customer.name[:80])
    _address(buyer, customer, "customer")

    body = _add(root, "FatturaElettronicaBody")
    general = _add(body, "DatiGenerali")
    document = _add(general, "DatiGeneraliDocumento")
    _add(document, "TipoDocumento", DOCUMENT_TYPES[invoice.type])
    _add(document, "Divisa", "EUR")
    _add(document, "Data", invoice.issue_date.isoformat())
    _add(document, "Numero", invoice.number)
    _add(document, "ImportoTotaleDocumento", _money(invoice.total))
    if invoice.original is not None:
        linked = _add(general, "DatiFattureCollegate")
        _add(linked, "IdDocumento", invoice.original.number)
        _add(linked, "Data", invoice.original.issue_date.isoformat())

    goods = _add(body, "DatiBeniServizi")
    for number, line in enumerate(invoice.lines, start=1):
        detail = _add(goods, "DettaglioLinee")
        _add(detail, "NumeroLinea", str(number))
        _add(detail, "Descrizione", line.description[:1000])
        _add(detail, "Quantita", _decimals(line.quantity, 2, 3))
        _add(detail, "UnitaMisura", line.unit[:10])
        if line.period_start and line.period_end:
            _add(detail, "DataInizioPeriodo", line.period_start.isoformat())
            _add(detail, "DataFinePeriodo", line.period_end.isoformat())
        _add(detail, "PrezzoUnitario", _decimals(line.unit_price, 2, 6))
        _add(detail, "PrezzoTotale", _money(line.amount))
        _add(detail, "AliquotaIVA", _money(line.vat_rate))
        if not line.vat_rate:
            _add(detail, "Natura", ZERO_RATE_NATURE)
    # Split payment (art. 17-ter DPR 633/72): the public customer pays the VAT to the State, the dealer only the net.
    split = bool(customer.split_payment)
    for rate, base, vat in vat_summary(invoice.lines):
        summary = _add(goods, "DatiRiepilogo")
        _add(summary, "AliquotaIVA", _money(rate))
        if not rate:
            _add(summary, "Natura", ZERO_RATE_NATURE)
        _add(summary, "ImponibileImporto", _money(base))
        _add(summary, "Imposta", _money(vat))
        # SDI refuses "S" on a row without VAT (Natura): those stay "I".
        _add(summary, "EsigibilitaIVA", "S" if split and rate else "I")

    payment = _add(body, "DatiPagamento")
    _add(payment, "CondizioniPagamento", "TP02")
    payment_detail = _add(payment, "DettaglioPagamento")
    _add(payment_detail, "ModalitaPagamento", "MP05")
    if invoice.due_date:
        _add(payment_detail, "DataScadenzaPagamento", invoice.due_date.isoformat())
    due = invoice.total - invoice.vat_total if split else invoice.total
    _add(payment_detail, "ImportoPagamento", _money(due))
    if company.iban:
        _add(payment_detail, "IBAN", company.iban.replace(" ", ""))
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
