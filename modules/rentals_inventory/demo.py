"""Bridge demo data: the catalogue's consumables as fitted products, and a year of toner shipments to the demo devices
matching what their pages need (metering's demo volumes), so the consumption check finds them normal."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from core import clock
from core.db import db
from core.models import Partner
from modules.inventory import locations, stock
from modules.inventory.models import Location, Product
from modules.inventory.products import product_by_code, save_product
from modules.rentals.models import Contract, ContractLine, Device, DeviceModel
from modules.rentals.periods import periods
from modules.rentals_inventory import shipments
from modules.rentals_inventory.models import ProductFit, Shipment

# Pages a day metering's demo prints per meter (modules/metering/demo.py), and what each toner colour prints.
DAILY_PAGES = {"bw": 120, "color": 35}
WINDOW_DAYS = 365
# The contract of this customer starting on this date bills its toner (the rest include consumables).
BILLED_TONER = ("Farmacia San Marco Srl", dt.date(2026, 1, 1))
COLOUR_NAMES = {"black": "nero", "cyan": "ciano", "magenta": "magenta", "yellow": "giallo"}
WAREHOUSE = "Magazzino centrale"
# Products the catalogue does not list as consumables that fit demo models: (product code, manufacturer, model).
EXTRA_FITS = (("DK-1150", "Kyocera", "ECOSYS P2040dn"),)


def _product_for(consumable) -> Product:
    """The inventory product of a catalogue consumable, by its code (the inventory demo's, or made here)."""
    product = product_by_code(consumable.code)
    if product is None:
        price = Decimal(consumable.rated_yield) / Decimal(100)
        product = save_product(
            None,
            code=consumable.code,
            description=f"Toner {COLOUR_NAMES.get(consumable.colour, consumable.colour)} {consumable.code}",
            cost=(price * Decimal("0.6")).quantize(Decimal("0.01")),
            sale_price=price.quantize(Decimal("0.01")),
            colour=consumable.colour,
            yield_pages=consumable.rated_yield,
        )
    return product


def _fit_catalogue() -> None:
    models = db.session.scalars(
        sa.select(DeviceModel).options(selectinload(DeviceModel.consumables), selectinload(DeviceModel.manufacturer))
    ).all()
    fitted = set(db.session.execute(sa.select(ProductFit.product_id, ProductFit.model_id)).tuples())
    for model in models:
        for consumable in model.consumables:
            product = _product_for(consumable)
            if (product.id, model.id) not in fitted:
                db.session.add(ProductFit(product_id=product.id, model_id=model.id, consumable_id=consumable.id))
                fitted.add((product.id, model.id))
    for code, maker, name in EXTRA_FITS:
        product = product_by_code(code)
        model = next((m for m in models if m.name == name and m.manufacturer.name == maker), None)
        if product is not None and model is not None and (product.id, model.id) not in fitted:
            db.session.add(ProductFit(product_id=product.id, model_id=model.id))
    db.session.flush()


def _warehouse() -> Location:
    warehouse = db.session.scalars(
        sa.select(Location).where(Location.kind == "warehouse", Location.active.is_(True)).order_by(Location.id)
    ).first()
    if warehouse is None:
        warehouse = Location(name=WAREHOUSE, kind="warehouse", active=True)
        db.session.add(warehouse)
        db.session.flush()
    return warehouse


def _colour_pages(colour: str, meters: list[str]) -> int:
    """Pages a day using that toner: black prints bw and colour pages, the colour toners colour pages."""
    if colour == "black":
        return sum(DAILY_PAGES.get(meter, 0) for meter in ("bw", "color") if meter in meters)
    return DAILY_PAGES["color"] if "color" in meters else 0


def last_read_day(contract: Contract, today: dt.date) -> dt.date | None:
    """The last day whose pages the readings know: the end of the contract's last period before today (metering's
    demo reads at each period's end)."""
    ends = [p.end for p in periods(contract.start_date, contract.period_months, contract.end_date, until=today)]
    ended = [end for end in ends if end < today]
    return ended[-1] if ended else None


def planned_shipments(line: ContractLine, today: dt.date) -> list[tuple[str, dt.date, int]]:
    """(consumable code, ship date, quantity) over the last year: the cartridges the pages read need, spread evenly.

    Black ships the whole cartridges the pages need (the toner levels read make up the rest), the colours the
    nearest whole number, so neither is flagged over or under by the consumption check.
    """
    end = last_read_day(line.contract, today)
    if end is not None and line.contract.end_date is not None:
        end = min(end, line.contract.end_date)  # the last period may run past the contract's end
    start = max(line.start_date, today - dt.timedelta(days=WINDOW_DAYS))
    if end is None or end <= start:
        return []
    days = (end - start).days
    model = line.device.model
    plan = []
    for consumable in model.consumables:
        pages = _colour_pages(consumable.colour, model.meter_codes) * days
        expected = pages / consumable.rated_yield
        count = math.floor(expected) if consumable.colour == "black" else round(expected)
        for i in range(count):
            plan.append((consumable.code, start + dt.timedelta(days=int((i + 0.5) * days / count)), 1))
    return sorted(plan, key=lambda item: item[1])


def _ship_year(warehouse: Location, today: dt.date) -> None:
    lines = db.session.scalars(
        sa.select(ContractLine)
        .join(Contract)
        .where(ContractLine.end_date.is_(None), Contract.state == "active")
        .options(
            selectinload(ContractLine.device).selectinload(Device.model).selectinload(DeviceModel.consumables),
            selectinload(ContractLine.contract),
        )
        .order_by(ContractLine.id)
    ).all()
    served = set(db.session.scalars(sa.select(Shipment.device_id).distinct()))
    for line in lines:
        if line.device_id in served:
            continue
        plan = planned_shipments(line, today)
        if not plan:
            continue
        products = {code: product_by_code(code) for code in {code for code, _day, _n in plan}}
        for code, product in products.items():
            wanted = sum(n for c, _day, n in plan if c == code)
            stock.post_move(
                product.id,
                Decimal(wanted),
                locations.virtual("supplier").id,
                warehouse.id,
                kind="receipt",
                move_date=plan[0][1] - dt.timedelta(days=7),
                reference=f"DDT {line.device.serial}",
            )
        for code, day, quantity in plan:
            shipments.ship(line.device_id, products[code].id, Decimal(quantity), warehouse.id, ship_date=day)


def load_demo() -> None:
    """Fits for every catalogue consumable, then a year of shipments to each device on an active contract that has
    none yet (idempotent); one contract bills its toner, so its shipments reach the billing run."""
    today = clock.today()
    _fit_catalogue()
    customer, start = BILLED_TONER
    contract = db.session.scalar(
        sa.select(Contract).where(Contract.start_date == start, Contract.customer.has(Partner.name == customer))
    )
    if contract is not None and contract.consumables_included:
        contract.consumables_included = False
    _ship_year(_warehouse(), today)
    db.session.commit()
