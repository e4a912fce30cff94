"""Print accounting in the portal is confined to the admin's customer: another customer's ids answer 404 on every
route, in URLs, query strings and forms alike, and change nothing; customer users reach only their own jobs."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from modules.device_accounting.models import Card, CostCenter, PrintUser, Quota, Transaction
from modules.device_accounting.tests import portal_support as p
from tests.auth_support import login, make_user

pytestmark = pytest.mark.usefixtures("portal_now")


def snapshot() -> dict:
    """Everything a refused request could have changed, as values."""
    users = db.session.scalars(sa.select(PrintUser).order_by(PrintUser.id)).all()
    return {
        "users": [(u.username, u.full_name, u.email, u.active, u.pin_digest, u.password_hash) for u in users],
        "cards": [(c.number, c.active) for c in db.session.scalars(sa.select(Card).order_by(Card.id))],
        "centers": [
            (c.name, c.parent_id, c.shared, c.active)
            for c in db.session.scalars(sa.select(CostCenter).order_by(CostCenter.id))
        ],
        "quotas": [(q.amount, q.mode) for q in db.session.scalars(sa.select(Quota).order_by(Quota.id))],
        "refunded": [t.refunded for t in db.session.scalars(sa.select(Transaction).order_by(Transaction.id))],
    }


def foreign_routes(own: p.Company, other: p.Company) -> list[tuple[str, str, dict]]:
    """(method, URL, form) of every route given one of `other`'s ids while logged in as `own`'s admin."""
    base = "/portal/print"
    user, card, center, shared, job = (
        other.print_user,
        other.card,
        other.cost_center,
        other.shared_center,
        other.jobs[0],
    )
    return [
        ("GET", f"{base}/users/{user}", {}),
        ("POST", f"{base}/users/{user}", {"username": "stolen", "active": "1"}),
        ("POST", f"{base}/users/{user}/cards", {"number": "999"}),
        ("POST", f"{base}/users/{user}/cards/{card}/disable", {}),
        ("POST", f"{base}/users/{own.print_user}/cards/{card}/disable", {}),  # their card under our user
        ("POST", f"{base}/users/{user}/pin", {"pin": "4444"}),
        ("POST", f"{base}/users/{user}/pin/new", {}),
        ("POST", f"{base}/users/{user}/pin/clear", {}),
        ("POST", f"{base}/users/{user}/password", {"password": "a long password", "password_again": "a long password"}),
        ("GET", f"{base}/users/{user}/quota", {}),
        ("POST", f"{base}/users/{user}/quota", {"period": "weekly", "amount": "1", "mode": "reset"}),
        ("GET", f"{base}/cost-centers/{center}", {}),
        ("POST", f"{base}/cost-centers/{center}", {"name": "Stolen", "active": "1"}),
        ("GET", f"{base}/cost-centers/new?parent={center}", {}),
        ("GET", f"{base}/cost-centers/{shared}/quota", {}),
        ("POST", f"{base}/cost-centers/{shared}/quota", {"period": "monthly", "amount": "5", "mode": "reset"}),
        ("GET", f"{base}/transactions/{job}/refund", {}),
        ("POST", f"{base}/transactions/{job}/refund", {"amount": "0,10", "reason": "jam"}),
        ("GET", f"{base}/transactions/?user={user}", {}),
        ("GET", f"{base}/reports/?user_id={user}", {}),
        ("GET", f"{base}/reports/?cost_center_id={center}", {}),
        ("GET", f"{base}/reports/usage.csv?user_id={user}", {}),
        ("GET", f"{base}/reports/usage.pdf?cost_center_id={center}", {}),
    ]


def test_every_route_answers_404_for_another_customers_ids_and_changes_nothing(app, portal_companies):
    ours, theirs = portal_companies
    client = p.portal_client(app, ours.admin)
    with app.app_context():
        before = snapshot()
    routes = foreign_routes(ours, theirs)
    for method, url, form in routes:
        response = client.get(url) if method == "GET" else p.post(client, url, form, form_url="/portal/print/users/")
        assert response.status_code == 404, (method, url, response.status_code)
    with app.app_context():
        assert snapshot() == before
    # The same routes with our own ids work: the 404s above are about the customer, not broken routes.
    for method, url, _form in foreign_routes(theirs, ours):
        if method == "GET":
            assert client.get(url).status_code == 200, url


def test_lists_and_reports_show_only_the_admins_customer(app, portal_companies):
    ours, _theirs = portal_companies
    client = p.portal_client(app, ours.admin)
    users = p.text(client.get("/portal/print/users/"))
    assert "Mario Rossi" in users and "Luisa Verdi" in users
    with app.app_context():
        their_names = {u.username for u in db.session.scalars(sa.select(PrintUser))}
    assert their_names == {"mrossi", "lverdi"}  # both companies use the same usernames...
    assert users.count('data-user="mrossi"') == 1  # ...and only ours is listed
    jobs = p.text(client.get("/portal/print/transactions/?since=2026-03-01&until=2026-03-31"))
    assert jobs.count("data-job=") == 4  # our four jobs, not the other customer's four
    assert "KY2" not in jobs and "KY1" in jobs
    report = p.text(client.get("/portal/print/reports/?since=2026-03-01&until=2026-03-31&group_by=device"))
    assert "KY1" in report and "KY2" not in report
    tree = p.text(client.get("/portal/print/cost-centers/"))
    assert tree.count("data-cost-center=") == 3


def test_another_customers_cost_centers_cannot_be_posted_in_a_form(app, portal_companies):
    ours, theirs = portal_companies
    client = p.portal_client(app, ours.admin)
    with app.app_context():
        before = snapshot()
    response = p.post(
        client,
        "/portal/print/users/new",
        {"username": "intruder", "active": "1", "cost_center_ids": [str(theirs.cost_center)]},
        form_url="/portal/print/users/new",
    )
    assert response.status_code == 422
    assert p.field_error(p.text(response), "f-cost_center_ids")
    response = p.post(
        client,
        f"/portal/print/users/{ours.print_user}",
        {"username": "mrossi", "active": "1", "default_cost_center_id": str(theirs.cost_center)},
        form_url="/portal/print/users/new",
    )
    assert response.status_code == 422
    assert p.field_error(p.text(response), "f-default_cost_center_id")
    response = p.post(
        client,
        "/portal/print/cost-centers/new",
        {"name": "Under theirs", "parent_id": str(theirs.cost_center), "active": "1"},
        form_url="/portal/print/cost-centers/new",
    )
    assert response.status_code == 422
    assert p.field_error(p.text(response), "f-parent_id")
    with app.app_context():
        assert snapshot() == before


def test_customer_user_reaches_only_my_jobs_and_staff_go_to_the_back_office(app, portal_companies):
    ours, _theirs = portal_companies
    colleague = p.portal_client(app, ours.colleague)
    assert colleague.get("/portal/print/my/").status_code == 200
    for url in ("/portal/print/", "/portal/print/users/", "/portal/print/reports/", "/portal/print/transactions/"):
        assert colleague.get(url).status_code == 403, url
    assert colleague.get(f"/portal/print/users/{ours.print_user}").status_code == 403
    home = p.text(colleague.get("/portal/"))
    assert "/portal/print/my/" in home and 'href="/portal/print/"' not in home
    anonymous = app.test_client()
    assert "/portal/login" in anonymous.get("/portal/print/users/").location
    with app.app_context():
        make_user("office@dealer.it", "back_office")
    limiter.reset()
    staff = app.test_client()
    assert login(staff, "office@dealer.it").status_code == 302
    assert staff.get("/portal/print/users/").location.endswith("/admin/")
