"""The back office's doors and the Users and Audit log admin views: who gets in, who may change whom."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from core.models import AuditLog, OutboxMessage, User
from tests.auth_support import CSRF_RE, login, make_customer, make_user


@pytest.fixture(autouse=True)
def _fresh_limits(app):
    limiter.reset()


def _admin_urls(app) -> list[str]:
    admin = app.extensions["copydesk"].admin
    return [view.url.rstrip("/") + "/" for view in admin._views]


def _logged_in(app, role: str, customer: bool = False):
    with app.app_context():
        customer_id = make_customer() if customer else None
        make_user(f"{role}@example.it", role, customer_id=customer_id)
    client = app.test_client()
    assert login(client, f"{role}@example.it").status_code == 302
    return client


def _save_user(client, url: str, **fields):
    token = CSRF_RE.search(client.get(url).get_data(as_text=True)).group(1)
    data = {"csrf_token": token, "name": "Someone", "language": "", "customer": "__None", "active": "y", **fields}
    return client.post(url, data=data, follow_redirects=True)


def test_staff_get_the_back_office(app):
    for role in ("dealer_admin", "back_office", "technician"):
        assert _logged_in(app, role).get("/admin/").status_code == 200


def test_customer_roles_get_403_on_every_admin_page(app):
    for role in ("customer_admin", "customer_user"):
        client = _logged_in(app, role, customer=True)
        urls = _admin_urls(app)
        assert "/admin/core_user/" in urls
        for url in urls:
            assert client.get(url).status_code == 403, url


def test_anonymous_visitors_are_sent_to_the_login_page_and_back(app, client):
    for url in _admin_urls(app):
        response = client.get(url)
        assert response.status_code == 302, url
        location = unquote(response.headers["Location"])
        assert location.startswith("/login?next=/admin"), location


def test_technician_may_not_manage_users_or_read_the_audit_log(app):
    client = _logged_in(app, "technician")
    assert client.get("/admin/core_user/").status_code == 403
    assert client.get("/admin/core_audit/").status_code == 403


def test_back_office_manages_users_but_does_not_read_the_audit_log(app):
    client = _logged_in(app, "back_office")
    assert client.get("/admin/core_user/").status_code == 200
    assert client.get("/admin/core_audit/").status_code == 403


def test_creating_a_customer_user_emails_a_set_password_link(app):
    client = _logged_in(app, "dealer_admin")
    with app.app_context():
        customer_id = make_customer("Farmacia San Marco")
    page = _save_user(
        client,
        "/admin/core_user/new/",
        email="Mario.Rossi@Farmacia.IT",
        name="Mario Rossi",
        role="customer_user",
        customer=str(customer_id),
    )
    assert page.status_code == 200
    assert "mario.rossi@farmacia.it will receive an email" in page.get_data(as_text=True)
    with app.app_context():
        user = db.session.scalars(sa.select(User).where(User.role == "customer_user")).one()
        assert user.email == "mario.rossi@farmacia.it"
        assert user.customer_id == customer_id
        assert user.password_hash is None
        message = db.session.scalars(sa.select(OutboxMessage)).one()
        assert message.recipients == ["mario.rossi@farmacia.it"]
        assert "/set-password/" in message.body_text
        created = db.session.scalars(
            sa.select(AuditLog).where(AuditLog.action == "create", AuditLog.object_type == "core_user")
        ).all()
        assert [entry.actor for entry in created if entry.object_id == str(user.id)] == ["dealer_admin@example.it"]


def test_the_user_form_has_no_password_field_and_the_details_show_no_hash(app):
    client = _logged_in(app, "dealer_admin")
    form = client.get("/admin/core_user/new/").get_data(as_text=True)
    assert 'type="password"' not in form
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id))
    details = client.get(f"/admin/core_user/details/?id={user_id}").get_data(as_text=True)
    assert "scrypt" not in details
    assert "Password Hash" not in details


def test_duplicate_email_is_refused_whatever_its_case(app):
    client = _logged_in(app, "dealer_admin")
    page = _save_user(client, "/admin/core_user/new/", email="DEALER_ADMIN@example.it", role="technician")
    assert "A user with the email dealer_admin@example.it already exists" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(User.id))) == 1


def test_customer_role_without_a_customer_is_refused_clearly(app):
    client = _logged_in(app, "dealer_admin")
    page = _save_user(client, "/admin/core_user/new/", email="x@studio.it", role="customer_admin")
    assert "A customer user needs the customer it belongs to" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(User.id))) == 1
        assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 0


def test_staff_role_with_a_customer_is_refused_clearly(app):
    client = _logged_in(app, "dealer_admin")
    with app.app_context():
        customer_id = make_customer()
    page = _save_user(client, "/admin/core_user/new/", email="x@dealer.it", role="technician", customer=customer_id)
    assert "Staff users do not belong to a customer" in page.get_data(as_text=True)


def test_back_office_cannot_create_staff_accounts(app):
    client = _logged_in(app, "back_office")
    form = client.get("/admin/core_user/new/").get_data(as_text=True)
    assert 'value="customer_user"' in form
    assert 'value="technician"' not in form
    page = _save_user(client, "/admin/core_user/new/", email="new.tech@dealer.it", role="technician")
    assert "Not a valid choice" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(User.id).where(User.email == "new.tech@dealer.it")) is None


def test_back_office_creates_customer_users(app):
    client = _logged_in(app, "back_office")
    with app.app_context():
        customer_id = make_customer()
    _save_user(client, "/admin/core_user/new/", email="anna@studio.it", role="customer_admin", customer=customer_id)
    with app.app_context():
        assert db.session.scalar(sa.select(User.role).where(User.email == "anna@studio.it")) == "customer_admin"


def test_back_office_cannot_edit_a_staff_account_or_promote_a_customer(app):
    client = _logged_in(app, "back_office")
    with app.app_context():
        tech_id = make_user("tech@dealer.it", "technician").id
        customer_id = make_customer()
        anna_id = make_user("anna@studio.it", "customer_user", customer_id=customer_id).id
    page = _save_user(
        client,
        f"/admin/core_user/edit/?id={tech_id}",
        email="tech@dealer.it",
        role="customer_user",
        customer=customer_id,
    )
    assert "Only a dealer administrator" in page.get_data(as_text=True)
    page = _save_user(client, f"/admin/core_user/edit/?id={anna_id}", email="anna@studio.it", role="technician")
    assert "Only a dealer administrator" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, tech_id).role == "technician"
        assert db.session.get(User, anna_id).role == "customer_user"


def test_dealer_admin_edits_staff_accounts(app):
    client = _logged_in(app, "dealer_admin")
    with app.app_context():
        tech_id = make_user("tech@dealer.it", "technician").id
    _save_user(client, f"/admin/core_user/edit/?id={tech_id}", email="tech@dealer.it", name="Luca", role="back_office")
    with app.app_context():
        assert db.session.get(User, tech_id).role == "back_office"


def test_the_last_active_dealer_admin_cannot_be_deactivated(app):
    client = _logged_in(app, "dealer_admin")
    with app.app_context():
        admin_id = db.session.scalar(sa.select(User.id))
    page = _save_user(
        client, f"/admin/core_user/edit/?id={admin_id}", email="dealer_admin@example.it", role="dealer_admin", active=""
    )
    assert "At least one active dealer administrator must remain" in page.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, admin_id).active is True


def test_send_set_password_action_emails_the_selected_users(app):
    client = _logged_in(app, "back_office")
    with app.app_context():
        customer_id = make_customer()
        anna_id = make_user("anna@studio.it", "customer_user", customer_id=customer_id).id
        tech_id = make_user("tech@dealer.it", "technician").id
    token = CSRF_RE.search(client.get("/admin/core_user/").get_data(as_text=True)).group(1)
    page = client.post(
        "/admin/core_user/action/",
        data={"csrf_token": token, "action": "send_set_password", "rowid": [str(anna_id), str(tech_id)]},
        follow_redirects=True,
    )
    text = page.get_data(as_text=True)
    assert "Set-password email queued for: anna@studio.it" in text
    assert "tech@dealer.it" in text  # named among the refused ones
    with app.app_context():
        assert [m.recipients for m in db.session.scalars(sa.select(OutboxMessage))] == [["anna@studio.it"]]


def test_audit_log_lists_logins_and_failures_read_only(app):
    client = _logged_in(app, "dealer_admin")
    login(app.test_client(), "dealer_admin@example.it", "wrong password!")
    page = client.get("/admin/core_audit/")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Failed login" in text and "login_failed" not in text
    assert "/admin/core_audit/new/" not in text
    assert client.get("/admin/core_audit/new/").status_code in (302, 403)
    filtered = client.get("/admin/core_audit/?search=login_failed").get_data(as_text=True)
    assert "Failed login" in filtered
