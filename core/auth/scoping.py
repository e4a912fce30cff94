"""The one place that confines data to a customer: every query a customer's request runs goes through here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import abort
from flask_login import current_user

from core.db import db
from core.permissions import customer_scope, is_staff

Q = TypeVar("Q")


def confined_customer(user: Any = None) -> int | None:
    """The customer `user` (default: the logged-in user) is confined to: its partner for a customer role; None for
    staff, who see every customer, and for anyone without a customer role."""
    return customer_scope(current_user if user is None else user)


def customer_or_404(user: Any = None) -> int:
    """The customer of a customer user, for the pages that show one customer's data (the portal's); 404 for others."""
    customer_id = confined_customer(user)
    if customer_id is None:
        abort(404)
    return customer_id


def scoped_by(query_or_select: Q, condition: Callable[[int], Any], user: Any = None) -> Q:
    """Restrict a select (or legacy query) to the rows `condition(customer_id)` lets `user`'s customer see.

    Staff see every row; a customer role sees the rows its customer's condition selects (a column equal to it, or a
    window of time, e.g. while the customer had a device); anyone else (anonymous, inactive, unknown role) sees nothing.
    """
    user = current_user if user is None else user
    if not getattr(user, "is_authenticated", False) or not getattr(user, "active", False):
        return query_or_select.where(sa.false())
    if is_staff(user):
        return query_or_select
    scope = confined_customer(user)
    if scope is None:
        return query_or_select.where(sa.false())
    return query_or_select.where(condition(scope))


def customer_scoped(query_or_select: Q, model_customer_column: Any, user: Any = None) -> Q:
    """Restrict a select (or legacy query) to `user`'s customer (default: the logged-in user): rows whose
    `model_customer_column` is that customer."""
    return scoped_by(query_or_select, lambda customer_id: model_customer_column == customer_id, user)


def get_scoped_or_404(model: Any, ident: Any, model_customer_column: Any, user: Any = None) -> Any:
    """One row by primary key, or 404 when it does not exist or belongs to another customer."""
    pk = sa.inspect(model).primary_key[0]
    row = db.session.scalars(customer_scoped(sa.select(model).where(pk == ident), model_customer_column, user)).first()
    if row is None:
        abort(404)
    return row
