"""Directory settings: every field checked and named, and the bind password sealed at rest, never given back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.crypto import unseal
from core.db import db
from core.validation import ValidationError
from modules.device_accounting import directory as ldap_directory
from modules.device_accounting.models import Directory
from modules.device_accounting.tests import directory_support as s
from modules.device_accounting.tests.scan_support import places_holding

GOOD = {
    "url": "ldaps://dc1.bianchi.local:636",
    "bind_dn": "cn=copydesk,ou=services,dc=bianchi,dc=local",
    "bind_password": "Sup3r-Secret-Bind!",
    "base_dn": "ou=people,dc=bianchi,dc=local",
    "user_filter": "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
    "username_attribute": "sAMAccountName",
    "name_attribute": "displayName",
    "email_attribute": "mail",
    "department_attribute": "department",
    "card_attribute": "employeeID",
    "sync_every_hours": 12,
}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "http://dc1.bianchi.local", "ldap://host"),
        ("url", "ldap://", "ldap://host"),
        ("url", "ldap://dc1:99999", "ldap://host"),
        ("url", "ldap://dc1/ou=people?uid", "ldap://host"),
        ("base_dn", "people", "distinguished name"),
        ("base_dn", "", "required"),
        ("bind_dn", "copydesk service", "distinguished name"),
        ("user_filter", "(&(objectClass=user)", "LDAP filter"),
        ("user_filter", "(a=b)(c=d)", "LDAP filter"),
        ("username_attribute", "s AM", "attribute name"),
        ("email_attribute", "mail)(uid=*", "attribute name"),
        ("username_attribute", "", "required"),
        ("sync_every_hours", 0, "between"),
        ("sync_every_hours", "daily", "whole number"),
    ],
)
def test_bad_settings_name_the_field_and_write_nothing(db_session, field, value, message):
    partner = s.customer()
    with pytest.raises(ValidationError) as error:
        ldap_directory.save_directory(partner.id, GOOD | {field: value})
    assert list(error.value.errors) == [field]
    assert message in error.value.errors[field]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Directory)) == 0


def test_starttls_over_ldaps_is_refused(db_session):
    partner = s.customer()
    with pytest.raises(ValidationError) as error:
        ldap_directory.save_directory(partner.id, GOOD | {"start_tls": True})
    assert list(error.value.errors) == ["start_tls"]


def test_an_unknown_customer_is_refused(db_session):
    with pytest.raises(ValidationError) as error:
        ldap_directory.save_directory(999_999, GOOD)
    assert list(error.value.errors) == ["customer_id"]


def test_a_filter_without_parentheses_and_a_upn_bind_name_are_accepted(db_session):
    partner = s.customer()
    saved = ldap_directory.save_directory(
        partner.id, GOOD | {"user_filter": "objectClass=person", "bind_dn": "copydesk@bianchi.local"}
    )
    assert saved.user_filter == "(objectClass=person)"
    assert saved.bind_dn == "copydesk@bianchi.local"


def test_the_bind_password_is_sealed_at_rest_and_never_shown(db_session):
    partner = s.customer()
    saved = ldap_directory.save_directory(partner.id, GOOD)
    db.session.commit()

    raw = db.session.execute(
        sa.text("SELECT bind_password_sealed FROM device_accounting_directory WHERE id = :id"), {"id": saved.id}
    ).scalar()
    assert raw and GOOD["bind_password"] not in raw
    assert unseal(raw, "ldap bind password") == GOOD["bind_password"]
    # Nowhere in the database in plain text: not the directory row, not the audit log of its creation.
    assert places_holding(GOOD["bind_password"]) == []
    shown = ldap_directory.directory_dict(saved)
    assert shown["bind_password_set"] is True
    assert GOOD["bind_password"] not in repr(shown) and raw not in repr(shown)


def test_saving_without_a_password_keeps_it_and_an_empty_bind_dn_drops_it(db_session):
    partner = s.customer()
    ldap_directory.save_directory(partner.id, GOOD)
    changed = ldap_directory.save_directory(partner.id, {"base_dn": "dc=bianchi,dc=local", "bind_password": ""})
    assert changed.base_dn == "dc=bianchi,dc=local"
    assert changed.url == GOOD["url"]
    assert unseal(changed.bind_password_sealed, "ldap bind password") == GOOD["bind_password"]

    anonymous = ldap_directory.save_directory(partner.id, {"bind_dn": ""})
    assert anonymous.bind_dn is None and anonymous.bind_password_sealed is None
    assert ldap_directory.directory_dict(anonymous)["bind_password_set"] is False
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Directory)) == 1


def test_no_schedule_and_no_department_stay_none(db_session):
    partner = s.customer()
    saved = ldap_directory.save_directory(partner.id, GOOD | {"sync_every_hours": None, "department_attribute": None})
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Directory, saved.id)
    assert stored.sync_every_hours is None and stored.department_attribute is None
