"""Rentals' periodic jobs: contracts past their end date are marked ended."""

from __future__ import annotations

from core import clock
from core.db import db
from modules.rentals.contracts import end_lapsed_contracts as end_contracts


def end_lapsed_contracts() -> None:
    """Periodic job: end the contracts whose end date is before the dealer's today, and commit."""
    end_contracts(clock.today())
    db.session.commit()
