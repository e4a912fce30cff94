"""Customers see their own rows only: the customer_scoped helper every data query of a customer goes through."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from werkzeug.exceptions import NotFound

from core.auth.scoping import customer_scoped, get_scoped_or_404
from core.auth.sessions import log_in
from core.db import db
from core.models import Partner, User
from tests.auth_support import make_customer, make_user


@pytest.fixture
def two_customers(app):
    with app.app_context():
        bianchi = make_customer("Studio Bianchi")
        rossi = make_customer("Farmacia Rossi")
        make_user("anna@bianchi.it", "customer_admin", customer_id=bianchi)
        make_user("luca@bianchi.it", "customer_user", customer_id=bianchi)
        make_user("mara@rossi.it", "customer_user", customer_id=rossi)
        make_user("office@dealer.it", "back_office")
    return bianchi, rossi


def _as(app, email: str):
    """A request context with `email` logged in, as a portal page would have."""
    context = app.test_request_context("/portal/")
    context.push()
    log_in(db.session.scalars(sa.select(User).where(User.email == email)).one())
    return context


def test_customer_sees_only_its_own_users(app, two_customers):
    context = _as(app, "mara@rossi.it")
    try:
        emails = db.session.scalars(customer_scoped(sa.select(User.email), User.customer_id)).all()
        assert emails == ["mara@rossi.it"]
    finally:
        context.pop()


def test_customer_cannot_read_another_customers_row_by_id(app, two_customers):
    bianchi, rossi = two_customers
    context = _as(app, "mara@rossi.it")
    try:
        assert get_scoped_or_404(Partner, rossi, Partner.id).name == "Farmacia Rossi"
        with pytest.raises(NotFound):
            get_scoped_or_404(Partner, bianchi, Partner.id)
        stmt = customer_scoped(sa.select(Partner).where(Partner.id == bianchi), Partner.id)
        assert db.session.scalars(stmt).first() is None
    finally:
        context.pop()


def test_legacy_queries_are_scoped_too(app, two_customers):
    context = _as(app, "anna@bianchi.it")
    try:
        query = customer_scoped(db.session.query(User), User.customer_id)
        assert sorted(user.email for user in query) == ["anna@bianchi.it", "luca@bianchi.it"]
    finally:
        context.pop()


def test_staff_see_every_customer(app, two_customers):
    context = _as(app, "office@dealer.it")
    try:
        names = db.session.scalars(customer_scoped(sa.select(Partner.name), Partner.id)).all()
        assert sorted(names) == ["Farmacia Rossi", "Studio Bianchi"]
    finally:
        context.pop()


def test_anonymous_and_inactive_users_see_nothing(app, two_customers):
    with app.test_request_context("/portal/"):
        assert db.session.scalars(customer_scoped(sa.select(Partner), Partner.id)).all() == []
    with app.app_context():
        mara = db.session.scalars(sa.select(User).where(User.email == "mara@rossi.it")).one()
        mara.active = False
        assert db.session.scalars(customer_scoped(sa.select(Partner), Partner.id, user=mara)).all() == []


def test_an_explicit_user_is_scoped_without_a_request(app, two_customers):
    _bianchi, rossi = two_customers
    with app.app_context():
        mara = db.session.scalars(sa.select(User).where(User.email == "mara@rossi.it")).one()
        ids = db.session.scalars(customer_scoped(sa.select(Partner.id), Partner.id, user=mara)).all()
        assert ids == [rossi]
