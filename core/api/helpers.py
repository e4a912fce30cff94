"""What every /api/v1 resource needs: ids in paths and fields, get-or-404, and field errors answered as problems."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import marshmallow as ma
from sqlalchemy import Select

from core.api.errors import ApiProblem
from core.api.fields import Integer
from core.db import db
from core.validation import ValidationError

# Ids are the database's 32-bit integers: a larger one in a path is a 404, in a body or query a 422, never a 500.
MAX_ID = 2**31 - 1
ID_PATH = f"int(min=1, max={MAX_ID})"  # in a route: f"/<{ID_PATH}:device_id>"


def id_field(**kwargs: Any) -> Integer:
    """An id in a body or a query string: a whole number from 1 to MAX_ID."""
    return Integer(validate=ma.validate.Range(min=1, max=MAX_ID), **kwargs)


def get_or_404(query: Select) -> Any:
    """The first row of `query`, else a 404 problem; a row the caller may not see answers like a missing one."""
    row = db.session.scalars(query).first()
    if row is None:
        raise ApiProblem(404)
    return row


Status = int | Callable[[dict[str, str]], int]


@contextmanager
def answering(status: Status = 422) -> Iterator[None]:
    """Run the block; a ValidationError raised in it rolls back what the request changed and answers with its errors.

    `status` is the code, or a function of the errors choosing it (a conflict with the record's state is a 409).
    """
    try:
        yield
    except ValidationError as error:
        db.session.rollback()
        raise ApiProblem(status(error.errors) if callable(status) else status, errors=error.errors) from None


@contextmanager
def committing(status: Status = 422) -> Iterator[None]:
    """Run the block and commit; a ValidationError raised in it rolls back and answers as `answering` does."""
    with answering(status):
        yield
    db.session.commit()
