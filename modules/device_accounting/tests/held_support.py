"""Helpers for the held-job tests: real PDF documents, a customer with a print server, users and a device."""

from __future__ import annotations

import io
from dataclasses import dataclass

from pypdf import PdfWriter

from core.db import db
from core.models import Partner
from modules.device_accounting.models import PrintServer, PrintUser
from modules.device_accounting.print_servers import create_print_server
from modules.device_accounting.tests import core_support as s
from modules.rentals.models import Device

# Kept in the PDF's metadata, which PDF writers store as plain text: a sealed copy must not show it.
SECRET_TITLE = "Buste paga dicembre RISERVATO"


def pdf(pages: int = 3, title: str = SECRET_TITLE) -> bytes:
    """A real PDF of `pages` A4 pages, its title in the (uncompressed) document information."""
    writer = PdfWriter()
    for _page in range(pages):
        writer.add_blank_page(width=595, height=842)
    writer.add_metadata({"/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@dataclass
class Office:
    customer: Partner
    server: PrintServer
    token: str
    device: Device
    mario: PrintUser
    luisa: PrintUser
    other_customer: Partner
    other_device: Device
    other_user: PrintUser


def office(serial: str = "KY1") -> Office:
    """Studio Bianchi (print server "cups1", device KY1, users mrossi and lverdi) and Farmacia Verdi beside it
    (device KY2, user mrossi too); the dealer prints at 0.01 a black side and 0.05 a colour side."""
    studio = s.customer("Studio Bianchi")
    machine = s.device(serial, studio)
    mario = s.print_user(studio, "mrossi")
    luisa = s.print_user(studio, "lverdi")
    other = s.customer("Farmacia Verdi")
    other_machine = s.device(serial + "-2", other)
    other_user = s.print_user(other, "mrossi")
    s.simple_prices(bw="0.01", color="0.05")
    server, token = create_print_server(studio.id, "cups1")
    db.session.commit()
    return Office(studio, server, token, machine, mario, luisa, other, other_machine, other_user)
