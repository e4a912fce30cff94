"""/api/v1/customers: list, create, read and update customers; a customer's token sees only its own record."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import url_for
from flask.views import MethodView
from flask_babel import gettext as _
from sqlalchemy import Select

from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.errors import ApiProblem
from core.api.fields import Boolean, Email, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, get_or_404
from core.api.pagination import PageArgs, page_schema, paginate
from core.auth.scoping import customer_scoped
from core.db import contains, db
from core.models import Partner
from core.partners import LANGUAGES, MAX_INSTALMENTS, PAYMENT_METHODS, validate_partner_fields

ADDRESS_FIELDS = ("street", "city", "postal_code", "province", "country")
# Identifiers are sent with spaces or a country prefix at times; the stored, normalized form must fit the column.
STORED_LENGTHS = {"vat_number": 20, "fiscal_code": 20}

blp = ApiBlueprint("customers", __name__, url_prefix="/customers", description="The dealer's customers.")


class AddressSchema(ma.Schema):
    street = String(allow_none=True, validate=ma.validate.Length(max=200))
    city = String(allow_none=True, validate=ma.validate.Length(max=100))
    postal_code = String(allow_none=True, validate=ma.validate.Length(max=20))
    province = String(allow_none=True, validate=ma.validate.Length(max=10))
    country = String(
        validate=ma.validate.Regexp(r"^[A-Za-z]{2}$"), metadata={"description": "ISO 3166-1 alpha-2, e.g. IT."}
    )


class CustomerSchema(ma.Schema):
    id = Integer(dump_only=True)
    name = String(required=True, validate=ma.validate.Length(min=1, max=200))
    vat_number = String(allow_none=True, validate=ma.validate.Length(max=30), metadata={"description": "Partita IVA."})
    fiscal_code = String(
        allow_none=True, validate=ma.validate.Length(max=30), metadata={"description": "Codice fiscale."}
    )
    email = Email(allow_none=True, validate=ma.validate.Length(max=254))
    pec = Email(allow_none=True, validate=ma.validate.Length(max=254), metadata={"description": "Certified email."})
    sdi_code = String(
        allow_none=True,
        validate=ma.validate.Length(max=7),
        metadata={
            "description": "E-invoice code: 7 characters (Codice Destinatario); for a public administration its "
            "6-character office code (Codice Univoco Ufficio), required."
        },
    )
    phone = String(allow_none=True, validate=ma.validate.Length(max=40))
    language = String(validate=ma.validate.OneOf(LANGUAGES))
    payment_terms_days = Integer(validate=ma.validate.Range(min=0, max=3650))
    payment_end_of_month = Boolean()
    split_payment = Boolean(metadata={"description": "Scissione dei pagamenti: the customer pays only the net."})
    public_administration = Boolean(
        metadata={"description": "A public body: FPA12 e-invoices to its office code (`sdi_code`, 6 characters)."}
    )
    payment_method = String(validate=ma.validate.OneOf(PAYMENT_METHODS))
    payment_instalments = Integer(
        validate=ma.validate.Range(min=1, max=MAX_INSTALMENTS),
        metadata={"description": "Equal instalments, each due the payment terms after the previous one."},
    )
    active = Boolean()
    notes = String(allow_none=True, validate=ma.validate.Length(max=10_000))
    address = ma.fields.Nested(AddressSchema)
    created_at = UtcDateTime(dump_only=True)

    @ma.pre_dump
    def _nest_address(self, partner: Partner, **kwargs: Any) -> dict[str, Any]:
        data = {key: getattr(partner, key) for key in self.dump_fields if key != "address"}
        data["address"] = {key: getattr(partner, key) for key in ADDRESS_FIELDS}
        return data


class CustomerPatchSchema(CustomerSchema):
    name = String(validate=ma.validate.Length(min=1, max=200))


class CustomerListArgs(PageArgs):
    q = String(validate=ma.validate.Length(max=200), metadata={"description": "Part of the name, any case."})


def _visible_customers() -> Select:
    """Customers the caller may see: all for staff, only its own for a customer's user."""
    return customer_scoped(db.select(Partner).where(Partner.is_customer.is_(True)), Partner.id, api_user())


def _get_visible(customer_id: int) -> Partner:
    # Someone else's customer answers 404 like a missing one: its existence is not disclosed.
    return get_or_404(_visible_customers().where(Partner.id == customer_id))


def _apply(partner: Partner, data: dict[str, Any]) -> None:
    """Validate and write `data` onto `partner`; nothing is written when any field is invalid."""
    changes = {key: value for key, value in data.items() if key != "address"} | data.get("address", {})
    if "country" in changes:
        changes["country"] = changes["country"].upper()
    # VAT number and fiscal code are checked against the country, so a change to any of the three checks all three.
    checked = dict(changes)
    if checked.keys() & {"vat_number", "fiscal_code", "country"}:
        for key in ("vat_number", "fiscal_code", "country"):
            checked.setdefault(key, getattr(partner, key))
    # The SDI code's length depends on whether the customer is a public administration (6) or not (7).
    if checked.keys() & {"sdi_code", "public_administration"}:
        for key in ("sdi_code", "public_administration"):
            checked.setdefault(key, getattr(partner, key))
    clean, errors = validate_partner_fields(checked)
    for key, limit in STORED_LENGTHS.items():
        if key not in errors and clean.get(key) and len(clean[key]) > limit:
            errors[key] = _("At most %(max)d characters once normalized.", max=limit)
    if errors:
        raise ApiProblem(422, errors=dict(sorted(errors.items())))
    for key in changes:
        setattr(partner, key, clean[key])


@blp.route("")
class Customers(MethodView):
    @require("partners.view", "portal.access")
    @blp.arguments(CustomerListArgs, location="query")
    @blp.response(200, page_schema(CustomerSchema))
    def get(self, args: dict[str, Any]):
        """List customers

        Ordered by name; `q` filters by part of the name. A customer's token lists only its own customer.
        """
        query = _visible_customers().order_by(Partner.name, Partner.id)
        if args.get("q"):
            query = query.where(contains(Partner.name, args["q"]))
        return paginate(query, args)

    @require("partners.edit")
    @blp.arguments(CustomerSchema)
    @blp.response(201, CustomerSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a customer

        VAT number, fiscal code and SDI code are checked and normalized; an invalid one is a 422 naming the field.
        """
        partner = Partner(is_customer=True, is_supplier=False, country="IT", language="it")
        _apply(partner, data)
        db.session.add(partner)
        db.session.commit()
        return partner, 201, {"Location": url_for("customers.Customer", customer_id=partner.id)}


@blp.route(f"/<{ID_PATH}:customer_id>")
class Customer(MethodView):
    @require("partners.view", "portal.access")
    @blp.response(200, CustomerSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, customer_id: int):
        """Read a customer"""
        return _get_visible(customer_id)

    @require("partners.edit")
    @blp.arguments(CustomerPatchSchema)
    @blp.response(200, CustomerSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], customer_id: int):
        """Update a customer

        Only the fields sent change; `address` may hold only some of its fields.
        """
        partner = _get_visible(customer_id)
        _apply(partner, data)
        db.session.commit()
        return partner
