"""/api/v1 products, locations, stock, stock-moves and reorder-suggestions: 201s, lists, and 422s naming the field."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.api.tokens import create_token
from core.db import db
from modules.inventory import locations, reorder
from modules.inventory.tests import support


def token_for(user) -> dict[str, str]:
    _token, plaintext = create_token(user, "tests")
    db.session.commit()
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
def api(app, db_session):
    here = support.place()
    admin = support.user("back_office", "office@example.com")
    toner = support.product()
    support.receive(toner, 5, here.shelf)
    return {
        "here": here,
        "toner": toner,
        "office": token_for(admin),
        "tech": token_for(here.technician),
        "supplier": locations.virtual("supplier").id,
        "customer": locations.virtual("customer").id,
        "loss": locations.virtual("loss").id,
    }


def problem_fields(response) -> dict[str, str]:
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    return {error["field"]: error["message"] for error in response.get_json()["errors"]}


def move(client, headers, **body):
    return client.post("/api/v1/stock-moves", json=body, headers=headers)


def test_products_create_list_and_duplicate_code(client, api):
    body = {"code": "TK-5240C", "description": "Toner cyan", "cost": "62.00", "colour": "cyan", "yield_pages": 3000}
    created = client.post("/api/v1/products", json=body, headers=api["office"])
    assert created.status_code == 201
    assert created.get_json()["cost"] == "62.00" and created.get_json()["vat_rate"] == "22.00"
    assert created.headers["Location"].endswith(f"/api/v1/products/{created.get_json()['id']}")
    again = client.post("/api/v1/products", json=body, headers=api["office"])
    assert problem_fields(again) == {"code": "Another product already has the code TK-5240C."}
    listed = client.get("/api/v1/products?q=cyan", headers=api["office"]).get_json()
    assert [item["code"] for item in listed["items"]] == ["TK-5240C"]


def test_a_location_and_the_stock_on_hand(client, api):
    here = api["here"]
    shelf = client.post(
        "/api/v1/locations",
        json={"name": "Shelf B", "kind": "shelf", "parent_id": here.warehouse.id},
        headers=api["office"],
    )
    assert shelf.status_code == 201 and shelf.get_json()["path"] == "Main warehouse / Shelf B"
    orphan = client.post("/api/v1/locations", json={"name": "Loose", "kind": "shelf"}, headers=api["office"])
    assert problem_fields(orphan) == {"parent_id": "A shelf stands in a warehouse or on another shelf."}
    rows = client.get(f"/api/v1/stock?warehouse_id={here.warehouse.id}", headers=api["office"]).get_json()
    assert rows["items"] == [
        {
            "product_id": api["toner"].id,
            "product_code": "TK-5240K",
            "location_id": here.shelf.id,
            "location": "Main warehouse / Shelf A",
            "quantity": "5.000",
        }
    ]


def test_post_a_transfer_and_list_it(client, api):
    here = api["here"]
    created = move(
        client,
        api["tech"],
        product_id=api["toner"].id,
        quantity="2",
        from_location_id=here.shelf.id,
        to_location_id=here.van.id,
        kind="transfer",
    )
    assert created.status_code == 201, created.get_json()
    [item] = created.get_json()["items"]
    assert (item["quantity"], item["from_location_id"], item["to_location_id"]) == ("2.000", here.shelf.id, here.van.id)
    listed = client.get(f"/api/v1/stock-moves?location_id={here.van.id}", headers=api["office"]).get_json()
    assert [m["id"] for m in listed["items"]] == [item["id"]]
    reversed_ = client.post(f"/api/v1/stock-moves/{item['id']}/reverse", json={}, headers=api["office"])
    assert reversed_.status_code == 201 and reversed_.get_json()["reverses_id"] == item["id"]
    assert problem_fields(client.post(f"/api/v1/stock-moves/{item['id']}/reverse", json={}, headers=api["office"])) == {
        "move_id": "This move has already been reversed."
    }


def _count_moves() -> int:
    db.session.expire_all()
    return support.moves_count()


@pytest.mark.parametrize(
    ("quantity", "field", "message"),
    [
        ("0", "quantity", "The quantity must be more than zero."),
        ("-3", "quantity", "The quantity must be more than zero."),
        ("6", "quantity", "Only 5 pz of TK-5240K on hand at Shelf A."),
    ],
)
def test_bad_quantities_are_422_naming_quantity_and_write_nothing(client, api, quantity, field, message):
    before = _count_moves()
    response = move(
        client,
        api["office"],
        product_id=api["toner"].id,
        quantity=quantity,
        from_location_id=api["here"].shelf.id,
        to_location_id=api["here"].van.id,
        kind="transfer",
    )
    assert problem_fields(response) == {field: message}
    assert _count_moves() == before


def test_unknown_location_is_422_naming_it(client, api):
    before = _count_moves()
    response = move(
        client,
        api["office"],
        product_id=api["toner"].id,
        quantity="1",
        from_location_id=api["here"].shelf.id,
        to_location_id=987654,
        kind="transfer",
    )
    assert problem_fields(response) == {"to_location_id": "Unknown location."}
    assert _count_moves() == before


def test_a_serial_already_elsewhere_is_422_naming_serials(client, api):
    here = api["here"]
    copier = support.product("M5526", serial_tracked=True)
    support.receive(copier, 1, here.van, serials=["VCF001"])
    before = _count_moves()
    response = move(
        client,
        api["office"],
        product_id=copier.id,
        quantity="1",
        from_location_id=here.shelf.id,
        to_location_id=here.warehouse.id,
        kind="transfer",
        serials=["VCF001"],
    )
    assert problem_fields(response) == {"serials": "The serial number VCF001 is at Van Rossi, not at Shelf A."}
    assert _count_moves() == before


def test_a_technician_may_not_receive_from_the_supplier_nor_book_a_loss(client, api):
    here = api["here"]
    before = _count_moves()
    receipt = move(
        client,
        api["tech"],
        product_id=api["toner"].id,
        quantity="1",
        from_location_id=api["supplier"],
        to_location_id=here.van.id,
        kind="receipt",
        reference="DDT 7",
    )
    assert problem_fields(receipt) == {"from_location_id": "Only the warehouse staff move stock from or to Supplier."}
    loss = move(
        client,
        api["tech"],
        product_id=api["toner"].id,
        quantity="1",
        from_location_id=here.shelf.id,
        to_location_id=api["loss"],
        kind="count",
    )
    assert problem_fields(loss) == {"from_location_id": "You move stock only from or to your own van."}
    assert _count_moves() == before
    # The warehouse staff may.
    ok = move(
        client,
        api["office"],
        product_id=api["toner"].id,
        quantity="1",
        from_location_id=api["supplier"],
        to_location_id=here.van.id,
        kind="receipt",
        reference="DDT 7",
    )
    assert ok.status_code == 201


def test_a_delivery_names_its_customer(client, api):
    here = api["here"]
    response = move(
        client,
        api["office"],
        product_id=api["toner"].id,
        quantity="1",
        from_location_id=here.shelf.id,
        to_location_id=api["customer"],
        kind="delivery",
    )
    assert problem_fields(response) == {"partner_id": "Choose the customer."}
    ok = move(
        client,
        api["office"],
        product_id=api["toner"].id,
        quantity="1",
        from_location_id=here.shelf.id,
        to_location_id=api["customer"],
        kind="delivery",
        partner_id=here.customer.id,
    )
    assert ok.status_code == 201 and ok.get_json()["items"][0]["partner_id"] == here.customer.id


def test_reorder_suggestions(client, api):
    reorder.save_rule(
        None,
        product_id=api["toner"].id,
        warehouse_id=api["here"].warehouse.id,
        min_quantity="6",
        max_quantity="20",
        multiple="4",
    )
    db.session.commit()
    body = client.get("/api/v1/reorder-suggestions", headers=api["office"]).get_json()
    assert body["items"] == [
        {
            "product_id": api["toner"].id,
            "product_code": "TK-5240K",
            "warehouse_id": api["here"].warehouse.id,
            "warehouse": "Main warehouse",
            "on_hand": "5.000",
            "incoming": "0.000",
            "minimum": "6.000",
            "maximum": "20.000",
            "order_quantity": "16.000",
        }
    ]


def test_customers_may_not_read_inventory(client, api):
    customer_user = support.user("customer_admin", "boss@bianchi.example", customer=api["here"].customer)
    headers = token_for(customer_user)
    assert client.get("/api/v1/products", headers=headers).status_code == 403
    assert client.get("/api/v1/stock", headers=headers).status_code == 403
    assert (
        move(
            client,
            headers,
            product_id=api["toner"].id,
            quantity="1",
            from_location_id=api["here"].shelf.id,
            to_location_id=api["here"].van.id,
            kind="transfer",
        ).status_code
        == 403
    )
    assert Decimal(support.quant(api["toner"], api["here"].shelf)) == 5
