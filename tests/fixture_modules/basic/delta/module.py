"""Fixture module delta: a page and an admin view, to see it appear and disappear."""

from flask import Blueprint
from flask_admin import expose

from core.admin import SecuredView


class DeltaView(SecuredView):
    @expose("/")
    def index(self):
        return "delta admin"


bp = Blueprint("fixture_delta", __name__, url_prefix="/fixture/delta")
bp.add_url_rule("/", "index", lambda: "delta page")


def setup(ctx):
    ctx.add_blueprint(bp)
    ctx.add_admin_view(DeltaView(name="Delta page", endpoint="fixture_delta_admin"))
