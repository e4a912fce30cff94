"""A dealer sets up customer, device and contract with allowances and price bands in the back office, in Chromium.

The rentals issue is done when this works in one sitting through the pages alone, with no JSON to type.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, Response, expect

from core.db import db
from core.demo import DEMO_LOGINS, DEMO_PASSWORD
from core.models import Partner
from modules.rentals.models import Contract, Device

pytestmark = pytest.mark.browser

DEALER = next(email for email, _name, role, _customer in DEMO_LOGINS if role == "dealer_admin")
CUSTOMER = "Copisteria Adriatica Srl"
SERIAL = "VCF7700001"
SHOTS = os.environ.get("BROWSER_SHOTS")  # a folder: screenshots of every step, for judging how the pages read


def shot(page: Page, name: str) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/{name}.png", full_page=True)


def log_in(page: Page, email: str) -> None:
    page.goto("/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("main form button[type=submit]")


def open_menu(page: Page, category: str, item: str) -> None:
    nav = page.locator("nav")
    nav.get_by_role("link", name=category, exact=True).click()
    with page.expect_navigation():
        nav.get_by_role("link", name=item, exact=True).click()


def choose(page: Page, field_id: str, text: str) -> None:
    """Pick `text` in one of Flask-Admin's Select2 boxes the way a user does: open it, type, click the match."""
    page.click(f"#s2id_{field_id} a.select2-choice")
    page.fill(".select2-drop-active input.select2-input", text)
    page.locator(".select2-drop-active .select2-result-label", has_text=text).first.click()


def save(page: Page, button: str) -> Response:
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name=button, exact=True).click()
    return navigation.value


def test_dealer_sets_up_customer_device_and_contract_with_price_bands_without_json(open_page, live_app):
    opened = open_page(locale="it-IT")
    page = opened.page
    log_in(page, DEALER)  # the demo staff write Italian

    # 1. The customer: a VAT number that does not check out is refused on its field, then corrected.
    open_menu(page, "Anagrafiche", "Clienti e fornitori")
    with page.expect_navigation():
        page.locator(".nav-tabs").get_by_role("link", name="Crea").click()
    page.fill("#name", CUSTOMER)
    page.fill("#vat_number", "12345678901")
    page.fill("#city", "Pescara")
    choose(page, "language", "English")
    save(page, "Salva")
    shot(page, "01_partner_bad_vat")
    expect(page.locator("#vat_number")).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(page.get_by_text("12345678901 non è una partita IVA valida")).to_be_visible()
    expect(page.locator("#city")).to_have_value("Pescara")
    page.fill("#vat_number", "12345670157")
    save(page, "Salva")
    shot(page, "02_partner_saved")
    expect(page.get_by_role("row").filter(has_text=CUSTOMER)).to_contain_text("12345670157")

    # 2. The device, its model from the catalogue (bw and color meters).
    open_menu(page, "Noleggi", "Dispositivi")
    with page.expect_navigation():
        page.locator(".nav-tabs").get_by_role("link", name="Crea").click()
    shot(page, "03_device_form")
    expect(page.locator("#s2id_customer")).to_contain_text("— nessun cliente —")
    choose(page, "model", "Kyocera ECOSYS M5526cdw")
    page.fill("#serial", SERIAL)
    save(page, "Salva")
    shot(page, "04_device_saved")
    expect(page.get_by_role("row").filter(has_text=SERIAL)).to_contain_text("In magazzino")

    # 3. The contract: terms, a bw allowance with two bands and a color allowance with one, through plain rows.
    open_menu(page, "Noleggi", "Contratti")
    with page.expect_navigation():
        page.locator(".nav-tabs").get_by_role("link", name="Crea").click()
    shot(page, "05_contract_form")
    page.select_option("#customer_id", label=CUSTOMER)
    page.fill("#start_date", "2026-01-01")
    page.select_option("#period_months", label="Trimestrale")
    page.fill("#fee", "120,00")
    page.select_option("#fee_timing", label="Posticipato")
    allowances = page.locator(".allowance-row")
    bw = allowances.nth(0)
    bw.get_by_label("Contatore").select_option("bw")
    bw.get_by_label("Copie incluse").fill("1000")
    expect(bw.get_by_label("Condivise")).not_to_be_checked()
    bw_bands = bw.locator("tbody tr")
    bw_bands.nth(0).get_by_label("Fino a (pagine in eccedenza)").fill("5000")
    bw_bands.nth(0).get_by_label("Prezzo per pagina").fill("0.010")
    bw_bands.nth(1).get_by_label("Fino a (pagine in eccedenza)").fill("4000")  # 4. not above 5000: refused below
    bw_bands.nth(1).get_by_label("Prezzo per pagina").fill("0.008")
    save(page, "Altre righe")
    shot(page, "06_more_rows")
    expect(allowances).to_have_count(3)
    expect(bw_bands).to_have_count(3)
    expect(bw_bands.nth(1).get_by_label("Fino a (pagine in eccedenza)")).to_have_value("4000")
    colour = allowances.nth(1)
    colour.get_by_label("Contatore").select_option("color")
    colour.get_by_label("Copie incluse").fill("200")
    colour.locator("tbody tr").nth(0).get_by_label("Prezzo per pagina").fill("0.060")
    save(page, "Salva contratto")
    shot(page, "07_wrong_band")

    # 4. The bands that do not ascend: the message sits on the second bw band, and nothing was written.
    wrong = bw_bands.nth(1).get_by_label("Fino a (pagine in eccedenza)")
    expect(wrong).to_have_class(re.compile(r"\bis-invalid\b"))
    expect(bw_bands.nth(1).locator(".invalid-feedback")).to_have_text(
        "I limiti superiori devono essere crescenti: 4000 non è maggiore di 5000."
    )
    expect(page.locator(".invalid-feedback")).to_have_count(1)
    alert = page.locator("#form-errors")  # at the top of the page, where the user is after saving
    expect(alert).to_contain_text("Il contratto non è stato salvato. 1 riga di copie incluse ha un problema.")
    expect(alert.get_by_role("link", name="Copie incluse per bw, scaglione 2")).to_have_attribute(
        "href", "#allowances-0-bands-1-up_to"
    )
    expect(colour.locator("tbody tr").nth(0).get_by_label("Prezzo per pagina")).to_have_value("0.060")
    with live_app.app_context():
        assert db.session.scalars(sa.select(Contract).join(Partner).where(Partner.name == CUSTOMER)).all() == []
        db.session.remove()
    wrong.fill("")
    save(page, "Salva contratto")
    shot(page, "08_contract_saved")

    expect(page.locator(".alert-success")).to_contain_text(re.compile(r"Contratto \d+/2026 salvato\."))
    expect(page.locator("h1 .badge")).to_have_text("Bozza")
    # Italian formats: 1.000 pages, 120,00 €, a price with the digits it has, 1 gen 2026.
    terms = page.locator("#contract-terms")
    expect(terms).to_contain_text(re.compile(r"dal 1 gen 2026 senza data di fine"))
    expect(terms).to_contain_text(re.compile(r"120,00\s€ per periodo \(Trimestrale, Posticipato\)"))
    expect(terms).to_contain_text(re.compile(r"IVA\s*22%"))
    allowance_rows = page.locator("#contract-allowances tbody tr")
    expect(allowance_rows.nth(0)).to_contain_text(
        re.compile(r"Bianco e nero.*1\.000.*per dispositivo.*fino a 5\.000 pagine a 0,01\s€; poi 0,008\s€", re.S)
    )
    expect(allowance_rows.nth(1)).to_contain_text(re.compile(r"Colore.*200.*per dispositivo.*0,06\s€", re.S))

    # The device joins from the contract page with its installation counters; the contract becomes active.
    # Nothing is chosen at first, and only the chosen device's meters (bw and color) ask for a counter.
    expect(page.locator("#add-device-id option:checked")).to_have_text("Scegli un dispositivo")
    expect(page.locator("#add-counter_bw")).to_be_hidden()
    device_option = page.locator("#add-device-id option", has_text=SERIAL)
    page.select_option("#add-device-id", device_option.get_attribute("value"))
    expect(page.locator("#add-counter_bw")).to_be_visible()
    expect(page.locator("#add-counter_color")).to_be_visible()
    expect(page.locator("#add-counter_scan")).to_be_hidden()
    expect(page.locator("#add-counter_a3_bw")).to_be_hidden()
    expect(page.locator("#add-start-date")).to_have_value("2026-01-01")
    page.fill("#add-counter_bw", "150000")
    page.fill("#add-counter_color", "40000")
    added = save(page, "Aggiungi dispositivo")
    shot(page, "09_device_added")

    expect(page.locator(".alert-success")).to_contain_text(f"Il dispositivo {SERIAL} è entrato nel contratto.")
    expect(page.locator("h1 .badge")).to_have_text("Attivo")
    expect(page.locator("#contract-devices tbody tr").first).to_contain_text(
        re.compile(rf"{SERIAL}.*Kyocera ECOSYS M5526cdw.*1 gen 2026.*Bianco e nero 150\.000, Colore 40\.000", re.S)
    )
    first_period = page.locator("#contract-periods tbody tr").first
    expect(first_period).to_contain_text(f"{SERIAL} (90)")
    expect(first_period).to_contain_text(re.compile(r"1 gen 2026.*31 mar 2026.*120,00\s€", re.S))
    expect(first_period).to_contain_text(re.compile(r"Bianco e nero: fino a 5\.000 pagine.*Colore: 0,06\s€", re.S))
    assert "content-security-policy" in added.headers  # so a page breaking the policy would have been reported
    assert opened.errors == []

    with live_app.app_context():
        customer = db.session.scalar(sa.select(Partner).where(Partner.name == CUSTOMER))
        assert (customer.vat_number, customer.city, customer.language, customer.is_customer) == (
            "12345670157",
            "Pescara",
            "en",
            True,
        )
        contract = db.session.scalar(sa.select(Contract).where(Contract.customer_id == customer.id))
        assert (contract.state, contract.period_months, contract.fee, contract.fee_timing) == (
            "active",
            3,
            Decimal("120.00"),
            "arrears",
        )
        assert [
            (a.meter, a.included, a.pooled, [(b.up_to, b.price) for b in a.bands]) for a in contract.allowances
        ] == [
            ("bw", 1000, False, [(5000, Decimal("0.010")), (None, Decimal("0.008"))]),
            ("color", 200, False, [(None, Decimal("0.060"))]),
        ]
        device = db.session.scalar(sa.select(Device).where(Device.serial == SERIAL))
        assert [(line.device_id, line.start_date.isoformat(), line.end_date) for line in contract.lines] == [
            (device.id, "2026-01-01", None)
        ]
        assert contract.lines[0].start_counters == {"bw": 150000, "color": 40000}
        assert (device.status, device.customer_id) == ("installed", customer.id)
        db.session.remove()
