"""A customer under split payment (a public body): the e-invoice says so and asks only for the net."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from a38 import fattura
from a38.validation import Validation

from modules.invoicing.tests.support import add_company, billing_customer, get_invoice, start_run, usage_line
from tests.api_support import bearer


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


def e_invoice(client, staff, customer):
    usage_line(customer.id, "pa:bw", 1000, "0.02")
    invoice_id = start_run(client, staff, "2026-01-05")["invoice_ids"][0]
    assert client.post(f"/api/v1/invoices/{invoice_id}/post", headers=staff).status_code == 200
    response = client.get(f"/api/v1/invoices/{invoice_id}/fatturapa", headers=staff)
    assert response.status_code == 200, response.get_data(as_text=True)
    document = fattura.auto_from_etree(ET.fromstring(response.data))
    validation = Validation()
    document.validate(validation)
    assert validation.errors == []
    return get_invoice(client, staff, invoice_id), document.fattura_elettronica_body[0]


def test_split_payment_customer_e_invoice_has_vat_chargeability_s_and_asks_for_the_net(client, staff):
    customer = billing_customer("Comune di Moncalieri", split_payment=True)

    invoice, body = e_invoice(client, staff, customer)

    net, vat, total = (Decimal(str(invoice[key])) for key in ("net_total", "vat_total", "total"))
    assert vat > 0 and total == net + vat
    assert [row.esigibilita_iva for row in body.dati_beni_servizi.dati_riepilogo] == ["S"]
    assert Decimal(body.dati_pagamento[0].dettaglio_pagamento[0].importo_pagamento) == net


def test_ordinary_customer_e_invoice_has_immediate_vat_and_asks_for_the_total(client, staff):
    customer = billing_customer()

    invoice, body = e_invoice(client, staff, customer)

    assert [row.esigibilita_iva for row in body.dati_beni_servizi.dati_riepilogo] == ["I"]
    assert Decimal(body.dati_pagamento[0].dettaglio_pagamento[0].importo_pagamento) == Decimal(str(invoice["total"]))
