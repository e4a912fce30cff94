"""SdI receipts read back: each kind sets the invoice's e-invoice state, a rejection shows its errors in plain words."""

from __future__ import annotations

import io
import zipfile

import pytest
import sqlalchemy as sa
from flask_babel import force_locale
from markupsafe import escape

from core.db import db
from modules.invoicing import einvoice_exchange, fatturapa
from modules.invoicing.models import EInvoiceReceipt, Invoice
from modules.invoicing.tests.support import add_company, billing_customer
from modules.invoicing.tests.test_einvoice_export import einvoice_state, logged_in, posted_invoice, state_in
from tests.api_support import bearer
from tests.auth_support import post_form

SDI = "http://www.fatturapa.gov.it/sdi/messaggi/v1.0"
UPLOAD_URL = "/admin/invoicing_einvoices_admin/"


def receipt_xml(root: str, invoice_file: str, sdi_id: str = "4123456", errors=(), outcome: str | None = None) -> bytes:
    """An SdI message as the exchange system writes it (MessaggiTypes: root in the namespace, children unqualified)."""
    parts = [f"<IdentificativoSdI>{sdi_id}</IdentificativoSdI>"]
    if root == "NotificaDecorrenzaTermini":
        parts.append("<RiferimentoFattura><NumeroFattura>1</NumeroFattura><AnnoFattura>2026</AnnoFattura>")
        parts.append("</RiferimentoFattura>")
    parts.append(f"<NomeFile>{invoice_file}</NomeFile>")
    if root in ("RicevutaConsegna", "NotificaScarto", "NotificaMancataConsegna"):
        if root == "RicevutaConsegna":
            parts.append("<Hash>3f8a9c</Hash>")
        parts.append("<DataOraRicezione>2026-02-06T10:15:00.000+01:00</DataOraRicezione>")
    if root == "RicevutaConsegna":
        parts.append("<DataOraConsegna>2026-02-06T10:20:00.000+01:00</DataOraConsegna>")
        parts.append("<Destinatario><Codice>ABC1234</Codice><Descrizione>Studio</Descrizione></Destinatario>")
    if errors:
        parts.append("<ListaErrori>")
        for code, description in errors:
            parts.append(f"<Errore><Codice>{code}</Codice><Descrizione>{description}</Descrizione></Errore>")
        parts.append("</ListaErrori>")
    if root == "NotificaEsito":
        parts.append(
            f"<EsitoCommittente><IdentificativoSdI>{sdi_id}</IdentificativoSdI><RiferimentoFattura>"
            "<NumeroFattura>1</NumeroFattura><AnnoFattura>2026</AnnoFattura></RiferimentoFattura>"
            f"<Esito>{outcome}</Esito><MessageIdCommittente>77</MessageIdCommittente></EsitoCommittente>"
        )
    if root in ("NotificaMancataConsegna", "NotificaDecorrenzaTermini"):
        parts.append("<Descrizione>Recapito non riuscito</Descrizione>")
    parts.append("<MessageId>987654</MessageId>")
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><ns2:{root} xmlns:ns2="{SDI}" versione="1.0">'
        + "".join(parts)
        + f"</ns2:{root}>"
    ).encode()


def receipt_name(invoice_file: str, kind: str, number: int = 1) -> str:
    return f"{invoice_file.removesuffix('.xml')}_{kind}_{number:03d}.xml"


@pytest.fixture
def invoice(client, db_session):
    add_company()
    return db.session.get(Invoice, posted_invoice(client, bearer("dealer_admin"), billing_customer()))


def receipt_file(invoice: Invoice, root: str, kind: str, number: int = 1, **fields) -> tuple[str, bytes]:
    name = fatturapa.file_name(invoice)
    return receipt_name(name, kind, number), receipt_xml(root, name, **fields)


@pytest.mark.parametrize(
    ("receipts", "state"),
    [
        ([("RicevutaConsegna", "RC", {})], "delivered"),
        ([("NotificaScarto", "NS", {"errors": [("00305", "IdCodice non valido")]})], "rejected"),
        ([("NotificaMancataConsegna", "MC", {})], "not_delivered"),
        ([("AttestazioneTrasmissioneFattura", "AT", {})], "not_delivered"),
        ([("RicevutaConsegna", "RC", {}), ("NotificaEsito", "NE", {"outcome": "EC01"})], "accepted"),
        ([("RicevutaConsegna", "RC", {}), ("NotificaEsito", "NE", {"outcome": "EC02"})], "refused"),
        ([("RicevutaConsegna", "RC", {}), ("NotificaDecorrenzaTermini", "DT", {})], "deadline_passed"),
    ],
)
def test_each_receipt_sets_the_e_invoice_state_and_is_kept(invoice, receipts, state):
    files = [receipt_file(invoice, root, kind, **fields) for root, kind, fields in receipts]

    outcomes = einvoice_exchange.import_receipts(files)
    db.session.commit()

    assert [outcome.status for outcome in outcomes] == ["imported"] * len(files)
    assert einvoice_state(invoice.id) == state
    kept = db.session.scalars(sa.select(EInvoiceReceipt).order_by(EInvoiceReceipt.id)).all()
    assert [receipt.file_name for receipt in kept] == [name for name, _content in files]
    assert kept[-1].content.encode() == files[-1][1] and kept[-1].sdi_id == "4123456"


def test_rejection_keeps_the_error_codes_and_the_moment_of_receipt(invoice):
    files = [receipt_file(invoice, "NotificaScarto", "NS", errors=[("00305", "IdCodice non valido"), ("00999", "X")])]

    einvoice_exchange.import_receipts(files)
    db.session.commit()

    receipt = db.session.scalar(sa.select(EInvoiceReceipt))
    assert [error["code"] for error in receipt.errors] == ["00305", "00999"]
    assert receipt.received_at.strftime("%H:%M") in ("09:15",)  # 10:15 in Rome is 09:15 UTC


def test_the_same_receipt_twice_is_a_duplicate_and_changes_nothing(invoice):
    delivered = receipt_file(invoice, "RicevutaConsegna", "RC")
    einvoice_exchange.import_receipts([delivered])
    db.session.commit()

    again = einvoice_exchange.import_receipts([delivered])
    db.session.commit()

    assert [(outcome.status, outcome.invoice.id) for outcome in again] == [("duplicate", invoice.id)]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EInvoiceReceipt)) == 1
    assert einvoice_state(invoice.id) == "delivered"


def test_a_receipt_for_an_unknown_invoice_is_reported_and_nothing_is_stored(invoice):
    unknown = ("IT00743110157_ZZZZZ_RC_001.xml", receipt_xml("RicevutaConsegna", "IT00743110157_ZZZZZ.xml"))
    other_dealer = ("IT01234567897_00001_RC_001.xml", receipt_xml("RicevutaConsegna", "IT01234567897_00001.xml"))

    outcomes = einvoice_exchange.import_receipts([unknown, other_dealer])
    db.session.commit()

    assert [outcome.status for outcome in outcomes] == ["error", "error"]
    assert "IT00743110157_ZZZZZ.xml" in outcomes[0].message and "IT01234567897_00001.xml" in outcomes[1].message
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EInvoiceReceipt)) == 0
    assert einvoice_state(invoice.id) is None


def test_a_rejection_after_delivery_is_an_error_and_the_invoice_stays_delivered(invoice):
    einvoice_exchange.import_receipts([receipt_file(invoice, "RicevutaConsegna", "RC")])
    db.session.commit()

    late = einvoice_exchange.import_receipts([receipt_file(invoice, "NotificaScarto", "NS", errors=[("00200", "x")])])
    db.session.commit()

    assert [outcome.status for outcome in late] == ["error"]
    assert einvoice_state(invoice.id) == "delivered"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EInvoiceReceipt)) == 1


def test_the_signed_file_name_is_matched_too_and_bad_files_are_refused_naming_them(invoice):
    signed = fatturapa.file_name(invoice) + ".p7m"
    files = [
        ("IT00743110157_x_RC_001.xml", receipt_xml("RicevutaConsegna", signed)),
        ("broken_RC_001.xml", b"<RicevutaConsegna><NomeFile>"),
        ("invoice.xml", b'<p:FatturaElettronica xmlns:p="http://ivaservizi.agenziaentrate.gov.it/x"/>'),
    ]

    outcomes = einvoice_exchange.import_receipts(files)

    assert [outcome.status for outcome in outcomes] == ["imported", "error", "error"]
    assert "broken_RC_001.xml" in outcomes[1].message and "invoice.xml" in outcomes[2].message
    assert einvoice_state(invoice.id) == "delivered"


def test_a_zip_of_receipts_is_opened(invoice, client):
    other = db.session.get(
        Invoice, posted_invoice(client, bearer("back_office"), billing_customer("Beta Srl", vat_number="00488410010"))
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as written:
        for name, content in (
            receipt_file(invoice, "RicevutaConsegna", "RC"),
            receipt_file(other, "NotificaMancataConsegna", "MC"),
        ):
            written.writestr(f"ricevute/{name}", content)

    outcomes = einvoice_exchange.import_receipts([("ricevute.zip", archive.getvalue()), ("bad.zip", b"not a zip")])
    db.session.commit()

    assert [outcome.status for outcome in outcomes] == ["imported", "imported", "error"]
    assert (einvoice_state(invoice.id), einvoice_state(other.id)) == ("delivered", "not_delivered")


def test_cli_imports_a_folder_of_receipts_and_fails_when_one_is_not_ours(app, invoice, tmp_path):
    name, content = receipt_file(invoice, "RicevutaConsegna", "RC")
    (tmp_path / name).write_bytes(content)
    (tmp_path / "notes.txt").write_text("not a receipt")
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "IT00743110157_ZZZZZ_RC_001.xml").write_bytes(
        receipt_xml("RicevutaConsegna", "IT00743110157_ZZZZZ.xml")
    )
    runner = app.test_cli_runner()

    done = runner.invoke(args=["invoicing", "einvoice-receipts", str(tmp_path)])
    failed = runner.invoke(args=["invoicing", "einvoice-receipts", str(stranger)])
    missing = runner.invoke(args=["invoicing", "einvoice-receipts", str(tmp_path / "nowhere")])

    assert done.exit_code == 0, done.output
    assert f"{name}: imported" in done.output and "notes.txt" not in done.output
    assert einvoice_state(invoice.id) == "delivered"
    assert failed.exit_code == 1 and "IT00743110157_ZZZZZ.xml" in failed.output
    assert missing.exit_code != 0 and "nowhere" in missing.output


def test_api_upload_answers_each_file_outcome(invoice, client):
    delivered = receipt_file(invoice, "RicevutaConsegna", "RC")
    staff = bearer("back_office")

    def upload(files):
        data = {"files": [(io.BytesIO(content), name) for name, content in files]}
        return client.post("/api/v1/einvoices/receipts", data=data, headers=staff, content_type="multipart/form-data")

    first = upload([delivered, ("junk.xml", b"<junk/>")])
    again = upload([delivered])
    empty = client.post("/api/v1/einvoices/receipts", data={}, headers=staff, content_type="multipart/form-data")

    assert first.status_code == 200, first.get_data(as_text=True)
    assert [(item["status"], item["einvoice_state"]) for item in first.get_json()["outcomes"]] == [
        ("imported", "delivered"),
        ("error", None),
    ]
    assert [item["status"] for item in again.get_json()["outcomes"]] == ["duplicate"]
    assert empty.status_code == 422
    assert einvoice_state(invoice.id) == "delivered"


def rejected_invoice(app) -> tuple[int, str]:
    api = app.test_client()
    with app.app_context():
        add_company()
        invoice = db.session.get(Invoice, posted_invoice(api, bearer("dealer_admin"), billing_customer()))
        errors = [("00305", "1.4.1.1.2 IdCodice non valido"), ("00999", "Errore sconosciuto")]
        einvoice_exchange.import_receipts([receipt_file(invoice, "NotificaScarto", "NS", errors=errors)])
        db.session.commit()
        return invoice.id, invoice.number


def test_rejected_invoice_page_shows_the_errors_in_plain_words(app):
    invoice_id, _number = rejected_invoice(app)
    office = logged_in(app, "office@rossi.example", "back_office")

    page = office.get(f"/admin/invoicing_invoices_admin/{invoice_id}").get_data(as_text=True)

    with app.test_request_context(), force_locale("it"):
        hint = str(einvoice_exchange.ERROR_HINTS["00305"])
        kind = str(einvoice_exchange.KIND_LABELS["NS"])
    assert 'data-einvoice-state="rejected"' in page
    assert escape(hint) in page
    assert "Errore sconosciuto" in page  # a code without our explanation shows the SdI's description
    assert escape(kind) in page


def test_receipts_upload_page_shows_each_outcome_and_the_list_the_last_receipt(app):
    api = app.test_client()
    with app.app_context():
        add_company()
        invoice = db.session.get(Invoice, posted_invoice(api, bearer("dealer_admin"), billing_customer()))
        delivered = receipt_file(invoice, "RicevutaConsegna", "RC")
    office = logged_in(app, "office@rossi.example", "back_office")
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as written:
        written.writestr(*delivered)

    def upload(files):
        data = {"files": [(io.BytesIO(content), name) for name, content in files]}
        return post_form(office, f"{UPLOAD_URL}receipts", data, form_url=UPLOAD_URL, content_type="multipart/form-data")

    first = upload([("ricevute.zip", archive.getvalue())]).get_data(as_text=True)
    again = upload([delivered]).get_data(as_text=True)

    assert '<tr data-status="imported"' in first and 'data-einvoice-state="delivered"' in first
    assert '<tr data-status="duplicate"' in again
    assert state_in(app, invoice.id) == "delivered"


def test_correct_button_posts_a_credit_note_and_makes_a_new_draft(app):
    invoice_id, _number = rejected_invoice(app)
    office = logged_in(app, "office@rossi.example", "back_office")
    details = f"/admin/invoicing_invoices_admin/{invoice_id}"

    page = office.get(details).get_data(as_text=True)
    unconfirmed = post_form(office, f"{details}/correct", {}, form_url=f"{details}/correct")
    done = post_form(office, f"{details}/correct", {"confirm": "1"}, form_url=f"{details}/correct")
    corrected = office.get(done.headers["Location"]).get_data(as_text=True)
    twice = post_form(office, f"{details}/correct", {"confirm": "1"}, form_url=details)

    assert f"{details}/correct" in page
    assert unconfirmed.status_code == 200 and done.status_code == 302
    with app.app_context():
        note = db.session.scalar(sa.select(Invoice).where(Invoice.original_id == invoice_id))
        draft = db.session.scalar(
            sa.select(Invoice).where(Invoice.type == "invoice", Invoice.state == "draft", Invoice.id != invoice_id)
        )
        original = db.session.get(Invoice, invoice_id)
        assert note.type == "credit_note" and note.state == "posted" and note.total == original.total
        assert draft.customer_id == original.customer_id and draft.total == original.total
        note_id, draft_id = note.id, draft.id
    assert f"/admin/invoicing_invoices_admin/{note_id}" in corrected
    assert f"/admin/invoicing_invoices_admin/{draft_id}" in corrected
    assert f"{details}/correct" not in corrected  # corrected once: no second credit note offered
    assert twice.status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(Invoice.original_id == invoice_id)) == 1


def test_a_rejection_only_for_a_duplicate_file_is_kept_and_changes_nothing(invoice):
    einvoice_exchange.import_receipts([receipt_file(invoice, "RicevutaConsegna", "RC")])
    db.session.commit()

    duplicate = receipt_file(invoice, "NotificaScarto", "NS", errors=[("00002", "File duplicato")])
    outcomes = einvoice_exchange.import_receipts([duplicate])
    db.session.commit()

    assert [(outcome.status, outcome.invoice.id) for outcome in outcomes] == [("imported", invoice.id)]
    assert einvoice_state(invoice.id) == "delivered"
    kept = db.session.scalars(sa.select(EInvoiceReceipt).order_by(EInvoiceReceipt.id)).all()
    assert [receipt.kind for receipt in kept] == ["RC", "NS"]
    assert kept[-1].errors[0]["code"] == "00002"


def test_a_duplicate_file_among_other_errors_still_rejects(invoice):
    errors = [("00002", "File duplicato"), ("00305", "IdCodice non valido")]
    einvoice_exchange.import_receipts([receipt_file(invoice, "NotificaScarto", "NS", errors=errors)])
    db.session.commit()

    assert einvoice_state(invoice.id) == "rejected"


def test_a_utf16_receipt_is_kept_as_text_without_nul_characters(invoice):
    name, content = receipt_file(invoice, "RicevutaConsegna", "RC")
    utf16 = content.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")

    outcomes = einvoice_exchange.import_receipts([(name, utf16)])
    db.session.commit()

    assert [outcome.status for outcome in outcomes] == ["imported"]
    assert einvoice_state(invoice.id) == "delivered"
    kept = db.session.scalar(sa.select(EInvoiceReceipt))
    assert "\x00" not in kept.content and fatturapa.file_name(invoice) in kept.content
    assert kept.sdi_id == "4123456"


def zip_of(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression) as written:
        for name, content in members:
            written.writestr(name, content)
    return archive.getvalue()


def test_a_zip_member_compressed_like_a_bomb_is_not_read(invoice):
    name, content = receipt_file(invoice, "RicevutaConsegna", "RC")
    padded = content.replace(b"<MessageId>", b" " * 1_000_000 + b"<MessageId>")

    outcomes = einvoice_exchange.import_receipts([("ricevute.zip", zip_of([(name, padded)]))])
    db.session.commit()

    assert [(outcome.file_name, outcome.status) for outcome in outcomes] == [(name, "error")]
    assert einvoice_state(invoice.id) is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(EInvoiceReceipt)) == 0


def test_a_zip_stops_when_its_files_pass_the_total_budget(invoice, client, monkeypatch):
    other = db.session.get(
        Invoice, posted_invoice(client, bearer("back_office"), billing_customer("Beta Srl", vat_number="00488410010"))
    )
    first, second = receipt_file(invoice, "RicevutaConsegna", "RC"), receipt_file(other, "RicevutaConsegna", "RC")
    monkeypatch.setattr(einvoice_exchange, "MAX_ZIP_BYTES", len(first[1]) + len(second[1]) // 2)

    outcomes = einvoice_exchange.import_receipts([("ricevute.zip", zip_of([first, second], zipfile.ZIP_STORED))])
    db.session.commit()

    assert [(outcome.file_name, outcome.status) for outcome in outcomes] == [
        (first[0], "imported"),
        ("ricevute.zip", "error"),
    ]
    assert (einvoice_state(invoice.id), einvoice_state(other.id)) == ("delivered", None)


def test_the_invoice_page_says_the_public_body_outcome_in_words(app):
    api = app.test_client()
    with app.app_context():
        add_company()
        invoice = db.session.get(Invoice, posted_invoice(api, bearer("dealer_admin"), billing_customer()))
        einvoice_exchange.import_receipts(
            [
                receipt_file(invoice, "RicevutaConsegna", "RC"),
                receipt_file(invoice, "NotificaEsito", "NE", outcome="EC02"),
            ]
        )
        db.session.commit()
        invoice_id = invoice.id
    office = logged_in(app, "office@rossi.example", "back_office")

    page = office.get(f"/admin/invoicing_invoices_admin/{invoice_id}").get_data(as_text=True)

    with app.test_request_context(), force_locale("it"):
        refused = str(escape(str(einvoice_exchange.OUTCOME_LABELS["EC02"])))
    assert f'<span data-outcome="EC02">{refused}</span>' in page
    assert ">EC02<" not in page
