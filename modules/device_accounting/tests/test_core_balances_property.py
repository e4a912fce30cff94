"""Property: after any sequence of periods, jobs, refunds and adjustments, every balance is its ledger's sum."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal

import pytest
import sqlalchemy as sa
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import clock
from core.db import db
from core.validation import ValidationError
from modules.device_accounting import quotas
from modules.device_accounting.models import Balance, LedgerEntry, Refund, Transaction
from modules.device_accounting.operations import authorize, record_transaction, refund
from modules.device_accounting.tests import core_support as s

BW, COLOR = Decimal("0.01"), Decimal("0.05")
START = s.at("2026-01-14T09:00:00+01:00")

SIDES = st.tuples(st.integers(0, 400), st.integers(0, 60))
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("period")),
        st.tuples(st.just("job"), SIDES),
        st.tuples(st.just("offline"), SIDES),
        st.tuples(st.just("refund"), st.integers(0, 50), st.integers(1, 100)),
        st.tuples(st.just("overrefund"), st.integers(0, 50)),
        st.tuples(st.just("adjust"), st.integers(-800, 1500)),
    ),
    max_size=25,
)


def cents(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(Decimal("0.01"))


class Run:
    """One sequence against the real services, beside a model of what the rules say the balance is."""

    def __init__(self, mode: str, period: str, amount: Decimal, cap: Decimal, overdraft: Decimal) -> None:
        studio = s.customer("Proprietà")
        self.machine = s.device("PROP-1", studio)
        self.user = s.print_user(studio, "prop", email="prop@example.com")
        s.simple_prices(bw=str(BW), color=str(COLOR))
        self.quota = s.quota(
            self.user, str(amount), mode=mode, period=period, rollover_cap=str(cap), overdraft=str(overdraft)
        )
        self.model = amount
        self.seq = 0
        self.transactions: list[Transaction] = []

    def balance(self) -> Balance:
        return s.balance_of(self.quota)

    def record(self, bw: int, color: int, ended: dt.datetime) -> Transaction:
        self.seq += 1
        started = (ended - dt.timedelta(minutes=1)).isoformat()
        tx, created = record_transaction(
            s.job(self.machine, self.seq, self.user, sides_bw=bw, sides_color=color, started_at=started, ended_at=ended)
        )
        assert created and tx.cost == bw * BW + color * COLOR
        self.transactions.append(tx)
        self.model -= tx.cost
        return tx

    def step(self, step: tuple, now: dt.datetime) -> dt.datetime:
        kind, *args = step
        if kind == "period":
            balance = self.balance()
            start = quotas.next_period_start(self.quota.period, balance.period_start)
            now = clock.day_start(start) + dt.timedelta(hours=7)
            # The rules: reset gives A, rollover min(balance + A, C); a negative balance is carried in both.
            carried = min(self.model, Decimal(0))
            if self.quota.mode == "reset":
                self.model = self.quota.amount + carried
            else:
                self.model = min(self.model + self.quota.amount, self.quota.rollover_cap)
            assert quotas.current_balance(self.quota, now).balance == self.model
        elif kind == "job":
            bw, color = args[0]
            answer = authorize(
                {"device_id": self.machine.id, "user_id": self.user.id, "function": "print", "sides_bw": bw,
                 "sides_color": color}
            )  # fmt: skip
            cost = bw * BW + color * COLOR
            room = self.model + self.quota.overdraft
            assert answer["allowed"] == (cost <= room), answer
            if not answer["allowed"] and answer.get("allowed_sides"):
                # The device prints the sides it was told fit, the colour ones first.
                fit = answer["allowed_sides"]
                color = min(color, fit)
                bw = min(bw, fit - color)
            if answer["allowed"] or answer.get("allowed_sides"):
                self.record(bw, color, now)
                # An authorised job never takes the balance below the overdraft.
                assert self.balance().balance >= -self.quota.overdraft
        elif kind == "offline":
            bw, color = args[0]
            self.record(bw, color, now - dt.timedelta(days=40))  # charged now, whatever the balance
        elif kind == "refund" and self.transactions:
            tx = self.transactions[args[0] % len(self.transactions)]
            left = tx.cost - tx.refunded
            amount = (left * args[1] / 100).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)
            if amount > 0:
                refund(tx, amount, "Prova", None)
                self.model += amount
        elif kind == "overrefund" and self.transactions:
            tx = self.transactions[args[0] % len(self.transactions)]
            with pytest.raises(ValidationError):
                refund(tx, tx.cost - tx.refunded + Decimal("0.0001"), "Troppo", None)
        elif kind == "adjust" and args[0]:
            quotas.adjust(self.quota, cents(args[0]), "Prova", None)
            self.model += cents(args[0])
        return now

    def check(self) -> None:
        balance = self.balance()
        assert balance.balance == quotas.recompute(balance) == self.model
        opening = db.session.scalars(
            sa.select(LedgerEntry.amount).where(
                LedgerEntry.balance_id == balance.id,
                LedgerEntry.period_start == balance.period_start,
                LedgerEntry.kind == "opening",
            )
        ).all()
        assert opening == [balance.opening]
        for tx in self.transactions:
            refunded = db.session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(Refund.amount), 0)).where(Refund.transaction_id == tx.id)
            )
            assert tx.refunded == Decimal(refunded) and Decimal(0) <= tx.refunded <= tx.cost


@pytest.mark.parametrize("mode", ["reset", "rollover"])
def test_every_balance_is_the_sum_of_its_ledger_after_any_sequence(app, mode):
    @settings(
        max_examples=30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        period=st.sampled_from(["monthly", "weekly"]),
        amount=st.integers(0, 3000),
        extra_cap=st.integers(0, 3000),
        overdraft=st.integers(0, 500),
        steps=STEPS,
    )
    def run(period, amount, extra_cap, overdraft, steps):
        with app.app_context():
            try:
                with time_machine.travel(START, tick=False) as traveller:
                    sequence = Run(mode, period, cents(amount), cents(amount + extra_cap), cents(overdraft))
                    sequence.check()
                    now = START
                    for step in steps:
                        now = sequence.step(step, now)
                        traveller.move_to(now)
                        sequence.check()
            finally:
                db.session.rollback()
                db.session.remove()

    run()
