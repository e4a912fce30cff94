"""Print accounting in the customer portal: the customer admin's users, cards, quotas, cost centers and reports; a
user's own jobs, held print jobs (delete) and the colleagues who may release them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from babel import Locale
from babel.numbers import NumberFormatError, parse_decimal
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_currency, format_decimal, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm import selectinload

from core import clock
from core.auth.scoping import customer_or_404, customer_scoped, get_scoped_or_404
from core.auth.views import csrf_failed
from core.context import ModuleContext
from core.db import contains, db, utcnow
from core.i18n import parse_whole_number
from core.labels import enum_label
from core.portal import portal_view, register_portal_link
from core.validation import ValidationError
from modules.device_accounting import cost_centers, held_jobs, operations, quotas, reports, users
from modules.device_accounting.models import (
    QUOTA_MODES,
    QUOTA_PERIODS,
    Balance,
    Card,
    CostCenter,
    HeldJob,
    PrintDelegate,
    PrintUser,
    Quota,
    Refund,
    ReportSubscription,
    Transaction,
)
from modules.rentals.models import Device, DeviceModel

bp = Blueprint(
    "device_accounting_portal",
    __name__,
    url_prefix="/portal/print",
    static_folder="static",
    static_url_path="/static",
)
bp.register_error_handler(CSRFError, csrf_failed)

ADMIN = "portal.print_accounting"
MINE = "portal.my_jobs"
ID = "int(min=1, max=2147483647)"
LIST_LIMIT = 200
MY_JOBS_LIMIT = 50
PERIOD_LABELS = {"monthly": _l("Monthly (from day 1)"), "weekly": _l("Weekly (from Monday)")}
MODE_LABELS = {
    "reset": _l("Reset: each period starts again from the amount"),
    "rollover": _l("Roll over: what is left is carried on, up to the cap"),
}
# Enum names registered by the back office (admin.py's register_labels); the portal shows codes through them.
FUNCTION_ENUM = "device_accounting.function"
STATUS_ENUM = "device_accounting.job_status"


def register(ctx: ModuleContext) -> None:
    """The portal's print-accounting pages and their two menu entries."""
    ctx.add_blueprint(bp)
    register_portal_link(
        ctx.app,
        "device_accounting_portal.index",
        _l("Print accounting"),
        icon="printer",
        permission=ADMIN,
        description=_l("Your print users with their cards, PINs and quotas, your cost centers and usage reports."),
        order=40,
    )
    register_portal_link(
        ctx.app,
        "device_accounting_portal.my_jobs",
        _l("My print jobs"),
        icon="document",
        permission=MINE,
        description=_l("Your balance, your quota, your prints waiting for release and your latest copies and prints."),
        order=45,
    )


# Forms: what was typed, and the message of each refused field


@dataclass
class Form:
    """The values of one HTML form and the errors to show beside its fields (`_form` for those of no field)."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def place(self, errors: dict[str, str], fields: Iterable[str], renamed: dict[str, str] | None = None) -> None:
        """Put each service error beside its field (`cost_center_ids.1` beside `cost_center_ids`), else on top."""
        fields, renamed = set(fields), renamed or {}
        for key, message in errors.items():
            name = renamed.get(key, key)
            if name not in fields:
                name = renamed.get(name.split(".")[0], name.split(".")[0])
            self.errors.setdefault(name if name in fields else "_form", message)


def typed_decimal(text: str | None) -> Decimal | str | None:
    """An amount as typed in the user's language (`1.234,50` in Italian), else as typed with a point; None when
    empty. Text that is no number is handed on as it is, for the service to refuse naming its field."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return parse_decimal(text, locale=get_locale() or "en", strict=True)
    except (NumberFormatError, InvalidOperation, ValueError):
        pass
    try:
        number = Decimal(text)
    except InvalidOperation:
        return text[:40]
    return number if number.is_finite() else text[:40]


def typed_whole(text: str | None) -> int | str | None:
    text = (text or "").strip()
    if not text:
        return None
    number = parse_whole_number(text)
    return text[:40] if number is None else number


def typed_id(text: Any) -> int | None:
    """A record id posted by a select; anything else is no id (and is refused as "not one of yours")."""
    text = str(text or "").strip()
    return int(text) if text.isdigit() and 0 < int(text) < 2**31 else (0 if text else None)


def amount_text(value: Decimal | None) -> str:
    """An amount for an input box, in the user's language with at least two decimals (`20,00`)."""
    return "" if value is None else format_decimal(value, format="#,##0.00##")


def money4(value: Decimal | None) -> str:
    """Money with the currency, two decimals or up to four when the cost has them (a side may cost 0,035 €)."""
    if value is None:
        return ""
    value = Decimal(value)
    if value == value.quantize(Decimal("0.01")):
        return format_currency(value, "EUR")
    return format_currency(value, "EUR", format=_currency_pattern(4), currency_digits=False)


def _currency_pattern(places: int) -> str:
    pattern = (get_locale() or Locale("en")).currency_formats["standard"].pattern
    return pattern.replace("0.00", "0.00" + "#" * (places - 2), 1)


def _flash_saved(message: str) -> None:
    flash(message, "success")


@bp.context_processor
def _helpers() -> dict:
    return {
        "money4": money4,
        "amount_text": amount_text,
        "function_label": lambda code: enum_label(FUNCTION_ENUM, code),
        "status_label": lambda code: enum_label(STATUS_ENUM, code),
        "grouping_labels": reports.GROUP_LABELS,
        "period_labels": PERIOD_LABELS,
        "mode_labels": MODE_LABELS,
    }


# Scoping: every id in a URL or a form is one of the customer's, or the page answers 404


def _user_or_404(user_id: int) -> PrintUser:
    return get_scoped_or_404(PrintUser, user_id, PrintUser.customer_id)


def _cost_center_or_404(cost_center_id: int) -> CostCenter:
    return get_scoped_or_404(CostCenter, cost_center_id, CostCenter.customer_id)


def _transaction_or_404(transaction_id: int) -> Transaction:
    return get_scoped_or_404(Transaction, transaction_id, Transaction.customer_id)


def _card_or_404(user: PrintUser, card_id: int) -> Card:
    card = db.session.scalar(sa.select(Card).where(Card.id == card_id, Card.user_id == user.id))
    if card is None:
        abort(404)
    return card


def customer_cost_centers(customer_id: int) -> list[CostCenter]:
    """Every cost center of the customer, by path, loaded once per request and kept for it: the paths of the cost
    centers a list names (their parents) then come from the session, not from a query per row."""
    kept = g.setdefault("device_accounting_cost_centers", {})
    if customer_id not in kept:
        query = customer_scoped(sa.select(CostCenter), CostCenter.customer_id).where(
            CostCenter.customer_id == customer_id
        )
        kept[customer_id] = sorted(db.session.scalars(query), key=lambda center: center.path.casefold())
    return kept[customer_id]


def _unknown_ids(wanted: Iterable[int | None], allowed: Iterable[CostCenter]) -> bool:
    known = {center.id for center in allowed}
    return any(ident is not None and ident not in known for ident in wanted)


# Home of print accounting


@bp.route("/")
@portal_view(ADMIN)
def index():
    customer_id = customer_or_404()
    count = db.session.scalar(
        customer_scoped(sa.select(sa.func.count(PrintUser.id)), PrintUser.customer_id).where(PrintUser.active)
    )
    centers = db.session.scalar(
        customer_scoped(sa.select(sa.func.count(CostCenter.id)), CostCenter.customer_id).where(CostCenter.active)
    )
    today = clock.today()
    month = reports.summary(customer_id, today.replace(day=1), today)
    return render_template("device_accounting/portal/index.html", users_count=count, centers_count=centers, month=month)


# Print users


@bp.route("/users/")
@portal_view(ADMIN)
def users_list():
    customer_id = customer_or_404()
    q = request.args.get("q", "").strip()[:100]
    query = customer_scoped(sa.select(PrintUser), PrintUser.customer_id).options(selectinload(PrintUser.cards))
    if q:
        card = sa.select(Card.id).where(Card.user_id == PrintUser.id, contains(Card.number, q)).exists()
        query = query.where(
            sa.or_(
                contains(PrintUser.username, q), contains(PrintUser.full_name, q), contains(PrintUser.email, q), card
            )
        )
    rows = list(db.session.scalars(query.order_by(PrintUser.username_key).limit(LIST_LIMIT + 1)))
    customer_cost_centers(customer_id)  # the default cost centers' paths, from the session
    balances = dict(
        db.session.execute(
            sa.select(Quota.user_id, Balance.balance)
            .join(Balance, Balance.quota_id == Quota.id)
            .where(Quota.user_id.in_([user.id for user in rows]))
        ).all()
    )
    return render_template(
        "device_accounting/portal/users.html",
        users=rows[:LIST_LIMIT],
        more=len(rows) > LIST_LIMIT,
        balances=balances,
        q=q,
    )


def _user_values(user: PrintUser | None) -> dict[str, Any]:
    if user is None:
        return {"active": True, "cost_center_ids": []}
    return {
        "username": user.username,
        "full_name": user.full_name,
        "email": user.email or "",
        "language": user.language or "",
        "active": user.active,
        "default_cost_center_id": user.default_cost_center_id,
        "cost_center_ids": [center.id for center in user.cost_centers],
    }


def _posted_user_values() -> dict[str, Any]:
    form = request.form
    return {
        "username": form.get("username", "").strip()[:200],
        "full_name": form.get("full_name", "").strip()[:300],
        "email": form.get("email", "").strip()[:300],
        "language": form.get("language", ""),
        "active": form.get("active") == "1",
        "default_cost_center_id": typed_id(form.get("default_cost_center_id")),
        "cost_center_ids": [typed_id(value) for value in form.getlist("cost_center_ids") if value],
        "card": form.get("card", "").strip()[:100],
        "pin": form.get("pin", "").strip()[:40],
    }


USER_FIELDS = ("username", "full_name", "email", "language", "active", "default_cost_center_id", "cost_center_ids")


def _user_data(values: dict[str, Any]) -> dict[str, Any]:
    """The fields the portal changes; privileges are the back office's (save_user leaves absent fields alone)."""
    data = {name: values[name] for name in USER_FIELDS}
    data["email"] = data["email"] or None
    data["language"] = data["language"] or None
    return data


def _save_user(customer_id: int, user: PrintUser | None) -> tuple[PrintUser | None, Form]:
    """Save the posted user (a new one with its first card and PIN) in one transaction, or nothing and the errors."""
    form = Form(_posted_user_values())
    centers = customer_cost_centers(customer_id)
    values = form.values
    if _unknown_ids([values["default_cost_center_id"]], centers):
        form.errors["default_cost_center_id"] = _("Choose one of your cost centers.")
    if _unknown_ids(values["cost_center_ids"], centers):
        form.errors["cost_center_ids"] = _("Choose among your cost centers.")
    if form.errors:
        return None, form
    creating = user is None
    # The card's and PIN's form is checked first, so that every mistake of the form shows at once.
    errors: dict[str, str] = {}
    for name, check in (("card", users.check_card_number), ("pin", users.check_pin)):
        if creating and values[name]:
            try:
                check(values[name], name)
            except ValidationError as exc:
                errors.update(exc.errors)
    try:
        saved = users.save_user(customer_id, _user_data(values), user)
        if errors:
            raise ValidationError(errors)
        if creating and values["card"]:
            _renamed(lambda: users.add_card(saved, values["card"]), "card")
        if creating and values["pin"]:
            _renamed(lambda: users.set_pin(saved, values["pin"]), "pin")
    except ValidationError as exc:
        db.session.rollback()
        form.place({**exc.errors, **errors}, (*USER_FIELDS, "card", "pin"))
        return None, form
    return saved, form


def _renamed(call: Callable[[], Any], name: str) -> Any:
    """Run a service for one field of the form: its errors, whatever the service calls the field, are that field's."""
    try:
        return call()
    except ValidationError as exc:
        raise ValidationError({name: next(iter(exc.errors.values()))}) from exc


@bp.route("/users/new", methods=("GET", "POST"))
@portal_view(ADMIN)
def user_new():
    customer_id = customer_or_404()
    if request.method == "POST":
        saved, form = _save_user(customer_id, None)
        if saved is not None:
            db.session.commit()
            _flash_saved(_("%(name)s can now print.", name=saved.full_name or saved.username))
            return redirect(url_for(".user_page", user_id=saved.id))
        status = 422
    else:
        form, status = Form(_user_values(None)), 200
    return render_template(
        "device_accounting/portal/user_new.html", form=form, cost_centers=customer_cost_centers(customer_id)
    ), status


def _user_page(user: PrintUser, forms: dict[str, Form] | None = None, status: int = 200, new_pin: str | None = None):
    """The user's page: details, cards, PIN, password and quota; `forms` carries a refused section's input."""
    customer_id = customer_or_404()
    forms = forms or {}
    quota = db.session.scalar(sa.select(Quota).where(Quota.user_id == user.id))
    balance = quotas.current_balance(quota) if quota is not None else None
    return render_template(
        "device_accounting/portal/user.html",
        user=user,
        forms={
            "details": forms.get("details") or Form(_user_values(user)),
            "card": forms.get("card") or Form(),
            "pin": forms.get("pin") or Form(),
            "password": forms.get("password") or Form(),
        },
        cost_centers=customer_cost_centers(customer_id),
        quota=quota,
        balance=balance,
        new_pin=new_pin,
        pin_locked=user.pin_locked_until is not None and clock.as_utc(user.pin_locked_until) > utcnow(),
    ), status


def _after_read() -> None:
    """A page that showed a balance may have opened its new period (quotas.current_balance): keep it."""
    db.session.commit()


@bp.route(f"/users/<{ID}:user_id>", methods=("GET", "POST"))
@portal_view(ADMIN)
def user_page(user_id: int):
    user = _user_or_404(user_id)
    if request.method == "POST":
        saved, form = _save_user(user.customer_id, user)
        if saved is None:
            return _user_page(user, {"details": form}, 422)
        db.session.commit()
        _flash_saved(_("The details of %(name)s are saved.", name=saved.full_name or saved.username))
        return redirect(url_for(".user_page", user_id=user.id))
    page = _user_page(user)
    _after_read()
    return page


def _user_change(user: PrintUser, section: str, change: Callable[[], Any], success: str, fields: tuple[str, ...]):
    """Run one change of a user's page (a card, the PIN, the password): committed, or its errors beside its fields."""
    try:
        change()
    except ValidationError as exc:
        db.session.rollback()
        form = Form({name: request.form.get(name, "")[:100] for name in fields if "password" not in name})
        form.place(exc.errors, fields, {name: fields[0] for name in exc.errors if name not in fields})
        return _user_page(user, {section: form}, 422)
    db.session.commit()
    _flash_saved(success)
    return redirect(url_for(".user_page", user_id=user.id, _anchor=section))


@bp.route(f"/users/<{ID}:user_id>/cards", methods=("POST",))
@portal_view(ADMIN)
def card_add(user_id: int):
    user = _user_or_404(user_id)
    number = request.form.get("number", "").strip()[:100]
    return _user_change(
        user, "card", lambda: users.add_card(user, number), _("Card %(number)s added.", number=number), ("number",)
    )


@bp.route(f"/users/<{ID}:user_id>/cards/<{ID}:card_id>/disable", methods=("POST",))
@portal_view(ADMIN)
def card_disable(user_id: int, card_id: int):
    user = _user_or_404(user_id)
    card = _card_or_404(user, card_id)
    return _user_change(
        user,
        "card",
        lambda: users.disable_card(card),
        _("Card %(number)s is disabled: it no longer opens the devices.", number=card.number),
        ("number",),
    )


@bp.route(f"/users/<{ID}:user_id>/pin", methods=("POST",))
@portal_view(ADMIN)
def pin_set(user_id: int):
    user = _user_or_404(user_id)
    pin = request.form.get("pin", "").strip()[:40]
    return _user_change(user, "pin", lambda: users.set_pin(user, pin), _("The new PIN is set."), ("pin",))


@bp.route(f"/users/<{ID}:user_id>/pin/new", methods=("POST",))
@portal_view(ADMIN)
def pin_generate(user_id: int):
    """A forgotten PIN: a new random one, shown once on the page that answers (never stored, never in a cookie)."""
    user = _user_or_404(user_id)
    try:
        pin = users.generate_pin(user)
    except ValidationError as exc:
        db.session.rollback()
        form = Form()
        form.place(exc.errors, ("pin",), {name: "pin" for name in exc.errors})
        return _user_page(user, {"pin": form}, 422)
    db.session.commit()
    page, status = _user_page(user, new_pin=pin)
    response = make_response(page, status)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route(f"/users/<{ID}:user_id>/pin/clear", methods=("POST",))
@portal_view(ADMIN)
def pin_clear(user_id: int):
    user = _user_or_404(user_id)
    return _user_change(
        user, "pin", lambda: users.clear_pin(user), _("The PIN is removed: a new one can be set."), ("pin",)
    )


@bp.route(f"/users/<{ID}:user_id>/password", methods=("POST",))
@portal_view(ADMIN)
def password_set(user_id: int):
    user = _user_or_404(user_id)
    password = request.form.get("password", "")[:200]
    repeated = request.form.get("password_again", "")[:200]

    def change() -> None:
        if user.directory_user:
            raise ValidationError({"password": _("This user's password is checked against your directory.")})
        if password != repeated:
            raise ValidationError({"password_again": _("The two passwords differ.")})
        users.set_password(user, password)

    return _user_change(user, "password", change, _("The new password is set."), ("password", "password_again"))


# Quotas: a user's, or a shared cost center's

QUOTA_FIELDS = ("period", "amount", "mode", "rollover_cap", "overdraft", "warning_percent")


def _quota_values(quota: Quota | None) -> dict[str, Any]:
    if quota is None:
        return {"period": "monthly", "mode": "reset", "overdraft": amount_text(Decimal("0")), "warning_percent": "80"}
    return {
        "period": quota.period,
        "amount": amount_text(quota.amount),
        "mode": quota.mode,
        "rollover_cap": amount_text(quota.rollover_cap),
        "overdraft": amount_text(quota.overdraft),
        "warning_percent": str(quota.warning_percent),
    }


def _quota_data(values: dict[str, str]) -> dict[str, Any]:
    overdraft = typed_decimal(values["overdraft"])
    warning = typed_whole(values["warning_percent"])
    return {
        "period": values["period"],
        "amount": typed_decimal(values["amount"]),
        "mode": values["mode"],
        "rollover_cap": typed_decimal(values["rollover_cap"]) if values["mode"] == "rollover" else None,
        "overdraft": Decimal("0") if overdraft is None else overdraft,
        "warning_percent": 80 if warning is None else warning,
    }


def _quota_page(holder: dict[str, int], holder_name: str, quota: Quota | None, back: str):
    """GET: the quota form of `holder` ({"user_id": ...} or {"cost_center_id": ...}); POST: save it through
    quotas.save_quota, or show its errors and write nothing."""
    customer_id = customer_or_404()
    status = 200
    if request.method == "POST":
        form = Form({name: request.form.get(name, "").strip()[:40] for name in QUOTA_FIELDS})
        try:
            quotas.save_quota(customer_id, {**holder, **_quota_data(form.values)}, quota)
        except ValidationError as exc:
            db.session.rollback()
            form.place(exc.errors, QUOTA_FIELDS)
            status = 422
        else:
            db.session.commit()
            _flash_saved(_("The quota is saved."))
            return redirect(back)
    else:
        form = Form(_quota_values(quota))
    balance = quotas.current_balance(quota) if quota is not None else None
    page = render_template(
        "device_accounting/portal/quota.html",
        form=form,
        quota=quota,
        balance=balance,
        holder_name=holder_name,
        shared="cost_center_id" in holder,
        back=back,
        periods=QUOTA_PERIODS,
        modes=QUOTA_MODES,
    )
    if status == 200:
        _after_read()
    return page, status


@bp.route(f"/users/<{ID}:user_id>/quota", methods=("GET", "POST"))
@portal_view(ADMIN)
def user_quota(user_id: int):
    user = _user_or_404(user_id)
    quota = db.session.scalar(sa.select(Quota).where(Quota.user_id == user.id))
    return _quota_page({"user_id": user.id}, str(user), quota, url_for(".user_page", user_id=user.id))


@bp.route(f"/cost-centers/<{ID}:cost_center_id>/quota", methods=("GET", "POST"))
@portal_view(ADMIN)
def cost_center_quota(cost_center_id: int):
    center = _cost_center_or_404(cost_center_id)
    if not center.shared:
        abort(404)
    quota = db.session.scalar(sa.select(Quota).where(Quota.cost_center_id == center.id))
    back = url_for(".cost_center_page", cost_center_id=center.id)
    return _quota_page({"cost_center_id": center.id}, center.path, quota, back)


# Cost centers

CENTER_FIELDS = ("name", "code", "parent_id", "shared", "active")


def _center_values(center: CostCenter | None, parent_id: int | None = None) -> dict[str, Any]:
    if center is None:
        return {"parent_id": parent_id, "active": True, "shared": False}
    return {
        "name": center.name,
        "code": center.code or "",
        "parent_id": center.parent_id,
        "shared": center.shared,
        "active": center.active,
    }


def _save_center(customer_id: int, center: CostCenter | None) -> tuple[CostCenter | None, Form]:
    posted = request.form
    form = Form(
        {
            "name": posted.get("name", "").strip()[:200],
            "code": posted.get("code", "").strip()[:100],
            "parent_id": typed_id(posted.get("parent_id")),
            "shared": posted.get("shared") == "1",
            "active": posted.get("active") == "1",
        }
    )
    if _unknown_ids([form.values["parent_id"]], customer_cost_centers(customer_id)):
        form.errors["parent_id"] = _("Choose one of your cost centers.")
        return None, form
    data = {**form.values, "code": form.values["code"] or None}  # privileges are the back office's: left as they are
    try:
        saved = cost_centers.save_cost_center(customer_id, data, center)
    except ValidationError as exc:
        db.session.rollback()
        form.place(exc.errors, CENTER_FIELDS)
        return None, form
    return saved, form


def _center_tree(centers: list[CostCenter]) -> list[tuple[CostCenter, int]]:
    """The cost centers in tree order, each with its depth (a parent missing from the list makes a root)."""
    children: dict[int | None, list[CostCenter]] = {}
    ids = {center.id for center in centers}
    for center in centers:
        children.setdefault(center.parent_id if center.parent_id in ids else None, []).append(center)
    ordered: list[tuple[CostCenter, int]] = []

    def walk(parent: int | None, depth: int) -> None:
        for center in sorted(children.get(parent, []), key=lambda c: c.name.casefold()):
            ordered.append((center, depth))
            walk(center.id, depth + 1)

    walk(None, 0)
    return ordered


@bp.route("/cost-centers/")
@portal_view(ADMIN)
def cost_centers_list():
    centers = customer_cost_centers(customer_or_404())
    shared = dict(
        db.session.execute(
            sa.select(Quota.cost_center_id, Balance.balance)
            .join(Balance, Balance.quota_id == Quota.id)
            .where(Quota.cost_center_id.in_([center.id for center in centers]))
        ).all()
    )
    return render_template("device_accounting/portal/cost_centers.html", tree=_center_tree(centers), balances=shared)


def _center_form_page(center: CostCenter | None, form: Form, status: int):
    customer_id = customer_or_404()
    centers = customer_cost_centers(customer_id)
    excluded = set(cost_centers.subtree_ids(center.id)) if center is not None else set()
    parents = [c for c in centers if c.id not in excluded]
    return render_template(
        "device_accounting/portal/cost_center.html", center=center, form=form, parents=parents
    ), status


@bp.route("/cost-centers/new", methods=("GET", "POST"))
@portal_view(ADMIN)
def cost_center_new():
    customer_id = customer_or_404()
    if request.method == "POST":
        saved, form = _save_center(customer_id, None)
        if saved is not None:
            db.session.commit()
            _flash_saved(_("Cost center %(name)s created.", name=saved.path))
            return redirect(url_for(".cost_centers_list"))
        return _center_form_page(None, form, 422)
    parent = typed_id(request.args.get("parent"))
    if parent is not None:
        parent = _cost_center_or_404(parent).id
    return _center_form_page(None, Form(_center_values(None, parent)), 200)


@bp.route(f"/cost-centers/<{ID}:cost_center_id>", methods=("GET", "POST"))
@portal_view(ADMIN)
def cost_center_page(cost_center_id: int):
    center = _cost_center_or_404(cost_center_id)
    if request.method == "POST":
        saved, form = _save_center(center.customer_id, center)
        if saved is not None:
            db.session.commit()
            _flash_saved(_("Cost center %(name)s saved.", name=saved.path))
            return redirect(url_for(".cost_centers_list"))
        return _center_form_page(center, form, 422)
    return _center_form_page(center, Form(_center_values(center)), 200)


# Reports


@dataclass
class ReportRange:
    """A report's dates, grouping and filters as chosen in the query string, and what was wrong with them."""

    since: dt.date
    until: dt.date
    group_by: str = "user"
    filters: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def args(self, **extra: Any) -> dict[str, Any]:
        """The query string of this report (for its downloads and its other groupings)."""
        values = {"since": self.since.isoformat(), "until": self.until.isoformat(), "group_by": self.group_by}
        return {**values, **self.filters, **extra}


def report_range(args: Any) -> ReportRange:
    """The report's dates, grouping and filters from the query string; this month so far when no dates are given.
    A filter naming another customer's user or cost center answers 404."""
    today = clock.today()
    chosen = ReportRange(today.replace(day=1), today)
    for name in ("since", "until"):
        text = (args.get(name) or "").strip()
        if not text:
            continue
        try:
            setattr(chosen, name, dt.date.fromisoformat(text[:10]))
        except ValueError:
            chosen.errors[name] = _("Not a date: %(value)s", value=text[:20])
    if not chosen.errors and chosen.until < chosen.since:
        chosen.errors["until"] = _("The last day must be on or after the first day.")
    group_by = args.get("group_by") or "user"
    if group_by in reports.GROUP_BYS:
        chosen.group_by = group_by
    else:
        chosen.errors["group_by"] = _("Choose how to group the report.")
    for name, find in (("user_id", _user_or_404), ("cost_center_id", _cost_center_or_404)):
        wanted = typed_id(args.get(name))
        if wanted is not None:
            chosen.filters[name] = find(wanted).id
    return chosen


def _subscribed() -> bool:
    return db.session.get(ReportSubscription, current_user.id) is not None


@bp.route("/reports/")
@portal_view(ADMIN)
def reports_page():
    customer_id = customer_or_404()
    chosen = report_range(request.args)
    today = clock.today()
    last_month_end = today.replace(day=1) - dt.timedelta(days=1)
    shortcuts = [
        (_("This month"), today.replace(day=1), today),
        (_("Last month"), last_month_end.replace(day=1), last_month_end),
        (_("This year"), today.replace(month=1, day=1), today),
    ]
    values: dict[str, Any] = {
        "chosen": chosen,
        "shortcuts": shortcuts,
        "subscribed": _subscribed(),
        "people": _people(),
        "cost_centers": customer_cost_centers(customer_id),
    }
    if chosen.errors:
        return render_template("device_accounting/portal/reports.html", **values), 422
    try:
        summary = reports.summary(customer_id, chosen.since, chosen.until, **chosen.filters)
        rows = reports.usage(customer_id, chosen.group_by, chosen.since, chosen.until, **chosen.filters)
    except ValidationError as exc:
        chosen.errors.update(exc.errors)
        return render_template("device_accounting/portal/reports.html", **values), 422
    return render_template(
        "device_accounting/portal/reports.html",
        report=summary,
        rows=rows,
        group_by=chosen.group_by,
        **values,
    )


def _people() -> list[PrintUser]:
    query = customer_scoped(sa.select(PrintUser), PrintUser.customer_id)
    return list(db.session.scalars(query.order_by(PrintUser.username_key)))


def _report_download(render: Callable[..., Any], mimetype: str, extension: str) -> Response:
    customer_id = customer_or_404()
    chosen = report_range(request.args)
    if chosen.errors:
        abort(404)
    content = render(customer_id, chosen.group_by, chosen.since, chosen.until, **chosen.filters)
    response = Response(content, mimetype=mimetype)
    name = reports.export_filename(chosen.since, chosen.until, extension)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.route("/reports/usage.csv")
@portal_view(ADMIN)
def report_csv():
    return _report_download(reports.usage_csv, "text/csv; charset=utf-8", "csv")


@bp.route("/reports/usage.pdf")
@portal_view(ADMIN)
def report_pdf():
    return _report_download(reports.usage_pdf, "application/pdf", "pdf")


@bp.route("/reports/subscription", methods=("POST",))
@portal_view(ADMIN)
def report_subscription():
    customer_id = customer_or_404()
    subscription = db.session.get(ReportSubscription, current_user.id)
    if request.form.get("subscribe") == "1":
        if subscription is None:
            db.session.add(ReportSubscription(user_id=current_user.id, customer_id=customer_id))
        message = _("Each month's report will be emailed to %(email)s on the 1st.", email=current_user.email)
    else:
        if subscription is not None:
            db.session.delete(subscription)
        message = _("The monthly report will no longer be emailed to you.")
    db.session.commit()
    _flash_saved(message)
    return redirect(url_for(".reports_page"))


# Transactions and refunds


@bp.route("/transactions/")
@portal_view(ADMIN)
def transactions():
    customer_id = customer_or_404()
    chosen = report_range(request.args)
    wanted_user = typed_id(request.args.get("user"))
    user = _user_or_404(wanted_user) if wanted_user is not None else None
    query = customer_scoped(sa.select(Transaction), Transaction.customer_id).options(
        selectinload(Transaction.user), _with_device()
    )
    if user is not None:
        query = query.where(Transaction.user_id == user.id)
    status = 200
    if chosen.errors:
        status = 422
        rows: list[Transaction] = []
    else:
        query = query.where(
            Transaction.ended_at >= clock.day_start(chosen.since),
            Transaction.ended_at < clock.day_start(chosen.until + dt.timedelta(days=1)),
        )
        rows = list(
            db.session.scalars(query.order_by(Transaction.ended_at.desc(), Transaction.id.desc()).limit(LIST_LIMIT + 1))
        )
    customer_cost_centers(customer_id)
    return render_template(
        "device_accounting/portal/transactions.html",
        transactions=rows[:LIST_LIMIT],
        more=len(rows) > LIST_LIMIT,
        chosen=chosen,
        people=_people(),
        wanted=user,
    ), status


def _with_device() -> Any:
    """A job's device with what its label (serial · model) reads, for lists of jobs."""
    return selectinload(Transaction.device).selectinload(Device.model).selectinload(DeviceModel.manufacturer)


REFUND_FIELDS = ("amount", "reason")


@bp.route(f"/transactions/<{ID}:transaction_id>/refund", methods=("GET", "POST"))
@portal_view(ADMIN)
def refund(transaction_id: int):
    transaction = _transaction_or_404(transaction_id)
    refundable = operations.refundable(transaction)
    status = 200
    if request.method == "POST":
        form = Form({name: request.form.get(name, "").strip()[:500] for name in REFUND_FIELDS})
        amount = typed_decimal(form.values["amount"])
        try:
            operations.refund(transaction, amount, form.values["reason"], current_user._get_current_object())
        except ValidationError as exc:
            db.session.rollback()
            form.place(exc.errors, REFUND_FIELDS)
            status = 422
        else:
            db.session.commit()
            _flash_saved(_("%(amount)s refunded.", amount=money4(amount)))
            return redirect(url_for(".transactions", user=transaction.user_id))
    else:
        form = Form({"amount": amount_text(refundable), "reason": ""})
    earlier = db.session.scalars(
        sa.select(Refund).where(Refund.transaction_id == transaction.id).order_by(Refund.created_at)
    ).all()
    customer_cost_centers(transaction.customer_id)
    return render_template(
        "device_accounting/portal/refund.html",
        transaction=transaction,
        form=form,
        refundable=refundable,
        earlier=earlier,
    ), status


# My print jobs (any customer user: the print user with their email)


def my_print_user() -> PrintUser | None:
    """The print user of the portal user's customer whose email is theirs (the active one first)."""
    email = (current_user.email or "").strip().lower()
    if not email:
        return None
    query = customer_scoped(sa.select(PrintUser), PrintUser.customer_id).where(sa.func.lower(PrintUser.email) == email)
    return db.session.scalars(query.order_by(PrintUser.active.desc(), PrintUser.id)).first()


def _held_of(user: PrintUser) -> list[HeldJob]:
    """The user's held jobs still waiting for their release, the soonest to expire first."""
    return list(
        db.session.scalars(
            customer_scoped(sa.select(HeldJob), HeldJob.customer_id)
            .where(HeldJob.user_id == user.id, HeldJob.state == "held", HeldJob.expires_at > utcnow())
            .order_by(HeldJob.expires_at, HeldJob.id)
            .limit(MY_JOBS_LIMIT)
        )
    )


def _colleagues(user: PrintUser) -> list[PrintUser]:
    """The active print users of the user's customer who could release their jobs, by name."""
    found = db.session.scalars(
        customer_scoped(sa.select(PrintUser), PrintUser.customer_id).where(
            PrintUser.customer_id == user.customer_id, PrintUser.active.is_(True), PrintUser.id != user.id
        )
    ).all()
    return sorted(found, key=lambda person: (person.full_name or person.username).casefold())


def _delegations(user: PrintUser) -> tuple[set[int], list[str]]:
    """Who may release this user's jobs (their ids), and whose jobs this user may release (their names)."""
    allowed = set(db.session.scalars(sa.select(PrintDelegate.delegate_id).where(PrintDelegate.owner_id == user.id)))
    owners = db.session.scalars(
        sa.select(PrintUser)
        .join(PrintDelegate, PrintDelegate.owner_id == PrintUser.id)
        .where(PrintDelegate.delegate_id == user.id, PrintUser.customer_id == user.customer_id)
    ).all()
    return allowed, sorted((person.full_name or person.username for person in owners), key=str.casefold)


def _mine_or_404() -> PrintUser:
    user = my_print_user()
    if user is None:
        abort(404)
    return user


@bp.route("/my/")
@portal_view(MINE)
def my_jobs():
    customer_or_404()
    user = my_print_user()
    quota = balance = None
    jobs: list[Transaction] = []
    held: list[HeldJob] = []
    colleagues: list[PrintUser] = []
    allowed: set[int] = set()
    owners: list[str] = []
    if user is not None:
        held = _held_of(user)
        colleagues = _colleagues(user)
        allowed, owners = _delegations(user)
        quota = db.session.scalar(sa.select(Quota).where(Quota.user_id == user.id))
        balance = quotas.current_balance(quota) if quota is not None else None
        jobs = list(
            db.session.scalars(
                sa.select(Transaction)
                .where(Transaction.user_id == user.id, Transaction.customer_id == user.customer_id)
                .options(_with_device())
                .order_by(Transaction.ended_at.desc(), Transaction.id.desc())
                .limit(MY_JOBS_LIMIT)
            )
        )
        customer_cost_centers(user.customer_id)
    page = render_template(
        "device_accounting/portal/my_jobs.html",
        print_user=user,
        quota=quota,
        balance=balance,
        jobs=jobs,
        held=held,
        colleagues=colleagues,
        allowed=allowed,
        owners=owners,
    )
    _after_read()
    return page


@bp.route(f"/my/held/<{ID}:job_id>/delete", methods=("POST",))
@portal_view(MINE)
def held_delete(job_id: int):
    """Delete one of the user's own held jobs; someone else's, or another customer's, answers 404."""
    job = get_scoped_or_404(HeldJob, job_id, HeldJob.customer_id)
    user = _mine_or_404()
    if job.user_id != user.id:
        abort(404)
    title = job.title
    try:
        held_jobs.delete_held_job(job.id, user)
    except ValidationError as exc:
        db.session.rollback()
        flash(exc.messages(), "error")
    else:
        db.session.commit()
        if title:
            _flash_saved(_("%(title)s is deleted: it will not be printed.", title=title))
        else:
            _flash_saved(_("The held job is deleted: it will not be printed."))
    return redirect(url_for(".my_jobs"))


@bp.route("/my/delegates", methods=("POST",))
@portal_view(MINE)
def my_delegates():
    """Who may release the user's held jobs at a device (colleagues of the same customer)."""
    customer_or_404()
    user = _mine_or_404()
    wanted = [ident for text in request.form.getlist("delegate") if (ident := typed_id(text)) is not None]
    try:
        held_jobs.set_delegates(user, wanted)
    except ValidationError as exc:
        db.session.rollback()
        flash(exc.messages(), "error")
    else:
        db.session.commit()
        _flash_saved(_("Saved: who may release your held jobs."))
    return redirect(url_for(".my_jobs"))
