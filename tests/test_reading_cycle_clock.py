"""The reading cycle and a billing run with the clock set to the days and hours that break date code: a month's last and
first day, 31 December, 29 February 2028, the nights the clocks change in Europe/Rome, and either side of midnight
there. Requests are created once, a reading sent through a request's link answers it, a run bills each period once."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import sqlalchemy as sa
import time_machine

from core import clock
from core.db import db
from core.extensions import limiter
from core.models import OutboxMessage, Partner, PartnerContact
from core.outbox import as_sent
from modules.invoicing import runs
from modules.invoicing.jobs import run_chunk
from modules.invoicing.models import Invoice, InvoiceLine
from modules.metering import campaigns
from modules.metering.models import ReadingRequest
from modules.metering.tests import support as s
from tests.auth_support import CSRF_RE

LINK_RE = re.compile(r"http://[^/\s]+(/portal/readings/link/\S+)")
TAKEN_AT_RE = re.compile(r'name="taken_at" value="([^"]+)"')
UTC = dt.UTC

INSTANTS = {
    "last day of a month": dt.datetime(2026, 11, 30, 10, tzinfo=UTC),
    "first day of a month": dt.datetime(2026, 12, 1, 11, 30, tzinfo=UTC),
    "31 December": dt.datetime(2026, 12, 31, 12, tzinfo=UTC),
    "29 February 2028": dt.datetime(2028, 2, 29, 12, tzinfo=UTC),
    "clocks go forward, 01:30 Rome": dt.datetime(2027, 3, 28, 0, 30, tzinfo=UTC),
    "clocks go forward, 03:30 Rome": dt.datetime(2027, 3, 28, 1, 30, tzinfo=UTC),
    "clocks go back, 01:30 Rome": dt.datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
    "clocks go back, 02:30 Rome the first time": dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
    "clocks go back, 02:30 Rome the second time": dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
    "clocks go back, 03:30 Rome": dt.datetime(2026, 10, 25, 2, 30, tzinfo=UTC),
    "23:59 in Rome, 31 January": dt.datetime(2027, 1, 31, 22, 59, tzinfo=UTC),
    "00:01 in Rome, 1 February": dt.datetime(2027, 1, 31, 23, 1, tzinfo=UTC),
}


def months_before(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - months
    return dt.date(index // 12, index % 12 + 1, 1)


def requests_and_emails() -> tuple[list[tuple[int, dt.date]], int]:
    requests = db.session.execute(sa.select(ReadingRequest.customer_id, ReadingRequest.due_date)).all()
    emails = db.session.scalar(
        sa.select(sa.func.count(OutboxMessage.id)).where(OutboxMessage.dedupe_key.like("reading-request:%"))
    )
    return sorted(tuple(row) for row in requests), emails


def billing_run(customer_id: int, as_of: dt.date) -> list[str]:
    """A billing run of the customer (its chunk job); the source references of the lines it drafted."""
    run = runs.create_run(as_of)
    run.total = 1
    db.session.commit()
    run_chunk(run.id, [customer_id])
    assert [issue.message for issue in runs.run_issues(run.id, "error")] == []
    return list(
        db.session.scalars(
            sa.select(InvoiceLine.source_ref)
            .join(Invoice, InvoiceLine.invoice_id == Invoice.id)
            .where(Invoice.billing_run_id == run.id)
        )
    )


@pytest.mark.parametrize("instant", INSTANTS.values(), ids=INSTANTS.keys())
def test_reading_cycle_and_billing_at_awkward_instants(app, instant):
    with time_machine.travel(instant, tick=False):
        with app.app_context():
            today = clock.today()
            partner = Partner(name="Studio Bianchi", is_customer=True, language="it", email="info@bianchi.it")
            partner.contacts.append(PartnerContact(name="Letture", email="letture@bianchi.it", receives_readings=True))
            db.session.add(partner)
            db.session.flush()
            # 30 days' grace: the last period's request is still open whatever the day.
            start = months_before(today, 2).isoformat()
            s.contract(partner.id, [(s.device("KY1"), {"bw": 10_000, "color": 2_000})], start_date=start, grace_days=30)
            db.session.commit()
            customer_id = partner.id

            campaigns.run_campaigns(today)
            db.session.commit()
            first = requests_and_emails()
            campaigns.run_campaigns(today)
            db.session.commit()
            assert requests_and_emails() == first, "the second run of the day created or emailed again"
            assert first[0] and first[1] == len(first[0])
            message = db.session.scalars(
                sa.select(OutboxMessage)
                .where(OutboxMessage.dedupe_key.like("reading-request:%"))
                .order_by(OutboxMessage.id)
            ).first()
            request_id = int(message.dedupe_key.split(":")[1])
            link = LINK_RE.search(as_sent(message)[1]).group(1)

        limiter.reset()
        client = app.test_client()
        opened = client.get(link)
        assert opened.status_code == 302
        form = client.get(opened.location).get_data(as_text=True)
        device = re.search(r'name="d(\d+)-bw"', form).group(1)
        data = {"csrf_token": CSRF_RE.search(form).group(1), f"d{device}-bw": "10200", f"d{device}-color": "2050"}
        review = client.post(opened.location, data={**data, "step": "review"})
        assert review.status_code == 200, review.get_data(as_text=True)
        taken_at = TAKEN_AT_RE.search(review.get_data(as_text=True)).group(1)
        confirmed = client.post(opened.location, data={**data, "step": "confirm", "taken_at": taken_at})
        assert confirmed.status_code == 302

        with app.app_context():
            assert db.session.get(ReadingRequest, request_id).status == "completed"
            billed = billing_run(customer_id, today)
            assert billed and len(billed) == len(set(billed))
            again = billing_run(customer_id, today)
            assert set(again).isdisjoint(billed), "a period was billed twice"
