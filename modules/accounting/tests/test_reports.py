"""The reports from the ledger: trial balance, general ledger, balance sheet, income statement, as CSV and PDF too."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import lxml.html
import pytest
from flask_babel import force_locale
from pypdf import PdfReader

from core.validation import ValidationError
from modules.accounting import exports, reports
from modules.accounting.ledger import LineSpec, get_account, post_entry
from modules.accounting.tests.support import make_customer

D = Decimal


@pytest.fixture
def books(db_session):
    """A small year: capital paid in, an invoice and its payment, a cost, and income of the year before."""
    customer = make_customer()
    post_entry("VAR", dt.date(2025, 12, 15), [LineSpec("1801", debit=D("10")), LineSpec("5805", credit=D("10"))])
    post_entry("VAR", dt.date(2026, 1, 2), [LineSpec("1801", debit=D("1000")), LineSpec("2101", credit=D("1000"))])
    post_entry(
        "VEN",
        dt.date(2026, 3, 10),
        [
            LineSpec("1501", debit=D("122"), partner_id=customer.id, label="Fattura 1/2026"),
            LineSpec("5801", credit=D("100")),
            LineSpec("2601", credit=D("22")),
        ],
        reference="1/2026",
    )
    post_entry(
        "BNK",
        dt.date(2026, 3, 20),
        [LineSpec("1801", debit=D("122"), label="Bonifico"), LineSpec("1501", credit=D("122"), partner_id=customer.id)],
    )
    post_entry("ACQ", dt.date(2026, 4, 5), [LineSpec("4201", debit=D("40")), LineSpec("1801", credit=D("40"))])
    db_session.commit()
    return customer


def pdf_text(content: bytes) -> str:
    """The PDF's words, one space between each (table cells wrap at narrow columns)."""
    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages).split())


def by_code(rows) -> dict[str, tuple[Decimal, Decimal]]:
    return {row.account.code: (row.debit, row.credit) for row in rows}


def test_trial_balance_sums_every_account_up_to_the_date_and_its_totals_are_equal(books):
    march = reports.trial_balance(dt.date(2026, 3, 31))

    assert by_code(march.rows) == {
        "1801": (D("1132.00"), D("0.00")),
        "5805": (D("0.00"), D("10.00")),
        "2101": (D("0.00"), D("1000.00")),
        "1501": (D("122.00"), D("122.00")),
        "5801": (D("0.00"), D("100.00")),
        "2601": (D("0.00"), D("22.00")),
    }
    assert march.total_debit == march.total_credit == D("1254.00")
    assert march.balanced
    december = reports.trial_balance(dt.date(2026, 12, 31))
    assert by_code(december.rows)["4201"] == (D("40.00"), D("0.00"))
    assert december.total_debit == december.total_credit == D("1294.00")


def test_trial_balance_with_zero_lists_accounts_without_movements(books):
    codes = [row.account.code for row in reports.trial_balance(dt.date(2026, 12, 31), with_zero=True).rows]

    assert "5804" in codes and codes == sorted(codes)
    assert "1500" not in codes  # a group takes no entries


def test_general_ledger_has_the_opening_balance_and_a_running_balance(books):
    ledger = reports.general_ledger(get_account("1801"), dt.date(2026, 3, 1), dt.date(2026, 12, 31))

    assert ledger.opening == D("1010.00")
    assert [(row.entry.number, row.line.debit, row.line.credit, row.balance) for row in ledger.rows] == [
        ("BNK/2026/0001", D("122.00"), D("0.00"), D("1132.00")),
        ("ACQ/2026/0001", D("0.00"), D("40.00"), D("1092.00")),
    ]
    assert ledger.closing == D("1092.00")


def test_general_ledger_refuses_an_unknown_account_and_a_period_backwards(books):
    with pytest.raises(ValidationError) as unknown:
        get_account("9999")
    with pytest.raises(ValidationError) as backwards:
        reports.general_ledger(get_account("1801"), dt.date(2026, 5, 1), dt.date(2026, 4, 1))

    assert "account" in unknown.value.errors
    assert "from" in backwards.value.errors


def test_balance_sheet_balances_with_the_result_not_yet_carried_to_equity(books):
    sheet = reports.balance_sheet(dt.date(2026, 12, 31))

    assert [(row.account.code, row.amount) for row in sheet.assets.rows] == [("1801", D("1092.00"))]
    assert [(row.account.code, row.amount) for row in sheet.liabilities.rows] == [("2601", D("22.00"))]
    assert [(row.account.code, row.amount) for row in sheet.equity.rows] == [("2101", D("1000.00"))]
    assert sheet.result == D("70.00")  # 110 income (both years) less 40 costs
    assert sheet.total_assets == sheet.total_liabilities_and_equity == D("1092.00")


def test_income_statement_covers_the_year_to_the_date(books):
    statement = reports.income_statement(dt.date(2026, 12, 31))

    assert (statement.date_from, statement.date_to) == (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert [(row.account.code, row.amount) for row in statement.income.rows] == [("5801", D("100.00"))]
    assert [(row.account.code, row.amount) for row in statement.expenses.rows] == [("4201", D("40.00"))]
    assert statement.result == D("60.00")
    assert reports.income_statement(dt.date(2026, 3, 31)).result == D("100.00")


def test_trial_balance_csv_has_every_row_and_the_equal_totals(books):
    with force_locale("en"):
        text = exports.table_csv(exports.trial_balance_table(reports.trial_balance(dt.date(2026, 12, 31))))

    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == ["Code", "Account", "Debit", "Credit", "Balance"]
    assert ["1801", "Bank current account", "1132.00", "40.00", "1092.00"] in rows
    assert rows[-1] == ["Total", "", "1294.00", "1294.00", "0.00"]


def test_balance_sheet_pdf_shows_the_sections_and_totals(books):
    with force_locale("it"):
        content = exports.table_pdf(exports.balance_sheet_table(reports.balance_sheet(dt.date(2026, 12, 31))))

    text = pdf_text(content)
    assert "Banca c/c" in text and "IVA a debito" in text
    assert "1.092,00" in text and "70,00" in text


def test_general_ledger_pdf_lists_its_entries(books):
    report = reports.general_ledger(get_account("1501"), dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    with force_locale("en"):
        content = exports.table_pdf(exports.general_ledger_table(report))

    text = pdf_text(content)
    assert "VEN/2026/0001" in text and "BNK/2026/0001" in text
    assert "Studio Legale Bianchi" in text
    assert "Closing balance" in text


# The back office pages


@pytest.fixture
def office(app, books):
    from core.extensions import limiter
    from tests.auth_support import login, make_user

    make_user("office@dealer.example", "back_office", name="Back Office")
    limiter.reset()
    client = app.test_client()
    assert login(client, "office@dealer.example").status_code == 302
    return client


def page_text(response) -> str:
    return " ".join(lxml.html.fromstring(response.get_data(as_text=True)).text_content().split())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("/admin/accounting_trial_balance/?date=2026-12-31", ["1801", "1,132.00", "1,294.00"]),
        ("/admin/accounting_balance_sheet/?date=2026-12-31", ["Bank current account", "1,092.00", "70.00"]),
        ("/admin/accounting_income_statement/?date=2026-12-31", ["Rental fee revenue", "60.00"]),
        (
            "/admin/accounting_general_ledger/?account=1501&from=2026-01-01&to=2026-12-31",
            ["VEN/2026/0001", "BNK/2026/0001", "Studio Legale Bianchi", "122.00"],
        ),
    ],
)
def test_each_report_page_shows_its_figures_and_offers_csv_and_pdf(office, url, shown):
    response = office.get(url)

    assert response.status_code == 200
    text = page_text(response)
    for words in shown:
        assert words in text
    html = lxml.html.fromstring(response.get_data(as_text=True))
    downloads = html.xpath('//p[@id="downloads"]/a/@href')
    assert len(downloads) == 2
    as_csv, as_pdf = office.get(downloads[0]), office.get(downloads[1])
    assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
    assert as_pdf.status_code == 200 and as_pdf.data.startswith(b"%PDF")


def test_the_trial_balance_links_each_account_to_its_general_ledger(office):
    html = lxml.html.fromstring(office.get("/admin/accounting_trial_balance/?date=2026-12-31").get_data(as_text=True))

    link = html.xpath('//table[@id="report"]//a[text()="1801"]/@href')[0]
    assert office.get(link).status_code == 200 and "account=1801" in link


def test_a_report_page_with_a_bad_date_says_so(office):
    response = office.get("/admin/accounting_trial_balance/?date=31-12-2026")

    assert response.status_code == 422
    assert "YYYY-MM-DD" in page_text(response)


def test_a_customer_user_gets_no_report_page(app, books):
    from core.extensions import limiter
    from tests.auth_support import login, make_user

    make_user("anna@bianchi.example", "customer_admin", customer_id=books.id, name="Anna Bianchi")
    limiter.reset()
    client = app.test_client()
    login(client, "anna@bianchi.example")

    for url in (
        "/admin/accounting_trial_balance/",
        "/admin/accounting_vat_register/",
        "/admin/accounting_supplier_bills/",
    ):
        assert client.get(url).status_code in (302, 403), url
