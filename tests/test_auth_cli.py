"""`flask users ...`: creating users from the shell, listing them, issuing and revoking API tokens."""

from __future__ import annotations

import sqlalchemy as sa

from core.api.tokens import authenticate_token
from core.db import db
from core.models import ApiToken, OutboxMessage, User
from tests.auth_support import login, make_customer, make_user


def _run(app, *args, input=None):
    return app.test_cli_runner().invoke(args=["users", *args], input=input)


def test_create_with_password_from_stdin_can_log_in(app, client):
    result = _run(
        app, "create", "Admin@Dealer.it", "--role", "dealer_admin", "--password-stdin", input="a long password\n"
    )
    assert result.exit_code == 0, result.output
    assert "Created user" in result.output
    assert login(client, "admin@dealer.it", "a long password").status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(OutboxMessage.id))) == 0


def test_create_without_password_queues_the_set_password_email(app):
    with app.app_context():
        customer_id = make_customer()
    result = _run(app, "create", "anna@studio.it", "--role", "customer_user", "--customer", str(customer_id))
    assert result.exit_code == 0, result.output
    assert "A set-password email is queued for anna@studio.it" in result.output
    with app.app_context():
        user = db.session.scalars(sa.select(User)).one()
        assert user.name == "anna"
        assert user.password_hash is None
        message = db.session.scalars(sa.select(OutboxMessage)).one()
        assert message.recipients == ["anna@studio.it"]


def test_create_refuses_an_unknown_role(app):
    result = _run(app, "create", "x@dealer.it", "--role", "boss")
    assert result.exit_code == 2
    assert "'boss' is not one of" in result.output


def test_create_refuses_a_customer_role_without_customer(app):
    result = _run(app, "create", "x@studio.it", "--role", "customer_admin")
    assert result.exit_code == 1
    assert "customer: A customer user needs the customer it belongs to" in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(User.id))) == 0


def test_create_refuses_a_duplicate_email(app):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    result = _run(app, "create", "ADMIN@dealer.it", "--role", "technician")
    assert result.exit_code == 1
    assert "A user with the email admin@dealer.it already exists" in result.output


def test_create_refuses_a_short_password(app):
    result = _run(app, "create", "x@dealer.it", "--role", "technician", "--password-stdin", input="short\n")
    assert result.exit_code == 1
    assert "at least 10 characters" in result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(User.id))) == 0


def test_list_shows_every_user(app):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
        make_user("anna@studio.it", "customer_user", customer_id=make_customer("Studio Bianchi"))
    result = _run(app, "list")
    assert result.exit_code == 0
    assert "admin@dealer.it" in result.output
    assert "Studio Bianchi" in result.output


def test_token_prints_a_working_token_alone_on_the_last_line(app, client):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    result = _run(app, "token", "admin@dealer.it", "--name", "erp sync")
    assert result.exit_code == 0, result.output
    plaintext = result.output.strip().splitlines()[-1]
    assert " " not in plaintext
    with app.app_context():
        assert authenticate_token(plaintext).email == "admin@dealer.it"
        assert db.session.scalars(sa.select(ApiToken)).one().name == "erp sync"


def test_token_for_an_unknown_user_is_refused(app):
    result = _run(app, "token", "nobody@dealer.it")
    assert result.exit_code == 1
    assert "there is no user with the email nobody@dealer.it" in result.output


def test_revoked_token_stops_working(app):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    plaintext = _run(app, "token", "admin@dealer.it").output.strip().splitlines()[-1]
    with app.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id))
    result = _run(app, "revoke-token", str(token_id))
    assert result.exit_code == 0
    with app.app_context():
        assert authenticate_token(plaintext) is None
    again = _run(app, "revoke-token", str(token_id))
    assert again.exit_code == 1
    assert f"there is no active token with id {token_id}" in again.output
