"""Rentals demo data: a real-looking catalogue, a dozen devices and contracts of every kind (the billing examples),
the Spanish customer's under N2.1 and a state school's with its CIG and protocol number."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from core.db import db
from core.models import Partner
from modules.rentals.catalogue import find_or_create_model
from modules.rentals.contracts import create_contract
from modules.rentals.devices import create_device
from modules.rentals.models import Consumable, Contract, Device

# manufacturer, model, meters, consumables (code, colour, rated yield at 5%)
CATALOGUE = (
    ("Kyocera", "ECOSYS P2040dn", ["bw"], [("TK-1160", "black", 7200)]),
    ("HP", "LaserJet Enterprise M507dn", ["bw"], [("CF289A", "black", 5000)]),
    (
        "Kyocera",
        "ECOSYS M5526cdw",
        ["bw", "color"],
        [
            ("TK-5240K", "black", 4000),
            ("TK-5240C", "cyan", 3000),
            ("TK-5240M", "magenta", 3000),
            ("TK-5240Y", "yellow", 3000),
        ],
    ),
    (
        "Canon",
        "imageRUNNER ADVANCE DX C3826i",
        ["bw", "color", "scan"],
        [
            ("C-EXV54 BK", "black", 15500),
            ("C-EXV54 C", "cyan", 8500),
            ("C-EXV54 M", "magenta", 8500),
            ("C-EXV54 Y", "yellow", 8500),
        ],
    ),
    (
        "Ricoh",
        "IM C3000",
        ["bw", "color", "a3_bw", "a3_color", "scan"],
        [
            ("842311", "black", 33000),
            ("842314", "cyan", 18000),
            ("842313", "magenta", 18000),
            ("842312", "yellow", 18000),
        ],
    ),
    ("Konica Minolta", "bizhub 360i", ["bw", "a3_bw", "scan"], [("TN-328K", "black", 28000)]),
)

# serial, manufacturer, model, asset tag, IP address
DEVICES = (
    ("VCF1234567", "Kyocera", "ECOSYS M5526cdw", "CS-0001", "192.168.10.21"),
    ("2XK0123456", "Canon", "imageRUNNER ADVANCE DX C3826i", "CS-0002", "192.168.20.31"),
    ("2XK0123789", "Canon", "imageRUNNER ADVANCE DX C3826i", "CS-0003", "192.168.20.32"),
    ("VBB7654321", "Kyocera", "ECOSYS P2040dn", "CS-0004", None),
    ("PHBLR01234", "HP", "LaserJet Enterprise M507dn", "CS-0005", "10.0.0.15"),
    ("3100R400123", "Ricoh", "IM C3000", "CS-0006", "10.0.0.40"),
    ("A7PU021001234", "Konica Minolta", "bizhub 360i", "CS-0007", "10.0.0.41"),
    ("VBB7654322", "Kyocera", "ECOSYS P2040dn", "CS-0008", None),
    ("VBB7654323", "Kyocera", "ECOSYS P2040dn", "CS-0009", None),
    ("2XK0124001", "Canon", "imageRUNNER ADVANCE DX C3826i", "CS-0010", None),
    ("PHBLR01299", "HP", "LaserJet Enterprise M507dn", "CS-0011", None),
    ("3100R400555", "Ricoh", "IM C3000", "CS-0012", None),
)


def _bands(*bands: tuple[int | None, str]) -> list[dict]:
    return [{"up_to": up_to, "price": Decimal(price)} for up_to, price in bands]


def _allowance(meter: str, included: int, *bands: tuple[int | None, str], pooled: bool = False) -> dict:
    return {"meter": meter, "included": included, "pooled": pooled, "bands": _bands(*bands)}


CONTRACTS = (
    # Example A: monthly, one device, fee in advance.
    (
        "Studio Legale Bianchi",
        {
            "start_date": dt.date(2026, 1, 1),
            "period_months": 1,
            "fee": Decimal("50.00"),
            "fee_timing": "advance",
            "allowances": [_allowance("bw", 1000, (None, "0.012")), _allowance("color", 200, (None, "0.09"))],
            "invoice_notes": "Contratto costo copia: canone mensile anticipato.",
        },
        [("VCF1234567", {"bw": 10000, "color": 2000})],
    ),
    # Example B: quarterly, pooled black and white with bands, and a minimum charge.
    (
        "Farmacia San Marco Srl",
        {
            "start_date": dt.date(2026, 1, 1),
            "period_months": 3,
            "fee": Decimal("90.00"),
            "minimum_charge": Decimal("150.00"),
            "allowances": [
                _allowance("bw", 9000, (5000, "0.010"), (None, "0.008"), pooled=True),
                _allowance("color", 1500, (None, "0.075"), pooled=True),
                _allowance("scan", 0, (None, "0")),
            ],
            "auto_renew": True,
        },
        [
            ("2XK0123456", {"bw": 150000, "color": 40000, "scan": 9000}),
            ("2XK0123789", {"bw": 80000, "color": 22000, "scan": 500}),
        ],
    ),
    # Example C: monthly in arrears, ending mid-period.
    (
        "Hotel Bellavista Spa",
        {
            "start_date": dt.date(2026, 3, 1),
            "end_date": dt.date(2026, 6, 15),
            "period_months": 1,
            "fee": Decimal("60.00"),
            "fee_timing": "arrears",
            "allowances": [_allowance("bw", 1000, (None, "0.012"))],
        },
        [("VBB7654321", {"bw": 5000})],
    ),
    # Example E: yearly escalation of 3%.
    (
        "Academia Cervantes SL",
        {
            "start_date": dt.date(2025, 3, 1),
            "period_months": 1,
            "fee": Decimal("50.00"),
            "escalation_percent": Decimal("3"),
            # A Spanish business billed by an Italian dealer: not subject to Italian VAT (art. 7-ter), reverse charge.
            "vat_code": "N2.1",
            "allowances": [_allowance("bw", 2000, (None, "0.012"))],
        },
        [("PHBLR01234", {"bw": 32000})],
    ),
    # Half-yearly A3 colour per device with colour bands, minimum charge and auto-renewal.
    (
        "Hotel Bellavista Spa",
        {
            "start_date": dt.date(2026, 1, 1),
            "period_months": 6,
            "fee": Decimal("480.00"),
            "minimum_charge": Decimal("600.00"),
            "escalation_percent": Decimal("2.5"),
            "estimate_missing": True,
            "auto_renew": True,
            "notice_days": 180,
            "allowances": [
                _allowance("bw", 30000, (20000, "0.009"), (None, "0.007")),
                _allowance("color", 6000, (5000, "0.060"), (None, "0.045")),
                _allowance("a3_bw", 0, (None, "0.018")),
                _allowance("a3_color", 0, (None, "0.12")),
            ],
        },
        [
            ("3100R400123", {"bw": 1200, "color": 800, "a3_bw": 50, "a3_color": 20, "scan": 300}),
            ("A7PU021001234", {"bw": 400, "a3_bw": 10, "scan": 100}),
        ],
    ),
    # A state school (a public administration): its contract with the tender's CIG and the school's protocol number,
    # billed with FPA12 e-invoices under split payment.
    (
        "Istituto Comprensivo Giuseppe Mazzini",
        {
            "start_date": dt.date(2026, 11, 1),
            "period_months": 1,
            "fee": Decimal("85.00"),
            "fee_timing": "advance",
            "allowances": [_allowance("bw", 3000, (None, "0.010"))],
            "vat_code": "22",
            "cig": "Z4A3B2C1D0",
            "order_kind": "contract",
            "order_reference": "Prot. 2026/118",
            "order_date": dt.date(2026, 10, 20),
            "invoice_notes": "Noleggio stampante segreteria, affidamento diretto.",
        },
        [("VBB7654322", {"bw": 1500})],
    ),
)


def load_demo() -> None:
    """Create the catalogue, devices and contracts that are not there yet."""
    for maker, name, meters, consumables in CATALOGUE:
        model = find_or_create_model(maker, name, meters)
        known = {c.code for c in model.consumables}
        model.consumables.extend(
            Consumable(code=code, colour=colour, rated_yield=rated)
            for code, colour, rated in consumables
            if code not in known
        )
    db.session.flush()
    devices = {}
    for serial, maker, model, asset_tag, ip_address in DEVICES:
        device = db.session.scalar(sa.select(Device).where(Device.serial == serial))
        if device is None:
            device = create_device(
                {
                    "serial": serial,
                    "manufacturer": maker,
                    "model": model,
                    "asset_tag": asset_tag,
                    "ip_address": ip_address,
                }
            )
        devices[serial] = device
    db.session.flush()
    for customer_name, terms, lines in CONTRACTS:
        customer = db.session.scalar(sa.select(Partner).where(Partner.name == customer_name))
        if customer is None:
            continue
        exists = db.session.scalar(
            sa.select(Contract.id).where(
                Contract.customer_id == customer.id, Contract.start_date == terms["start_date"]
            )
        )
        if exists is not None:
            continue
        create_contract(
            {
                "customer_id": customer.id,
                **terms,
                "devices": [{"device_id": devices[serial].id, "counters": counters} for serial, counters in lines],
            }
        )
    db.session.commit()
