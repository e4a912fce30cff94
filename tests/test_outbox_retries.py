"""Mail retries: a message that fails is tried again on a schedule reaching past a day; staff can send it again."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from core import jobs
from core.db import db, utcnow
from core.models import OutboxMessage
from core.outbox import DEFAULT_RETRY_SCHEDULE, mail_job_id
from tests.test_jobs import work_burst
from tests.test_outbox import build_app, csrf_token, message_status, queue_test_email, staff_client


@pytest.fixture
def mail_app(empty_db_url, smtp_server):
    app = build_app(empty_db_url, MAIL_SERVER=smtp_server.host, MAIL_PORT=smtp_server.port, MAIL_SUPPRESS_SEND=False)
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def redis_mail_app(empty_db_url, smtp_server, own_redis, monkeypatch):
    monkeypatch.setattr(jobs, "_redis_was_down", jobs.threading.Event())
    app = build_app(
        empty_db_url,
        MAIL_SERVER=smtp_server.host,
        MAIL_PORT=smtp_server.port,
        MAIL_SUPPRESS_SEND=False,
        REDIS_URL=own_redis.url,
    )
    yield app
    with app.app_context():
        db.engine.dispose()


def time_passes_until_next_attempt(message_id: int) -> None:
    """Move the message's next attempt to now, as the clock would after waiting."""
    db.session.execute(
        sa.update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1))
    )
    db.session.commit()


def test_email_failing_for_a_day_is_retried_by_the_worker_sweep_and_delivered_when_the_server_returns(
    mail_app, smtp_server
):
    with mail_app.app_context():
        smtp_server.stop()
        message = queue_test_email()
        db.session.commit()
        message_id = message.id
        waits = []
        while True:
            failed = message_status(message_id)
            assert failed.status == "failed"
            if failed.next_attempt_at is None:
                break
            waits.append(round((failed.next_attempt_at.replace(tzinfo=dt.UTC) - utcnow()).total_seconds()))
            jobs.run_sweeps(mail_app)  # not due yet: nothing happens
            assert message_status(message_id).attempts == len(waits)
            if len(waits) == len(DEFAULT_RETRY_SCHEDULE):
                smtp_server.start()  # the server is back for the last automatic attempt
            time_passes_until_next_attempt(message_id)
            jobs.run_sweeps(mail_app)
            if message_status(message_id).status == "sent":
                break

    assert sum(waits) >= 24 * 3600
    assert all([abs(wait - planned) <= 5 for wait, planned in zip(waits, DEFAULT_RETRY_SCHEDULE, strict=True)])
    assert len(smtp_server.wait_for(1)) == 1
    with mail_app.app_context():
        sent = message_status(message_id)
        assert (sent.status, sent.attempts, sent.next_attempt_at) == ("sent", len(DEFAULT_RETRY_SCHEDULE) + 1, None)


def test_email_out_of_automatic_attempts_says_so_and_staff_send_it_again(mail_app, smtp_server):
    smtp_server.stop()
    with mail_app.app_context():
        message = queue_test_email()
        db.session.commit()
        message_id = message.id
        db.session.execute(
            sa.update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(attempts=len(DEFAULT_RETRY_SCHEDULE) + 1, next_attempt_at=None)
        )
        db.session.commit()
    smtp_server.start()
    client = staff_client(mail_app)
    page = client.get(f"/admin/outbox/{message_id}").get_data(as_text=True)
    assert "automatic attempts are over" in page

    response = client.post(f"/admin/outbox/{message_id}/send", data={"csrf_token": csrf_token(page)})

    assert "The email was sent." in client.get(response.location).get_data(as_text=True)
    assert len(smtp_server.wait_for(1)) == 1


def test_pending_email_stuck_while_redis_is_down_can_be_sent_again_from_the_outbox(
    redis_mail_app, smtp_server, own_redis
):
    app = redis_mail_app
    own_redis.stop()
    with app.app_context():
        message = queue_test_email()
        db.session.commit()
        message_id = message.id  # the send job cannot reach Redis: it waits
        assert message_status(message_id).status == "pending"
        assert jobs.job_status(mail_job_id(message_id)) == "waiting"
    client = staff_client(app)
    page = client.get(f"/admin/outbox/{message_id}").get_data(as_text=True)
    assert f'action="/admin/outbox/{message_id}/send"' in page

    refused = client.post(f"/admin/outbox/{message_id}/send")
    assert refused.status_code == 400  # no CSRF token
    still_down = client.post(f"/admin/outbox/{message_id}/send", data={"csrf_token": csrf_token(page)})
    assert "The job queue is unreachable" in client.get(still_down.location).get_data(as_text=True)
    own_redis.start()
    queued = client.post(f"/admin/outbox/{message_id}/send", data={"csrf_token": csrf_token(page)})
    assert "a worker sends it shortly" in client.get(queued.location).get_data(as_text=True)
    work_burst(app)

    assert len(smtp_server.wait_for(1)) == 1
    with app.app_context():
        jobs.run_sweeps(app)  # sent: the sweep sends nothing again
    work_burst(app)
    assert len(smtp_server.messages) == 1
    with app.app_context():
        assert message_status(message_id).status == "sent"
