"""Our own checks of a FatturaPA beyond the XSD: the exchange system's (SdI) consistency rules on natures, summaries,
totals, payments, split payment, the recipient code and the stamp duty. `check(xml)` lists what is wrong, in words
that name the element; an empty list means the file passes."""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from flask_babel import gettext as _
from lxml import etree

from core.procurement import CIG_LENGTH, CUP_LENGTH, code_error
from core.vat_codes import GENERIC_NATURES, VALID_NATURES
from modules.invoicing.services import STAMP_DUTY, STAMP_THRESHOLD

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
FOREIGN_CODE = "XXXXXXX"
NO_CODE = "0000000"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _amount(element: etree._Element | None, path: str) -> Decimal:
    text = element.findtext(path) if element is not None else None
    try:
        return Decimal(text) if text else ZERO
    except InvalidOperation:
        return ZERO


def _key(rate: Decimal, nature: str | None) -> str:
    return f"{rate:.2f}" + (f" {nature}" if nature else "")


def _header_rules(root: etree._Element) -> list[str]:
    errors = []
    transmission = root.find("FatturaElettronicaHeader/DatiTrasmissione")
    buyer = root.find("FatturaElettronicaHeader/CessionarioCommittente")
    if transmission is None or buyer is None:
        return [_("DatiTrasmissione and CessionarioCommittente are required.")]
    version = root.get("versione")
    if transmission.findtext("FormatoTrasmissione") != version:
        errors.append(_("FormatoTrasmissione must equal the versione attribute (%(version)s).", version=version))
    code = transmission.findtext("CodiceDestinatario") or ""
    foreign = (buyer.findtext("Sede/Nazione") or "IT") != "IT"
    if version == "FPA12" and len(code) != 6:
        errors.append(_("CodiceDestinatario of an FPA12 must be the 6-character office code (CodiceUnivocoUfficio)."))
    if version == "FPR12" and len(code) != 7:
        errors.append(_("CodiceDestinatario of an FPR12 must have 7 characters."))
    if version == "FPR12" and foreign != (code == FOREIGN_CODE):
        errors.append(_("CodiceDestinatario is XXXXXXX exactly when the customer is outside Italy."))
    if transmission.find("PECDestinatario") is not None and code != NO_CODE:
        errors.append(_("PECDestinatario goes only with CodiceDestinatario 0000000."))
    if foreign:
        if buyer.findtext("Sede/CAP") != "00000":
            errors.append(_("CAP of a customer outside Italy must be 00000."))
        if buyer.find("Sede/Provincia") is not None:
            errors.append(_("Provincia must be left out for a customer outside Italy."))
    return errors


def _line_rules(goods: etree._Element) -> tuple[list[str], dict[str, Decimal]]:
    """The lines' own rules, and their amounts per summary key (rate and nature)."""
    errors = []
    bases: dict[str, Decimal] = defaultdict(Decimal)
    for index, line in enumerate(goods.findall("DettaglioLinee"), start=1):
        number = line.findtext("NumeroLinea")
        if number != str(index):
            errors.append(_("NumeroLinea %(number)s: lines are numbered 1, 2, 3… in order.", number=number))
        rate, nature = _amount(line, "AliquotaIVA"), line.findtext("Natura")
        errors.extend(_nature_rules(rate, nature, _("DettaglioLinee %(number)s", number=number)))
        quantity = _amount(line, "Quantita") if line.find("Quantita") is not None else Decimal(1)
        total = _amount(line, "PrezzoTotale")
        expected = (quantity * _amount(line, "PrezzoUnitario")).quantize(CENT, ROUND_HALF_UP)
        if abs(total - expected) > CENT:
            errors.append(
                _(
                    "PrezzoTotale of line %(number)s is not Quantita x PrezzoUnitario (%(expected)s).",
                    number=number,
                    expected=expected,
                )
            )
        bases[_key(rate, nature)] += total
    return errors, bases


def _nature_rules(rate: Decimal, nature: str | None, where: str) -> list[str]:
    if nature in GENERIC_NATURES:
        return [
            _(
                "%(where)s: Natura %(nature)s is refused since 2021; use a sub-code such as %(nature)s.1.",
                where=where,
                nature=nature,
            )
        ]
    if nature is not None and nature not in VALID_NATURES:
        return [_("%(where)s: Natura %(nature)s is not a known nature.", where=where, nature=nature)]
    if rate and nature:
        return [_("%(where)s: Natura is only for AliquotaIVA 0.00, not %(rate)s.", where=where, rate=f"{rate:.2f}")]
    if not rate and not nature:
        return [_("%(where)s: AliquotaIVA 0.00 needs its Natura.", where=where)]
    return []


def _summary_rules(goods: etree._Element, bases: dict[str, Decimal]) -> tuple[list[str], Decimal, Decimal, Decimal]:
    """The summaries' rules, and their taxable total, VAT total and VAT under split payment."""
    errors = []
    seen: set[str] = set()
    taxable = vat = split_vat = ZERO
    split_rows = taxed_rows = 0
    for row in goods.findall("DatiRiepilogo"):
        rate, nature = _amount(row, "AliquotaIVA"), row.findtext("Natura")
        key = _key(rate, nature)
        where = _("DatiRiepilogo %(key)s", key=key)
        errors.extend(_nature_rules(rate, nature, where))
        if key in seen:
            errors.append(_("%(where)s appears twice: one summary per rate and nature.", where=where))
        seen.add(key)
        base, tax = _amount(row, "ImponibileImporto"), _amount(row, "Imposta")
        if base != bases.get(key, ZERO):
            errors.append(
                _(
                    "%(where)s: ImponibileImporto %(base)s is not the sum of its lines (%(lines)s).",
                    where=where,
                    base=base,
                    lines=bases.get(key, ZERO),
                )
            )
        expected = (base * rate / 100).quantize(CENT, ROUND_HALF_UP)
        if abs(tax - expected) > CENT:
            errors.append(_("%(where)s: Imposta %(vat)s is not %(expected)s.", where=where, vat=tax, expected=expected))
        chargeability = row.findtext("EsigibilitaIVA")
        if chargeability == "S" and nature:
            errors.append(
                _("%(where)s: EsigibilitaIVA S (split payment) is refused on a row with Natura.", where=where)
            )
        if rate:
            taxed_rows += 1
            if chargeability == "S":
                split_rows += 1
                split_vat += tax
        taxable += base
        vat += tax
    for key in sorted(set(bases) - seen):
        errors.append(_("DatiRiepilogo %(key)s is missing for lines at that rate.", key=key))
    if split_rows and split_rows != taxed_rows:
        errors.append(_("EsigibilitaIVA: under split payment every taxed DatiRiepilogo is S."))
    return errors, taxable, vat, split_vat


def _payment_rules(body: etree._Element, amount_due: Decimal) -> list[str]:
    errors = []
    for payment in body.findall("DatiPagamento"):
        details = payment.findall("DettaglioPagamento")
        condition = payment.findtext("CondizioniPagamento")
        if condition == "TP01" and len(details) < 2:
            errors.append(_("CondizioniPagamento TP01 (instalments) needs more than one DettaglioPagamento."))
        if condition == "TP02" and len(details) != 1:
            errors.append(_("CondizioniPagamento TP02 (single payment) needs exactly one DettaglioPagamento."))
        paid = sum((_amount(detail, "ImportoPagamento") for detail in details), ZERO)
        if paid != amount_due:
            errors.append(
                _("ImportoPagamento adds up to %(paid)s, but the amount due is %(due)s.", paid=paid, due=amount_due)
            )
    return errors


def _stamp_rules(document: etree._Element, goods: etree._Element) -> list[str]:
    stamp = document.find("DatiBollo")
    if stamp is None:
        return []
    errors = []
    if stamp.findtext("BolloVirtuale") != "SI" or _amount(stamp, "ImportoBollo") != STAMP_DUTY:
        errors.append(_("DatiBollo: BolloVirtuale SI and ImportoBollo %(amount)s.", amount=STAMP_DUTY))
    untaxed = sum(
        (_amount(row, "ImponibileImporto") for row in goods.findall("DatiRiepilogo") if row.find("Natura") is not None),
        ZERO,
    )
    if untaxed <= STAMP_THRESHOLD:
        errors.append(
            _(
                "DatiBollo: stamp duty is due only on amounts without VAT above %(threshold)s.",
                threshold=STAMP_THRESHOLD,
            )
        )
    return errors


def _procurement_rules(general: etree._Element) -> list[str]:
    errors = []
    for reference in [*general.findall("DatiOrdineAcquisto"), *general.findall("DatiContratto")]:
        for element, length in (("CodiceCIG", CIG_LENGTH), ("CodiceCUP", CUP_LENGTH)):
            value = reference.findtext(element)
            error = code_error(value, length) if value is not None else None
            if error:
                errors.append(_("%(element)s: %(error)s", element=element, error=error))
    return errors


def check(xml: bytes) -> list[str]:
    """What is wrong with a FatturaPA by our rules (the XSD is checked apart): plain messages naming the element."""
    try:
        root = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as exc:
        return [_("Not well-formed XML: %(error)s", error=exc)]
    errors = _header_rules(root)
    for body in root.findall("FatturaElettronicaBody"):
        general, goods = body.find("DatiGenerali"), body.find("DatiBeniServizi")
        document = general.find("DatiGeneraliDocumento") if general is not None else None
        if document is None or goods is None:
            errors.append(_("DatiGeneraliDocumento and DatiBeniServizi are required."))
            continue
        line_errors, bases = _line_rules(goods)
        summary_errors, taxable, vat, split_vat = _summary_rules(goods, bases)
        errors += line_errors + summary_errors
        total = _amount(document, "ImportoTotaleDocumento")
        if total != taxable + vat:
            errors.append(
                _(
                    "ImportoTotaleDocumento %(total)s is not taxable + VAT of DatiRiepilogo (%(sum)s).",
                    total=total,
                    sum=taxable + vat,
                )
            )
        if document.findtext("TipoDocumento") == "TD04" and general.find("DatiFattureCollegate") is None:
            errors.append(_("A credit note (TD04) names the invoice it credits in DatiFattureCollegate."))
        errors += _payment_rules(body, taxable + vat - split_vat)
        errors += _stamp_rules(document, goods)
        errors += _procurement_rules(general)
    return errors
