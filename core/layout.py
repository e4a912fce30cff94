"""Module layout checks: each kind of thing a module contributes lives in its one file (tests/test_layout.py)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask_smorest
from flask import Flask
from jinja2 import TemplateNotFound

from core.loader import Manifest

# Every module has these; `tests/` is a package.
REQUIRED = ("__manifest__.py", "__init__.py", "module.py", "models.py", "tests/__init__.py")
# Where a module's templates go, under its templates/ folder (mail: core.outbox.queue_email's "<module>/<name>");
# `reports/` holds partials that both its admin and its portal pages include.
TEMPLATE_SCHEME = r"{module}/(admin|portal|pdf|reports)/[\w./-]+\.html|mail/{module}/[\w-]+(\.subject)?\.(html|txt)"
_JINJA_NAMES = re.compile(r"{%-?\s*(?:extends|include|import|from)\s+[\"']([^\"']+)[\"']")


def _owner(obj_module: str, manifests: dict[str, Manifest]) -> Manifest | None:
    for manifest in manifests.values():
        if obj_module == manifest.package or obj_module.startswith(f"{manifest.package}."):
            return manifest
    return None


def _file_of(obj_module: str, manifest: Manifest) -> str:
    """`modules.metering.billing` -> `billing.py` (the file, relative to the module's folder)."""
    return obj_module[len(manifest.package) + 1 :].replace(".", "/") + ".py"


def _placed(problems: list[str], what: str, obj_module: str, manifests: dict[str, Manifest], allowed: str) -> None:
    """Record a problem when `obj_module`, if it belongs to a module, is not that module's file `allowed`."""
    manifest = _owner(obj_module, manifests)
    if manifest is None:
        return
    where = _file_of(obj_module, manifest)
    pattern = re.escape(allowed).replace(re.escape("<topic>"), r"\w+").replace(r"\ or\ ", "|")
    if not re.fullmatch(pattern, where):
        problems.append(f"{manifest.name}: {what} is in {where}, not {allowed}")


def registered_violations(app: Flask, manifests: dict[str, Manifest]) -> list[str]:
    """What the enabled modules' setup(ctx) registered on `app`, each checked against the file it must come from."""
    from core.csv_import import Importer
    from core.db import db
    from core.extension_points import BILLABLE_SOURCE

    registry = app.extensions["copydesk"]
    problems: list[str] = []
    for source in registry.extensions.get(BILLABLE_SOURCE):
        _placed(problems, f"billable source {type(source).__name__}", type(source).__module__, manifests, "billing.py")
    for job in registry.periodic_jobs.values():
        _placed(problems, f"periodic job {job.name}", job.func.__module__, manifests, "jobs.py")
    for blueprint in app.blueprints.values():
        if isinstance(blueprint, flask_smorest.Blueprint):
            kind, allowed = "API blueprint", "api.py or api_<topic>.py"
        elif (blueprint.url_prefix or "").startswith("/portal"):
            kind, allowed = "portal blueprint", "portal.py"
        else:
            kind, allowed = "blueprint", "views.py"
        _placed(problems, f"{kind} {blueprint.name}", blueprint.import_name, manifests, allowed)
    for view in registry.admin._views:
        _placed(
            problems,
            f"admin view {type(view).__name__}",
            type(view).__module__,
            manifests,
            "admin.py or admin_<topic>.py",
        )
    for mapper in db.Model.registry.mappers:
        _placed(problems, f"model {mapper.class_.__name__}", mapper.class_.__module__, manifests, "models.py")
    for importer in _subclasses(Importer):
        _placed(problems, f"CSV importer {importer.__name__}", importer.__module__, manifests, "imports.py")
    for _module, loader in registry.demo_loaders:
        _placed(problems, f"demo data {loader.__name__}", loader.__module__, manifests, "demo.py")
    for command in app.cli.commands.values():
        callback = getattr(command, "callback", None)
        if callback is not None:
            _placed(problems, f"CLI command {command.name}", callback.__module__, manifests, "cli.py")
    return problems


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _sources(manifest: Manifest) -> Iterator[Path]:
    """The module's own Python files: not its tests, not its migrations."""
    for path in sorted(manifest.path.rglob("*.py")):
        parts = path.relative_to(manifest.path).parts
        if parts[0] not in ("tests", "migrations"):
            yield path


def file_violations(app: Flask, manifests: dict[str, Manifest]) -> list[str]:
    """Required files, enqueued jobs, the template scheme, and template names that resolve, for every module on disk."""
    problems: list[str] = []
    for name, manifest in manifests.items():
        problems += [f"{name}: has no {required}" for required in REQUIRED if not (manifest.path / required).exists()]
        for path in _sources(manifest):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            where = path.relative_to(manifest.path).as_posix()
            problems += _enqueue_violations(tree, name, where)
            problems += _template_name_violations(app, tree, name, where)
        templates = manifest.path / "templates"
        scheme = TEMPLATE_SCHEME.format(module=re.escape(name))
        for path in sorted(templates.rglob("*")) if templates.is_dir() else ():
            if not path.is_file():
                continue
            relative = path.relative_to(templates).as_posix()
            if not re.fullmatch(scheme, relative):
                problems.append(f"{name}: template {relative} is outside {name}/admin|portal|pdf/ and mail/{name}/")
            for included in _JINJA_NAMES.findall(path.read_text(encoding="utf-8")):
                if not _template_exists(app, included):
                    problems.append(f"{name}: template {relative} names {included}, which does not exist")
    return problems


def _enqueue_violations(tree: ast.Module, module: str, where: str) -> list[str]:
    """A function handed to `enqueue` must be defined in jobs.py (imported from there, or defined there)."""
    imported = {
        alias.asname or alias.name: node.module or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    problems = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name)):
            continue
        func = node.func
        if (func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)) != "enqueue":
            continue
        job = node.args[0].id
        home = imported.get(job)
        if (home is not None and not home.endswith(".jobs")) or (home is None and where != "jobs.py"):
            problems.append(f"{module}: {where} enqueues {job}, which is not defined in jobs.py")
    return problems


def _template_name_violations(app: Flask, tree: ast.Module, module: str, where: str) -> list[str]:
    """Every template a module's code names (`"x/y.html"`, `queue_email(..., "module/name", ...)`) exists."""
    problems = []
    for node in ast.walk(tree):
        named = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
        if re.fullmatch(r"[\w-]+/[\w./-]+\.html", named) and not _template_exists(app, named):
            problems.append(f"{module}: {where} names template {named}, which does not exist")
        if isinstance(node, ast.Call) and _called(node) == "queue_email" and len(node.args) > 1:
            mail = node.args[1]
            if isinstance(mail, ast.Constant) and isinstance(mail.value, str):
                if not mail.value.startswith(f"{module}/"):
                    problems.append(f"{module}: {where} sends mail {mail.value}, not under mail/{module}/")
                elif not _template_exists(app, f"mail/{mail.value}.subject.txt"):
                    problems.append(f"{module}: {where} sends mail {mail.value}, which has no templates")
    return problems


def _called(node: ast.Call) -> Any:
    return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)


def _template_exists(app: Flask, name: str) -> bool:
    try:
        app.jinja_env.get_template(name)
    except TemplateNotFound:
        return False
    return True


def dead_declarations(app: Flask, roots: list[Path]) -> list[str]:
    """Signals nothing sends, extension points nothing asks for or nothing implements (the code under `roots`)."""
    import blinker

    from core import extension_points, signals

    code = "\n".join(
        path.read_text(encoding="utf-8")
        for root in roots
        for path in sorted(root.rglob("*.py"))
        if "tests" not in path.relative_to(root).parts and path.name != "signals.py"
    )
    problems = [
        f"signal {name} is never sent"
        for name, signal in vars(signals).items()
        if isinstance(signal, blinker.Signal) and not re.search(rf"\b{name}\.send\b", code)
    ]
    registry = app.extensions["copydesk"].extensions
    for constant, point in vars(extension_points).items():
        if not isinstance(point, extension_points.ExtensionPoint):
            continue
        if not re.search(rf"\bimplementations\(\s*{constant}\b", code):
            problems.append(f"extension point {point.name} is never asked for (implementations({constant}))")
        if not registry.get(point):
            problems.append(f"extension point {point.name} has no implementation")
    return problems


def scoping_violations(roots: list[Path]) -> list[str]:
    """Code that confines data to a customer by hand: `customer_scope` is used only by core/auth/scoping.py."""
    problems = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root.parent).as_posix()
            if relative in ("core/auth/scoping.py", "core/permissions.py"):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                names = [alias.name for alias in node.names] if isinstance(node, ast.ImportFrom) else []
                if "customer_scope" in names or (isinstance(node, ast.Attribute) and node.attr == "customer_scope"):
                    problems.append(f"{relative}:{node.lineno} scopes by hand (use core.auth.scoping)")
    return problems
