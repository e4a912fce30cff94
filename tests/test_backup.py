"""`flask backup create|restore`: a backup of a populated database, restored into an empty one, has all the data."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import make_app, postgres_database
from core.db import db
from tests.api_support import add_customer, bearer


@pytest.fixture
def empty_app(app, tmp_path):
    """An app on a new, empty database of the same kind as `app`'s."""
    if app.config["TEST_BACKEND"] == "postgresql":
        url = postgres_database("restored")
    else:
        url = f"sqlite:///{tmp_path / 'restored.sqlite'}"
    target = make_app(url)
    yield target
    with target.app_context():
        db.engine.dispose()


def _populate(app) -> int:
    client = app.test_client()
    with app.app_context():
        headers = bearer("dealer_admin")
        customer_id = add_customer("Studio Legale Bianchi", email="studio@bianchi.example").id
    device = client.post(
        "/api/v1/devices",
        json={"serial": "KY-BACKUP-1", "manufacturer": "Kyocera", "model": "M5526cdw", "meters": ["bw"]},
        headers=headers,
    )
    assert device.status_code == 201, device.get_data(as_text=True)
    return customer_id


def test_backup_restored_into_an_empty_database_has_the_data(app, empty_app, tmp_path):
    customer_id = _populate(app)
    backup = tmp_path / "copydesk.backup"

    created = app.test_cli_runner().invoke(args=["backup", "create", str(backup)])
    assert created.exit_code == 0, created.output
    assert f"Backup written: {backup}" in created.output

    target = empty_app
    restored = target.test_cli_runner().invoke(args=["backup", "restore", str(backup)])
    assert restored.exit_code == 0, restored.output

    # The restored database serves a freshly started app, as after a real restore.
    fresh = make_app(target.config["SQLALCHEMY_DATABASE_URI"])
    with fresh.app_context():
        headers = bearer("back_office", email="after-restore@example.com")
        db.session.remove()
    client = fresh.test_client()
    customer = client.get(f"/api/v1/customers/{customer_id}", headers=headers)
    assert customer.status_code == 200, customer.get_data(as_text=True)
    assert customer.get_json()["name"] == "Studio Legale Bianchi"
    devices = client.get("/api/v1/devices", headers=headers).get_json()
    assert [device["serial"] for device in devices["items"]] == ["KY-BACKUP-1"]
    with fresh.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM alembic_version")) > 0
        db.engine.dispose()


def test_restore_into_a_database_that_is_not_empty_is_refused_and_changes_nothing(app, tmp_path):
    _populate(app)
    backup = tmp_path / "copydesk.backup"
    assert app.test_cli_runner().invoke(args=["backup", "create", str(backup)]).exit_code == 0
    with app.app_context():
        add_customer("Added after the backup")

    result = app.test_cli_runner().invoke(args=["backup", "restore", str(backup)])

    assert result.exit_code != 0
    assert "the database is not empty" in result.output
    with app.app_context():
        names = set(db.session.scalars(sa.text("SELECT name FROM core_partner")))
    assert names == {"Studio Legale Bianchi", "Added after the backup"}


def test_restore_refuses_a_file_that_is_not_a_backup(empty_app, tmp_path):
    target = empty_app
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")

    result = target.test_cli_runner().invoke(args=["backup", "restore", str(junk)])

    assert result.exit_code != 0
    assert "is not a" in result.output and "backup" in result.output
