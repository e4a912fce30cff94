"""Every back-office list and details page of the demo, read in Italian, names records and translates codes: no raw
enum code, no English header, no bare id where a record belongs. Walks the registered admin views, so a new
module's pages are checked too."""

from __future__ import annotations

import re

import lxml.html
import pytest
import sqlalchemy as sa
from flask import url_for
from flask_admin.model.helpers import prettify_name
from flask_babel import force_locale, get_translations

from core import clock, labels
from core.admin import SecuredModelView
from core.db import db
from core.demo import DEMO_PASSWORD
from core.extensions import limiter
from core.models import User
from modules.invoicing import runs, services
from modules.invoicing.models import Invoice
from tests.auth_support import login

ROWS_PER_VIEW = 2
LINKS_PER_PAGE = 3
CELLS = "//td | //th | //dd | //dt | //li | //strong | //option | //h1 | //h2 | //h3"
BILLED_KEY = re.compile(r"\b[a-z_]+:\d+(?::\d+)*\b")


def _text(element) -> str:
    return " ".join(element.text_content().split())


def _pages(app, client) -> list[tuple[str, object]]:
    """(url, view) for every admin view's index, the first rows' details and edit pages of model views, and a few
    pages a custom view links to under its own address (a run, an invoice)."""
    pages = []
    with app.test_request_context():
        for view in app.extensions["copydesk"].admin._views:
            if isinstance(view, SecuredModelView):
                pages.append((url_for(f"{view.endpoint}.index_view"), view))
                key = sa.inspect(view.model).primary_key[0]
                ids = db.session.scalars(sa.select(key).order_by(key).limit(ROWS_PER_VIEW))
                for ident in ids:
                    if view.can_view_details:
                        pages.append((url_for(f"{view.endpoint}.details_view", id=ident), view))
            elif view.endpoint != "admin":
                pages.append((url_for(f"{view.endpoint}.index"), view))
    found = []
    for url, view in pages:
        found.append((url, view))
        if isinstance(view, SecuredModelView):
            continue
        page = client.get(url)
        if page.status_code != 200 or page.mimetype != "text/html":
            continue
        tree = lxml.html.fromstring(page.get_data(as_text=True))
        below = sorted(
            {
                href.split("?")[0]
                for href in tree.xpath("//main//a/@href | //table//a/@href")
                if href.startswith(url) and re.search(r"/\d+/?$", href.split("?")[0])
            }
        )
        found.extend((href, view) for href in below[:LINKS_PER_PAGE])
    return found


def _problems(app, url: str, view, html: str) -> list[str]:
    tree = lxml.html.fromstring(html)
    for technical in tree.xpath("//details[contains(@class, 'technical')]"):
        technical.drop_tree()  # kept for staff behind "Technical details", closed by default
    problems = []
    with app.test_request_context(), force_locale("it"):
        italian = get_translations()
        codes = {
            code: enum
            for enum, values in labels.enums().items()
            for code, label in values.items()
            if str(label) != code and isinstance(code, str)
        }
        for cell in tree.xpath(CELLS):
            if cell.xpath(".//td | .//li | .//table"):
                continue
            text = _text(cell)
            if text in codes:
                problems.append(f"{url}: raw code {text!r} of {codes[text]} shown")
            elif text and italian.gettext(text) != text and "col-label_en" not in cell.get("class", ""):
                problems.append(f"{url}: English text {text!r} in the Italian page")
            elif BILLED_KEY.search(text):
                problems.append(f"{url}: internal key in {text!r}")
        if isinstance(view, SecuredModelView):
            unlabelled = {
                prettify_name(column.key)
                for column in view.model.__table__.columns
                if column.key not in (view.column_labels or {}) and column.key not in labels.COMMON_COLUMN_LABELS
            }
            problems += [f"{url}: English header {_text(th)!r}" for th in tree.xpath("//th") if _text(th) in unlabelled]
            keys = [
                c.key for c in view.model.__table__.columns if c.foreign_keys or c.key == "id" or c.key.endswith("_id")
            ]
            for key in keys:
                for cell in tree.xpath(f"//td[contains(@class, 'col-{key}')]"):
                    if _text(cell).lstrip("#").isdigit():
                        problems.append(f"{url}: bare id {_text(cell)!r} in column {key}")
            headers = {str(view.get_column_name(key)) for key in keys}
            for row in tree.xpath("//table[contains(@class, 'searchable')]//tr"):
                cells = row.xpath("./td")
                if len(cells) == 2 and _text(cells[0]) in headers and _text(cells[1]).lstrip("#").isdigit():
                    problems.append(f"{url}: bare id {_text(cells[1])!r} for {_text(cells[0])}")
    return problems


@pytest.fixture
def italian_dealer(app):
    loaded = app.test_cli_runner().invoke(args=["demo", "load"])
    assert loaded.exit_code == 0, loaded.output
    with app.app_context():
        # A billing run with one draft posted, so runs, drafts, posted invoices and their lines are scanned too.
        run = runs.create_run(clock.today())
        db.session.commit()
        runs.launch_run(run.id)
        first = db.session.scalars(sa.select(Invoice).where(Invoice.state == "draft").order_by(Invoice.id)).first()
        assert first is not None, "the demo's billing run made no draft"
        services.post(first)
        db.session.commit()
        admin = db.session.scalar(sa.select(User).where(User.email == "admin@copydesk.local"))
        admin.language = "it"
        db.session.commit()
    limiter.reset()
    client = app.test_client()
    assert login(client, "admin@copydesk.local", DEMO_PASSWORD).status_code == 302
    return client


def test_every_back_office_page_of_the_demo_names_records_and_translates_codes_in_italian(app, italian_dealer):
    with app.app_context():
        pages = _pages(app, italian_dealer)
    assert len(pages) > 20
    problems = []
    for url, view in pages:
        response = italian_dealer.get(url)
        if response.status_code != 200:
            problems.append(f"{url}: answered {response.status_code}")
        elif response.mimetype == "text/html":
            with app.app_context():
                problems += _problems(app, url, view, response.get_data(as_text=True))
    assert not problems, "\n".join(problems)
