"""Fixture module bridge: a page and an admin view, to see it appear and disappear."""

from flask import Blueprint
from flask_admin import expose

from core.admin import SecuredView


class BridgeView(SecuredView):
    @expose("/")
    def index(self):
        return "bridge admin"


bp = Blueprint("fixture_bridge", __name__, url_prefix="/fixture/bridge")
bp.add_url_rule("/", "index", lambda: "bridge page")


def setup(ctx):
    ctx.add_blueprint(bp)
    ctx.add_admin_view(BridgeView(name="Bridge page", endpoint="fixture_bridge_admin"))
