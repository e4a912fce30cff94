"""A customer administrator's management of their own company's portal users: invite, disable, enable, change role."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import abort
from flask_babel import gettext as _

from core.auth import services, sessions
from core.auth.scoping import customer_or_404, customer_scoped
from core.auth.services import UserError
from core.db import db
from core.models import User
from core.permissions import CUSTOMER_ROLES


def company_users(actor: Any) -> list[User]:
    """The portal users of `actor`'s company, by name."""
    customer_or_404(actor)
    query = customer_scoped(sa.select(User), User.customer_id, actor).where(User.role.in_(CUSTOMER_ROLES))
    return list(db.session.scalars(query.order_by(sa.func.lower(User.name), User.email)))


def company_user_or_404(actor: Any, user_id: int) -> User:
    """One portal user of `actor`'s company; 404 for another company's users and for staff."""
    query = customer_scoped(sa.select(User).where(User.id == user_id), User.customer_id, actor)
    user = db.session.scalars(query.where(User.role.in_(CUSTOMER_ROLES))).first()
    if user is None:
        abort(404)
    return user


def _check_role(role: str | None) -> str:
    if role not in CUSTOMER_ROLES:
        raise UserError("role", _("Choose whether the person is an administrator or a user of the portal"))
    return role


def _check_not_self(actor: Any, user: User) -> None:
    if actor is not None and actor.id == user.id:
        raise UserError("user", _("You cannot disable yourself or change your own role; ask another administrator"))


def _check_customer_admin_remains(user: User, role: str, active: bool) -> None:
    """Refuse the change that would leave the company without an active customer administrator."""
    if role == "customer_admin" and active:
        return
    if not (user.role == "customer_admin" and user.active):
        return
    others = db.session.scalar(
        sa.select(sa.func.count(User.id)).where(
            User.customer_id == user.customer_id,
            User.role == "customer_admin",
            User.active.is_(True),
            User.id != user.id,
        )
    )
    if not others:
        raise UserError("user", _("%(name)s is the last active administrator of the portal", name=user.name))


def invite(actor: Any, email: str | None, name: str | None, role: str | None, language: str | None = None) -> User:
    """A new portal user of `actor`'s company, emailed a set-password link (the caller commits)."""
    customer_id = customer_or_404(actor)
    role = _check_role(role)
    # actor=None: create_user's own check is about staff managing accounts; a customer's admin is checked above.
    return services.create_user(email or "", role, name=name, customer_id=customer_id, language=language or None)


def set_active(actor: Any, user: User, active: bool) -> None:
    """Disable (ending every login of theirs) or enable a portal user of `actor`'s company (the caller commits)."""
    _check_not_self(actor, user)
    _check_customer_admin_remains(user, user.role, active)
    if user.active and not active:
        sessions.revoke_all(user)
    user.active = active


def set_role(actor: Any, user: User, role: str | None) -> None:
    """Make a portal user of `actor`'s company an administrator or a user (the caller commits)."""
    role = _check_role(role)
    _check_not_self(actor, user)
    _check_customer_admin_remains(user, role, user.active)
    user.role = role
