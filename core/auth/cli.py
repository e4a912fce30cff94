"""`flask users ...`: create users, list them, issue and revoke API tokens."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from core.auth import services
from core.auth.services import UserError
from core.db import db
from core.models import User
from core.permissions import ROLES

users_cli = AppGroup("users", help="Create and list users; issue and revoke API tokens.")


@users_cli.command("create")
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(ROLES), help="The user's role.")
@click.option("--customer", "customer_id", type=int, help="Partner id, required for customer roles.")
@click.option("--name", help="Display name (default: the part of the email before @).")
@click.option("--language", type=click.Choice(["it", "en", "es"]), help="Language for pages and emails.")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input instead of emailing a link."
)
def create_user(
    email: str, role: str, customer_id: int | None, name: str | None, language: str | None, password_stdin: bool
) -> None:
    """Create a user. Without --password-stdin, they are emailed a link to choose their password."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    try:
        user = services.create_user(
            email, role, name=name, customer_id=customer_id, language=language, password=password
        )
    except UserError as exc:
        db.session.rollback()
        raise click.ClickException(f"{exc.field}: {exc.message}") from None
    db.session.commit()
    click.echo(f"Created user {user.id}: {user.email} ({user.role})")
    if password is None:
        click.echo(f"A set-password email is queued for {user.email}.")


@users_cli.command("list")
def list_users() -> None:
    """Every user with role, customer, state and last login."""
    users = db.session.scalars(db.select(User).order_by(User.email)).all()
    click.echo(f"{'id':>5} {'email':<36} {'role':<15} {'customer':<24} {'active':<6} last login")
    for user in users:
        customer = user.customer.name if user.customer else "-"
        last = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
        active = "yes" if user.active else "no"
        click.echo(f"{user.id:>5} {user.email:<36} {user.role:<15} {customer[:24]:<24} {active:<6} {last}")


@users_cli.command("token")
@click.argument("email")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
def create_token(email: str, name: str) -> None:
    """Issue an API token for EMAIL; the token is printed once, alone on the last line."""
    from core.api.tokens import create_token as issue

    user = services.find_user(email)
    if user is None:
        raise click.ClickException(f"there is no user with the email {email}")
    if not user.active:
        raise click.ClickException(f"{user.email} is not active")
    token, plaintext = issue(user, name)
    click.echo(f"Token {token.id} ({token.name}) for {user.email}; keep it now, it is not shown again:")
    click.echo(plaintext)


@users_cli.command("revoke-token")
@click.argument("token_id", type=int)
def revoke_token(token_id: int) -> None:
    """Revoke the API token with this id."""
    from core.api.tokens import revoke_token as revoke

    if not revoke(token_id):
        raise click.ClickException(f"there is no active token with id {token_id}")
    click.echo(f"Token {token_id} is revoked.")
