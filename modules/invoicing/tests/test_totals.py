"""The rounding rules as properties: line amounts, VAT per rate on the sum of its amounts, total = net + VAT."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from modules.invoicing.models import Invoice, InvoiceLine
from modules.invoicing.services import compute_totals, due_date, line_amount

quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False, allow_infinity=False)
prices = st.decimals(min_value=-1000, max_value=1000, places=6, allow_nan=False, allow_infinity=False)
rates = st.sampled_from([Decimal("0"), Decimal("4"), Decimal("5"), Decimal("10"), Decimal("22")])


def half_up(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(Decimal("0.01"), ROUND_HALF_UP)


@given(quantity=quantities, price=prices)
def test_line_amount_is_the_exact_product_rounded_half_up(quantity, price):
    exact = Fraction(quantity) * Fraction(price)
    amount = line_amount(quantity, price)
    assert abs(Fraction(amount) - exact) <= Fraction(1, 200)
    assert amount == half_up(exact)


@given(lines=st.lists(st.tuples(quantities, prices, rates), min_size=1, max_size=30))
def test_totals_are_the_sum_of_line_amounts_plus_vat_per_rate(lines):
    invoice = Invoice(lines=[InvoiceLine(quantity=q, unit_price=p, vat_rate=r) for q, p, r in lines])

    compute_totals(invoice)

    assert invoice.net_total == sum((line.amount for line in invoice.lines), Decimal(0))
    per_rate: dict[Decimal, Decimal] = {}
    for line in invoice.lines:
        per_rate[line.vat_rate] = per_rate.get(line.vat_rate, Decimal(0)) + line.amount
    assert invoice.vat_total == sum(
        (half_up(Fraction(base) * Fraction(rate) / 100) for rate, base in per_rate.items()), Decimal(0)
    )
    assert invoice.total == invoice.net_total + invoice.vat_total


def test_example_a_vat_is_computed_on_the_rate_total_not_per_line():
    invoice = Invoice(
        lines=[
            InvoiceLine(quantity=Decimal(1), unit_price=Decimal("50"), vat_rate=Decimal(22)),
            InvoiceLine(quantity=Decimal(1), unit_price=Decimal("50"), vat_rate=Decimal(22)),
            InvoiceLine(quantity=Decimal(850), unit_price=Decimal("0.012"), vat_rate=Decimal(22)),
            InvoiceLine(quantity=Decimal(110), unit_price=Decimal("0.09"), vat_rate=Decimal(22)),
        ]
    )

    compute_totals(invoice)

    assert (invoice.net_total, invoice.vat_total, invoice.total) == (
        Decimal("120.10"),
        Decimal("26.42"),
        Decimal("146.52"),
    )


def test_due_date_follows_days_and_end_of_month_terms():
    import datetime as dt

    issued = dt.date(2026, 1, 20)
    assert due_date(issued, SimpleNamespace(payment_terms_days=30, payment_end_of_month=False)) == dt.date(2026, 2, 19)
    assert due_date(issued, SimpleNamespace(payment_terms_days=30, payment_end_of_month=True)) == dt.date(2026, 2, 28)
    assert due_date(issued, SimpleNamespace(payment_terms_days=0, payment_end_of_month=False)) == issued
