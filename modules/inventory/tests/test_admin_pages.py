"""The inventory back office as the warehouse staff use it: products, the locations tree, a move of each kind posted
from its form (bad input under its field, nothing written), reversing a move, stock on hand narrowed, an inventory
count, the reorder list and the dashboard card, serials; read in Italian with every record named and linked."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import lxml.html
import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from core.models import User
from modules.inventory import locations, reorder, stock
from modules.inventory.models import Location, Product, StockMove
from modules.inventory.tests import support as s
from tests.auth_support import PASSWORD, login, make_user, post_form

MOVES = "/admin/inventory_move/"
STOCK = "/admin/inventory_stock_list/"


@dataclass
class Shop:
    warehouse_id: int
    shelf_id: int
    van_id: int
    customer_id: int
    supplier_id: int
    toner_id: int
    drum_id: int


@pytest.fixture
def shop(app) -> Shop:
    """A warehouse with a shelf holding 10 black toners and two serial-tracked drums, a technician's van, a customer
    and a supplier; staff who log in (dealer admin, back office, technician) and a customer's admin."""
    with app.app_context():
        make_user("admin@dealer.example", "dealer_admin", name="Dealer Admin")
        # The technician logs in only where a test says so (a password hash costs a second here).
        technician = s.user("technician", "tech@dealer.example")
        technician.name = "Tecnico Rossi"
        place_customer = s.customer("Studio Bianchi")
        from core.models import Partner

        supplier = Partner(name="Ricambi Srl", is_customer=False, is_supplier=True)
        db.session.add(supplier)
        db.session.commit()
        warehouse = s.location("Magazzino Milano")
        shelf = s.location("Scaffale A", "shelf", warehouse)
        van = s.location("Furgone Rossi", "van", technician=db.session.get(User, technician.id))
        toner = s.product("TK-1160", barcode="8012345000016", colour="black", yield_pages=7200)
        drum = s.product("DK-1150", serial_tracked=True, yield_pages=100000)
        s.receive(toner, 10, shelf)
        s.receive(drum, 2, shelf, serials=["LVX001", "LVX002"])
        return Shop(warehouse.id, shelf.id, van.id, place_customer.id, supplier.id, toner.id, drum.id)


def staff(app, email: str = "admin@dealer.example"):
    limiter.reset()
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def _text(html: str, xpath: str) -> str:
    return " ".join(" ".join(node.text_content().split()) for node in lxml.html.fromstring(html).xpath(xpath))


def on_hand(app, product_id: int, location_id: int, subtree: bool = False) -> Decimal:
    with app.app_context():
        return stock.on_hand(product_id, location_id, subtree)


def moves(app) -> int:
    with app.app_context():
        return s.moves_count()


def test_staff_read_the_pages_the_back_office_posts_and_customers_stay_out(app, shop):
    pages = [
        MOVES,
        STOCK,
        "/admin/inventory_product/",
        "/admin/inventory_location/",
        "/admin/inventory_serial/",
        "/admin/inventory_to_reorder/",
        "/admin/inventory_reorder_rule/",
        "/admin/inventory_expected/",
        f"/admin/inventory_product/details/?id={shop.toner_id}",
        f"/admin/inventory_location/details/?id={shop.warehouse_id}",
    ]
    with app.app_context():
        from core.auth import services

        services.set_password(db.session.scalar(sa.select(User).where(User.email == "tech@dealer.example")), PASSWORD)
        make_user("office@dealer.example", "back_office", name="Back Office")
        make_user("anna@bianchi.example", "customer_admin", customer_id=shop.customer_id, name="Anna Bianchi")
    technician = staff(app, "tech@dealer.example")
    for page in pages:
        assert technician.get(page).status_code == 200, page
    # Reading is every staff's; posting moves, counting and editing the warehouse staff's.
    assert technician.get(f"{MOVES}new/?kind=receipt").status_code == 403
    assert technician.get(f"/admin/inventory_count/?location_id={shop.shelf_id}").status_code == 403
    office = staff(app, "office@dealer.example")
    assert office.get(f"{MOVES}new/?kind=receipt").status_code == 200
    assert office.get(f"/admin/inventory_count/?location_id={shop.shelf_id}").status_code == 200
    limiter.reset()
    customer = app.test_client()
    assert login(customer, "anna@bianchi.example", url="/portal/login").status_code == 302
    for page in pages:
        assert customer.get(page).status_code == 403, page
    stranger = app.test_client()
    assert stranger.get(STOCK).status_code == 302


def test_a_receipt_posted_from_the_form_is_on_the_shelf_with_its_supplier_document(app, shop):
    client = staff(app)
    form = f"{MOVES}new/?kind=receipt"
    response = post_form(
        client,
        form,
        {
            "kind": "receipt",
            "product": str(shop.toner_id),
            "quantity": "6",
            "to_location": str(shop.shelf_id),
            "partner": str(shop.supplier_id),
            "reference": "DDT 2026/0999",
        },
    )
    assert response.status_code == 302
    assert on_hand(app, shop.toner_id, shop.shelf_id) == Decimal(16)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "DDT 2026/0999" in page and "Ricambi Srl" in page
    # The stock page, narrowed to the warehouse, counts the shelf's toners.
    listed = client.get(f"{STOCK}?warehouse_id={shop.warehouse_id}").get_data(as_text=True)
    rows = _text(listed, "//table[@id='stock-rows']//tr[td]")
    assert "TK-1160" in rows and "Magazzino Milano / Scaffale A" in rows and "16" in rows


@pytest.mark.parametrize(
    ("quantity", "message"),
    [("0", "The quantity must be more than zero."), ("-2", "The quantity must be more than zero."), ("tre", "tre")],
)
def test_a_bad_quantity_is_shown_under_its_field_and_writes_nothing(app, shop, quantity, message):
    client = staff(app)
    before = moves(app)
    response = post_form(
        client,
        f"{MOVES}new/?kind=transfer",
        {
            "kind": "transfer",
            "product": str(shop.toner_id),
            "quantity": quantity,
            "from_location": str(shop.shelf_id),
            "to_location": str(shop.van_id),
        },
    )
    assert response.status_code == 200
    error = _text(response.get_data(as_text=True), "//*[@id='quantity-error']")
    assert message in error
    assert moves(app) == before
    assert on_hand(app, shop.toner_id, shop.shelf_id) == Decimal(10)


def test_a_delivery_beyond_what_is_on_the_shelf_is_refused_and_names_the_customer_when_left_out(app, shop):
    client = staff(app)
    form = f"{MOVES}new/?kind=delivery"
    data = {"kind": "delivery", "product": str(shop.toner_id), "from_location": str(shop.shelf_id)}
    response = post_form(client, form, {**data, "quantity": "1"})
    assert _text(response.get_data(as_text=True), "//*[@id='partner-error']")
    response = post_form(client, form, {**data, "quantity": "11", "partner": str(shop.customer_id)})
    assert _text(response.get_data(as_text=True), "//*[@id='quantity-error']")
    assert moves(app) == 2 + 1  # the fixture's receipts: one of toners, two drums
    response = post_form(client, form, {**data, "quantity": "4", "partner": str(shop.customer_id)})
    assert response.status_code == 302
    assert on_hand(app, shop.toner_id, shop.shelf_id) == Decimal(6)


def test_serials_move_one_by_one_and_the_serial_page_shows_where_the_unit_went(app, shop):
    client = staff(app)
    response = post_form(
        client,
        f"{MOVES}new/?kind=transfer",
        {
            "kind": "transfer",
            "product": str(shop.drum_id),
            "serials": "LVX002",
            "from_location": str(shop.shelf_id),
            "to_location": str(shop.van_id),
        },
    )
    assert response.status_code == 302
    with app.app_context():
        from modules.inventory.models import SerialNumber

        unit = db.session.scalar(sa.select(SerialNumber).where(SerialNumber.serial == "LVX002"))
        assert unit.location_id == shop.van_id
        unit_id = unit.id
    page = client.get(f"/admin/inventory_serial/details/?id={unit_id}").get_data(as_text=True)
    history = _text(page, "//table[@id='serial-moves']//tr[td]")
    assert "Furgone Rossi" in history and "Scaffale A" in history
    # A serial already moved cannot move again from the shelf.
    again = post_form(
        client,
        f"{MOVES}new/?kind=transfer",
        {
            "kind": "transfer",
            "product": str(shop.drum_id),
            "serials": "LVX002",
            "from_location": str(shop.shelf_id),
            "to_location": str(shop.van_id),
        },
    )
    assert _text(again.get_data(as_text=True), "//*[@id='serials-error']")


def test_reversing_a_move_puts_the_stock_back_once(app, shop):
    client = staff(app)
    with app.app_context():
        move = db.session.scalar(sa.select(StockMove).where(StockMove.product_id == shop.toner_id))
        move_id = move.id
    details = f"{MOVES}details/?id={move_id}"
    assert "reverse-move" in client.get(details).get_data(as_text=True)
    response = post_form(client, f"{MOVES}reverse/?id={move_id}", {}, form_url=details)
    assert response.status_code == 302
    assert on_hand(app, shop.toner_id, shop.shelf_id) == Decimal(0)
    page = client.get(details).get_data(as_text=True)
    assert "move-reversed" in page and "reverse-move" not in page
    with app.app_context():
        reverse = db.session.scalar(sa.select(StockMove).where(StockMove.reverses_id == move_id))
        assert reverse.from_location_id == shop.shelf_id


def test_an_inventory_count_books_the_difference_to_inventory_loss(app, shop):
    client = staff(app)
    page = f"/admin/inventory_count/?location_id={shop.shelf_id}"
    assert "TK-1160" in client.get(page).get_data(as_text=True)
    response = post_form(
        client,
        f"/admin/inventory_count/post/?location_id={shop.shelf_id}",
        {f"counted_{shop.toner_id}": "7"},
        form_url=page,
    )
    assert response.status_code == 302
    assert on_hand(app, shop.toner_id, shop.shelf_id) == Decimal(7)
    with app.app_context():
        loss = locations.virtual("loss")
        assert stock.on_hand(shop.toner_id, loss.id) == Decimal(3)
    refused = post_form(
        client,
        f"/admin/inventory_count/post/?location_id={shop.shelf_id}",
        {f"counted_{shop.toner_id}": "x"},
        form_url=page,
    )
    assert refused.status_code == 422
    assert on_hand(app, shop.toner_id, shop.shelf_id) == Decimal(7)


def test_the_reorder_list_and_the_dashboard_card_show_a_product_below_its_minimum(app, shop):
    with app.app_context():
        reorder.save_rule(
            None, product_id=shop.toner_id, warehouse_id=shop.warehouse_id, min_quantity=12, max_quantity=20, multiple=2
        )
        db.session.commit()
    client = staff(app)
    page = client.get("/admin/inventory_to_reorder/").get_data(as_text=True)
    row = _text(page, "//table[@id='reorder-suggestions']//tr[td]")
    assert "TK-1160" in row and "Magazzino Milano" in row and "10" in row
    dashboard = lxml.html.fromstring(client.get("/admin/").get_data(as_text=True))
    card = dashboard.xpath("//div[@class='card-body'][div[contains(., 'Products to reorder')]]//a")
    assert card and card[0].get("href").endswith("/admin/inventory_to_reorder/")
    assert card[0].text_content().strip() == "1"
    # "Record the order" fills the order due; once recorded it counts as incoming and the product leaves the list.
    link = lxml.html.fromstring(page).xpath("//table[@id='reorder-suggestions']//a[contains(@href, 'expected')]")
    form = link[0].get("href")
    prefilled = client.get(form).get_data(as_text=True)
    assert 'value="10' in prefilled
    response = post_form(
        client,
        form,
        {"product": str(shop.toner_id), "warehouse": str(shop.warehouse_id), "quantity": "10", "reference": "Ord 7"},
    )
    assert response.status_code == 302
    assert "nothing-to-reorder" in client.get("/admin/inventory_to_reorder/").get_data(as_text=True)


def test_the_product_form_refuses_a_code_already_taken_under_its_field(app, shop):
    client = staff(app)
    response = post_form(
        client,
        "/admin/inventory_product/new/",
        {"code": "tk-1160", "description": "Duplicate", "unit": "pz", "cost": "1", "sale_price": "2", "vat_rate": "22"},
    )
    assert response.status_code == 200
    assert "already has the code" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Product)) == 2
    created = post_form(
        client,
        "/admin/inventory_product/new/",
        {
            "code": "TK-5240K",
            "description": "Toner nero",
            "unit": "pz",
            "cost": "1",
            "sale_price": "2",
            "vat_rate": "22",
        },
    )
    assert created.status_code == 302


def test_the_locations_page_is_a_tree_and_a_second_van_for_the_technician_is_refused(app, shop):
    client = staff(app)
    page = client.get("/admin/inventory_location/").get_data(as_text=True)
    tree = lxml.html.fromstring(page)
    shelf = tree.xpath("//li[@data-location='Magazzino Milano']//li[@data-location='Scaffale A']")
    assert shelf, page
    assert tree.xpath("//li[@data-location='Furgone Rossi']") and "Tecnico Rossi" in page
    with app.app_context():
        technician = db.session.scalar(sa.select(User).where(User.email == "tech@dealer.example")).id
    response = post_form(
        client,
        "/admin/inventory_location/new/",
        {"name": "Furgone 2", "kind": "van", "technician": str(technician), "active": "y"},
    )
    assert response.status_code == 200
    assert "already has the van" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Location).where(Location.kind == "van")) == 1


def test_the_customer_page_lists_what_was_delivered_to_it(app, shop):
    with app.app_context():
        stock.post_move(
            shop.toner_id,
            Decimal(2),
            shop.shelf_id,
            locations.virtual("customer").id,
            kind="delivery",
            partner_id=shop.customer_id,
            reference="Intervento 55",
        )
        db.session.commit()
    client = staff(app)
    page = client.get(f"/admin/core_partner/details/?id={shop.customer_id}").get_data(as_text=True)
    assert "Deliveries from stock" in page and "TK-1160" in page and "Intervento 55" in page


def test_the_pages_read_in_italian_name_and_link_every_record(app, shop):
    from tests.test_back_office_labels import _problems, _record_pages

    with app.app_context():
        admin = db.session.scalar(sa.select(User).where(User.email == "admin@dealer.example"))
        admin.language = "it"
        db.session.commit()
        admin_id = admin.id
        move_id = db.session.scalar(sa.select(StockMove.id).order_by(StockMove.id))
    client = staff(app)
    views = {view.endpoint: view for view in app.extensions["copydesk"].admin._views}
    pages = [
        ("/admin/inventory_move/", "inventory_move"),
        (f"/admin/inventory_move/details/?id={move_id}", "inventory_move"),
        (STOCK, "inventory_stock_list"),
        ("/admin/inventory_product/", "inventory_product"),
        (f"/admin/inventory_product/details/?id={shop.drum_id}", "inventory_product"),
        ("/admin/inventory_location/", "inventory_location"),
        (f"/admin/inventory_location/details/?id={shop.shelf_id}", "inventory_location"),
        (f"/admin/inventory_count/?location_id={shop.shelf_id}", "inventory_count"),
        ("/admin/inventory_serial/", "inventory_serial"),
        ("/admin/inventory_import/", "inventory_import"),
    ]
    with app.app_context():
        records, linkable = _record_pages(app, admin_id)
    problems = []
    for url, endpoint in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        with app.app_context():
            problems += _problems(app, url, views[endpoint], response.get_data(as_text=True), records, linkable)
    assert not problems, "\n".join(problems)
