"""Helpers for the records tests (print users, cards, cost centers, import, CRUD API): customers and API callers."""

from __future__ import annotations

import sqlalchemy as sa

from core.db import db
from core.models import Partner
from tests.api_support import add_customer, bearer

API = "/api/v1/device-accounting"
PROBLEM = "application/problem+json"


def customer(name: str = "Studio Legale Bianchi", **fields) -> Partner:
    return add_customer(name, **fields)


def admin_of(partner: Partner, email: str | None = None) -> dict[str, str]:
    """A bearer header of a new customer admin of `partner`."""
    return bearer("customer_admin", customer=partner, email=email or f"admin{partner.id}@example.com")


def problem_fields(response, status: int = 422) -> dict[str, str]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def created(response) -> dict:
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()
