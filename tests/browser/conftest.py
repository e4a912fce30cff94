"""Browser fixtures: the real app with demo data, served on 127.0.0.1 in a thread (browser: tests/browser_support).

The demo data and the pages depend on "now", so the whole browser session runs on one fixed instant of the dealer's
calendar (time-machine patches the clock for every thread, the live server's too): the tests pass whenever they run.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import time_machine
from flask import Flask
from playwright.sync_api import Page
from werkzeug.serving import make_server

from conftest import make_app, migrate
from core.extensions import babel
from tests.i18n_support import compile_catalogues

# The first day of a month, late morning: the moment defect 0 of the back-office issue showed (a request due at the
# month's end, opened on its first day).
BROWSER_NOW = dt.datetime(2026, 12, 1, 11, 30, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def browser_clock() -> Iterator[None]:
    """Each browser test runs a few minutes after the demo was loaded, the clock ticking from there."""
    with time_machine.travel(BROWSER_NOW + dt.timedelta(minutes=5), tick=True):
        yield


@dataclass
class BrowserPage:
    """A page in a fresh browser context, with every console error and uncaught exception it produced."""

    page: Page
    errors: list[str] = field(default_factory=list)


def demo_app(directory) -> Iterator[Flask]:
    """An app on its own migrated SQLite database in `directory`, the demo data loaded at BROWSER_NOW."""
    compile_catalogues()
    url = f"sqlite:///{directory / 'browser.sqlite'}"
    # Built at BROWSER_NOW too: the licence keeps the latest time it saw, and a clock going back from the real now
    # to BROWSER_NOW would read as one set back to stretch the licence.
    with time_machine.travel(BROWSER_NOW, tick=False):
        migrate(make_app(url))
        app = make_app(url)  # rebuilt after migrating, as a real restart would be
        loaded = app.test_cli_runner().invoke(args=["demo", "load"])
    assert loaded.exit_code == 0, loaded.output
    with app.app_context():
        babel.domain_instance.cache.clear()  # per process: an earlier test may have cached uncompiled catalogues
    yield app
    with app.app_context():
        from core.db import db

        db.engine.dispose()


def serve(app: Flask) -> Iterator[str]:
    """`app` served at http://127.0.0.1:<free port> in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_app(tmp_path_factory) -> Iterator[Flask]:
    """The app the live server runs, on its own migrated SQLite database with the demo data: for checking its rows."""
    yield from demo_app(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="session")
def live_server(live_app) -> Iterator[str]:
    """The live app at http://127.0.0.1:<free port>."""
    yield from serve(live_app)


@pytest.fixture
def open_page(browser, live_server) -> Iterator[Callable[..., BrowserPage]]:
    """`open_page(locale="it-IT")`: a page in a fresh context (no cookies), its base URL the live server."""
    contexts = []

    def new_page(**context_options) -> BrowserPage:
        context = browser.new_context(base_url=live_server, **context_options)
        contexts.append(context)
        context.set_default_timeout(10_000)
        opened = BrowserPage(context.new_page())
        context.on(
            "console", lambda message: message.type == "error" and opened.errors.append(f"console: {message.text}")
        )
        context.on("weberror", lambda error: opened.errors.append(f"uncaught: {error.error}"))
        return opened

    yield new_page
    for context in contexts:
        context.close()
