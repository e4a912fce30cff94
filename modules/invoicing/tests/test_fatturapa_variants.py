"""Every kind of FatturaPA the dealer sends, made through drafting and posting, valid by the XSD 1.2.3 and our rules;
and what is refused before it leaves."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from lxml import etree

from core.db import db
from core.extension_points import DIRECT_DEBIT_MANDATES, DirectDebitMandate
from core.models import Partner, VatCode
from core.validation import ValidationError
from modules.invoicing import fatturapa, services
from modules.invoicing.fatturapa_rules import check
from modules.invoicing.models import Invoice
from modules.invoicing.tests.fatturapa_schema import assert_valid, validate
from modules.invoicing.tests.support import add_company, billing_customer

ISSUE = dt.date(2026, 2, 6)
CIG, CUP = "ZA12B3C4D5", "J31H17000123456"
MANDATE_IBAN = "IT02A0301503200000003517230"


@pytest.fixture
def company(db_session):
    return add_company()


def school(**fields) -> Partner:
    """A public body: a state school with its office code, under split payment, known by its fiscal code only."""
    values = {
        "vat_number": None,
        "fiscal_code": "97123450011",
        "sdi_code": "UF9XQ2",
        "public_administration": True,
        "split_payment": True,
        **fields,
    }
    return billing_customer("Istituto Comprensivo Leonardo da Vinci", **values)


def line(description: str, quantity: str, price: str, vat_code: str = "22") -> dict:
    return {
        "description": description,
        "quantity": Decimal(quantity),
        "unit_price": Decimal(price),
        "vat_code": vat_code,
    }


def posted(customer: Partner, *lines: dict, **references) -> Invoice:
    draft = services.create_manual_draft(
        customer.id, list(lines) or [line("Canone gennaio", "1", "100.00")], **references
    )
    return services.post(draft, ISSUE)


def xml_of(invoice: Invoice) -> etree._Element:
    return assert_valid(fatturapa.build(invoice))


def summaries(document: etree._Element, *tags: str) -> list[list[str | None]]:
    rows = document.iterfind("FatturaElettronicaBody/DatiBeniServizi/DatiRiepilogo")
    return [[row.findtext(tag) for tag in tags] for row in rows]


def payments(document: etree._Element, *tags: str) -> list[list[str | None]]:
    details = document.iterfind("FatturaElettronicaBody/DatiPagamento/DettaglioPagamento")
    return [[detail.findtext(tag) for tag in tags] for detail in details]


def code(document: etree._Element) -> str | None:
    return document.findtext("FatturaElettronicaHeader/DatiTrasmissione/CodiceDestinatario")


def general(document: etree._Element, path: str) -> str | None:
    return document.findtext(f"FatturaElettronicaBody/DatiGenerali/{path}")


def test_invoice_at_22_percent_to_a_business_is_an_fpr12_paid_by_bank_transfer(company):
    invoice = posted(billing_customer(), line("Canone gennaio", "1", "100.00"), line("Copie eccedenti", "850", "0.012"))

    document = xml_of(invoice)

    assert document.get("versione") == "FPR12" and code(document) == "ABC1234"
    assert general(document, "DatiGeneraliDocumento/TipoDocumento") == "TD01"
    assert general(document, "DatiGeneraliDocumento/ImportoTotaleDocumento") == "134.44"
    assert summaries(document, "AliquotaIVA", "Natura", "ImponibileImporto", "Imposta", "EsigibilitaIVA") == [
        ["22.00", None, "110.20", "24.24", "I"]
    ]
    assert document.findtext("FatturaElettronicaBody/DatiPagamento/CondizioniPagamento") == "TP02"
    assert payments(document, "ModalitaPagamento", "DataScadenzaPagamento", "ImportoPagamento", "IBAN") == [
        ["MP05", "2026-03-08", "134.44", company.iban]
    ]
    assert document.find("FatturaElettronicaBody/DatiGenerali/DatiContratto") is None


def test_credit_note_is_td04_naming_the_invoice_it_credits(company):
    invoice = posted(billing_customer())
    note = services.post(services.create_credit_note(invoice), ISSUE)

    document = xml_of(note)

    assert general(document, "DatiGeneraliDocumento/TipoDocumento") == "TD04"
    assert general(document, "DatiGeneraliDocumento/ImportoTotaleDocumento") == "122.00"
    assert (general(document, "DatiFattureCollegate/IdDocumento"), general(document, "DatiFattureCollegate/Data")) == (
        invoice.number,
        "2026-02-06",
    )


def test_public_body_with_cig_and_cup_gets_an_fpa12_with_its_contract(company):
    invoice = posted(
        school(split_payment=False),
        order_kind="contract",
        order_reference="Rep. 45/2026",
        order_date=dt.date(2025, 12, 15),
        cig=CIG,
        cup=CUP,
    )

    document = xml_of(invoice)

    assert document.get("versione") == "FPA12"
    assert document.findtext("FatturaElettronicaHeader/DatiTrasmissione/FormatoTrasmissione") == "FPA12"
    assert code(document) == "UF9XQ2"
    contract = document.find("FatturaElettronicaBody/DatiGenerali/DatiContratto")
    assert [contract.findtext(tag) for tag in ("IdDocumento", "Data", "CodiceCUP", "CodiceCIG")] == [
        "Rep. 45/2026",
        "2025-12-15",
        CUP,
        CIG,
    ]
    assert document.find("FatturaElettronicaBody/DatiGenerali/DatiOrdineAcquisto") is None
    buyer = document.find("FatturaElettronicaHeader/CessionarioCommittente/DatiAnagrafici")
    assert buyer.find("IdFiscaleIVA") is None and buyer.findtext("CodiceFiscale") == "97123450011"


def test_public_body_with_a_purchase_order_gets_dati_ordine_acquisto(company):
    invoice = posted(
        school(split_payment=False),
        order_kind="order",
        order_reference="ODA-2026-118",
        order_date=dt.date(2026, 1, 20),
        cig=CIG,
    )

    document = xml_of(invoice)

    order = document.find("FatturaElettronicaBody/DatiGenerali/DatiOrdineAcquisto")
    assert [order.findtext(tag) for tag in ("IdDocumento", "Data", "CodiceCUP", "CodiceCIG")] == [
        "ODA-2026-118",
        "2026-01-20",
        None,
        CIG,
    ]
    assert document.find("FatturaElettronicaBody/DatiGenerali/DatiContratto") is None


def test_public_body_without_a_six_character_office_code_is_refused_naming_the_field(company):
    invoice = posted(school(sdi_code="ABC1234"))

    with pytest.raises(ValidationError) as refused:
        fatturapa.build(invoice)

    assert list(refused.value.errors) == ["customer.sdi_code"]


def test_split_payment_rows_say_s_and_the_customer_pays_the_net(company):
    invoice = posted(school(), line("Canone gennaio", "1", "100.00"), line("Toner", "1", "40.00", vat_code="10"))

    document = xml_of(invoice)

    assert summaries(document, "AliquotaIVA", "Imposta", "EsigibilitaIVA") == [
        ["10.00", "4.00", "S"],
        ["22.00", "22.00", "S"],
    ]
    assert general(document, "DatiGeneraliDocumento/ImportoTotaleDocumento") == "166.00"
    assert payments(document, "ImportoPagamento") == [["140.00"]]


def test_foreign_eu_business_gets_n2_1_with_the_foreign_codes(company):
    customer = billing_customer(
        "Imprenta Sol SL",
        vat_number="ESB12345674",
        street="Calle Mayor 5",
        postal_code="28013",
        city="Madrid",
        province=None,
        country="ES",
        sdi_code=None,
    )

    document = xml_of(posted(customer, line("Assistenza tecnica", "1", "50.00", vat_code="N2.1")))

    reference = db.session.get(VatCode, "N2.1").legal_reference
    assert reference

    header = document.find("FatturaElettronicaHeader")
    assert code(document) == "XXXXXXX"
    tax_id = header.find("CessionarioCommittente/DatiAnagrafici/IdFiscaleIVA")
    assert (tax_id.findtext("IdPaese"), tax_id.findtext("IdCodice")) == ("ES", "B12345674")
    sede = header.find("CessionarioCommittente/Sede")
    assert [sede.findtext(tag) for tag in ("CAP", "Provincia", "Nazione")] == ["00000", None, "ES"]
    assert summaries(document, "AliquotaIVA", "Natura", "Imposta", "EsigibilitaIVA", "RiferimentoNormativo") == [
        ["0.00", "N2.1", "0.00", "I", reference]
    ]
    assert document.findtext("FatturaElettronicaBody/DatiBeniServizi/DettaglioLinee/Natura") == "N2.1"


def test_exempt_amount_above_the_threshold_carries_the_stamp_duty(company):
    invoice = posted(billing_customer(), line("Noleggio esente", "1", "100.00", vat_code="N4"))

    document = xml_of(invoice)

    stamp = document.find("FatturaElettronicaBody/DatiGenerali/DatiGeneraliDocumento/DatiBollo")
    assert (stamp.findtext("BolloVirtuale"), stamp.findtext("ImportoBollo")) == ("SI", "2.00")
    assert summaries(document, "Natura", "ImponibileImporto") == [["N1", "2.00"], ["N4", "100.00"]]
    assert general(document, "DatiGeneraliDocumento/ImportoTotaleDocumento") == "102.00"
    assert payments(document, "ImportoPagamento") == [["102.00"]]


def test_exempt_line_states_its_legal_reference_and_no_stamp_below_the_threshold(company):
    document = xml_of(posted(billing_customer(), line("Servizio esente", "1", "50.00", vat_code="N4")))

    reference = db.session.get(VatCode, "N4").legal_reference
    assert reference
    assert summaries(document, "AliquotaIVA", "Natura", "RiferimentoNormativo") == [["0.00", "N4", reference[:100]]]
    assert document.find("FatturaElettronicaBody/DatiGenerali/DatiGeneraliDocumento/DatiBollo") is None


def test_three_instalments_are_three_payment_details_under_tp01(company):
    customer = billing_customer(payment_instalments=3, payment_terms_days=30)

    document = xml_of(posted(customer))

    assert document.findtext("FatturaElettronicaBody/DatiPagamento/CondizioniPagamento") == "TP01"
    assert payments(document, "DataScadenzaPagamento", "ImportoPagamento") == [
        ["2026-03-08", "40.66"],
        ["2026-04-07", "40.66"],
        ["2026-05-07", "40.68"],
    ]


class OneMandate:
    """A mandate keeper that knows one customer's mandate (as accounting would)."""

    def __init__(self, customer_id: int, mandate: DirectDebitMandate) -> None:
        self.customer_id, self.mandate = customer_id, mandate

    def direct_debit_mandate(self, customer_id: int) -> DirectDebitMandate | None:
        return self.mandate if customer_id == self.customer_id else None


@pytest.fixture
def debit_customer(app, company):
    customer = billing_customer(payment_method="sepa_direct_debit")
    keeper = OneMandate(customer.id, DirectDebitMandate("RUM-2026-0042", MANDATE_IBAN, dt.date(2025, 12, 1)))
    registry = app.extensions["copydesk"].extensions
    registry.register(DIRECT_DEBIT_MANDATES, keeper)
    yield customer
    registry._items[DIRECT_DEBIT_MANDATES].remove(keeper)  # the registry has no unregister: the app is shared


def test_direct_debit_states_the_customers_mandate_and_iban(debit_customer):
    document = xml_of(posted(debit_customer))

    assert payments(document, "ModalitaPagamento", "ImportoPagamento", "IBAN", "CodicePagamento") == [
        ["MP19", "122.00", MANDATE_IBAN, "RUM-2026-0042"]
    ]


def test_direct_debit_without_a_mandate_names_no_iban(company):
    document = xml_of(posted(billing_customer(payment_method="sepa_direct_debit")))

    assert payments(document, "ModalitaPagamento", "IBAN", "CodicePagamento") == [["MP19", None, None]]


def test_long_names_and_typographic_characters_fit_the_schema(company):
    name = "Società Cooperativa \u201cCopie & Stampe\u201d \u2014 Servizi per l\u2019ufficio e la scuola " * 2
    customer = billing_customer(name.strip())

    document = xml_of(posted(customer, line("Canone \u201call inclusive\u201d \u2013 50 \u20ac al mese", "1", "50.00")))

    denomination = document.findtext(
        "FatturaElettronicaHeader/CessionarioCommittente/DatiAnagrafici/Anagrafica/Denominazione"
    )
    assert len(denomination) <= 80 and denomination.startswith('Società Cooperativa "Copie & Stampe" - ')
    assert document.findtext("FatturaElettronicaBody/DatiBeniServizi/DettaglioLinee/Descrizione") == (
        'Canone "all inclusive" - 50 EUR al mese'
    )


def test_a_line_with_a_generic_nature_is_refused_naming_its_vat_code(company):
    invoice = posted(billing_customer(), line("Canone", "1", "10.00"), line("Servizio", "1", "20.00", vat_code="N2.2"))
    invoice.lines[1].vat_nature = "N2"  # a line made before the generic natures were refused

    with pytest.raises(ValidationError) as refused:
        fatturapa.build(invoice)

    assert list(refused.value.errors) == ["lines.1.vat_code"]
    assert "N2" in refused.value.errors["lines.1.vat_code"]


def test_a_zero_rate_line_without_nature_is_refused_naming_its_vat_code(company):
    invoice = posted(billing_customer(), line("Servizio", "1", "20.00", vat_code="N2.2"))
    invoice.lines[0].vat_nature = None

    with pytest.raises(ValidationError) as refused:
        fatturapa.build(invoice)

    assert list(refused.value.errors) == ["lines.0.vat_code"]


def _tampered(xml: bytes, change) -> bytes:
    document = etree.fromstring(xml)
    change(document.find("FatturaElettronicaBody/DatiBeniServizi/DatiRiepilogo"))
    return etree.tostring(document, xml_declaration=True, encoding="utf-8")


def test_rules_catch_a_summary_total_that_is_not_the_sum_of_its_lines(company):
    xml = fatturapa.build(posted(billing_customer()))

    def raise_base(row):
        row.find("ImponibileImporto").text = "110.00"

    tampered = _tampered(xml, raise_base)

    validate(tampered)  # still valid by the XSD: only our rules see it
    errors = check(tampered)
    assert any("ImponibileImporto" in error for error in errors)
    assert any("ImportoTotaleDocumento" in error for error in errors)


def test_rules_catch_a_nature_on_a_22_percent_row(company):
    xml = fatturapa.build(posted(billing_customer()))

    def add_nature(row):
        nature = etree.Element("Natura")
        nature.text = "N2.2"
        row.find("AliquotaIVA").addnext(nature)

    tampered = _tampered(xml, add_nature)

    validate(tampered)
    assert [error for error in check(tampered) if "Natura" in error and "22.00" in error]


def test_rules_pass_what_build_makes_and_build_refuses_what_they_catch(company):
    invoice = posted(billing_customer())
    invoice.total = Decimal("999.00")  # a total that is not the lines': never exported

    with pytest.raises(ValidationError) as refused:
        fatturapa.build(invoice)

    assert "ImportoTotaleDocumento" in refused.value.errors["fatturapa"]
