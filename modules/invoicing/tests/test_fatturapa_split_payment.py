"""A customer under split payment (a public body): the e-invoice says so and asks only for the net."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modules.invoicing.tests.fatturapa_schema import assert_valid
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
    return get_invoice(client, staff, invoice_id), assert_valid(response.data).find("FatturaElettronicaBody")


def test_split_payment_customer_e_invoice_has_vat_chargeability_s_and_asks_for_the_net(client, staff):
    customer = billing_customer("Comune di Moncalieri", split_payment=True)

    invoice, body = e_invoice(client, staff, customer)

    net, vat, total = (Decimal(str(invoice[key])) for key in ("net_total", "vat_total", "total"))
    assert vat > 0 and total == net + vat
    assert [row.findtext("EsigibilitaIVA") for row in body.iterfind("DatiBeniServizi/DatiRiepilogo")] == ["S"]
    assert Decimal(body.findtext("DatiPagamento/DettaglioPagamento/ImportoPagamento")) == net


def test_ordinary_customer_e_invoice_has_immediate_vat_and_asks_for_the_total(client, staff):
    customer = billing_customer()

    invoice, body = e_invoice(client, staff, customer)

    assert [row.findtext("EsigibilitaIVA") for row in body.iterfind("DatiBeniServizi/DatiRiepilogo")] == ["I"]
    assert Decimal(body.findtext("DatiPagamento/DettaglioPagamento/ImportoPagamento")) == Decimal(str(invoice["total"]))
