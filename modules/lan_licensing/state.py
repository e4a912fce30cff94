"""Where the licence stands: evaluation, valid, expiring, grace, expired (read-only), with a clock set back noticed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import g, has_request_context

from core import clock
from core.db import utcnow
from modules.lan_licensing import installation
from modules.lan_licensing import licence as lic

EVALUATION_DAYS = 30
WARNING_DAYS = 30  # the banner shows from this many days before expiry (that day included)
GRACE_DAYS = 30  # everything works this many days after expiry
# A clock this far behind the latest time seen is "set back" (NTP corrections and servers out of step are smaller).
CLOCK_TOLERANCE = dt.timedelta(hours=1)

PHASES = ("evaluation", "evaluation_over", "valid", "expiring", "grace", "expired", "invalid")


@dataclass(frozen=True)
class LicenceState:
    phase: str
    licence: lic.Licence | None
    installation_id: str
    today: dt.date
    ends_on: dt.date | None = None  # the evaluation's last day, or the licence's expiry
    grace_until: dt.date | None = None
    clock_set_back: bool = False
    latest_seen: dt.datetime | None = None
    problem: str | None = None  # why an installed licence is not in force

    @property
    def days_left(self) -> int | None:
        return None if self.ends_on is None else (self.ends_on - self.today).days

    @property
    def read_only(self) -> bool:
        """Staff may read and install a licence, not change data: a licence past its grace (or a clock set back)."""
        return self.phase == "expired"

    @property
    def features(self) -> set[str] | None:
        """What the loader's gate entitles: None is every module (evaluation); an empty set is only core."""
        if self.phase == "evaluation":
            return None
        if self.licence is None or self.phase == "invalid":
            return set()
        return set(self.licence.modules)


def compute(now: dt.datetime | None = None) -> LicenceState:
    """The state as of `now` (default: the clock), from the installation and the licence installed last."""
    now = now or utcnow()
    today = clock.local_date(now)
    row = installation.get()
    seen = installation.latest_seen(row)
    set_back = now + CLOCK_TOLERANCE < seen
    base = {"installation_id": row.installation_id, "today": today, "latest_seen": seen, "clock_set_back": set_back}
    stored = installation.installed()
    if stored is None:
        ends_on = clock.local_date(installation._as_aware(row.created_at)) + dt.timedelta(days=EVALUATION_DAYS - 1)
        over = set_back or today > ends_on
        return LicenceState("evaluation_over" if over else "evaluation", None, ends_on=ends_on, **base)
    try:
        licence = installation.verify_text(stored.text)
        if licence.installation_id and licence.installation_id != row.installation_id:
            lic.check_applies(licence, licence.valid_from, row.installation_id)
    except lic.LicenceError as error:
        return LicenceState("invalid", None, problem=error.message, **base)
    grace_until = licence.expires_at + dt.timedelta(days=GRACE_DAYS)
    common = {"ends_on": licence.expires_at, "grace_until": grace_until, **base}
    if set_back or today > grace_until:
        phase = "expired"
    elif today > licence.expires_at:
        phase = "grace"
    elif today >= licence.expires_at - dt.timedelta(days=WARNING_DAYS):
        phase = "expiring"
    else:
        phase = "valid"
    return LicenceState(phase, licence, **common)


def current() -> LicenceState:
    """The state for this request (worked out once per request)."""
    if not has_request_context():
        return compute()
    if "lan_licence_state" not in g:
        g.lan_licence_state = compute()
    return g.lan_licence_state
