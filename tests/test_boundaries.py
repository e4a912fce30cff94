"""Every real module keeps to its boundaries: imports and foreign keys only towards core and its dependencies."""

from core.boundaries import foreign_key_violations, import_violations
from core.db import db
from core.loader import discover


def test_modules_import_only_core_and_their_dependencies():
    assert import_violations(discover(["modules"])) == []


def test_foreign_keys_point_only_at_core_or_declared_dependencies(app):
    assert foreign_key_violations(db.metadata, discover(["modules"])) == []


def test_every_module_table_carries_its_module_prefix(app):
    names = ["core", *discover(["modules"])]
    strays = [t for t in db.metadata.tables if not any(t.startswith(f"{n}_") for n in names) and t.count("_")]
    assert strays == []
