"""VAT: the sales register equals the documents' VAT summaries to the cent, the purchases register lists the bills,
the settlement (monthly, quarterly with interest, credit carried) posts its entry into Erario c/IVA."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal

import lxml.html
import pytest
import sqlalchemy as sa
from flask_babel import force_locale
from pypdf import PdfReader

from core.extension_points import BillableLine
from core.validation import ValidationError
from modules.accounting import bills, exports, settings, vat
from modules.accounting.models import Entry, VatSettlement
from modules.accounting.tests.support import (
    account_balance,
    make_credit_note,
    make_customer,
    make_posted_invoice,
    make_supplier,
)
from modules.invoicing import services
from modules.invoicing.models import Invoice

D = Decimal
NOVEMBER = dt.date(2026, 11, 1)


def pdf_text(content: bytes) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages).split())


@pytest.fixture
def november(db_session):
    """November's documents: two invoices and a credit note of a firm, one invoice of a public body (split
    payment); an October and a December invoice around them, and a draft."""
    firm = make_customer("Studio Legale Bianchi")
    body = make_customer("Comune di Moncalieri", vat_number="01577030016", split_payment=True)
    october = make_posted_invoice(firm, [("fee", "80.00", "22")], dt.date(2026, 10, 30))
    first = make_posted_invoice(
        firm, [("fee", "100.00", "22"), ("consumable", "33.33", "22"), ("other", "10.00", "10")], dt.date(2026, 11, 3)
    )
    second = make_posted_invoice(firm, [("overage", "0.07", "22"), ("fee", "200.00", "22")], dt.date(2026, 11, 10))
    public = make_posted_invoice(body, [("fee", "500.00", "22")], dt.date(2026, 11, 12))
    note = make_credit_note(first, [first.lines[1].id], dt.date(2026, 11, 15))
    december = make_posted_invoice(firm, [("fee", "90.00", "22")], dt.date(2026, 12, 1))
    return {
        "firm": firm,
        "body": body,
        "october": october,
        "first": first,
        "second": second,
        "public": public,
        "note": note,
        "december": december,
    }


def summary_sum(documents: list[Invoice]) -> dict[Decimal, tuple[Decimal, Decimal]]:
    """What the rules say the register totals are: the sum of the documents' VAT summaries, credit notes negative."""
    totals: dict[Decimal, list[Decimal]] = defaultdict(lambda: [D(0), D(0)])
    for document in documents:
        sign = -1 if document.type == "credit_note" else 1
        for rate, taxable, tax in services.vat_summary(document.lines):
            totals[rate][0] += sign * taxable
            totals[rate][1] += sign * tax
    return {rate: (taxable, tax) for rate, (taxable, tax) in totals.items()}


def test_the_sales_register_equals_the_sum_of_the_months_vat_summaries(november):
    register = vat.sales_register(NOVEMBER)

    documents = [row.invoice for row in register.rows]
    assert [document.number for document in documents] == ["2/2026", "3/2026", "4/2026", "1/2026"]
    assert [document.type for document in documents][-1] == "credit_note"
    assert {line.rate: (line.taxable, line.vat) for line in register.totals} == summary_sum(documents)
    assert {line.rate: (line.taxable, line.vat) for line in register.totals} == {
        D("10.00"): (D("10.00"), D("1.00")),
        # 133.33 + 200.07 + 500 - 33.33 (the credit note): VAT 29.33 + 44.02 + 110.00 - 7.33
        D("22.00"): (D("800.07"), D("176.02")),
    }
    assert register.vat == D("177.02")


def test_a_credit_note_is_negative_and_a_split_payment_document_is_flagged(november):
    rows = {row.invoice.number: row for row in vat.sales_register(NOVEMBER).rows}

    note = next(row for row in rows.values() if row.invoice.type == "credit_note")
    assert [(line.rate, line.taxable, line.vat) for line in note.rates] == [(D("22.00"), D("-33.33"), D("-7.33"))]
    assert note.total == D("-40.66")
    assert [row.split_payment for row in rows.values()] == [False, False, True, False]
    assert vat.sales_register(NOVEMBER).split_payment_vat == D("110.00")


def test_documents_of_other_months_and_drafts_are_not_on_the_register(november, db_session):
    services.create_draft(
        november["firm"].id,
        [BillableLine("accounting_tests", "draft-1", "Bozza", D(1), D("50"), D("22"), kind="fee")],
    )
    db_session.commit()

    ids = [row.invoice.id for row in vat.sales_register(NOVEMBER).rows]
    assert november["october"].id not in ids and november["december"].id not in ids
    assert len(ids) == 4
    assert [row.invoice.id for row in vat.sales_register(dt.date(2026, 12, 1)).rows] == [november["december"].id]


def register_bill(supplier, number: str, registered_on: dt.date, lines: list[dict]):
    return bills.create_bill(supplier.id, number, registered_on, lines, registered_on=registered_on)


def test_the_purchases_register_lists_the_months_bills_in_protocol_order(db_session):
    supplier = make_supplier()
    register_bill(
        supplier,
        "FT 9",
        dt.date(2026, 10, 28),
        [{"description": "Carta", "account": "4101", "net": "10", "vat_rate": "22"}],
    )
    register_bill(
        supplier,
        "FT 10",
        dt.date(2026, 11, 4),
        [
            {"description": "Toner", "account": "4101", "net": "100", "vat_rate": "22"},
            {"description": "Pranzo", "account": "4201", "net": "40", "vat_rate": "10", "deductible": False},
        ],
    )
    register_bill(
        supplier,
        "FT 11",
        dt.date(2026, 11, 20),
        [{"description": "Ricambi", "account": "4102", "net": "50", "vat_rate": "22"}],
    )
    db_session.commit()

    register = vat.purchases_register(NOVEMBER)

    assert [(row.bill.protocol, row.bill.number) for row in register.rows] == [(2, "FT 10"), (3, "FT 11")]
    first = register.rows[0]
    assert [(line.rate, line.taxable, line.vat, line.deductible) for line in first.rates] == [
        (D("10.00"), D("40.00"), D("4.00"), D("0.00")),
        (D("22.00"), D("100.00"), D("22.00"), D("22.00")),
    ]
    assert [(line.rate, line.taxable, line.vat, line.deductible) for line in register.totals] == [
        (D("10.00"), D("40.00"), D("4.00"), D("0.00")),
        (D("22.00"), D("150.00"), D("33.00"), D("33.00")),
    ]
    assert register.deductible == D("33.00")


def test_a_monthly_settlement_leaves_out_split_payment_and_closes_the_vat_accounts(november, db_session):
    supplier = make_supplier()
    register_bill(
        supplier,
        "FT 10",
        dt.date(2026, 11, 4),
        [{"description": "Toner", "account": "4101", "net": "100", "vat_rate": "22"}],
    )
    # October settled first: the VAT of its invoice is due then, November starts from zero.
    vat.settle(dt.date(2026, 10, 15))
    db_session.commit()

    settlement = vat.settle(dt.date(2026, 11, 30))
    db_session.commit()

    assert (settlement.period_start, settlement.period_end) == (dt.date(2026, 11, 1), dt.date(2026, 11, 30))
    assert settlement.sales_vat == D("67.02")  # 177.02 on the register, less 110.00 split payment
    assert (settlement.purchases_vat, settlement.previous_credit, settlement.interest) == (D("22.00"), D("0"), D("0"))
    assert settlement.balance == D("45.02")
    entry = db_session.get(Entry, settlement.entry_id)
    assert (entry.journal.code, entry.date, entry.source) == ("VAR", dt.date(2026, 11, 30), "settlement")
    assert {(line.account.code, line.debit, line.credit) for line in entry.lines} == {
        ("2601", D("67.02"), D("0.00")),
        ("1601", D("0.00"), D("22.00")),
        ("2605", D("0.00"), D("45.02")),
    }
    # VAT payable and receivable are closed up to November; December's invoice is still open on VAT payable.
    assert account_balance("1601") == D("0.00")
    assert account_balance("2601") == D("-19.80")
    assert account_balance("2605") == D("-62.62")  # 17.60 of October and 45.02 of November are due


def test_a_credit_is_carried_to_the_next_settlement(db_session):
    customer = make_customer()
    supplier = make_supplier()
    register_bill(
        supplier,
        "FT 1",
        dt.date(2026, 9, 10),
        [{"description": "Copiatrice", "account": "4102", "net": "1000", "vat_rate": "22"}],
    )
    make_posted_invoice(customer, [("fee", "500.00", "22")], dt.date(2026, 9, 20))
    make_posted_invoice(customer, [("fee", "1000.00", "22")], dt.date(2026, 10, 5))

    september = vat.settle(dt.date(2026, 9, 1))
    october = vat.settle(dt.date(2026, 10, 1))
    db_session.commit()

    assert september.balance == D("-110.00")  # 110 on sales, 220 deducted
    assert (october.sales_vat, october.previous_credit, october.balance) == (D("220.00"), D("110.00"), D("110.00"))
    assert account_balance("2605") == D("-110.00")  # what is due after both


def test_a_quarterly_balance_due_bears_one_percent_interest(db_session):
    settings.set_vat_periodicity("quarterly")
    customer = make_customer()
    make_posted_invoice(customer, [("fee", "1000.00", "22")], dt.date(2026, 7, 10))
    make_posted_invoice(customer, [("fee", "555.55", "22")], dt.date(2026, 9, 30))
    db_session.commit()

    settlement = vat.settle(dt.date(2026, 8, 15))
    db_session.commit()

    assert (settlement.period_start, settlement.period_end) == (dt.date(2026, 7, 1), dt.date(2026, 9, 30))
    assert settlement.sales_vat == D("342.22")  # 220.00 + 122.22
    assert settlement.interest == D("3.42")
    assert settlement.balance == D("345.64")
    entry = db_session.get(Entry, settlement.entry_id)
    assert {(line.account.code, line.debit, line.credit) for line in entry.lines} == {
        ("2601", D("342.22"), D("0.00")),
        ("4901", D("3.42"), D("0.00")),
        ("2605", D("0.00"), D("345.64")),
    }


@pytest.mark.parametrize(
    ("settled_before", "day"),
    [
        ([], dt.date(2026, 12, 2)),  # the period is not over
        ([dt.date(2026, 11, 1)], dt.date(2026, 11, 1)),  # settled already
        ([dt.date(2026, 11, 1)], dt.date(2026, 10, 1)),  # a later period is settled
        ([dt.date(2026, 9, 1)], dt.date(2026, 11, 1)),  # October is missing
    ],
)
def test_a_settlement_out_of_turn_is_refused_with_nothing_written(db_session, settled_before, day):
    for settled in settled_before:
        vat.settle(settled)
    db_session.commit()
    count = db_session.scalar(sa.select(sa.func.count()).select_from(VatSettlement))

    with pytest.raises(ValidationError) as refused:
        vat.settle(day)
    db_session.rollback()

    assert "period" in refused.value.errors
    assert db_session.scalar(sa.select(sa.func.count()).select_from(VatSettlement)) == count


def test_a_settlement_with_nothing_to_settle_posts_no_entry(db_session):
    settlement = vat.settle(dt.date(2026, 6, 1))

    assert settlement.balance == D("0") and settlement.entry_id is None


def test_the_sales_register_pdf_in_italian_lists_documents_and_rates(november):
    with force_locale("it"):
        text = pdf_text(exports.register_pdf(vat.sales_register(NOVEMBER)))

    assert "Registro IVA vendite" in text or "Sales VAT register" in text
    for number in ("2/2026", "3/2026", "4/2026"):
        assert number in text
    assert "Comune di Moncalieri" in text
    assert "800,07" in text and "176,02" in text and "-40,66" in text


def test_the_registers_csv_has_one_row_per_document_and_rate_and_the_totals(november):
    with force_locale("en"):
        text = exports.register_csv(vat.sales_register(NOVEMBER))

    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["Number", "Date", "Document"]
    first = [row for row in rows if row[0] == "2/2026"]
    assert [(row[6], row[7], row[8]) for row in first] == [("10.00", "10.00", "1.00"), ("22.00", "133.33", "29.33")]
    note = next(row for row in rows if row[2] == "Credit note")
    assert note[7:] == ["-33.33", "-7.33", "-40.66"]
    assert ["Total", "", "", "", "", "", "22.00", "800.07", "176.02", "976.09"] in rows


# The back office pages


@pytest.fixture
def office(app, db_session):
    from core.extensions import limiter
    from tests.auth_support import login, make_user

    make_user("office@dealer.example", "back_office", name="Back Office")
    limiter.reset()
    client = app.test_client()
    assert login(client, "office@dealer.example").status_code == 302
    return client


def test_the_register_page_links_each_document_and_offers_the_files(office, november):
    response = office.get("/admin/accounting_vat_register/?month=2026-11&kind=sales")

    assert response.status_code == 200
    html = lxml.html.fromstring(response.get_data(as_text=True))
    links = html.xpath('//table[@id="register"]//a/@href')
    assert f"/admin/invoicing_invoices_admin/{november['public'].id}" in links
    assert "Split payment" in html.text_content()
    totals = " ".join(html.xpath('//table[@id="register-totals"]')[0].text_content().split())
    assert "800.07" in totals and "176.02" in totals
    assert office.get("/admin/accounting_vat_register/export.csv?month=2026-11&kind=sales").mimetype == "text/csv"
    assert office.get("/admin/accounting_vat_register/export.pdf?month=2026-11&kind=purchases").data.startswith(b"%PDF")


def test_the_settlement_page_settles_the_last_period_in_one_click(office, november, db_session):
    from tests.auth_support import post_form

    vat.settle(dt.date(2026, 10, 1))
    db_session.commit()
    page = office.get("/admin/accounting_vat_settlement/?date=2026-11-30")
    assert page.status_code == 200
    text = " ".join(page.get_data(as_text=True).split())
    assert "67.02" in text and "110.00" in text

    response = post_form(
        office,
        "/admin/accounting_vat_settlement/settle",
        {"date": "2026-11-30"},
        form_url="/admin/accounting_vat_settlement/?date=2026-11-30",
    )

    assert response.status_code == 302
    settled = db_session.scalar(sa.select(VatSettlement).where(VatSettlement.period_end == dt.date(2026, 11, 30)))
    assert settled.balance == D("67.02")
    after = office.get(response.headers["Location"]).get_data(as_text=True)
    assert "VAT settled" in after
    assert not lxml.html.fromstring(after).xpath('//form[contains(@action, "/settle")]')  # settled: no button
