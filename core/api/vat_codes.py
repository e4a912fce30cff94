"""/api/v1/vat-codes: the dealer's VAT codes (rates, and 0% codes with their Natura); staff list and read them,
billing staff add and change them. A code is taken out of use (`active: false`), never deleted."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import url_for
from flask.views import MethodView

from core import vat_codes
from core.api.auth import require
from core.api.blueprint import ApiBlueprint
from core.api.fields import Boolean, DecimalString, Integer, String
from core.api.helpers import committing, get_or_404
from core.api.pagination import PageArgs, page_schema, paginate
from core.db import db
from core.models import VatCode

blp = ApiBlueprint(
    "vat_codes", __name__, url_prefix="/vat-codes", description="VAT codes: rates, and 0% codes with their Natura."
)

READ = ("billing.manage", "contracts.view")
EDIT = "billing.manage"


class VatCodeSchema(ma.Schema):
    code = String(
        required=True,
        validate=ma.validate.Length(min=1, max=10),
        metadata={"description": "What contracts and invoice lines name: 22, N2.1. It cannot change."},
    )
    rate = DecimalString(required=True, metadata={"description": 'Percent, e.g. "22.00"; "0.00" needs a nature.'})
    description_it = String(required=True, validate=ma.validate.Length(min=1, max=200))
    description_en = String(allow_none=True, validate=ma.validate.Length(max=200))
    description_es = String(allow_none=True, validate=ma.validate.Length(max=200))
    nature = String(
        allow_none=True,
        validate=ma.validate.Length(max=5),
        metadata={"description": "FatturaPA Natura (N1, N2.1 ... N7), only on 0% codes; N2, N3 and N6 are refused."},
    )
    legal_reference = String(
        allow_none=True,
        validate=ma.validate.Length(max=100),
        metadata={"description": "RiferimentoNormativo: the law a 0% code cites, required with a nature."},
    )
    chargeability = String(
        validate=ma.validate.OneOf(tuple(vat_codes.CHARGEABILITY_LABELS)),
        metadata={"description": "EsigibilitaIVA: I immediate, D deferred, S split payment."},
    )
    stamp_duty = Boolean(metadata={"description": "Its amounts count toward the 77.47 EUR stamp duty threshold."})
    active = Boolean()
    position = Integer(validate=ma.validate.Range(min=0, max=vat_codes.MAX_POSITION))


class VatCodePatchSchema(VatCodeSchema):
    code = String(dump_only=True)
    rate = DecimalString()
    description_it = String(validate=ma.validate.Length(min=1, max=200))


class VatCodeListArgs(PageArgs):
    active = Boolean(metadata={"description": "Only the codes in use (true) or out of use (false)."})


def _ordered():
    return db.select(VatCode).order_by(VatCode.position, VatCode.code)


@blp.route("")
class VatCodes(MethodView):
    @require(*READ)
    @blp.arguments(VatCodeListArgs, location="query")
    @blp.response(200, page_schema(VatCodeSchema))
    def get(self, args: dict[str, Any]):
        """List VAT codes

        In list order (position, then code); a dealer with none yet gets the shipped set.
        """
        vat_codes.ensure_defaults()
        db.session.commit()
        query = _ordered()
        if "active" in args:
            query = query.where(VatCode.active.is_(args["active"]))
        return paginate(query, args)

    @require(EDIT)
    @blp.arguments(VatCodeSchema)
    @blp.response(201, VatCodeSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a VAT code

        A 0% code needs its Natura and legal reference; a generic Natura (N2, N3, N6) is a 422 naming `nature`.
        """
        vat_codes.ensure_defaults()
        with committing():
            code = vat_codes.save_code(None, data)
        return code, 201, {"Location": url_for("vat_codes.VatCodeResource", code=code.code)}


@blp.route("/<string(maxlength=10):code>")
class VatCodeResource(MethodView):
    @require(*READ)
    @blp.response(200, VatCodeSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, code: str):
        """Read a VAT code"""
        vat_codes.ensure_defaults()
        db.session.commit()
        return get_or_404(db.select(VatCode).where(VatCode.code == code.upper()))

    @require(EDIT)
    @blp.arguments(VatCodePatchSchema)
    @blp.response(200, VatCodeSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], code: str):
        """Update a VAT code

        Only the fields sent change; `active: false` takes it out of use (what already uses it keeps it).
        """
        vat_codes.ensure_defaults()
        found = get_or_404(db.select(VatCode).where(VatCode.code == code.upper()))
        with committing():
            vat_codes.save_code(found, data)
        return found
