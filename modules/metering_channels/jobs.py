"""Meter channels' background jobs: the mailbox poll (every 5 minutes) and the SNMP poll (jobs_snmp.py decides which
devices are due). core/layout.py wants every periodic job defined here."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from core.db import db
from modules.metering_channels import imap_poll, jobs_snmp
from modules.metering_channels.models import Mailbox

log = logging.getLogger(__name__)


def poll_mailboxes() -> int:
    """Poll every active mailbox once (one failing keeps its error, the others are polled); returns messages read."""
    ids = db.session.scalars(sa.select(Mailbox.id).where(Mailbox.active.is_(True)).order_by(Mailbox.id)).all()
    read = 0
    for mailbox_id in ids:
        try:
            read += poll_mailbox(mailbox_id)
        except Exception:  # poll() keeps its errors on the mailbox; whatever still escapes spares the next ones
            db.session.rollback()
            log.exception("poll of mailbox %s failed", mailbox_id)
    return read


def poll_mailbox(mailbox_id: int) -> int:
    """Poll one mailbox (also the back office's "Poll now"); returns how many messages were read."""
    mailbox = db.session.get(Mailbox, mailbox_id)
    if mailbox is None:
        return 0
    return imap_poll.poll(mailbox).fetched


def poll_snmp_devices() -> None:
    """The SNMP devices due now (metering_channels.snmp_hours), polled by the server."""
    jobs_snmp.poll_due_devices()
