"""Cost centers: a tree per customer with unique sibling names, no cycles, shared accounts, subtree and paths."""

from __future__ import annotations

import pytest

from core.db import db
from core.validation import ValidationError
from modules.device_accounting import cost_centers, users
from modules.device_accounting.models import CostCenter
from modules.device_accounting.tests.records_support import count, customer


def save(customer_id: int, **data) -> CostCenter:
    center = cost_centers.save_cost_center(customer_id, data)
    db.session.commit()
    return center


def errors_of(customer_id: int, data: dict, center: CostCenter | None = None) -> dict[str, str]:
    with pytest.raises(ValidationError) as raised:
        cost_centers.save_cost_center(customer_id, data, center)
    db.session.rollback()
    return raised.value.errors


def test_sibling_names_are_unique_whatever_their_case_but_cousins_may_share_one(bianchi):
    admin = save(bianchi.id, name="Amministrazione")
    sales = save(bianchi.id, name="Commerciale")
    save(bianchi.id, name="Contabilità", parent_id=admin.id)

    twin = errors_of(bianchi.id, {"name": "CONTABILITÀ", "parent_id": admin.id})
    top_twin = errors_of(bianchi.id, {"name": "amministrazione"})
    cousin = save(bianchi.id, name="Contabilità", parent_id=sales.id)

    assert "already called CONTABILITÀ" in twin["name"]
    assert "name" in top_twin
    assert cousin.path == "Commerciale / Contabilità"


def test_a_cost_center_cannot_go_under_itself_or_below_itself(bianchi):
    top = save(bianchi.id, name="Amministrazione")
    middle = save(bianchi.id, name="Contabilità", parent_id=top.id)
    bottom = save(bianchi.id, name="Fornitori", parent_id=middle.id)

    onto_itself = errors_of(bianchi.id, {"parent_id": top.id}, top)
    under_grandchild = errors_of(bianchi.id, {"parent_id": bottom.id}, top)

    assert "parent_id" in onto_itself and "parent_id" in under_grandchild
    db.session.expire_all()
    assert db.session.get(CostCenter, top.id).parent_id is None


def test_the_parent_is_of_the_same_customer(bianchi):
    theirs = save(customer("Farmacia Rossi").id, name="Laboratorio")

    assert "no cost center" in errors_of(bianchi.id, {"name": "Magazzino", "parent_id": theirs.id})["parent_id"]
    assert count(CostCenter) == 1


def test_moving_a_branch_keeps_its_subtree(bianchi):
    admin = save(bianchi.id, name="Amministrazione")
    accounts = save(bianchi.id, name="Contabilità", parent_id=admin.id)
    suppliers = save(bianchi.id, name="Fornitori", parent_id=accounts.id)
    direction = save(bianchi.id, name="Direzione")

    cost_centers.save_cost_center(bianchi.id, {"parent_id": direction.id}, accounts)
    db.session.commit()

    assert suppliers.path == "Direzione / Contabilità / Fornitori"
    assert cost_centers.subtree_ids(direction.id) == [direction.id, accounts.id, suppliers.id]
    assert cost_centers.subtree_ids(admin.id) == [admin.id]
    assert cost_centers.paths([bianchi.id])[suppliers.id] == "Direzione / Contabilità / Fornitori"


def test_a_name_cannot_hold_the_path_separator_and_codes_are_unique(bianchi):
    save(bianchi.id, name="Direzione", code="CC-01")

    assert "/" in errors_of(bianchi.id, {"name": "Ricerca / Sviluppo"})["name"]
    assert "CC-01" in errors_of(bianchi.id, {"name": "Ricerca", "code": "cc-01"})["code"]


def test_deactivating_deactivates_the_subtree_and_nothing_new_goes_under_it(bianchi):
    admin = save(bianchi.id, name="Amministrazione")
    accounts = save(bianchi.id, name="Contabilità", parent_id=admin.id)

    cost_centers.save_cost_center(bianchi.id, {"active": False}, admin)
    db.session.commit()

    assert not accounts.active
    assert "not active" in errors_of(bianchi.id, {"name": "Paghe", "parent_id": admin.id})["parent_id"]


def test_shared_flag_and_privilege_defaults(bianchi):
    center = save(bianchi.id, name="Ufficio tecnico", shared=True, allowed_functions=["scan", "print"], max_sides=200)

    assert (center.shared, center.allowed_functions, center.max_sides, center.color_allowed) == (
        True,
        ["print", "scan"],
        200,
        None,
    )
    assert "allowed_functions" in errors_of(bianchi.id, {"name": "X", "allowed_functions": ["fotocopia"]})


def test_paths_are_found_and_created_only_when_asked(bianchi):
    admin = save(bianchi.id, name="Amministrazione")

    with pytest.raises(ValidationError) as unknown:
        cost_centers.resolve_path(bianchi.id, "amministrazione / Contabilità", field="cost_center")
    found, none_created = cost_centers.resolve_path(bianchi.id, " AMMINISTRAZIONE ")
    made, created = cost_centers.resolve_path(bianchi.id, "Amministrazione / Contabilità / Paghe", create=True)

    assert "Amministrazione / Contabilità" in unknown.value.errors["cost_center"]
    assert (found, none_created) == (admin, [])
    assert created == ["Amministrazione / Contabilità", "Amministrazione / Contabilità / Paghe"]
    assert made.path == "Amministrazione / Contabilità / Paghe"
    assert cost_centers.find_by_path(bianchi.id, "amministrazione/contabilità/paghe") == made


def test_a_cost_center_in_use_is_not_deleted(bianchi):
    used = save(bianchi.id, name="Direzione")
    unused = save(bianchi.id, name="Archivio")
    users.save_user(bianchi.id, {"username": "mrossi", "default_cost_center_id": used.id})
    db.session.commit()

    with pytest.raises(ValidationError) as refused:
        cost_centers.delete_cost_center(used)
    cost_centers.delete_cost_center(unused)
    db.session.commit()

    assert "Deactivate it instead" in refused.value.errors["cost_center"]
    assert [center.name for center in db.session.query(CostCenter)] == ["Direzione"]
