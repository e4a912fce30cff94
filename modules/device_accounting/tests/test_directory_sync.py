"""Directory sync against a real slapd: users and departments created, updated, deactivated; failures change nothing."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core import jobs
from core.db import db, utcnow
from modules.device_accounting import directory as ldap_directory
from modules.device_accounting.directory import DirectoryUnavailable
from modules.device_accounting.models import Card, CostCenter, Directory, PrintUser, Transaction
from modules.device_accounting.tests import directory_support as s
from modules.device_accounting.tests import reports_support
from modules.device_accounting.users import add_card, save_user
from tests.ldap_server import person_ldif

ROOT = "Directory departments"


def _seed_office(server) -> None:
    server.add_person("anna", "pw-anna", "Anna Rossi", mail="anna@bianchi.it", department="Vendite", cards=("0004521",))
    server.add_person("bruno", "pw-bruno", "Bruno Neri", mail="bruno@bianchi.it", department="Amministrazione")
    server.add_person("carla", "pw-carla", "Carla Verdi", department="Vendite", cards=("77", "0078"))


def _centers(customer_id: int) -> dict[str, CostCenter]:
    return {
        center.path: center
        for center in db.session.scalars(sa.select(CostCenter).where(CostCenter.customer_id == customer_id))
    }


def _user_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(PrintUser))


def test_a_first_sync_creates_users_and_cost_centers_from_departments(db_session, ldap_server):
    _seed_office(ldap_server)
    found = s.directory_for(ldap_server)

    counts = ldap_directory.sync(found)
    db.session.commit()

    assert counts == {"created": 3, "updated": 0, "deactivated": 0, "cost_centers": 3, "problems": []}
    users = s.users(found.customer_id)
    assert sorted(users) == ["anna", "bruno", "carla"]
    anna = users["anna"]
    assert (anna.full_name, anna.email, anna.active, anna.directory_user) == (
        "Anna Rossi",
        "anna@bianchi.it",
        True,
        True,
    )
    assert anna.directory_dn == f"uid=anna,{ldap_server.people_dn}"
    assert anna.password_hash is None
    assert anna.default_cost_center.path == f"{ROOT} / Vendite"
    assert [center.path for center in anna.cost_centers] == [f"{ROOT} / Vendite"]
    assert users["bruno"].default_cost_center.path == f"{ROOT} / Amministrazione"
    assert users["carla"].email is None
    assert s.active_cards(anna) == ["0004521"]  # the leading zeros kept
    assert s.active_cards(users["carla"]) == ["0078", "77"]
    assert sorted(_centers(found.customer_id)) == [ROOT, f"{ROOT} / Amministrazione", f"{ROOT} / Vendite"]

    db.session.expire_all()
    stored = db.session.get(Directory, found.id)
    assert stored.last_sync_at is not None
    assert stored.last_sync_result["status"] == "ok" and stored.last_sync_result["created"] == 3


def test_a_resync_updates_deactivates_and_brings_back(db_session, ldap_server):
    _seed_office(ldap_server)
    found = s.directory_for(ldap_server)
    ldap_directory.sync(found)
    db.session.commit()
    users = s.users(found.customer_id)
    # Bruno has printed: his jobs must stay his when he leaves the directory.
    printer = reports_support.device("LDAP-1", customer_id=found.customer_id)
    job = reports_support.job(
        found.customer_id, printer.id, utcnow(), user_id=users["bruno"].id, sides_bw=10, cost="0.5000"
    )
    db.session.commit()

    ldap_server.apply(
        f"dn: uid=anna,{ldap_server.people_dn}\nchangetype: modify\n"
        "replace: cn\ncn: Anna Rossi Bianchi\n-\nreplace: departmentNumber\ndepartmentNumber: Marketing\n-\n"
        "replace: carLicense\ncarLicense: 0004522\n"
    )
    ldap_server.delete(f"uid=bruno,{ldap_server.people_dn}")
    ldap_server.add_person("dario", "pw-dario", "Dario Galli", mail="dario@bianchi.it", department="vendite")

    counts = ldap_directory.sync(found)
    db.session.commit()

    assert counts == {"created": 1, "updated": 1, "deactivated": 1, "cost_centers": 1, "problems": []}
    users = s.users(found.customer_id)
    anna = users["anna"]
    assert anna.full_name == "Anna Rossi Bianchi"
    assert anna.default_cost_center.path == f"{ROOT} / Marketing"
    assert [center.path for center in anna.cost_centers] == [f"{ROOT} / Marketing"]
    # The old badge no longer opens the copier; it keeps its number (and history), disabled.
    assert s.active_cards(anna) == ["0004522"]
    assert db.session.scalars(sa.select(Card).where(Card.number == "0004521")).one().active is False
    bruno = users["bruno"]
    assert bruno.active is False
    assert db.session.get(Transaction, job.id).user_id == bruno.id
    # "vendite" is the department "Vendite": the same cost center, compared ignoring case.
    assert users["dario"].default_cost_center.path == f"{ROOT} / Vendite"

    # Nothing changed in the directory: nothing changes here.
    again = ldap_directory.sync(found)
    db.session.commit()
    assert again == {"created": 0, "updated": 0, "deactivated": 0, "cost_centers": 0, "problems": []}

    # Bruno is back: the sync made him inactive, so it makes him active again.
    ldap_server.add_person("bruno", "pw-bruno", "Bruno Neri", mail="bruno@bianchi.it", department="Amministrazione")
    back = ldap_directory.sync(found)
    db.session.commit()
    assert back["updated"] == 1 and back["created"] == 0
    users = s.users(found.customer_id)
    assert users["bruno"].active is True
    assert _user_count() == 4


def test_a_user_deactivated_by_hand_stays_inactive(db_session, ldap_server):
    _seed_office(ldap_server)
    found = s.directory_for(ldap_server)
    ldap_directory.sync(found)
    carla = s.users(found.customer_id)["carla"]
    save_user(found.customer_id, {"active": False}, carla)
    db.session.commit()

    counts = ldap_directory.sync(found)
    db.session.commit()
    assert counts["updated"] == 0
    assert s.users(found.customer_id)["carla"].active is False


def test_staff_choices_that_are_not_departments_are_kept(db_session, ldap_server):
    _seed_office(ldap_server)
    found = s.directory_for(ldap_server)
    ldap_directory.sync(found)
    shared = CostCenter(customer_id=found.customer_id, name="Progetto Alfa", shared=True)
    db.session.add(shared)
    db.session.flush()
    anna = s.users(found.customer_id)["anna"]
    save_user(found.customer_id, {"cost_center_ids": [c.id for c in anna.cost_centers] + [shared.id]}, anna)
    db.session.commit()
    ldap_server.apply(
        f"dn: uid=anna,{ldap_server.people_dn}\nchangetype: modify\n"
        "replace: departmentNumber\ndepartmentNumber: Marketing\n"
    )

    ldap_directory.sync(found)
    db.session.commit()

    anna = s.users(found.customer_id)["anna"]
    assert sorted(center.path for center in anna.cost_centers) == [f"{ROOT} / Marketing", "Progetto Alfa"]
    assert anna.default_cost_center.path == f"{ROOT} / Marketing"


def test_a_local_user_of_the_same_name_is_taken_over_and_conflicts_are_reported(db_session, ldap_server):
    _seed_office(ldap_server)
    found = s.directory_for(ldap_server)
    local = save_user(found.customer_id, {"username": "Anna", "full_name": "Anna (local)"})
    other = save_user(found.customer_id, {"username": "ospite", "full_name": "Ospite"})
    add_card(other, "77")  # carla's badge in the directory, already given to someone else here
    db.session.commit()

    counts = ldap_directory.sync(found)
    db.session.commit()

    assert counts["created"] == 2 and counts["updated"] == 1
    users = s.users(found.customer_id)
    assert users["Anna"].id == local.id and users["Anna"].directory_user is True
    assert users["Anna"].full_name == "Anna Rossi"
    assert s.active_cards(users["carla"]) == ["0078"]
    assert s.active_cards(users["ospite"]) == ["77"]
    assert len(counts["problems"]) == 1 and "77" in counts["problems"][0] and "carla" in counts["problems"][0]
    # A local user is not the directory's: the sync never deactivates it.
    assert users["ospite"].active is True


def test_a_server_that_is_down_changes_nothing(db_session, ldap_server):
    _seed_office(ldap_server)
    found = s.directory_for(ldap_server)
    ldap_server.stop()
    with pytest.raises(DirectoryUnavailable) as error:
        ldap_directory.sync(found)
    assert "cannot be reached" in error.value.message
    db.session.rollback()
    assert _user_count() == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(CostCenter)) == 0


def test_a_partial_answer_is_not_taken_as_everyone_left(db_session, ldap_server):
    """A size limit cutting the answer short must not deactivate the users it left out, nor half-apply anything."""
    _seed_office(ldap_server)
    ldap_server.add_person("dario", "pw-dario", "Dario Galli", department="Logistica")
    found = s.directory_for(ldap_server)
    ldap_directory.sync(found)
    db.session.commit()
    ldap_server.apply(f"dn: uid=anna,{ldap_server.people_dn}\nchangetype: modify\nreplace: cn\ncn: Anna Changed\n")
    # This service account gets at most 2 entries per search from the server.
    ldap_directory.save_directory(
        found.customer_id, {"bind_dn": ldap_server.limited_dn, "bind_password": ldap_server.limited_password}
    )
    db.session.commit()

    with pytest.raises(DirectoryUnavailable) as error:
        ldap_directory.sync(found)
    assert "sizeLimitExceeded" in error.value.message and "nothing was changed" in error.value.message
    db.session.rollback()

    users = s.users(found.customer_id)
    assert all(user.active for user in users.values()) and len(users) == 4
    assert users["anna"].full_name == "Anna Rossi"


def test_sync_due_runs_each_directory_in_its_own_transaction(db_session, ldap_server):
    _seed_office(ldap_server)
    ok = s.directory_for(ldap_server, "Studio Bianchi")
    broken = s.directory_for(ldap_server, "Studio Rossi", base_dn=f"ou=gone,{ldap_server.base_dn}")
    later = s.directory_for(ldap_server, "Studio Verdi", sync_every_hours=24)
    manual = s.directory_for(ldap_server, "Studio Neri", sync_every_hours=None)
    recent = db.session.get(Directory, later.id)
    recent.last_sync_at = utcnow() - dt.timedelta(hours=3)
    recent.last_sync_result = {"status": "ok"}
    db.session.commit()
    ids = {name: d.id for name, d in (("ok", ok), ("broken", broken), ("later", later), ("manual", manual))}
    customers = {name: d.customer_id for name, d in (("ok", ok), ("later", later), ("manual", manual))}

    assert ldap_directory.sync_due(utcnow()) == 1

    db.session.expire_all()
    assert len(s.users(customers["ok"])) == 3
    assert s.users(customers["later"]) == {} and s.users(customers["manual"]) == {}
    failed = db.session.get(Directory, ids["broken"])
    assert failed.last_sync_result["status"] == "failed"
    assert "noSuchObject" in failed.last_sync_result["error"]
    assert db.session.get(Directory, ids["ok"]).last_sync_result["status"] == "ok"
    # Next hour the failed one is tried again, the synced one is not due for a day.
    assert ldap_directory.due(failed, utcnow() + dt.timedelta(hours=1))
    assert not ldap_directory.due(db.session.get(Directory, ids["ok"]), utcnow() + dt.timedelta(hours=1))
    assert ldap_directory.due(db.session.get(Directory, ids["ok"]), utcnow() + dt.timedelta(hours=24))


def test_sync_now_runs_as_a_job_with_a_status(db_session, ldap_server):
    _seed_office(ldap_server)
    found = s.directory_for(ldap_server)
    job_id = ldap_directory.sync_now(found.id)
    assert jobs.job_status(job_id) == "done" == ldap_directory.sync_status(found.id)
    assert len(s.users(found.customer_id)) == 3

    ldap_server.stop()
    ldap_directory.sync_now(found.id)
    assert ldap_directory.sync_status(found.id) == "failed"
    db.session.expire_all()
    result = db.session.get(Directory, found.id).last_sync_result
    assert result["status"] == "failed" and "cannot be reached" in result["error"]
    # The users of the last good sync are still there, active.
    assert all(user.active for user in s.users(found.customer_id).values())


def test_cost_figures_of_a_deactivated_user_stay(db_session, ldap_server):
    ldap_server.add_person("anna", "pw-anna", "Anna Rossi", department="Vendite")
    found = s.directory_for(ldap_server)
    ldap_directory.sync(found)
    anna = s.users(found.customer_id)["anna"]
    printer = reports_support.device("LDAP-2", customer_id=found.customer_id)
    reports_support.job(
        found.customer_id,
        printer.id,
        utcnow(),
        user_id=anna.id,
        cost_center_id=anna.default_cost_center_id,
        sides_bw=4,
        cost="0.2000",
    )
    db.session.commit()
    ldap_server.delete(f"uid=anna,{ldap_server.people_dn}")
    ldap_directory.sync(found)
    db.session.commit()
    total = db.session.scalar(sa.select(sa.func.sum(Transaction.cost)).where(Transaction.user_id == anna.id))
    assert total == Decimal("0.2000")


def test_a_large_directory_is_read_page_by_page(db_session, ldap_server):
    """More users than one page (and than OpenLDAP's default limit of 500): all of them arrive."""
    ldap_server.apply(
        "\n".join(
            person_ldif(f"user{n:04d}", "pw", f"User {n}", mail=f"user{n}@bianchi.it", department=f"Reparto {n % 7}")
            for n in range(1, 701)
        )
    )
    found = s.directory_for(ldap_server)
    started = time.monotonic()
    counts = ldap_directory.sync(found)
    db.session.commit()
    elapsed = time.monotonic() - started
    assert counts["created"] == 700 and counts["cost_centers"] == 8
    assert _user_count() == 700
    assert elapsed < 60, elapsed
    assert ldap_directory.sync(found) == {
        "created": 0,
        "updated": 0,
        "deactivated": 0,
        "cost_centers": 0,
        "problems": [],
    }


def test_an_email_two_people_share_is_noted_and_a_resync_is_quiet(db_session, ldap_server):
    ldap_server.add_person("anna", "pw-anna", "Anna Rossi", mail="ufficio@bianchi.it")
    ldap_server.add_person("bruno", "pw-bruno", "Bruno Neri", mail="UFFICIO@bianchi.it")
    found = s.directory_for(ldap_server, department_attribute=None, card_attribute=None)

    counts = ldap_directory.sync(found)
    db.session.commit()

    assert (counts["created"], counts["cost_centers"]) == (2, 0)
    assert len(counts["problems"]) == 1 and "bruno" in counts["problems"][0]
    users = s.users(found.customer_id)
    assert users["anna"].email == "ufficio@bianchi.it" and users["bruno"].email is None
    assert users["anna"].default_cost_center is None
    # Without a department attribute no cost center is made.
    assert _centers(found.customer_id) == {}
    again = ldap_directory.sync(found)
    assert (again["created"], again["updated"]) == (0, 0)
