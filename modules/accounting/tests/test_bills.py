"""Supplier bills: the purchases journal entry, the gapless protocol, and bad input refused with nothing written."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.sequences import peek_next
from core.validation import ValidationError
from modules.accounting import bills, settings
from modules.accounting.models import Entry, EntryLine, SupplierBill
from modules.accounting.tests.support import account_balance, make_customer, make_supplier

BILL_DATE = dt.date(2026, 11, 5)
REGISTERED = dt.date(2026, 11, 8)


def toner_lines(**changes) -> list[dict]:
    return [
        {"description": "Toner TK-1160 x 10", "account": "4101", "net": "100.00", "vat_rate": "22", **changes},
        {"description": "Corriere espresso", "account": "4201", "net": "50.00", "vat_rate": "10", "deductible": False},
    ]


def register(supplier, number="FT 118/2026", lines=None, **kwargs):
    kwargs.setdefault("registered_on", REGISTERED)
    kwargs.setdefault("due_date", dt.date(2026, 12, 31))
    return bills.create_bill(
        supplier.id, number, kwargs.pop("date", BILL_DATE), lines if lines is not None else toner_lines(), **kwargs
    )


def counts(session) -> tuple[int, int, int]:
    return (
        session.scalar(sa.select(sa.func.count()).select_from(SupplierBill)),
        session.scalar(sa.select(sa.func.count()).select_from(Entry)),
        session.scalar(sa.select(sa.func.count()).select_from(EntryLine)),
    )


def test_a_bill_debits_costs_and_deductible_vat_and_credits_the_suppliers_payable(db_session):
    supplier = make_supplier()

    bill = register(supplier)
    db_session.commit()

    assert (bill.net_total, bill.vat_total, bill.total) == (Decimal("150.00"), Decimal("27.00"), Decimal("177.00"))
    assert bill.protocol == 1
    entry = db_session.get(Entry, bill.entry_id)
    assert entry.journal.code == "ACQ" and entry.number == "ACQ/2026/0001"
    assert (entry.date, entry.reference, entry.source, entry.source_id) == (REGISTERED, "FT 118/2026", "bill", bill.id)
    lines = {(line.account.code, line.debit, line.credit) for line in entry.lines}
    assert lines == {
        ("4101", Decimal("100.00"), Decimal("0.00")),
        # Non-deductible VAT is part of the cost.
        ("4201", Decimal("55.00"), Decimal("0.00")),
        ("1601", Decimal("22.00"), Decimal("0.00")),
        ("2501", Decimal("0.00"), Decimal("177.00")),
    }
    vat_line = next(line for line in entry.lines if line.account.code == "1601")
    assert (vat_line.vat_rate, vat_line.vat_base) == (Decimal("22.00"), Decimal("100.00"))
    payable = next(line for line in entry.lines if line.account.code == "2501")
    assert (payable.partner_id, payable.bill_id, payable.due_date) == (supplier.id, bill.id, dt.date(2026, 12, 31))
    assert account_balance(settings.payable_account().code, supplier.id) == Decimal("-177.00")


def test_protocol_numbers_are_gapless_per_registration_year(db_session):
    supplier = make_supplier()
    last_year = register(supplier, "A-1", date=dt.date(2025, 12, 1), registered_on=dt.date(2025, 12, 10))
    db_session.commit()
    with pytest.raises(ValidationError):
        register(supplier, "A-2", lines=toner_lines(account="9999"))
    db_session.rollback()
    first = register(supplier, "A-3", date=dt.date(2025, 12, 20), registered_on=dt.date(2026, 1, 5))
    db_session.commit()
    second = register(supplier, "A-4")

    assert (last_year.protocol, first.protocol, second.protocol) == (1, 1, 2)
    assert [bill.entry.number for bill in (last_year, first, second)] == [
        "ACQ/2025/0001",
        "ACQ/2026/0001",
        "ACQ/2026/0002",
    ]


def test_the_supplier_may_reuse_a_number_in_another_year_but_not_in_the_same(db_session):
    supplier = make_supplier()
    register(supplier, "7")
    db_session.commit()
    before = counts(db_session)

    with pytest.raises(ValidationError) as refused:
        register(supplier, "7", registered_on=dt.date(2026, 11, 9))
    db_session.rollback()

    assert "number" in refused.value.errors and "1/2026" in refused.value.errors["number"]
    assert counts(db_session) == before
    register(supplier, "7", date=dt.date(2025, 12, 20))
    db_session.commit()
    assert counts(db_session)[0] == 2


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "lines"),
        (toner_lines(account="9999"), "lines.0.account"),
        (toner_lines(account="4100"), "lines.0.account"),  # a group
        (toner_lines(account="5801"), "lines.0.account"),  # an income account
        (toner_lines(net="-5.00"), "lines.0.net"),
        (toner_lines(net="0"), "lines.0.net"),
        (toner_lines(net="10.005"), "lines.0.net"),
        (toner_lines(vat_rate="101"), "lines.0.vat_rate"),
        (toner_lines(vat="25.00"), "lines.0.vat"),
        (toner_lines(description=""), "lines.0.description"),
    ],
)
def test_a_bad_line_is_refused_by_its_field_and_nothing_is_written(db_session, lines, field):
    supplier = make_supplier()
    before = counts(db_session)

    with pytest.raises(ValidationError) as refused:
        register(supplier, lines=lines)
    db_session.rollback()

    assert field in refused.value.errors
    assert counts(db_session) == before
    assert peek_next(bills.PROTOCOL_SEQUENCE, 2026) == 1


def test_the_suppliers_rounding_within_a_cent_is_kept(db_session):
    bill = register(
        make_supplier(),
        lines=[{"description": "Carta", "account": "4101", "net": "10.05", "vat_rate": "22", "vat": "2.22"}],
    )

    assert bill.vat_total == Decimal("2.22")  # 10.05 x 22 percent is 2.211, the supplier wrote 2.22


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"registered_on": dt.date(2026, 11, 1)}, "registered_on"),  # before the bill's date
        ({"due_date": dt.date(2026, 11, 1)}, "due_date"),
        ({"date": dt.date(2099, 1, 1), "registered_on": dt.date(2099, 1, 2)}, "date"),
        ({"number": " "}, "number"),
    ],
)
def test_bad_dates_and_numbers_are_refused(db_session, changes, field):
    supplier = make_supplier()
    changes = dict(changes)  # the parameter is shared by the backends' runs
    number = changes.pop("number", "FT 1")

    with pytest.raises(ValidationError) as refused:
        register(supplier, number, **changes)

    assert field in refused.value.errors


def test_only_a_supplier_gets_a_bill(db_session):
    customer = make_customer()

    with pytest.raises(ValidationError) as refused:
        register(customer)

    assert "partner_id" in refused.value.errors
    assert "supplier" in refused.value.errors["partner_id"]


def test_a_bill_in_a_closed_period_is_refused_and_takes_no_protocol(db_session):
    supplier = make_supplier()
    settings.set_lock_date(dt.date(2026, 11, 30))
    db_session.commit()
    before = counts(db_session)

    with pytest.raises(ValidationError) as refused:
        register(supplier)
    db_session.rollback()

    assert "date" in refused.value.errors
    assert counts(db_session) == before
    assert peek_next(bills.PROTOCOL_SEQUENCE, 2026) == 1


def test_registration_dates_never_go_back_within_a_year(db_session):
    supplier = make_supplier()
    register(supplier, "1", registered_on=dt.date(2026, 11, 20))
    db_session.commit()

    with pytest.raises(ValidationError) as refused:
        register(supplier, "2", registered_on=dt.date(2026, 11, 10))

    assert "registered_on" in refused.value.errors


# The back office form


@pytest.fixture
def office(app, db_session):
    from core.extensions import limiter
    from tests.auth_support import login, make_user

    make_user("office@dealer.example", "back_office", name="Back Office")
    limiter.reset()
    client = app.test_client()
    assert login(client, "office@dealer.example").status_code == 302
    return client


def form_data(supplier_id: int, **changes) -> dict:
    return {
        "partner_id": str(supplier_id),
        "number": "FT 300",
        "date": "2026-11-05",
        "registered_on": "2026-11-06",
        "due_date": "2026-12-05",
        "line_count": "5",
        "lines-0-description": "Toner",
        "lines-0-account": "4101",
        "lines-0-net": "80,00",
        "lines-0-vat_rate": "22",
        "lines-0-deductible": "y",
        "lines-1-description": "Pranzo di lavoro",
        "lines-1-account": "4201",
        "lines-1-net": "30",
        "lines-1-vat_rate": "10",
        # lines-1-deductible unticked; rows 2 to 4 keep only their rate, as the form shows them
        **{f"lines-{row}-vat_rate": "22" for row in (2, 3, 4)},
        **changes,
    }


def test_a_bill_registered_from_the_form_opens_on_its_page(office, db_session):
    from tests.auth_support import post_form

    supplier = make_supplier()

    response = post_form(office, "/admin/accounting_supplier_bills/new", form_data(supplier.id))

    assert response.status_code == 302
    bill = db_session.scalar(sa.select(SupplierBill))
    assert (bill.number, bill.protocol, bill.total) == ("FT 300", 1, Decimal("130.60"))
    assert [(line.net, line.deductible) for line in bill.lines] == [(Decimal("80.00"), True), (Decimal("30.00"), False)]
    page = office.get(response.headers["Location"])
    text = " ".join(page.get_data(as_text=True).split())
    assert page.status_code == 200 and "FT 300" in text and "ACQ/2026/0001" in text and "130.60" in text
    listed = office.get("/admin/accounting_supplier_bills/").get_data(as_text=True)
    assert "1/2026" in listed and "Ricambi Ufficio Italia Srl" in listed


def test_a_bad_line_on_the_form_is_shown_beside_it_and_nothing_is_written(office, db_session):
    from tests.auth_support import post_form

    supplier = make_supplier()

    response = post_form(
        office, "/admin/accounting_supplier_bills/new", form_data(supplier.id, **{"lines-1-account": "5801"})
    )

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="lines-1-account-error"' in html
    assert 'value="FT 300"' in html  # what was typed stays
    assert counts(db_session) == (0, 0, 0)
