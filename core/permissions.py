"""Roles and what each may do: the one place every page, admin view, API route and job asks."""

from __future__ import annotations

from typing import Any

STAFF_ROLES = ("dealer_admin", "back_office", "technician")
CUSTOMER_ROLES = ("customer_admin", "customer_user")
ROLES = STAFF_ROLES + CUSTOMER_ROLES

_STAFF_READ = {
    "admin.access",
    "partners.view",
    "devices.view",
    "contracts.view",
    "readings.view",
    "print_accounting.view",
    "inventory.view",
}
PERMISSIONS: dict[str, set[str]] = {
    "dealer_admin": _STAFF_READ
    | {
        "modules.manage",
        "settings.manage",
        "company.manage",
        "users.manage",
        "partners.edit",
        "devices.edit",
        "contracts.edit",
        "readings.edit",
        "billing.manage",
        "jobs.manage",
        "outbox.view",
        "audit.view",
        "print_accounting.edit",
        "inventory.edit",
        "inventory.van",
    },
    "back_office": _STAFF_READ
    | {
        "users.manage",
        "partners.edit",
        "contracts.edit",
        "readings.edit",
        "billing.manage",
        "jobs.manage",
        "outbox.view",
        "print_accounting.edit",
        "inventory.edit",
        "inventory.van",
    },
    # `inventory.van`: their own van's page and moves from/to their van (dealer_admin and back_office: any van).
    "technician": _STAFF_READ | {"devices.edit", "readings.edit", "inventory.van"},
    "customer_admin": {
        "portal.access",
        "portal.manage_users",
        "portal.invoices",
        "portal.readings",
        # Print users, cards, PINs, quotas and cost centers of their company, and its usage reports.
        "portal.print_accounting",
        "portal.my_jobs",
    },
    # `portal.my_jobs`: the print user with the portal user's email sees their own jobs and balance.
    "customer_user": {"portal.access", "portal.readings", "portal.my_jobs"},
}


def has_permission(user: Any, permission: str) -> bool:
    """True when an authenticated, active user's role grants `permission`."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "active", False):
        return False
    return permission in PERMISSIONS.get(user.role, set())


def is_staff(user: Any) -> bool:
    return getattr(user, "role", None) in STAFF_ROLES


def customer_scope(user: Any) -> int | None:
    """The partner a customer user is confined to; None for staff (who see every customer)."""
    return user.customer_id if getattr(user, "role", None) in CUSTOMER_ROLES else None
