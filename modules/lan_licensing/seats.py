"""Concurrent staff seats: browser logins of staff active in the last 15 minutes, the login beyond them refused."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _

from core import audit
from core.db import db, utcnow
from core.labels import local_datetime
from core.models import User, UserSession
from core.permissions import STAFF_ROLES, is_staff
from core.validation import fail
from modules.lan_licensing import installation, state
from modules.lan_licensing.models import LicenceInstallation

ACTIVE_WINDOW = dt.timedelta(minutes=15)


def _as_aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Seat:
    session_id: int
    user_id: int
    name: str
    email: str
    last_seen_at: dt.datetime
    ip_address: str | None


def held(now: dt.datetime | None = None) -> list[Seat]:
    """Staff logins active in the last 15 minutes, most recently active first (API tokens and portal users: none)."""
    now = now or utcnow()
    rows = db.session.execute(
        sa.select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(
            User.role.in_(STAFF_ROLES),
            User.active.is_(True),
            UserSession.revoked_at.is_(None),
            UserSession.expires_at > now,
            UserSession.last_seen_at > now - ACTIVE_WINDOW,
        )
        .order_by(UserSession.last_seen_at.desc(), UserSession.id)
    ).all()
    return [Seat(s.id, u.id, u.name, u.email, s.last_seen_at, s.ip_address) for s, u in rows]


def _lock() -> None:
    """Hold the installation row until the login commits, so two logins for the last seat are counted one at a time.

    PostgreSQL: SELECT ... FOR UPDATE. SQLite has one writer at a time: a no-op UPDATE takes the write lock now.
    """
    table = LicenceInstallation.__table__
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.select(table.c.id).where(table.c.id == installation.ROW_ID).with_for_update())
    else:
        db.session.execute(sa.update(table).where(table.c.id == installation.ROW_ID).values(id=table.c.id))


def _refusal(login_id: int | None = None) -> str | None:
    """None while a seat is free (or seats are not limited); else the refusal naming the holders. Locks first."""
    row = installation.get()
    _lock()
    installation.note_time(row)
    licence = state.compute().licence
    if licence is None:  # evaluating (or no licence in force): seats are not limited
        return None
    seats = [seat for seat in held() if seat.session_id != login_id]
    if len(seats) < licence.seats:
        return None
    holders = "; ".join(
        _("%(name)s (last active %(when)s)", name=seat.name, when=local_datetime(seat.last_seen_at)) for seat in seats
    )
    return _(
        "All %(seats)s staff seats of the licence are in use: %(holders)s. A dealer admin can end one of these "
        "sessions on the Licence page, or try again once one has been idle for 15 minutes.",
        seats=licence.seats,
        holders=holders,
    )


class SeatGate:
    """core.extension_points.LOGIN_GATE: a staff login, new or back from idling, needs a free seat."""

    def refuse_login(self, user: User) -> str | None:
        return _refusal() if is_staff(user) else None

    def refuse_resume(self, user: User, login: UserSession) -> str | None:
        # Active within the window, the login still holds its seat; idle longer, it gave it up and needs a free one.
        if not is_staff(user) or _as_aware(login.last_seen_at) > utcnow() - ACTIVE_WINDOW:
            return None
        return _refusal(login.id)


def end_session(session_id: int) -> UserSession:
    """End another staff login (the caller commits): its cookies stop working and its seat is free."""
    row = db.session.get(UserSession, session_id)
    user = db.session.get(User, row.user_id) if row is not None else None
    if row is None or user is None or not is_staff(user) or row.revoked_at is not None:
        fail("session", _("This session is already over."))
    row.revoked_at = utcnow()
    audit.record("session_ended", UserSession.__tablename__, row.id, {"email": user.email})
    return row
