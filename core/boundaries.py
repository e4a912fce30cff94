"""Module boundary checks: a module imports only core and its dependencies, and points foreign keys only at them."""

from __future__ import annotations

import ast
from pathlib import Path

from sqlalchemy import MetaData

from core.loader import Manifest, dependency_closure


def _imported_names(path: Path, package: str) -> list[tuple[int, str]]:
    """Absolute dotted names imported by a file, with relative imports resolved against its package."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    file_package = package.split(".")
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = file_package[: len(file_package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.append((node.lineno, name))
            out += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return out


def import_violations(manifests: dict[str, Manifest]) -> list[str]:
    """Every import of another module's code outside a module's dependency closure."""
    problems: list[str] = []
    for name, manifest in manifests.items():
        allowed = {name, *dependency_closure(name, manifests)}
        prefix = manifest.package.rsplit(".", 1)[0]
        for path in sorted(manifest.path.rglob("*.py")):
            relative = path.relative_to(manifest.path).with_suffix("")
            package = ".".join([manifest.package, *relative.parts[:-1]])
            reported: set[tuple[int, str]] = set()
            for lineno, imported in _imported_names(path, package):
                parts = imported.split(".")
                if parts[: len(prefix.split("."))] != prefix.split(".") or len(parts) <= len(prefix.split(".")):
                    continue
                target = parts[len(prefix.split("."))]
                if target in manifests and target not in allowed and (lineno, target) not in reported:
                    reported.add((lineno, target))
                    problems.append(
                        f"{path}:{lineno}: module {name} imports {imported}, but {target} is not in its depends"
                    )
    return problems


def table_owner(table: str, module_names: list[str]) -> str | None:
    for name in sorted(["core", *module_names], key=len, reverse=True):
        if table == name or table.startswith(f"{name}_"):
            return name
    return None


def foreign_key_violations(metadata: MetaData, manifests: dict[str, Manifest]) -> list[str]:
    """Foreign keys from a module's table to a table of a module it does not depend on."""
    problems = []
    names = list(manifests)
    for table in metadata.tables.values():
        owner = table_owner(table.name, names)
        if owner in (None, "core"):
            continue
        allowed = {"core", owner, *dependency_closure(owner, manifests)}
        for fk in table.foreign_keys:
            target = table_owner(fk.column.table.name, names)
            if target not in allowed:
                problems.append(
                    f"{table.name}.{fk.parent.name} -> {fk.column.table.name}: {owner} does not depend on {target}"
                )
    return problems
