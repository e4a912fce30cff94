"""The one pagination convention of the API: `page`/`per_page` in, {items, page, per_page, total} out."""

from __future__ import annotations

from functools import cache
from typing import Any

import marshmallow as ma
from sqlalchemy import Select, func, select

from core.api.fields import Integer
from core.db import db

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
MAX_PAGE = 1_000_000


class PageArgs(ma.Schema):
    """Query arguments of every list operation; subclass it to add filters."""

    page = Integer(
        load_default=1, validate=ma.validate.Range(min=1, max=MAX_PAGE), metadata={"description": "1-based page."}
    )
    per_page = Integer(
        load_default=DEFAULT_PER_PAGE,
        validate=ma.validate.Range(min=1, max=MAX_PER_PAGE),
        metadata={"description": f"Items per page, at most {MAX_PER_PAGE}."},
    )


@cache
def page_schema(item_schema: type[ma.Schema]) -> type[ma.Schema]:
    """The response schema of a list operation: one page of `item_schema` with the total count."""
    name = item_schema.__name__.removesuffix("Schema") + "PageSchema"
    return ma.Schema.from_dict(
        {
            "items": ma.fields.List(ma.fields.Nested(item_schema), required=True),
            "page": Integer(required=True),
            "per_page": Integer(required=True),
            "total": Integer(required=True, metadata={"description": "Items matching, on all pages."}),
        },
        name=name,
    )


def paginate(query: Select, args: dict[str, Any]) -> dict[str, Any]:
    """Run `query` (ordered, for stable pages) for the page in `args` (loaded by PageArgs) and count all matches."""
    page, per_page = args["page"], args["per_page"]
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    items = db.session.scalars(query.limit(per_page).offset((page - 1) * per_page)).all()
    return {"items": items, "page": page, "per_page": per_page, "total": total}
