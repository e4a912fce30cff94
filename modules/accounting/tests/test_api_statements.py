"""/api/v1/bank-statements: uploads stored once, malformed files refused with a 422 writing nothing, confirm/ignore."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.api.tokens import create_token
from core.db import db
from core.models import User
from modules.accounting.models import BankStatement, Payment, StatementLine
from modules.accounting.tests.support import make_customer, make_posted_invoice

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _unlink_payments(request):
    """Payments and statement lines point at each other: unlink them, so the rows can be wiped after the test."""
    app = request.getfixturevalue("app")
    yield
    with app.app_context():
        db.session.remove()
        db.session.execute(sa.update(StatementLine).values(payment_id=None))
        db.session.commit()


def headers_for(role: str, customer=None) -> dict[str, str]:
    user = User(
        email=f"{role}@example.com",
        name=role,
        role=role,
        customer_id=customer.id if customer else None,
        language="en",
    )
    db.session.add(user)
    db.session.commit()
    _token, plaintext = create_token(user, "tests")
    db.session.commit()
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def office(db_session):
    return headers_for("back_office")


def upload(client, headers, name: str, content: bytes | None = None, **fields):
    body = {"file": (io.BytesIO(content if content is not None else (DATA / name).read_bytes()), name), **fields}
    return client.post("/api/v1/bank-statements", data=body, headers=headers, content_type="multipart/form-data")


def counts() -> tuple[int, int]:
    return (
        db.session.scalar(sa.select(sa.func.count(BankStatement.id))),
        db.session.scalar(sa.select(sa.func.count(StatementLine.id))),
    )


@pytest.mark.parametrize(("name", "lines"), [("camt053_v02.xml", 4), ("intesa_movimenti.csv", 5)])
def test_a_statement_uploaded_twice_adds_its_lines_once(client, office, name, lines):
    first = upload(client, office, name)
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert (body["added"], body["skipped"]) == (lines, 0)
    assert body["statement"]["filename"] == name and body["statement"]["journal"] == "BNK"
    assert first.headers["Location"].endswith(f"/api/v1/bank-statements/{body['statement']['id']}")
    again = upload(client, office, name)
    assert again.status_code == 200
    assert (again.get_json()["added"], again.get_json()["skipped"]) == (0, lines)
    assert again.get_json()["statement"]["id"] == body["statement"]["id"]
    assert counts() == (1, lines)
    listed = client.get("/api/v1/bank-statements", headers=office).get_json()
    assert [(item["filename"], item["open_lines"]) for item in listed["items"]] == [(name, lines)]


@pytest.mark.parametrize(
    ("name", "content", "where"),
    [
        ("bad.xml", b"<Document><Stmt></Document>", "bad.xml, line 1"),
        ("bad.csv", b"Data contabile;Entrate;Uscite\n99/99/2026;1,00;\n", "bad.csv, line 2, column Data contabile"),
        ("empty.csv", b"", "empty.csv"),
    ],
)
def test_a_malformed_statement_is_a_422_naming_the_file_and_writes_nothing(client, office, name, content, where):
    response = upload(client, office, name, content)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    errors = {error["field"]: error["message"] for error in response.get_json()["errors"]}
    assert where in errors["file"], errors
    assert counts() == (0, 0)


def test_an_unknown_profile_or_journal_is_a_422(client, office):
    response = upload(client, office, "intesa_movimenti.csv", profile="nope")
    assert response.status_code == 422 and "profile" in str(response.get_json())
    response = upload(client, office, "intesa_movimenti.csv", journal="VEN")
    assert response.status_code == 422
    assert [error["field"] for error in response.get_json()["errors"]] == ["journal"]
    assert counts() == (0, 0)


def test_read_a_statement_and_confirm_the_proposed_line(client, office):
    rossi = make_customer("Studio Rossi Srl")
    invoice = make_posted_invoice(rossi, [("fee", "100.00", "22")])
    statement_id = upload(client, office, "camt053_v02.xml").get_json()["statement"]["id"]
    read = client.get(f"/api/v1/bank-statements/{statement_id}", headers=office).get_json()
    line = read["lines"][0]
    assert (line["amount"], line["proposal_reason"], line["proposed_invoice_number"]) == (
        "122.00",
        "invoice_number",
        invoice.number,
    )
    assert line["proposed_partner_name"] == "Studio Rossi Srl"
    confirmed = client.post(f"/api/v1/bank-statements/lines/{line['id']}/confirm", headers=office)
    assert confirmed.status_code == 200, confirmed.get_json()
    assert confirmed.get_json()["state"] == "matched"
    payment = db.session.get(Payment, confirmed.get_json()["payment_id"])
    assert (payment.amount, payment.invoice_id) == (Decimal("122.00"), invoice.id)
    again = client.post(f"/api/v1/bank-statements/lines/{line['id']}/confirm", headers=office)
    assert again.status_code == 409
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 1


def test_confirming_more_than_due_is_a_422_naming_amount_unless_an_advance(client, office):
    rossi = make_customer("Studio Rossi Srl")
    make_posted_invoice(rossi, [("fee", "10.00", "22")])
    content = b"date;amount;description;counterparty\n2026-11-20;500.00;Acconto;Studio Rossi Srl\n"
    line_id = upload(client, office, "advance.csv", content).get_json()["statement"]["lines"][0]["id"]
    url = f"/api/v1/bank-statements/lines/{line_id}/confirm"
    refused = client.post(url, json={}, headers=office)
    assert refused.status_code == 422
    assert [error["field"] for error in refused.get_json()["errors"]] == ["amount"]
    assert db.session.scalar(sa.select(sa.func.count(Payment.id))) == 0
    accepted = client.post(url, json={"advance": True}, headers=office)
    assert accepted.status_code == 200 and accepted.get_json()["state"] == "matched"


def test_ignore_a_line_and_a_customer_token_is_refused(client, office):
    statement = upload(client, office, "camt053_v02.xml").get_json()["statement"]
    fee = next(line for line in statement["lines"] if line["amount"] == "-4.50")
    ignored = client.post(f"/api/v1/bank-statements/lines/{fee['id']}/ignore", headers=office)
    assert ignored.status_code == 200 and ignored.get_json()["state"] == "ignored"
    assert client.post(f"/api/v1/bank-statements/lines/{fee['id']}/ignore", headers=office).status_code == 409
    customer = headers_for("customer_admin", make_customer("Cliente"))
    assert client.get("/api/v1/bank-statements", headers=customer).status_code == 403
    assert upload(client, customer, "camt053_v02.xml").status_code == 403


def test_other_operations_still_take_only_json(client, office):
    statement = upload(client, office, "camt053_v02.xml").get_json()["statement"]
    line_id = statement["lines"][0]["id"]
    response = client.post(
        f"/api/v1/bank-statements/lines/{line_id}/confirm",
        data={"advance": "true"},
        headers=office,
        content_type="multipart/form-data",
    )
    assert response.status_code == 415
