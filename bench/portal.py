"""Benchmark of the customer portal under load: 50 logged-in customers on gunicorn and PostgreSQL, measured with wrk.

    .venv/bin/python bench/portal.py                     # 50 customers, 4 workers, 10 s per page
    .venv/bin/python bench/portal.py --duration 5 --keep # shorter; keep the database afterwards

Needs `wrk` (`apt-get install wrk`) and a local PostgreSQL server (--server, default postgresql://root@127.0.0.1:5432).
The bench creates its own database (--database, default copydesk_bench_portal; dropped first if it exists, and at
the end unless --keep), migrates every module, and seeds --customers customers, each with a portal login
(customer_admin), --devices devices on a contract, --readings monthly accepted readings per device (bulk rows shaped
like record_reading's, up to last month) and --invoices posted invoices (rows, no PDF). The dealer's time zone is set.

Then gunicorn (--workers, sync workers) serves the app on a free local port; each customer logs in through the login
form (one session each, one User-Agent: session protection ties a session to it) and opens the reading form for its
CSRF token. wrk (--connections, --threads) drives each page for --duration seconds, every request in a customer's
session in turn, after a short warm-up; then the reading submission (POST /portal/readings/enter, step confirm, the
customer's first device one page further each time). Printed per page: requests/s, p50/p95/p99 latency, responses
that were not 2xx/3xx, and /healthz on the same server with the ratio of its rate to the page's.

    .venv/bin/python bench/portal.py --profile           # where a page's time goes, without gunicorn or wrk

--profile seeds the same data and serves each page in process (Flask's test client, the first customer logged in
through the form) --profile-requests times under cProfile, and prints per page the wall and CPU milliseconds of a
request and the share of its time in each layer: templates, Babel, SQLAlchemy, the database driver (waiting on
PostgreSQL included), Flask and its extensions, Copydesk's own code, the rest of the standard library.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import os
import pstats
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import profiling  # noqa: E402 -- after the path is set
from core import create_app  # noqa: E402 -- after the path is set

SERVER = "postgresql://root@127.0.0.1:5432"
DATABASE = "copydesk_bench_portal"
DATABASE_ENV = "BENCH_PORTAL_DATABASE_URL"
SECRET_KEY = "bench-portal"
PASSWORD = "bench portal password"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) copydesk-bench-portal/1"
TIME_ZONE = "Europe/Rome"
PAGES = (
    "/portal/",
    "/portal/readings/",
    "/portal/readings/enter",
    "/portal/readings/history",
    "/portal/invoices/",
    "/portal/toner/",
    "/portal/users/",
)
SUBMIT = "/portal/readings/enter"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
COUNTER_RE = re.compile(r'name="d(\d+)-(bw|color)"')

# Each connection's requests go through the customers' sessions in turn (the cookies file: one customer a line).
LUA = r"""
local users = {}
local index = 0
local count = 0

function setup(thread)
  thread:set("id", count)
  count = count + 1
end

function init(args)
  local threads, mode = tonumber(args[2]), args[3]
  submit = mode == "post"
  local n = 0
  for line in io.lines(args[1]) do
    if n % threads == id then
      local cookie, token, device, bw, color = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)$")
      table.insert(users, {cookie = cookie, token = token, device = device, bw = tonumber(bw),
                           color = tonumber(color), sent = 0})
    end
    n = n + 1
  end
end

function request()
  index = index % #users + 1
  local user = users[index]
  local headers = {["Cookie"] = user.cookie, ["User-Agent"] = "USER_AGENT"}
  if not submit then
    return wrk.format("GET", nil, headers)
  end
  user.sent = user.sent + 1
  headers["Content-Type"] = "application/x-www-form-urlencoded"
  local d = "d" .. user.device
  local body = "csrf_token=" .. user.token .. "&step=confirm"
    .. "&" .. d .. "-bw=" .. string.format("%d", user.bw + user.sent)
    .. "&" .. d .. "-color=" .. string.format("%d", user.color + user.sent)
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
""".replace("USER_AGENT", USER_AGENT)


def app_config(url: str) -> dict:
    return {
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "REDIS_URL": None,
        "MAIL_SERVER": None,
        "RATELIMIT_STORAGE_URI": "memory://",
        # 50 customers log in from one address within seconds: more than the limits let through from one place.
        "LOGIN_LIMIT_PER_ADDRESS": "1000 per minute",
        "LOGIN_LIMIT_PER_ACCOUNT_ADDRESS": "1000 per minute",
    }


def server_app():
    """The app gunicorn serves: `gunicorn --preload 'bench.portal:server_app()'` with BENCH_PORTAL_DATABASE_URL set.

    Built once before the workers fork (starting every module in each of 4 workers at once takes a minute on two
    cores); its connections are closed first, so no worker shares one with another.
    """
    from core.db import db

    app = create_app(app_config(os.environ[DATABASE_ENV]))
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return app


def recreate_database(server: str, name: str, drop_only: bool = False) -> str:
    from core.config import load_config

    admin_url = sa.engine.make_url(load_config({"DATABASE_URL": f"{server}/postgres"})["SQLALCHEMY_DATABASE_URI"])
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if not drop_only:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{server}/{name}"


def migrate(url: str):
    from core.migrate import upgrade_enabled
    from core.module_state import record_states, resolve_for_app

    app = create_app(app_config(url))
    with app.app_context():
        upgrade_enabled(app.extensions["copydesk"].resolution)
        record_states(resolve_for_app(app), app.config["COPYDESK_MODULES"])
    return create_app(app_config(url))


def month_ends(count: int, before: dt.date) -> list[dt.date]:
    """The last days of the `count` months before the month of `before`, oldest first."""
    days, day = [], before.replace(day=1)
    for _ in range(count):
        day = day - dt.timedelta(days=1)
        days.append(day)
        day = day.replace(day=1)
    return days[::-1]


def seed(customers: int, devices: int, readings: int, invoices: int) -> list[str]:
    """The customers, their logins, devices on contracts, readings and posted invoices; returns the logins' emails."""
    from core.auth import services
    from core.clock import TIMEZONE_SETTING
    from core.db import db
    from core.models import Partner
    from core.settings import set_setting
    from modules.invoicing.models import Invoice
    from modules.metering.history import fingerprint
    from modules.metering.models import Reading, ReadingValue
    from modules.rentals.contracts import create_contract
    from modules.rentals.devices import create_device

    session = db.session
    set_setting(TIMEZONE_SETTING, TIME_ZONE)
    today = dt.date.today()
    days = month_ends(readings, today)
    start = days[0] - dt.timedelta(days=30)
    zone = ZoneInfo(TIME_ZONE)
    emails, sequence = [], 0
    for number in range(1, customers + 1):
        customer = Partner(name=f"Cliente {number:03d}", is_customer=True, language="it", payment_terms_days=30)
        session.add(customer)
        session.flush()
        placed = []
        for position in range(devices):
            colour = position % 2 == 0
            placed.append(
                create_device(
                    {
                        "serial": f"SN{number:03d}{position:02d}",
                        "manufacturer": "Kyocera",
                        "model": "TASKalfa 2554ci" if colour else "ECOSYS P2040dn",
                        "meters": ["bw", "color"] if colour else ["bw"],
                    }
                )
            )
        create_contract(
            {
                "customer_id": customer.id,
                "start_date": start.isoformat(),
                "period_months": 1,
                "fee": "50.00",
                "grace_days": 10,
                "allowances": [
                    {"meter": "bw", "included": 1000, "bands": [{"up_to": None, "price": "0.012"}]},
                    {"meter": "color", "included": 200, "bands": [{"up_to": None, "price": "0.09"}]},
                ],
                "devices": [{"device_id": d.id, "counters": {m: 10_000 for m in d.model.meter_codes}} for d in placed],
            }
        )
        for device in placed:
            counters = dict.fromkeys(device.model.meter_codes, 10_000)
            for day in days:
                counters = {m: v + (1_000 if m == "bw" else 150) for m, v in counters.items()}
                taken_at = dt.datetime.combine(day, dt.time(16), zone).astimezone(dt.UTC)
                session.add(
                    Reading(
                        device_id=device.id,
                        taken_at=taken_at,
                        source="portal",
                        status="accepted",
                        fingerprint=fingerprint(device.id, taken_at, counters),
                        created_at=taken_at,
                        values=[ReadingValue(meter=m, value=v) for m, v in sorted(counters.items())],
                    )
                )
        for month in range(invoices):
            sequence += 1
            issue = days[month % len(days)]
            session.add(
                Invoice(
                    type="invoice",
                    state="posted",
                    number=f"{sequence}/{issue.year}",
                    sequence_number=sequence,
                    year=issue.year,
                    customer_id=customer.id,
                    issue_date=issue,
                    due_date=issue + dt.timedelta(days=30),
                    net_total=Decimal("62.00"),
                    vat_total=Decimal("13.64"),
                    total=Decimal("75.64"),
                    posted_at=dt.datetime.combine(issue, dt.time(9), dt.UTC),
                )
            )
        email = f"portal{number:03d}@cliente.example"
        services.create_user(
            email, "customer_admin", customer_id=customer.id, name=f"Utente {number}", password=PASSWORD
        )
        emails.append(email)
        session.commit()
    for table in ("metering_reading", "metering_reading_value", "invoicing_invoice", "rentals_device", "core_partner"):
        session.execute(sa.text(f"ANALYZE {table}"))
    session.commit()
    return emails


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(url: str, port: int, workers: int) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(ROOT),
        "--log-level",
        "warning",
        "--preload",
        "bench.portal:server_app()",
    ]
    server = subprocess.Popen(command, env={**os.environ, DATABASE_ENV: url})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200:
                return server
        except requests.RequestException:
            pass
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}")
        time.sleep(0.3)
    server.terminate()
    raise SystemExit("gunicorn did not answer /healthz within 120 s")


def log_in(base: str, email: str) -> str:
    """Log the customer in as a browser would; its session cookie, CSRF token and first device's next counters."""
    browser = requests.Session()
    browser.headers["User-Agent"] = USER_AGENT
    token = CSRF_RE.search(browser.get(f"{base}/portal/login").text).group(1)
    answer = browser.post(
        f"{base}/portal/login",
        data={"csrf_token": token, "email": email, "password": PASSWORD},
        allow_redirects=False,
    )
    assert answer.status_code == 302, f"{email} could not log in ({answer.status_code})"
    form = browser.get(f"{base}{SUBMIT}").text
    token = CSRF_RE.search(form).group(1)
    device = COUNTER_RE.search(form).group(1)
    last = {
        meter: int(value)
        for meter, value in re.findall(rf'name="d{device}-(bw|color)"[^>]*data-previous="(\d+)"', form, re.S)
    }
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
    return "\t".join([cookie, requests.utils.quote(token, safe=""), device, str(last["bw"]), str(last["color"])])


def run_wrk(base: str, path: str, script: Path, cookies: Path, args, duration: int, mode: str = "get") -> dict:
    command = [
        "wrk",
        f"--threads={args.threads}",
        f"--connections={args.connections}",
        f"--duration={duration}s",
        "--timeout=30s",
        f"--script={script}",
        f"{base}{path}",
        "--",
        str(cookies),
        str(args.threads),
        mode,
    ]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"wrk failed on {path}: {finished.stdout}{finished.stderr}")
    output = finished.stdout
    # wrk leaves its last requests queued at the server: wait until they are served before the next run starts.
    requests.get(f"{base}/healthz", timeout=300)
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    requests_done, micros, p50, p95, p99, failed = (int(v) for v in line.split()[1:])
    return {
        "rate": requests_done / (micros / 1e6),
        "p50": p50 / 1000,
        "p95": p95 / 1000,
        "p99": p99 / 1000,
        "failed": failed,
        "requests": requests_done,
    }


def profile_pages(app, email: str, count: int, functions: int = 8) -> None:
    """Each portal page `count` times in process under cProfile: time a request, and where it goes by layer."""
    from core.db import db

    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = USER_AGENT
    token = CSRF_RE.search(client.get("/portal/login").text).group(1)
    answer = client.post("/portal/login", data={"csrf_token": token, "email": email, "password": PASSWORD})
    assert answer.status_code == 302, f"{email} could not log in ({answer.status_code})"
    statements, heaviest = [], []
    with app.app_context():  # only to reach the engine: each request below has its own context and session
        sa.event.listen(db.engine, "before_cursor_execute", lambda *args: statements.append(1))
    print(f"{count} requests a page in process, {email}; ms a request, and the share of its wall time per layer")
    print(f"{'page':26} {'wall':>6} {'CPU':>6} {'SQL':>4} " + " ".join(f"{column:>8}" for column in profiling.COLUMNS))
    for path in PAGES:
        assert client.get(path).status_code == 200, path  # warm-up: templates compiled, caches filled
        statements.clear()
        profiler = cProfile.Profile()
        wall, cpu = time.perf_counter(), time.process_time()
        profiler.enable()
        for _ in range(count):
            client.get(path)
        profiler.disable()
        wall, cpu = (time.perf_counter() - wall) / count, (time.process_time() - cpu) / count
        stats = pstats.Stats(profiler)
        shares = profiling.layer_shares(stats)
        print(
            f"{path:26} {wall * 1000:6.1f} {cpu * 1000:6.1f} {len(statements) // count:4d} "
            + " ".join(f"{shares[column]:8.0%}" for column in profiling.COLUMNS)
        )
        heaviest.append((path, profiling.heaviest(stats, functions)))
    print(profiling.legend())
    for path, rows in heaviest:
        print(f"{path}: heaviest of Copydesk's functions over the {count} requests (cumulative)")
        print("\n".join(f"  {row}" for row in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=SERVER, help="PostgreSQL server URL, without a database")
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--devices", type=int, default=3, help="devices per customer")
    parser.add_argument("--readings", type=int, default=12, help="monthly readings per device")
    parser.add_argument("--invoices", type=int, default=12, help="posted invoices per customer")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per page")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--profile", action="store_true", help="profile each page in process instead of loading it")
    parser.add_argument("--profile-requests", type=int, default=30, help="requests a page under the profiler")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.profile:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    url = recreate_database(args.server, args.database)
    server = None
    try:
        started = time.perf_counter()
        app = migrate(url)
        migrated = time.perf_counter()
        with app.app_context():
            emails = seed(args.customers, args.devices, args.readings, args.invoices)
        print(
            f"database {args.database}: migrated in {migrated - started:.0f} s; {args.customers} customers with "
            f"{args.devices} devices, {args.readings} readings a device, {args.invoices} invoices each "
            f"({time.perf_counter() - migrated:.0f} s)"
        )
        if args.profile:
            profile_pages(app, emails[0], args.profile_requests)
            return
        port = free_port()
        server = start_server(url, port, args.workers)
        base = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory() as folder:
            cookies, script = Path(folder) / "sessions.tsv", Path(folder) / "portal.lua"
            cookies.write_text("\n".join(log_in(base, email) for email in emails) + "\n")
            script.write_text(LUA)
            for path in ("/healthz", *PAGES):
                run_wrk(base, path, script, cookies, args, 2)  # warm-up: every worker has rendered the page
            results = {path: run_wrk(base, path, script, cookies, args, args.duration) for path in ("/healthz", *PAGES)}
            results[f"POST {SUBMIT}"] = run_wrk(base, SUBMIT, script, cookies, args, args.duration, "post")
        health = results["/healthz"]["rate"]
        print(
            f"gunicorn {args.workers} workers, wrk {args.threads} threads, {args.connections} connections, "
            f"{args.duration:g} s per page, {os.cpu_count()} cores"
        )
        print(f"{'page':32} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'failed':>7} {'healthz/page':>13}")
        for path, row in results.items():
            ratio = f"{health / row['rate']:12.1f}x" if row["rate"] else f"{'-':>13}"
            print(
                f"{path:32} {row['rate']:8.0f} {row['p50']:8.1f} {row['p95']:8.1f} {row['p99']:8.1f} "
                f"{row['failed']:7d} {ratio}"
            )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not args.keep:
            recreate_database(args.server, args.database, drop_only=True)


if __name__ == "__main__":
    main()
