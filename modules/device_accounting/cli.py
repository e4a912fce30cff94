"""`flask device-accounting`: install the CUPS backend copydesk-hold, import a CUPS page log (docs/print-server.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from core.db import db
from modules.device_accounting.models import PrintServer

CUPS_FILES = Path(__file__).parent / "cups"
BACKEND = CUPS_FILES / "copydesk-hold"
PPD = CUPS_FILES / "copydesk-hold.ppd"
DEFAULT_BACKEND_DIR = "/usr/lib/cups/backend"
DEFAULT_PPD_DIR = "/usr/share/ppd/copydesk"

device_accounting = AppGroup(
    "device-accounting", help="Device accounting on a CUPS print server: the secure-print backend, page log imports."
)


def install_cups_backend(directory: str | os.PathLike, ppd_directory: str | os.PathLike | None = None) -> list[Path]:
    """Copy copydesk-hold into CUPS's backend folder (mode 0700, owned by root when run as root: CUPS then runs it
    as root, so it can read the 0600 config) and the queue's PPD into `ppd_directory`; the files written."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    backend = target / BACKEND.name
    temporary = backend.with_name(f".{BACKEND.name}.new")
    shutil.copyfile(BACKEND, temporary)
    os.chmod(temporary, 0o700)
    if os.geteuid() == 0:
        os.chown(temporary, 0, 0)
    os.replace(temporary, backend)  # a job running the old copy meanwhile keeps it whole
    written = [backend]
    if ppd_directory is not None:
        folder = Path(ppd_directory)
        folder.mkdir(parents=True, exist_ok=True)
        ppd = folder / PPD.name
        shutil.copyfile(PPD, ppd)
        os.chmod(ppd, 0o644)
        written.append(ppd)
    return written


@device_accounting.command("install-cups-backend")
@click.option(
    "--dir",
    "directory",
    default=DEFAULT_BACKEND_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="CUPS's backend folder.",
)
@click.option(
    "--ppd-dir",
    default=DEFAULT_PPD_DIR,
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the secure queue's PPD goes.",
)
def install_cups_backend_command(directory: str, ppd_dir: str) -> None:
    """Install the copydesk-hold backend and its PPD; then add the queue with the lpadmin line printed."""
    written = install_cups_backend(directory, ppd_dir)
    for path in written:
        click.echo(f"installed {path}")
    if os.geteuid() != 0:
        click.echo("warning: not run as root: CUPS runs a backend as root only when root owns it (mode 0700)", err=True)
    click.echo("add the queue (docs/print-server.md):")
    click.echo(
        f"  lpadmin -p copydesk-secure -E -v copydesk-hold:/etc/copydesk/print-server.conf -P {written[-1]} "
        '-D "Copydesk secure print"'
    )


def _server(name: str | None, file: Path) -> PrintServer:
    """The print server named (or numbered) `name`; without one, the one whose page_log_path is `file`."""
    if name is None:
        query = sa.select(PrintServer).where(
            PrintServer.page_log_path.in_({str(file), str(file.resolve())}), PrintServer.active.is_(True)
        )
        what = f"the page log path {file}"
    elif name.isdigit():
        query = sa.select(PrintServer).where(sa.or_(PrintServer.id == int(name), PrintServer.name == name))
        what = f"the name or id {name}"
    else:
        query = sa.select(PrintServer).where(PrintServer.name == name)
        what = f"the name {name}"
    found = db.session.scalars(query.limit(2)).all()
    if not found:
        raise click.ClickException(f"no print server has {what} (see --print-server)")
    if len(found) > 1:
        raise click.ClickException(f"several print servers have {what}: give its id with --print-server")
    return found[0]


@device_accounting.command("import-page-log")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--print-server",
    "print_server",
    help="The print server (name or id) the log is of; default: the one whose page log path is FILE.",
)
@click.option("--from-start", is_flag=True, help="Read the whole file again (lines imported before add nothing).")
def import_page_log_command(file: Path, print_server: str | None, from_start: bool) -> None:
    """Import FILE, a CUPS page_log: each new job becomes a print transaction at its queue's device."""
    from modules.device_accounting.page_log import import_page_log

    server = _server(print_server, file)
    result = import_page_log(server, file, from_start=from_start)
    db.session.commit()
    for number, message in result.errors:
        click.echo(f"{file}:{number}: {message}", err=True)
    click.echo(
        f"{server.name}: {result.imported} imported, {result.repeated} read before, "
        f"{result.held} held jobs (charged at release), {len(result.errors)} skipped"
    )
    if result.errors:
        raise SystemExit(1)
