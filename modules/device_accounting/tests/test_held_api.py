"""The held-jobs API: print servers submit with their own token (multipart), staff list and delete with theirs."""

from __future__ import annotations

import io

import pytest
import sqlalchemy as sa

from core.db import db
from modules.device_accounting import held_jobs as h
from modules.device_accounting.models import HeldDocument, HeldJob
from modules.device_accounting.print_servers import create_print_server
from modules.device_accounting.tests import held_support as hs
from modules.device_accounting.tests.records_support import PROBLEM, admin_of, problem_fields
from tests.api_support import add_user, bearer

URL = "/api/v1/device-accounting/held-jobs"


@pytest.fixture
def office(db_session):
    return hs.office()


def server_auth(office) -> dict[str, str]:
    return {"Authorization": f"Bearer {office.token}"}


def form(document: bytes | None = None, **fields) -> dict:
    data = {"user": "mrossi", "title": "Relazione.pdf", "copies": "2", "color": "false", "duplex": "true"}
    data.update(fields)
    if document is not False:
        data["document"] = (io.BytesIO(hs.pdf(3) if document is None else document), "job.pdf", "application/pdf")
    return data


def post(client, headers, **kwargs):
    return client.post(URL, data=form(**kwargs), headers=headers, content_type="multipart/form-data")


def stored() -> tuple[int, int]:
    jobs = db.session.scalar(sa.select(sa.func.count()).select_from(HeldJob))
    documents = db.session.scalar(sa.select(sa.func.count()).select_from(HeldDocument))
    return jobs, documents


def test_a_print_server_submits_a_job_and_a_repeated_job_key_stores_it_once(client, office):
    response = post(client, server_auth(office), job_key="17:5d3c-uuid")
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["user"], body["pages"], body["copies"], body["state"]) == ("mrossi", 3, 2, "held")
    assert body["estimated_cost"] == "0.0600" and body["expires_at"]

    again = post(client, server_auth(office), job_key="17:5d3c-uuid", copies="5")
    assert again.status_code == 200 and again.get_json()["id"] == body["id"] and again.get_json()["copies"] == 2
    assert stored() == (1, 1)
    # The same key from another print server is another job.
    _other, other_token = create_print_server(office.customer.id, "cups2")
    db.session.commit()
    assert post(client, {"Authorization": f"Bearer {other_token}"}, job_key="17:5d3c-uuid").status_code == 201
    assert stored() == (2, 2)


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"user": "gbianchi"}, "user", "gbianchi"),
        ({"document": b""}, "document", "empty"),
        ({"document": b"plain text, not a PDF"}, "document", "not a PDF"),
        ({"document": False}, "document", ""),
        ({"copies": "0"}, "copies", ""),
        ({"paper_size": "B5"}, "paper_size", ""),
        ({"color": "perhaps"}, "color", ""),
    ],
)
def test_bad_submissions_are_422_naming_the_field_and_store_nothing(client, office, fields, field, words):
    errors = problem_fields(post(client, server_auth(office), **fields))
    assert field in errors and words in errors[field]
    assert stored() == (0, 0)


def test_an_oversize_document_is_413_naming_the_document(app, client, office):
    document = hs.pdf(1)
    app.config["COPYDESK_HELD_JOB_MAX_BYTES"] = len(document) - 1
    try:
        response = post(client, server_auth(office), document=document)
    finally:
        app.config["COPYDESK_HELD_JOB_MAX_BYTES"] = h.MAX_DOCUMENT_BYTES
    assert set(problem_fields(response, 413)) == {"document"}
    assert stored() == (0, 0)


def test_a_body_far_beyond_the_limit_is_refused_before_it_is_read(app, client, office):
    app.config["COPYDESK_HELD_JOB_MAX_BYTES"] = 1000
    try:
        response = post(client, server_auth(office), document=b"%PDF-" + b"0" * 2_000_000)
    finally:
        app.config["COPYDESK_HELD_JOB_MAX_BYTES"] = h.MAX_DOCUMENT_BYTES
    assert response.status_code == 413 and response.mimetype == PROBLEM
    assert stored() == (0, 0)


def test_missing_wrong_staff_and_disabled_tokens_cannot_submit(client, office):
    staff = bearer("dealer_admin")
    for headers in ({}, {"Authorization": "Bearer cdps_not-a-token"}, {"Authorization": office.token}, staff):
        response = post(client, headers)
        assert response.status_code == 401 and response.mimetype == PROBLEM
    office.server.active = False
    db.session.commit()
    assert post(client, server_auth(office)).status_code == 401
    assert stored() == (0, 0)


def test_a_browser_session_cannot_submit(app, client, office):
    from flask import session

    from core.auth.sessions import log_in

    user = add_user("dealer_admin", email="boss@example.com")
    with app.test_request_context(environ_base=client.environ_base):
        log_in(user)
        db.session.commit()
        logged_in = dict(session)
    with client.session_transaction() as client_session:
        client_session.update(logged_in)
    assert client.get("/admin/").status_code == 200
    assert post(client, {}).status_code == 401
    assert stored() == (0, 0)


def test_a_print_server_token_opens_no_staff_route(client, office):
    post(client, server_auth(office))
    job_id = db.session.scalar(sa.select(HeldJob.id))
    assert client.get(URL, headers=server_auth(office)).status_code == 401
    assert client.delete(f"{URL}/{job_id}", headers=server_auth(office)).status_code == 401
    assert client.get("/api/v1/customers", headers=server_auth(office)).status_code == 401
    assert stored() == (1, 1)


def test_staff_list_and_delete_held_jobs_and_the_document_goes(client, office):
    staff = bearer("back_office")
    post(client, server_auth(office), user="mrossi")
    post(client, server_auth(office), user="lverdi")
    listed = client.get(URL, headers=staff).get_json()
    assert listed["total"] == 2 and [item["user"] for item in listed["items"]] == ["mrossi", "lverdi"]
    luisa = client.get(URL, headers=staff, query_string={"user_id": office.luisa.id}).get_json()["items"]
    assert [item["user"] for item in luisa] == ["lverdi"]

    job_id = luisa[0]["id"]
    deleted = client.delete(f"{URL}/{job_id}", headers=staff)
    assert deleted.status_code == 200 and deleted.get_json()["state"] == "deleted"
    assert db.session.get(HeldDocument, job_id) is None and stored() == (2, 1)
    assert client.delete(f"{URL}/{job_id}", headers=staff).status_code == 409
    assert client.get(URL, headers=staff, query_string={"state": "held"}).get_json()["total"] == 1
    # A technician reads but may not delete.
    technician = bearer("technician", email="tech@example.com")
    assert client.get(URL, headers=technician).status_code == 200
    other_id = client.get(URL, headers=staff, query_string={"state": "held"}).get_json()["items"][0]["id"]
    assert client.delete(f"{URL}/{other_id}", headers=technician).status_code == 403


def test_a_customer_admin_sees_and_deletes_only_its_own_customers_jobs(client, office):
    _server, other_token = create_print_server(office.other_customer.id, "farmacia")
    db.session.commit()
    post(client, server_auth(office), user="mrossi")
    post(client, {"Authorization": f"Bearer {other_token}"}, user="mrossi")
    ours, theirs = db.session.scalars(sa.select(HeldJob).order_by(HeldJob.id)).all()
    assert (ours.customer_id, theirs.customer_id) == (office.customer.id, office.other_customer.id)

    admin = admin_of(office.customer)
    listed = client.get(URL, headers=admin).get_json()
    assert [item["id"] for item in listed["items"]] == [ours.id]
    assert (
        client.get(URL, headers=admin, query_string={"customer_id": office.other_customer.id}).get_json()["items"] == []
    )
    assert client.delete(f"{URL}/{theirs.id}", headers=admin).status_code == 404
    assert client.delete(f"{URL}/{ours.id}", headers=admin).status_code == 200
    # A customer user has neither.
    user = bearer("customer_user", customer=office.customer, email="user@bianchi.it")
    assert client.get(URL, headers=user).status_code == 403
