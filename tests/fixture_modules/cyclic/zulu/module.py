"""Fixture module zulu: a page and an admin view, to see it appear and disappear."""

from flask import Blueprint
from flask_admin import expose

from core.admin import SecuredView


class ZuluView(SecuredView):
    @expose("/")
    def index(self):
        return "zulu admin"


bp = Blueprint("fixture_zulu", __name__, url_prefix="/fixture/zulu")
bp.add_url_rule("/", "index", lambda: "zulu page")


def setup(ctx):
    ctx.add_blueprint(bp)
    ctx.add_admin_view(ZuluView(name="Zulu page", endpoint="fixture_zulu_admin"))
