"""Device accounting on other records' pages and on the dashboard: a device's last jobs and held jobs, a customer's
print users, cost centers, this month's usage, held jobs and print servers; today's jobs, the users over quota and the
held jobs waiting. Each a link to the filtered list."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from flask import url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy.orm import selectinload

from core import clock
from core.db import db
from core.extension_points import DashboardCard, RecordLink, RecordPanel
from core.labels import enum_label, local_datetime, number, record_label, record_url
from core.models import Partner
from core.permissions import has_permission
from modules.device_accounting import operations, reports
from modules.device_accounting.admin import VIEW, load_trees
from modules.device_accounting.admin_held import held_age, held_title
from modules.device_accounting.admin_money import money, money_total
from modules.device_accounting.models import (
    Balance,
    CostCenter,
    HeldJob,
    PrintServer,
    PrintUser,
    Quota,
    Transaction,
)
from modules.rentals.models import Device

SHOWN = 10


def _job_link(tx: Transaction) -> RecordLink:
    sides = tx.sides_bw + tx.sides_color
    who = record_label(tx.user) if tx.user is not None else _("nobody identified")
    detail = " · ".join(
        (
            enum_label("device_accounting.function", tx.function),
            who,
            ngettext("%(sides)s side", "%(sides)s sides", sides, sides=number(sides)),
            money(tx.cost),
        )
    )
    return RecordLink(
        local_datetime(tx.ended_at), url_for("device_accounting_transaction.details_view", id=tx.id), detail
    )


def _held_link(job: HeldJob) -> RecordLink:
    """A held job as a panel row: its owner, then what and how long it has waited."""
    detail = " · ".join(
        (
            held_title(job),
            ngettext("%(pages)s page", "%(pages)s pages", job.pages, pages=number(job.pages)),
            held_age(job),
        )
    )
    return RecordLink(record_label(job.user), url_for("device_accounting_held_job.details_view", id=job.id), detail)


def _waiting(customer_id: int):
    """The customer's held jobs waiting for their release, newest first."""
    return (
        sa.select(HeldJob)
        .where(HeldJob.customer_id == customer_id, HeldJob.state == "held")
        .options(selectinload(HeldJob.user))
        .order_by(HeldJob.submitted_at.desc(), HeldJob.id.desc())
    )


class DeviceAccountingPanels:
    """Device -> its last jobs, the held jobs its users may release there and those released there; customer -> its
    print users, cost centers, this month's usage, held jobs waiting and print servers."""

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        if not has_permission(current_user, VIEW):
            return []
        if kind == "device":
            return self._device(record_id)
        if kind == "customer":
            return self._customer(record_id)
        return []

    def _device(self, device_id: int) -> list[RecordPanel]:
        device = db.session.get(Device, device_id)
        if device is None:
            return []
        jobs = db.session.scalars(
            sa.select(Transaction)
            .where(Transaction.device_id == device_id)
            .options(selectinload(Transaction.user))
            .order_by(Transaction.ended_at.desc(), Transaction.id.desc())
            .limit(SHOWN)
        ).all()
        return [
            RecordPanel(
                _("Last jobs (device accounting)"),
                tuple(_job_link(tx) for tx in jobs),
                more=RecordLink(
                    _("All jobs of %(serial)s", serial=device.serial),
                    url_for("device_accounting_transaction.index_view", device_id=device_id),
                ),
                empty=_("No jobs recorded at this device."),
            ),
            *self._device_held(device),
        ]

    def _device_held(self, device: Device) -> list[RecordPanel]:
        customer_id = operations.customer_of_device(device.id, clock.now())
        panels = []
        if customer_id is not None:
            waiting = db.session.scalars(_waiting(customer_id).limit(SHOWN)).all()
            panels.append(
                RecordPanel(
                    _("Held jobs that may be released here"),
                    tuple(_held_link(job) for job in waiting),
                    more=RecordLink(
                        _("All held jobs waiting at the customer"),
                        url_for("device_accounting_held_job.index_view", customer_id=customer_id, state="held"),
                    ),
                    empty=_("No held jobs waiting."),
                )
            )
        released = db.session.scalars(
            sa.select(HeldJob)
            .where(HeldJob.released_device_id == device.id)
            .options(selectinload(HeldJob.user))
            .order_by(HeldJob.ended_at.desc(), HeldJob.id.desc())
            .limit(SHOWN)
        ).all()
        panels.append(
            RecordPanel(
                _("Held jobs released here"),
                tuple(_held_link(job) for job in released),
                more=RecordLink(
                    _("All held jobs released at %(serial)s", serial=device.serial),
                    url_for("device_accounting_held_job.index_view", device_id=device.id),
                ),
                empty=_("No held jobs released at this device."),
            )
        )
        return panels

    def _customer(self, customer_id: int) -> list[RecordPanel]:
        customer = db.session.get(Partner, customer_id)
        if customer is None:
            return []
        load_trees({customer_id})
        users = db.session.scalars(
            sa.select(PrintUser)
            .where(PrintUser.customer_id == customer_id)
            .options(selectinload(PrintUser.cards))
            .order_by(PrintUser.username_key)
            .limit(SHOWN)
        ).all()
        user_count = db.session.scalar(
            sa.select(sa.func.count()).select_from(PrintUser).where(PrintUser.customer_id == customer_id)
        )
        centers = db.session.scalars(sa.select(CostCenter).where(CostCenter.customer_id == customer_id)).all()
        centers = sorted(centers, key=lambda center: center.path.casefold())
        today = clock.today()
        month = reports.summary(customer_id, today.replace(day=1), today)
        totals = month["totals"]
        report_url = url_for("device_accounting_usage.index", customer_id=customer_id)
        jobs_url = url_for(
            "device_accounting_transaction.index_view",
            customer_id=customer_id,
            since=today.replace(day=1).isoformat(),
            until=today.isoformat(),
        )
        usage = (
            RecordLink(_("Device jobs"), jobs_url, number(totals["jobs"])),
            RecordLink(_("Black and white sides"), report_url, number(totals["sides_bw"])),
            RecordLink(_("Colour sides"), report_url, number(totals["sides_color"])),
            RecordLink(_("Cost"), report_url, money_total(totals["cost"])),
        )
        return [
            RecordPanel(
                _("Print users"),
                tuple(
                    RecordLink(
                        record_label(user),
                        record_url(user) or "",
                        ", ".join(card.number for card in user.cards if card.active),
                    )
                    for user in users
                ),
                more=RecordLink(
                    _("All %(count)s print users of %(customer)s", count=number(user_count), customer=customer.name),
                    url_for("device_accounting_user.index_view", search=customer.name),
                ),
                empty=_("No print users yet."),
            ),
            RecordPanel(
                _("Cost centers"),
                tuple(
                    RecordLink(
                        center.path,
                        record_url(center) or "",
                        _("shared account") if center.shared else "",
                    )
                    for center in centers[:SHOWN]
                ),
                more=RecordLink(
                    _("All cost centers of %(customer)s", customer=customer.name),
                    url_for("device_accounting_cost_center.index_view", search=customer.name),
                ),
                empty=_("No cost centers yet."),
            ),
            RecordPanel(
                _("Usage this month"),
                usage if totals["jobs"] else (),
                more=RecordLink(_("Usage report of %(customer)s", customer=customer.name), report_url),
                empty=_("No jobs this month."),
            ),
            *self._customer_held(customer),
        ]

    def _customer_held(self, customer: Partner) -> list[RecordPanel]:
        waiting = db.session.scalars(_waiting(customer.id).limit(SHOWN)).all()
        servers = db.session.scalars(
            sa.select(PrintServer).where(PrintServer.customer_id == customer.id).order_by(PrintServer.name)
        ).all()
        return [
            RecordPanel(
                _("Held print jobs waiting"),
                tuple(_held_link(job) for job in waiting),
                more=RecordLink(
                    _("All held jobs of %(customer)s", customer=customer.name),
                    url_for("device_accounting_held_job.index_view", customer_id=customer.id),
                ),
                empty=_("No held jobs waiting."),
            ),
            RecordPanel(
                _("Print servers"),
                tuple(
                    RecordLink(
                        server.name,
                        record_url(server) or "",
                        (
                            _("last seen %(moment)s", moment=local_datetime(server.last_seen_at))
                            if server.last_seen_at
                            else _("never seen")
                        )
                        + ("" if server.active else " · " + _("inactive")),
                    )
                    for server in servers
                ),
                more=RecordLink(
                    _("All print servers"), url_for("device_accounting_print_server.index_view", search=customer.name)
                ),
                empty=_("No print servers."),
            ),
        ]


class DeviceAccountingDashboard:
    """Today's jobs at every device, the print users over their quota (spending into the overdraft), and the held
    print jobs waiting for their release."""

    def dashboard_cards(self) -> list[DashboardCard]:
        if not has_permission(current_user, VIEW):
            return []
        today = clock.today()
        start, end = clock.day_start(today), clock.day_start(today + dt.timedelta(days=1))
        jobs = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Transaction)
            .where(Transaction.ended_at >= start, Transaction.ended_at < end)
        )
        over = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(Quota)
            .join(Balance, Balance.quota_id == Quota.id)
            .where(Quota.user_id.is_not(None), Balance.balance < 0)
        )
        waiting = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(HeldJob)
            .where(HeldJob.state == "held", HeldJob.expires_at > clock.now())
        )
        return [
            DashboardCard(
                _("Device jobs today"),
                number(jobs or 0),
                url_for("device_accounting_transaction.index_view", since=today.isoformat(), until=today.isoformat()),
            ),
            DashboardCard(
                _("Print users over quota"),
                number(over or 0),
                url_for("device_accounting_quota.index_view", over=1),
            ),
            DashboardCard(
                _("Held print jobs waiting"),
                number(waiting or 0),
                url_for("device_accounting_held_job.index_view", state="held"),
            ),
        ]
