"""CSV import of devices and contracts: every row's errors by row and column first, then all rows or none."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from core.db import db
from core.extensions import limiter
from modules.rentals import imports
from modules.rentals.models import Contract, Device
from tests.api_support import add_customer
from tests.auth_support import csrf_token, login, make_user

HEADER = "serial,manufacturer,model,meters,asset_tag,ip_address,status,customer,site,notes"


def device_rows(count: int) -> list[str]:
    return [
        f"SN{n:05d},Kyocera,ECOSYS P2040dn,bw,A-{n},10.0.{n // 250}.{n % 250 + 1},in_stock,,," for n in range(count)
    ]


def devices(db_session) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Device))


def test_500_devices_with_3_bad_rows_show_3_errors_and_write_nothing_then_all_500(db_session):
    rows = device_rows(500)
    good = list(rows)
    rows[9] = rows[9].replace("10.0.0.10", "10.0.0.999")  # file row 11
    rows[199] = rows[199].replace(",in_stock,", ",lost,")  # file row 201
    rows[449] = rows[449].replace("SN00449", "")  # file row 451

    result = imports.import_devices("\n".join([HEADER, *rows]), commit=True)

    assert result.rows == 500
    assert [(row, column) for row, column, _message in result.errors] == [
        (11, "ip_address"),
        (201, "status"),
        (451, "serial"),
    ]
    assert "10.0.0.999" in result.errors[0][2]
    assert devices(db_session) == 0

    fixed = imports.import_devices("\n".join([HEADER, *good]), commit=True)

    assert fixed.ok and fixed.written == 500
    assert devices(db_session) == 500


def test_a_serial_twice_in_the_file_is_an_error_on_the_second_row(db_session):
    rows = device_rows(3)
    rows.append(rows[1].replace("A-1", "A-dup").replace("10.0.0.2", "10.0.0.200"))

    result = imports.import_devices("\n".join([HEADER, *rows]), commit=True)

    assert [(row, column) for row, column, _message in result.errors] == [(5, "serial")]
    assert devices(db_session) == 0


def test_preview_writes_nothing_even_when_every_row_is_right(db_session):
    result = imports.import_devices("\n".join([HEADER, *device_rows(5)]), commit=False)

    assert result.ok and result.rows == 5 and result.written == 0
    assert devices(db_session) == 0


def test_semicolon_files_and_customers_by_vat_number_are_understood(db_session):
    customer = add_customer("Studio Legale Bianchi", vat_number="12345670157")
    text = (
        "serial;manufacturer;model;meters;customer;status\n"
        "W8A1;Canon;iR C3826i;bw|color|scan;IT 12345670157;installed\n"
    )

    result = imports.import_devices(text, commit=True)

    assert result.ok, result.errors
    device = db.session.scalar(sa.select(Device))
    assert device.customer_id == customer.id
    assert device.model.meter_codes == ["bw", "color", "scan"]


def test_missing_and_unknown_columns_are_reported_on_the_header_row(db_session):
    result = imports.import_devices("serial,maker\nSN1,Kyocera\n", commit=True)

    assert {(row, column) for row, column, _message in result.errors} == {(1, "manufacturer, model"), (1, "maker")}


def test_contracts_import_with_allowances_bands_and_devices(db_session):
    add_customer("Farmacia San Marco Srl", vat_number="23456780016")
    imports.import_devices(
        "serial,manufacturer,model,meters\nA1,Canon,iR C3826i,bw|color\nA2,Canon,iR C3826i,\n", commit=True
    )
    columns = "customer,start_date,period_months,fee,allowances,devices"
    good = (
        '23456780016,2026-01-01,3,90.00,"bw 9000 pooled 5000@0.010 0.008; color 1500 0.075",'
        '"A1 bw=100 color=10; A2 bw=5 color=1"'
    )
    bad = '23456780016,2026-01-01,3,90.00,"bw 9000 pooled 5000@0.010 4000@0.009 0.008",A9 bw=1'

    failed = imports.import_contracts("\n".join([columns, good, bad]), commit=True)

    assert [(row, column) for row, column, _message in failed.errors] == [(3, "devices"), (3, "allowances")]
    assert "band 2" in failed.errors[1][2]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Contract)) == 0

    written = imports.import_contracts("\n".join([columns, good]), commit=True)

    assert written.written == 1
    contract = db.session.scalar(sa.select(Contract))
    assert contract.state == "active" and contract.period_months == 3
    bw = contract.allowances[0]
    assert (bw.meter, bw.included, bw.pooled, [up_to for up_to, _price in bw.band_pairs]) == (
        "bw",
        9000,
        True,
        [5000, None],
    )
    assert sorted(line.device.serial for line in contract.lines) == ["A1", "A2"]


def test_templates_have_the_documented_columns_and_import_cleanly(db_session):
    for kind, columns in (("devices", imports.DEVICE_COLUMNS), ("contracts", imports.CONTRACT_COLUMNS)):
        header = next(csv.reader(io.StringIO(imports.template_csv(kind))))
        assert header[: len(columns)] == list(columns)
    add_customer("Studio Legale Bianchi", vat_number="12345670157")
    assert imports.import_devices(imports.template_csv("devices"), commit=True).ok
    assert imports.import_contracts(imports.template_csv("contracts"), commit=True).ok


@pytest.fixture
def dealer(app):
    limiter.reset()
    with app.app_context():
        make_user("dealer@example.it", "dealer_admin")
    client = app.test_client()
    assert login(client, "dealer@example.it").status_code == 302
    return client


def test_import_page_checks_then_imports_through_the_browser_form(app, dealer):
    text = "\n".join([HEADER, *device_rows(3)])
    token = csrf_token(dealer, "/admin/rentals_import/")

    preview = dealer.post(
        "/admin/rentals_import/run/",
        data={"csrf_token": token, "kind": "devices", "step": "check", "file": (io.BytesIO(text.encode()), "d.csv")},
        content_type="multipart/form-data",
    )
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Import 3 rows" in page
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 0

    done = dealer.post(
        "/admin/rentals_import/run/",
        data={"csrf_token": token, "kind": "devices", "step": "import", "content": text},
        follow_redirects=True,
    )
    assert "3 rows imported" in done.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Device)) == 3
    template = dealer.get("/admin/rentals_import/template/devices.csv")
    assert template.mimetype == "text/csv" and template.get_data(as_text=True).startswith("serial,manufacturer")


def test_import_page_lists_bad_rows_by_row_and_column(app, dealer):
    rows = device_rows(3)
    rows[1] = rows[1].replace("in_stock", "broken")
    token = csrf_token(dealer, "/admin/rentals_import/")

    page = dealer.post(
        "/admin/rentals_import/run/",
        data={"csrf_token": token, "kind": "devices", "step": "import", "content": "\n".join([HEADER, *rows])},
    ).get_data(as_text=True)

    assert "nothing was written" in page
    assert "<td>3</td><td>status</td>" in page


def test_file_with_cr_only_line_endings_imports_every_row(db_session):
    result = imports.import_devices("\r".join([HEADER, *device_rows(3)]) + "\r", commit=True)

    assert (result.ok, result.written) == (True, 3), result.errors
    assert devices(db_session) == 3


def test_cell_over_131072_characters_is_an_error_naming_row_and_column(db_session):
    rows = device_rows(2)
    rows[1] += "x" * 131_073  # the notes column

    result = imports.import_devices("\n".join([HEADER, *rows]), commit=True)

    assert [(row, column) for row, column, _message in result.errors] == [(3, "notes")]
    assert "10000" in result.errors[0][2]
    assert devices(db_session) == 0


def test_formulas_in_device_cells_are_refused_and_nothing_is_written(db_session):
    rows = device_rows(3)
    rows[0] = rows[0].replace("A-0", "=1+2")
    rows[2] = rows[2] + '"=HYPERLINK(""http://evil.example"",""click"")"'

    result = imports.import_devices("\n".join([HEADER, *rows]), commit=True)

    assert [(row, column) for row, column, _message in result.errors] == [(2, "asset_tag"), (4, "notes")]
    assert all("formula" in message for _row, _column, message in result.errors)
    assert devices(db_session) == 0


def test_formula_in_a_contract_cell_is_refused_but_a_negative_number_is_read_as_a_number(db_session):
    add_customer("Studio Legale Bianchi", vat_number="12345670157")
    columns = "customer,start_date,period_months,fee,invoice_notes"

    result = imports.import_contracts(
        "\n".join([columns, "12345670157,2026-01-01,1,-5,Canone", "12345670157,2026-01-01,1,50,+cmd|' /C calc'!A0"]),
        commit=True,
    )

    errors = {(row, column): message for row, column, message in result.errors}
    assert set(errors) == {(2, "fee"), (3, "invoice_notes")}
    assert "formula" not in errors[(2, "fee")] and "formula" in errors[(3, "invoice_notes")]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Contract)) == 0


def test_import_page_reads_an_uploaded_file_with_cr_only_line_endings(app, dealer):
    text = "\r".join([HEADER, *device_rows(2)])
    token = csrf_token(dealer, "/admin/rentals_import/")

    preview = dealer.post(
        "/admin/rentals_import/run/",
        data={"csrf_token": token, "kind": "devices", "step": "check", "file": (io.BytesIO(text.encode()), "d.csv")},
        content_type="multipart/form-data",
    )

    assert preview.status_code == 200 and "Import 2 rows" in preview.get_data(as_text=True)


def test_header_cell_over_the_limit_is_an_error_on_the_header_row(db_session):
    result = imports.import_devices(f"serial,{'m' * 131_073},model\nSN1,Kyocera,P2040dn\n", commit=True)

    assert (1, "column 2", "This column name is too long.") in result.errors
    assert devices(db_session) == 0


def test_import_page_lists_every_column_with_what_to_write_in_it(dealer):
    page = dealer.get("/admin/rentals_import/").get_data(as_text=True)

    assert "<code>serial</code> (required)</td>" in page
    assert "Choose one of: in_stock, installed, in_repair, retired" in page
    assert "<code>bw 9000 pooled 5000@0.010 0.008; color 200 0.09</code>" in page
    assert 'href="/admin/rentals_import/template/contracts.csv"' in page


def test_contracts_import_their_vat_code_and_public_procurement_references(db_session):
    add_customer("Comune di Lodi", vat_number="23456780016")
    columns = "customer,start_date,fee,vat_code,cig,cup,order_kind,order_reference,order_date"
    good = "23456780016,2026-01-01,90.00,10,z4a3b2c1d0,,order,Det. 44/2026,2025-12-15"
    bad = "23456780016,2026-01-01,90.00,N2,Z4A3B2C1D,,,,"

    failed = imports.import_contracts("\n".join([columns, good, bad]), commit=True)

    assert {(row, column) for row, column, _message in failed.errors} == {(3, "vat_code"), (3, "cig")}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Contract)) == 0

    assert imports.import_contracts("\n".join([columns, good]), commit=True).written == 1
    contract = db.session.scalar(sa.select(Contract))
    assert (contract.vat_code, contract.vat_rate, contract.cig) == ("10", 10, "Z4A3B2C1D0")
    assert (contract.order_kind, contract.order_reference, str(contract.order_date)) == (
        "order",
        "Det. 44/2026",
        "2025-12-15",
    )
