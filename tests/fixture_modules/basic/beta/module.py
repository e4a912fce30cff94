"""Fixture module beta: a page and an admin view, to see it appear and disappear."""

from flask import Blueprint
from flask_admin import expose

from core.admin import SecuredView


class BetaView(SecuredView):
    @expose("/")
    def index(self):
        return "beta admin"


bp = Blueprint("fixture_beta", __name__, url_prefix="/fixture/beta")
bp.add_url_rule("/", "index", lambda: "beta page")


def setup(ctx):
    ctx.add_blueprint(bp)
    ctx.add_admin_view(BetaView(name="Beta page", endpoint="fixture_beta_admin"))
