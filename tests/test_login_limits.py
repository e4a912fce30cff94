"""Login limits that slow an attacker without locking out the real user, behind a proxy, and with Redis down."""

from __future__ import annotations

import logging
import subprocess
import time

import pytest
import redis

from conftest import make_app
from core.config import load_config
from core.db import db
from core.extensions import limiter
from tests.auth_support import login, make_customer, make_user, post_form
from tests.smtp_server import free_port

ATTACKER = "203.0.113.5"
REAL_USER = "198.51.100.7"
PROXY = "10.0.0.1"


@pytest.fixture(autouse=True)
def _fresh_limits(app):
    limiter.reset()
    yield
    limiter.reset()


def _client_at(app, address: str, forwarded_for: str | None = None):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    if forwarded_for:
        client.environ_base["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return client


def test_thirty_failures_from_one_address_do_not_stop_that_account_from_another(app):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    attacker = _client_at(app, ATTACKER)
    statuses = [login(attacker, "admin@dealer.it", "wrong-password-00").status_code for _ in range(30)]
    assert statuses[:10] == [200] * 10
    assert set(statuses[10:]) == {429}  # the attacker waits, on this account
    assert login(_client_at(app, REAL_USER), "admin@dealer.it").status_code == 302


def test_an_account_attacked_from_many_addresses_is_limited_at_last(app):
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
    configured = app.config["LOGIN_LIMIT_PER_ACCOUNT"]
    app.config["LOGIN_LIMIT_PER_ACCOUNT"] = "12 per 15 minutes"
    try:
        for number in range(12):
            login(_client_at(app, f"203.0.113.{number}"), "admin@dealer.it", "wrong-password-00")
        assert login(_client_at(app, "203.0.113.200"), "admin@dealer.it").status_code == 429
    finally:
        app.config["LOGIN_LIMIT_PER_ACCOUNT"] = configured


@pytest.fixture
def proxied_app(app):
    """The same database served by an app told that one reverse proxy stands in front of it."""
    proxied = make_app(app.config["SQLALCHEMY_DATABASE_URI"], TRUSTED_PROXIES=1)
    yield proxied
    with proxied.app_context():
        db.engine.dispose()
    limiter.init_app(app)


def test_behind_the_proxy_one_attackers_failures_do_not_lock_out_other_users(proxied_app):
    with proxied_app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
        make_user("anna@studio.it", "customer_user", customer_id=make_customer())
    attacker = _client_at(proxied_app, PROXY, ATTACKER)
    for number in range(30):
        assert login(attacker, f"guess{number}@dealer.it", "wrong-password-00").status_code == 200
    assert login(attacker, "admin@dealer.it").status_code == 429
    assert login(_client_at(proxied_app, PROXY, REAL_USER), "admin@dealer.it").status_code == 302
    portal = _client_at(proxied_app, PROXY, "198.51.100.8")
    assert login(portal, "anna@studio.it", url="/portal/login").status_code == 302


def test_without_trusted_proxies_a_forged_forwarded_for_does_not_escape_the_limit(app):
    for number in range(30):
        login(_client_at(app, ATTACKER, f"192.0.2.{number}"), f"guess{number}@dealer.it", "wrong-password-00")
    assert login(_client_at(app, ATTACKER, "192.0.2.250"), "guess@dealer.it", "wrong-password-00").status_code == 429


def test_trusted_proxies_must_be_a_number_of_hops(monkeypatch):
    monkeypatch.setenv("TRUSTED_PROXIES", "nginx")
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        load_config()
    monkeypatch.setenv("TRUSTED_PROXIES", "2")
    assert load_config()["TRUSTED_PROXIES"] == 2
    monkeypatch.delenv("TRUSTED_PROXIES")
    assert load_config()["TRUSTED_PROXIES"] == 0


@pytest.fixture
def own_redis():
    """A Redis server of this test's own, on a free port; the test stops it when it likes."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--daemonize", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.05)
    yield url, process
    if process.poll() is None:
        process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def redis_limited_app(app, own_redis):
    url, process = own_redis
    limited = make_app(app.config["SQLALCHEMY_DATABASE_URI"], RATELIMIT_STORAGE_URI=url)
    yield limited, url, process
    with limited.app_context():
        db.engine.dispose()
    # The limiter is one object per process: give it back to the session's app, storage alive.
    limiter.init_app(app)
    limiter._storage_dead = False


def test_logins_work_and_are_still_limited_when_the_limiter_redis_is_down(redis_limited_app, caplog):
    app, url, process = redis_limited_app
    with app.app_context():
        make_user("admin@dealer.it", "dealer_admin")
        make_user("anna@studio.it", "customer_user", customer_id=make_customer())
    assert login(app.test_client(), "admin@dealer.it", "wrong-password-00").status_code == 200
    assert redis.Redis.from_url(url).keys("*"), "the limiter was not using this Redis"

    process.terminate()
    process.wait(timeout=10)
    caplog.set_level(logging.WARNING)
    assert login(app.test_client(), "admin@dealer.it").status_code == 302
    assert any("falling back to in-memory" in record.getMessage() for record in caplog.records)
    assert login(app.test_client(), "anna@studio.it", url="/portal/login").status_code == 302
    forgot = post_form(app.test_client(), "/forgot-password", {"email": "admin@dealer.it"})
    assert forgot.status_code == 200
    assert "If an account uses this address" in forgot.get_data(as_text=True)

    # The limits go on in this process's memory.
    attacker = _client_at(app, ATTACKER)
    statuses = [login(attacker, "admin@dealer.it", "wrong-password-00").status_code for _ in range(11)]
    assert statuses == [200] * 10 + [429]
