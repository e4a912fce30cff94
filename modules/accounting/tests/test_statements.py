"""Bank statements: CSV and CAMT.053 files read, stored once, proposed a match, confirmed into payments or ignored."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.validation import ValidationError
from modules.accounting import reconcile, statements
from modules.accounting.models import BankStatement, Payment, SepaMandate, StatementLine
from modules.accounting.statement_files import parse, parse_amount
from modules.accounting.tests.support import make_customer, make_posted_invoice

DATA = Path(__file__).parent / "data"
DEALER_IBAN = "IT60X0542811101000000123456"
ROSSI_IBAN = "IT36A0301503200000003517230"
VERDI_IBAN = "IT40S0542811101000000123456"


@pytest.fixture(autouse=True)
def _unlink_payments(request):
    """Payments and statement lines point at each other: unlink them, so the rows can be wiped after the test."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    yield
    from core.db import db

    with app.app_context():
        db.session.remove()
        db.session.execute(sa.update(StatementLine).values(payment_id=None))
        db.session.commit()


def read(name: str) -> bytes:
    return (DATA / name).read_bytes()


# Reading the files (no database)


def test_camt053_v02_reads_booked_entries_with_parties_and_splits_a_batch():
    parsed = parse(read("camt053_v02.xml"), "camt053_v02.xml")
    assert parsed.format == "camt053" and parsed.account_iban == DEALER_IBAN
    rows = [(line.date, line.amount, line.counterparty, line.counterparty_iban) for line in parsed.lines]
    assert rows == [
        (dt.date(2026, 11, 10), Decimal("122.00"), "Studio Rossi Srl", ROSSI_IBAN),
        (dt.date(2026, 11, 12), Decimal("61.00"), "Copisteria Bianchi", ""),  # the batch of two transfers
        (dt.date(2026, 11, 12), Decimal("244.00"), "Ufficio Verdi Spa", ""),
        (dt.date(2026, 11, 30), Decimal("-4.50"), "", ""),  # bank fees: money out; the pending entry is left out
    ]
    first = parsed.lines[0]
    assert first.remittance == "SALDO FATTURA N. 1/2026 DEL 02/11/2026"
    assert first.bank_reference == "BNK20261110000001" and first.value_date == dt.date(2026, 11, 10)
    assert parsed.lines[3].remittance == "COMMISSIONI TENUTA CONTO NOVEMBRE"
    assert len({line.key for line in parsed.lines}) == 4


def test_camt053_v08_reads_parties_under_pty_and_booking_date_times():
    parsed = parse(read("camt053_v08.xml"), "camt053_v08.xml")
    assert [(line.date, line.amount, line.counterparty, line.counterparty_iban) for line in parsed.lines] == [
        (dt.date(2026, 12, 1), Decimal("244.00"), "Ufficio Verdi Spa", VERDI_IBAN),
        (dt.date(2026, 12, 1), Decimal("-1200.00"), "Toner Italia Srl", "IT09K0306909606100000012345"),
    ]
    assert parsed.lines[1].remittance == "RF18539007547034"


def test_italian_bank_csv_profile_skips_the_preamble_and_balances():
    parsed = parse(read("intesa_movimenti.csv"), "movimenti.csv")
    assert parsed.profile == "it_movimenti" and parsed.account_iban == DEALER_IBAN
    assert [line.amount for line in parsed.lines] == [
        Decimal("122.00"),
        Decimal("1220.00"),
        Decimal("-35.90"),
        Decimal("-4.50"),
        Decimal("-4.50"),
    ]
    assert parsed.lines[0].remittance.startswith("BONIFICO A VOSTRO FAVORE ORD. Studio Rossi Srl")
    # Two equal fees on one day are two movements: each keeps its own key.
    assert parsed.lines[3].key != parsed.lines[4].key


def test_generic_csv_profile_reads_signed_amounts_and_references():
    parsed = parse(read("generic.csv"), "generic.csv")
    assert parsed.profile == "generic"
    assert [(line.amount, line.bank_reference, line.counterparty_iban) for line in parsed.lines] == [
        (Decimal("122.00"), "TRN-0001", ROSSI_IBAN),
        (Decimal("-49.90"), "TRN-0002", ""),
    ]


@pytest.mark.parametrize(
    ("text", "comma", "expected"),
    [
        ("1.234,56", True, "1234.56"),
        ("-35,90", True, "-35.90"),
        ("12", True, "12.00"),
        ("1,234.56", None, "1234.56"),
        ("1.234,56", None, "1234.56"),
        ("-49.9", None, "-49.90"),
        ("1234.56", True, None),  # a dot where the profile expects a decimal comma
        ("1.2345,00", True, None),
        ("12,345", True, None),  # three decimals
        ("abc", None, None),
    ],
)
def test_amounts_as_banks_write_them(text, comma, expected):
    assert parse_amount(text, comma) == (Decimal(expected) if expected else None)


@pytest.mark.parametrize(
    ("content", "where"),
    [
        (b"<Document><unclosed></Document>", "line 1"),
        (b'<?xml version="1.0"?><Document xmlns="urn:example"/>', "Not a CAMT.053"),
        (
            read("camt053_v02.xml").replace(b'<Amt Ccy="EUR">122.00</Amt>', b'<Amt Ccy="EUR">12x</Amt>'),
            "line 29, element BkToCstmrStmt/Stmt/Ntry/Amt",
        ),
        (read("camt053_v02.xml").replace(b"<Dt>2026-11-10</Dt></BookgDt>", b"<Dt>10/11</Dt></BookgDt>"), "BookgDt"),
        (
            # A currency the line's column (3 letters) cannot hold: refused where it is written, not a database error.
            read("camt053_v02.xml").replace(b'<Amt Ccy="EUR">122.00</Amt>', b'<Amt Ccy="EURO-LONG">122.00</Amt>'),
            "line 29, element BkToCstmrStmt/Stmt/Ntry/Amt: Not a currency code: EURO-LONG",
        ),
        (read("camt053_v02.xml").replace(b"<CdtDbtInd>CRDT</CdtDbtInd>\n        <Sts>", b"<Sts>"), "CdtDbtInd"),
        (
            b'<!DOCTYPE d [<!ENTITY a "aaaa">]><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>',
            "document type",
        ),
        (read("intesa_movimenti.csv").replace(b"10/11/2026;10/11", b"31/02/2026;10/11"), "line 6, column Data"),
        (read("intesa_movimenti.csv").replace(b"1.220,00", b"1.220,0O"), "line 7, column Entrate"),
        (b"name;city\nRossi;Milano\n", "No header row"),
        (b"", "empty"),
    ],
)
def test_a_malformed_file_is_refused_naming_the_file_and_where(content, where):
    with pytest.raises(ValidationError) as raised:
        parse(content, "bank.dat")
    message = raised.value.errors["file"]
    assert message.startswith("bank.dat") and where in message, message


# Importing (database)


def import_file(name: str, **options):
    return statements.import_statement(read(name), name, **options)


def stored(db_session):
    return db_session.scalar(sa.select(sa.func.count(StatementLine.id))), db_session.scalar(
        sa.select(sa.func.count(BankStatement.id))
    )


@pytest.mark.parametrize("name", ["camt053_v02.xml", "intesa_movimenti.csv"])
def test_a_statement_imported_twice_adds_its_lines_once(db_session, name):
    first = import_file(name)
    db_session.commit()
    assert first.created and first.added == len(first.statement.lines) > 0
    assert first.statement.content == read(name) and first.statement.journal.code == "BNK"
    again = import_file(name)
    db_session.commit()
    assert not again.created and again.added == 0 and again.statement.id == first.statement.id
    assert stored(db_session) == (first.added, 1)


def test_an_overlapping_file_adds_only_its_new_lines(db_session):
    import_file("camt053_v02.xml")
    db_session.commit()
    overlapping = read("camt053_v02.xml").replace(b"<MsgId>STMT-20261130-0001", b"<MsgId>STMT-20261130-0002")
    overlapping = overlapping.replace(b"<NtryRef>4</NtryRef>", b"<NtryRef>4</NtryRef>").replace(
        b"<Sts>PDNG</Sts>", b"<Sts>BOOK</Sts>"
    )
    result = statements.import_statement(overlapping, "second.xml")
    db_session.commit()
    assert (result.added, result.skipped) == (1, 4)
    assert [line.amount for line in result.statement.lines] == [Decimal("999.00")]
    # The same lines again, in yet another file: nothing is stored, not even the file.
    nothing = statements.import_statement(overlapping.replace(b"0002", b"0003"), "third.xml")
    assert (nothing.statement, nothing.added, nothing.skipped) == (None, 0, 5)
    db_session.commit()
    assert stored(db_session) == (5, 2)


def test_a_nul_byte_in_a_csv_cell_is_read_as_a_space_and_the_line_stored(db_session):
    # PostgreSQL's text columns refuse NUL: a bank export with one still imports, its text readable.
    content = (
        read("intesa_movimenti.csv")
        .replace(b"CAUSALE: SALDO", b"CAUSALE:\x00SALDO")
        .replace(b"ORD. Studio", b"ORD.\x00\x00Studio")
    )
    result = statements.import_statement(content, "nov\x00embre.csv")
    db_session.commit()

    line = db_session.scalars(sa.select(StatementLine).order_by(StatementLine.id)).first()
    assert line.remittance.endswith("ORD. Studio Rossi Srl CAUSALE: SALDO FATTURA N. 1/2026"), line.remittance
    assert result.statement.filename == "novembre.csv"
    assert "\x00" not in "".join(
        text
        for row in db_session.execute(sa.select(StatementLine.remittance, StatementLine.counterparty))
        for text in row
    )


def test_a_malformed_file_stores_nothing(db_session):
    with pytest.raises(ValidationError) as raised:
        statements.import_statement(read("camt053_v02.xml").replace(b"</Ntry>", b"</Ntryx>", 1), "bad.xml")
    db_session.rollback()
    assert "bad.xml" in raised.value.errors["file"]
    assert stored(db_session) == (0, 0)


def test_a_file_of_another_account_is_refused_for_a_journal_with_an_iban(db_session):
    from modules.accounting import ledger

    ledger.get_journal("BNK").iban = "IT40S0542811101000000123456"
    db_session.commit()
    with pytest.raises(ValidationError) as raised:
        import_file("camt053_v02.xml", journal="BNK")
    assert DEALER_IBAN in raised.value.errors["journal"]
    with pytest.raises(ValidationError) as raised:
        import_file("camt053_v02.xml", journal="VEN")
    assert "journal" in raised.value.errors


# Proposals


def test_proposals_invoice_number_then_exact_amount_of_the_customer_then_none(db_session):
    rossi = make_customer("Studio Rossi Srl")
    verdi = make_customer("Ufficio Verdi Spa", vat_number="00743110157")
    first = make_posted_invoice(rossi, [("fee", "100.00", "22")])  # 1/2026, 122.00
    verdi_invoice = make_posted_invoice(verdi, [("overage", "200.00", "22")])  # 244.00
    assert first.number == "1/2026"
    result = import_file("camt053_v02.xml")
    db_session.commit()
    by_amount = {line.amount: line for line in result.statement.lines}
    assert (by_amount[Decimal("122.00")].proposal_reason, by_amount[Decimal("122.00")].proposed_invoice_id) == (
        "invoice_number",
        first.id,
    )
    # "Ufficio Verdi Spa" is the customer's name; its open invoice of exactly 244.00 is proposed.
    verdi_line = by_amount[Decimal("244.00")]
    assert (verdi_line.proposal_reason, verdi_line.proposed_invoice_id) == ("amount", verdi_invoice.id)
    assert verdi_line.proposed_partner_id == verdi.id
    for amount in (Decimal("61.00"), Decimal("-4.50")):  # an unknown payer, bank fees
        line = by_amount[amount]
        assert (line.proposal_reason, line.proposed_invoice_id, line.proposed_partner_id) == ("none", None, None)


def test_a_mandate_iban_or_the_vat_number_finds_the_customer(db_session):
    verdi = make_customer("Verdi & Figli", vat_number="00743110157")
    invoice = make_posted_invoice(verdi, [("overage", "200.00", "22")])
    db_session.add(
        SepaMandate(partner_id=verdi.id, reference="M-1", signed_on=dt.date(2026, 1, 2), iban=VERDI_IBAN, active=True)
    )
    db_session.commit()
    line = import_file("camt053_v08.xml").statement.lines[0]
    assert (line.proposed_partner_id, line.proposed_invoice_id, line.proposal_reason) == (
        verdi.id,
        invoice.id,
        "amount",
    )
    text = "date;amount;description\n2026-12-02;244.00;Bonifico da P.IVA IT00743110157 canoni\n"
    other = statements.import_statement(text.encode(), "vat.csv").statement.lines[0]
    assert (other.proposed_partner_id, other.proposal_reason) == (verdi.id, "amount")


def test_an_italian_bank_text_names_the_payer_and_numbers_in_other_spellings(db_session):
    rossi = make_customer("Studio Rossi Srl")
    invoice = make_posted_invoice(rossi, [("fee", "100.00", "22")])
    text = (
        "Data contabile;Entrate;Uscite;Descrizione\n"
        "10/11/2026;122,00;;BONIFICO ORD: Studio Rossi Srl RIF FT 0001-2026\n"
    )
    line = statements.import_statement(text.encode(), "it.csv").statement.lines[0]
    assert line.counterparty == "Studio Rossi Srl"
    assert (line.proposed_invoice_id, line.proposal_reason) == (invoice.id, "invoice_number")


# Confirming, ignoring


def test_confirming_a_proposal_records_the_payment_and_pays_the_invoice(db_session):
    rossi = make_customer("Studio Rossi Srl")
    invoice = make_posted_invoice(rossi, [("fee", "100.00", "22")])
    line = import_file("camt053_v02.xml").statement.lines[0]
    db_session.commit()
    payment = statements.confirm(line)
    db_session.commit()
    assert (line.state, line.payment_id) == ("matched", payment.id)
    assert (payment.partner_id, payment.amount, payment.date, payment.invoice_id) == (
        rossi.id,
        Decimal("122.00"),
        dt.date(2026, 11, 10),
        invoice.id,
    )
    assert payment.statement_line_id == line.id and payment.journal.code == "BNK"
    assert reconcile.payment_states([invoice.id])[invoice.id].state == "paid"
    with pytest.raises(ValidationError) as raised:  # twice: refused, nothing more written
        statements.confirm(line)
    assert "state" in raised.value.errors
    db_session.rollback()
    assert db_session.scalar(sa.select(sa.func.count(Payment.id))) == 1


def test_a_transfer_quoting_two_invoices_pays_both(db_session):
    rossi = make_customer("Studio Rossi Srl")
    first = make_posted_invoice(rossi, [("fee", "100.00", "22")])
    second = make_posted_invoice(rossi, [("fee", "50.00", "22")])
    text = f"date;amount;description\n2026-11-20;183.00;Fatture {first.number} e {second.number}\n"
    line = statements.import_statement(text.encode(), "two.csv").statement.lines[0]
    statements.confirm(line)
    db_session.commit()
    states = reconcile.payment_states([first.id, second.id])
    assert (states[first.id].state, states[second.id].state) == ("paid", "paid")


def test_confirming_more_than_is_due_is_refused_unless_an_advance(db_session):
    rossi = make_customer("Studio Rossi Srl")
    make_posted_invoice(rossi, [("fee", "10.00", "22")])  # 12.20 due
    text = "date;amount;description;counterparty\n2026-11-20;500.00;Acconto;Studio Rossi Srl\n"
    line = statements.import_statement(text.encode(), "advance.csv").statement.lines[0]
    db_session.commit()
    assert (line.proposed_partner_id, line.proposal_reason) == (rossi.id, "none")
    with pytest.raises(ValidationError) as raised:
        statements.confirm(line)
    assert "amount" in raised.value.errors
    db_session.rollback()
    assert db_session.scalar(sa.select(sa.func.count(Payment.id))) == 0
    line = db_session.get(StatementLine, line.id)
    assert line.state == "open"
    statements.confirm(line, advance=True)
    db_session.commit()
    assert reconcile.receivable_balance(rossi.id) == Decimal("-487.80")


def test_money_out_cannot_be_confirmed_but_can_be_ignored_and_reopened(db_session):
    fee = next(line for line in import_file("camt053_v02.xml").statement.lines if line.amount < 0)
    with pytest.raises(ValidationError) as raised:
        statements.confirm(fee)
    assert "amount" in raised.value.errors
    statements.ignore(fee)
    assert fee.state == "ignored"
    statements.reopen(fee)
    assert fee.state == "open"


def test_confirm_all_confirms_the_proposed_lines_and_keeps_the_refused_open(db_session):
    rossi = make_customer("Studio Rossi Srl")
    verdi = make_customer("Ufficio Verdi Spa", vat_number="00743110157")
    make_posted_invoice(rossi, [("fee", "100.00", "22")])
    make_posted_invoice(verdi, [("overage", "100.00", "22")])  # 122.00: the 244.00 transfer is more than due
    statement = import_file("camt053_v02.xml").statement
    db_session.commit()
    result = statements.confirm_all(statement)
    db_session.commit()
    states = {line.amount: line.state for line in statement.lines}
    assert states == {
        Decimal("122.00"): "matched",
        Decimal("61.00"): "open",
        Decimal("244.00"): "open",
        Decimal("-4.50"): "open",
    }
    assert len(result.confirmed) == 1 and len(result.refused) == 1


# The back office


def office_client(app):
    from core.extensions import limiter
    from tests.auth_support import login, make_user

    with app.app_context():
        make_user("office@dealer.example", "back_office", name="Back Office")
    limiter.reset()
    client = app.test_client()
    assert login(client, "office@dealer.example").status_code == 302
    return client


def test_upload_a_statement_and_confirm_a_line_in_one_click(app):
    import io

    import lxml.html

    from core.db import db
    from tests.auth_support import post_form

    with app.app_context():
        rossi = make_customer("Studio Rossi Srl")
        invoice = make_posted_invoice(rossi, [("fee", "100.00", "22")])
        invoice_id, number = invoice.id, invoice.number
    client = office_client(app)
    page = "/admin/accounting_statements/"
    data = {"file": (io.BytesIO(read("camt053_v02.xml")), "novembre.xml")}
    response = post_form(client, page + "upload", data, form_url=page, content_type="multipart/form-data")
    assert response.status_code == 302
    statement_page = response.headers["Location"]
    html = client.get(statement_page).get_data(as_text=True)
    tree = lxml.html.fromstring(html)
    first = tree.xpath("//table[@id='statement-lines']/tbody/tr")[0]
    text = " ".join(first.text_content().split())
    assert "Studio Rossi Srl" in text and number in text and "Invoice number in the remittance" in text, text
    assert first.xpath(f".//a[contains(@href, '{invoice_id}')]"), "the proposed invoice links to its page"
    confirm_url = first.xpath(".//form[contains(@action, '/confirm')]/@action")[0]
    assert post_form(client, confirm_url, {}, form_url=statement_page).status_code == 302
    with app.app_context():
        assert reconcile.payment_states([invoice_id])[invoice_id].state == "paid"
        assert db.session.scalar(sa.select(StatementLine.state).order_by(StatementLine.id).limit(1)) == "matched"
    again = post_form(
        client,
        page + "upload",
        {"file": (io.BytesIO(read("camt053_v02.xml")), "novembre.xml")},
        form_url=page,
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert "Nothing new" in again.get_data(as_text=True)
    listing = lxml.html.fromstring(client.get(page).get_data(as_text=True))
    rows = listing.xpath("//table[@id='statements']/tbody/tr")
    assert " ".join(rows[0].text_content().split()).endswith("novembre.xml Banca CAMT.053 (ISO 20022 XML) 4 3"), (
        "4 lines, 3 open"
    )


def test_an_upload_larger_than_a_statement_is_refused_unread(app):
    import io

    from core.db import db
    from modules.accounting.statement_files import FORM_OVERHEAD, MAX_FILE_BYTES
    from tests.auth_support import post_form

    client = office_client(app)
    page = "/admin/accounting_statements/"
    too_big = b"x" * (MAX_FILE_BYTES + FORM_OVERHEAD + 1)
    data = {"file": (io.BytesIO(too_big), "enorme.csv")}
    response = post_form(client, page + "upload", data, form_url=page, content_type="multipart/form-data")
    assert response.status_code == 413
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(BankStatement.id))) == 0
    small = {"file": (io.BytesIO(read("intesa_movimenti.csv")), "novembre.csv")}
    assert (
        post_form(client, page + "upload", small, form_url=page, content_type="multipart/form-data").status_code == 302
    )


def test_a_malformed_upload_shows_where_and_stores_nothing(app):
    import io

    from core.db import db
    from tests.auth_support import post_form

    client = office_client(app)
    page = "/admin/accounting_statements/"
    data = {"file": (io.BytesIO(b"Data contabile;Entrate;Uscite\n32/10/2026;1,00;\n"), "ottobre.csv")}
    response = post_form(
        client, page + "upload", data, form_url=page, content_type="multipart/form-data", follow_redirects=True
    )
    assert "ottobre.csv, line 2, column Data contabile" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(BankStatement.id))) == 0
