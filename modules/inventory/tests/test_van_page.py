"""The technician's phone page: their own van's stock (another technician's van is not theirs to open), receiving a
transfer from the warehouse by scanning a barcode, delivering by barcode or serial to a customer (or, through the
bridge's hook, to a device), refusals under their field with nothing written; no asset from another site."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import lxml.html
import pytest
import sqlalchemy as sa

from core.db import db
from core.extension_points import DEVICE_DELIVERY, DeliveryTarget
from core.extensions import limiter
from core.models import User
from modules.inventory import locations, stock
from modules.inventory.models import StockMove
from modules.inventory.tests import support as s
from tests.auth_support import login, make_user, post_form

PAGE = "/inventory/van/"


@dataclass
class Van:
    van_id: int
    shelf_id: int
    customer_id: int
    toner_id: int
    drum_id: int


@pytest.fixture
def loaded(app) -> Van:
    """Tecnico Rossi's van with 3 toners and the drum LVX001, a shelf with 5 more toners, a customer."""
    with app.app_context():
        technician = make_user("rossi@dealer.example", "technician", name="Tecnico Rossi")
        warehouse = s.location("Magazzino Milano")
        shelf = s.location("Scaffale A", "shelf", warehouse)
        mine = s.location("Furgone Rossi", "van", technician=db.session.get(User, technician.id))
        s.location("Furgone Verdi", "van", technician=s.user("technician", "verdi@dealer.example"))
        customer = s.customer("Studio Bianchi")
        toner = s.product("TK-1160", barcode="8012345000016", colour="black", yield_pages=7200)
        drum = s.product("DK-1150", serial_tracked=True)
        s.receive(toner, 8, shelf)
        s.receive(drum, 1, shelf, serials=["LVX001"])
        stock.post_move(toner.id, Decimal(3), shelf.id, mine.id, kind="transfer")
        stock.post_move(drum.id, Decimal(1), shelf.id, mine.id, kind="transfer", serials=["LVX001"])
        db.session.commit()
        return Van(mine.id, shelf.id, customer.id, toner.id, drum.id)


def technician(app, email: str = "rossi@dealer.example"):
    limiter.reset()
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def _text(html: str, xpath: str) -> str:
    return " ".join(" ".join(node.text_content().split()) for node in lxml.html.fromstring(html).xpath(xpath))


def on_hand(app, product_id: int, location_id: int) -> Decimal:
    with app.app_context():
        return stock.on_hand(product_id, location_id)


def test_the_technician_sees_their_vans_stock_and_not_another_technicians(app, loaded):
    client = technician(app)
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert _text(html, "//h1") == "Furgone Rossi"
    rows = _text(html, "//table[@id='van-stock']//tr[td]")
    assert "TK-1160" in rows and "3 pz" in rows and "LVX001" in rows
    # Phone-first and self-contained: every stylesheet, script and image from this server.
    tree = lxml.html.fromstring(html)
    assets = tree.xpath("//link[@rel='stylesheet']/@href | //script/@src | //img/@src")
    assert assets and all(address.startswith("/") and not address.startswith("//") for address in assets)
    assert tree.xpath("//meta[@name='viewport']")
    with app.app_context():
        other = db.session.scalar(sa.select(User).where(User.email == "verdi@dealer.example"))
        other_van = locations.van_of(other).id
    assert client.get(f"{PAGE}{other_van}/").status_code == 404


def test_customers_may_not_open_it_and_a_technician_without_a_van_is_told_so(app, loaded):
    with app.app_context():
        make_user("bianchi@example.com", "customer_admin", customer_id=loaded.customer_id)
        make_user("neri@dealer.example", "technician", name="Tecnico Neri")
    limiter.reset()
    customer = app.test_client()
    assert login(customer, "bianchi@example.com", url="/portal/login").status_code == 302
    assert customer.get(PAGE).status_code == 403
    assert app.test_client().get(PAGE).status_code == 302  # to the login page
    page = technician(app, "neri@dealer.example").get(PAGE).get_data(as_text=True)
    assert "no-van" in page


def test_receiving_a_transfer_by_barcode_moves_the_toners_from_the_shelf_into_the_van(app, loaded):
    client = technician(app)
    response = post_form(
        client,
        f"{PAGE}{loaded.van_id}/receive",
        {"from_location": str(loaded.shelf_id), "item": "8012345000016", "quantity": "2"},
        form_url=PAGE,
    )
    assert response.status_code == 302
    assert on_hand(app, loaded.toner_id, loaded.van_id) == Decimal(5)
    assert on_hand(app, loaded.toner_id, loaded.shelf_id) == Decimal(3)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Received into the van: 2" in page and "TK-1160" in page


def test_delivering_a_serial_to_a_customer_takes_that_unit_out_of_the_van(app, loaded):
    client = technician(app)
    response = post_form(
        client,
        f"{PAGE}{loaded.van_id}/deliver",
        {"item": "lvx001", "customer": str(loaded.customer_id), "quantity": "1", "reference": "Intervento 12"},
        form_url=PAGE,
    )
    assert response.status_code == 302
    assert on_hand(app, loaded.drum_id, loaded.van_id) == Decimal(0)
    with app.app_context():
        move = db.session.scalar(sa.select(StockMove).order_by(StockMove.id.desc()))
        assert (move.kind, move.serial, move.partner_id, move.reference) == (
            "delivery",
            "LVX001",
            loaded.customer_id,
            "Intervento 12",
        )
    page = client.get(PAGE).get_data(as_text=True)
    assert "Delivered DK-1150, serial LVX001 to Studio Bianchi." in page
    assert "LVX001" not in _text(page, "//table[@id='van-stock']")


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"item": "NOPE-123", "quantity": "1"}, "item", "Nothing has the code NOPE-123"),
        ({"item": "TK-1160", "quantity": "0"}, "quantity", "more than zero"),
        ({"item": "TK-1160", "quantity": "4"}, "quantity", ""),
        ({"item": "DK-1150", "quantity": "1"}, "item", "serial"),
        ({"item": "TK-1160", "quantity": "1", "customer": ""}, "customer", "Choose the customer."),
    ],
)
def test_a_refused_delivery_says_why_under_its_field_and_writes_nothing(app, loaded, data, field, message):
    client = technician(app)
    with app.app_context():
        before = s.moves_count()
    data = {"customer": str(loaded.customer_id), **data}
    response = post_form(client, f"{PAGE}{loaded.van_id}/deliver", data, form_url=PAGE)
    assert response.status_code == 422
    error = _text(response.get_data(as_text=True), f"//*[@id='deliver-{field}-error']")
    assert error and message in error
    with app.app_context():
        assert s.moves_count() == before
    assert on_hand(app, loaded.toner_id, loaded.van_id) == Decimal(3)


class ToCustomerOfDevice:
    """What a bridge registers: devices found by serial, a delivery to one posted as a move to the customer location
    tagged with the device's customer (the rentals_inventory bridge also records its shipment)."""

    def __init__(self, customer_id: int) -> None:
        self.customer_id = customer_id
        self.delivered: list[int] = []

    def find_device(self, text: str) -> DeliveryTarget | None:
        if text.upper() != "VCF1234567":
            return None
        return DeliveryTarget(7, "VCF1234567 · Kyocera ECOSYS M5526cdw", self.customer_id, "Studio Bianchi")

    def deliver(self, device_id, product_id, quantity, from_location_id, serials, user) -> None:
        stock.post_move(
            product_id,
            quantity,
            from_location_id,
            locations.virtual("customer").id,
            kind="delivery",
            serials=serials,
            partner_id=self.customer_id,
            reference=f"device {device_id}",
            user=user,
        )
        self.delivered.append(device_id)


def test_with_a_bridge_the_page_delivers_to_the_device_scanned(app, loaded, monkeypatch):
    bridge = ToCustomerOfDevice(loaded.customer_id)
    monkeypatch.setitem(app.extensions["copydesk"].extensions._items, DEVICE_DELIVERY, [bridge])
    client = technician(app)
    page = client.get(PAGE).get_data(as_text=True)
    assert "deliver-device" in page and "deliver-customer" not in page
    unknown = post_form(client, f"{PAGE}{loaded.van_id}/deliver", {"item": "TK-1160", "device": "XX"}, form_url=PAGE)
    assert unknown.status_code == 422
    assert "XX" in _text(unknown.get_data(as_text=True), "//*[@id='deliver-device-error']")
    response = post_form(
        client, f"{PAGE}{loaded.van_id}/deliver", {"item": "TK-1160", "device": "vcf1234567"}, form_url=PAGE
    )
    assert response.status_code == 302
    assert bridge.delivered == [7]
    assert on_hand(app, loaded.toner_id, loaded.van_id) == Decimal(2)
    assert "to VCF1234567 · Kyocera ECOSYS M5526cdw" in client.get(PAGE).get_data(as_text=True)


def test_the_back_office_opens_any_van_and_acts_for_it(app, loaded):
    with app.app_context():
        make_user("office@dealer.example", "back_office", name="Back Office")
    client = technician(app, "office@dealer.example")
    page = client.get(PAGE).get_data(as_text=True)
    assert "no-van" in page and "Furgone Rossi" in _text(page, "//ul[@class='van-list']")
    assert "Furgone Rossi" in client.get(f"{PAGE}{loaded.van_id}/").get_data(as_text=True)
    response = post_form(
        client,
        f"{PAGE}{loaded.van_id}/receive",
        {"from_location": str(loaded.shelf_id), "item": "TK-1160", "quantity": "1"},
        form_url=f"{PAGE}{loaded.van_id}/",
    )
    assert response.status_code == 302
    assert on_hand(app, loaded.toner_id, loaded.van_id) == Decimal(4)
