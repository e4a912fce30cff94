"""/api/v1/device-accounting: print users with cards and PINs, cost centers, price lists, quotas, settings (CRUD).

Staff read everything (`print_accounting.view`) and change it (`print_accounting.edit`); a customer's admin
(`portal.print_accounting`) reads and changes only its own customer's records, and reads its price lists and the
dealer's defaults without changing them (prices are the dealer's: they reach the invoice). Another customer's ids
answer 404, as missing ones do.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import url_for
from flask.views import MethodView
from flask_babel import gettext as _
from sqlalchemy import Select
from sqlalchemy.orm import selectinload

from core.api import ApiProblem, register_api
from core.api.auth import api_user, require
from core.api.blueprint import ApiBlueprint
from core.api.fields import Boolean, DecimalString, Integer, String, UtcDateTime
from core.api.helpers import ID_PATH, MAX_ID, committing, get_or_404, id_field
from core.api.pagination import PageArgs, page_schema, paginate
from core.auth.scoping import confined_customer, customer_scoped, scoped_by
from core.context import ModuleContext
from core.db import contains, db
from core.models import Partner
from modules.device_accounting import cost_centers, customer_settings, pricing, quotas, users
from modules.device_accounting.models import (
    COLOURS,
    FUNCTIONS,
    PRICE_DUPLEX,
    PRICE_SIZES,
    QUOTA_MODES,
    QUOTA_PERIODS,
    AccountingSettings,
    Balance,
    Card,
    CostCenter,
    LedgerEntry,
    PriceList,
    PrintUser,
    Quota,
    Transaction,
    user_cost_center,
)

VIEW = ("print_accounting.view", "portal.print_accounting")
EDIT = ("print_accounting.edit", "portal.print_accounting")
PREFIX = "/device-accounting"
MONEY_LIMIT = Decimal("9999999999")

users_blp = ApiBlueprint(
    "device_accounting_users",
    __name__,
    url_prefix=f"{PREFIX}/users",
    description="Print users of the customers' devices, with their cards, PIN and password.",
)
cost_centers_blp = ApiBlueprint(
    "device_accounting_cost_centers",
    __name__,
    url_prefix=f"{PREFIX}/cost-centers",
    description="Cost centers: a tree per customer; a shared one has a balance of its own.",
)

price_lists_blp = ApiBlueprint(
    "device_accounting_price_lists",
    __name__,
    url_prefix=f"{PREFIX}/price-lists",
    description="Price lists of job accounting: the dealer's defaults and each customer's.",
)
quotas_blp = ApiBlueprint(
    "device_accounting_quotas",
    __name__,
    url_prefix=f"{PREFIX}/quotas",
    description="Quotas of print users and shared cost centers, with their current balance.",
)
settings_blp = ApiBlueprint(
    "device_accounting_settings",
    __name__,
    url_prefix=f"{PREFIX}/settings",
    description="Each customer's job-accounting settings: hidden document names, anonymisation.",
)
BLUEPRINTS = (users_blp, cost_centers_blp, price_lists_blp, quotas_blp, settings_blp)


def register(ctx: ModuleContext) -> None:
    for blueprint in BLUEPRINTS:
        register_api(ctx.app, blueprint)


def _new_record_customer(customer_id: int | None) -> int:
    """The customer a new record belongs to: a customer admin's own (another id is unknown to them); staff name it."""
    own = confined_customer(api_user())
    if own is not None:
        if customer_id is not None and customer_id != own:
            raise ApiProblem(422, errors={"customer_id": _("There is no customer with id %(id)s.", id=customer_id)})
        return own
    if customer_id is None:
        raise ApiProblem(422, errors={"customer_id": _("This field is required.")})
    return customer_id


def _location(endpoint: str, **values: Any) -> dict[str, str]:
    return {"Location": url_for(endpoint, **values)}


# Privileges: the same four fields on cost centers (defaults) and users (overrides); null inherits.


class PrivilegeFields(ma.Schema):
    allowed_functions = ma.fields.List(
        String(validate=ma.validate.OneOf(FUNCTIONS)),
        allow_none=True,
        validate=ma.validate.Length(max=len(FUNCTIONS) * 2),
        metadata={"description": "Functions allowed (" + ", ".join(FUNCTIONS) + "); null inherits."},
    )
    color_allowed = Boolean(allow_none=True, metadata={"description": "null inherits."})
    max_sides = Integer(
        allow_none=True,
        validate=ma.validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Most sides a job may have; null inherits."},
    )
    duplex_forced = Boolean(allow_none=True, metadata={"description": "null inherits."})


# Users


class CardSchema(ma.Schema):
    id = Integer(dump_only=True)
    user_id = Integer(dump_only=True)
    number = String(
        required=True,
        validate=ma.validate.Length(min=1, max=80),
        metadata={"description": "As the reader sends it: 1 to 64 letters or digits; leading zeros count."},
    )
    active = Boolean(dump_only=True)
    disabled_at = UtcDateTime(dump_only=True, allow_none=True)
    created_at = UtcDateTime(dump_only=True)


class CardPatchSchema(ma.Schema):
    active = Boolean(required=True, metadata={"description": "false disables a lost card, true enables it again."})


class UserFields(PrivilegeFields):
    username = String(validate=ma.validate.Length(min=1, max=100))
    full_name = String(validate=ma.validate.Length(max=200))
    email = String(allow_none=True, validate=ma.validate.Length(max=254))
    language = String(
        allow_none=True,
        validate=ma.validate.Length(max=5),
        metadata={"description": "it, en or es; null: the customer's."},
    )
    active = Boolean()
    default_cost_center_id = id_field(
        allow_none=True, metadata={"description": "Charged when the user picks none; added to cost_center_ids."}
    )
    cost_center_ids = ma.fields.List(
        id_field(), validate=ma.validate.Length(max=users.MAX_COST_CENTERS), metadata={"description": "May charge."}
    )


class UserCreateSchema(UserFields):
    customer_id = id_field(metadata={"description": "Required for staff; a customer's admin creates for its own."})
    username = String(required=True, validate=ma.validate.Length(min=1, max=100))
    cards = ma.fields.List(
        String(validate=ma.validate.Length(min=1, max=80)),
        validate=ma.validate.Length(max=20),
        metadata={"description": "Card numbers to give the user."},
    )
    pin = String(
        validate=ma.validate.Length(max=20), metadata={"description": "4 to 8 digits, unique in the customer."}
    )
    password = String(validate=ma.validate.Length(max=200))


class UserSchema(UserFields):
    id = Integer()
    customer_id = Integer()
    cards = ma.fields.List(ma.fields.Nested(CardSchema))
    has_pin = Boolean()
    pin_locked_until = UtcDateTime(allow_none=True)
    has_password = Boolean()
    directory_user = Boolean(metadata={"description": "The password is checked by the customer's directory (LDAP)."})
    created_at = UtcDateTime()

    @ma.pre_dump
    def _flatten(self, user: PrintUser, **kwargs: Any) -> dict[str, Any]:
        fields = ("id", "customer_id", "username", "full_name", "email", "language", "active", "directory_user")
        return {
            **{field: getattr(user, field) for field in fields},
            **{field: getattr(user, field) for field in cost_centers.PRIVILEGE_FIELDS},
            "default_cost_center_id": user.default_cost_center_id,
            "cost_center_ids": [center.id for center in user.cost_centers],
            "cards": user.cards,
            "has_pin": user.pin_digest is not None,
            "pin_locked_until": user.pin_locked_until,
            "has_password": user.password_hash is not None,
            "created_at": user.created_at,
        }


class UserListArgs(PageArgs):
    customer_id = id_field()
    q = String(validate=ma.validate.Length(max=100), metadata={"description": "Part of the username or full name."})
    active = Boolean()
    cost_center_id = id_field(metadata={"description": "Users who may charge this cost center."})
    card = String(validate=ma.validate.Length(max=80), metadata={"description": "The user of this exact card number."})


class PinSchema(ma.Schema):
    pin = String(
        validate=ma.validate.Length(max=20),
        metadata={"description": "4 to 8 digits; leave out to have a random 6-digit PIN chosen and answered once."},
    )


class PinResultSchema(ma.Schema):
    pin = String(allow_none=True, metadata={"description": "The PIN chosen for you; null when you sent one."})
    has_pin = Boolean()


class PasswordSchema(ma.Schema):
    password = String(required=True, validate=ma.validate.Length(min=1, max=200))


def _visible_users() -> Select:
    query = sa.select(PrintUser).options(selectinload(PrintUser.cards), selectinload(PrintUser.cost_centers))
    return customer_scoped(query, PrintUser.customer_id, api_user())


def _get_user(user_id: int) -> PrintUser:
    return get_or_404(_visible_users().where(PrintUser.id == user_id))


def _get_card(user: PrintUser, card_id: int) -> Card:
    card = next((card for card in user.cards if card.id == card_id), None)
    if card is None:
        raise ApiProblem(404)
    return card


def _user_fields(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in ("customer_id", "cards", "pin", "password")}


@users_blp.route("")
class Users(MethodView):
    @require(*VIEW)
    @users_blp.arguments(UserListArgs, location="query")
    @users_blp.response(200, page_schema(UserSchema))
    def get(self, args: dict[str, Any]):
        """List print users

        Ordered by customer and username. A customer's admin lists only its own customer's users.
        """
        query = _visible_users().order_by(PrintUser.customer_id, PrintUser.username_key, PrintUser.id)
        if args.get("customer_id"):
            query = query.where(PrintUser.customer_id == args["customer_id"])
        if args.get("q"):
            query = query.where(
                sa.or_(contains(PrintUser.username, args["q"]), contains(PrintUser.full_name, args["q"]))
            )
        if "active" in args:
            query = query.where(PrintUser.active.is_(args["active"]))
        if args.get("cost_center_id"):
            query = query.where(
                PrintUser.id.in_(
                    sa.select(user_cost_center.c.user_id).where(
                        user_cost_center.c.cost_center_id == args["cost_center_id"]
                    )
                )
            )
        if args.get("card"):
            query = query.where(PrintUser.id.in_(sa.select(Card.user_id).where(Card.number == args["card"].strip())))
        return paginate(query, args)

    @require(*EDIT)
    @users_blp.arguments(UserCreateSchema)
    @users_blp.response(201, UserSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a print user

        With its cards, PIN and password when given. The username is unique in the customer whatever its case; a card
        number is unique in the customer (disabled cards too), a PIN as well.
        """
        customer_id = _new_record_customer(data.get("customer_id"))
        with committing():
            user = users.save_user(customer_id, _user_fields(data))
            users.add_cards(user, data.get("cards") or [])
            if "pin" in data:
                users.set_pin(user, data["pin"])
            if "password" in data:
                users.set_password(user, data["password"])
        return user, 201, _location("device_accounting_users.UserItem", user_id=user.id)


@users_blp.route(f"/<{ID_PATH}:user_id>")
class UserItem(MethodView):
    @require(*VIEW)
    @users_blp.response(200, UserSchema)
    @users_blp.alt_response(404, response="NOT_FOUND")
    def get(self, user_id: int):
        """Read a print user"""
        return _get_user(user_id)

    @require(*EDIT)
    @users_blp.arguments(UserFields)
    @users_blp.response(200, UserSchema)
    @users_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], user_id: int):
        """Update a print user

        Only the fields sent change; `cost_center_ids` replaces the list (the default stays in it).
        """
        user = _get_user(user_id)
        with committing():
            users.save_user(user.customer_id, data, user)
        return user

    @require(*EDIT)
    @users_blp.response(204)
    @users_blp.alt_response(404, response="NOT_FOUND")
    @users_blp.alt_response(409, response="CONFLICT")
    def delete(self, user_id: int):
        """Delete a print user

        Only a user without jobs; one with jobs is deactivated instead (409), so the jobs stay theirs.
        """
        user = _get_user(user_id)
        with committing(status=409):
            users.delete_user(user)


@users_blp.route(f"/<{ID_PATH}:user_id>/cards")
class UserCards(MethodView):
    @require(*VIEW)
    @users_blp.response(200, CardSchema(many=True))
    @users_blp.alt_response(404, response="NOT_FOUND")
    def get(self, user_id: int):
        """List a print user's cards"""
        return _get_user(user_id).cards

    @require(*EDIT)
    @users_blp.arguments(CardSchema)
    @users_blp.response(201, CardSchema, headers={"Location": {"schema": {"type": "string"}}})
    @users_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], user_id: int):
        """Give a print user a card

        A number another user of the customer has (even disabled) is refused naming that user; one of this user's
        disabled cards is enabled again.
        """
        user = _get_user(user_id)
        with committing():
            card = users.add_card(user, data["number"])
        return card, 201, _location("device_accounting_users.UserCard", user_id=user.id, card_id=card.id)


@users_blp.route(f"/<{ID_PATH}:user_id>/cards/<{ID_PATH}:card_id>")
class UserCard(MethodView):
    @require(*VIEW)
    @users_blp.response(200, CardSchema)
    @users_blp.alt_response(404, response="NOT_FOUND")
    def get(self, user_id: int, card_id: int):
        """Read a card"""
        return _get_card(_get_user(user_id), card_id)

    @require(*EDIT)
    @users_blp.arguments(CardPatchSchema)
    @users_blp.response(200, CardSchema)
    @users_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], user_id: int, card_id: int):
        """Disable or enable a card

        A disabled card identifies nobody; its number stays taken, and only its user can have it again.
        """
        card = _get_card(_get_user(user_id), card_id)
        with committing():
            (users.enable_card if data["active"] else users.disable_card)(card)
        return card


@users_blp.route(f"/<{ID_PATH}:user_id>/cards/<{ID_PATH}:card_id>/disable")
class UserCardDisable(MethodView):
    @require(*EDIT)
    @users_blp.response(200, CardSchema)
    @users_blp.alt_response(404, response="NOT_FOUND")
    def post(self, user_id: int, card_id: int):
        """Disable a lost card"""
        card = _get_card(_get_user(user_id), card_id)
        with committing():
            users.disable_card(card)
        return card


@users_blp.route(f"/<{ID_PATH}:user_id>/pin")
class UserPin(MethodView):
    @require(*EDIT)
    @users_blp.arguments(PinSchema)
    @users_blp.response(200, PinResultSchema)
    @users_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], user_id: int):
        """Set or reset a print user's PIN

        Ends a lockout of the PIN. Without `pin` a random one is chosen and answered this once: it is stored only as a
        keyed digest.
        """
        user = _get_user(user_id)
        with committing():
            if data.get("pin") is not None:
                users.set_pin(user, data["pin"])
                chosen = None
            else:
                chosen = users.generate_pin(user)
        return {"pin": chosen, "has_pin": True}

    @require(*EDIT)
    @users_blp.response(204)
    @users_blp.alt_response(404, response="NOT_FOUND")
    def delete(self, user_id: int):
        """Remove a print user's PIN"""
        user = _get_user(user_id)
        with committing():
            users.clear_pin(user)


@users_blp.route(f"/<{ID_PATH}:user_id>/password")
class UserPassword(MethodView):
    @require(*EDIT)
    @users_blp.arguments(PasswordSchema)
    @users_blp.response(204)
    @users_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], user_id: int):
        """Set a print user's password

        At least 10 characters; stored hashed. Not for a user of the customer's directory, whose password the
        directory checks.
        """
        user = _get_user(user_id)
        with committing():
            users.set_password(user, data["password"])

    @require(*EDIT)
    @users_blp.response(204)
    @users_blp.alt_response(404, response="NOT_FOUND")
    def delete(self, user_id: int):
        """Remove a print user's password"""
        user = _get_user(user_id)
        with committing():
            users.clear_password(user)


# Cost centers


class CostCenterFields(PrivilegeFields):
    name = String(validate=ma.validate.Length(min=1, max=100))
    code = String(allow_none=True, validate=ma.validate.Length(max=40))
    parent_id = id_field(allow_none=True, metadata={"description": "null: at the top of the customer's tree."})
    shared = Boolean(metadata={"description": "A shared account: jobs charged to it draw on its own quota."})
    active = Boolean(metadata={"description": "Deactivating one deactivates everything below it."})


class CostCenterCreateSchema(CostCenterFields):
    customer_id = id_field(metadata={"description": "Required for staff; a customer's admin creates for its own."})
    name = String(required=True, validate=ma.validate.Length(min=1, max=100))


class CostCenterSchema(CostCenterFields):
    id = Integer()
    customer_id = Integer()
    path = String(metadata={"description": "The names from the top, e.g. `Amministrazione / Contabilità`."})


class CostCenterListArgs(PageArgs):
    customer_id = id_field()
    parent_id = id_field(metadata={"description": "Only the cost centers right below this one."})
    top = Boolean(metadata={"description": "true: only the cost centers at the top of each tree."})
    active = Boolean()
    shared = Boolean()
    q = String(validate=ma.validate.Length(max=100), metadata={"description": "Part of the name or code."})


def _center_out(centers: list[CostCenter]) -> list[dict[str, Any]]:
    """What CostCenterSchema shows of each, with the paths of all of them worked out in one query."""
    path_of = cost_centers.paths({center.customer_id for center in centers})
    fields = ("id", "customer_id", "parent_id", "name", "code", "shared", "active", *cost_centers.PRIVILEGE_FIELDS)
    return [{**{field: getattr(center, field) for field in fields}, "path": path_of[center.id]} for center in centers]


def _visible_centers() -> Select:
    return customer_scoped(sa.select(CostCenter), CostCenter.customer_id, api_user())


def _get_center(center_id: int) -> CostCenter:
    return get_or_404(_visible_centers().where(CostCenter.id == center_id))


@cost_centers_blp.route("")
class CostCenters(MethodView):
    @require(*VIEW)
    @cost_centers_blp.arguments(CostCenterListArgs, location="query")
    @cost_centers_blp.response(200, page_schema(CostCenterSchema))
    def get(self, args: dict[str, Any]):
        """List cost centers

        Ordered by customer, then name. A customer's admin lists only its own customer's.
        """
        query = _visible_centers().order_by(CostCenter.customer_id, CostCenter.name, CostCenter.id)
        if args.get("customer_id"):
            query = query.where(CostCenter.customer_id == args["customer_id"])
        if args.get("parent_id"):
            query = query.where(CostCenter.parent_id == args["parent_id"])
        if "top" in args:
            query = query.where(CostCenter.parent_id.is_(None) if args["top"] else CostCenter.parent_id.is_not(None))
        for flag in ("active", "shared"):
            if flag in args:
                query = query.where(getattr(CostCenter, flag).is_(args[flag]))
        if args.get("q"):
            query = query.where(sa.or_(contains(CostCenter.name, args["q"]), contains(CostCenter.code, args["q"])))
        page = paginate(query, args)
        return {**page, "items": _center_out(page["items"])}

    @require(*EDIT)
    @cost_centers_blp.arguments(CostCenterCreateSchema)
    @cost_centers_blp.response(201, CostCenterSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a cost center

        Names are unique among siblings whatever their case; the parent is one of the same customer's.
        """
        customer_id = _new_record_customer(data.pop("customer_id", None))
        with committing():
            center = cost_centers.save_cost_center(customer_id, data)
        location = _location("device_accounting_cost_centers.CostCenterItem", cost_center_id=center.id)
        return _center_out([center])[0], 201, location


@cost_centers_blp.route(f"/<{ID_PATH}:cost_center_id>")
class CostCenterItem(MethodView):
    @require(*VIEW)
    @cost_centers_blp.response(200, CostCenterSchema)
    @cost_centers_blp.alt_response(404, response="NOT_FOUND")
    def get(self, cost_center_id: int):
        """Read a cost center"""
        return _center_out([_get_center(cost_center_id)])[0]

    @require(*EDIT)
    @cost_centers_blp.arguments(CostCenterFields)
    @cost_centers_blp.response(200, CostCenterSchema)
    @cost_centers_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], cost_center_id: int):
        """Update a cost center

        Only the fields sent change. Moving it under itself or a cost center below it is refused.
        """
        center = _get_center(cost_center_id)
        with committing():
            cost_centers.save_cost_center(center.customer_id, data, center)
        return _center_out([center])[0]

    @require(*EDIT)
    @cost_centers_blp.response(204)
    @cost_centers_blp.alt_response(404, response="NOT_FOUND")
    @cost_centers_blp.alt_response(409, response="CONFLICT")
    def delete(self, cost_center_id: int):
        """Delete a cost center

        Only one nothing uses (no cost centers below, jobs, quota or users); else 409: deactivate it instead.
        """
        center = _get_center(cost_center_id)
        with committing(status=409):
            cost_centers.delete_cost_center(center)


# Price lists


class PriceEntrySchema(ma.Schema):
    id = Integer(dump_only=True)
    function = String(required=True, validate=ma.validate.OneOf(FUNCTIONS))
    colour = String(required=True, validate=ma.validate.OneOf(COLOURS))
    paper_size = String(validate=ma.validate.OneOf(PRICE_SIZES), metadata={"description": "Default any."})
    duplex = String(validate=ma.validate.OneOf(PRICE_DUPLEX), metadata={"description": "Default any."})
    price_per_side = DecimalString(required=True, metadata={"description": "Up to 6 decimals."})
    job_fee = DecimalString(allow_none=True, metadata={"description": "Per job, up to 4 decimals."})


class PriceListFields(ma.Schema):
    name = String(validate=ma.validate.Length(min=1, max=100))
    valid_from = ma.fields.Date(metadata={"description": "Prices jobs from this day on, until the next list."})
    entries = ma.fields.List(
        ma.fields.Nested(PriceEntrySchema),
        validate=ma.validate.Length(max=500),
        metadata={"description": "Each priced (function, colour) needs its entry for size any and duplex any."},
    )


class PriceListCreateSchema(PriceListFields):
    customer_id = id_field(allow_none=True, metadata={"description": "null (or left out): the dealer's default."})
    name = String(required=True, validate=ma.validate.Length(min=1, max=100))
    valid_from = ma.fields.Date(required=True)
    entries = ma.fields.List(ma.fields.Nested(PriceEntrySchema), required=True, validate=ma.validate.Length(max=500))


class PriceListSchema(PriceListFields):
    id = Integer()
    customer_id = Integer(allow_none=True, metadata={"description": "null: the dealer's default list."})
    created_at = UtcDateTime()


class PriceListListArgs(PageArgs):
    customer_id = id_field(metadata={"description": "Only this customer's own lists."})
    dealer = Boolean(metadata={"description": "true: only the dealer's default lists."})


def _visible_price_lists() -> Select:
    """Staff see every list; a customer's user its customer's and the dealer's defaults (which price its jobs)."""
    query = sa.select(PriceList).options(selectinload(PriceList.entries))
    return scoped_by(
        query,
        lambda customer_id: sa.or_(PriceList.customer_id == customer_id, PriceList.customer_id.is_(None)),
        api_user(),
    )


def _get_price_list(price_list_id: int) -> PriceList:
    return get_or_404(_visible_price_lists().where(PriceList.id == price_list_id))


@price_lists_blp.route("")
class PriceLists(MethodView):
    @require(*VIEW)
    @price_lists_blp.arguments(PriceListListArgs, location="query")
    @price_lists_blp.response(200, page_schema(PriceListSchema))
    def get(self, args: dict[str, Any]):
        """List price lists

        The dealer's defaults first, then by customer; newest first within each. A customer's admin lists its own
        customer's and the dealer's defaults.
        """
        query = _visible_price_lists().order_by(
            PriceList.customer_id.is_not(None), PriceList.customer_id, PriceList.valid_from.desc(), PriceList.id
        )
        if args.get("customer_id"):
            query = query.where(PriceList.customer_id == args["customer_id"])
        if "dealer" in args:
            query = query.where(
                PriceList.customer_id.is_(None) if args["dealer"] else PriceList.customer_id.is_not(None)
            )
        return paginate(query, args)

    @require("print_accounting.edit")
    @price_lists_blp.arguments(PriceListCreateSchema)
    @price_lists_blp.response(201, PriceListSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a price list

        Staff only. Refused, naming the field, when a priced function and colour has no entry for size `any` and
        duplex `any`, or when another list of the same owner starts on the same day.
        """

        customer_id = data.pop("customer_id", None)
        with committing():
            price_list = pricing.save_price_list(customer_id, data)
        return price_list, 201, _location("device_accounting_price_lists.PriceListItem", price_list_id=price_list.id)


@price_lists_blp.route(f"/<{ID_PATH}:price_list_id>")
class PriceListItem(MethodView):
    @require(*VIEW)
    @price_lists_blp.response(200, PriceListSchema)
    @price_lists_blp.alt_response(404, response="NOT_FOUND")
    def get(self, price_list_id: int):
        """Read a price list"""
        return _get_price_list(price_list_id)

    @require("print_accounting.edit")
    @price_lists_blp.arguments(PriceListFields)
    @price_lists_blp.response(200, PriceListSchema)
    @price_lists_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], price_list_id: int):
        """Update a price list

        Staff only. Only the fields sent change; `entries`, when sent, replace all of them. Costs already stored do
        not change.
        """

        price_list = _get_price_list(price_list_id)
        with committing():
            pricing.save_price_list(price_list.customer_id, data, price_list)
        return price_list

    @require("print_accounting.edit")
    @price_lists_blp.response(204)
    @price_lists_blp.alt_response(404, response="NOT_FOUND")
    @price_lists_blp.alt_response(409, response="CONFLICT")
    def delete(self, price_list_id: int):
        """Delete a price list

        Staff only; only a list no job was priced with (409 otherwise: add a newer list instead).
        """
        price_list = _get_price_list(price_list_id)
        used = sa.select(Transaction.id).where(Transaction.price_list_id == price_list.id).limit(1)
        if db.session.scalar(used) is not None:
            raise ApiProblem(
                409,
                errors={"price_list": _("Jobs were priced with %(name)s: it cannot be deleted.", name=price_list.name)},
            )
        db.session.delete(price_list)
        db.session.commit()


# Quotas


class BalanceSchema(ma.Schema):
    period_start = ma.fields.Date()
    opening = DecimalString(metadata={"description": "What the period opened with."})
    balance = DecimalString()
    available = DecimalString(metadata={"description": "Balance plus overdraft: what a job may still cost."})


class QuotaFields(ma.Schema):
    period = String(validate=ma.validate.OneOf(QUOTA_PERIODS))
    amount = DecimalString(validate=ma.validate.Range(min=0, max=MONEY_LIMIT), metadata={"description": "Per period."})
    mode = String(validate=ma.validate.OneOf(QUOTA_MODES))
    rollover_cap = DecimalString(
        allow_none=True,
        validate=ma.validate.Range(min=0, max=MONEY_LIMIT),
        metadata={"description": "For mode rollover: at least the amount."},
    )
    overdraft = DecimalString(validate=ma.validate.Range(min=0, max=MONEY_LIMIT))
    warning_percent = Integer(validate=ma.validate.Range(min=1, max=100))


class QuotaCreateSchema(QuotaFields):
    customer_id = id_field(metadata={"description": "Optional: the customer of the user or cost center."})
    user_id = id_field(metadata={"description": "The print user the quota is for; or cost_center_id."})
    cost_center_id = id_field(metadata={"description": "The shared cost center the quota is for; or user_id."})
    amount = DecimalString(required=True, validate=ma.validate.Range(min=0, max=MONEY_LIMIT))


class QuotaSchema(QuotaFields):
    id = Integer()
    customer_id = Integer()
    user_id = Integer(allow_none=True)
    cost_center_id = Integer(allow_none=True)
    balance = ma.fields.Nested(BalanceSchema, allow_none=True)


class QuotaListArgs(PageArgs):
    customer_id = id_field()
    user_id = id_field()
    cost_center_id = id_field()


class AdjustmentSchema(ma.Schema):
    amount = DecimalString(
        required=True,
        validate=ma.validate.Range(min=-MONEY_LIMIT, max=MONEY_LIMIT),
        metadata={"description": "Added to the balance (negative takes away)."},
    )
    reason = String(required=True, validate=ma.validate.Length(min=1, max=500))


class LedgerEntrySchema(ma.Schema):
    id = Integer()
    period_start = ma.fields.Date()
    kind = String(metadata={"description": "opening, charge, refund or adjustment."})
    amount = DecimalString()
    transaction_id = Integer(allow_none=True)
    refund_id = Integer(allow_none=True)
    reason = String(allow_none=True)
    actor_id = Integer(allow_none=True)
    created_at = UtcDateTime()


def _quota_out(quota: Quota) -> dict[str, Any]:
    fields = ("id", "customer_id", "user_id", "cost_center_id", "period", "amount", "mode", "rollover_cap")
    balance = quotas.current_balance(quota)
    return {
        **{field: getattr(quota, field) for field in (*fields, "overdraft", "warning_percent")},
        "balance": None
        if balance is None
        else {
            "period_start": balance.period_start,
            "opening": balance.opening,
            "balance": balance.balance,
            "available": balance.balance + quota.overdraft,
        },
    }


def _visible_quotas() -> Select:
    return customer_scoped(sa.select(Quota), Quota.customer_id, api_user())


def _get_quota(quota_id: int) -> Quota:
    return get_or_404(_visible_quotas().where(Quota.id == quota_id))


def _quota_holder_customer(data: dict[str, Any]) -> int:
    """The customer of the quota's user or cost center, among those the caller sees; else 422 naming the field."""
    holders = [field for field in ("user_id", "cost_center_id") if data.get(field)]
    if len(holders) != 1:
        message = _("A quota belongs to one print user or to one shared cost center.")
        raise ApiProblem(422, errors={"user_id": message})
    field = holders[0]
    if field == "user_id":
        query = customer_scoped(sa.select(PrintUser.customer_id), PrintUser.customer_id, api_user())
        customer_id = db.session.scalar(query.where(PrintUser.id == data["user_id"]))
        message = _("This customer has no print user with id %(id)s.", id=data["user_id"])
    else:
        query = customer_scoped(sa.select(CostCenter.customer_id), CostCenter.customer_id, api_user())
        customer_id = db.session.scalar(query.where(CostCenter.id == data["cost_center_id"]))
        message = _("This customer has no cost center with id %(id)s.", id=data["cost_center_id"])
    if customer_id is None:
        raise ApiProblem(422, errors={field: message})
    if data.get("customer_id") not in (None, customer_id):
        raise ApiProblem(422, errors={"customer_id": _("The quota's holder belongs to another customer.")})
    return customer_id


@quotas_blp.route("")
class Quotas(MethodView):
    @require(*VIEW)
    @quotas_blp.arguments(QuotaListArgs, location="query")
    @quotas_blp.response(200, page_schema(QuotaSchema))
    def get(self, args: dict[str, Any]):
        """List quotas

        With each one's balance in its current period (a period that came due is opened first). Ordered by customer
        and id. A customer's admin lists only its own customer's.
        """
        query = _visible_quotas().order_by(Quota.customer_id, Quota.id)
        for field in ("customer_id", "user_id", "cost_center_id"):
            if args.get(field):
                query = query.where(getattr(Quota, field) == args[field])
        with committing():
            page = paginate(query, args)
            page["items"] = [_quota_out(quota) for quota in page["items"]]
        return page

    @require(*EDIT)
    @quotas_blp.arguments(QuotaCreateSchema)
    @quotas_blp.response(201, QuotaSchema, headers={"Location": {"schema": {"type": "string"}}})
    def post(self, data: dict[str, Any]):
        """Create a quota

        For a print user (`user_id`) or a shared cost center (`cost_center_id`); its first period opens at once.
        """

        customer_id = _quota_holder_customer(data)
        data.pop("customer_id", None)
        with committing():
            quota = quotas.save_quota(customer_id, data)
            out = _quota_out(quota)
        return out, 201, _location("device_accounting_quotas.QuotaItem", quota_id=quota.id)


@quotas_blp.route(f"/<{ID_PATH}:quota_id>")
class QuotaItem(MethodView):
    @require(*VIEW)
    @quotas_blp.response(200, QuotaSchema)
    @quotas_blp.alt_response(404, response="NOT_FOUND")
    def get(self, quota_id: int):
        """Read a quota and its current balance"""
        quota = _get_quota(quota_id)
        with committing():
            out = _quota_out(quota)
        return out

    @require(*EDIT)
    @quotas_blp.arguments(QuotaFields)
    @quotas_blp.response(200, QuotaSchema)
    @quotas_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], quota_id: int):
        """Update a quota

        Only the fields sent change; the new amount and mode apply from the next period.
        """

        quota = _get_quota(quota_id)
        with committing():
            quotas.save_quota(quota.customer_id, data, quota)
            out = _quota_out(quota)
        return out

    @require(*EDIT)
    @quotas_blp.response(204)
    @quotas_blp.alt_response(404, response="NOT_FOUND")
    @quotas_blp.alt_response(409, response="CONFLICT")
    def delete(self, quota_id: int):
        """Delete a quota

        Only one whose balance has no movements but its period openings (409 otherwise): its records stay auditable.
        """
        quota = _get_quota(quota_id)
        balances = sa.select(Balance.id).where(Balance.quota_id == quota.id)
        moved = sa.select(LedgerEntry.id).where(LedgerEntry.balance_id.in_(balances), LedgerEntry.kind != "opening")
        if db.session.scalar(moved.limit(1)) is not None:
            raise ApiProblem(409, errors={"quota": _("The quota's balance has movements: it cannot be deleted.")})
        db.session.execute(sa.delete(LedgerEntry).where(LedgerEntry.balance_id.in_(balances)))
        db.session.execute(sa.delete(Balance).where(Balance.quota_id == quota.id))
        db.session.delete(quota)
        db.session.commit()


@quotas_blp.route(f"/<{ID_PATH}:quota_id>/adjustments")
class QuotaAdjustments(MethodView):
    @require(*EDIT)
    @quotas_blp.arguments(AdjustmentSchema)
    @quotas_blp.response(201, LedgerEntrySchema)
    @quotas_blp.alt_response(404, response="NOT_FOUND")
    def post(self, data: dict[str, Any], quota_id: int):
        """Adjust a balance

        A top-up or a correction, recorded with who, when and why.
        """

        quota = _get_quota(quota_id)
        with committing():
            entry = quotas.adjust(quota, data["amount"], data["reason"], api_user())
        return entry, 201


@quotas_blp.route(f"/<{ID_PATH}:quota_id>/ledger")
class QuotaLedger(MethodView):
    @require(*VIEW)
    @quotas_blp.arguments(PageArgs, location="query")
    @quotas_blp.response(200, page_schema(LedgerEntrySchema))
    @quotas_blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any], quota_id: int):
        """List a quota's balance movements

        Openings, charges, refunds and adjustments, newest first: the balance is its period's opening plus the
        movements after it.
        """
        quota = _get_quota(quota_id)
        balances = sa.select(Balance.id).where(Balance.quota_id == quota.id)
        query = (
            sa.select(LedgerEntry)
            .where(LedgerEntry.balance_id.in_(balances))
            .order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc())
        )
        return paginate(query, args)


# Settings


class SettingsFields(ma.Schema):
    hide_document_names = Boolean(metadata={"description": "Document names are never stored, not even in logs."})
    anonymise_after_months = Integer(
        allow_none=True,
        validate=ma.validate.Range(min=1, max=customer_settings.MAX_ANONYMISE_MONTHS),
        metadata={"description": "Jobs older than this lose their user and document name; null keeps them."},
    )


class SettingsSchema(SettingsFields):
    customer_id = Integer()


class SettingsListArgs(PageArgs):
    customer_id = id_field()


def _visible_customers() -> Select:
    return customer_scoped(sa.select(Partner).where(Partner.is_customer.is_(True)), Partner.id, api_user())


def _settings_out(customer_ids: list[int]) -> list[dict[str, Any]]:
    stored = {
        settings.customer_id: settings
        for settings in db.session.scalars(
            sa.select(AccountingSettings).where(AccountingSettings.customer_id.in_(customer_ids))
        )
    }
    return [
        {
            "customer_id": customer_id,
            "hide_document_names": bool(stored[customer_id].hide_document_names) if customer_id in stored else False,
            "anonymise_after_months": stored[customer_id].anonymise_after_months if customer_id in stored else None,
        }
        for customer_id in customer_ids
    ]


@settings_blp.route("")
class SettingsList(MethodView):
    @require(*VIEW)
    @settings_blp.arguments(SettingsListArgs, location="query")
    @settings_blp.response(200, page_schema(SettingsSchema))
    def get(self, args: dict[str, Any]):
        """List the customers' settings

        Every customer, by name; one that never changed them shows the defaults. A customer's admin sees its own.
        """
        query = _visible_customers().order_by(Partner.name, Partner.id)
        if args.get("customer_id"):
            query = query.where(Partner.id == args["customer_id"])
        page = paginate(query, args)
        return {**page, "items": _settings_out([customer.id for customer in page["items"]])}


@settings_blp.route(f"/<{ID_PATH}:customer_id>")
class SettingsItem(MethodView):
    @require(*VIEW)
    @settings_blp.response(200, SettingsSchema)
    @settings_blp.alt_response(404, response="NOT_FOUND")
    def get(self, customer_id: int):
        """Read a customer's settings"""
        customer = get_or_404(_visible_customers().where(Partner.id == customer_id))
        return _settings_out([customer.id])[0]

    @require(*EDIT)
    @settings_blp.arguments(SettingsFields)
    @settings_blp.response(200, SettingsSchema)
    @settings_blp.alt_response(404, response="NOT_FOUND")
    def patch(self, data: dict[str, Any], customer_id: int):
        """Update a customer's settings

        Only the fields sent change. Hiding document names applies to jobs from now on.
        """
        customer = get_or_404(_visible_customers().where(Partner.id == customer_id))
        with committing():
            customer_settings.save_settings(customer.id, data)
        return _settings_out([customer.id])[0]
