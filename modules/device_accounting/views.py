"""Serves the report charts' static files (the vendored Chart.js, our chart script and styles) to admin and portal."""

from __future__ import annotations

from flask import Blueprint

from core.context import ModuleContext
from modules.device_accounting.reports import chart_data

# No pages: only /device-accounting/static/..., used by the report partials under templates/device_accounting/reports/.
bp = Blueprint(
    "device_accounting_static",
    __name__,
    url_prefix="/device-accounting",
    static_folder="static",
    static_url_path="/static",
)


def register(ctx: ModuleContext) -> None:
    ctx.add_blueprint(bp)
    # `{% set charts = report | da_chart_data %}` in the report partials.
    ctx.app.add_template_filter(chart_data, "da_chart_data")
