"""The technician's phone page (/inventory/van/): their van's stock, receiving a transfer into it, delivering from it
by scanning or typing a barcode or serial; and its static files (the camera scanner)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from core.context import ModuleContext
from core.db import db
from core.labels import number
from core.permissions import has_permission
from core.validation import ValidationError
from modules.inventory import locations, van
from modules.inventory.admin import TIMES
from modules.inventory.models import Location

VAN = "inventory.van"
ANY_VAN = "inventory.edit"  # the back office may open any van's page

bp = Blueprint(
    "inventory_van",
    __name__,
    url_prefix="/inventory",
    static_folder="static",
    static_url_path="/static",
)


def register(ctx: ModuleContext) -> None:
    ctx.add_blueprint(bp)


def _allowed() -> None:
    if not has_permission(current_user, VAN):
        abort(403)


def _van(van_id: int) -> Location:
    """The van `van_id`: the user's own, or any van for the back office; another technician's answers 404."""
    found = db.session.get(Location, van_id)
    if found is None or found.kind != "van":
        abort(404)
    if found.technician_id != current_user.id and not has_permission(current_user, ANY_VAN):
        abort(404)
    return found


@bp.get("/van/")
@login_required
def mine():
    _allowed()
    own = locations.van_of(current_user)
    if own is not None:
        return _page(own)
    return render_template("inventory/admin/van.html", van=None, vans=_vans() if _any() else [])


@bp.get("/van/<int:van_id>/")
@login_required
def show(van_id: int):
    _allowed()
    return _page(_van(van_id))


def _any() -> bool:
    return has_permission(current_user, ANY_VAN)


def _vans() -> list[Location]:
    import sqlalchemy as sa

    return list(db.session.scalars(sa.select(Location).where(Location.kind == "van").order_by(Location.name)))


def _page(found: Location, errors: dict[str, str] | None = None, form: str = "", status: int = 200):
    bridge = van.device_delivery()
    return (
        render_template(
            "inventory/admin/van.html",
            van=found,
            lines=van.van_stock(found.id),
            moves=van.recent_moves(found.id),
            sources=van.sources(found),
            customers=[] if bridge is not None else van.customers(),
            to_device=bridge is not None,
            errors=errors or {},
            form=form,
            values=request.form,
            vans=_vans() if _any() else [],
        ),
        status,
    )


def _act(van_id: int, form: str, action: Any, message: Any):
    _allowed()
    found = _van(van_id)
    try:
        done = action(found)
    except ValidationError as error:
        db.session.rollback()
        return _page(found, error.errors, form, 422)
    db.session.commit()
    flash(message(done), "success")
    return redirect(url_for(".show", van_id=found.id) if found.technician_id != current_user.id else url_for(".mine"))


def _what(item: van.ScannedItem, quantity: Any) -> str:
    if item.serial:
        return _("%(product)s, serial %(serial)s", product=item.product.code, serial=item.serial)
    return f"{number(quantity)} {TIMES} {item.product.code}"


@bp.post("/van/<int:van_id>/receive")
@login_required
def receive(van_id: int):
    form = request.form
    return _act(
        van_id,
        "receive",
        lambda found: van.receive(
            found, form.get("from_location"), form.get("item"), form.get("quantity"), current_user
        ),
        lambda done: _("Received into the van: %(what)s.", what=_what(*done)),
    )


@bp.post("/van/<int:van_id>/deliver")
@login_required
def deliver(van_id: int):
    form = request.form
    return _act(
        van_id,
        "deliver",
        lambda found: van.deliver(
            found,
            form.get("item"),
            form.get("quantity"),
            device_text=form.get("device"),
            customer_id=form.get("customer"),
            reference=form.get("reference"),
            user=current_user,
        ),
        lambda done: _("Delivered %(what)s to %(to)s.", what=_what(done.item, done.quantity), to=done.to),
    )
