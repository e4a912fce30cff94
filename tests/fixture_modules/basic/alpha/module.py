"""Fixture module alpha: a page and an admin view, to see it appear and disappear."""

from flask import Blueprint
from flask_admin import expose

from core.admin import SecuredView


class AlphaView(SecuredView):
    @expose("/")
    def index(self):
        return "alpha admin"


bp = Blueprint("fixture_alpha", __name__, url_prefix="/fixture/alpha")
bp.add_url_rule("/", "index", lambda: "alpha page")


def setup(ctx):
    ctx.add_blueprint(bp)
    ctx.add_admin_view(AlphaView(name="Alpha page", endpoint="fixture_alpha_admin"))
