"""The report partials: charts drawn by the vendored Chart.js under the app's CSP, data in a JSON block, tables."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from decimal import Decimal

import pytest
from flask import render_template_string
from werkzeug.serving import make_server

from conftest import make_app, migrate

PAGE = """<!doctype html>
<html lang="it"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Report</title></head><body>
{% include "device_accounting/reports/_filters.html" %}
{% include "device_accounting/reports/_charts.html" %}
{% include "device_accounting/reports/_table.html" %}
</body></html>"""


def _figures(jobs, bw, color, cost):
    return {"jobs": jobs, "sides_bw": bw, "sides_color": color, "sheets": bw + color, "cost": Decimal(cost)}


def _row(key, label, *figures, **extra):
    return {"key": key, "label": label, **_figures(*figures), **extra}


def report():
    """A summary as reports.summary returns it: two months, three functions, two users."""
    functions = [
        _row("print", "Stampa", 40, 900, 120, "30.0000"),
        _row("copy", "Copia", 10, 300, 0, "3.0000"),
        _row("scan", "Scansione", 5, 80, 0, "0.0000"),
    ]
    return {
        "since": dt.date(2026, 3, 1),
        "until": dt.date(2026, 4, 30),
        "totals": _figures(55, 1280, 120, "33.0000"),
        "printed": _figures(50, 1200, 120, "33.0000"),
        "colour_share": Decimal("0.0909"),
        "top_users": [_row(1, "Anna Rossi", 30, 700, 100, "24.0000"), _row(2, "Luca Bruni", 20, 500, 20, "9.0000")],
        "by_function": functions,
        "trend": [
            _row("2026-03", "marzo 2026", 30, 700, 60, "18.0000"),
            _row("2026-04", "aprile 2026", 25, 580, 60, "15.0000"),
        ],
    }


def context(group_by="cost_center"):
    rows = [
        _row(1, "Amministrazione", 30, 700, 100, "24.0000", depth=0),
        _row(2, "Amministrazione / Contabilità", 20, 500, 20, "9.0000", depth=1),
    ]
    choices = {
        "users": [(1, "Anna Rossi")],
        "cost_centers": [(1, "Amministrazione"), (2, "Amministrazione / Contabilità")],
        "devices": [],
        "functions": [("print", "Stampa")],
        "group_bys": [("cost_center", "Centro di costo"), ("user", "Utente")],
    }
    filters = {"since": dt.date(2026, 3, 1), "until": dt.date(2026, 4, 30), "group_by": group_by, "cost_center_id": 2}
    return {"report": report(), "rows": rows, "group_by": group_by, "choices": choices, "filters": filters,
            "exports": {"csv": "/x.csv", "pdf": "/x.pdf"}}  # fmt: skip


def test_the_partials_hold_their_data_in_a_json_block_and_load_only_local_scripts(app):
    with app.test_request_context("/"):
        html = render_template_string(PAGE, **context())
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert [attrs for attrs, body in scripts if "src=" not in attrs and 'type="application/json"' not in attrs] == []
    (data,) = [json.loads(body) for attrs, body in scripts if 'type="application/json"' in attrs]
    assert data["trend"]["labels"] == ["marzo 2026", "aprile 2026"]
    assert data["trend"]["cost"] == ["18.0000", "15.0000"]
    assert data["colour"]["values"] == [1200, 120]
    sources = [re.search(r'src="([^"]+)"', attrs).group(1) for attrs, _body in scripts if "src=" in attrs]
    assert sources == [
        "/device-accounting/static/vendor/chartjs/chart.umd.min.js",
        "/device-accounting/static/device-accounting-charts.js",
    ]
    client = app.test_client()
    for source in sources:
        response = client.get(source)
        assert response.status_code == 200 and "javascript" in response.mimetype
    # The cost-center table has no total (its rows overlap); the filters keep what was chosen.
    assert "<tfoot>" not in html
    assert '<option value="2" selected>Amministrazione / Contabilità</option>' in html
    assert 'class="da-depth-1"' in html and 'data-label="' in html


def test_a_table_of_users_ends_with_the_total(app):
    values = context("user")
    values["rows"] = [_row(1, "Anna Rossi", 30, 700, 100, "24.0000"), _row(2, "Luca Bruni", 20, 500, 20, "9.0000")]
    with app.test_request_context("/"):
        html = render_template_string('{% include "device_accounting/reports/_table.html" %}', **values)
    footer = html.split("<tfoot>")[1]
    assert "1,200" in footer and "€33.00" in footer  # black-and-white sides and cost, in the page's language


@pytest.fixture
def chart_server(tmp_path):
    """An app of its own with one page made of the partials, served with the app's security headers."""
    url = f"sqlite:///{tmp_path / 'charts.sqlite'}"
    migrate(make_app(url))
    app = make_app(url)
    app.add_url_rule("/charts-test", "charts_test", lambda: render_template_string(PAGE, **context()))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.mark.browser
def test_chromium_draws_the_four_charts_under_the_content_security_policy(browser, chart_server):
    context_ = browser.new_context()
    page = context_.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    response = page.goto(f"{chart_server}/charts-test")
    assert "script-src 'self' 'nonce-" in response.headers["content-security-policy"]
    page.wait_for_selector("[data-da-drawn=true]")
    sizes = page.eval_on_selector_all("canvas[data-chart]", "cs => cs.map(c => [c.dataset.chart, c.width > 0])")
    assert sizes == [["trend", True], ["by_function", True], ["colour", True], ["top_users", True]]
    drawn = page.evaluate("() => Object.keys(window.Chart.instances).length")
    assert drawn == 4
    assert errors == []
    context_.close()
