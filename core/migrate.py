"""Schema migrations: an Alembic branch per module, and the `flask db` commands that drive them."""

from __future__ import annotations

import os
from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from flask import current_app
from flask.cli import with_appcontext

from core.boundaries import table_owner as owner_by_prefix
from core.loader import Manifest, Resolution, discover

CORE_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def all_manifests() -> dict[str, Manifest]:
    return discover(current_app.config["COPYDESK_MODULE_PACKAGES"])


def table_owner(table_name: str) -> str:
    """The module owning a table, from its prefix; `core` for core's own."""
    return owner_by_prefix(table_name, list(all_manifests())) or "unknown"


def alembic_config(module: str | None = None) -> Config:
    """Every module folder on disk is a version location, enabled or not, so applied revisions always resolve."""
    config = Config()
    config.set_main_option("script_location", str(CORE_MIGRATIONS))
    locations = [str(CORE_MIGRATIONS / "versions")]
    locations += [str(m.migrations_dir) for m in all_manifests().values() if m.migrations_dir.is_dir()]
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join(locations))
    config.attributes["module"] = module
    return config


def branch_heads(config: Config) -> dict[str, str]:
    """Branch label -> head revision, for every branch on disk."""
    script = ScriptDirectory.from_config(config)
    labels = {label for rev in script.walk_revisions() for label in (rev.branch_labels or ())}
    return {label: script.get_revision(f"{label}@head").revision for label in sorted(labels)}


def upgrade_enabled(resolution: Resolution) -> list[str]:
    """Bring core and every enabled module that has migrations to its head; returns the branches upgraded."""
    config = alembic_config()
    heads = branch_heads(config)
    targets = ["core", *[m.name for m in resolution.enabled() if m.name in heads]]
    for name in targets:
        command.upgrade(config, f"{name}@head")
    return targets


@click.group("db", help="Database schema: one Alembic branch per module (raw Alembic: `flask alembic ...`).")
def db_cli() -> None:
    pass


@db_cli.command("upgrade")
@with_appcontext
def upgrade_command() -> None:
    """Create or update the tables of core and of every enabled module."""
    from core.module_state import record_states, resolve_for_app

    resolution = resolve_for_app(current_app)
    done = upgrade_enabled(resolution)
    record_states(resolve_for_app(current_app), current_app.config["COPYDESK_MODULES"])
    click.echo(f"Database is up to date for: {', '.join(done)}")


def _direct_heads(script: ScriptDirectory, heads: list[str]) -> list[str]:
    """`heads` without those another of them already depends on: Alembic's upgrade stumbles on a dependency named
    twice (once directly, once through another branch), deleting a version row that is not there."""
    implied: set[str] = set()
    for head in heads:
        implied.update(rev.revision for rev in script.iterate_revisions(head, "base") if rev.revision != head)
    return [head for head in heads if head not in implied]


@db_cli.command("revision")
@click.argument("module")
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--empty", is_flag=True, help="Do not compare the models with the database.")
@with_appcontext
def revision_command(module: str, message: str, empty: bool) -> None:
    """Write a new revision in MODULE's branch, comparing its models with the database."""
    manifests = all_manifests()
    if module != "core" and module not in manifests:
        raise click.UsageError(f"no module named {module!r}")
    folder = CORE_MIGRATIONS / "versions" if module == "core" else manifests[module].migrations_dir
    folder.mkdir(exist_ok=True)
    config = alembic_config(module)
    heads = branch_heads(config)
    script = ScriptDirectory.from_config(config)
    count = len(list(script.iterate_revisions(f"{module}@head", "base"))) if module in heads else 0
    # Readable, ordered revision ids: rentals_0001, rentals_0002, ...
    options: dict = {"message": message, "autogenerate": not empty, "rev_id": f"{module}_{count + 1:04d}"}
    if module in heads:
        options["head"] = f"{module}@head"
    else:
        deps = [] if module == "core" else ["core", *manifests[module].depends]
        options.update(
            head="base",
            branch_label=module,
            version_path=str(folder),
            depends_on=_direct_heads(script, [heads[d] for d in deps if d in heads]) or None,
        )
    command.revision(config, **options)


@db_cli.command("current")
@with_appcontext
def current_command() -> None:
    """Show the revision each branch of this database is at."""
    command.current(alembic_config(), verbose=False)


@db_cli.command("heads")
@with_appcontext
def heads_command() -> None:
    """Show the newest revision of every branch on disk."""
    for label, head in sorted(branch_heads(alembic_config()).items()):
        click.echo(f"{label}: {head}")
