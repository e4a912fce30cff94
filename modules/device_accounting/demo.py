"""Device accounting demo data: cost centers, print users with cards and PINs, quotas, price lists and three months of
jobs at the devices of Studio Legale Bianchi and Farmacia San Marco, so the reports have something to show; and Studio
Bianchi's print server with a few held jobs waiting (one about to expire)."""

from __future__ import annotations

import datetime as dt
import math
import random
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from core import clock
from core.db import db
from core.models import Partner, User
from modules.device_accounting import (
    cost_centers,
    customer_settings,
    directory,
    held_jobs,
    operations,
    pricing,
    print_servers,
    privacy,
    quotas,
    rollups,
    users,
)
from modules.device_accounting.models import (
    LedgerEntry,
    PriceList,
    PrintServer,
    PrintUser,
    Quota,
    Refund,
    Transaction,
)
from modules.device_accounting.privileges import effective_privileges
from modules.rentals.models import Device

HISTORY_DAYS = 91
# Italian national holidays on a fixed date (month, day): nobody prints.
HOLIDAYS = {(1, 1), (1, 6), (4, 25), (5, 1), (6, 2), (8, 15), (11, 1), (12, 8), (12, 25), (12, 26)}
# Jobs an hour of a working day, from 8 to 18: a slow start, a lunch dip, a busy afternoon.
HOURS = {8: 4, 9: 9, 10: 11, 11: 11, 12: 7, 13: 3, 14: 7, 15: 10, 16: 10, 17: 7, 18: 2}
FUNCTIONS = {"print": 62, "copy": 21, "scan": 7, "email": 6, "ftp": 2, "fax": 2}
PAPER = {"A4": 93, "A3": 3, "A5": 2, "letter": 2}

DEALER_LIST = "Listino costo pagina Copyservice"
CUSTOMER_LIST = "Listino Farmacia San Marco"


def _prices(rows: list[tuple[str, str, str, str, str]]) -> list[dict[str, Any]]:
    return [
        {"function": f, "colour": c, "paper_size": size, "duplex": duplex, "price_per_side": Decimal(price)}
        for f, c, size, duplex, price in rows
    ]


DEALER_PRICES = _prices(
    [
        ("print", "bw", "any", "any", "0.0100"),
        ("print", "bw", "any", "yes", "0.0090"),
        ("print", "bw", "A3", "any", "0.0200"),
        ("print", "color", "any", "any", "0.0800"),
        ("print", "color", "A3", "any", "0.1600"),
        ("copy", "bw", "any", "any", "0.0100"),
        ("copy", "bw", "A3", "any", "0.0200"),
        ("copy", "color", "any", "any", "0.0800"),
        ("copy", "color", "A3", "any", "0.1600"),
        ("fax", "bw", "any", "any", "0.0100"),
        ("scan", "bw", "any", "any", "0"),
        ("scan", "color", "any", "any", "0"),
        ("email", "bw", "any", "any", "0"),
        ("email", "color", "any", "any", "0"),
        ("ftp", "bw", "any", "any", "0"),
        ("ftp", "color", "any", "any", "0"),
    ]
)
CUSTOMER_PRICES = _prices(
    [
        ("print", "bw", "any", "any", "0.0085"),
        ("print", "bw", "A3", "any", "0.0170"),
        ("print", "color", "any", "any", "0.0700"),
        ("print", "color", "A3", "any", "0.1400"),
        ("copy", "bw", "any", "any", "0.0085"),
        ("copy", "color", "any", "any", "0.0700"),
    ]
)

# Per customer: its cost centers (path, shared, privileges), its users (username, name, email, default cost center,
# other cost centers, cards, PIN, weight: how much they print), quotas by holder, settings, and what its devices
# print on an ordinary day.
STUDIO = {
    "customer": "Studio Legale Bianchi",
    "cost_centers": [
        ("Amministrazione", False, {}),
        ("Amministrazione / Contabilità", False, {}),
        ("Amministrazione / Segreteria", False, {}),
        ("Avvocati", False, {}),
        ("Avvocati / Praticanti", False, {"color_allowed": False, "max_sides": 200}),
        ("Direzione", False, {}),
    ],
    "users": [
        (
            "abianchi",
            "Anna Bianchi",
            "letture@studiobianchi.it",
            "Direzione",
            ["Amministrazione"],
            ["0001873"],
            "2468",
            3,
        ),
        ("gbianchi", "Giorgio Bianchi", "g.bianchi@studiobianchi.it", "Direzione", [], ["0001874"], "1357", 2),
        ("lferri", "Laura Ferri", "l.ferri@studiobianchi.it", "Avvocati", [], ["0002210"], "5120", 4),
        ("mcolombo", "Marco Colombo", "m.colombo@studiobianchi.it", "Avvocati", [], ["0002211"], None, 4),
        ("sgalli", "Silvia Galli", None, "Avvocati / Praticanti", [], ["0002305"], "7731", 3),
        ("dfontana", "Davide Fontana", None, "Avvocati / Praticanti", [], ["00002306"], "8842", 3),
        (
            "pconti",
            "Paola Conti",
            "contabilita@studiobianchi.it",
            "Amministrazione / Contabilità",
            [],
            ["1044120"],
            "3390",
            2,
        ),
        (
            "rmarino",
            "Roberta Marino",
            "segreteria@studiobianchi.it",
            "Amministrazione / Segreteria",
            ["Avvocati"],
            ["1044121", "0009001"],
            "6604",
            5,
        ),
        ("fesposito", "Francesco Esposito", None, "Amministrazione / Segreteria", [], ["1044122"], None, 2),
    ],
    "quotas": [
        ("abianchi", {"period": "monthly", "mode": "rollover", "amount": "20.00", "rollover_cap": "30.00"}),
        ("sgalli", {"period": "monthly", "mode": "reset", "amount": "8.00", "overdraft": "2.00"}),
        ("dfontana", {"period": "monthly", "mode": "reset", "amount": "3.00", "overdraft": "2.00"}),
        ("lferri", {"period": "monthly", "mode": "reset", "amount": "25.00", "overdraft": "5.00"}),
    ],
    "settings": {"hide_document_names": True},
    "devices": {"VCF1234567": 15},
    "documents": [
        "Atto di citazione Rossi.docx",
        "Memoria difensiva.pdf",
        "Parcella 2026-118.pdf",
        "Procura alle liti.pdf",
        "Verbale assemblea condominio.docx",
        "Contratto di locazione.pdf",
    ],
}
FARMACIA = {
    "customer": "Farmacia San Marco Srl",
    "cost_centers": [
        ("Amministrazione", False, {}),
        ("Amministrazione / Contabilità", False, {}),
        ("Commerciale", False, {}),
        ("Banco", True, {"color_allowed": False}),
        ("Laboratorio", False, {"allowed_functions": ["print", "copy", "scan"]}),
        ("Direzione", False, {}),
    ],
    "users": [
        (
            "marco.sanmarco",
            "Marco San Marco",
            "direzione@sanmarco.it",
            "Direzione",
            ["Commerciale"],
            ["8800123401"],
            "4455",
            3,
        ),
        (
            "elena.ricci",
            "Elena Ricci",
            "amministrazione@sanmarco.it",
            "Amministrazione / Contabilità",
            ["Amministrazione"],
            ["8800123402"],
            "2019",
            4,
        ),
        ("paolo.greco", "Paolo Greco", None, "Amministrazione", [], ["8800123403"], "3012", 2),
        ("chiara.lombardi", "Chiara Lombardi", "commerciale@sanmarco.it", "Commerciale", [], ["8800123404"], "6123", 4),
        ("luca.moretti", "Luca Moretti", None, "Commerciale", [], ["0000456789"], None, 2),
        ("sara.barbieri", "Sara Barbieri", None, "Banco", [], ["0000456790"], "1188", 3),
        ("andrea.rinaldi", "Andrea Rinaldi", None, "Banco", [], ["0000456791"], "2299", 3),
        ("giulia.caruso", "Giulia Caruso", None, "Banco", [], ["0000456792"], "3377", 2),
        ("matteo.ferrara", "Matteo Ferrara", None, "Laboratorio", [], ["0000456793"], "4466", 2),
        ("valentina.gallo", "Valentina Gallo", None, "Laboratorio", [], ["0000456794", "0000456799"], "5599", 2),
        ("banco.turno", "Postazione banco (turni)", None, "Banco", [], ["0000000042"], "9090", 3),
    ],
    "quotas": [
        ("Banco", {"period": "monthly", "mode": "reset", "amount": "60.00", "overdraft": "10.00"}),
        ("chiara.lombardi", {"period": "monthly", "mode": "rollover", "amount": "30.00", "rollover_cap": "45.00"}),
        ("matteo.ferrara", {"period": "monthly", "mode": "reset", "amount": "10.00"}),
    ],
    "settings": {"hide_document_names": False, "anonymise_after_months": 24},
    "devices": {"2XK0123456": 12, "2XK0123789": 9},
    "documents": [
        "Ordine fornitore.pdf",
        "Distinta ricette SSN.pdf",
        "Volantino promozioni.pdf",
        "Turni banco.xlsx",
        "Fattura 2026-0412.pdf",
        "Scheda preparazione galenica.docx",
    ],
    "directory": {
        "url": "ldap://dc1.sanmarco.local",
        "bind_dn": "cn=copydesk,ou=servizi,dc=sanmarco,dc=local",
        "bind_password": "demo-bind-password",
        "base_dn": "ou=personale,dc=sanmarco,dc=local",
        "user_filter": "(objectClass=person)",
        "sync_every_hours": None,
    },
}
DEMO = (STUDIO, FARMACIA)


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _price_lists(customers: dict[str, Partner]) -> None:
    existing = set(db.session.execute(sa.select(PriceList.customer_id, PriceList.name)).all())
    if (None, DEALER_LIST) not in existing:
        pricing.save_price_list(
            None, {"name": DEALER_LIST, "valid_from": dt.date(2025, 1, 1), "entries": DEALER_PRICES}
        )
    farmacia = customers.get(FARMACIA["customer"])
    if farmacia is not None and (farmacia.id, CUSTOMER_LIST) not in existing:
        pricing.save_price_list(
            farmacia.id, {"name": CUSTOMER_LIST, "valid_from": dt.date(2026, 1, 1), "entries": CUSTOMER_PRICES}
        )


def _people(spec: dict, customer: Partner) -> tuple[dict[str, Any], dict[str, PrintUser]]:
    """The customer's cost centers and print users, created when missing."""
    centers = {}
    for path, shared, privileges in spec["cost_centers"]:
        center, created = cost_centers.resolve_path(customer.id, path, create=True)
        if created and (shared or privileges):
            cost_centers.save_cost_center(customer.id, {"shared": shared, **privileges}, center)
        centers[path] = center
    people = {}
    for username, name, email, default, others, cards, pin, _weight in spec["users"]:
        user = users.find_by_username(customer.id, username)
        if user is None:
            user = users.save_user(
                customer.id,
                {
                    "username": username,
                    "full_name": name,
                    "email": email,
                    "default_cost_center_id": centers[default].id,
                    "cost_center_ids": [centers[default].id, *(centers[path].id for path in others)],
                },
            )
            users.add_cards(user, cards)
            if pin:
                users.set_pin(user, pin)
        people[username] = user
    return centers, people


def _quotas(spec: dict, customer: Partner, centers: dict, people: dict) -> dict[str, Quota]:
    made = {}
    for holder, terms in spec["quotas"]:
        data: dict[str, Any] = dict(terms)
        if holder in people:
            data["user_id"] = people[holder].id
            found = db.session.scalar(sa.select(Quota).where(Quota.user_id == data["user_id"]))
        else:
            data["cost_center_id"] = centers[holder].id
            found = db.session.scalar(sa.select(Quota).where(Quota.cost_center_id == data["cost_center_id"]))
        made[holder] = found or quotas.save_quota(customer.id, data)
    return made


def _working_days(today: dt.date) -> list[dt.date]:
    days = (today - dt.timedelta(days=n) for n in range(HISTORY_DAYS, -1, -1))
    return [day for day in days if day.weekday() < 5 and (day.month, day.day) not in HOLIDAYS]


def _jobs(
    spec: dict, device: Device, people: dict[str, PrintUser], days: list[dt.date], now: dt.datetime
) -> list[dict]:
    """An ordinary quarter of one device: deterministic (the same day gives the same jobs), never in the future."""
    zone = clock.timezone()
    weights = {username: weight for username, *_rest, weight in spec["users"]}
    allowed = {username: effective_privileges(user) for username, user in people.items()}
    jobs = []
    for day in days:
        rng = random.Random(f"{device.serial}:{day.isoformat()}")
        busy = spec["devices"][device.serial] * rng.uniform(0.6, 1.4) * (0.8 if day.weekday() == 4 else 1)
        for index in range(round(busy)):
            ended = dt.datetime.combine(
                day, dt.time(int(_weighted(rng, {str(h): w for h, w in HOURS.items()})), rng.randrange(60)), zone
            ) + dt.timedelta(seconds=rng.randrange(60))
            if ended > now:
                continue
            username = _weighted(rng, weights)
            user, privileges = people[username], allowed[username]
            function = _weighted(rng, {f: w for f, w in FUNCTIONS.items() if f in privileges.functions})
            jobs.append(
                _job(rng, spec, device, user, privileges, function, ended, (day.toordinal() - 700_000) * 1000 + index)
            )
    return jobs


def _job(rng, spec, device, user, privileges, function, ended, seq) -> dict[str, Any]:
    scanned = function in ("scan", "email", "ftp")
    pages = max(1, round(rng.lognormvariate(1.1, 0.9))) if function != "fax" else rng.randint(1, 4)
    pages = min(pages, privileges.max_sides or 500, 500)
    colour = privileges.color_allowed and function != "fax" and rng.random() < (0.35 if scanned else 0.22)
    duplex = not scanned and function != "fax" and pages > 1 and (privileges.duplex_forced or rng.random() < 0.4)
    paper = "A4" if scanned or function == "fax" else _weighted(rng, PAPER)
    if paper == "A3" and device.model.paper_format != "A3":
        paper = "A4"
    status = _weighted(rng, {"done": 96, "failed": 2, "cancelled": 2})
    if status != "done":
        pages = rng.randint(0, pages)
    sides_color = pages if colour and rng.random() < 0.8 else (rng.randint(0, pages) if colour else 0)
    sides_bw = pages - sides_color
    sheets = 0 if scanned else (math.ceil(pages / 2) if duplex else pages)
    document = rng.choice(spec["documents"]) if function == "print" else None
    center = user.default_cost_center
    if user.cost_centers and rng.random() < 0.15:
        center = rng.choice(user.cost_centers)
    return {
        "device_id": device.id,
        "device_seq": seq,
        "user_id": user.id,
        "cost_center_id": center.id if center else None,
        "function": function,
        "sides_bw": sides_bw,
        "sides_color": sides_color,
        "sheets": sheets,
        "paper_size": paper,
        "duplex": duplex,
        "status": status,
        "document_name": document,
        "started_at": ended - dt.timedelta(seconds=8 + 3 * pages),
        "ended_at": ended,
    }


def _stored(jobs: list[dict]) -> set[tuple[int, int]]:
    devices = {job["device_id"] for job in jobs}
    if not devices:
        return set()
    query = sa.select(Transaction.device_id, Transaction.device_seq).where(Transaction.device_id.in_(devices))
    return {(device_id, seq) for device_id, seq in db.session.execute(query)}


def _record(jobs: list[dict]) -> None:
    """Each job through operations.record_transaction, in time order (charged to the balances), skipping those stored
    before."""
    stored = _stored(jobs)
    for job in sorted(jobs, key=lambda job: job["ended_at"]):
        if (job["device_id"], job["device_seq"]) not in stored:
            operations.record_transaction(job)


class _History:
    """The months before the quotas exist, stored in one go: what record_transaction would store for a job that no
    balance pays (priced by pricing.job_cost, the name kept or dropped by privacy), then the rollups rebuilt from
    them. Two thousand jobs one by one take half a minute; this takes a second or two."""

    def __init__(self) -> None:
        self.lists = db.session.execute(sa.select(PriceList.customer_id, PriceList.valid_from)).all()
        self.costs: dict[tuple, tuple[Decimal, int | None]] = {}
        self.names: dict[tuple, str | None] = {}

    def _valid(self, customer_id: int, day: dt.date) -> tuple:
        """Which lists price a job of that day: the latest start of the customer's and of the dealer's lists."""
        return tuple(
            max((start for owner, start in self.lists if owner == who and start <= day), default=None)
            for who in (customer_id, None)
        )

    def store(self, customer_id: int, jobs: list[dict]) -> int:
        stored = _stored(jobs)
        added = 0
        with db.session.no_autoflush:  # the new rows go in one flush at the end, not one by one before each price
            for job in sorted(jobs, key=lambda job: job["ended_at"]):
                added += self._add(customer_id, job, stored)
        if added:
            db.session.flush()
            rollups.rebuild(customer_id)
        return added

    def _add(self, customer_id: int, job: dict, stored: set) -> int:
        if (job["device_id"], job["device_seq"]) in stored:
            return 0
        day = clock.local_date(job["ended_at"])
        parts = {name: job[name] for name in ("function", "sides_bw", "sides_color", "paper_size", "duplex")}
        key = (customer_id, self._valid(customer_id, day), *parts.values())
        if key not in self.costs:
            self.costs[key] = pricing.job_cost(customer_id, **parts, on=day)
        cost, price_list_id = self.costs[key]
        name_key = (customer_id, job["document_name"])
        if name_key not in self.names:
            self.names[name_key] = privacy.document_name_kept(customer_id, job["document_name"])
        ended = job["ended_at"].astimezone(dt.UTC)
        db.session.add(
            Transaction(
                customer_id=customer_id,
                device_id=job["device_id"],
                device_seq=job["device_seq"],
                user_id=job["user_id"],
                cost_center_id=job["cost_center_id"],
                sheets=job["sheets"],
                status=job["status"],
                document_name=self.names[name_key],
                started_at=job["started_at"].astimezone(dt.UTC),
                ended_at=ended,
                cost=cost,
                price_list_id=price_list_id,
                refunded=Decimal(0),
                received_at=ended + dt.timedelta(seconds=2),
                **parts,
            )
        )
        return 1


def _extras(customer: Partner, people: dict, quotas_made: dict) -> None:
    """A manual correction that takes a trainee over quota, a top-up, and a refunded paper jam."""
    admin = db.session.scalar(sa.select(User).where(User.email == "office@copydesk.local"))
    corrections = {
        "dfontana": ("-4.50", "Stampe a colori di fine novembre addebitate in ritardo"),
        "chiara.lombardi": ("15.00", "Ricarica concordata: campagna promozionale di dicembre"),
    }
    for holder, (amount, reason) in corrections.items():
        quota = quotas_made.get(holder)
        if quota is None:
            continue
        done = db.session.scalar(
            sa.select(LedgerEntry.id)
            .join(LedgerEntry.balance)
            .where(LedgerEntry.kind == "adjustment", LedgerEntry.reason == reason)
        )
        if done is None:
            quotas.adjust(quota, amount, reason, admin)
    refunded = db.session.scalar(
        sa.select(Refund.id).join(Refund.transaction).where(Transaction.customer_id == customer.id).limit(1)
    )
    if refunded is None:
        jam = db.session.scalars(
            sa.select(Transaction)
            .where(Transaction.customer_id == customer.id, Transaction.status == "failed", Transaction.cost > 0)
            .order_by(Transaction.quota_id.is_(None), Transaction.ended_at.desc())
            .limit(1)
        ).first()
        if jam is not None:
            operations.refund(jam, jam.cost, "Inceppamento carta: stampa da ripetere", admin)


# Studio Bianchi's CUPS server with the secure print queue: a CUPS user that is not a username, a queue on its device,
# and the jobs waiting (CUPS user, title, pages, copies, colour, duplex, minutes ago). The studio hides document
# names, so the titles are dropped when the jobs are held.
PRINT_SERVER = {
    "customer": "Studio Legale Bianchi",
    "name": "Server di stampa studio",
    "users": {"anna": "abianchi"},
    "queues": {"Stampa-sicura": "VCF1234567"},
    "jobs": [
        ("anna", "Atto di citazione Rossi.pdf", 6, 1, False, True, 25),
        ("lferri", "Memoria difensiva.pdf", 14, 2, False, True, 70),
        ("rmarino", "Verbale assemblea condominio.pdf", 3, 1, True, False, 5),
    ],
    # Sent this many minutes before the customer's held-job hours run out: it expires soon after the demo loads.
    "expiring": ("anna", "Parcella 2026-118.pdf", 2, 1, False, False),
    "expiring_minutes_left": 15,
    "delegates": {"abianchi": ["rmarino"]},
}


def demo_pdf(pages: int, text: str) -> bytes:
    """A small real PDF of `pages` A4 pages, each with one line of text: what a CUPS server would send."""
    line = text.encode("latin-1", "replace").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b""]
    kids = []
    for page in range(pages):
        content = b"BT /F1 18 Tf 72 770 Td (" + line + b" - " + str(page + 1).encode() + b") Tj ET"
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
            b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>" % len(objects)
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(kids) + b"] /Count %d >>" % pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _held_jobs(customers: dict[str, Partner], now: dt.datetime) -> None:
    """The print server with its mappings and the held jobs; a second load finds them (server name, job keys)."""
    spec = PRINT_SERVER
    customer = customers.get(spec["customer"])
    if customer is None:
        return
    server = db.session.scalar(
        sa.select(PrintServer).where(PrintServer.customer_id == customer.id, PrintServer.name == spec["name"])
    )
    if server is None:
        server, _token = print_servers.create_print_server(customer.id, spec["name"])  # nobody needs its token
    for cups_user, username in spec["users"].items():
        user = users.find_by_username(customer.id, username)
        if user is not None and all(mapped.cups_user != cups_user for mapped in server.users):
            print_servers.map_user(server, cups_user, user.id)
    for queue, serial in spec["queues"].items():
        device = db.session.scalar(sa.select(Device).where(Device.serial == serial))
        installed = device is not None and operations.customer_of_device(device.id, now) == customer.id
        if installed and all(mapped.queue != queue for mapped in server.printers):
            print_servers.map_printer(server, queue, device.id)
    hours = customer_settings.settings_of(customer.id).held_job_hours
    waiting = [(job, now - dt.timedelta(minutes=job[-1])) for job in spec["jobs"]]
    sent = now - dt.timedelta(hours=hours) + dt.timedelta(minutes=spec["expiring_minutes_left"])
    waiting.append(((*spec["expiring"], 0), sent))
    for number, ((cups_user, title, pages, copies, color, duplex, _ago), at) in enumerate(waiting, start=1):
        held_jobs.submit_held_job(
            server,
            cups_user,
            demo_pdf(pages, title),
            title=title,
            copies=copies,
            color=color,
            duplex=duplex,
            submission_key=f"demo:{server.id}:{number}",
            now=at.astimezone(dt.UTC),
        )
    for owner, delegates in spec["delegates"].items():
        user = users.find_by_username(customer.id, owner)
        chosen = [found.id for name in delegates if (found := users.find_by_username(customer.id, name))]
        if user is not None and chosen:
            held_jobs.set_delegates(user, chosen)


def load_demo() -> None:
    """Idempotent: what exists is left alone, jobs already stored (same device and number) are not recorded again.
    Jobs before this month are recorded before the quotas exist, so each balance holds this month's jobs only."""
    today, now = clock.today(), clock.now()
    customers = {
        spec["customer"]: customer
        for spec in DEMO
        if (customer := db.session.scalar(sa.select(Partner).where(Partner.name == spec["customer"]))) is not None
    }
    if not customers:
        return
    _price_lists(customers)
    days = _working_days(today)
    month = today.replace(day=1)
    prepared = []
    for spec in DEMO:
        customer = customers.get(spec["customer"])
        if customer is None:
            continue
        customer_settings.save_settings(customer.id, spec["settings"])
        if spec.get("directory") and directory.directory_of(customer.id) is None:
            directory.save_directory(customer.id, spec["directory"])
        centers, people = _people(spec, customer)
        devices = db.session.scalars(sa.select(Device).where(Device.serial.in_(spec["devices"]))).all()
        installed = [d for d in devices if operations.customer_of_device(d.id, now) == customer.id]
        jobs = [job for device in installed for job in _jobs(spec, device, people, days, now)]
        prepared.append((spec, customer, centers, people, jobs))
    history = _History()
    for _spec, customer, _centers, _users, jobs in prepared:
        history.store(customer.id, [job for job in jobs if job["ended_at"].date() < month])
    for spec, customer, centers, people, jobs in prepared:
        made = _quotas(spec, customer, centers, people)
        _record([job for job in jobs if job["ended_at"].date() >= month])
        _extras(customer, people, made)
    _held_jobs(customers, now)
    db.session.commit()
