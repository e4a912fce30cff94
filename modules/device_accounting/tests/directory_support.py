"""Helpers for the directory tests: a customer whose directory is the tests' own slapd, and reads of its users."""

from __future__ import annotations

import sqlalchemy as sa

from core.db import db
from modules.device_accounting import directory as ldap_directory
from modules.device_accounting.models import Directory, PrintUser
from modules.device_accounting.tests.reports_support import customer


def settings(server, **overrides) -> dict:
    """Directory settings pointing at the test slapd with its read-only service account."""
    data = {
        "url": server.url,
        "bind_dn": server.service_dn,
        "bind_password": server.service_password,
        "base_dn": server.people_dn,
        "user_filter": "(objectClass=inetOrgPerson)",
        "username_attribute": "uid",
        "name_attribute": "cn",
        "email_attribute": "mail",
        "department_attribute": "departmentNumber",
        "card_attribute": "carLicense",
        "sync_every_hours": 24,
    }
    data.update(overrides)
    return data


def directory_for(server, name: str = "Studio Bianchi", **overrides) -> Directory:
    """A customer with its directory on `server`, committed (a sync job reads it from its own session)."""
    partner = customer(name)
    found = ldap_directory.save_directory(partner.id, settings(server, **overrides))
    db.session.commit()
    return found


def users(customer_id: int) -> dict[str, PrintUser]:
    """The customer's print users by username, read fresh."""
    db.session.expire_all()
    return {
        user.username: user
        for user in db.session.scalars(sa.select(PrintUser).where(PrintUser.customer_id == customer_id))
    }


def active_cards(user: PrintUser) -> list[str]:
    return sorted(card.number for card in user.cards if card.active)
