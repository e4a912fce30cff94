"""Every module the same inside: each kind of thing in its one file, nothing declared that nothing uses.

The layout of docs/architecture.md ("A module"), checked on the real modules and shown to catch a module that strays.
The checks read code and the app's registry, not data, so one SQLite app is enough.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_app
from core.layout import dead_declarations, file_violations, registered_violations, scoping_violations
from core.loader import discover

ROOT = Path(__file__).resolve().parent.parent
STRAY = "tests.fixture_modules.misplaced"


@pytest.fixture(scope="module")
def full_app(tmp_path_factory):
    app = make_app(f"sqlite:///{tmp_path_factory.mktemp('layout') / 'layout.sqlite'}")
    assert {"rentals", "metering", "invoicing"} <= set(app.extensions["copydesk"].resolution.order)
    return app


@pytest.fixture(scope="module")
def stray_app(tmp_path_factory):
    return make_app(
        f"sqlite:///{tmp_path_factory.mktemp('stray') / 'stray.sqlite'}",
        COPYDESK_MODULE_PACKAGES=[STRAY],
        COPYDESK_MODULES=["stray"],
    )


def test_every_module_registers_each_kind_of_thing_from_its_own_file(full_app):
    assert registered_violations(full_app, discover(["modules"])) == []


def test_every_module_has_its_files_and_its_templates_follow_the_naming_scheme(full_app):
    assert file_violations(full_app, discover(["modules"])) == []


def test_every_signal_is_sent_and_every_extension_point_asked_for_and_implemented(full_app):
    assert dead_declarations(full_app, [ROOT / "core", ROOT / "modules"]) == []


def test_only_core_auth_scoping_confines_data_to_a_customer():
    assert scoping_violations([ROOT / "core", ROOT / "modules"]) == []


def test_a_module_that_puts_things_in_the_wrong_files_is_reported(stray_app):
    manifests = discover([STRAY])
    registered = registered_violations(stray_app, manifests)
    assert sorted(registered) == [
        "stray: admin view StrayView is in module.py, not admin.py or admin_<topic>.py",
        "stray: billable source StraySource is in module.py, not billing.py",
        "stray: periodic job stray.nightly is in module.py, not jobs.py",
        "stray: portal blueprint stray_portal is in module.py, not portal.py",
    ]
    files = file_violations(stray_app, manifests)
    assert sorted(files) == [
        "stray: has no models.py",
        "stray: has no tests/__init__.py",
        "stray: module.py names template stray/admin/missing.html, which does not exist",
        "stray: template stray_page.html is outside stray/admin|portal|pdf/ and mail/stray/",
    ]
