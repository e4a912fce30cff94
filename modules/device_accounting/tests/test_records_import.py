"""CSV import of print users with cards: preview writes nothing, errors by row and column, all rows or none."""

from __future__ import annotations

import pytest

from core.db import db
from modules.device_accounting import users
from modules.device_accounting.cost_centers import find_by_path, save_cost_center
from modules.device_accounting.imports import UserAndCostCenterImporter, UserImporter
from modules.device_accounting.models import Card, CostCenter, PrintUser
from modules.device_accounting.tests.records_support import count, customer

HEADER = "customer,username,full_name,email,language,cost_center,cards,pin\n"


@pytest.fixture
def bianchi(db_session):
    partner = customer("Studio Legale Bianchi", vat_number="12345670157")
    admin = save_cost_center(partner.id, {"name": "Amministrazione"})
    save_cost_center(partner.id, {"name": "Contabilità", "parent_id": admin.id})
    db.session.commit()
    return partner


def test_preview_reads_every_row_and_writes_nothing(bianchi):
    text = HEADER + (
        "12345670157,mrossi,Mario Rossi,mario@example.com,it,Amministrazione / Contabilità,0004521;0004522,4821\n"
        "Studio Legale Bianchi,lbianchi,Laura Bianchi,,,Amministrazione,4521,\n"
    )

    preview = UserImporter().run(text, commit=False)

    assert (preview.ok, preview.rows, preview.written) == (True, 2, 0)
    assert count(PrintUser) == 0 and count(Card) == 0


def test_import_writes_users_with_their_cards_cost_center_and_pin(bianchi):
    text = HEADER + (
        "12345670157,mrossi,Mario Rossi,mario@example.com,it,amministrazione / contabilità,0004521|0004522,4821\n"
        "studio legale bianchi,lbianchi,Laura Bianchi,,,Amministrazione,4521,\n"
    )

    result = UserImporter().run(text, commit=True)

    assert result.ok and result.written == 2
    mario = users.find_by_card(bianchi.id, "0004521").user
    assert (mario.username, mario.email, mario.default_cost_center.path) == (
        "mrossi",
        "mario@example.com",
        "Amministrazione / Contabilità",
    )
    assert [card.number for card in mario.cards] == ["0004521", "0004522"]
    assert users.find_by_pin(bianchi.id, "4821") == mario
    assert users.find_by_card(bianchi.id, "4521").user.username == "lbianchi"
    assert UserImporter.imported_message(2) == "2 print users imported."


def test_one_bad_row_writes_nothing_and_each_error_names_row_and_column(bianchi):
    users.add_card(users.save_user(bianchi.id, {"username": "gverdi", "full_name": "Giuseppe Verdi"}), "777")
    db.session.commit()
    text = HEADER + (
        "12345670157,mrossi,Mario Rossi,,,Amministrazione,0004521,482\n"
        "12345670157,lbianchi,Laura Bianchi,laura@,fr,Magazzino,777,\n"
        "99999999999,anna,Anna Neri,,,,,\n"
        "12345670157,MROSSI,Mario Rossi bis,,,,0004521,\n"
    )

    result = UserImporter().run(text, commit=True)

    problems = {(row, column): message for row, column, message in result.errors}
    assert set(problems) == {
        (2, "pin"),
        (3, "email"),
        (3, "language"),
        (3, "cost_center"),
        (3, "cards"),
        (4, "customer"),
        (5, "username"),
    }
    assert problems[(2, "pin")] == "A PIN is 4 to 8 digits."
    assert problems[(3, "cards")] == "Card 777 is already used by Giuseppe Verdi (gverdi)."
    assert "Magazzino" in problems[(3, "cost_center")]
    assert "row 2" in problems[(5, "username")]
    assert result.written == 0
    assert [user.username for user in db.session.query(PrintUser)] == ["gverdi"]
    assert count(Card) == 1


def test_a_card_twice_in_the_file_is_an_error_of_the_second_row(bianchi):
    text = HEADER + "12345670157,mrossi,,,,,0004521,\n12345670157,lbianchi,,,,,0004521,\n"

    result = UserImporter().run(text, commit=True)

    assert result.errors == [(3, "cards", "Card 0004521 is already used by mrossi.")]
    assert count(PrintUser) == 0


def test_an_existing_username_is_updated_and_importing_twice_changes_nothing(bianchi):
    existing = users.save_user(bianchi.id, {"username": "MRossi", "full_name": "M. Rossi", "email": "m@example.com"})
    users.add_card(existing, "0004521")
    db.session.commit()
    text = HEADER + "12345670157,mrossi,Mario Rossi,,,Amministrazione,0004521;0009999,\n"

    first = UserImporter().run(text, commit=True)
    second = UserImporter().run(text, commit=True)

    assert first.ok and second.ok
    assert first.notes == [(2, "", "Updates the print user M. Rossi (MRossi).")]
    db.session.expire_all()
    user = db.session.get(PrintUser, existing.id)
    assert (user.full_name, user.email, user.default_cost_center.name) == (
        "Mario Rossi",
        "m@example.com",
        "Amministrazione",
    )
    assert [card.number for card in user.cards] == ["0004521", "0009999"]
    assert count(PrintUser) == 1


def test_unknown_cost_centers_are_created_only_by_the_creating_import(bianchi):
    text = HEADER + "12345670157,mrossi,,,,Amministrazione / Paghe,,\n"

    refused = UserImporter().run(text, commit=True)
    preview = UserAndCostCenterImporter().run(text, commit=False)
    assert count(CostCenter) == 2
    done = UserAndCostCenterImporter().run(text, commit=True)

    assert refused.errors == [(2, "cost_center", "There is no cost center Amministrazione / Paghe at this customer.")]
    assert preview.ok and preview.notes == [(2, "", "Creates the cost center Amministrazione / Paghe.")]
    assert done.ok
    assert find_by_path(bianchi.id, "Amministrazione / Paghe") is not None
    assert db.session.query(PrintUser).one().default_cost_center.path == "Amministrazione / Paghe"


def test_a_customer_admin_imports_only_for_their_customer_without_a_customer_column(bianchi):
    rossi = customer("Farmacia Rossi")
    text = "username,full_name,cards\nmrossi,Mario Rossi,0004521\n"

    scoped = UserImporter(customer_id=rossi.id).run(text, commit=True)
    with_column = UserImporter(customer_id=rossi.id).run(HEADER + "12345670157,x,,,,,,\n", commit=False)
    staff_without_column = UserImporter().run(text, commit=False)

    assert scoped.ok
    assert users.find_by_card(rossi.id, "0004521").user.username == "mrossi"
    assert users.find_by_card(bianchi.id, "0004521") is None
    assert with_column.errors == [(1, "customer", "Unknown columns (see the template).")]
    assert staff_without_column.errors == [(1, "customer", "Required columns are missing.")]


def test_the_templates_pass_their_own_check(bianchi):
    db.session.execute(db.text("UPDATE core_partner SET vat_number = '12345670157'"))
    save_cost_center(bianchi.id, {"name": "Direzione"})
    db.session.commit()

    staff = UserImporter().run(UserImporter.templates[0].csv(), commit=False)
    portal = UserImporter(customer_id=bianchi.id).run(UserImporter.customer_templates[0].csv(), commit=False)

    assert staff.ok, staff.errors
    assert portal.ok, portal.errors
