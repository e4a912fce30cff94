"""Accounting demo data: three months of the demo customers' invoices (September to November 2026) posted through
invoicing, so each has its sales entry (the Spanish academy's under N2.1, reverse charge; the hotel's in three
instalments), and the state school's first invoice in November: its rental fee as rentals bills it, with the
contract's CIG and protocol number, an FPA12 e-invoice under split payment. A credit note in November; payments for
most of them (one paid in part, two customers overdue since November), two of them recorded from an imported bank
statement that also holds a line still to confirm; two supplier bills in the purchases journal. The dealer's office
sees a balanced trial balance, an aging with the overdue customers and November's VAT register.

Idempotent: the invoices are found by their billed references (source "accounting_demo", or rentals' for the
school's fee), payments by their reference, bills by supplier and number, the statement by its file."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import force_locale

from core import clock
from core.db import db
from core.extension_points import BILLABLE_SOURCE, BillableLine, implementations
from core.models import Partner
from core.outbox import mail_language
from modules.accounting import bills, chart, payments, statements
from modules.accounting.models import Payment, SupplierBill
from modules.invoicing import services
from modules.invoicing.models import BilledRef, Invoice, InvoiceLine

SOURCE = "accounting_demo"
BIANCHI = "Studio Legale Bianchi"
FARMACIA = "Farmacia San Marco Srl"
HOTEL = "Hotel Bellavista Spa"
CERVANTES = "Academia Cervantes SL"
SCHOOL = "Istituto Comprensivo Giuseppe Mazzini"
SCHOOL_MONTH = "2026-11"
SCHOOL_FEE = "85.00"  # its contract's monthly fee (rentals' demo), billed here when rentals is not enabled
# The VAT code of a customer's lines (default: 22%): the Spanish academy is not subject to Italian VAT (art. 7-ter).
VAT_CODES = {CERVANTES: "N2.1"}
MONTHS = {
    "2026-09": (dt.date(2026, 9, 30), "settembre 2026"),
    "2026-10": (dt.date(2026, 10, 31), "ottobre 2026"),
    "2026-11": (dt.date(2026, 11, 30), "novembre 2026"),
}
# Per customer: the monthly rental fee and, per month, the copies over the allowance (pages, price per page).
FEES = {BIANCHI: "120.00", FARMACIA: "95.00", HOTEL: "240.00", CERVANTES: "150.00"}
OVERAGE = {
    BIANCHI: {"2026-09": (2300, "0.008"), "2026-10": (1850, "0.008"), "2026-11": (2640, "0.008")},
    HOTEL: {"2026-09": (4900, "0.0075"), "2026-10": (5210, "0.0075"), "2026-11": (6120, "0.0075")},
    CERVANTES: {"2026-10": (1210, "0.01")},
}
# November: toner shipped to the pharmacy (returned unused: the credit note) and to the hotel.
CONSUMABLES = {
    (FARMACIA, "2026-11"): ("Toner Kyocera TK-1160 nero", 1, "69.00"),
    (HOTEL, "2026-11"): ("Toner Kyocera TK-5240K nero", 2, "95.00"),
}
CREDITED = (FARMACIA, "2026-11", "consumable")
CREDIT_DATE = dt.date(2026, 11, 30)
# Payments recorded by the office: customer, month of the invoice, amount (None: the invoice's total), date.
PAYMENTS = (
    (BIANCHI, "2026-09", None, dt.date(2026, 10, 28)),
    (FARMACIA, "2026-09", None, dt.date(2026, 10, 30)),
    (HOTEL, "2026-09", Decimal("150.00"), dt.date(2026, 10, 29)),  # the partial payment
    (CERVANTES, "2026-09", None, dt.date(2026, 10, 27)),
    (BIANCHI, "2026-11", None, dt.date(2026, 12, 1)),  # paid before it is due
)
# Paid by bank transfer and recorded from the bank's statement (the October invoices of these two).
STATEMENT_PAYMENTS = ((BIANCHI, "2026-10", dt.date(2026, 11, 27)), (FARMACIA, "2026-10", dt.date(2026, 11, 30)))
STATEMENT_FILE = "movimenti_novembre_2026.csv"
SUPPLIERS = (
    # name, VAT number, city, email
    ("Ricambi Ufficio Italia Srl", "01234560157", "Sesto San Giovanni", "ordini@ricambiufficio.example"),
    ("Rete Dati Lombardia Spa", "09876540155", "Milano", "fatture@retedati.example"),
)
BILLS = (
    # supplier, number, date, due, lines (description, account, net, VAT rate); registered in date order
    (
        SUPPLIERS[1][0],
        "FT-26-04471",
        dt.date(2026, 11, 3),
        dt.date(2026, 11, 30),
        (("Connettività fibra e assistenza, novembre 2026", "4201", "89.00", "22"),),
    ),
    (
        SUPPLIERS[0][0],
        "1187/2026",
        dt.date(2026, 11, 12),
        dt.date(2026, 12, 31),
        (
            ("Toner Kyocera TK-1160 nero, 6 pezzi", "4101", "228.00", "22"),
            ("Tamburo Kyocera DK-1150", "4102", "95.00", "22"),
        ),
    ),
)


def load_demo() -> None:
    chart.ensure_installed()
    customers = {
        partner.name: partner for partner in db.session.scalars(sa.select(Partner).where(Partner.name.in_(list(FEES))))
    }
    if len(customers) < len(FEES):
        return  # core's demo customers are not there: nothing to invoice
    invoices = _invoices(customers)
    _credit_note(invoices)
    _payments(customers, invoices)
    _statement(customers, invoices)
    _bills()
    db.session.commit()


def _ref(customer: str, month: str, kind: str) -> str:
    return f"{month}:{customer}:{kind}"


def _vat(customer: str) -> dict:
    code = VAT_CODES.get(customer)
    return {"vat_rate": Decimal(0), "vat_code": code} if code else {"vat_rate": Decimal(22)}


def _fee(customer: str, month: str, amount: str) -> BillableLine:
    return BillableLine(
        source=SOURCE,
        source_ref=_ref(customer, month, "fee"),
        description=f"Canone di noleggio {MONTHS[month][1]}",
        quantity=Decimal(1),
        unit_price=Decimal(amount),
        kind="fee",
        **_vat(customer),
    )


def _lines(customer: str, month: str) -> list[BillableLine]:
    _issue, words = MONTHS[month]
    lines = [_fee(customer, month, FEES[customer])]
    if month in OVERAGE.get(customer, {}):
        pages, price = OVERAGE[customer][month]
        lines.append(
            BillableLine(
                source=SOURCE,
                source_ref=_ref(customer, month, "overage"),
                description=f"Copie eccedenti {words}: {pages} pagine",
                quantity=Decimal(pages),
                unit_price=Decimal(price),
                kind="overage",
                **_vat(customer),
                unit="pag",
            )
        )
    if (customer, month) in CONSUMABLES:
        description, quantity, price = CONSUMABLES[(customer, month)]
        lines.append(
            BillableLine(
                source=SOURCE,
                source_ref=_ref(customer, month, "consumable"),
                description=description,
                quantity=Decimal(quantity),
                unit_price=Decimal(price),
                kind="consumable",
                **_vat(customer),
            )
        )
    return lines


def _billed(line: BillableLine) -> Invoice | None:
    return db.session.scalar(
        sa.select(Invoice)
        .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
        .join(BilledRef, BilledRef.line_id == InvoiceLine.id)
        .where(BilledRef.source == line.source, BilledRef.source_ref == line.source_ref)
    )


def _invoice(customer: Partner, lines: list[BillableLine], issue_date: dt.date, contract_id: int | None = None):
    """The invoice of `lines` (found by its first line's billed reference), drafted and posted when not there."""
    invoice = _billed(lines[0])
    if invoice is None:
        invoice = services.create_draft(customer.id, lines, contract_id=contract_id)
        services.post(invoice, issue_date)
        db.session.commit()
    return invoice


def _invoices(customers: dict[str, Partner]) -> dict[tuple[str, str], Invoice]:
    """Each customer's invoice of each month, posted on the month's last day (in date order: numbers follow), and
    the school's in its first month."""
    found = {}
    for month, (issue_date, _words) in MONTHS.items():
        for name, customer in customers.items():
            found[(name, month)] = _invoice(customer, _lines(name, month), issue_date)
        school = db.session.scalar(sa.select(Partner).where(Partner.name == SCHOOL))
        if month == SCHOOL_MONTH and school is not None:
            lines, contract_id = _school_lines(school, issue_date)
            found[(SCHOOL, month)] = _invoice(school, lines, issue_date, contract_id)
    return found


def _school_lines(school: Partner, issue_date: dt.date) -> tuple[list[BillableLine], int | None]:
    """The school's fee of its first month as rentals bills it (with its contract, whose CIG and protocol number the
    invoice takes), or the demo's own fee line when no module bills the school's contract."""
    first_day = dt.date(issue_date.year, issue_date.month, 1)
    with force_locale(mail_language(school.language)):
        for source in implementations(BILLABLE_SOURCE):
            for line in source.billable_lines(school.id, issue_date):
                if line.kind == "fee" and line.contract_id is not None and line.period_start == first_day:
                    return [line], line.contract_id
    return [_fee(SCHOOL, SCHOOL_MONTH, SCHOOL_FEE)], None


def _credit_note(invoices: dict[tuple[str, str], Invoice]) -> None:
    """The pharmacy's November toner, sent back unused: a credit note of that line."""
    customer, month, kind = CREDITED
    invoice = invoices[(customer, month)]
    line = next(line for line in invoice.lines if line.source_ref == _ref(customer, month, kind))
    credited = db.session.scalar(sa.select(InvoiceLine.id).where(InvoiceLine.reversed_line_id == line.id))
    if credited is None:
        note = services.create_credit_note(invoice, [line.id])
        services.post(note, CREDIT_DATE)
        db.session.commit()


def _reference(invoice: Invoice) -> str:
    return f"Bonifico saldo fattura {invoice.number}"


def _paid(reference: str, partner_id: int) -> bool:
    query = sa.select(Payment.id).where(Payment.reference == reference, Payment.partner_id == partner_id)
    return db.session.scalar(query.limit(1)) is not None


def _payments(customers: dict[str, Partner], invoices: dict[tuple[str, str], Invoice]) -> None:
    today = clock.today()
    for name, month, amount, date in PAYMENTS:
        invoice = invoices[(name, month)]
        reference = _reference(invoice)
        if date > today or _paid(reference, customers[name].id):
            continue
        payments.record_payment(
            customers[name].id,
            amount if amount is not None else invoice.total,
            date,
            reference=reference,
            invoice_id=invoice.id,
        )
        db.session.commit()


def _statement(customers: dict[str, Partner], invoices: dict[tuple[str, str], Invoice]) -> None:
    """November's statement of the bank account (the Italian "movimenti" CSV export): two transfers paying October
    invoices, confirmed; a transfer nobody has identified yet and the bank's fee, left to the office."""
    rows = ["Data contabile;Data valuta;Entrate;Uscite;Descrizione;Ordinante/Beneficiario;IBAN;Riferimento"]
    for name, month, date in STATEMENT_PAYMENTS:
        invoice = invoices[(name, month)]
        amount = f"{invoice.total:.2f}".replace(".", ",")
        rows.append(
            f"{date:%d/%m/%Y};{date:%d/%m/%Y};{amount};;BONIFICO A VOSTRO FAVORE {_reference(invoice)};{name};;"
            f"CRO{invoice.id:08d}"
        )
    rows.append("30/11/2026;30/11/2026;50,00;;BONIFICO A VOSTRO FAVORE acconto;Mario Verdi;;CRO90000001")
    rows.append("30/11/2026;30/11/2026;;4,50;COMMISSIONI TENUTA CONTO NOVEMBRE;;;CRO90000002")
    raw = ("\n".join(rows) + "\n").encode("utf-8")
    result = statements.import_statement(raw, STATEMENT_FILE, journal="BNK", profile="it_movimenti")
    db.session.commit()
    if not result.created or result.statement is None:
        return
    by_amount = {invoices[(name, month)].total: (name, month) for name, month, _date in STATEMENT_PAYMENTS}
    for line in result.statement.lines:
        if line.amount in by_amount and line.state == "open":
            name, month = by_amount[line.amount]
            statements.confirm(line, partner_id=customers[name].id, invoice_id=invoices[(name, month)].id)
            db.session.commit()


def _supplier(name: str, vat_number: str, city: str, email: str) -> Partner:
    supplier = db.session.scalar(sa.select(Partner).where(Partner.name == name))
    if supplier is None:
        supplier = Partner(
            name=name,
            is_customer=False,
            is_supplier=True,
            vat_number=vat_number,
            city=city,
            province="MI",
            country="IT",
            email=email,
            language="it",
        )
        db.session.add(supplier)
        db.session.flush()
    elif not supplier.is_supplier:
        supplier.is_supplier = True
    return supplier


def _bills() -> None:
    suppliers = {name: _supplier(name, vat, city, email) for name, vat, city, email in SUPPLIERS}
    db.session.commit()
    for supplier, number, date, due, lines in BILLS:
        partner = suppliers[supplier]
        exists = db.session.scalar(
            sa.select(SupplierBill.id).where(
                SupplierBill.partner_id == partner.id, SupplierBill.number == number, SupplierBill.year == date.year
            )
        )
        if exists is not None:
            continue
        bills.create_bill(
            partner.id,
            number,
            date,
            [
                {"description": text, "account": account, "net": Decimal(net), "vat_rate": Decimal(rate)}
                for text, account, net, rate in lines
            ],
            registered_on=date + dt.timedelta(days=2),
            due_date=due,
        )
        db.session.commit()
