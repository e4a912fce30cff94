"""Fixtures the device-accounting tests share: API callers, the back office's Studio Rossi, the portal's companies."""

from __future__ import annotations

import pytest
import time_machine

from modules.device_accounting.tests import admin_support, portal_support
from modules.device_accounting.tests.records_support import admin_of, customer
from tests.api_support import bearer


@pytest.fixture
def staff(db_session):
    """A bearer header of a back-office user."""
    return bearer("back_office")


@pytest.fixture
def bianchi(db_session):
    return customer("Studio Legale Bianchi")


@pytest.fixture
def admin(bianchi):
    """A bearer header of Studio Legale Bianchi's customer admin."""
    return admin_of(bianchi)


@pytest.fixture
def office(app):
    """Studio Rossi for the back-office tests: devices, cost centers, print users, jobs (admin_support.office)."""
    with app.app_context():
        return admin_support.office()


@pytest.fixture
def portal_now():
    """The portal tests' clock: the middle of March 2026, ticking."""
    with time_machine.travel(portal_support.NOW, tick=True):
        yield


@pytest.fixture
def portal_bianchi(app, portal_now):
    """Studio Bianchi: an Italian customer with device KY1 (see portal_support.build_company)."""
    with app.app_context():
        return portal_support.build_company("Studio Bianchi", "bianchi.it", "it", "KY1")


@pytest.fixture
def portal_companies(app, portal_bianchi):
    """Studio Bianchi and, beside it, Farmacia Verdi: a Spanish customer with device KY2."""
    with app.app_context():
        return portal_bianchi, portal_support.build_company("Farmacia Verdi", "verdi.it", "es", "KY2")


@pytest.fixture
def portal_admin(app, portal_bianchi):
    """A portal client logged in as Studio Bianchi's customer admin."""
    return portal_support.portal_client(app, portal_bianchi.admin)
