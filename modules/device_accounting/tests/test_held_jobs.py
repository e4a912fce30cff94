"""Held print jobs as services: submit (pages from the PDF, sealed, once per key), release rules, delete, expiry."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest
import sqlalchemy as sa

from core.crypto import unseal_bytes
from core.db import db, utcnow
from core.validation import ValidationError
from modules.device_accounting import held_jobs as h
from modules.device_accounting import print_servers as ps
from modules.device_accounting.customer_settings import save_settings
from modules.device_accounting.models import HeldDocument, HeldJob, PrintDelegate
from modules.device_accounting.operations import record_transaction
from modules.device_accounting.tests import core_support as s
from modules.device_accounting.tests import held_support as hs
from modules.device_accounting.users import save_user

D = Decimal


@pytest.fixture
def office(db_session):
    return hs.office()


def refused(call, *args, **kwargs) -> dict[str, str]:
    with pytest.raises(ValidationError) as error:
        call(*args, **kwargs)
    db.session.rollback()
    return error.value.errors


def counts() -> tuple[int, int]:
    jobs = db.session.scalar(sa.select(sa.func.count()).select_from(HeldJob))
    documents = db.session.scalar(sa.select(sa.func.count()).select_from(HeldDocument))
    return jobs, documents


def submit(office, user: str = "mrossi", pages: int = 3, **kwargs):
    job, created = h.submit_held_job(office.server, user, hs.pdf(pages), **kwargs)
    db.session.commit()
    return job, created


def raw_content(job_id: int) -> bytes:
    """The document column as the database holds it."""
    return bytes(
        db.session.execute(
            sa.text("SELECT content FROM device_accounting_held_document WHERE held_job_id = :id"), {"id": job_id}
        ).scalar_one()
    )


# --- submit ------------------------------------------------------------------------------------------------------


def test_a_submitted_job_counts_its_pages_from_the_pdf_and_is_priced_for_its_user(office):
    job, created = submit(office, "MRossi", pages=4, copies=2, title="Relazione.pdf", paper_size="a4")

    assert created and job.state == "held"
    assert (job.user_id, job.customer_id, job.print_server_id) == (
        office.mario.id,
        office.customer.id,
        office.server.id,
    )
    assert (job.pages, job.copies, job.paper_size, job.title) == (4, 2, "A4", "Relazione.pdf")
    assert job.estimated_cost == D("0.0800")  # 8 black sides at 0.01
    colour, _new = submit(office, pages=2, color=True)
    assert colour.estimated_cost == D("0.1000")  # 2 colour sides at 0.05
    # The default lifetime: 4 hours.
    assert abs((job.expires_at - job.submitted_at) - dt.timedelta(hours=4)) < dt.timedelta(seconds=1)


def test_the_document_is_sealed_at_rest_and_opens_to_the_very_bytes(office):
    document = hs.pdf(2)
    job, _created = h.submit_held_job(office.server, "mrossi", document)
    db.session.commit()

    raw = raw_content(job.id)
    assert hs.SECRET_TITLE.encode() in document
    assert hs.SECRET_TITLE.encode() not in raw and b"%PDF" not in raw
    assert unseal_bytes(raw, h.DOCUMENT_PURPOSE) == document
    assert job.document_digest == hashlib.sha256(document).hexdigest() and job.document_size == len(document)


def test_customer_settings_hide_the_title_and_set_the_lifetime(office):
    save_settings(office.customer.id, {"hide_document_names": True, "held_job_hours": 2})
    job, _created = submit(office, title="Segreto.pdf")
    assert job.title is None
    assert abs((job.expires_at - job.submitted_at) - dt.timedelta(hours=2)) < dt.timedelta(seconds=1)


def test_a_repeated_submission_key_stores_the_job_once(office):
    first, created = submit(office, submission_key="1:42:uuid-a")
    again, created_again = submit(office, pages=9, submission_key="1:42:uuid-a")

    assert created and not created_again
    assert again.id == first.id and again.pages == 3
    assert counts() == (1, 1)


def test_a_print_server_mapping_wins_over_the_username(office):
    ps.map_user(office.server, "mario.rossi", office.luisa.id)
    db.session.commit()
    job, _created = submit(office, "mario.rossi")
    assert job.user_id == office.luisa.id
    assert h.map_cups_user(office.server, "nobody") is None
    # Another customer's user of the same username is never taken.
    assert h.map_cups_user(office.server, "mrossi").id == office.mario.id


def test_unknown_or_disabled_user_is_refused_and_nothing_is_written(office):
    assert set(refused(h.submit_held_job, office.server, "gbianchi", hs.pdf())) == {"user"}
    save_user(office.customer.id, {"active": False}, office.luisa)
    db.session.commit()
    errors = refused(h.submit_held_job, office.server, "lverdi", hs.pdf())
    assert "disabled" in errors["user"]
    assert counts() == (0, 0)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (b"", "empty"),
        (b"Hello, this is a text file and not a PDF at all.\n", "not a PDF"),
        (b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\n", "cannot be read"),
    ],
)
def test_empty_non_pdf_or_broken_documents_are_refused_naming_the_document(office, document, words):
    errors = refused(h.submit_held_job, office.server, "mrossi", document)
    assert set(errors) == {"document"} and words in errors["document"]
    assert counts() == (0, 0)


def test_an_oversize_document_is_refused(app, office):
    document = hs.pdf(1)
    app.config["COPYDESK_HELD_JOB_MAX_BYTES"] = len(document) - 1
    try:
        errors = refused(h.submit_held_job, office.server, "mrossi", document)
    finally:
        app.config["COPYDESK_HELD_JOB_MAX_BYTES"] = h.MAX_DOCUMENT_BYTES
    assert "larger than" in errors["document"]
    assert counts() == (0, 0)


def test_bad_copies_and_paper_size_are_named_together(office):
    errors = refused(h.submit_held_job, office.server, "nobody", hs.pdf(), copies=0, paper_size="B5")
    assert set(errors) == {"user", "copies", "paper_size"}
    assert counts() == (0, 0)


# --- releasable jobs and delegates -------------------------------------------------------------------------------


def test_releasable_jobs_are_the_users_own_and_their_delegators_oldest_first(office):
    now = utcnow()
    mine, _c = submit(office, "mrossi", now=now - dt.timedelta(minutes=30))
    luisas, _c = submit(office, "lverdi", now=now - dt.timedelta(minutes=20))
    newer, _c = submit(office, "mrossi", now=now - dt.timedelta(minutes=10))
    old, _c = submit(office, "mrossi", now=now - dt.timedelta(hours=5))  # expired (4 hours)

    assert [job.id for job in h.releasable_jobs(office.mario, office.device.id)] == [mine.id, newer.id]
    h.set_delegates(office.luisa, [office.mario.id])
    db.session.commit()
    assert [job.id for job in h.releasable_jobs(office.mario, office.device.id)] == [mine.id, luisas.id, newer.id]
    # Luisa did not delegate the other way round; and another customer's device lists nothing.
    assert [job.id for job in h.releasable_jobs(office.luisa, office.device.id)] == [luisas.id]
    assert h.releasable_jobs(office.mario, office.other_device.id) == []
    assert old.id not in {job.id for job in h.releasable_jobs(office.mario, office.device.id)}


def test_delegates_are_users_of_the_same_customer(office):
    assert set(refused(h.set_delegates, office.mario, [office.other_user.id])) == {"delegates"}
    assert set(refused(h.set_delegates, office.mario, [office.mario.id])) == {"delegates"}
    h.set_delegates(office.mario, [office.luisa.id])
    h.set_delegates(office.mario, [])
    db.session.commit()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(PrintDelegate)) == 0


# --- release -----------------------------------------------------------------------------------------------------


def test_open_release_gives_the_document_and_changes_nothing(office):
    document = hs.pdf(2)
    job, _c = h.submit_held_job(office.server, "mrossi", document)
    db.session.commit()

    release = h.open_release(job.id, office.mario, office.device.id)
    assert release.document == document
    assert (release.digest, release.size) == (hashlib.sha256(document).hexdigest(), len(document))
    db.session.commit()
    assert db.session.get(HeldJob, job.id).state == "held" and counts() == (1, 1)


def test_open_release_refuses_another_user_an_expired_job_and_another_customers_device(office):
    job, _c = submit(office, "mrossi")
    stale, _c = submit(office, "mrossi", now=utcnow() - dt.timedelta(hours=5))

    assert "another user" in refused(h.open_release, job.id, office.luisa, office.device.id)["job"]
    assert "expired" in refused(h.open_release, stale.id, office.mario, office.device.id)["job"]
    assert set(refused(h.open_release, job.id, office.mario, office.other_device.id)) == {"job"}
    # Another customer's user of the same name does not even see the job.
    assert set(refused(h.open_release, job.id, office.other_user, office.other_device.id)) == {"job"}
    assert set(refused(h.open_release, 999_999, office.mario, office.device.id)) == {"job"}
    # A delegate may.
    h.set_delegates(office.mario, [office.luisa.id])
    db.session.commit()
    assert h.open_release(job.id, office.luisa, office.device.id).job.id == job.id


def test_open_release_checks_the_quota_as_authorize_does(office):
    s.quota(office.mario, amount="0.05")
    db.session.commit()
    small, _c = submit(office, "mrossi", pages=5)  # 0.05: fits
    large, _c = submit(office, "mrossi", pages=6)  # 0.06: does not

    assert h.open_release(small.id, office.mario, office.device.id).job.id == small.id
    errors = refused(h.open_release, large.id, office.mario, office.device.id)
    assert set(errors) == {"quota"} and "quota" in errors["quota"]
    assert db.session.get(HeldJob, large.id).state == "held"


def _printed(office, job: HeldJob, seq: int, user=None):
    now = utcnow()
    tx, _created = record_transaction(
        s.job(
            office.device,
            seq,
            user or office.mario,
            sides_bw=job.pages * job.copies,
            started_at=(now - dt.timedelta(minutes=1)).isoformat(),
            ended_at=now.isoformat(),
        )
    )
    return tx


def test_mark_released_deletes_the_document_once_and_names_the_delegate(office):
    job, _c = submit(office, "mrossi")
    h.set_delegates(office.mario, [office.luisa.id])
    tx = _printed(office, job, 1)
    released = h.mark_released(job.id, office.device.id, office.luisa, tx)
    db.session.commit()

    assert (released.state, released.released_device_id, released.released_by_id, released.transaction_id) == (
        "released",
        office.device.id,
        office.luisa.id,
        tx.id,
    )
    assert released.ended_at is not None and counts() == (1, 0)
    # The same report again changes nothing; a second release of the job is refused.
    assert h.mark_released(job.id, office.device.id, office.luisa, tx).id == job.id
    other_tx = _printed(office, job, 2)
    assert set(refused(h.mark_released, job.id, office.device.id, office.mario, other_tx)) == {"job"}
    assert "no longer held" in refused(h.open_release, job.id, office.mario, office.device.id)["job"]


def test_mark_released_refuses_a_print_reported_under_another_user_than_the_owner(office):
    job, _c = submit(office, "mrossi")
    h.set_delegates(office.mario, [office.luisa.id])
    db.session.commit()
    tx = _printed(office, job, 1, user=office.luisa)  # the delegate's own quota would pay

    assert "owner" in refused(h.mark_released, job.id, office.device.id, office.luisa, tx)["job"]
    assert db.session.get(HeldJob, job.id).state == "held" and counts() == (1, 1)


def test_the_owner_deletes_a_job_and_its_document_another_user_cannot(office):
    job, _c = submit(office, "mrossi")
    assert "another user" in refused(h.delete_held_job, job.id, office.luisa)["job"]
    assert set(refused(h.delete_held_job, job.id, office.other_user)) == {"job"}

    deleted = h.delete_held_job(job.id, office.mario)
    db.session.commit()
    assert deleted.state == "deleted" and counts() == (1, 0)
    assert set(refused(h.delete_held_job, job.id, None, staff=True)) == {"job"}


def test_expire_held_jobs_expires_the_old_ones_and_deletes_their_documents(office):
    now = utcnow()
    old, _c = submit(office, "mrossi", now=now - dt.timedelta(hours=5))
    older, _c = submit(office, "lverdi", now=now - dt.timedelta(hours=9))
    fresh, _c = submit(office, "mrossi", now=now - dt.timedelta(hours=1))

    assert h.expire_held_jobs(now) == 2
    db.session.commit()
    states = dict(db.session.execute(sa.select(HeldJob.id, HeldJob.state)).all())
    assert states == {old.id: "expired", older.id: "expired", fresh.id: "held"}
    assert list(db.session.scalars(sa.select(HeldDocument.held_job_id))) == [fresh.id]
    assert h.expire_held_jobs(now) == 0


# --- print servers -----------------------------------------------------------------------------------------------


def test_a_print_server_token_is_stored_as_a_digest_and_rotating_it_retires_the_old(office):
    assert office.token.startswith(ps.TOKEN_PREFIX)
    assert office.server.token_digest == hashlib.sha256(office.token.encode()).hexdigest()
    assert office.token not in (office.server.token_digest, office.server.token_hint)
    assert ps.print_server_by_token(office.token).id == office.server.id

    new = ps.rotate_token(office.server)
    db.session.commit()
    assert ps.print_server_by_token(office.token) is None
    assert ps.print_server_by_token(new).id == office.server.id
    ps.update_print_server(office.server, {"active": False})
    db.session.commit()
    assert ps.print_server_by_token(new) is None


def test_print_server_names_queues_and_devices_are_checked(office):
    assert set(refused(ps.create_print_server, office.customer.id, " CUPS1 ")) == {"name"}
    assert set(refused(ps.create_print_server, office.customer.id, "")) == {"name"}
    assert set(refused(ps.map_printer, office.server, "sala stampa", office.device.id)) == {"queue"}
    assert set(refused(ps.map_printer, office.server, "sala", office.other_device.id)) == {"device"}
    assert set(refused(ps.map_user, office.server, "", office.mario.id)) == {"cups_user"}
    ps.map_printer(office.server, "sala", office.device.id)
    db.session.commit()
    assert ps.device_of_queue(office.server, "sala") == office.device.id
    ps.unmap_printer(office.server, "sala")
    assert ps.device_of_queue(office.server, "sala") is None


def test_the_worker_expires_held_jobs_every_ten_minutes(app, office):
    stale, _c = submit(office, "mrossi", now=utcnow() - dt.timedelta(hours=5))
    periodic = app.extensions["copydesk"].periodic_jobs
    assert periodic["device_accounting.expire_held_jobs"].cron == "*/10 * * * *"
    assert periodic["device_accounting.import_page_logs"].cron == "*/15 * * * *"

    result = app.test_cli_runner().invoke(args=["jobs", "run-periodic", "device_accounting.expire_held_jobs"])
    assert result.exit_code == 0 and ": done" in result.output, result.output
    db.session.expire_all()
    assert db.session.get(HeldJob, stale.id).state == "expired" and counts() == (1, 0)
