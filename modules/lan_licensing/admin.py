"""The Licence page: what the licence grants and what is used, uploading a licence, ending another staff session."""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from core import labels
from core.admin import SecuredView
from core.auth import sessions as login_sessions
from core.context import ModuleContext
from core.db import db
from core.models import User
from core.permissions import has_permission
from modules.lan_licensing import installation, quantities, seats, state, tiers
from modules.lan_licensing import licence as lic
from modules.lan_licensing.models import InstalledLicence

MANAGE = "modules.manage"  # dealer admins: install a licence, end another staff session
MAX_UPLOAD = 64 * 1024

PHASE_LABELS = {
    "evaluation": _l("Evaluation"),
    "evaluation_over": _l("Evaluation over"),
    "valid": _l("Valid"),
    "expiring": _l("Expiring soon"),
    "grace": _l("Expired, in its grace period"),
    "expired": _l("Expired: read-only"),
    "invalid": _l("Not in force"),
}
TABLES = {
    "lan_licensing_licence": _l("Licences"),
    "lan_licensing_installation": _l("Installation"),
    "lan_licensing_reading_count": _l("Readings counted for the licence"),
}
AUDIT_ACTIONS = {"licence_installed": _l("Licence installed"), "session_ended": _l("Staff session ended")}


def _users(held: list[seats.Seat]) -> dict[int, User]:
    ids = {seat.user_id for seat in held}
    return {user.id: user for user in db.session.scalars(db.select(User).where(User.id.in_(ids)))} if ids else {}


class LicenceView(SecuredView):
    """Every staff member sees the licence; dealer admins install one and end sessions."""

    permission = "admin.access"

    @expose("/")
    def index(self):
        now_state = state.current()
        held = seats.held()
        used = tiers.usage(now_state)
        history = db.session.scalars(db.select(InstalledLicence).order_by(InstalledLicence.id.desc()).limit(10)).all()
        return self.render(
            "lan_licensing/admin/licence.html",
            now_state=now_state,
            phase_label=PHASE_LABELS[now_state.phase],
            licence=now_state.licence,
            usage=used,
            devices=quantities.in_use(used).get("devices"),
            seats=held,
            row=installation.get(),
            history=history,
            can_manage=has_permission(current_user, MANAGE),
            users=_users(held),
            current_session_id=getattr(login_sessions.current(), "id", None),
        )

    @expose("/install", methods=("POST",))
    def install(self):
        if not has_permission(current_user, MANAGE):
            abort(403)
        upload = request.files.get("file")
        text = upload.read(MAX_UPLOAD).decode("utf-8", "replace") if upload and upload.filename else ""
        text = text or request.form.get("text", "")
        try:
            installed = installation.install(text, current_user.id)
        except lic.LicenceError as error:
            db.session.rollback()
            flash(_("Licence refused: %(reason)s", reason=error.message), "error")
            return redirect(url_for(".index"))
        db.session.commit()
        flash(
            _(
                "Licence %(licence)s installed. Modules it adds or removes change at the next start of the web "
                "server and the workers.",
                licence=installed.licence_id,
            ),
            "success",
        )
        return redirect(url_for(".index"))

    @expose("/sessions/<int:session_id>/end", methods=("POST",))
    def end_session(self, session_id: int):
        if not has_permission(current_user, MANAGE):
            abort(403)
        self.run_action(lambda: seats.end_session(session_id), _("The session is ended; its seat is free."))
        return redirect(url_for(".index"))


def register_labels(app) -> None:
    labels.register_enum(app, "audit.table", TABLES)
    labels.register_enum(app, "audit.action", AUDIT_ACTIONS)
    labels.register_enum(
        app, "job.func", {"modules.lan_licensing.jobs:watch_licence": _l("Check the licence and the clock")}
    )


def register(ctx: ModuleContext) -> None:
    register_labels(ctx.app)
    ctx.add_admin_view(
        LicenceView(name=_l("Licence"), endpoint="lan_licensing_licence", url="/admin/licence", category=_l("Settings"))
    )
