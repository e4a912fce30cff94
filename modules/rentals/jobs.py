"""Rentals' periodic jobs: contracts past their end date are renewed (auto-renewing ones) or marked ended."""

from __future__ import annotations

from core import clock
from core.db import db
from modules.rentals.contracts import end_lapsed_contracts as end_contracts
from modules.rentals.contracts import renew_lapsed_contracts


def end_lapsed_contracts() -> None:
    """Periodic job: renew the auto-renewing contracts whose end date is before the dealer's today, end the others,
    and commit."""
    today = clock.today()
    renew_lapsed_contracts(today)
    end_contracts(today)
    db.session.commit()
