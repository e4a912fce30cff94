"""Licensed quantities other modules measure (core.extension_points.LICENCE_USAGE): device_accounting's devices."""

from __future__ import annotations

from core.extension_points import LICENCE_USAGE, LicenceUsage, implementations
from modules.lan_licensing import tiers


def in_use(used: tiers.Usage) -> dict[str, LicenceUsage]:
    """Each quantity's use in the licence year of `used`, by quantity ("devices"); absent when no module measures it."""
    found: dict[str, LicenceUsage] = {}
    for provider in implementations(LICENCE_USAGE):
        for item in provider.licence_usage(used.year_start, used.year_end):
            known = found.get(item.quantity)
            found[item.quantity] = item if known is None else LicenceUsage(item.quantity, known.used + item.used)
    return found
