"""Stamp duty (bollo virtuale): exempt amounts above 77.47 EUR owe 2.00 EUR, charged to the customer by setting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from flask_babel import force_locale
from flask_babel import gettext as _

from core import vat_codes
from core.db import db
from core.settings import set_setting
from modules.invoicing import fatturapa, fatturapa_rules, services
from modules.invoicing.models import Invoice
from modules.invoicing.tests.fatturapa_schema import validate
from modules.invoicing.tests.support import (
    add_company,
    billing_customer,
    manual_invoice,
    manual_line,
    post_invoice,
)
from tests.api_support import bearer


@pytest.fixture
def staff(db_session):
    add_company()
    return bearer("dealer_admin")


@pytest.fixture
def customer(db_session):
    return billing_customer()


def posted(client, staff, customer, lines) -> dict:
    return post_invoice(client, staff, manual_invoice(client, staff, customer.id, lines)["id"])


def stamp_lines(invoice: dict) -> list[tuple[str, str, str | None]]:
    return [(ln["amount"], ln["vat_code"], ln["vat_nature"]) for ln in invoice["lines"] if ln["kind"] == "stamp_duty"]


def test_exempt_amounts_of_77_47_owe_no_stamp_duty(client, staff, customer):
    invoice = posted(client, staff, customer, [manual_line("77.47", "N4")])

    assert invoice["stamp_duty"] == "0.00" and stamp_lines(invoice) == []
    assert invoice["total"] == "77.47"


def test_exempt_amounts_of_77_48_owe_2_00_charged_as_an_excluded_line(client, staff, customer):
    invoice = posted(client, staff, customer, [manual_line("50.00", "N4"), manual_line("27.48", "N2.1")])

    assert invoice["stamp_duty"] == "2.00"
    assert stamp_lines(invoice) == [("2.00", "N1", "N1")]
    assert (invoice["net_total"], invoice["vat_total"], invoice["total"]) == ("79.48", "0.00", "79.48")
    assert invoice["payment_schedule"][-1]["amount"] == "79.48"


def test_the_stamp_line_is_described_in_the_customers_language(client, staff, db_session):
    spanish = billing_customer("Oficina Madrid", language="es")

    invoice = posted(client, staff, spanish, [manual_line("100.00", "N4")])

    with force_locale("es"):
        expected = _("Stamp duty")
    assert [ln["description"] for ln in invoice["lines"] if ln["kind"] == "stamp_duty"] == [expected]


def test_with_the_setting_off_the_stamp_duty_is_stated_but_not_charged(client, staff, customer):
    set_setting("invoicing.stamp_duty_charged", False)
    db.session.commit()

    invoice = posted(client, staff, customer, [manual_line("77.48", "N4")])

    assert invoice["stamp_duty"] == "2.00" and stamp_lines(invoice) == []
    assert invoice["total"] == "77.48"


def test_taxable_amounts_do_not_count_toward_the_threshold(client, staff, customer):
    invoice = posted(client, staff, customer, [manual_line("500.00", "22"), manual_line("77.00", "N4")])

    assert invoice["stamp_duty"] == "0.00" and stamp_lines(invoice) == []
    assert invoice["total"] == "687.00"


def test_codes_outside_the_stamp_duty_do_not_count(client, staff, customer):
    invoice = posted(client, staff, customer, [manual_line("900.00", "N3.2"), manual_line("70.00", "N4")])

    assert invoice["stamp_duty"] == "0.00" and stamp_lines(invoice) == []


def test_the_stamp_is_decided_when_posting_and_added_once(client, staff, customer):
    draft = manual_invoice(client, staff, customer.id, [manual_line("100.00", "N4")])
    assert draft["stamp_duty"] == "0.00" and stamp_lines(draft) == []

    invoice = post_invoice(client, staff, draft["id"])

    assert stamp_lines(invoice) == [("2.00", "N1", "N1")]
    assert invoice["lines"][-1]["kind"] == "stamp_duty" and invoice["number"] == "1/2026"
    stored = db.session.get(Invoice, draft["id"])
    assert [line.position for line in stored.lines] == [1, 2]


def test_a_credit_note_of_a_stamped_invoice_credits_its_stamp_line_and_adds_none(client, staff, customer):
    invoice = posted(client, staff, customer, [manual_line("100.00", "N4")])

    response = client.post(f"/api/v1/invoices/{invoice['id']}/credit-notes", json={}, headers=staff)
    assert response.status_code == 201, response.get_data(as_text=True)
    note = post_invoice(client, staff, response.get_json()["id"])

    assert note["stamp_duty"] == "2.00"
    assert stamp_lines(note) == [("2.00", "N1", "N1")]
    assert note["total"] == invoice["total"] == "102.00"


def test_credit_notes_in_two_parts_credit_what_was_billed_and_add_no_stamp_line(client, staff, customer):
    invoice = posted(client, staff, customer, [manual_line("100.00", "N4"), manual_line("90.00", "N4")])
    first, second, stamp = (line["id"] for line in invoice["lines"])

    notes = []
    for line_ids in ([first], [second, stamp]):
        response = client.post(
            f"/api/v1/invoices/{invoice['id']}/credit-notes", json={"line_ids": line_ids}, headers=staff
        )
        assert response.status_code == 201, response.get_data(as_text=True)
        notes.append(post_invoice(client, staff, response.get_json()["id"]))

    assert invoice["total"] == "192.00"
    assert [note["total"] for note in notes] == ["100.00", "92.00"]
    # Each part states its own DatiBollo (its exempt amount is above 77.47); the stamp line is credited only once.
    assert [note["stamp_duty"] for note in notes] == ["2.00", "2.00"]
    assert [len(stamp_lines(note)) for note in notes] == [0, 1]
    for note in notes:
        xml = fatturapa.build(db.session.get(Invoice, note["id"]))
        validate(xml)
        assert fatturapa_rules.check(xml) == []
        assert b"<ImportoBollo>2.00</ImportoBollo>" in xml


class Line:
    def __init__(self, amount: str, code: str) -> None:
        self.amount, self.vat_code, self.kind = Decimal(amount), code, "fee"


def test_stamp_duty_due_compares_the_sum_of_stamp_duty_codes(app, db_session):
    vat_codes.ensure_defaults()
    assert services.stamp_duty_due([Line("40.00", "N4"), Line("37.48", "N2.2")])
    assert not services.stamp_duty_due([Line("40.00", "N4"), Line("37.47", "N2.2"), Line("1000.00", "22")])
