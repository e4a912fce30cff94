"""Seats: with 2 seats a third staff login is refused naming the holders; portal users take none; an admin frees one."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine

from core.db import db
from modules.lan_licensing import seats
from modules.lan_licensing.tests.conftest import install, licence_text
from tests.auth_support import login, make_customer, make_user, post_form


@pytest.fixture
def two_seats(start):
    app = start()
    install(app, licence_text(seats=2))
    with app.app_context():
        make_user("anna@dealer.it", name="Anna Rossi")
        make_user("bruno@dealer.it", role="back_office", name="Bruno Verdi")
        make_user("carla@dealer.it", role="technician", name="Carla Neri")
        customer = make_customer()
        make_user("cliente@studio.it", role="customer_user", customer_id=customer, name="Cliente")
    return app


def test_a_third_staff_login_is_refused_with_the_names_of_the_two_holders(two_seats):
    app = two_seats
    assert login(app.test_client(), "anna@dealer.it").status_code == 302
    assert login(app.test_client(), "bruno@dealer.it").status_code == 302
    refused = login(app.test_client(), "carla@dealer.it")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 200
    assert "Anna Rossi" in page and "Bruno Verdi" in page and "last active" in page
    # A portal user never takes a seat and is never refused for want of one.
    assert login(app.test_client(), "cliente@studio.it", url="/portal/login").status_code == 302


def test_an_idle_session_coming_back_after_others_took_the_seats_is_refused_naming_them(two_seats):
    app = two_seats
    started = dt.datetime.now(dt.UTC)
    with time_machine.travel(started, tick=False):
        anna, bruno = app.test_client(), app.test_client()
        login(anna, "anna@dealer.it")
        login(bruno, "bruno@dealer.it")
    with time_machine.travel(started + dt.timedelta(minutes=20), tick=False):
        # Both idle for 20 minutes: neither holds a seat, so Carla gets one and Anna, back first, the other.
        assert login(app.test_client(), "carla@dealer.it").status_code == 302
        assert anna.get("/admin/").status_code == 200
        back = bruno.get("/admin/")
        assert back.status_code == 302 and back.location.endswith("/login")
        page = bruno.get(back.location).get_data(as_text=True)
        assert "All 2 staff seats" in page and "Anna Rossi" in page and "Carla Neri" in page
        assert "last active" in page and "Bruno Verdi" not in page
        assert bruno.get("/admin/").status_code == 302  # his login is over, not merely paused
        with app.app_context():
            assert sorted(seat.name for seat in seats.held()) == ["Anna Rossi", "Carla Neri"]


def test_a_session_active_within_the_window_keeps_its_seat(two_seats):
    app = two_seats
    started = dt.datetime.now(dt.UTC)
    with time_machine.travel(started, tick=False):
        anna, bruno = app.test_client(), app.test_client()
        login(anna, "anna@dealer.it")
        login(bruno, "bruno@dealer.it")
    with time_machine.travel(started + dt.timedelta(minutes=10), tick=False):
        assert bruno.get("/admin/").status_code == 200
        assert login(app.test_client(), "carla@dealer.it").status_code == 200  # refused: both seats held
    with time_machine.travel(started + dt.timedelta(minutes=20), tick=False):
        # Bruno was active 10 minutes ago, Anna 20: Carla takes Anna's seat, and Bruno keeps his.
        assert login(app.test_client(), "carla@dealer.it").status_code == 302
        assert bruno.get("/admin/").status_code == 200
        assert anna.get("/admin/").status_code == 302


def test_an_api_token_never_takes_a_seat(two_seats):
    app = two_seats
    with app.app_context():
        from core.api.tokens import create_token
        from core.models import User

        bruno = db.session.scalar(db.select(User).where(User.email == "bruno@dealer.it"))
        token = create_token(bruno, "sync")[1]
        db.session.commit()
    login(app.test_client(), "anna@dealer.it")
    headers = {"Authorization": f"Bearer {token}"}
    assert app.test_client().get("/api/v1/customers", headers=headers).status_code == 200
    with app.app_context():
        assert [seat.name for seat in seats.held()] == ["Anna Rossi"]
    assert login(app.test_client(), "carla@dealer.it").status_code == 302


def test_a_dealer_admin_ends_another_session_and_the_seat_is_free(two_seats):
    app = two_seats
    anna = app.test_client()
    login(anna, "anna@dealer.it")
    bruno = app.test_client()
    login(bruno, "bruno@dealer.it")
    page = anna.get("/admin/licence/").get_data(as_text=True)
    assert "Bruno Verdi" in page and "End this session" in page
    from core.models import User, UserSession

    with app.app_context():
        bruno_id = db.session.scalar(db.select(User.id).where(User.email == "bruno@dealer.it"))
        session_id = db.session.scalar(db.select(UserSession.id).where(UserSession.user_id == bruno_id))
    ended = post_form(anna, f"/admin/licence/sessions/{session_id}/end", {}, form_url="/admin/licence/")
    assert ended.status_code == 302
    assert bruno.get("/admin/").status_code == 302  # Bruno's login is over
    assert login(app.test_client(), "carla@dealer.it").status_code == 302


def test_only_a_dealer_admin_may_end_a_session(two_seats):
    app = two_seats
    bruno = app.test_client()
    login(bruno, "bruno@dealer.it")
    assert "End this session" not in bruno.get("/admin/licence/").get_data(as_text=True)


def test_two_logins_at_once_for_the_last_seat_let_exactly_one_in(start):
    app = start()
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("the race is for PostgreSQL's row locks; SQLite has one writer at a time")
    install(app, licence_text(seats=2))
    with app.app_context():
        for email in ("a@dealer.it", "b@dealer.it", "c@dealer.it"):
            make_user(email, name=email)
    login(app.test_client(), "a@dealer.it")
    clients = {email: app.test_client() for email in ("b@dealer.it", "c@dealer.it")}
    # Each client has its CSRF token before the race starts.
    from tests.auth_support import PASSWORD, csrf_token

    tokens = {email: csrf_token(client, "/login") for email, client in clients.items()}
    barrier = threading.Barrier(2)
    results = {}

    def attempt(email):
        barrier.wait()
        response = clients[email].post(
            "/login", data={"csrf_token": tokens[email], "email": email, "password": PASSWORD}
        )
        results[email] = response.status_code

    threads = [threading.Thread(target=attempt, args=(email,)) for email in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == [200, 302], results
    with app.app_context():
        assert len(seats.held()) == 2
