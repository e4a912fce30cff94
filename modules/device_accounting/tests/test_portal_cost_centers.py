"""A customer admin's cost centers in the portal: the tree, a new one under another, a move, a cycle refused beside
its field, and a shared account with its own quota."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.db import db
from modules.device_accounting.models import CostCenter, Quota
from modules.device_accounting.tests import portal_support as p

NEW = "/portal/print/cost-centers/new"


pytestmark = pytest.mark.usefixtures("portal_now")


def paths(app, customer_id: int) -> list[str]:
    with app.app_context():
        centers = db.session.scalars(sa.select(CostCenter).where(CostCenter.customer_id == customer_id))
        return sorted(center.path for center in centers)


def center_id(app, name: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(CostCenter.id).where(CostCenter.name == name))


def test_tree_lists_each_cost_center_under_its_parent(app, portal_bianchi, portal_admin):
    page = p.text(portal_admin.get("/portal/print/cost-centers/"))
    order = [page.index(f'data-cost-center="{path}"') for path in ("Amministrazione", "Amministrazione / Contabilità")]
    assert order == sorted(order)
    assert 'class="depth-1' in page and "Progetti" in page


def test_new_cost_center_under_another_then_moved_to_the_top(app, portal_bianchi, portal_admin):
    top = center_id(app, "Amministrazione")
    form_url = f"{NEW}?parent={top}"
    assert f'value="{top}" selected' in p.text(portal_admin.get(form_url))
    created = p.post(portal_admin, form_url, {"name": "Paghe", "code": "PAY", "parent_id": str(top), "active": "1"})
    assert created.status_code == 302
    assert "Amministrazione / Paghe" in paths(app, portal_bianchi.customer)

    payroll = center_id(app, "Paghe")
    url = f"/portal/print/cost-centers/{payroll}"
    moved = p.post(portal_admin, url, {"name": "Paghe", "code": "PAY", "parent_id": "", "active": "1"}, form_url=url)
    assert moved.status_code == 302
    assert "Paghe" in paths(app, portal_bianchi.customer)


def test_a_cost_center_cannot_go_under_itself_or_below_it(app, portal_bianchi, portal_admin):
    top = center_id(app, "Amministrazione")
    url = f"/portal/print/cost-centers/{top}"
    # The form does not even offer the cost centers below it...
    assert f'value="{portal_bianchi.cost_center}"' not in p.text(portal_admin.get(url))
    before = paths(app, portal_bianchi.customer)
    # ...and a posted one is refused beside the field, nothing moved.
    response = p.post(
        portal_admin, url, {"name": "Amministrazione", "parent_id": str(portal_bianchi.cost_center), "active": "1"}
    )
    assert response.status_code == 422
    assert "Amministrazione" in p.field_error(p.text(response), "f-parent_id")
    assert paths(app, portal_bianchi.customer) == before


def test_sibling_names_are_unique(app, portal_bianchi, portal_admin):
    top = center_id(app, "Amministrazione")
    response = p.post(portal_admin, NEW, {"name": "contabilità", "parent_id": str(top), "active": "1"}, form_url=NEW)
    assert response.status_code == 422 and p.field_error(p.text(response), "f-name")


def test_a_shared_cost_center_gets_a_quota_of_its_own(app, portal_bianchi, portal_admin):
    url = f"/portal/print/cost-centers/{portal_bianchi.shared_center}/quota"
    assert "/quota" in p.text(portal_admin.get(f"/portal/print/cost-centers/{portal_bianchi.shared_center}"))
    saved = p.post(
        portal_admin, url, {"period": "monthly", "amount": "50", "mode": "reset", "overdraft": "5,50"}, form_url=url
    )
    assert saved.status_code == 302
    with app.app_context():
        quota = db.session.scalar(sa.select(Quota).where(Quota.cost_center_id == portal_bianchi.shared_center))
        assert (quota.amount, quota.overdraft) == (Decimal("50"), Decimal("5.5"))
    assert "50,00\xa0€" in p.text(portal_admin.get("/portal/print/cost-centers/"))
    # A cost center that is not shared has no quota page.
    assert portal_admin.get(f"/portal/print/cost-centers/{portal_bianchi.cost_center}/quota").status_code == 404
