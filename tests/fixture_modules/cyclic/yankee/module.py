"""Fixture module yankee: a page and an admin view, to see it appear and disappear."""

from flask import Blueprint
from flask_admin import expose

from core.admin import SecuredView


class YankeeView(SecuredView):
    @expose("/")
    def index(self):
        return "yankee admin"


bp = Blueprint("fixture_yankee", __name__, url_prefix="/fixture/yankee")
bp.add_url_rule("/", "index", lambda: "yankee page")


def setup(ctx):
    ctx.add_blueprint(bp)
    ctx.add_admin_view(YankeeView(name="Yankee page", endpoint="fixture_yankee_admin"))
