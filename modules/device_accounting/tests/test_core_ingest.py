"""A batch of a device's jobs ends as the same jobs recorded one by one, to the cent and row for row; each device
sequence number is stored once even when two writers send overlapping batches at the same moment."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine

from core import clock
from core.db import db
from core.models import OutboxMessage
from core.validation import ValidationError
from modules.device_accounting.ingest import ItemResult, record_batch
from modules.device_accounting.models import (
    AccountingSettings,
    Balance,
    CenterDailyUsage,
    CostCenter,
    DailyUsage,
    LedgerEntry,
    MonthlyUsage,
    PriceList,
    PrintUser,
    Quota,
    Transaction,
)
from modules.device_accounting.operations import record_transaction
from modules.device_accounting.tests import core_support as s
from tests.query_counter import count_queries

D = Decimal
SET_UP = "2026-02-20T09:00:00+01:00"
# After the month (and the week) the quotas opened in: each balance opens its new period at its first charge.
RUN = "2026-03-03T10:00:00+01:00"


def world(tag: str) -> dict[str, Any]:
    """One customer of many kinds of users, cost centers, quotas and prices, with three jobs stored in February."""
    studio = s.customer("Studio Bianchi")
    machine = s.device(f"KY-{tag}", studio, since="2026-02-01")
    admin = s.cost_center(studio, "Amministrazione")
    shared = s.cost_center(studio, "Progetti", shared=True)
    archive = s.cost_center(studio, "Archivio")
    anna = s.print_user(
        studio,
        "anna",
        email=f"anna@{tag}.it",
        language="it",
        default_cost_center_id=admin.id,
        cost_center_ids=[admin.id, shared.id],
    )
    bruno = s.print_user(studio, "bruno", default_cost_center_id=admin.id)
    carla = s.print_user(studio, "carla")
    dario = s.print_user(studio, "dario", email=f"dario@{tag}.it", language="es")
    s.prices(
        studio.id,
        [
            ("print", "bw", "any", "any", "0.012"),
            ("print", "bw", "A3", "any", "0.024"),
            ("print", "bw", "A4", "yes", "0.010"),
            ("print", "color", "any", "any", "0.080", "0.05"),
            ("copy", "bw", "any", "any", "0.015", "0.02"),
            ("copy", "color", "any", "any", "0.090"),
        ],
        valid_from="2026-01-01",
        name="Bianchi 2026",
    )
    s.prices(
        studio.id,
        [("print", "bw", "any", "any", "0.011"), ("print", "color", "any", "any", "0.075", "0.04")],
        valid_from="2026-03-01",
        name="Bianchi marzo",
    )
    s.quota(anna, "20.00", warning_percent=50)
    s.quota(bruno, "10.00", mode="rollover", rollover_cap="15.00", period="weekly")
    s.quota(dario, "5.00", overdraft="1.00")
    s.quota(shared, "50.00")
    found = {
        "studio": studio,
        "machine": machine,
        "users": {user.username: user for user in (anna, bruno, carla, dario)},
        "centers": {center.name: center for center in (admin, shared, archive)},
    }
    for seq, user, sides in ((1, anna, 100), (2, bruno, 300), (3, dario, 50)):
        record_transaction(
            s.job(
                machine,
                seq,
                user,
                sides_bw=sides,
                started_at="2026-02-19T12:00:00+01:00",
                ended_at="2026-02-19T12:01:00+01:00",
            )
        )
    return found


def dealer_prices() -> None:
    """The dealer's list, shared by both worlds: scans cost a little, prints what no customer list prices."""
    s.prices(
        None,
        [
            ("scan", "bw", "any", "any", "0.001"),
            ("scan", "color", "any", "any", "0.002"),
            ("print", "bw", "any", "any", "0.02"),
            ("print", "color", "any", "any", "0.10"),
        ],
        valid_from="2025-01-01",
        name="Dealer",
    )


def items(w: dict[str, Any]) -> list[Any]:
    """A mixed batch: stored, duplicates of stored and of earlier items, refused, odd dates, names, zero cost."""
    machine, u, c = w["machine"], w["users"], w["centers"]

    def job(seq, user, **fields):
        data = s.job(machine, seq, u[user] if user else None, **fields)
        del data["device_id"]  # the device is the caller's, never the item's
        return data

    return [
        job(10, "anna", sides_bw=10),
        job(11, "anna", sides_bw=2, sides_color=5, duplex=True),
        job(2, "bruno", sides_bw=999),  # stored in February: a duplicate whatever it says
        job(12, "bruno", function="copy", paper_size="A3", sides_bw=20),
        job(13, "carla", sides_bw=3),
        job(14, "anna", sides_bw=100, cost_center_id=c["Progetti"].id),
        job(15, "anna", sides_bw=1, cost_center_id=c["Archivio"].id),  # anna may not charge it
        {**job(16, None), "user_id": 999_999_999},
        job(17, "anna", function="staple"),
        job(18, "anna", started_at="2026-03-02T12:05:00+01:00"),  # ends before it started
        job(18, "bruno", sides_bw=7),  # the same number, now right: stored
        job(10, "anna", sides_bw=500),  # a repeat inside the batch: the first copy's transaction
        job(19, "anna", sides_bw=900, paper_size="A4"),  # passes 50% of anna's 20.00: the warning
        job(20, "anna", sides_bw=50),
        job(21, "dario", sides_bw=380),  # 4.56 of 5.00: dario's warning
        job(22, "dario", sides_bw=200),  # beyond the overdraft: recorded, never dropped
        job(23, None, document_name="  offerta\x00 2026.pdf  "),
        job(24, "carla", function="scan", sides_bw=12, sides_color=3),
        job(25, "anna", sides_bw=40, ended_at="2026-02-27T18:00:00+01:00", started_at="2026-02-27T17:59:00+01:00"),
        job(26, "bruno", sides_bw=4, ended_at="2026-01-15T10:00:00+01:00", started_at="2026-01-15T09:59:00+01:00"),
        job(27, "bruno", sides_bw=6, started_at="2026-03-02T23:30:00", ended_at="2026-03-02T23:45:00"),
        job(28, "dario", sides_bw=0, status="cancelled"),
        {**job(29, "anna"), "device_seq": "ventinove"},
        "not a job",
        {**job(30, "carla", sides_bw=8, sheets=3, status="failed"), "device_id": 424242},
        job(31, "bruno", sides_color=9, paper_size="letter"),
        job(3, "dario", sides_bw=1),
        job(32, "anna", sides_bw=5, cost_center_id=str(c["Progetti"].id)),
    ]


def one_by_one(device_id: int, batch: list[Any]) -> list[ItemResult]:
    """operations.record_transaction for each item in turn, each in its savepoint, as the REST API's list does."""
    results = []
    for item in batch:
        seq = item.get("device_seq") if isinstance(item, dict) else None
        seq = seq if isinstance(seq, int) else None
        try:
            with db.session.begin_nested():
                tx, created = record_transaction({**item, "device_id": device_id} if isinstance(item, dict) else item)
        except ValidationError as error:
            results.append(ItemResult(seq, "refused", errors=error.errors))
            continue
        results.append(ItemResult(tx.device_seq, "stored" if created else "duplicate", tx.id, tx.cost))
    return results


def utc(value: dt.datetime | None) -> dt.datetime | None:
    return clock.as_utc(value) if value is not None else None


def snapshot(w: dict[str, Any], results: list[ItemResult]) -> dict[str, Any]:
    """Everything the batch changed for this customer, told by names and sequence numbers instead of ids."""
    db.session.flush()
    db.session.expire_all()
    customer_id = w["studio"].id
    users = {user.id: user.username for user in db.session.scalars(sa.select(PrintUser))}
    centers = {center.id: center.name for center in db.session.scalars(sa.select(CostCenter))}
    lists = {price_list.id: price_list.name for price_list in db.session.scalars(sa.select(PriceList))}
    quotas = db.session.scalars(sa.select(Quota).where(Quota.customer_id == customer_id)).all()
    holder = {quota.id: users.get(quota.user_id) or centers.get(quota.cost_center_id) for quota in quotas}
    txs = db.session.scalars(
        sa.select(Transaction).where(Transaction.customer_id == customer_id).order_by(Transaction.id)
    ).all()
    seq_of = {tx.id: tx.device_seq for tx in txs}
    balances = {
        holder[balance.quota_id]: (balance.period_start, balance.opening, balance.balance, balance.warned_period)
        for balance in db.session.scalars(sa.select(Balance).where(Balance.quota_id.in_(list(holder))))
    }
    ledger: dict[str, list] = {}
    for entry, quota_id in db.session.execute(
        sa.select(LedgerEntry, Balance.quota_id)
        .join(Balance, Balance.id == LedgerEntry.balance_id)
        .where(Balance.quota_id.in_(list(holder)))
        .order_by(LedgerEntry.id)
    ):
        ledger.setdefault(holder[quota_id], []).append(
            (entry.kind, entry.period_start, entry.amount, seq_of.get(entry.transaction_id))
        )

    def rollup(model, key_names):
        rows = db.session.scalars(sa.select(model).where(model.customer_id == customer_id)).all()
        named = {"user_id": users, "cost_center_id": centers}
        return sorted(
            (
                *(
                    named[name].get(getattr(row, name), "-") if name in named else getattr(row, name)
                    for name in key_names
                ),
                row.jobs,
                row.sides_bw,
                row.sides_color,
                row.sheets,
                row.cost,
            )
            for row in rows
        )

    tag = w["machine"].serial.split("-")[1].lower()
    mails = [
        (message.recipients, message.language, message.subject, message.body_text.replace(f"@{tag}.it", "@x.it"))
        for message in db.session.scalars(sa.select(OutboxMessage).order_by(OutboxMessage.id))
        if any(f"@{tag}.it" in address for address in message.recipients)
    ]
    mails = [([r.replace(f"@{tag}.it", "@x.it") for r in to], *rest) for to, *rest in mails]
    return {
        "results": [(r.status, r.device_seq, seq_of.get(r.transaction_id), r.cost, r.errors) for r in results],
        "transactions": [
            (
                tx.device_seq,
                users.get(tx.user_id),
                centers.get(tx.cost_center_id),
                tx.function,
                tx.sides_bw,
                tx.sides_color,
                tx.sheets,
                tx.paper_size,
                tx.duplex,
                tx.status,
                tx.document_name,
                utc(tx.started_at),
                utc(tx.ended_at),
                tx.cost,
                lists.get(tx.price_list_id),
                holder.get(tx.quota_id),
                tx.balance_after,
                tx.refunded,
                utc(tx.received_at),
            )
            for tx in txs
        ],
        "balances": balances,
        "ledger": ledger,
        "daily": rollup(DailyUsage, ("day", "user_id", "cost_center_id", "function", "paper_size")),
        "monthly": rollup(MonthlyUsage, ("month", "user_id", "cost_center_id", "function", "paper_size")),
        "centers": rollup(CenterDailyUsage, ("day", "cost_center_id", "function")),
        "mails": mails,
    }


def test_a_mixed_batch_ends_as_the_same_jobs_recorded_one_by_one(db_session):
    with time_machine.travel(s.at(SET_UP), tick=False) as frozen:
        dealer_prices()
        single, batch = world("a"), world("b")
        frozen.move_to(s.at(RUN))
        expected = snapshot(single, one_by_one(single["machine"].id, items(single)))
        got = snapshot(batch, record_batch(batch["machine"].id, items(batch)))

    for part in expected:
        assert got[part] == expected[part], part
    # The outcome is the one the rules give, not only the same one twice.
    outcome = {seq: (status, cost) for status, seq, _tx, cost, _errors in got["results"]}
    assert outcome[2] == ("duplicate", D("3.6000"))  # February's 300 sides at February's 0.012
    assert outcome[10] == ("duplicate", D("0.1100"))  # the first copy: 10 sides at March's 0.011
    assert outcome[11] == ("stored", D("0.4370"))  # 2 x 0.011 + 5 x 0.075 + the colour fee 0.04
    assert outcome[18] == ("stored", D("0.0770"))
    assert [r[0] for r in got["results"]].count("refused") == 6
    assert got["balances"]["anna"][3] == dt.date(2026, 3, 1) and len(got["mails"]) == 2
    assert got["ledger"]["bruno"][-1][0] == "charge" and got["balances"]["dario"][2] < D("-1")


def test_a_batch_sent_again_is_all_duplicates_and_changes_nothing(db_session):
    with time_machine.travel(s.at(SET_UP), tick=False) as frozen:
        dealer_prices()
        w = world("a")
        frozen.move_to(s.at(RUN))
        first = record_batch(w["machine"].id, items(w))
        before = snapshot(w, first)
        again = record_batch(w["machine"].id, items(w))
        after = snapshot(w, again)
    stored = {(r.device_seq, r.transaction_id, r.cost) for r in first if r.status != "refused"}
    assert {(r.device_seq, r.transaction_id, r.cost) for r in again if r.status == "duplicate"} == stored
    # What was refused is refused again, but seq 18 (refused, then stored by its second copy) is now a duplicate.
    assert [r.status for r in again].count("refused") == [r.status for r in first].count("refused") - 1 == 5
    assert {k: v for k, v in after.items() if k != "results"} == {k: v for k, v in before.items() if k != "results"}


def test_a_batch_costs_the_same_statements_for_ten_jobs_as_for_three_hundred(app, db_session):
    studio = s.customer()
    machine = s.device("KY1", studio)
    people = [s.print_user(studio, f"user{n}", email=f"user{n}@example.com") for n in range(6)]
    for person in people:
        s.quota(person, "1000.00")
    s.simple_prices()
    db.session.commit()

    def send(first_seq: int, count: int):
        batch = [
            {**s.job(machine, first_seq + n, people[n % len(people)], sides_bw=n + 1), "device_id": None}
            for n in range(count)
        ]
        with count_queries(app) as queries:
            results = record_batch(machine.id, batch)
        db.session.commit()
        assert {r.status for r in results} == {"stored"}
        return queries

    few, many = send(1, 10), send(1000, 300)
    assert len(many) <= len(few), f"{few}\n{many}"


def test_a_hidden_document_name_is_not_stored_by_a_batch(db_session):
    studio = s.customer()
    machine = s.device("KY1", studio)
    db.session.add(AccountingSettings(customer_id=studio.id, hide_document_names=True))
    s.simple_prices()
    results = record_batch(machine.id, [s.job(machine, 1, None, document_name="Lettera riservata.docx")])
    assert results[0].status == "stored"
    assert db.session.get(Transaction, results[0].transaction_id).document_name is None


# --- two writers at once (PostgreSQL) --------------------------------------------------------------------------


@pytest.fixture
def pg_office(app):
    if app.config["TEST_BACKEND"] != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    with app.app_context():
        studio = s.customer()
        machine = s.device("KY1", studio)
        user = s.print_user(studio, "mrossi", email="mario.rossi@example.com")
        s.simple_prices(bw="0.01")
        quota = s.quota(user, "1000.00")
        db.session.commit()
        return machine.id, user.id, quota.id


def _job(machine_id: int, user_id: int, seq: int) -> dict:
    return {
        "device_seq": seq,
        "user_id": user_id,
        "function": "print",
        "sides_bw": seq % 7 + 1,
        "started_at": "2026-03-02T12:00:00+01:00",
        "ended_at": "2026-03-02T12:01:00+01:00",
    }


def _in_threads(app, work: list) -> list:
    """Each callable in its own thread, app context and session, released together; what each returned."""
    barrier = threading.Barrier(len(work))
    outcomes: list = [None] * len(work)

    def run(index: int, call) -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
                outcomes[index] = call()
                db.session.commit()
            except Exception as error:  # reported by the assertion, not lost in the thread
                db.session.rollback()
                outcomes[index] = error
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(work)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_writers_sending_overlapping_batches_store_each_sequence_number_once(app, pg_office):
    machine_id, user_id, quota_id = pg_office
    rounds = []
    for round_ in range(4):
        base = round_ * 1000
        first = [_job(machine_id, user_id, base + n) for n in range(0, 300)]
        second = [_job(machine_id, user_id, base + n) for n in range(150, 450)]
        rounds.append(
            _in_threads(
                app, [lambda b=first: record_batch(machine_id, b), lambda b=second: record_batch(machine_id, b)]
            )
        )
    for outcomes in rounds:
        assert all(isinstance(outcome, list) for outcome in outcomes), outcomes
        statuses: dict[int, list[str]] = {}
        for outcome in outcomes:
            for result in outcome:
                statuses.setdefault(result.device_seq, []).append(result.status)
        assert len(statuses) == 450
        assert all(sorted(s_) in (["stored"], ["duplicate", "stored"]) for s_ in statuses.values())
    with app.app_context():
        seqs = db.session.scalars(sa.select(Transaction.device_seq)).all()
        assert len(seqs) == len(set(seqs)) == 4 * 450
        expected = D("1000") - sum(D("0.01") * (n % 7 + 1) for r in range(4) for n in range(r * 1000, r * 1000 + 450))
        assert db.session.scalar(sa.select(Balance.balance).where(Balance.quota_id == quota_id)) == expected
        jobs = db.session.scalar(sa.select(sa.func.sum(DailyUsage.jobs)))
        assert jobs == 4 * 450


def test_a_batch_meeting_a_job_stored_meanwhile_one_by_one_stores_it_once(app, pg_office):
    """record_transaction takes no device lock: the batch waits on the unique index, then starts over."""
    machine_id, user_id, quota_id = pg_office
    inserted = threading.Event()

    def single():
        _tx, created = record_transaction({**_job(machine_id, user_id, 5), "device_id": machine_id})
        inserted.set()
        time.sleep(0.5)  # the batch is waiting on the unique (device, device_seq) meanwhile
        return created

    def batch():
        inserted.wait(timeout=10)
        return record_batch(machine_id, [_job(machine_id, user_id, n) for n in range(1, 10)])

    with count_queries(app) as queries:
        created, results = _in_threads(app, [single, batch])
    assert created is True, created
    assert isinstance(results, list), results
    assert any(query.startswith("ROLLBACK TO SAVEPOINT") for query in queries)  # it did meet it, and started over
    assert [r.status for r in results] == ["stored"] * 4 + ["duplicate"] + ["stored"] * 4
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count(Transaction.id))) == 9
        charges = db.session.scalar(sa.select(sa.func.count(LedgerEntry.id)).where(LedgerEntry.kind == "charge"))
        assert charges == 9
        spent = sum(D("0.01") * (n % 7 + 1) for n in range(1, 10))
        assert db.session.scalar(sa.select(Balance.balance).where(Balance.quota_id == quota_id)) == D(1000) - spent
