"""`flask licence ...`: the vendor's keygen, issue and verify; the dealer's install and usage-report."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from flask.cli import with_appcontext

from core import clock
from core.db import db, utcnow
from modules.lan_licensing import installation, state, usage_report
from modules.lan_licensing import licence as lic


@click.group("licence", help="Licence files: the vendor's keys and licences, the dealer's installation.")
def licence_cli() -> None:
    pass


def _show(licence: lic.Licence) -> None:
    click.echo(f"Licence:   {licence.licence_id}")
    click.echo(f"Licensee:  {licence.licensee_name} ({licence.licensee_vat or '-'})")
    click.echo(f"Valid:     {licence.valid_from} to {licence.expires_at}")
    click.echo(f"Modules:   {', '.join(licence.modules) or '-'}")
    click.echo(f"Seats:     {licence.seats}")
    click.echo(f"Tier:      {licence.tier_name} ({licence.tier_readings} readings a licence year)")
    click.echo(f"Devices:   {licence.devices}")
    click.echo(f"For:       {licence.installation_id or 'any installation'}")
    click.echo(f"Signed by: {licence.key_id}")


def _refused(error: lic.LicenceError) -> None:
    raise click.ClickException(f"refused ({error.code}): {error.message}")


@licence_cli.command("keygen", help="Vendor: make a signing key pair; the private key is written encrypted.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Private key file")
@click.option(
    "--passphrase",
    envvar="LICENCE_KEY_PASSPHRASE",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Encrypts the private key (env LICENCE_KEY_PASSPHRASE)",
)
def keygen(out: Path, passphrase: str) -> None:
    if out.exists():
        raise click.ClickException(f"{out} exists; not overwriting a key")
    if len(passphrase) < 8:
        raise click.ClickException("the passphrase needs at least 8 characters")
    key = lic.generate_key()
    out.write_bytes(lic.private_key_pem(key, passphrase))
    out.chmod(0o600)
    click.echo(f"Private key written to {out} (encrypted). Keep it off dealers' servers.")
    click.echo("Public key (give it to installations as LICENCE_PUBLIC_KEYS):")
    click.echo(lic.public_key_text(key.public_key()))


@licence_cli.command("issue", help="Vendor: sign a licence with the private key and write the licence file.")
@click.option("--key", "key_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--passphrase", envvar="LICENCE_KEY_PASSPHRASE", prompt=True, hide_input=True)
@click.option("--licence-id", required=True)
@click.option("--licensee", required=True, help="Licensee's name")
@click.option("--vat-number", default="", help="Licensee's VAT number")
@click.option("--issued-at", type=click.DateTime(), default=None, help="Default: now (UTC)")
@click.option("--valid-from", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--expires-at", type=click.DateTime(["%Y-%m-%d"]), required=True)
@click.option("--modules", required=True, help="Licensed features, comma separated: rentals,metering,invoicing")
@click.option("--seats", type=click.IntRange(min=1), required=True, help="Concurrent staff seats")
@click.option("--tier-name", required=True)
@click.option("--tier-readings", type=click.IntRange(min=1), required=True, help="Readings per licence year")
@click.option("--devices", type=click.IntRange(min=0), default=0, help="Devices for device accounting")
@click.option("--installation-id", default=None, help="Bind the licence to one installation")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def issue(
    key_path,
    passphrase,
    licence_id,
    licensee,
    vat_number,
    issued_at,
    valid_from,
    expires_at,
    modules,
    seats,
    tier_name,
    tier_readings,
    devices,
    installation_id,
    out,
) -> None:
    if expires_at.date() < valid_from.date():
        raise click.ClickException("--expires-at is before --valid-from")
    try:
        key = lic.load_private_key(key_path.read_bytes(), passphrase)
    except (TypeError, ValueError) as exc:
        raise click.ClickException(f"cannot open the private key: {exc}") from None
    licence = lic.Licence(
        licence_id=licence_id,
        licensee_name=licensee,
        licensee_vat=vat_number,
        issued_at=(issued_at.replace(tzinfo=dt.UTC) if issued_at else utcnow()),
        valid_from=valid_from.date(),
        expires_at=expires_at.date(),
        modules=tuple(sorted({m.strip() for m in modules.split(",") if m.strip()})),
        seats=seats,
        tier_name=tier_name,
        tier_readings=tier_readings,
        devices=devices,
        installation_id=installation_id or None,
    )
    out.write_text(lic.sign(licence, key), encoding="utf-8")
    click.echo(f"Licence {licence_id} written to {out}.")


@licence_cli.command("verify", help="Check a licence file against the trusted keys (or --public-key).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--public-key", default=None, help="Verify against this key instead of the installation's")
@with_appcontext
def verify(file: Path, public_key: str | None) -> None:
    text = file.read_text(encoding="utf-8", errors="replace")
    try:
        if public_key:
            licence = lic.verify(text, [lic.load_public_key(public_key)])
        else:
            licence = installation.verify_text(text)
            lic.check_applies(licence, clock.today(), installation.get().installation_id)
            db.session.commit()
    except lic.LicenceError as error:
        _refused(error)
    _show(licence)
    click.echo("The licence is valid.")


@licence_cli.command("install", help="Dealer: install a licence file (modules change at the next start).")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def install(file: Path) -> None:
    try:
        licence = installation.install(file.read_text(encoding="utf-8", errors="replace"))
    except lic.LicenceError as error:
        db.session.rollback()
        _refused(error)
    db.session.commit()
    _show(licence)
    click.echo("Installed. Restart the web server and the workers for the licensed modules to change.")


@licence_cli.command("status", help="Where the licence stands, and the installation id to give the vendor.")
@with_appcontext
def status() -> None:
    now_state = state.compute()
    db.session.commit()
    click.echo(f"Installation: {now_state.installation_id}")
    click.echo(f"State:        {now_state.phase}{' (clock set back)' if now_state.clock_set_back else ''}")
    if now_state.ends_on:
        click.echo(f"Ends on:      {now_state.ends_on} ({now_state.days_left} days)")
    if now_state.problem:
        click.echo(f"Problem:      {now_state.problem}")
    if now_state.licence:
        _show(now_state.licence)


@licence_cli.command("usage-report", help="Dealer: write the usage report, signed by this installation's key.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: stdout")
@with_appcontext
def usage_report_command(out: Path | None) -> None:
    text = usage_report.sign(usage_report.build())
    db.session.commit()
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"Usage report written to {out}.")


@licence_cli.command("verify-report", help="Vendor: check a usage report's signature and show its figures.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--installation-key", default=None, help="The installation's key on record (from an earlier report)")
def verify_report(file: Path, installation_key: str | None) -> None:
    try:
        payload = usage_report.verify(file.read_text(encoding="utf-8", errors="replace"), installation_key)
    except lic.LicenceError as error:
        _refused(error)
    click.echo(json.dumps(payload, indent=2, sort_keys=True))
    click.echo("The usage report's signature is valid.")
