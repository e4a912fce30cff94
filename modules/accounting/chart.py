"""The default Italian chart of accounts and the default journals, installed once (the dealer may rename and add).

Codes follow the 4-digit style of the Italian localisations: the first two digits are the group (15 trade
receivables, 16 tax credits, 18 cash and banks, 21 equity, 25 trade payables, 26 tax payables, 41 purchases,
42 services, 49 financial charges, 58 revenue, 59 financial income); a group's own code ends in 00 and takes no
entries. `install()` adds what is missing by code, so it is safe to call on every start and after a test wipe.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from core.db import db
from core.models import Company
from modules.accounting.models import Account, Journal


@dataclass(frozen=True)
class ChartAccount:
    code: str
    type: str
    name_it: str
    name_en: str
    name_es: str
    parent: str | None = None
    reconcilable: bool = False
    needs_partner: bool = False

    @property
    def postable(self) -> bool:
        return self.parent is not None


RECEIVABLE = "1501"
PAYABLE = "2501"
VAT_RECEIVABLE = "1601"
VAT_PAYABLE = "2601"
VAT_SETTLEMENT = "2605"
BANK = "1801"
CASH = "1820"
PROFIT_LOSS = "2115"
VAT_INTEREST = "4901"

# Income account per invoicing line kind (rentals' fee, metering's overage and minimum, rentals_inventory's
# consumable, device_accounting's chargeback, inventory's delivery); any other kind goes to OTHER_INCOME.
INCOME_BY_KIND = {
    "fee": "5801",
    "overage": "5802",
    "minimum": "5802",
    "consumable": "5803",
    "delivery": "5803",
    "chargeback": "5804",
}
OTHER_INCOME = "5805"

ACCOUNTS: tuple[ChartAccount, ...] = (
    ChartAccount("1500", "asset", "Crediti commerciali", "Trade receivables", "Créditos comerciales"),
    ChartAccount(
        RECEIVABLE,
        "asset",
        "Crediti verso clienti",
        "Customer receivables",
        "Créditos con clientes",
        "1500",
        reconcilable=True,
        needs_partner=True,
    ),
    ChartAccount("1600", "asset", "Crediti tributari", "Tax receivables", "Créditos fiscales"),
    ChartAccount(VAT_RECEIVABLE, "asset", "IVA a credito", "Input VAT", "IVA soportado", "1600"),
    ChartAccount("1800", "asset", "Disponibilità liquide", "Cash and banks", "Tesorería"),
    ChartAccount(BANK, "asset", "Banca c/c", "Bank current account", "Banco c/c", "1800", reconcilable=True),
    ChartAccount(CASH, "asset", "Cassa", "Cash", "Caja", "1800"),
    ChartAccount("2100", "equity", "Patrimonio netto", "Equity", "Patrimonio neto"),
    ChartAccount("2101", "equity", "Capitale sociale", "Share capital", "Capital social", "2100"),
    ChartAccount("2110", "equity", "Riserve", "Reserves", "Reservas", "2100"),
    ChartAccount(
        PROFIT_LOSS,
        "equity",
        "Utile (perdita) dell'esercizio",
        "Profit (loss) for the year",
        "Resultado del ejercicio",
        "2100",
    ),
    ChartAccount("2500", "liability", "Debiti commerciali", "Trade payables", "Deudas comerciales"),
    ChartAccount(
        PAYABLE,
        "liability",
        "Debiti verso fornitori",
        "Supplier payables",
        "Deudas con proveedores",
        "2500",
        reconcilable=True,
        needs_partner=True,
    ),
    ChartAccount("2600", "liability", "Debiti tributari", "Tax payables", "Deudas fiscales"),
    ChartAccount(VAT_PAYABLE, "liability", "IVA a debito", "Output VAT", "IVA repercutido", "2600"),
    ChartAccount(VAT_SETTLEMENT, "liability", "Erario c/IVA", "VAT settlement account", "Hacienda c/IVA", "2600"),
    ChartAccount("4100", "expense", "Costi per acquisti", "Purchases", "Compras"),
    ChartAccount(
        "4101",
        "expense",
        "Acquisti di materiali di consumo",
        "Purchases of consumables",
        "Compras de consumibles",
        "4100",
    ),
    ChartAccount("4102", "expense", "Acquisti di ricambi", "Purchases of spare parts", "Compras de repuestos", "4100"),
    ChartAccount("4200", "expense", "Costi per servizi", "Services", "Servicios"),
    ChartAccount("4201", "expense", "Servizi", "Services received", "Servicios recibidos", "4200"),
    ChartAccount("4202", "expense", "Canoni passivi", "Rents and leases paid", "Arrendamientos pagados", "4200"),
    ChartAccount("4900", "expense", "Oneri finanziari", "Financial charges", "Gastos financieros"),
    ChartAccount(VAT_INTEREST, "expense", "Interessi passivi", "Interest paid", "Intereses pagados", "4900"),
    ChartAccount("4902", "expense", "Spese bancarie", "Bank charges", "Gastos bancarios", "4900"),
    ChartAccount("5800", "income", "Ricavi delle vendite e delle prestazioni", "Revenue", "Ingresos"),
    ChartAccount(
        "5801", "income", "Ricavi per canoni di noleggio", "Rental fee revenue", "Ingresos por alquiler", "5800"
    ),
    ChartAccount(
        "5802",
        "income",
        "Ricavi per copie eccedenti",
        "Excess copies revenue",
        "Ingresos por copias excedentes",
        "5800",
    ),
    ChartAccount(
        "5803",
        "income",
        "Ricavi per vendita di materiali di consumo",
        "Consumables sales revenue",
        "Ingresos por venta de consumibles",
        "5800",
    ),
    ChartAccount(
        "5804",
        "income",
        "Ricavi per addebiti (chargeback)",
        "Chargeback revenue",
        "Ingresos por refacturación (chargeback)",
        "5800",
    ),
    ChartAccount(OTHER_INCOME, "income", "Altri ricavi", "Other revenue", "Otros ingresos", "5800"),
    ChartAccount("5900", "income", "Proventi finanziari", "Financial income", "Ingresos financieros"),
    ChartAccount("5901", "income", "Interessi attivi", "Interest received", "Intereses cobrados", "5900"),
)

# (code, name, kind, account code)
JOURNALS: tuple[tuple[str, str, str, str | None], ...] = (
    ("VEN", "Vendite", "sales", None),
    ("ACQ", "Acquisti", "purchases", None),
    ("BNK", "Banca", "bank", BANK),
    ("CAS", "Cassa", "cash", CASH),
    ("VAR", "Varie", "misc", None),
)


def install() -> int:
    """Add the default accounts and journals that are missing (by code); the bank journal takes the company's IBAN.
    Stages in the caller's transaction; returns how many rows it added. Existing rows are never changed."""
    added = 0
    existing = {code: id_ for code, id_ in db.session.execute(sa.select(Account.code, Account.id))}
    for item in ACCOUNTS:
        if item.code in existing:
            continue
        account = Account(
            code=item.code,
            name_it=item.name_it,
            name_en=item.name_en,
            name_es=item.name_es,
            type=item.type,
            postable=item.postable,
            reconcilable=item.reconcilable,
            needs_partner=item.needs_partner,
            parent_id=existing.get(item.parent) if item.parent else None,
            active=True,
        )
        db.session.add(account)
        db.session.flush()
        existing[item.code] = account.id
        added += 1
    journals = set(db.session.scalars(sa.select(Journal.code)))
    iban = db.session.scalar(sa.select(Company.iban).order_by(Company.id).limit(1))
    for code, name, kind, account_code in JOURNALS:
        if code in journals:
            continue
        db.session.add(
            Journal(
                code=code,
                name=name,
                kind=kind,
                iban=iban if kind == "bank" else None,
                account_id=existing.get(account_code) if account_code else None,
                active=True,
            )
        )
        added += 1
    if added:
        db.session.flush()
    return added


def installed() -> bool:
    return db.session.scalar(sa.select(Journal.id).where(Journal.code == "VEN")) is not None


def ensure_installed() -> None:
    """Install the defaults when the books are empty (a new database, or tests after a wipe)."""
    if not installed():
        install()
