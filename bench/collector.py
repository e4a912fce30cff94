"""Benchmark of the device collector: simulated devices sending finished jobs in TXN batches over TLS.

    .venv/bin/python bench/collector.py                                   # 400,000 transactions, 16 devices
    .venv/bin/python bench/collector.py --transactions 100000 --instances 2
    .venv/bin/python bench/collector.py --database-url postgresql://root@127.0.0.1:5432/bench_collector

PostgreSQL only. The database (--database-url, else TEST_DATABASE_URL, else bench_collector on the local server;
created when missing) is emptied and migrated. `simulator.prepare` makes the Simulated customer: --devices installed
devices plus --probes more, --users print users with cards, PINs and a quota each, a price list. Every device is
enrolled over the wire. Then --instances `flask device-collector --processes P` serve them (devices spread evenly
over the instances' ports; P worker processes share each port); each load device sends its share of --transactions
in frames of --batch jobs (90% by the users it is the home device
of, 10% by those of the next two devices, as on an office floor; print 55%, copy 25%, scan 10%,
email 5%, fax 3%, FTP 2%; 1-12 sides, colour on 30% of prints and copies, document names on prints), one frame at
a time, the next only once the last was acknowledged (after the collector's commit). The frames are encoded before
the clock starts, so the client's share of the CPU is the TLS and reading the acknowledgements.

Meanwhile --probes devices (in a process of their own, so the load's event loop does not delay them) each log a user
in by card (IDENTIFY) and AUTHORIZE a print job, --probe-rate times a second.

Printed: the sustained rate of transactions acknowledged as stored (first to last acknowledgement), the IDENTIFY and
AUTHORIZE round trips p50/p99 under that load, then the rate of COPYing the same rows into a table like
device_accounting_transaction (same indexes and constraints) on the same database, and the ratio. Goals on the
project's 2-core machine: >= 25,000 transactions/s, AUTHORIZE p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core import create_app  # noqa: E402 -- after the path is set
from modules.device_collector import simulator  # noqa: E402

MODULES = ("rentals", "metering", "device_accounting", "device_collector")
SECRET_KEY = "bench-collector"
FUNCTIONS = list(simulator.FUNCTION_WEIGHTS)
WEIGHTS = list(simulator.FUNCTION_WEIGHTS.values())


def build_app(url: str):
    config = {
        "DATABASE_URL": url,
        "SECRET_KEY": SECRET_KEY,
        "REDIS_URL": None,
        "MAIL_SERVER": None,
        "COPYDESK_MODULES": list(MODULES),
        "RATELIMIT_STORAGE_URI": "memory://",
    }
    return create_app(config)


def migrate(url: str):
    from conftest import empty_postgres
    from core.migrate import upgrade_enabled
    from core.module_state import record_states, resolve_for_app

    empty_postgres(url)
    app = build_app(url)
    with app.app_context():
        upgrade_enabled(app.extensions["copydesk"].resolution)
        record_states(resolve_for_app(app), app.config["COPYDESK_MODULES"])
    return build_app(url)


# --- collector processes ------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_collectors(url: str, count: int, processes: int, log_dir: Path) -> list[tuple[subprocess.Popen, int]]:
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET_KEY, "REDIS_URL": "", "MAIL_SERVER": ""}
    started = []
    for number in range(count):
        port = free_port()
        log = (log_dir / f"collector-{number + 1}.log").open("w")
        command = [str(ROOT / ".venv/bin/flask"), "--app", "wsgi", "device-collector", "--port", str(port)]
        command += ["--processes", str(processes)]
        started.append((subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), port))
    for process, port in started:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise SystemExit(f"a collector exited ({process.returncode}): see {log_dir}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"a collector did not listen on {port}: see {log_dir}") from None
                time.sleep(0.1)
    return started


def stop_collectors(started: list[tuple[subprocess.Popen, int]]) -> None:
    for process, _port in started:
        process.send_signal(signal.SIGTERM)
    for process, _port in started:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


# --- the load -----------------------------------------------------------------------------------------------------


def encode_frames(users: tuple[list[int], list[int]], first_seq: int, count: int, batch: int, seed: int) -> list[bytes]:
    """A device's TXN frames (header and JSON), jobs ending over the last hour: 90% of them by the users it is the
    home device of, the rest by those of the next two devices on the floor."""
    home, nearby = users
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    frames = []
    seq = first_seq
    for start in range(0, count, batch):
        items = []
        for _n in range(min(batch, count - start)):
            function = rng.choices(FUNCTIONS, WEIGHTS)[0]
            color = rng.randint(1, 10) if function in ("print", "copy") and rng.random() < 0.3 else 0
            ended = now - dt.timedelta(seconds=rng.randint(60, 3600))
            item = {
                "device_seq": seq,
                "user_id": rng.choice(home if rng.random() < 0.9 or not nearby else nearby),
                "function": function,
                "sides_bw": rng.randint(1, 12),
                "sides_color": color,
                "paper_size": "A4" if rng.random() < 0.9 else "A3",
                "duplex": function in simulator.PRINTED and rng.random() < 0.4,
                "status": "done",
                "started_at": (ended - dt.timedelta(seconds=30)).isoformat(timespec="seconds"),
                "ended_at": ended.isoformat(timespec="seconds"),
            }
            if function == "print":
                item["document_name"] = f"Report {rng.randint(1, 9999)}.pdf"
            items.append(item)
            seq += 1
        body = json.dumps(
            {"v": 1, "id": len(frames) + 1, "type": "TXN", "body": {"transactions": items}}, separators=(",", ":")
        ).encode()
        frames.append(len(body).to_bytes(4, "big") + body)
    return frames


async def _send_frames(device: dict, frames: list[bytes], marks: list[tuple[float, int]], retries: list) -> None:
    client = simulator.DeviceClient()
    await client.connect(device["host"], device["port"], device["ca_pem"], device["cert_pem"], device["key_pem"])
    await client.request(
        "HELLO",
        {"protocol_version": 1, "serial": device["serial"], "firmware": "bench", "capabilities": ["batch"]},
    )
    for frame in frames:
        while True:
            client.writer.write(frame)
            await client.writer.drain()
            reply = await client.receive(timeout=120)
            if reply.get("ok"):
                break
            if reply["body"]["code"] != "try_later":
                raise RuntimeError(f"{device['serial']}: {reply['body']}")
            retries.append(time.monotonic())  # sent again, as a device does
            await asyncio.sleep(min(reply["body"].get("retry_after", 1), 1))
        marks.append((time.monotonic(), reply["body"]["stored"]))
    await client.close()


def load_process(devices: list[dict], per_device: int, batch: int, go, out) -> None:
    """One process of load devices: encode every frame, wait for the start signal, send, report the acks' times."""
    frames = [encode_frames(d["users"], 1, per_device, batch, seed=n) for n, d in enumerate(devices)]
    out.send(("ready", None))
    go.wait()

    marks: list[tuple[float, int]] = []
    retries: list[float] = []

    async def main() -> None:
        await asyncio.gather(*(_send_frames(d, f, marks, retries) for d, f in zip(devices, frames, strict=True)))

    started = time.monotonic()
    try:
        asyncio.run(main())
    except Exception:
        out.send(("error", traceback.format_exc()))
        return
    out.send(("done", {"started": started, "marks": marks, "retries": len(retries)}))


def probe_process(devices: list[dict], people: list[dict], rate: float, stop, out) -> None:
    """Log a user in and authorize a print job, `rate` times a second per device, until `stop` is set."""

    async def one(device: dict, samples: dict[str, list[float]]) -> None:
        client = simulator.DeviceClient()
        await client.connect(device["host"], device["port"], device["ca_pem"], device["cert_pem"], device["key_pem"])
        await client.request(
            "HELLO", {"protocol_version": 1, "serial": device["serial"], "firmware": "bench", "capabilities": []}
        )
        rng = random.Random(device["serial"])
        while not stop.is_set():
            person = rng.choice(people)
            begun = time.perf_counter()
            who = await client.request("IDENTIFY", {"card": person["card"]}, timeout=120)
            middle = time.perf_counter()
            job = {"user_id": who["user"]["id"], "function": "print", "sides_bw": rng.randint(1, 12)}
            job.update({"sides_color": 0, "paper_size": "A4", "duplex": False})
            await client.request("AUTHORIZE", job, timeout=120)
            ended = time.perf_counter()
            samples["identify"].append(middle - begun)
            samples["authorize"].append(ended - middle)
            samples["both"].append(ended - begun)
            await asyncio.sleep(max(0.0, 1 / rate - (ended - begun)))
        await client.close()

    async def main() -> dict[str, list[float]]:
        samples: dict[str, list[float]] = {"identify": [], "authorize": [], "both": []}
        await asyncio.gather(*(one(device, samples) for device in devices))
        return samples

    try:
        out.send(asyncio.run(main()))
    except Exception:
        out.send({"identify": [], "authorize": [], "both": [], "error": traceback.format_exc()})


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


# --- COPY of the same rows ------------------------------------------------------------------------------------------


def copy_rate(app) -> tuple[int, float]:
    """(rows, seconds) to COPY the stored transactions into a new table like device_accounting_transaction."""
    from core.db import db

    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            cursor.execute("DROP TABLE IF EXISTS bench_copy_transaction")
            cursor.execute("CREATE TABLE bench_copy_transaction (LIKE device_accounting_transaction INCLUDING ALL)")
            raw.driver_connection.commit()
            data = io.BytesIO()
            with cursor.copy("COPY device_accounting_transaction TO STDOUT") as copy:
                for chunk in copy:
                    data.write(chunk)
            rows = cursor.execute("SELECT count(*) FROM device_accounting_transaction").fetchone()[0]
            raw.driver_connection.commit()
            started = time.perf_counter()
            with cursor.copy("COPY bench_copy_transaction FROM STDIN") as copy:
                copy.write(data.getvalue())
            raw.driver_connection.commit()
            seconds = time.perf_counter() - started
            cursor.execute("DROP TABLE bench_copy_transaction")
            raw.driver_connection.commit()
        finally:
            raw.close()
    return rows, seconds


# --- the run ------------------------------------------------------------------------------------------------------


def bench(args) -> None:
    from core.db import db

    app = migrate(args.database_url)
    log_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "bench_collector"
    log_dir.mkdir(exist_ok=True)
    total_devices = args.devices + args.probes
    with app.app_context():
        started = time.perf_counter()
        codes, people, ca_pem = simulator.prepare(total_devices, args.users, seed=1)
        version = db.session.scalar(sa.text("SHOW server_version"))
        db.session.remove()
    print(f"{total_devices} devices, {len(people)} print users set up in {time.perf_counter() - started:.1f} s")
    collectors = start_collectors(args.database_url, args.instances, args.processes, log_dir)
    try:
        ports = [port for _process, port in collectors]

        async def enrol_all() -> list[dict]:
            found = []
            for number, (serial, code) in enumerate(codes):
                port = ports[number % len(ports)]
                cert_pem, key_pem = await simulator.enrol("127.0.0.1", port, ca_pem, code, serial)
                found.append(
                    {"serial": serial, "host": "127.0.0.1", "port": port, "ca_pem": ca_pem}
                    | {"cert_pem": cert_pem, "key_pem": key_pem}
                )
            return found

        enrolled = asyncio.run(enrol_all())
        load_devices, probe_devices = enrolled[: args.devices], enrolled[args.devices :]
        per_device = args.transactions // args.devices
        count = args.devices
        for number, device in enumerate(load_devices):
            home = [person.id for n, person in enumerate(people) if n % count == number]
            nearby = [
                person.id
                for n, person in enumerate(people)
                if n % count in ((number + 1) % count, (number + 2) % count)
            ]
            device["users"] = (home or [people[number % len(people)].id], nearby)
        cards = [{"card": person.card} for person in people]

        context = multiprocessing.get_context("fork")
        go, stop = context.Event(), context.Event()
        loaders = []
        for part in range(args.load_processes):
            mine = load_devices[part :: args.load_processes]
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=load_process, args=(mine, per_device, args.batch, go, send), daemon=True)
            process.start()
            loaders.append((process, receive))
        for _process, receive in loaders:
            assert receive.recv()[0] == "ready"
        print(
            f"{args.instances} collector(s) x {args.processes} process(es), {args.devices} load devices x "
            f"{per_device:,} transactions "
            f"in frames of {args.batch}, {args.probes} probe devices at {args.probe_rate:g}/s; "
            f"PostgreSQL {version}, {os.cpu_count()} CPUs",
            flush=True,
        )
        probe_receive, probe_send = context.Pipe(duplex=False)
        prober = context.Process(
            target=probe_process, args=(probe_devices, cards, args.probe_rate, stop, probe_send), daemon=True
        )
        if probe_devices:
            prober.start()
            time.sleep(0.5)
        go.set()
        results = []
        for _process, receive in loaders:
            state, result = receive.recv()
            if state == "error":
                raise SystemExit(f"a load process failed:\n{result}")
            results.append(result)
        stop.set()
        samples = probe_receive.recv() if probe_devices else {"identify": [], "authorize": [], "both": []}
        if samples.get("error"):
            print(f"the probe failed:\n{samples['error']}")
        for process, _receive in loaders:
            process.join()
        if probe_devices:
            prober.join()
    finally:
        stop_collectors(collectors)

    marks = sorted(mark for result in results for mark in result["marks"])
    begun = min(result["started"] for result in results)
    stored = sum(count for _at, count in marks)
    elapsed = marks[-1][0] - begun
    # Steady state: without the first 10% of the acknowledgements (connections and caches warming up).
    skip = len(marks) // 10
    steady = sum(count for _at, count in marks[skip + 1 :]) / (marks[-1][0] - marks[skip][0]) if skip else 0
    print()
    print(f"{'acknowledged after commit':<34}{stored:>12,} transactions in {elapsed:.1f} s")
    verdict = "ok" if stored / elapsed >= 25_000 else "below 25,000"
    print(f"{'sustained rate':<34}{stored / elapsed:>12,.0f} tx/s  {verdict}")
    if steady:
        print(f"{'steady rate (after warm-up)':<34}{steady:>12,.0f} tx/s")
    for name, label in (("identify", "IDENTIFY"), ("authorize", "AUTHORIZE"), ("both", "IDENTIFY+AUTHORIZE")):
        values = samples[name]
        if not values:
            continue
        p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
        verdict = ("  ok" if p99 <= 10 else "  over 10 ms") if name == "authorize" else ""
        print(f"{label + ' round trip':<34}{p50:>9.1f} ms p50 {p99:>7.1f} ms p99  ({len(values)} samples){verdict}")
    rows, seconds = copy_rate(app)
    print(f"{'COPY of the same rows':<34}{rows / seconds:>12,.0f} rows/s ({rows:,} rows in {seconds:.2f} s)")
    print(f"{'ratio COPY / collector':<34}{rows / seconds / (stored / elapsed):>12.1f}x")
    retried = sum(result["retries"] for result in results)
    if retried:
        print(f"{'frames sent again (try_later)':<34}{retried:>12,}")
    with app.app_context():
        counted = db.session.scalar(sa.text("SELECT count(*) FROM device_accounting_transaction"))
        db.session.remove()
        db.engine.dispose()
    if counted != stored:
        print(f"warning: {counted:,} rows stored, {stored:,} acknowledged as stored")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_url = os.environ.get("TEST_DATABASE_URL") or "postgresql://root@127.0.0.1:5432/bench_collector"
    parser.add_argument("--database-url", default=default_url, help="a PostgreSQL database to empty and fill")
    parser.add_argument("--transactions", type=int, default=400_000)
    parser.add_argument("--devices", type=int, default=16, help="devices sending TXN batches")
    parser.add_argument("--batch", type=int, default=1000, help="transactions per TXN frame")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--instances", type=int, default=1, help="collectors, each on a port of its own")
    parser.add_argument(
        "--processes",
        type=int,
        default=2,
        help="worker processes of each collector (flask device-collector --processes)",
    )
    parser.add_argument("--load-processes", type=int, default=1, help="client processes sharing the load devices")
    parser.add_argument("--probes", type=int, default=2, help="devices measuring IDENTIFY and AUTHORIZE")
    parser.add_argument("--probe-rate", type=float, default=20, help="IDENTIFY+AUTHORIZE per second per probe")
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("--database-url must be a PostgreSQL database")
    bench(args)


if __name__ == "__main__":
    main()
