"""Held print jobs at a device: HELD_JOBS, RELEASE in chunks with the digest, DELETE, and the TXN that releases
the job (charged once, the document deleted); in process, then through a running collector with a simulated MFP."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from decimal import Decimal

import pytest
import sqlalchemy as sa
import time_machine

from core.db import db
from modules.device_accounting import held_jobs, print_servers, users
from modules.device_accounting.customer_settings import save_settings
from modules.device_accounting.models import HeldDocument, HeldJob, PrintServer, Quota, Transaction
from modules.device_accounting.tests import core_support as s
from modules.device_collector import enrolment, simulator
from modules.device_collector.handlers import RELEASE_CHUNK
from modules.device_collector.protocol import MAX_FRAME, DeviceSession, encode_frame, reply
from modules.device_collector.simulator import ReleaseRefused, SimulatedDevice, make_pdf
from modules.device_collector.tests.collector_support import in_own_thread, run_async, running_collector
from modules.device_collector.tests.test_handlers import ADDRESS, ask, fingerprint_of, hello, refused

NOW = s.at("2026-03-02T10:00:00+01:00")
ANNA_CARD, BRUNO_CARD, CARLA_CARD = "0004521", "0007788", "0009911"


def _session(machine, cert_pem: str, collector_id: int) -> DeviceSession:
    return DeviceSession(
        address=ADDRESS,
        certificate_fingerprint=fingerprint_of(cert_pem),
        collector_device_id=collector_id,
        device_id=machine.id,
        serial=machine.serial,
    )


def _enrolled_session(machine) -> DeviceSession:
    _code, plain = enrolment.create_code(machine, None)
    collector, cert_pem, _not_after = enrolment.redeem_code(plain, simulator.make_csr()[0], ADDRESS)
    return _session(machine, cert_pem, collector.id)


@pytest.fixture
def office(db_session):
    """Studio Bianchi: an enrolled MFP, anna (2.00 quota) who lets bruno release her jobs, bruno, carla (0.05
    quota); prices 0.01 a black side, 0.05 a colour side; a print server; committed."""
    with time_machine.travel(NOW, tick=False):
        studio = s.customer()
        machine = s.device("KY 1", studio)
        people = {}
        for name, card, amount in (
            ("anna", ANNA_CARD, "2.00"),
            ("bruno", BRUNO_CARD, "5.00"),
            ("carla", CARLA_CARD, "0.05"),
        ):
            person = s.print_user(studio, name, language="it")
            users.add_card(person, card)
            s.quota(person, amount)
            people[name] = person
        held_jobs.set_delegates(people["anna"], [people["bruno"].id])
        s.simple_prices(bw="0.01", color="0.05")
        server, _token = print_servers.create_print_server(studio.id, "CUPS office")
        session = _enrolled_session(machine)
        db_session.commit()
    return studio, machine, people, server, session


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def _hold(server, user: str, document: bytes, **options) -> HeldJob:
    job, created = held_jobs.submit_held_job(server, user, document, **options)
    assert created
    db.session.commit()
    return job


def _login(session: DeviceSession, card: str) -> dict:
    answer = ask(session, "IDENTIFY", {"card": card})
    assert answer["identified"] is True, answer
    return answer


def _fetch(session: DeviceSession, job_id: int) -> tuple[bytes, list[dict]]:
    """Every chunk of the job's document, as a device asks for them: (the bytes, the replies)."""
    parts, replies, offset = [], [], 0
    while True:
        answer = ask(session, "RELEASE", {"job_id": job_id, "offset": offset})
        assert answer["allowed"] is True, answer
        replies.append(answer)
        data = base64.b64decode(answer["data"])
        parts.append(data)
        offset += len(data)
        if answer["last"]:
            return b"".join(parts), replies


def _printed(job: HeldJob, seq: int, user, **fields) -> dict:
    """The TXN item of a held job printed in full (black and white)."""
    return {
        "device_seq": seq,
        "user_id": user.id,
        "function": "print",
        "sides_bw": job.pages * job.copies,
        "sides_color": 0,
        "paper_size": job.paper_size,
        "duplex": job.duplex,
        "status": "done",
        "started_at": "2026-03-02T09:58:00+01:00",
        "ended_at": "2026-03-02T09:59:00+01:00",
        "held_job_id": job.id,
        **fields,
    }


def _state(job_id: int) -> tuple[str, bool]:
    """(the job's state, whether its document is still stored), as committed."""
    db.session.expire_all()
    return db.session.get(HeldJob, job_id).state, db.session.get(HeldDocument, job_id) is not None


def _balance(user) -> Decimal:
    quota = db.session.scalars(sa.select(Quota).where(Quota.user_id == user.id)).one()
    return s.balance_of(quota).balance


# --- in process --------------------------------------------------------------------------------------------------


def test_held_jobs_lists_what_the_identified_user_may_release_here(office, clock):
    _studio, _machine, _people, server, session = office
    hello(session, language="it")
    before = refused(session, "HELD_JOBS", {})
    own = _hold(server, "bruno", make_pdf(2), title="Offerta.pdf", copies=2)
    delegated = _hold(server, "anna", make_pdf(3), title="Contratto.pdf", color=True)
    _hold(server, "carla", make_pdf(1), title="Carla's.pdf")

    _login(session, BRUNO_CARD)
    listed = ask(session, "HELD_JOBS", {})
    failed_login = ask(session, "IDENTIFY", {"card": "NO SUCH CARD"})
    after_failed_login = refused(session, "HELD_JOBS", {})

    assert (before.code, before.closes) == ("identify_required", False)
    assert after_failed_login.code == "identify_required" and failed_login["identified"] is False
    assert listed["more"] is False
    assert [job["id"] for job in listed["jobs"]] == [own.id, delegated.id]  # oldest first; not carla's
    mine, anna = listed["jobs"]
    assert (mine["title"], mine["pages"], mine["copies"], mine["color"], mine["owner"]) == (
        "Offerta.pdf",
        2,
        2,
        False,
        None,
    )
    assert (Decimal(mine["estimated_cost"]), mine["size"]) == (Decimal("0.04"), own.document_size)
    assert mine["mime_type"] == "application/pdf"
    assert dt.datetime.fromisoformat(mine["expires_at"]) == NOW + dt.timedelta(hours=4)
    assert (anna["owner"]["username"], Decimal(anna["estimated_cost"]), anna["color"]) == (
        "anna",
        Decimal("0.15"),
        True,
    )


def test_a_held_document_streams_in_chunks_that_fit_a_frame_and_its_txn_releases_and_charges_it_once(office, clock):
    _studio, machine, people, server, session = office
    document = make_pdf(3, padding=RELEASE_CHUNK * 2 + 1000)
    job = _hold(server, "anna", document, title="Bilancio.pdf")
    hello(session)
    _login(session, ANNA_CARD)

    fetched, replies = _fetch(session, job.id)
    db.session.commit()
    assert _state(job.id) == ("held", True)  # fetching changes nothing: the print's TXN releases it
    first = ask(session, "TXN", {"transactions": [_printed(job, 1, people["anna"])]})
    db.session.commit()
    again = ask(session, "TXN", {"transactions": [_printed(job, 1, people["anna"])]})  # the reply was lost
    db.session.commit()

    assert fetched == document and len(replies) == 3
    assert {answer["digest"] for answer in replies} == {hashlib.sha256(document).hexdigest()}
    assert [(answer["offset"], answer["last"]) for answer in replies] == [
        (0, False),
        (RELEASE_CHUNK, False),
        (2 * RELEASE_CHUNK, True),
    ]
    assert all(len(encode_frame(reply(2**53, "RELEASE", answer))) - 4 < MAX_FRAME for answer in replies)
    assert first["results"][0]["status"] == "stored"
    assert first["results"][0]["held_job"] == {"id": job.id, "released": True}
    assert again["results"][0]["status"] == "duplicate" and again["results"][0]["held_job"]["released"] is True
    assert _state(job.id) == ("released", False)
    released = db.session.get(HeldJob, job.id)
    (charged,) = s.transactions()
    assert (released.transaction_id, released.released_device_id) == (charged.id, machine.id)
    assert (charged.user_id, charged.cost) == (people["anna"].id, Decimal("0.03"))
    assert _balance(people["anna"]) == Decimal("1.97")  # charged once
    gone = ask(session, "RELEASE", {"job_id": job.id, "offset": 0})
    assert (gone["allowed"], gone["reason"]) == (False, "not_held")


def test_a_delegate_releases_the_owners_job_and_the_owner_pays(office, clock):
    _studio, _machine, people, server, session = office
    job = _hold(server, "anna", make_pdf(4))
    hello(session)
    _login(session, BRUNO_CARD)

    fetched, _replies = _fetch(session, job.id)
    answer = ask(session, "TXN", {"transactions": [_printed(job, 7, people["anna"])]})
    db.session.commit()

    assert answer["results"][0]["held_job"]["released"] is True
    released = db.session.get(HeldJob, job.id)
    assert (released.state, released.released_by_id) == ("released", people["bruno"].id)
    assert (_balance(people["anna"]), _balance(people["bruno"])) == (Decimal("1.96"), Decimal("5.00"))
    assert held_jobs.count_pdf_pages(fetched) == 4


def test_releases_of_another_users_an_expired_or_an_unaffordable_job_are_refused_and_change_nothing(office, clock):
    _studio, _machine, people, server, session = office
    annas = _hold(server, "anna", make_pdf(1), title="Anna.pdf")
    carlas = _hold(server, "carla", make_pdf(3), title="Carla.pdf", color=True)  # 0.15, her quota is 0.05
    bruno_old = _hold(server, "bruno", make_pdf(1))
    hello(session, language="it")

    _login(session, CARLA_CARD)
    not_hers = ask(session, "RELEASE", {"job_id": annas.id, "offset": 0})
    unaffordable = ask(session, "RELEASE", {"job_id": carlas.id, "offset": 0})
    unknown = ask(session, "RELEASE", {"job_id": annas.id + 1000, "offset": 0})
    clock.move_to(NOW + dt.timedelta(hours=4, minutes=1))
    _login(session, BRUNO_CARD)
    expired = ask(session, "RELEASE", {"job_id": bruno_old.id, "offset": 0})
    listed = ask(session, "HELD_JOBS", {})
    db.session.commit()

    assert (not_hers["allowed"], not_hers["reason"]) == (False, "not_yours")
    assert (unaffordable["allowed"], unaffordable["reason"]) == (False, "quota_exceeded")
    assert unknown["reason"] == "job_unknown"
    assert expired["reason"] == "expired"
    assert all(answer["message"] for answer in (not_hers, unaffordable, unknown, expired))
    assert listed["jobs"] == []
    for job in (annas, carlas, bruno_old):
        assert _state(job.id) == ("held", True)
    assert s.transactions() == []
    assert (_balance(people["anna"]), _balance(people["carla"])) == (Decimal("2.00"), Decimal("0.05"))


def test_a_device_at_another_customers_site_cannot_see_release_or_delete_a_job(office, clock):
    _studio, _machine, people, server, _session = office
    job = _hold(server, "anna", make_pdf(1))
    other = s.customer("Officina Verdi")
    elsewhere = s.device("KY 2", other)
    visitor = _enrolled_session(elsewhere)
    db.session.commit()
    hello(visitor)
    # The device was moved after anna logged in at it: the identification does not carry her jobs there.
    visitor.extra["identified_user_id"] = people["anna"].id

    listed = ask(visitor, "HELD_JOBS", {})
    release = ask(visitor, "RELEASE", {"job_id": job.id, "offset": 0})
    deleted = ask(visitor, "DELETE", {"job_id": job.id})
    db.session.commit()

    assert listed["jobs"] == []
    assert (release["allowed"], release["reason"]) == (False, "job_unknown")
    assert (deleted["deleted"], deleted["reason"]) == (False, "job_unknown")
    assert _state(job.id) == ("held", True)


def test_delete_is_for_the_owner_alone_and_removes_the_document(office, clock):
    _studio, _machine, _people, server, session = office
    job = _hold(server, "anna", make_pdf(2))
    hello(session)

    _login(session, BRUNO_CARD)
    by_delegate = ask(session, "DELETE", {"job_id": job.id})
    _login(session, ANNA_CARD)
    by_owner = ask(session, "DELETE", {"job_id": job.id})
    db.session.commit()
    twice = ask(session, "DELETE", {"job_id": job.id})

    assert (by_delegate["deleted"], by_delegate["reason"]) == (False, "not_yours")
    assert by_owner == {"deleted": True, "job_id": job.id}
    assert (twice["deleted"], twice["reason"]) == (False, "not_held")
    assert _state(job.id) == ("deleted", False)
    assert ask(session, "HELD_JOBS", {})["jobs"] == []


def test_a_job_deleted_while_it_streams_refuses_its_next_chunk_and_a_bad_offset_is_invalid(office, clock):
    _studio, _machine, people, server, session = office
    job = _hold(server, "anna", make_pdf(1, padding=RELEASE_CHUNK + 10))
    hello(session)
    _login(session, ANNA_CARD)

    first = ask(session, "RELEASE", {"job_id": job.id, "offset": 0})
    beyond = refused(session, "RELEASE", {"job_id": job.id, "offset": job.document_size})
    ask(session, "RELEASE", {"job_id": job.id, "offset": 0})
    held_jobs.delete_held_job(job.id, people["anna"])  # from the portal, meanwhile
    db.session.commit()
    second = ask(session, "RELEASE", {"job_id": job.id, "offset": RELEASE_CHUNK})

    assert (first["allowed"], first["last"], first["length"]) == (True, False, RELEASE_CHUNK)
    assert (beyond.code, list(beyond.details["fields"])) == ("invalid_message", ["offset"])
    assert (second["allowed"], second["reason"]) == (False, "not_held")


def test_a_txn_for_a_held_job_that_cannot_be_released_is_still_stored(office, clock):
    _studio, _machine, people, server, session = office
    job = _hold(server, "anna", make_pdf(1))
    held_jobs.delete_held_job(job.id, people["anna"])
    db.session.commit()
    hello(session)

    answer = ask(session, "TXN", {"transactions": [_printed(job, 3, people["anna"])]})
    db.session.commit()

    (result,) = answer["results"]
    assert result["status"] == "stored"  # it printed: the print is charged whatever became of the held job
    assert result["held_job"]["released"] is False and result["held_job"]["message"]
    assert _state(job.id) == ("deleted", False)
    assert len(s.transactions()) == 1


def test_hidden_document_names_leave_held_jobs_without_a_title(office, clock):
    studio, _machine, _people, server, session = office
    save_settings(studio.id, {"hide_document_names": True})
    job = _hold(server, "anna", make_pdf(1), title="Segreto.pdf")
    hello(session)
    _login(session, ANNA_CARD)

    (listed,) = ask(session, "HELD_JOBS", {})["jobs"]

    assert (listed["id"], listed["title"]) == (job.id, None)


# --- through a running collector ---------------------------------------------------------------------------------


def test_a_simulated_device_releases_held_jobs_through_the_collector(app):
    with app.app_context():
        codes, people, ca_pem = simulator.prepare(1, 2)
        anna, bruno = people
        held = simulator.hold_jobs(people, 4, seed=3)  # anna and bruno, two each
        big = simulator.make_pdf(2, padding=RELEASE_CHUNK + 5000)
        server = db.session.scalars(sa.select(PrintServer)).one()
        annas_big, _new = held_jobs.submit_held_job(server, anna.username, big, title="Big.pdf")
        brunos_old, _new = held_jobs.submit_held_job(server, bruno.username, simulator.make_pdf(1), title="Old.pdf")
        brunos_old.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        ids = {"big": annas_big.id, "old": brunos_old.id}
        db.session.commit()
        db.session.remove()
    with running_collector(app) as collector:
        ((serial, code),) = codes
        cert_pem, key_pem = run_async(simulator.enrol(collector.host, collector.port, ca_pem, code, serial))
        device = SimulatedDevice(serial, collector.host, collector.port, ca_pem, cert_pem, key_pem)

        async def at_the_panel():
            await device.hello()
            released = await device.release_held_jobs({"card": anna.card})
            again = await device.flush()  # nothing left to send: each print was acknowledged once
            await device.login_card(anna.card)
            try:
                await device.fetch_held_document(ids["old"])  # bruno's, and expired
            except ReleaseRefused as refusal:
                not_hers = refusal.reason
            await device.login_card(bruno.card)
            try:
                await device.fetch_held_document(ids["old"])
            except ReleaseRefused as refusal:
                expired = refusal.reason
            brunos = await device.held_jobs()
            deleted = await device.delete_held_job(brunos[0]["id"])
            await device.close()
            return released, again, not_hers, expired, brunos, deleted

        released, again, not_hers, expired, brunos, deleted = run_async(at_the_panel())

    assert held == 4
    assert [job.refused for job in released] == [None, None, None]
    assert all(job.result["status"] == "stored" and job.result["held_job"]["released"] for job in released)
    assert big in [job.document for job in released]
    assert again.acknowledged == 0 and again.pending == 0
    assert (not_hers, expired) == ("not_yours", "expired")
    assert len(brunos) == 2 and ids["old"] not in [job["id"] for job in brunos]
    assert deleted == {"deleted": True, "job_id": brunos[0]["id"]}
    with app.app_context():
        jobs = {job.id: job for job in db.session.scalars(sa.select(HeldJob))}
        documents = set(db.session.scalars(sa.select(HeldDocument.held_job_id)))
        charged = list(db.session.scalars(sa.select(Transaction).order_by(Transaction.id)))
        annas = [job for job in jobs.values() if job.user_id == anna.id]
        assert {job.state for job in annas} == {"released"}
        assert sorted(job.transaction_id for job in annas) == [tx.id for tx in charged]  # each charged once
        assert [tx.cost for tx in charged] == [
            job.estimated_cost for job in sorted(annas, key=lambda j: j.transaction_id)
        ]
        assert jobs[brunos[0]["id"]].state == "deleted" and jobs[ids["old"]].state == "held"
        assert documents == {brunos[1]["id"], ids["old"]}  # released and deleted documents are gone


def test_the_simulate_command_releases_the_held_jobs_it_submitted(app):
    with running_collector(app) as collector:
        report = in_own_thread(
            simulator.run_simulation,
            collector.host,
            collector.port,
            devices=2,
            users=3,
            jobs=4,
            seed=5,
            app=app,
            release_held=6,
        )
    assert report.errors == []
    assert (report.held_submitted, report.held_released, report.held_refused) == (6, 6, 0)
    assert any(line.startswith("held jobs: submitted 6, released 6") for line in report.as_lines())
    with app.app_context():
        states = list(db.session.scalars(sa.select(HeldJob.state)))
        assert states == ["released"] * 6
        assert db.session.scalar(sa.select(sa.func.count()).select_from(HeldDocument)) == 0
    help_text = app.test_cli_runner().invoke(args=["device-collector", "simulate", "--help"]).output
    assert "--release-held" in help_text
