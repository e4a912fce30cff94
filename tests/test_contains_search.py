"""Searches for part of a name or serial match what was typed literally: `%`, `_` and `\\` are not wildcards."""

from __future__ import annotations

import sqlalchemy as sa

from core.db import contains, db
from core.models import Partner
from tests.api_support import add_customer, bearer


def names_containing(text: str) -> list[str]:
    return list(db.session.scalars(sa.select(Partner.name).where(contains(Partner.name, text)).order_by(Partner.name)))


def test_search_for_percent_underscore_or_backslash_matches_them_literally(db_session):
    for name in ("Sconto 50% Srl", "Sconto 500 Srl", "Studio a_b", "Studio axb", "Rete C:\\dati", "Rete C:dati"):
        add_customer(name)

    assert names_containing("50%") == ["Sconto 50% Srl"]
    assert names_containing("a_b") == ["Studio a_b"]
    assert names_containing("c:\\d") == ["Rete C:\\dati"]
    assert names_containing("STUDIO") == ["Studio a_b", "Studio axb"]


def test_customer_list_search_for_50_percent_lists_only_that_customer(client, db_session):
    add_customer("Sconto 50% Srl")
    add_customer("Sconto 500 Srl")

    found = client.get("/api/v1/customers?q=50%25", headers=bearer("dealer_admin")).get_json()

    assert [item["name"] for item in found["items"]] == ["Sconto 50% Srl"]


def test_device_list_search_for_a_serial_with_underscore_matches_it_literally(client, db_session):
    staff = bearer("dealer_admin")
    for serial in ("KX_100", "KXA100"):
        body = {"serial": serial, "manufacturer": "Kyocera", "model": "ECOSYS M2040dn", "meters": ["bw"]}
        assert client.post("/api/v1/devices", json=body, headers=staff).status_code == 201

    found = client.get("/api/v1/devices?serial=kx_1", headers=staff).get_json()

    assert [item["serial"] for item in found["items"]] == ["KX_100"]
