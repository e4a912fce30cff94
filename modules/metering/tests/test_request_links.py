"""A request link's grant in the browser session lasts only as long as the link itself does in the database."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest

from core.db import db, utcnow
from modules.metering import campaigns
from modules.metering.models import ReadingRequest, ReadingRequestLink
from modules.metering.tests.test_campaigns import setup_contract


@pytest.fixture
def opened(app):
    """A browser that opened a fresh link of a request: (client, request id, link id)."""
    with app.app_context():
        customer_id, _device, _contract = setup_contract()
        request = ReadingRequest(customer_id=customer_id, due_date=dt.date(2026, 1, 30), deadline=dt.date(2026, 2, 10))
        db.session.add(request)
        db.session.flush()
        link, _until = campaigns.issue_link(request)
        db.session.commit()
        request_id = request.id
        link_id = db.session.scalars(db.select(ReadingRequestLink.id)).one()
    client = app.test_client()
    response = client.get(urlsplit(link).path)
    assert response.status_code == 302
    assert client.get(f"/portal/readings/request/{request_id}").status_code == 200
    return client, request_id, link_id


def test_grant_ends_when_the_link_is_expired_in_the_database(app, opened):
    client, request_id, link_id = opened
    with app.app_context():
        db.session.get(ReadingRequestLink, link_id).expires_at = utcnow() - dt.timedelta(minutes=1)
        db.session.commit()
    page = client.get(f"/portal/readings/request/{request_id}")
    assert page.status_code == 410
    assert "This link has expired" in page.get_data(as_text=True)
    assert client.get(f"/portal/readings/done/{request_id}").status_code == 410


def test_grant_ends_when_the_link_row_is_gone(app, opened):
    client, request_id, link_id = opened
    with app.app_context():
        db.session.delete(db.session.get(ReadingRequestLink, link_id))
        db.session.commit()
    assert client.get(f"/portal/readings/request/{request_id}").status_code == 410
