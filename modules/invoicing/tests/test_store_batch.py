"""A run stores a customer's drafts together: a line billed meanwhile by another run, or a bad one, undoes its draft."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from core import signals
from core.db import db
from modules.invoicing import runs, services
from modules.invoicing.models import BilledRef, Invoice, InvoiceLine
from modules.invoicing.tests.fixture_modules.fake_usage import module as fake_usage
from modules.invoicing.tests.support import add_company, billing_customer, new_contract, start_run, usage_line
from tests.api_support import bearer


def run_drafts(run_id: int) -> dict[int, list[str]]:
    """contract id -> the source refs of its draft, for the drafts of this run."""
    rows = db.session.execute(
        sa.select(Invoice.contract_id, InvoiceLine.source_ref)
        .join(InvoiceLine)
        .where(Invoice.billing_run_id == run_id)
        .order_by(InvoiceLine.position)
    ).all()
    drafts: dict[int, list[str]] = {}
    for contract_id, ref in rows:
        drafts.setdefault(contract_id, []).append(ref)
    return drafts


def three_contracts(client, staff) -> tuple[int, list[int]]:
    customer = billing_customer()
    contracts = []
    for serial in ("A1", "B1", "C1"):
        contract = new_contract(client, staff, customer.id, serial)["id"]
        usage_line(customer.id, f"usage-{serial}", 100, "0.012", contract_id=contract)
        contracts.append(contract)
    return customer.id, contracts


def test_a_line_billed_by_a_concurrent_run_undoes_only_its_contract_and_the_run_says_so(app, db_session, monkeypatch):
    add_company()
    client, staff = app.test_client(), bearer("dealer_admin")
    customer_id, (first, second, third) = three_contracts(client, staff)
    # Another run bills B1's usage after this run asked what is already billed: it commits first.
    [line] = [line for _available, line in fake_usage.LINES[customer_id] if line.source_ref == "usage-B1"]
    other = services.create_draft(customer_id, [line], contract_id=second)
    db.session.commit()
    monkeypatch.setattr(runs, "billed_keys", lambda keys: set())
    announced: list[str] = []

    def record(sender, source, lines, **_kwargs):
        announced.extend(ref for ref, _extra in lines)

    signals.lines_billed.connect(record)
    try:
        run = start_run(client, staff, "2026-01-15")
    finally:
        signals.lines_billed.disconnect(record)

    drafts = run_drafts(run["id"])
    assert sorted(drafts) == [first, third]
    assert all(refs[-1] == f"usage-{serial}" for refs, serial in zip(drafts.values(), ("A1", "C1"), strict=True))
    [error] = run["errors"]
    assert error["contract_id"] == second and "another run" in error["message"]
    assert run["status"] == "done"
    refs = Counter(db.session.scalars(sa.select(BilledRef.source_ref)))
    assert refs["usage-B1"] == 1 and max(refs.values()) == 1
    owner = db.session.scalar(
        sa.select(InvoiceLine.invoice_id).join(BilledRef).where(BilledRef.source_ref == "usage-B1")
    )
    assert owner == other.id
    assert sorted(announced) == sorted(ref for refs in drafts.values() for ref in refs)


def test_a_contract_with_a_bad_line_is_recorded_and_the_customers_other_drafts_are_stored(app, db_session):
    add_company()
    client, staff = app.test_client(), bearer("dealer_admin")
    customer_id, (first, second, third) = three_contracts(client, staff)
    usage_line(customer_id, "usage-B1-bad", 100, "0.012", contract_id=second, vat_code="XX99")

    run = start_run(client, staff, "2026-01-15")

    drafts = run_drafts(run["id"])
    assert sorted(drafts) == [first, third]
    [error] = run["errors"]
    assert error["contract_id"] == second and "vat_code" in error["message"]
    billed = set(db.session.scalars(sa.select(BilledRef.source_ref)))
    assert {"usage-A1", "usage-C1"} <= billed and not {"usage-B1", "usage-B1-bad"} & billed

    again = start_run(client, staff, "2026-01-15")  # nothing billed twice: only B1 is still due, and still refused
    assert run_drafts(again["id"]) == {}
    assert [error["contract_id"] for error in again["errors"]] == [second]
