"""Privileges: what a print user may do at a device (the user's override, else the cost center's tree, else all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _

from core.labels import enum_label
from modules.device_accounting.models import FUNCTIONS, SCAN_FUNCTIONS, CostCenter, PrintUser
from modules.device_accounting.pricing import FUNCTION_ENUM


@dataclass(frozen=True)
class Privileges:
    """The privileges in force: functions allowed, colour, maximum sides per job (None: no limit), duplex forced."""

    functions: tuple[str, ...]
    color_allowed: bool
    max_sides: int | None
    duplex_forced: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "functions": list(self.functions),
            "color_allowed": self.color_allowed,
            "max_sides": self.max_sides,
            "duplex_forced": self.duplex_forced,
        }


def _chain(user: PrintUser, cost_center: CostCenter | None) -> list[Any]:
    """Where each privilege is looked up, in order: the user, then the cost center and its parents up to the root."""
    chain: list[Any] = [user]
    node, seen = cost_center if cost_center is not None else user.default_cost_center, set()
    while node is not None and node.id not in seen:
        seen.add(node.id)
        chain.append(node)
        node = node.parent
    return chain


def _first(chain: list[Any], name: str, default: Any) -> Any:
    for holder in chain:
        value = getattr(holder, name)
        if value is not None:
            return value
    return default


def effective_privileges(user: PrintUser, cost_center: CostCenter | None = None) -> Privileges:
    """Each privilege from the first of: the user's own value, the cost center's (the job's, else the user's
    default), its parent's and so on to the root; where nobody sets one, everything is allowed."""
    chain = _chain(user, cost_center)
    functions = _first(chain, "allowed_functions", None)
    allowed = FUNCTIONS if functions is None else tuple(f for f in FUNCTIONS if f in set(functions))
    return Privileges(
        functions=allowed,
        color_allowed=bool(_first(chain, "color_allowed", True)),
        max_sides=_first(chain, "max_sides", None),
        duplex_forced=bool(_first(chain, "duplex_forced", False)),
    )


def refusal(
    privileges: Privileges, function: str, sides_bw: int, sides_color: int, duplex: bool
) -> tuple[str, str, int | None] | None:
    """Why a job is outside the privileges, as (reason code, message, sides allowed or None); None when it is not.

    Colour and forced duplex concern what is printed (not scan, email, FTP); a one-sided job need not be duplex.
    """
    sides = sides_bw + sides_color
    if function not in privileges.functions:
        label = enum_label(FUNCTION_ENUM, function)
        return "function_not_allowed", _("You may not use %(function)s on this device.", function=label), None
    printed = function not in SCAN_FUNCTIONS
    if printed and sides_color and not privileges.color_allowed:
        return "color_not_allowed", _("You may print and copy in black and white only."), None
    if privileges.max_sides is not None and sides > privileges.max_sides:
        return (
            "too_many_sides",
            _("A job may have at most %(max)d sides.", max=privileges.max_sides),
            privileges.max_sides,
        )
    if printed and privileges.duplex_forced and not duplex and sides > 1:
        return "duplex_required", _("Print on both sides of the sheet (duplex)."), None
    return None
