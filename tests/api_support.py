"""Helpers for the API tests: users of each role with a bearer token, customers to look at."""

from __future__ import annotations

from core.api.tokens import create_token
from core.db import db
from core.models import Partner, User


def add_customer(name: str, **fields) -> Partner:
    partner = Partner(name=name, is_customer=True, **fields)
    db.session.add(partner)
    db.session.commit()
    return partner


def add_user(role: str, email: str | None = None, customer: Partner | None = None, **fields) -> User:
    user = User(
        email=email or f"{role}@example.com",
        name=role.replace("_", " ").title(),
        role=role,
        customer_id=customer.id if customer else None,
        **fields,
    )
    db.session.add(user)
    db.session.commit()
    return user


def bearer(role: str, customer: Partner | None = None, **fields) -> dict[str, str]:
    """Authorization header of a new token for a new user with `role`."""
    _token, plaintext = create_token(add_user(role, customer=customer, **fields), "tests")
    return {"Authorization": f"Bearer {plaintext}"}
