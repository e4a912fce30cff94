"""Helpers for the back-office tests of device accounting: a customer with a device, cost centers, a print user with a
card and a quota, jobs recorded through operations, and staff logged in in Italian with real forms and CSRF tokens."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from dataclasses import dataclass
from typing import Any

import lxml.html

from core import clock, labels
from core.db import db
from core.extensions import limiter
from core.models import Partner
from modules.device_accounting import operations, quotas
from modules.device_accounting.cost_centers import save_cost_center
from modules.device_accounting.pricing import save_price_list
from modules.device_accounting.tests import core_support
from modules.device_accounting.users import add_card, save_user
from tests.auth_support import CSRF_RE, login, make_user

_seq = itertools.count(1)
CELLS = "//td | //th | //dd | //dt | //li | //strong | //option | //h1 | //h2 | //h3"


@dataclass
class Office:
    customer_id: int
    device_id: int
    other_device_id: int
    center_id: int
    child_id: int
    user_id: int
    other_user_id: int
    quota_id: int


def record_job(device_id: int, user_id: int | None, sides_bw: int = 10, sides_color: int = 0, **fields: Any):
    """A job that ended an hour ago (or just now, early in the day), stored and charged through operations."""
    ended = max(clock.now() - dt.timedelta(hours=1), clock.day_start(clock.today()) + dt.timedelta(minutes=1))
    data = {
        "device_id": device_id,
        "device_seq": next(_seq) + 10_000,
        "user_id": user_id,
        "function": "print",
        "sides_bw": sides_bw,
        "sides_color": sides_color,
        "paper_size": "A4",
        "duplex": False,
        "status": "done",
        "started_at": ended - dt.timedelta(minutes=1),
        "ended_at": ended,
        **fields,
    }
    tx, _created = operations.record_transaction(data)
    return tx


def office() -> Office:
    """Studio Rossi: devices KY-A1 and KY-B2, cost centers Amministrazione / Contabilità, print users Mario Rossi
    (card 0004521, a quota of 20.00) and Lucia Verdi, the dealer's prices (0.01 a black side, 0.05 a colour one), and
    two jobs of Mario's today at KY-A1."""
    customer = Partner(name="Studio Rossi", is_customer=True, language="it")
    db.session.add(customer)
    db.session.flush()
    device = core_support.device("KY-A1", at=customer)
    other = core_support.device("KY-B2", at=customer)
    save_price_list(
        None,
        {
            "name": "Listino rivenditore",
            "valid_from": dt.date(2025, 1, 1),
            "entries": [
                {"function": f, "colour": c, "paper_size": "any", "duplex": "any", "price_per_side": p}
                for f in ("print", "copy")
                for c, p in (("bw", "0.01"), ("color", "0.05"))
            ],
        },
    )
    center = save_cost_center(customer.id, {"name": "Amministrazione"})
    child = save_cost_center(customer.id, {"name": "Contabilità", "parent_id": center.id})
    user = save_user(
        customer.id,
        {
            "username": "mrossi",
            "full_name": "Mario Rossi",
            "email": "mario@rossi.example",
            "default_cost_center_id": child.id,
        },
    )
    add_card(user, "0004521")
    other_user = save_user(customer.id, {"username": "lverdi", "full_name": "Lucia Verdi"})
    quota = quotas.save_quota(customer.id, {"user_id": user.id, "amount": "20.00", "period": "monthly"})
    record_job(device.id, user.id, sides_bw=10)
    record_job(device.id, user.id, sides_bw=2, sides_color=4)
    record_job(other.id, other_user.id, sides_bw=3)
    db.session.commit()
    return Office(customer.id, device.id, other.id, center.id, child.id, user.id, other_user.id, quota.id)


def staff(app, role: str):
    """A client logged in as staff of `role`, speaking Italian."""
    limiter.reset()
    with app.app_context():
        make_user(f"{role}@copy.example", role, language="it")
    client = app.test_client()
    assert login(client, f"{role}@copy.example").status_code == 302
    return client


def post(client, url: str, data: dict, form_url: str, **kwargs):
    page = client.get(form_url)
    assert page.status_code == 200, (form_url, page.status_code)
    token = CSRF_RE.search(page.get_data(as_text=True)).group(1)
    return client.post(url, data={"csrf_token": token, **data}, **kwargs)


def text_of(html: str) -> str:
    return " ".join(lxml.html.fromstring(html).text_content().split())


def raw_codes(app, html: str) -> list[str]:
    """The cells of a page showing a device-accounting code as it is (`color`, `rollover`) instead of its label."""
    with app.test_request_context():
        codes = {
            code
            for name, values in labels.enums().items()
            if name.startswith("device_accounting.")
            for code, label in values.items()
            if str(label) != code
        }
    tree = lxml.html.fromstring(html)
    found = []
    for cell in tree.xpath(CELLS):
        text = " ".join(cell.text_content().split())
        # A <code> is shown as typed on purpose (a CSV column's name, `email`), not a code to translate.
        written = " ".join(" ".join(code.text_content().split()) for code in cell.xpath(".//code"))
        if text in codes and text != written:
            found.append(text)
    return found


def label(app, enum: str, code: str) -> str:
    """The label an Italian page shows for `code`."""
    from flask_babel import force_locale

    with app.test_request_context(), force_locale("it"):
        return labels.enum_label(enum, code)


def flashed(html: str) -> str:
    return " ".join(
        " ".join(node.text_content().split())
        for node in lxml.html.fromstring(html).xpath("//*[contains(@class, 'alert')]")
    )


NUMBER = re.compile(r"\d+")
