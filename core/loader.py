"""The module loader: read manifests without importing code, decide what is enabled, and set modules up in order."""

from __future__ import annotations

import ast
import graphlib
import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

VERSION_RE = re.compile(r"^\d+\.\d+(\.\d+)?$")
MANIFEST_KEYS = {
    "name",
    "title",
    "version",
    "depends",
    "auto_install",
    "licence_feature",
    "entry",
    "sequence",
    "summary",
    "licence_gate",
}


class LoaderError(RuntimeError):
    """A startup error the dealer must fix (a dependency cycle)."""


@dataclass(frozen=True)
class Manifest:
    name: str
    title: str
    version: str
    path: Path
    package: str  # importable name, e.g. "modules.rentals"
    depends: tuple[str, ...] = ()
    auto_install: bool = False
    licence_feature: str | None = None
    entry: str = "module"
    sequence: int = 100
    summary: str = ""
    licence_gate: str | None = None
    error: str | None = None  # set when the manifest is invalid

    @property
    def migrations_dir(self) -> Path:
        return self.path / "migrations"


@dataclass
class ModuleStatus:
    manifest: Manifest
    state: str  # enabled | disabled | skipped
    reason: str = ""


@dataclass
class Resolution:
    statuses: dict[str, ModuleStatus] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # enabled modules, dependencies first

    def enabled(self) -> list[Manifest]:
        return [self.statuses[name].manifest for name in self.order]


def read_manifest(folder: Path, package: str) -> Manifest:
    """Parse `__manifest__.py` with ast.literal_eval; an invalid manifest comes back with `error` set."""
    name = folder.name
    try:
        data = ast.literal_eval((folder / "__manifest__.py").read_text(encoding="utf-8"))
    except (SyntaxError, ValueError) as exc:
        return Manifest(name=name, title=name, version="0", path=folder, package=package, error=f"unreadable: {exc}")
    problems = []
    if not isinstance(data, dict):
        data, problems = {}, ["the manifest is not a dict literal"]
    unknown = set(data) - MANIFEST_KEYS
    if unknown:
        problems.append(f"unknown keys {sorted(unknown)}")
    if data.get("name") != name:
        problems.append(f"name {data.get('name')!r} differs from its folder {name!r}")
    version = str(data.get("version", ""))
    if not VERSION_RE.match(version):
        problems.append(f"version {version!r} is not like 1.0 or 1.0.0")
    depends = data.get("depends", [])
    if not isinstance(depends, list | tuple) or not all(isinstance(d, str) for d in depends):
        problems.append("depends must be a list of module names")
        depends = []
    depends = tuple(d for d in depends if d != "core")  # core is always there
    entry = data.get("entry", "module")
    if not (folder / f"{entry}.py").exists():
        problems.append(f"entry {entry!r} has no {entry}.py")
    return Manifest(
        name=name,
        title=str(data.get("title", name)),
        version=version,
        path=folder,
        package=package,
        depends=depends,
        auto_install=bool(data.get("auto_install", False)),
        licence_feature=data.get("licence_feature"),
        entry=entry,
        sequence=int(data.get("sequence", 100)),
        summary=str(data.get("summary", "")),
        licence_gate=data.get("licence_gate"),
        error="; ".join(problems) or None,
    )


def discover(packages: Iterable[str]) -> dict[str, Manifest]:
    """Every folder with a `__manifest__.py` under the given packages (only the package itself is imported)."""
    manifests: dict[str, Manifest] = {}
    for package in packages:
        pkg = importlib.import_module(package)
        for base in pkg.__path__:
            for folder in sorted(Path(base).iterdir()):
                if (folder / "__manifest__.py").is_file():
                    manifests.setdefault(folder.name, read_manifest(folder, f"{package}.{folder.name}"))
    return manifests


def dependency_closure(name: str, manifests: dict[str, Manifest]) -> set[str]:
    """A module's dependencies, direct and indirect."""
    seen: set[str] = set()
    stack = list(manifests[name].depends) if name in manifests else []
    while stack:
        dep = stack.pop()
        if dep not in seen:
            seen.add(dep)
            stack.extend(manifests[dep].depends if dep in manifests else ())
    return seen


def _topological_order(names: Iterable[str], manifests: dict[str, Manifest]) -> list[str]:
    names = set(names)
    sorter = graphlib.TopologicalSorter({n: [d for d in manifests[n].depends if d in names] for n in names})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise LoaderError(f"module dependency cycle: {cycle}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=lambda n: (manifests[n].sequence, n))
        for node in ready:
            order.append(node)
            sorter.done(node)
    return order


def resolve(
    manifests: dict[str, Manifest],
    requested: dict[str, bool],
    default_requested: set[str] | None,
    entitled: Callable[[Manifest], str | None] = lambda m: None,
) -> Resolution:
    """Decide each module's state.

    `requested` is what the database says (name -> requested); names it does not mention fall back to
    `default_requested` (None: every module). `entitled(manifest)` returns None when the licence allows the
    module, else the reason it does not.
    """
    valid = {n: m for n, m in manifests.items() if m.error is None}
    _topological_order(valid, valid)  # a cycle anywhere on disk is a startup error

    statuses: dict[str, ModuleStatus] = {}
    for name, manifest in manifests.items():
        if manifest.error:
            statuses[name] = ModuleStatus(manifest, "skipped", f"invalid manifest: {manifest.error}")

    def is_requested(m: Manifest) -> bool | None:
        if m.name in requested:
            return requested[m.name]
        if m.auto_install:
            return None  # decided by its dependencies
        return default_requested is None or m.name in default_requested

    enabled: set[str] = set()
    for name, manifest in valid.items():
        wanted = is_requested(manifest)
        refusal = entitled(manifest)
        if wanted is False:
            statuses[name] = ModuleStatus(manifest, "disabled", "not requested")
        elif refusal:
            statuses[name] = ModuleStatus(manifest, "skipped", refusal)
        elif wanted:
            enabled.add(name)

    changed = True
    while changed:
        changed = False
        for name in sorted(enabled):
            missing = [d for d in valid[name].depends if d not in enabled]
            if missing:
                enabled.discard(name)
                dep = missing[0]
                if dep not in manifests:
                    reason = f"depends on {dep!r}, which is not installed"
                else:
                    state = statuses.get(dep).state if dep in statuses else "disabled"
                    reason = f"depends on {dep!r}, which is {state}"
                statuses[name] = ModuleStatus(valid[name], "skipped", reason)
                changed = True
        for name, manifest in valid.items():
            if (
                name not in enabled
                and name not in statuses
                and is_requested(manifest) is None
                and all(d in enabled for d in manifest.depends)
            ):
                enabled.add(name)
                changed = True

    for name, manifest in valid.items():
        if name in enabled:
            reason = "installed automatically: all its dependencies are enabled" if manifest.auto_install else ""
            statuses[name] = ModuleStatus(manifest, "enabled", reason)
        elif name not in statuses:
            missing = [d for d in manifest.depends if d not in enabled]
            statuses[name] = ModuleStatus(
                manifest, "disabled", f"waits for {', '.join(missing)}" if missing else "not requested"
            )
    return Resolution(statuses=dict(sorted(statuses.items())), order=_topological_order(enabled, valid))


def dependents(name: str, manifests: dict[str, Manifest], among: Iterable[str]) -> list[str]:
    """Modules among `among` that depend on `name`, directly or not."""
    return sorted(n for n in among if n != name and name in dependency_closure(n, manifests))


def import_entry(manifest: Manifest):
    return importlib.import_module(f"{manifest.package}.{manifest.entry}")
