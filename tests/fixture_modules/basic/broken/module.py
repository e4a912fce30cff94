"""Fixture module broken: a page and an admin view, to see it appear and disappear."""

from flask import Blueprint
from flask_admin import expose

from core.admin import SecuredView


class BrokenView(SecuredView):
    @expose("/")
    def index(self):
        return "broken admin"


bp = Blueprint("fixture_broken", __name__, url_prefix="/fixture/broken")
bp.add_url_rule("/", "index", lambda: "broken page")


def setup(ctx):
    ctx.add_blueprint(bp)
    ctx.add_admin_view(BrokenView(name="Broken page", endpoint="fixture_broken_admin"))
