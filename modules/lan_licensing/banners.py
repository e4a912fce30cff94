"""Back-office banners: evaluation, expiry, grace, read-only, a clock set back, the reading tier at 80 and 100."""

from __future__ import annotations

from flask import url_for
from flask_babel import gettext as _

from core.extension_points import Banner
from core.labels import local_date, local_datetime, number
from modules.lan_licensing import state, tiers


def state_banners(now_state: state.LicenceState) -> list[Banner]:
    days = now_state.days_left
    phase = now_state.phase
    if now_state.clock_set_back:
        text = _(
            "The server's clock is behind the latest time this installation has seen (%(seen)s): the licence is "
            "treated as expired until the clock is right.",
            seen=local_datetime(now_state.latest_seen),
        )
        return [Banner(text, "danger")]
    if phase == "evaluation":
        return [
            Banner(
                _("Evaluation copy: every module works for %(days)s more days. Install a licence.", days=days), "info"
            )
        ]
    if phase == "evaluation_over":
        return [Banner(_("The evaluation period is over: only the core works. Install a licence."), "danger")]
    if phase == "invalid":
        return [Banner(_("The installed licence is not in force: %(problem)s", problem=now_state.problem), "danger")]
    expiry = local_date(now_state.ends_on)
    if phase == "expiring":
        return [Banner(_("The licence expires on %(date)s, in %(days)s days.", date=expiry, days=days), "warning")]
    if phase == "grace":
        text = _(
            "The licence expired on %(date)s. Everything keeps working until %(end)s; install a renewed licence.",
            date=expiry,
            end=local_date(now_state.grace_until),
        )
        return [Banner(text, "warning")]
    if phase == "expired":
        text = _(
            "The licence expired on %(date)s: the back office is read-only until a new licence is installed.",
            date=expiry,
        )
        return [Banner(text, "danger")]
    return []


def tier_banners(used: tiers.Usage) -> list[Banner]:
    if used.percent is None or used.percent < tiers.THRESHOLDS[0]:
        return []
    if used.readings <= used.tier_readings:
        text = _(
            "Readings this licence year: %(used)s of the %(tier)s of tier %(name)s.",
            used=number(used.readings),
            tier=number(used.tier_readings),
            name=used.tier_name,
        )
        return [Banner(text, "warning")]
    text = _(
        "Readings this licence year: %(used)s, %(excess)s beyond the %(tier)s of tier %(name)s. Readings are still "
        "accepted; ask your vendor for a larger tier.",
        used=number(used.readings),
        excess=number(used.excess),
        tier=number(used.tier_readings),
        name=used.tier_name,
    )
    return [Banner(text, "danger")]


class LicenceBanners:
    """core.extension_points.BANNERS for the back office."""

    def banners(self) -> list[Banner]:
        now_state = state.current()
        found = state_banners(now_state) + tier_banners(tiers.usage(now_state))
        link = url_for("lan_licensing_licence.index")
        return [Banner(banner.text, banner.level, link) for banner in found]
