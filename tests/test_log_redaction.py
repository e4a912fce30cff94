"""No password or reading link can be read back from the logs, the audit log or the job records."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server

from core.auth import services
from core.db import db
from core.extensions import limiter
from core.models import AuditLog, JobRecord, User
from tests.auth_support import make_user, post_form
from tests.smtp_server import free_port

NEW_PASSWORD = "a brand new passphrase"
READING_TOKEN = "eyJyIjoxLCJuIjoiYWJjIn0.Z1x2Yw.c2lnbmF0dXJlLW9mLWEtcmVhZGluZy1saW5r"


@pytest.fixture(autouse=True)
def _fresh_limits(app):
    limiter.reset()
    yield
    limiter.reset()


def _password_links(app) -> dict[str, str]:
    """Valid reset and set-password tokens of a new user, by path."""
    with app.app_context():
        user = make_user("admin@dealer.it", "dealer_admin")
        return {
            f"/reset-password/{services.password_token(user, services.RESET)}": "reset",
            f"/set-password/{services.password_token(user, services.SET_PASSWORD)}": "set",
            f"/portal/readings/link/{READING_TOKEN}": "reading",
        }


def _token(path: str) -> str:
    return path.rsplit("/", 1)[1]


def _get(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_development_server_log_shows_no_link_token(app, caplog):
    paths = _password_links(app)
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    caplog.set_level(logging.INFO, logger="werkzeug")
    try:
        for path in paths:
            _get(f"http://127.0.0.1:{server.server_port}{path}")
    finally:
        server.shutdown()
        thread.join(timeout=10)
    lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert len(lines) == len(paths), lines
    for path in paths:
        assert not any(_token(path) in line for line in lines), lines
    assert any("/reset-password/*** HTTP/1.1" in line for line in lines), lines
    assert any("/portal/readings/link/*** HTTP/1.1" in line for line in lines), lines


def test_the_gunicorn_access_log_shows_no_link_token_not_even_in_the_referer(app, tmp_path):
    paths = _password_links(app)
    port = free_port()
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "SECRET_KEY": app.config["SECRET_KEY"],
        "REDIS_URL": "",
        "MAIL_SERVER": "",
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen(
        [
            str(gunicorn),
            "--workers",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--access-logfile",
            str(access_log),
            "wsgi:app",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(base + "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("gunicorn did not start")
                time.sleep(0.2)
        for path in paths:
            _get(base + path)
            # A page's stylesheet is asked for with the page's address as Referer.
            _get(base + "/static/copydesk.css", headers={"Referer": base + path})
    finally:
        process.terminate()
        process.wait(timeout=20)
    log = access_log.read_text()
    assert log.count("\n") >= 2 * len(paths) + 1, log
    for path in paths:
        assert _token(path) not in log, log
    assert "/set-password/***" in log


def test_an_error_logged_for_a_link_page_shows_no_token_not_even_in_the_traceback(app, caplog):
    path = next(iter(_password_links(app)))
    with app.test_request_context(path):
        try:
            raise LookupError(f"nothing at {path}")
        except LookupError:
            # What Flask logs for an exception in a view.
            app.logger.exception("Exception on %s [%s]", path, "POST")
    (record,) = caplog.records
    assert record.getMessage() == "Exception on /reset-password/*** [POST]"
    assert "LookupError: nothing at /reset-password/***" in caplog.text
    assert _token(path) not in caplog.text


def test_a_password_link_leaves_no_token_in_the_audit_log_or_the_job_records(app, client):
    paths = _password_links(app)
    reset = next(path for path, kind in paths.items() if kind == "reset")
    assert client.get(reset).status_code == 200
    response = post_form(client, reset, {"new_password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(User.password_hash)) is not None
        rows = [
            json.dumps([entry.action, entry.object_id, entry.changes])
            for entry in db.session.scalars(sa.select(AuditLog))
        ] + [json.dumps([job.id, job.args, job.error]) for job in db.session.scalars(sa.select(JobRecord))]
    assert any("password_reset" in row for row in rows)
    for path in paths:
        assert not any(_token(path) in row for row in rows), rows


def test_password_link_pages_send_no_referer(app, client):
    paths = _password_links(app)
    for path, kind in paths.items():
        if kind != "reading":
            assert client.get(path).headers["Referrer-Policy"] == "no-referrer"
