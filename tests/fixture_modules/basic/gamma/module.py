"""Fixture module gamma: a page and an admin view, to see it appear and disappear."""

from flask import Blueprint
from flask_admin import expose

from core.admin import SecuredView


class GammaView(SecuredView):
    @expose("/")
    def index(self):
        return "gamma admin"


bp = Blueprint("fixture_gamma", __name__, url_prefix="/fixture/gamma")
bp.add_url_rule("/", "index", lambda: "gamma page")


def setup(ctx):
    ctx.add_blueprint(bp)
    ctx.add_admin_view(GammaView(name="Gamma page", endpoint="fixture_gamma_admin"))
