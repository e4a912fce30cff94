"""Core demo data: the dealer's company, staff and a few customers with real-looking Italian data."""

from __future__ import annotations

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from core.db import db
from core.models import Company, Partner, PartnerContact, User

DEMO_PASSWORD = "copydesk-demo"
DEMO_LOGINS = (
    ("admin@copydesk.local", "Dealer Admin", "dealer_admin", None),
    ("office@copydesk.local", "Back Office", "back_office", None),
    ("tech@copydesk.local", "Tecnico Rossi", "technician", None),
    ("letture@studiobianchi.it", "Anna Bianchi", "customer_admin", "Studio Legale Bianchi"),
)

CUSTOMERS = (
    # name, VAT, fiscal code, street, city, postal code, province, sdi, pec, email, language
    (
        "Studio Legale Bianchi",
        "12345670157",
        "12345670157",
        "Via Torino 21",
        "Milano",
        "20123",
        "MI",
        "M5UXCR1",
        None,
        "amministrazione@studiobianchi.it",
        "it",
    ),
    (
        "Farmacia San Marco Srl",
        "23456780016",
        "23456780016",
        "Corso Vercelli 8",
        "Torino",
        "10152",
        "TO",
        None,
        "farmaciasanmarco@pec.it",
        "farmacia@sanmarco.it",
        "it",
    ),
    (
        "Hotel Bellavista Spa",
        "34567890651",
        "34567890651",
        "Lungomare Trieste 4",
        "Salerno",
        "84121",
        "SA",
        "KRRH6B9",
        None,
        "booking@bellavista.it",
        "it",
    ),
    (
        "Istituto Comprensivo Giuseppe Mazzini",
        None,
        "80123450159",
        "Via Giuseppe Mazzini 12",
        "Monza",
        "20900",
        "MB",
        "UFE4T2",
        "miic8ab00x@pec.istruzione.it",
        "miic8ab00x@istruzione.it",
        "it",
    ),
    (
        "Academia Cervantes SL",
        "ESB12345674",
        None,
        "Calle Mayor 5",
        "Madrid",
        "28013",
        "M",
        None,
        None,
        "secretaria@cervantes.es",
        "es",
    ),
)

# Billing terms beyond the defaults (bank transfer, one payment 30 days after the invoice).
TERMS = {
    # A state school: a public administration, invoiced with FPA12 to its office code, under split payment.
    "Istituto Comprensivo Giuseppe Mazzini": {
        "public_administration": True,
        "split_payment": True,
        "payment_method": "bank_transfer",
    },
    # The hotel pays each invoice in three monthly instalments.
    "Hotel Bellavista Spa": {"payment_instalments": 3},
}


def load_core_demo() -> None:
    if db.session.scalar(sa.select(Company)) is None:
        db.session.add(
            Company(
                name="Copyservice Lombardia Srl",
                vat_number="45678900155",
                fiscal_code="45678900155",
                street="Viale Monza 140",
                city="Milano",
                postal_code="20127",
                province="MI",
                email="info@copyservice.example",
                pec="copyservice@pec.example",
                phone="+39 02 1234567",
                iban="IT60X0542811101000000123456",
            )
        )
    partners = {}
    for name, vat, cf, street, city, cap, prov, sdi, pec, email, lang in CUSTOMERS:
        partner = db.session.scalar(sa.select(Partner).where(Partner.name == name))
        if partner is None:
            country = "ES" if lang == "es" else "IT"
            partner = Partner(
                name=name,
                vat_number=vat,
                fiscal_code=cf,
                street=street,
                city=city,
                postal_code=cap,
                province=prov,
                country=country,
                sdi_code=sdi,
                pec=pec,
                email=email,
                language=lang,
                **TERMS.get(name, {}),
                contacts=[
                    PartnerContact(
                        name=f"Ufficio {name.split()[0]}",
                        email=email,
                        receives_readings=True,
                        receives_invoices=True,
                    )
                ],
            )
            db.session.add(partner)
        partners[name] = partner
    db.session.flush()
    for email, name, role, customer in DEMO_LOGINS:
        if db.session.scalar(sa.select(User).where(User.email == email)) is None:
            db.session.add(
                User(
                    email=email,
                    name=name,
                    role=role,
                    customer_id=partners[customer].id if customer else None,
                    language="it",
                    password_hash=generate_password_hash(DEMO_PASSWORD, method="scrypt"),
                )
            )
    db.session.commit()
