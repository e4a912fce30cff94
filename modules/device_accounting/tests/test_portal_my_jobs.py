""" "My print jobs": a customer user sees the balance, quota and last jobs of the print user with their email, and no
one else's, with money and times in their language and the dealer's time zone."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.db import db
from core.models import User
from modules.device_accounting.models import PrintUser
from modules.device_accounting.tests import portal_support as p

URL = "/portal/print/my/"


pytestmark = pytest.mark.usefixtures("portal_now")


def test_colleague_sees_their_own_balance_and_jobs_only(app, portal_companies):
    ours, _theirs = portal_companies
    page = p.text(p.portal_client(app, ours.colleague).get(URL))
    assert "mrossi" in page
    assert "20,00\xa0€" in page  # the balance of the month, in Italian
    assert page.count("data-job=") == 3  # Mario's three jobs, not Luisa's one
    assert "0,035\xa0€" in page  # a cost of a fraction of a cent keeps its digits
    # Times are the dealer's (Rome): the copy ended at 23:30 UTC on the 17th.
    assert "18/03/26, 00:30 CET" in page
    assert "KY1" in page and "KY2" not in page
    # The newest first.
    assert page.index("18/03/26, 00:30") < page.index("16/03/26, 09:15") < page.index("02/03/26, 11:00")


def test_a_spanish_customers_user_reads_money_and_dates_the_spanish_way(app, portal_companies):
    _ours, theirs = portal_companies
    page = p.text(p.portal_client(app, theirs.colleague).get(URL))
    assert '<html lang="es">' in page
    assert "20,00\xa0€" in page and "18/3/26, 0:30 CET" in page
    assert "KY2" in page and "KY1" not in page


def test_a_portal_user_without_a_print_user_is_told_so(app, portal_companies):
    ours, _theirs = portal_companies
    with app.app_context():
        db.session.get(PrintUser, ours.print_user).email = "someone.else@bianchi.it"
        db.session.commit()
    response = p.portal_client(app, ours.colleague).get(URL)
    page = p.text(response)
    assert response.status_code == 200 and ours.colleague in page and "data-job=" not in page


def test_the_print_user_of_another_customer_with_the_same_email_is_not_theirs(app, portal_companies):
    ours, theirs = portal_companies
    with app.app_context():
        # The other customer's print user gets our colleague's address: still not our colleague's jobs.
        db.session.get(PrintUser, ours.print_user).email = None
        db.session.get(PrintUser, theirs.print_user).email = ours.colleague
        db.session.commit()
    page = p.text(p.portal_client(app, ours.colleague).get(URL))
    assert "data-job=" not in page and "KY2" not in page


def test_customer_admin_sees_their_own_jobs_as_well(app, portal_companies):
    ours, _theirs = portal_companies
    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == ours.admin))
        db.session.get(PrintUser, ours.other_print_user).email = admin.email
        db.session.commit()
    page = p.text(p.portal_client(app, ours.admin).get(URL))
    assert "lverdi" in page and page.count("data-job=") == 1
