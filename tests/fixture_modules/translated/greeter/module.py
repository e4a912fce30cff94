"""Fixture module greeter: one page with a string that only its own translations/ folder translates."""

from flask import Blueprint
from flask_babel import gettext as _

bp = Blueprint("fixture_greeter", __name__, url_prefix="/fixture/greeter")
bp.add_url_rule("/", "index", lambda: _("A greeting from a module"))


def setup(ctx):
    ctx.add_blueprint(bp)
