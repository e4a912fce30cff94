"""Back office: ship from the device's page, confirm a portal request, product fits, the pages staff read."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from core.db import db
from core.models import OutboxMessage
from modules.inventory import products
from modules.rentals.models import Consumable
from modules.rentals_inventory import shipments
from modules.rentals_inventory.models import ProductFit, Shipment
from modules.rentals_inventory.tests import support
from tests.auth_support import login, make_user, post_form

SHIPMENTS = "/admin/rentals_inventory_shipment"


def staff_client(app, role: str = "back_office"):
    client = app.test_client()
    make_user(f"{role}@dealer.example", role=role)
    assert login(client, f"{role}@dealer.example").status_code == 302
    return client


def test_staff_ship_consumables_from_the_devices_page(app, db_session):
    s = support.standard()
    client = staff_client(app)
    device_page = client.get(f"/admin/rentals_device/details/?id={s.device.id}").get_data(as_text=True)
    form_url = f"{SHIPMENTS}/new/?device_id={s.device.id}"

    refused = post_form(
        client,
        f"{SHIPMENTS}/new/",
        {"device_id": s.device.id, "product_id": s.black.id, "quantity": "0", "from_location_id": s.warehouse.id},
        form_url=form_url,
    )
    shipped = post_form(
        client,
        f"{SHIPMENTS}/new/",
        {"device_id": s.device.id, "product_id": s.black.id, "quantity": "2", "from_location_id": s.warehouse.id},
        form_url=form_url,
    )

    assert "Ship consumables" in device_page
    assert refused.status_code == 200
    assert "The quantity must be more than zero." in refused.get_data(as_text=True)
    assert shipped.status_code == 302
    assert db.session.scalar(sa.select(Shipment.quantity)) == Decimal(2)
    assert support.on_hand(s.black, s.warehouse) == Decimal(3)
    page = client.get(f"/admin/rentals_device/details/?id={s.device.id}").get_data(as_text=True)
    assert "TK-5240K · VCF1234567" in page


def test_staff_confirm_a_portal_request_and_the_contact_is_emailed(app, db_session):
    s = support.standard()
    request = shipments.request_toner(s.device.id, "black", 4, support.contact(s.customer))
    db.session.commit()
    client = staff_client(app)
    details = f"{SHIPMENTS}/details/?id={request.id}"

    page = client.get(details).get_data(as_text=True)
    dashboard = client.get("/admin/").get_data(as_text=True)
    confirmed = post_form(
        client,
        f"{SHIPMENTS}/confirm/",
        {"id": request.id, "product_id": s.black.id, "from_location_id": s.warehouse.id},
        form_url=details,
    )

    assert "Confirm the request" in page
    assert "Toner requests to confirm" in dashboard
    assert confirmed.status_code == 302
    assert db.session.get(Shipment, request.id).state == "shipped"
    assert db.session.scalar(sa.select(OutboxMessage.recipients)) == ["anna@bianchi.example"]


def test_a_product_fit_to_another_models_consumable_is_refused(app, db_session):
    s = support.standard()
    mono = support.device("VBB7654321", support.MONO_MODEL)
    foreign = Consumable(model_id=mono.model_id, code="TK-1160", colour="black", rated_yield=7200)
    db.session.add(foreign)
    db.session.commit()
    cyan = products.save_product(None, code="TK-5240C", description="Toner ciano", colour="cyan")
    db.session.commit()
    client = staff_client(app)
    new_fit = "/admin/rentals_inventory_product_fit/new/"

    wrong = post_form(client, new_fit, {"product": cyan.id, "model": s.device.model_id, "consumable": foreign.id})
    right = post_form(client, new_fit, {"product": cyan.id, "model": s.device.model_id, "consumable": "__None"})

    assert "TK-1160 is not a consumable of" in wrong.get_data(as_text=True)
    assert right.status_code == 302
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ProductFit)) == 2


def test_a_technician_reads_shipments_but_cannot_ship_from_the_back_office(app, db_session):
    support.standard()
    client = staff_client(app, "technician")

    assert client.get(f"{SHIPMENTS}/").status_code == 200
    assert client.get(f"{SHIPMENTS}/new/").status_code == 403
