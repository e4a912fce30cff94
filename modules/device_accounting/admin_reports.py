"""Device accounting back office, the reports page: one customer's usage over a date range as charts and a table,
with CSV and PDF downloads (the partials and functions of reports.py, shared with the portal)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Response, abort, request, url_for
from flask_admin import expose

from core.admin import SecuredView
from core.db import db
from core.models import Partner
from core.validation import ValidationError
from modules.device_accounting import reports
from modules.device_accounting.admin import VIEW, customers
from modules.device_accounting.admin_money import money
from modules.device_accounting.models import MonthlyUsage

REPORT_ARGS = ("since", "until", "group_by", "user_id", "cost_center_id", "device_id", "function")


def _customer() -> Partner | None:
    value = request.args.get("customer_id", "")
    if not value.isdigit() or int(value) >= 2**31:
        return None
    return db.session.get(Partner, int(value))


def _customers_with_jobs() -> set[int]:
    # The monthly rollup: a few rows per customer and month, where the daily one has millions for a large customer.
    return set(db.session.scalars(sa.select(MonthlyUsage.customer_id).distinct()))


class ReportsView(SecuredView):
    """Pick a customer and a date range: totals, charts by month, function, colour and top users, and the table by
    user, cost center, device, function, day or month."""

    permission = VIEW

    @expose("/")
    def index(self):
        customer = _customer()
        values: dict[str, Any] = {
            "customer": customer,
            "customers": customers(),
            "with_jobs": _customers_with_jobs(),
            "money": money,
        }
        if customer is None:
            if request.args.get("customer_id"):
                abort(404)
            return self.render("device_accounting/admin/reports.html", **values)
        args = {name: request.args[name] for name in REPORT_ARGS if request.args.get(name)}
        values["choices"] = reports.filter_choices(customer.id)
        try:
            chosen = reports.read_filters(args)
        except ValidationError as error:
            values.update(filters=request.args, errors=error.errors)
            return self.render("device_accounting/admin/reports.html", **values), 422
        group_by, since, until = chosen.pop("group_by"), chosen.pop("since"), chosen.pop("until")
        query = {"customer_id": customer.id, "group_by": group_by, "since": since, "until": until, **chosen}
        values.update(
            filters={"group_by": group_by, "since": since, "until": until, **chosen},
            report=reports.summary(customer.id, since, until, **chosen),
            rows=reports.usage(customer.id, group_by, since, until, **chosen),
            group_by=group_by,
            title=reports.GROUP_TITLES[group_by],
            exports={
                "csv": url_for(".export", extension="csv", **query),
                "pdf": url_for(".export", extension="pdf", **query),
            },
            jobs_url=url_for(
                "device_accounting_transaction.index_view",
                customer_id=customer.id,
                since=since.isoformat(),
                until=until.isoformat(),
                **{name: value for name, value in chosen.items() if name != "function"},
            ),
        )
        return self.render("device_accounting/admin/reports.html", **values)

    @expose("/usage.<any(csv, pdf):extension>")
    def export(self, extension: str):
        customer = _customer()
        if customer is None:
            abort(404)
        try:
            chosen = reports.read_filters({name: request.args[name] for name in REPORT_ARGS if request.args.get(name)})
        except ValidationError as error:
            return Response(error.messages(), status=422, mimetype="text/plain")
        group_by, since, until = chosen.pop("group_by"), chosen.pop("since"), chosen.pop("until")
        if extension == "csv":
            body: Any = reports.usage_csv(customer.id, group_by, since, until, **chosen)
            mimetype = "text/csv; charset=utf-8"
        else:
            body = reports.usage_pdf(customer.id, group_by, since, until, **chosen)
            mimetype = "application/pdf"
        name = reports.export_filename(since, until, extension)
        return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})
