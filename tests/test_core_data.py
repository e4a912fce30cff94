"""Core data: fiscal identifiers validated, gapless sequences under concurrency, settings, audit log, demo data."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from core.audit import record
from core.db import db
from core.models import AuditLog, Company, Partner, User
from core.partners import normalize_iban, normalize_vat, validate_partner_fields
from core.sequences import format_number, next_number
from core.settings import get_setting, set_setting


def test_valid_italian_vat_number_is_kept_in_compact_form(app):
    with app.test_request_context():
        assert normalize_vat("IT 12345670157") == "12345670157"


def test_wrong_check_digit_is_refused_naming_the_field(app):
    with app.test_request_context():
        _, errors = validate_partner_fields({"name": "Rossi", "vat_number": "12345670158"})
    assert set(errors) == {"vat_number"}
    assert "12345670158" in errors["vat_number"]


def test_foreign_vat_number_is_checked_for_its_country(app):
    with app.test_request_context():
        assert normalize_vat("B12345674", "ES") == "ESB12345674"
        _, errors = validate_partner_fields({"vat_number": "B12345670", "country": "ES"})
    assert "vat_number" in errors


def test_fiscal_code_of_a_person_and_of_a_company(app):
    with app.test_request_context():
        _, ok = validate_partner_fields({"fiscal_code": "RSSMRA85T10A562S"})
        _, company = validate_partner_fields({"fiscal_code": "12345670157"})
        _, bad = validate_partner_fields({"fiscal_code": "RSSMRA85T10A562X"})
    assert ok == {} and company == {}
    assert "fiscal_code" in bad


def test_sdi_code_must_have_seven_characters(app):
    with app.test_request_context():
        _, errors = validate_partner_fields({"sdi_code": "ABC12"})
    assert "sdi_code" in errors


def test_iban_is_validated(app):
    with app.test_request_context():
        assert normalize_iban("IT60 X054 2811 1010 0000 0123 456") == "IT60X0542811101000000123456"
        with pytest.raises(ValueError):
            normalize_iban("IT60X0542811101000000123457")


def test_sequence_numbers_are_gapless_per_type_and_year(db_session):
    numbers = [next_number("invoice", 2026) for _ in range(3)]
    other = next_number("credit_note", 2026)
    next_year = next_number("invoice", 2027)
    db_session.commit()
    assert numbers == [1, 2, 3]
    assert (other, next_year) == (1, 1)
    assert format_number(numbers[-1], 2026) == "3/2026"


def test_rolled_back_number_is_given_again(db_session):
    assert next_number("invoice", 2026) == 1
    db_session.rollback()
    assert next_number("invoice", 2026) == 1


def test_concurrent_postings_get_distinct_gapless_numbers(app):
    """Two people posting at once: every number once, none skipped (row lock on PostgreSQL, write lock on SQLite)."""
    taken: list[int] = []
    errors: list[Exception] = []

    def post_many():
        try:
            with app.app_context():
                for _ in range(20):
                    for attempt in range(50):
                        try:
                            taken.append(next_number("invoice", 2026))
                            db.session.commit()
                            break
                        except sa.exc.OperationalError:  # SQLite: database is locked, try again
                            db.session.rollback()
                            if attempt == 49:
                                raise
                db.session.remove()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=post_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(taken) == list(range(1, 81))


def test_settings_round_trip_and_default(db_session):
    assert get_setting("metering.jump_factor", 3) == 3
    set_setting("metering.jump_factor", 5)
    db_session.commit()
    assert get_setting("metering.jump_factor") == 5


def test_changes_to_audited_records_are_logged_with_what_changed(db_session):
    partner = Partner(name="Studio Verdi", vat_number="12345670157")
    db_session.add(partner)
    db_session.commit()
    partner.city = "Bergamo"
    db_session.commit()
    entries = db_session.scalars(
        sa.select(AuditLog).where(AuditLog.object_type == "core_partner").order_by(AuditLog.id)
    ).all()
    assert [e.action for e in entries] == ["create", "update"]
    assert entries[0].object_id == str(partner.id)
    assert entries[1].changes == {"city": [None, "Bergamo"]}
    assert entries[1].actor == "system"


def test_secrets_never_reach_the_audit_log(db_session):
    user = User(email="a@example.com", name="A", role="technician", password_hash="scrypt:secret-hash")
    db_session.add(user)
    db_session.commit()
    entry = db_session.scalar(sa.select(AuditLog).where(AuditLog.object_type == "core_user"))
    assert entry.changes["password_hash"] == "changed"
    assert "secret-hash" not in str(entry.changes)


def test_explicit_audit_event(db_session):
    record("export", "core_partner", 7, {"rows": 3})
    db_session.commit()
    entry = db_session.scalar(sa.select(AuditLog).where(AuditLog.action == "export"))
    assert (entry.object_id, entry.changes) == ("7", {"rows": 3})


def test_demo_load_is_idempotent_and_realistic(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    with app.app_context():
        partners = db.session.scalars(sa.select(Partner)).all()
        assert len([partner for partner in partners if partner.is_customer]) == 5  # and inventory's supplier
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Company)) == 1
        with app.test_request_context():
            for partner in partners:
                _, errors = validate_partner_fields(
                    {"vat_number": partner.vat_number, "fiscal_code": partner.fiscal_code, "country": partner.country}
                )
                assert errors == {}, partner.name


def test_demo_load_if_new_leaves_an_existing_database_alone(app):
    runner = app.test_cli_runner()
    runner.invoke(args=["demo", "load"])
    with app.app_context():
        db.session.execute(
            sa.update(Partner).where(Partner.name == "Hotel Bellavista Spa").values(name="Hotel Bellavista (renamed)")
        )
        db.session.commit()
        loaded = db.session.scalar(sa.select(sa.func.count()).select_from(Partner))
    output = runner.invoke(args=["demo", "load", "--if-new"]).output
    assert "not loaded" in output
    with app.app_context():  # a demo load would have created "Hotel Bellavista Spa" again
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Partner)) == loaded


def test_secret_key_is_generated_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("COPYDESK_INSTANCE", str(tmp_path))
    from core.config import load_config

    first = load_config()["SECRET_KEY"]
    assert len(first) == 64
    assert load_config()["SECRET_KEY"] == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_default_database_is_a_sqlite_file_under_instance(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("COPYDESK_INSTANCE", str(tmp_path))
    from core.config import load_config

    assert load_config()["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'copydesk.sqlite'}"


def test_postgres_urls_use_the_psycopg_driver(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://copydesk@db/copydesk")
    from core.config import load_config

    assert load_config()["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://copydesk@db/copydesk"
