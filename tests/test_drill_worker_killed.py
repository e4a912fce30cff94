"""Drill: the work horse of a real `flask worker` is killed in the middle of a billing chunk; the chunk runs again and
every contract is billed exactly once."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.config import ROOT
from core.db import db
from core.models import JobRecord
from modules.invoicing.models import BillingRun, Invoice, InvoiceLine, RunCustomer
from tests.api_support import add_customer, bearer

CUSTOMERS = 4
BLOCKED = 2  # index of the customer the horse is stopped at: the ones before it are billed and committed


def _contract(client, headers, customer_id: int, serial: str, start: dt.date) -> int:
    device = client.post(
        "/api/v1/devices",
        json={"serial": serial, "manufacturer": "Kyocera", "model": "M5526cdw", "meters": ["bw"]},
        headers=headers,
    )
    assert device.status_code == 201, device.get_data(as_text=True)
    body = {
        "customer_id": customer_id,
        "start_date": start.isoformat(),
        "period_months": 1,
        "fee": "50.00",
        "fee_timing": "advance",
        "allowances": [{"meter": "bw", "included": 1000, "pooled": False, "bands": [{"up_to": None, "price": "0.01"}]}],
        "devices": [{"device_id": device.get_json()["id"], "counters": {"bw": 10}}],
    }
    contract = client.post("/api/v1/contracts", json=body, headers=headers)
    assert contract.status_code == 201, contract.get_data(as_text=True)
    return contract.get_json()["id"]


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _work_horse(worker_pid: int) -> int:
    """RQ's work horse: the worker's child that leads its own process group (the scheduler process does not)."""
    horses = [pid for pid in _children(worker_pid) if os.getpgid(pid) == pid]
    assert len(horses) == 1, f"expected one work horse under {worker_pid}, found {horses}"
    return horses[0]


def _wait(predicate, timeout: float, what: str, worker: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert worker.poll() is None, f"the worker exited: {log.read_text()}"
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; worker log:\n{log.read_text()}")


def _waiting_for_lock(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        return bool(conn.scalar(sa.text("SELECT count(*) FROM pg_locks WHERE NOT granted")))


@pytest.mark.postgres_only
def test_chunk_whose_work_horse_is_killed_runs_again_and_bills_each_contract_once(
    app, redis_url, tmp_path, monkeypatch
):
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("the horse is stopped mid-chunk on a PostgreSQL row lock")
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    client = app.test_client()
    start = dt.date.today().replace(day=1)
    with app.app_context():
        headers = bearer("dealer_admin")
        customers = [add_customer(f"Studio {n}").id for n in range(CUSTOMERS)]
        contracts = {_contract(client, headers, c, f"SN-{n}", start) for n, c in enumerate(customers)}
        engine = db.engine
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": redis_url,
        "JOB_QUEUE": app.config["JOB_QUEUE"],
    }
    run = client.post("/api/v1/billing-runs", json={"as_of": dt.date.today().isoformat()}, headers=headers)
    assert run.status_code == 202, run.get_data(as_text=True)
    run_id = run.get_json()["id"]
    # Another transaction holds the blocked customer's "done" row: the horse bills the customers before it,
    # drafts that customer's invoice, then waits on the row lock with its transaction open.
    blocker = engine.connect()
    blocker.execute(sa.insert(RunCustomer).values(run_id=run_id, customer_id=customers[BLOCKED]))
    with log.open("w") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: _waiting_for_lock(engine), 90, "the horse to reach the blocked customer", worker, log)
        with engine.connect() as conn:
            billed = set(conn.scalars(sa.select(Invoice.customer_id).where(Invoice.billing_run_id == run_id)))
        assert billed == set(customers[:BLOCKED])

        os.kill(_work_horse(worker.pid), signal.SIGKILL)
        blocker.rollback()

        def run_finished():
            with engine.connect() as conn:
                return conn.scalar(sa.select(BillingRun.status).where(BillingRun.id == run_id)) == "done"

        # RQ retries the chunk after the first backoff interval (10 s).
        _wait(run_finished, 90, "the retried chunk to finish the run", worker, log)
    finally:
        blocker.close()
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()

    with app.app_context():
        invoices = db.session.execute(
            sa.select(Invoice.contract_id, sa.func.count())
            .where(Invoice.billing_run_id == run_id)
            .group_by(Invoice.contract_id)
        ).all()
        assert dict(invoices) == dict.fromkeys(contracts, 1)
        refs = db.session.scalars(
            sa.select(InvoiceLine.source_ref).join(Invoice).where(Invoice.billing_run_id == run_id)
        ).all()
        assert len(refs) == len(set(refs)) == len(contracts)
        chunk = db.session.get(JobRecord, f"billing-run:{run_id}:0")
        assert (chunk.status, chunk.attempts) == ("done", 2)
        assert "Work horse terminated unexpectedly" not in (chunk.error or "")
        run = db.session.get(BillingRun, run_id)
        assert (run.done, run.total) == (CUSTOMERS, CUSTOMERS)
