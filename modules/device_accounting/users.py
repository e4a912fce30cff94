"""Print users: usernames, cost centers and privileges, cards (strings, leading zeros kept), PINs and passwords."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash

from core.auth.services import PASSWORD_METHOD, normalize_email, validate_password
from core.crypto import keyed_digest
from core.db import db, utcnow
from core.validation import Checker, ValidationError
from modules.device_accounting.cost_centers import check_privileges
from modules.device_accounting.models import Card, CostCenter, PinAttempt, PrintUser, Quota, Transaction
from modules.rentals.validation import MAX_PAGES, check_customer

# A card number as the reader sends it: letters and digits only; `0004521` and `4521` are two cards.
CARD_RE = re.compile(r"[0-9A-Za-z]{1,64}")
PIN_RE = re.compile(r"[0-9]{4,8}")
PIN_PURPOSE = "print pin"
MAX_COST_CENTERS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_dummy_hash: list[str] = []


def username_key(username: str) -> str:
    """The form a username is unique and found in, per customer: usernames ignore case."""
    return username.strip().lower()


def find_by_username(customer_id: int, username: str) -> PrintUser | None:
    return db.session.scalars(
        sa.select(PrintUser).where(
            PrintUser.customer_id == customer_id, PrintUser.username_key == username_key(username or "")
        )
    ).first()


def find_by_card(customer_id: int, number: str) -> Card | None:
    """The customer's card with exactly this number (surrounding spaces ignored), active or disabled; None if none.

    The caller checks `card.active` and `card.user.active`: a disabled (lost) card identifies nobody.
    """
    text = (number or "").strip()
    if not CARD_RE.fullmatch(text):
        return None
    return db.session.scalars(sa.select(Card).where(Card.customer_id == customer_id, Card.number == text)).first()


def pin_digest(customer_id: int, pin: str) -> str:
    """The keyed digest a PIN is stored and found by: the same PIN at two customers gives two digests."""
    return keyed_digest(f"{customer_id}:{pin}", PIN_PURPOSE)


def find_by_pin(customer_id: int, pin: str) -> PrintUser | None:
    """The customer's user with this PIN, or None (also for anything that is not 4 to 8 digits)."""
    text = (pin or "").strip()
    if not PIN_RE.fullmatch(text):
        return None
    return db.session.scalars(
        sa.select(PrintUser).where(
            PrintUser.customer_id == customer_id, PrintUser.pin_digest == pin_digest(customer_id, text)
        )
    ).first()


def save_user(customer_id: int, data: dict[str, Any], user: PrintUser | None = None) -> PrintUser:
    """Create a print user, or change the fields `data` holds; raises ValidationError (nothing written) when wrong.

    Fields: username, full_name, email, language, active, default_cost_center_id, cost_center_ids, allowed_functions,
    color_allowed, max_sides, duplex_forced. The username is unique in the customer ignoring case, and so is the
    email (it links a portal user to their print user). Cost centers are the customer's; the default is always among
    those the user may charge (added when missing). Cards, PIN and password have their own functions below.
    """
    check = Checker()
    creating = user is None
    customer = check_customer(check, "customer_id", customer_id, required=True)
    if customer is not None and not creating and customer.id != user.customer_id:
        check.fail("customer_id", _("A print user cannot move to another customer."))
    values: dict[str, Any] = {}
    if creating or "username" in data:
        username = check.text("username", data.get("username"), 100, required=True)
        if username is not None and _CONTROL.search(username):
            check.fail("username", _("A username cannot contain control characters."))
        elif username is not None:
            values["username"], values["username_key"] = username, username_key(username)
    if creating or "full_name" in data:
        values["full_name"] = check.text("full_name", data.get("full_name"), 200) or ""
    if creating or "email" in data:
        values["email"] = _check_email(check, data.get("email"))
    if creating or "language" in data:
        values["language"] = _check_language(check, data.get("language"))
    if creating or "active" in data:
        values["active"] = check.boolean("active", data.get("active"), default=True)
    values |= check_privileges(check, data)
    centers = _check_cost_centers(check, customer, data, user)
    check.raise_if_any()
    assert customer is not None

    own_id = None if creating else user.id
    if "username_key" in values and _taken(PrintUser.username_key, customer.id, values["username_key"], own_id):
        check.fail(
            "username",
            _("Another print user of this customer is already called %(username)s.", username=values["username"]),
        )
    if values.get("email") and _taken(PrintUser.email, customer.id, values["email"], own_id):
        check.fail("email", _("Another print user of this customer has the email %(email)s.", email=values["email"]))
    check.raise_if_any()

    if creating:
        user = PrintUser(customer_id=customer.id)
        db.session.add(user)
    for field, value in values.items():
        setattr(user, field, value)
    if centers is not None:
        default, allowed = centers
        user.default_cost_center = default
        user.cost_centers = allowed
    db.session.flush()
    return user


def delete_user(user: PrintUser) -> None:
    """Delete a print user without jobs or quota; else a `user` error (deactivate them instead: jobs stay theirs)."""
    if db.session.scalar(sa.select(Transaction.id).where(Transaction.user_id == user.id).limit(1)) is not None:
        raise ValidationError(
            {"user": _("%(user)s has jobs recorded and cannot be deleted: deactivate them instead.", user=str(user))}
        )
    if db.session.scalar(sa.select(Quota.id).where(Quota.user_id == user.id)) is not None:
        raise ValidationError({"user": _("%(user)s has a quota: delete the quota first.", user=str(user))})
    db.session.execute(sa.delete(PinAttempt).where(PinAttempt.user_id == user.id))
    db.session.delete(user)
    db.session.flush()


# Cards


def check_card_number(number: Any, field: str = "number") -> str:
    """A card number stripped of surrounding spaces, leading zeros kept: 1 to 64 letters or digits."""
    text = number.strip() if isinstance(number, str) else ""
    if not text:
        raise ValidationError({field: _("This field is required.")})
    if not CARD_RE.fullmatch(text):
        raise ValidationError(
            {field: _("A card number is 1 to 64 letters or digits, without spaces or other signs inside.")}
        )
    return text


def card_taken(customer_id: int, number: str, user_id: int | None) -> str | None:
    """Why `number` cannot be another card of user `user_id` (None: a user not saved yet), or None when it can."""
    existing = db.session.scalars(sa.select(Card).where(Card.customer_id == customer_id, Card.number == number)).first()
    if existing is None:
        return None
    if existing.user_id != user_id:
        if existing.active:
            return _("Card %(number)s is already used by %(user)s.", number=number, user=str(existing.user))
        return _("Card %(number)s belongs to %(user)s (disabled).", number=number, user=str(existing.user))
    if existing.active:
        return _("Card %(number)s is already one of this user's cards.", number=number)
    return None


def add_card(user: PrintUser, number: str, field: str = "number") -> Card:
    """Give the user a card. A number is unique in the customer, disabled cards included: a disabled card of the same
    user is enabled again, one of another user is refused naming that user."""
    text = check_card_number(number, field)
    problem = card_taken(user.customer_id, text, user.id)
    if problem is not None:
        raise ValidationError({field: problem})
    existing = db.session.scalars(
        sa.select(Card).where(Card.customer_id == user.customer_id, Card.number == text)
    ).first()
    if existing is not None:  # one of this user's, disabled
        enable_card(existing)
        return existing
    card = Card(customer_id=user.customer_id, user=user, number=text)
    db.session.add(card)
    db.session.flush()
    return card


def add_cards(user: PrintUser, numbers: Iterable[str], field: str = "cards") -> list[Card]:
    """Several cards at once (a form, an import row): the first refusal names `field`."""
    return [add_card(user, number, field) for number in numbers]


def disable_card(card: Card) -> None:
    """A lost card: it identifies nobody any more, keeps its number (still taken) and can be enabled again."""
    if card.active:
        card.active = False
        card.disabled_at = utcnow()
        db.session.flush()


def enable_card(card: Card) -> None:
    if not card.active:
        card.active = True
        card.disabled_at = None
        db.session.flush()


# PIN


def check_pin(pin: Any, field: str = "pin") -> str:
    text = pin.strip() if isinstance(pin, str) else ""
    if not PIN_RE.fullmatch(text):
        raise ValidationError({field: _("A PIN is 4 to 8 digits.")})
    return text


def set_pin(user: PrintUser, pin: str) -> None:
    """Set the user's PIN (4 to 8 digits, unique in the customer) and end any lockout of it."""
    text = check_pin(pin)
    digest = pin_digest(user.customer_id, text)
    taken = sa.select(PrintUser.id).where(PrintUser.customer_id == user.customer_id, PrintUser.pin_digest == digest)
    if user.id is not None:
        taken = taken.where(PrintUser.id != user.id)
    if db.session.scalar(taken.limit(1)) is not None:
        # Unique per customer, so someone has it; who is not said.
        raise ValidationError({"pin": _("This PIN is already taken: choose another one.")})
    user.pin_digest = digest
    _unlock(user)


def generate_pin(user: PrintUser, length: int = 6) -> str:
    """Give the user a new random PIN nobody else of the customer has, and return it (shown once, never stored)."""
    for _attempt in range(100):
        pin = "".join(secrets.choice("0123456789") for _digit in range(length))
        try:
            set_pin(user, pin)
        except ValidationError:
            continue
        return pin
    raise ValidationError({"pin": _("No free PIN was found: set one by hand.")})


def clear_pin(user: PrintUser) -> None:
    user.pin_digest = None
    _unlock(user)


def _unlock(user: PrintUser) -> None:
    user.pin_locked_until = None
    if user.id is not None:
        db.session.execute(sa.delete(PinAttempt).where(PinAttempt.user_id == user.id))
    db.session.flush()


# Password


def set_password(user: PrintUser, password: str) -> None:
    """Store a password hash (as core does for staff, same minimum length); not for users of the directory."""
    if user.directory_user:
        raise ValidationError({"password": _("This user's password is checked by the customer's directory.")})
    validate_password(password)
    user.password_hash = generate_password_hash(password, method=PASSWORD_METHOD)
    db.session.flush()


def clear_password(user: PrintUser) -> None:
    user.password_hash = None
    db.session.flush()


def check_password(user: PrintUser | None, password: str | None) -> bool:
    """True when `password` matches the stored hash; a user without one costs the same time as a wrong password."""
    if user is None or not user.password_hash or not password:
        if not _dummy_hash:
            _dummy_hash.append(generate_password_hash("not a password", method=PASSWORD_METHOD))
        check_password_hash(_dummy_hash[0], password or "")
        return False
    return check_password_hash(user.password_hash, password)


# Checks


def _check_email(check: Checker, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value.strip()) > 254:
        check.fail("email", _("At most %(max)d characters, without NUL characters.", max=254))
        return None
    try:
        return normalize_email(value)
    except ValidationError as error:
        check.fail("email", error.errors["email"])
        return None


def _check_language(check: Checker, value: Any) -> str | None:
    if value is None or value == "":
        return None
    languages = current_app.config["LANGUAGES"]
    text = str(value).strip().lower()
    if text not in languages:
        check.fail(
            "language",
            _(
                "Unknown language %(value)s; choose one of: %(choices)s",
                value=str(value)[:10],
                choices=", ".join(languages),
            ),
        )
        return None
    return text


def _check_cost_centers(
    check: Checker, customer: Any, data: dict[str, Any], user: PrintUser | None
) -> tuple[CostCenter | None, list[CostCenter]] | None:
    """(default, the cost centers the user may charge) when `data` changes them, else None."""
    if "default_cost_center_id" not in data and "cost_center_ids" not in data:
        return None
    if customer is None:
        return None
    current = [] if user is None else list(user.cost_centers)
    current_ids = {center.id for center in current}
    ids: list[int] = []
    if "cost_center_ids" in data:
        raw = data["cost_center_ids"] or []
        if isinstance(raw, str | bytes) or not isinstance(raw, Iterable):
            check.fail("cost_center_ids", _("A list of cost centers is expected."))
            return None
        raw = list(raw)
        if len(raw) > MAX_COST_CENTERS:
            check.fail("cost_center_ids", _("At most %(max)d cost centers.", max=MAX_COST_CENTERS))
            return None
        for value in raw:
            number = check.integer("cost_center_ids", value, 1, MAX_PAGES)
            if number is None:
                return None
            if number not in ids:
                ids.append(number)
    else:
        ids = [center.id for center in current]
    default_id = data.get("default_cost_center_id", user.default_cost_center_id if user is not None else None)
    if default_id is not None and default_id != "":
        default_id = check.integer("default_cost_center_id", default_id, 1, MAX_PAGES)
        if default_id is None:
            return None
    else:
        default_id = None
    wanted = set(ids) | ({default_id} if default_id else set())
    query = sa.select(CostCenter).where(CostCenter.id.in_(wanted), CostCenter.customer_id == customer.id)
    found = {center.id: center for center in db.session.scalars(query)} if wanted else {}
    for field, center_ids in (("default_cost_center_id", [default_id] if default_id else []), ("cost_center_ids", ids)):
        for center_id in center_ids:
            center = found.get(center_id)
            if center is None:
                check.fail(field, _("This customer has no cost center with id %(id)s.", id=center_id))
            elif not center.active and center_id not in current_ids:
                check.fail(field, _("The cost center %(name)s is not active.", name=center.path))
    if "default_cost_center_id" in check or "cost_center_ids" in check:
        return None
    default = found.get(default_id) if default_id else None
    allowed = [found[center_id] for center_id in ids]
    if default is not None and default not in allowed:
        allowed.append(default)
    return default, allowed


def _taken(column: Any, customer_id: int, value: str, own_id: int | None) -> bool:
    query = sa.select(PrintUser.id).where(PrintUser.customer_id == customer_id, column == value)
    if own_id is not None:
        query = query.where(PrintUser.id != own_id)
    return db.session.scalar(query.limit(1)) is not None
