"""Users, roles and passwords: creation rules, password hashing, signed set-password and reset links."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app, has_request_context, request
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

from core import audit
from core.auth import sessions
from core.config import DEFAULT_BASE_URL
from core.db import db, utcnow
from core.models import Company, Partner, User, UserSession
from core.permissions import CUSTOMER_ROLES, ROLES
from core.validation import ValidationError

MIN_PASSWORD_LENGTH = 10
PASSWORD_METHOD = "scrypt"


class UserError(ValidationError):
    """A user-facing problem with one field of a user or password form: core's field error, one field at a time."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__({field: message})
        self.field = field
        self.message = message


def normalize_email(value: str | None) -> str:
    """The address lower-cased and checked for shape; raises UserError("email", ...)."""
    text = (value or "").strip()
    if not text:
        raise UserError("email", _("The email address is required"))
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise UserError("email", _("%(value)s is not a valid email address", value=text)) from None
    return checked.normalized.lower()


def find_user(email: str | None) -> User | None:
    """The user with this email, whatever its case; None when there is none or the address is malformed."""
    text = (email or "").strip().lower()
    if not text:
        return None
    return db.session.scalars(sa.select(User).where(sa.func.lower(User.email) == text)).first()


def check_email_free(email: str, user_id: int | None = None) -> None:
    stmt = sa.select(User.id).where(sa.func.lower(User.email) == email.lower())
    if user_id is not None:
        stmt = stmt.where(User.id != user_id)
    if db.session.scalar(stmt) is not None:
        raise UserError("email", _("A user with the email %(email)s already exists", email=email))


def validate_role(role: str | None, customer_id: int | None) -> None:
    """Customer roles belong to exactly one customer; staff roles to none."""
    if role not in ROLES:
        raise UserError("role", _("Unknown role %(role)s; choose one of: %(roles)s", role=role, roles=", ".join(ROLES)))
    if role in CUSTOMER_ROLES:
        if customer_id is None:
            raise UserError("customer", _("A customer user needs the customer it belongs to"))
        partner = db.session.get(Partner, customer_id)
        if partner is None:
            raise UserError("customer", _("There is no customer with id %(id)s", id=customer_id))
        if not partner.is_customer:
            raise UserError("customer", _("%(name)s is not a customer", name=partner.name))
    elif customer_id is not None:
        raise UserError("customer", _("Staff users do not belong to a customer; leave the customer empty"))


def check_can_manage(actor: Any, role: str, previous_role: str | None = None) -> None:
    """Dealer admins manage every account; back office manages customer accounts only, before and after a change."""
    if actor is None or getattr(actor, "role", None) == "dealer_admin":
        return
    if (
        getattr(actor, "role", None) == "back_office"
        and role in CUSTOMER_ROLES
        and previous_role in (None, *CUSTOMER_ROLES)
    ):
        return
    raise UserError("role", _("Only a dealer administrator can create or change staff accounts"))


def check_admin_remains(user: User, role: str | None, active: bool) -> None:
    """Refuse the change that would leave no active dealer administrator to manage the others."""
    if role == "dealer_admin" and active:
        return
    others = db.session.scalar(
        sa.select(sa.func.count(User.id)).where(User.role == "dealer_admin", User.active.is_(True), User.id != user.id)
    )
    if not others:
        raise UserError("role", _("At least one active dealer administrator must remain"))


def stored_value(user: User, attr: str) -> Any:
    """The value of `attr` as last loaded from the database, before unflushed changes; None for a new user."""
    state = sa.inspect(user)
    if state.transient or state.pending:
        return None
    history = state.attrs[attr].history
    return history.deleted[0] if history.deleted else getattr(user, attr)


def was_active_admin(user: User) -> bool:
    return stored_value(user, "role") == "dealer_admin" and bool(stored_value(user, "active"))


def user_language(user: User) -> str:
    """The language for this user's emails: their own, else their customer's, else the default."""
    languages = current_app.config["LANGUAGES"]
    if user.language in languages:
        return user.language
    if user.customer is not None and user.customer.language in languages:
        return user.customer.language
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def validate_password(password: str | None) -> str:
    if not password or len(password) < MIN_PASSWORD_LENGTH:
        raise UserError("password", _("The password must be at least %(n)s characters long", n=MIN_PASSWORD_LENGTH))
    return password


def set_password(
    user: User, password: str, *, action: str = "password_changed", keep: UserSession | None = None
) -> None:
    """Store a new password hash and end every session of this user but `keep` (audited; the caller commits)."""
    validate_password(password)
    user.password_hash = generate_password_hash(password, method=PASSWORD_METHOD)
    user.session_version = (user.session_version or 0) + 1
    sessions.revoke_all(user, keep=keep)
    audit.record(action, User.__tablename__, user.id, {"email": user.email})


def check_password(user: User, password: str | None) -> bool:
    if not user.password_hash or not password:
        return False
    return check_password_hash(user.password_hash, password)


_dummy_hash: list[str] = []


def authenticate(email: str | None, password: str | None) -> tuple[User | None, str | None]:
    """(user, None) when the password matches an active account, else (None, why) with why in
    unknown | wrong_password | inactive. Unknown emails cost the same time as wrong passwords."""
    user = find_user(email)
    if user is None:
        if not _dummy_hash:
            _dummy_hash.append(generate_password_hash("not a password", method=PASSWORD_METHOD))
        check_password_hash(_dummy_hash[0], password or "")
        return None, "unknown"
    if not check_password(user, password):
        return None, "wrong_password"
    if not user.active:
        return None, "inactive"
    return user, None


def record_login(user: User) -> None:
    """Note the login time without an audit "update" entry for it (the "login" entry says it already)."""
    db.session.execute(sa.update(User).where(User.id == user.id).values(last_login_at=utcnow()))
    audit.record("login", User.__tablename__, user.id, {"email": user.email})


def create_user(
    email: str,
    role: str,
    *,
    name: str | None = None,
    customer_id: int | None = None,
    language: str | None = None,
    password: str | None = None,
    actor: Any = None,
) -> User:
    """Add a user (the caller commits). Without a password, a set-password link is emailed to them."""
    email = normalize_email(email)
    check_email_free(email)
    validate_role(role, customer_id)
    check_can_manage(actor, role)
    if language is not None and language not in current_app.config["LANGUAGES"]:
        raise UserError(
            "language",
            _(
                "Unknown language %(value)s; choose one of: %(choices)s",
                value=language,
                choices=", ".join(current_app.config["LANGUAGES"]),
            ),
        )
    if password is not None:
        validate_password(password)
    user = User(
        email=email,
        name=(name or "").strip() or email.split("@")[0],
        role=role,
        customer_id=customer_id,
        language=language,
        active=True,
        session_version=1,
    )
    db.session.add(user)
    db.session.flush()
    if password is not None:
        set_password(user, password, action="password_set")
    else:
        send_set_password_email(user)
    return user


@dataclass(frozen=True)
class LinkPurpose:
    """What a signed password link is for: its salt and how long it stays valid."""

    salt: str
    max_age_setting: str
    default_max_age: int
    email_template: str


RESET = LinkPurpose("copydesk.password-reset", "PASSWORD_RESET_MAX_AGE", 2 * 3600, "auth/reset_password")
SET_PASSWORD = LinkPurpose("copydesk.set-password", "SET_PASSWORD_MAX_AGE", 7 * 24 * 3600, "auth/set_password")


def _serializer(purpose: LinkPurpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=purpose.salt)


def _fingerprint(user: User) -> str:
    # Changes with the password hash, so a link stops working once it has been used.
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def max_age(purpose: LinkPurpose) -> int:
    return int(current_app.config.get(purpose.max_age_setting, purpose.default_max_age))


def password_token(user: User, purpose: LinkPurpose) -> str:
    return _serializer(purpose).dumps({"u": user.id, "f": _fingerprint(user)})


def user_for_token(token: str, purpose: LinkPurpose) -> User | None:
    """The active user a valid, unused, unexpired link belongs to; None otherwise."""
    try:
        data = _serializer(purpose).loads(token, max_age=max_age(purpose))
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(data, dict):
        return None
    user = db.session.get(User, data.get("u"))
    if user is None or not user.active or data.get("f") != _fingerprint(user):
        return None
    return user


def company_name() -> str:
    """The dealer's name as customers know it, for page headers and emails."""
    company = db.session.scalars(sa.select(Company).order_by(Company.id)).first()
    return company.name if company else "Copydesk"


def external_url(endpoint: str, **values: Any) -> str:
    """An absolute link for an email, on `base_url()`."""
    path = current_app.url_map.bind("localhost").build(endpoint, values)
    return base_url() + path


def base_url() -> str:
    """Where emailed links point: BASE_URL, never the request's Host header, which a client sets.

    Only while BASE_URL is left at its embedded default (a developer's machine, `make run PORT=5101`) do links follow
    the address being served: the request's, when its host is a loopback or private IP address or `localhost` (a
    public name or address there could be a forged Host header), else SERVER_NAME when configured (a job outside a
    request), else the default.
    """
    configured = current_app.config["BASE_URL"]
    if configured != DEFAULT_BASE_URL:
        return configured
    if has_request_context() and _local_host(request.host):
        return request.host_url.rstrip("/")
    if current_app.config.get("SERVER_NAME"):
        return f"{current_app.config['PREFERRED_URL_SCHEME']}://{current_app.config['SERVER_NAME']}"
    return configured


def _local_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


def _send_link(user: User, purpose: LinkPurpose, endpoint: str) -> None:
    from core.outbox import queue_email

    queue_email(
        [user.email],
        purpose.email_template,
        user_language(user),
        context={
            "name": user.name,
            "email": user.email,
            "hours": max_age(purpose) // 3600,
            "days": max_age(purpose) // 86400,
            "site": company_name(),
        },
        secrets={"link": external_url(endpoint, token=password_token(user, purpose))},
    )


def send_set_password_email(user: User) -> None:
    """Email the user a link to choose their own password (first login); the caller commits."""
    _send_link(user, SET_PASSWORD, "auth.set_password")
    audit.record("set_password_sent", User.__tablename__, user.id, {"email": user.email})


def request_password_reset(email: str | None) -> None:
    """Email a reset link when an active account has this address; silent otherwise (no account enumeration)."""
    user = find_user(email)
    if user is None or not user.active:
        return
    _send_link(user, RESET, "auth.reset_password")
    audit.record("password_reset_requested", User.__tablename__, user.id, {"email": user.email})


def complete_password_link(token: str, purpose: LinkPurpose, password: str) -> User:
    """Set the password through an emailed link; the link then stops working. The caller commits.

    Whoever holds the link may be someone else than the owner: every session and every API token of the user ends.
    """
    from core.api.tokens import revoke_user_tokens

    user = user_for_token(token, purpose)
    if user is None:
        raise UserError("token", _("This link has expired or was already used. Ask for a new one."))
    action = "password_reset" if purpose is RESET else "password_set"
    set_password(user, password, action=action)
    revoke_user_tokens(user, reason=action)
    return user


def change_password(user: User, current: str | None, new: str | None) -> None:
    """A logged-in user's own change: the current password is required. The caller commits."""
    if not check_password(user, current):
        raise UserError("current_password", _("The current password is not correct"))
    set_password(user, new or "", keep=sessions.current())


def set_language(user: User, language: str | None) -> None:
    if language not in current_app.config["LANGUAGES"]:
        raise UserError("language", _("Unknown language %(value)s", value=language))
    user.language = language
