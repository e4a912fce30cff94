"""The licence gate hook: which modules the dealer's licence entitles.

A module whose manifest names a `licence_gate` ("gate:entitled_features", relative to the module package)
provides it; lan_licensing does. Without such a module every module is entitled.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from flask import Flask

from core.loader import Manifest


def entitlement_checker(
    app: Flask, manifests: dict[str, Manifest], requested: dict[str, bool]
) -> Callable[[Manifest], str | None]:
    gates = [m for m in manifests.values() if m.licence_gate and not m.error and requested.get(m.name, True)]
    if not gates:
        return lambda manifest: None
    gate = gates[0]
    module_name, _, func_name = gate.licence_gate.partition(":")
    features = getattr(importlib.import_module(f"{gate.package}.{module_name}"), func_name)(app)

    def check(manifest: Manifest) -> str | None:
        if features is None or manifest.licence_feature is None or manifest.licence_feature in features:
            return None
        return "not licensed"

    return check
