"""One headless Chromium (Debian's, through Playwright) for every browser test of the session.

Playwright's sync API owns an event loop in the thread that starts it, so a second `sync_playwright()` while the first
runs fails: every test that drives a browser takes this session fixture. CHROMIUM_PATH names the browser (default:
`chromium` on PATH); without one the tests are skipped, unless REQUIRE_SERVICES=1, which fails them instead.
"""

from __future__ import annotations

import os
import shutil

import pytest

from conftest import REQUIRE_SERVICES

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def chromium_path() -> str | None:
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    return path if path and os.path.exists(path) else None


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session."""
    path = chromium_path()
    if path is None:
        message = "no Chromium: install Debian's chromium or set CHROMIUM_PATH"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message} (REQUIRE_SERVICES=1)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
