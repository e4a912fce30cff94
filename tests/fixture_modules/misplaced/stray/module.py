"""Fixture module stray: everything defined here in module.py, where none of it belongs; no models.py, no tests/."""

import datetime as dt

from flask import Blueprint, render_template
from flask_admin import expose

from core.admin import SecuredView
from core.extension_points import BILLABLE_SOURCE, BillableLine


class StraySource:
    name = "stray"

    def billable_lines(self, customer_id: int, as_of: dt.date) -> list[BillableLine]:
        return []


class StrayView(SecuredView):
    @expose("/")
    def index(self):
        return render_template("stray/admin/missing.html")


def nightly() -> None:
    """A periodic job defined outside jobs.py."""


portal_bp = Blueprint("stray_portal", __name__, url_prefix="/portal/stray")


def setup(ctx):
    ctx.register(BILLABLE_SOURCE, StraySource())
    ctx.add_periodic_job(nightly, "0 3 * * *")
    ctx.add_blueprint(portal_bp)
    ctx.add_admin_view(StrayView(name="Stray page", endpoint="stray_admin"))
