"""Every back-office list and details page of the demo, read in Italian, names records and translates codes: no raw
enum code, no English header, no bare id where a record belongs, no related record named without a link to its page.
Walks the registered admin views and the registered records, so a new module's pages and records are checked too."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import lxml.html
import pytest
import sqlalchemy as sa
from flask import g, url_for
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
from tests.demo_snapshot import load_demo

ROWS_PER_VIEW = 2
LINKS_PER_PAGE = 3
CELLS = "//td | //th | //dd | //dt | //li | //strong | //option | //h1 | //h2 | //h3"
BILLED_KEY = re.compile(r"\b[a-z_]+:\d+(?::\d+)*\b")
LINK_CELLS = "//td | //dd | //li[not(ancestor::*[contains(@class, 'navbar')])]"
RECORDS_PER_MODEL = 500


def _address(href: str) -> tuple[str, frozenset]:
    parts = urlsplit(href)
    return parts.path, frozenset(parse_qsl(parts.query))


def _links_to(href: str, addresses: set[tuple[str, frozenset]]) -> bool:
    """`href` opens one of `addresses` (extra arguments such as Flask-Admin's return `url` do not matter)."""
    path, args = _address(href)
    return any(path == wanted and wanted_args <= args for wanted, wanted_args in addresses)


def _record_pages(app, admin_id: int) -> tuple[dict[str, set], set[type]]:
    """Every registered record of the demo that has a page the dealer's admin may open, by its Italian label (the
    addresses of the records named so), and the models whose records have pages. A label that is also an enum's
    ("Colore": a meter, and a colour of printing) says nothing for sure, so it is left out."""
    pages: dict[str, set] = {}
    linkable: set[type] = set()
    with app.test_request_context(), force_locale("it"):
        g._login_user = db.session.get(User, admin_id)  # record_url asks whether this user may open the page
        for model in labels.record_models():
            for record in db.session.scalars(sa.select(model).limit(RECORDS_PER_MODEL)):
                url = labels.record_url(record)
                if url:
                    linkable.add(model)
                    pages.setdefault(labels.record_label(record), set()).add(_address(url))
        words = {str(label) for values in labels.enums().values() for label in values.values()}
    return {label: addresses for label, addresses in pages.items() if label not in words}, linkable


def _related_columns(view, names: list[str], linkable: set[type]) -> dict[str, bool]:
    """The columns of `view` that show related records of a model with pages, each saying whether it shows many: a
    relationship, a dotted column read through relationships (`device.customer.name` shows the customer), or a
    foreign key to such a model's table."""
    found = {}
    tables = {sa.inspect(model).local_table for model in linkable}
    for name in names:
        model, many = view.model, False
        for position, part in enumerate(name.split(".")):
            mapper = sa.inspect(model)
            relationship = mapper.relationships.get(part)
            if relationship is None:
                column = mapper.columns.get(part)
                if (
                    position == 0
                    and column is not None
                    and any(fk.column.table in tables for fk in column.foreign_keys)
                ):
                    found[name] = False
                break
            model, many = relationship.mapper.class_, many or relationship.uselist
        if model is not view.model and model in linkable:
            found[name] = many
    return found


def _own_row(cell, here, records: dict[str, set]) -> bool:
    """Every record the cell names is the page's own or the one its row links to (a print user's cards, whose page
    is the user's own): the cell speaks of the row itself."""
    row = next(iter(cell.xpath("ancestor::tr[1]")), cell)
    hrefs = row.xpath(".//a/@href")
    pieces = [piece.strip() for piece in _text(cell).split(",")]
    return all(
        (addresses := records.get(piece)) and (here in addresses or any(_links_to(h, addresses) for h in hrefs))
        for piece in pieces
    )


def _unlinked(url: str, tree, records: dict[str, set]) -> list[str]:
    """Cells of the pages' own tables (a custom page's, the extra tables of a details page) whose whole text is a
    record's label and that link nowhere, unless they name the row itself. The model views' list and details tables
    are read column by column instead (`_unlinked_columns`), knowing which columns show related records."""
    problems = []
    here = _address(url)
    model_tables = set(tree.xpath("//table[contains(@class, 'model-list') or contains(@class, 'searchable')]"))
    for cell in tree.xpath(LINK_CELLS):
        if cell.xpath(".//td | .//li | .//table | .//a[@href]") or model_tables & set(cell.iterancestors("table")):
            continue
        if records.get(_text(cell)) and not _own_row(cell, here, records):
            problems.append(f"{url}: {_text(cell)!r} named without a link to its page")
    return problems


def _needs_link(cell, many: bool, here, records: dict[str, set]) -> bool:
    """A related-record cell that should link: not empty, no link, not a count of many, not the row itself."""
    text = _text(cell)
    if not text or cell.xpath(".//a[@href]") or (many and text.isdigit()):
        return False
    return not _own_row(cell, here, records)


def _unlinked_columns(url: str, view, tree, records: dict[str, set], linkable: set[type]) -> list[str]:
    """A model view's related-record columns, in its list and details tables, each with a link to the record."""
    problems = []
    here = _address(url)
    for name, many in _related_columns(view, [name for name, _label in view.get_list_columns()], linkable).items():
        for cell in tree.xpath(f"//td[contains(concat(' ', @class, ' '), ' col-{name} ')]"):
            if _needs_link(cell, many, here, records):
                problems.append(f"{url}: column {name} shows {_text(cell)!r} without a link")
    details = {str(label): name for name, label in view.get_details_columns()}
    related = _related_columns(view, list(details.values()), linkable)
    for row in tree.xpath("//table[contains(@class, 'searchable')]//tr"):
        cells = row.xpath("./td")
        name = details.get(_text(cells[0])) if len(cells) == 2 else None
        if name in related and _needs_link(cells[1], related[name], here, records):
            problems.append(f"{url}: {_text(cells[0])} shows {_text(cells[1])!r} without a link")
    return problems


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


def _problems(app, url: str, view, html: str, records: dict[str, set], linkable: set[type]) -> list[str]:
    tree = lxml.html.fromstring(html)
    for technical in tree.xpath("//details[contains(@class, 'technical')]"):
        technical.drop_tree()  # kept for staff behind "Technical details", closed by default
    for typed in tree.xpath("//code"):
        typed.drop_tree()  # what the user types as such: a CSV column name, a meter code in an import template
    # A record whose key is a code the dealer chose (a meter type's `bw`) shows that key in its own column.
    own_keys = set()
    if isinstance(view, SecuredModelView):
        own_keys = {f"col-{c.key}" for c in sa.inspect(view.model).primary_key if isinstance(c.type, sa.String)}
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
            if own_keys & set(cell.get("class", "").split()):
                continue
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
            # A number that is a record's name (a badge card's) is no bare id.
            for key in keys:
                for cell in tree.xpath(f"//td[contains(@class, 'col-{key}')]"):
                    if _text(cell).lstrip("#").isdigit() and _text(cell) not in records:
                        problems.append(f"{url}: bare id {_text(cell)!r} in column {key}")
            headers = {str(view.get_column_name(key)) for key in keys}
            for row in tree.xpath("//table[contains(@class, 'searchable')]//tr"):
                cells = row.xpath("./td")
                bare = len(cells) == 2 and _text(cells[1]).lstrip("#").isdigit() and _text(cells[1]) not in records
                if bare and _text(cells[0]) in headers:
                    problems.append(f"{url}: bare id {_text(cells[1])!r} for {_text(cells[0])}")
            problems += _unlinked_columns(url, view, tree, records, linkable)
    return problems + _unlinked(url, tree, records)


@pytest.fixture
def italian_dealer(app):
    load_demo(app)
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
        admin_id = admin.id
    limiter.reset()
    client = app.test_client()
    assert login(client, "admin@copydesk.local", DEMO_PASSWORD).status_code == 302
    return client, admin_id


def test_every_back_office_page_of_the_demo_names_records_and_translates_codes_in_italian(app, italian_dealer):
    client, admin_id = italian_dealer
    with app.app_context():
        pages = _pages(app, client)
        records, linkable = _record_pages(app, admin_id)
    assert len(pages) > 20
    assert len(linkable) > 5, linkable  # customers, contracts, devices, models, meters, readings, invoices, runs...
    problems = []
    for url, view in pages:
        response = client.get(url)
        if response.status_code != 200:
            problems.append(f"{url}: answered {response.status_code}")
        elif response.mimetype == "text/html":
            with app.app_context():
                problems += _problems(app, url, view, response.get_data(as_text=True), records, linkable)
    assert not problems, "\n".join(problems)
