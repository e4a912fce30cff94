"""Print users as the rules say: usernames any case, cost centers of the customer, cards as strings, PINs, passwords."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from core.db import db
from core.validation import ValidationError
from modules.device_accounting import users
from modules.device_accounting.cost_centers import save_cost_center
from modules.device_accounting.models import Card, PinAttempt, PrintUser
from modules.device_accounting.tests.records_support import count, customer
from modules.rentals.devices import create_device


@pytest.fixture
def rossi(db_session):
    return customer("Farmacia Rossi")


def errors_of(call, *args, **kwargs) -> dict[str, str]:
    with pytest.raises(ValidationError) as raised:
        call(*args, **kwargs)
    return raised.value.errors


def new_user(customer_id: int, username: str = "mrossi", **data) -> PrintUser:
    user = users.save_user(customer_id, {"username": username, "full_name": "Mario Rossi", **data})
    db.session.commit()
    return user


def test_usernames_are_unique_per_customer_whatever_their_case(bianchi, rossi):
    new_user(bianchi.id, "MRossi")

    errors = errors_of(users.save_user, bianchi.id, {"username": "  mrossi "})
    other_customer = new_user(rossi.id, "mrossi")

    assert "already called mrossi" in errors["username"]
    assert other_customer.username_key == "mrossi"
    assert users.find_by_username(bianchi.id, "MROSSI").username == "MRossi"


def test_email_is_checked_as_core_does_and_unique_per_customer(bianchi, rossi):
    assert (
        "not a valid email address"
        in errors_of(users.save_user, bianchi.id, {"username": "a", "email": "mario@"})["email"]
    )
    first = new_user(bianchi.id, "mrossi", email="Mario.Rossi@Example.com")

    errors = errors_of(users.save_user, bianchi.id, {"username": "mario2", "email": "mario.rossi@example.com"})

    assert first.email == "mario.rossi@example.com"
    assert "mario.rossi@example.com" in errors["email"]
    assert new_user(rossi.id, "mrossi", email="mario.rossi@example.com").customer_id == rossi.id


def test_language_is_one_of_the_app_languages(bianchi):
    assert (
        "choose one of: it, en, es"
        in errors_of(users.save_user, bianchi.id, {"username": "a", "language": "fr"})["language"]
    )
    assert new_user(bianchi.id, language="ES").language == "es"


def test_the_default_cost_center_is_added_to_those_the_user_may_charge(bianchi):
    admin = save_cost_center(bianchi.id, {"name": "Amministrazione"})
    accounts = save_cost_center(bianchi.id, {"name": "Contabilità", "parent_id": admin.id})
    direction = save_cost_center(bianchi.id, {"name": "Direzione"})

    user = new_user(bianchi.id, default_cost_center_id=accounts.id, cost_center_ids=[direction.id])
    users.save_user(bianchi.id, {"cost_center_ids": []}, user)
    db.session.commit()

    assert user.default_cost_center.path == "Amministrazione / Contabilità"
    assert {center.name for center in user.cost_centers} == {"Contabilità"}


def test_cost_centers_of_another_customer_or_inactive_are_refused_and_nothing_is_written(bianchi, rossi):
    theirs = save_cost_center(rossi.id, {"name": "Laboratorio"})
    closed = save_cost_center(bianchi.id, {"name": "Archivio", "active": False})
    db.session.commit()

    errors = errors_of(
        users.save_user,
        bianchi.id,
        {"username": "mrossi", "default_cost_center_id": theirs.id, "cost_center_ids": [closed.id]},
    )
    db.session.rollback()

    assert "no cost center" in errors["default_cost_center_id"]
    assert "Archivio is not active" in errors["cost_center_ids"]
    assert count(PrintUser) == 0


def test_privilege_overrides_are_checked(bianchi):
    errors = errors_of(
        users.save_user, bianchi.id, {"username": "a", "allowed_functions": ["print", "telex"], "max_sides": 0}
    )
    user = new_user(bianchi.id, allowed_functions=["copy", "print", "print"], max_sides=50, color_allowed=False)

    assert "telex" in errors["allowed_functions"]
    assert "max_sides" in errors
    assert (user.allowed_functions, user.max_sides, user.color_allowed, user.duplex_forced) == (
        ["print", "copy"],
        50,
        False,
        None,
    )


def test_a_partial_update_changes_only_the_fields_given(bianchi):
    user = new_user(bianchi.id, email="mario@example.com", language="it")

    users.save_user(bianchi.id, {"full_name": "Mario Rossi jr."}, user)
    db.session.commit()

    assert (user.username, user.full_name, user.email, user.language) == (
        "mrossi",
        "Mario Rossi jr.",
        "mario@example.com",
        "it",
    )


# Cards


def test_leading_zeros_make_another_card(bianchi):
    mario = new_user(bianchi.id, "mrossi")
    laura = new_user(bianchi.id, "lbianchi")

    users.add_card(mario, " 0004521 ")
    users.add_card(laura, "4521")
    db.session.commit()

    assert users.find_by_card(bianchi.id, "0004521").user == mario
    assert users.find_by_card(bianchi.id, "4521").user == laura
    assert users.find_by_card(bianchi.id, "04521") is None


def test_a_card_of_another_user_of_the_same_customer_is_refused_naming_that_user(bianchi, rossi):
    mario = new_user(bianchi.id, "mrossi")
    laura = new_user(bianchi.id, "lbianchi")
    users.add_card(mario, "0004521")
    db.session.commit()

    errors = errors_of(users.add_card, laura, "0004521")
    other_customer = users.add_card(new_user(rossi.id, "mrossi"), "0004521")

    assert errors == {"number": "Card 0004521 is already used by Mario Rossi (mrossi)."}
    assert other_customer.customer_id == rossi.id
    assert count(Card) == 2


@pytest.mark.parametrize("number", ["", "   ", "0004 521", "12-34", "x" * 65, "àèì"])
def test_a_card_number_is_letters_and_digits(bianchi, number):
    user = new_user(bianchi.id)

    assert "number" in errors_of(users.add_card, user, number)


def test_a_disabled_card_keeps_its_number_and_comes_back_only_for_its_user(bianchi):
    mario = new_user(bianchi.id, "mrossi")
    laura = new_user(bianchi.id, "lbianchi")
    card = users.add_card(mario, "A1B2C3")
    users.disable_card(card)
    db.session.commit()

    refused = errors_of(users.add_card, laura, "A1B2C3")
    again = users.add_card(mario, "A1B2C3")

    assert refused == {"number": "Card A1B2C3 belongs to Mario Rossi (mrossi) (disabled)."}
    assert again.id == card.id and again.active and again.disabled_at is None
    assert "already one of this user's cards" in errors_of(users.add_card, mario, "A1B2C3")["number"]


def test_disabling_records_when(bianchi):
    card = users.add_card(new_user(bianchi.id), "0004521")

    users.disable_card(card)

    assert not card.active and card.disabled_at is not None
    assert users.find_by_card(bianchi.id, "0004521") == card


# PIN


@pytest.mark.parametrize("pin", ["123", "123456789", "12a4", "", "١٢٣٤"])
def test_a_pin_is_4_to_8_digits(bianchi, pin):
    user = new_user(bianchi.id)

    assert errors_of(users.set_pin, user, pin) == {"pin": "A PIN is 4 to 8 digits."}
    assert user.pin_digest is None


def test_a_pin_is_stored_as_a_keyed_digest_and_unique_per_customer_without_saying_whose(bianchi, rossi):
    mario = new_user(bianchi.id, "mrossi")
    laura = new_user(bianchi.id, "lbianchi")
    users.set_pin(mario, "04521")
    db.session.commit()

    errors = errors_of(users.set_pin, laura, "04521")
    users.set_pin(new_user(rossi.id, "mrossi"), "04521")

    assert mario.pin_digest == users.pin_digest(bianchi.id, "04521") != users.pin_digest(rossi.id, "04521")
    assert "04521" not in mario.pin_digest
    assert "taken" in errors["pin"] and "Mario" not in errors["pin"] and "mrossi" not in errors["pin"]
    assert users.find_by_pin(bianchi.id, "04521") == mario
    assert users.find_by_pin(bianchi.id, "4521") is None


def test_setting_a_pin_ends_its_lockout(bianchi):
    import datetime as dt

    user = new_user(bianchi.id)
    users.set_pin(user, "1234")
    device = create_device({"serial": "KY1", "manufacturer": "Kyocera", "model": "M5526", "meters": ["bw"]})
    user.pin_locked_until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)
    db.session.add_all(PinAttempt(customer_id=bianchi.id, device_id=device.id, user_id=user.id) for _ in range(5))
    db.session.commit()

    users.set_pin(user, "5678")
    db.session.commit()

    assert user.pin_locked_until is None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PinAttempt)) == 0
    assert users.find_by_pin(bianchi.id, "5678") == user and users.find_by_pin(bianchi.id, "1234") is None


def test_a_generated_pin_is_free_and_works(bianchi):
    mario = new_user(bianchi.id, "mrossi")
    users.set_pin(mario, "123456")

    pin = users.generate_pin(new_user(bianchi.id, "lbianchi"))

    assert len(pin) == 6 and pin.isdigit() and pin != "123456"
    assert users.find_by_pin(bianchi.id, pin).username == "lbianchi"


# Password


def test_passwords_are_hashed_like_core_and_checked(bianchi):
    user = new_user(bianchi.id)

    short = errors_of(users.set_password, user, "short")
    users.set_password(user, "correct horse battery")

    assert "password" in short
    assert user.password_hash.startswith("scrypt:")
    assert users.check_password(user, "correct horse battery")
    assert not users.check_password(user, "wrong horse battery")
    assert not users.check_password(new_user(bianchi.id, "nopass"), "anything at all")


def test_a_directory_user_has_no_password_of_its_own(bianchi):
    user = new_user(bianchi.id)
    user.directory_user = True

    assert "directory" in errors_of(users.set_password, user, "correct horse battery")["password"]
    assert user.password_hash is None
