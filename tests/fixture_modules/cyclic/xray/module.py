"""Fixture module xray: a page and an admin view, to see it appear and disappear."""

from flask import Blueprint
from flask_admin import expose

from core.admin import SecuredView


class XrayView(SecuredView):
    @expose("/")
    def index(self):
        return "xray admin"


bp = Blueprint("fixture_xray", __name__, url_prefix="/fixture/xray")
bp.add_url_rule("/", "index", lambda: "xray page")


def setup(ctx):
    ctx.add_blueprint(bp)
    ctx.add_admin_view(XrayView(name="Xray page", endpoint="fixture_xray_admin"))
