"""Counter report emails as each make sends them (the layouts of their documented reports): the tests' samples and
the demo's emails. `message` wraps a report's text in the email a device sends."""

from __future__ import annotations

import base64
import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

MODELS = {
    "Kyocera": "ECOSYS M5526cdw",
    "Ricoh": "IM C3000",
    "Canon": "imageRUNNER ADVANCE DX C3826i",
    "Konica Minolta": "bizhub C300i",
    "HP": "Color LaserJet Pro M479fdw",
    "Sharp": "MX-3071",
    "Xerox": "VersaLink C405",
    "Lexmark": "CX625adhe",
}
SENDERS = {
    "Kyocera": "ecosys-m5526@dealer-client.test",
    "Ricoh": "imc3000@dealer-client.test",
    "Canon": "iradv@dealer-client.test",
    "Konica Minolta": "bizhub@dealer-client.test",
    "HP": "hp-m479@dealer-client.test",
    "Sharp": "mx3071@dealer-client.test",
    "Xerox": "versalink@dealer-client.test",
    "Lexmark": "cx625@dealer-client.test",
}
SENT = dt.datetime(2026, 3, 31, 12, 0, tzinfo=dt.UTC)  # the samples' Date header unless one is given


def sent(day: str) -> dt.datetime:
    """A Date header on `day` (YYYY-MM-DD) at 16:00 UTC: a report's date and its email's agree."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(16, 0), dt.UTC)


def kyocera(serial: str, bw: int, color: int, when: str = "2026/03/31 18:00") -> str:
    return f"""KYOCERA Document Solutions - Counter Report
Model Name: {MODELS["Kyocera"]}
Serial Number: {serial}
Host Name: KM5526-01
Date and Time: {when}

Total Printed Pages
  Black & White: {bw:,}
  Full Color: {color:,}
  Total: {bw + color:,}
Copier
  Black & White: 1,200
  Full Color: 300
Total Scanned Pages
  Copy: 450
  Others: 120
  Total: 570
Toner Level (Black): 45%
Toner Level (Cyan): 80%
"""


def ricoh_csv(
    serial: str, bw: int, color: int, when: str = "2026-03-31 18:00", *, scan: int = 812, model: str = MODELS["Ricoh"]
) -> str:
    # Web Image Monitor's counter CSV: a header row over one row of values.
    return (
        "Machine ID,Model Name,Counter Date,Total,Black & White,Full Color,Scanner: Total Scans\r\n"
        f"{serial},{model},{when},{bw + color},{bw},{color},{scan}\r\n"
    )


def canon(
    serial: str,
    bw: int,
    color: int,
    when: str = "03/31/2026 06:00 PM",
    *,
    scan: int = 640,
    model: str = MODELS["Canon"],
) -> str:
    return f"""Canon imageRUNNER ADVANCE - Counter Report
Device Name: {model}
Serial Number: {serial}
Date: {when}

101: Total 1                                   {bw + color}
108: Total (Black 1)                           {bw}
122: Total (Full Color + Single Color 1)       {color}
501: Scan (Total 1)                            {scan}
"""


def konica_html(
    serial: str,
    bw: int,
    color: int,
    when: str = "2026/03/31 18:00",
    *,
    scan: int = 530,
    model: str = MODELS["Konica Minolta"],
) -> str:
    return f"""<html><body><h3>bizhub Counter Notification</h3>
<table>
<tr><th>Model</th><td>{model}</td></tr>
<tr><th>Serial Number</th><td>{serial}</td></tr>
<tr><th>Date</th><td>{when}</td></tr>
<tr><th>Total Counter</th><td>{bw + color:,}</td></tr>
<tr><th>Black</th><td>{bw:,}</td></tr>
<tr><th>Full Color</th><td>{color:,}</td></tr>
<tr><th>Total Scan</th><td>{scan:,}</td></tr>
</table></body></html>"""


def hp(serial: str, bw: int, color: int, when: str = "31-Mar-2026 18:00") -> str:
    return f"""HP Embedded Web Server - Usage Report
Product Name: HP {MODELS["HP"]}
Serial Number: {serial}
Date/Time: {when}
Total Impressions: {bw + color}
Monochrome Impressions: {bw}
Color Impressions: {color}
Black Cartridge: 40%
Cyan Cartridge: 62%
"""


def sharp(serial: str, bw: int, color: int, when: str = "2026/03/31 18:00") -> str:
    return f"""SHARP {MODELS["Sharp"]} Counter Status
Machine Serial Number: {serial}
Date: {when}
Total Count: {bw + color}
Total Count B/W: {bw}
Total Count Full Color: {color}
Scan Send: 77
"""


def xerox(serial: str, bw: int, color: int, when: str = "2026-03-31 18:00") -> str:
    return f"""Xerox {MODELS["Xerox"]}
Serial Number: {serial}
Date: {when}
Billing Meters
  Black Impressions: {bw}
  Color Impressions: {color}
  Total Impressions: {bw + color}
  Images Sent: 300
"""


def xerox_xml(serial: str, bw: int, color: int, when: str = "2026-03-31T18:00:00") -> str:
    # CentreWare's billing meters export as an XML attachment.
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<DeviceBillingInformation xmlns="http://www.xerox.com/billing">
  <DeviceInformation>
    <ProductName>Xerox {MODELS["Xerox"]}</ProductName>
    <SerialNumber>{serial}</SerialNumber>
    <DateTime>{when}</DateTime>
  </DeviceInformation>
  <BillingMeters>
    <Meter name="Black Impressions">{bw}</Meter>
    <Meter name="Color Impressions">{color}</Meter>
    <Meter name="Total Impressions">{bw + color}</Meter>
    <Meter name="Images Sent">300</Meter>
  </BillingMeters>
</DeviceBillingInformation>
"""


def lexmark(serial: str, total: int, color: int, when: str = "2026-03-31 18:00") -> str:
    # Lexmark's statistics give the total and the colour pages; black and white pages are the difference.
    return f"""Lexmark {MODELS["Lexmark"]} Device Statistics
Serial Number: {serial}
Date: {when}
Page Count
  Total: {total}
  Color: {color}
"""


def message(
    make: str,
    body: str,
    *,
    subject: str | None = None,
    html: bool = False,
    attachment: tuple[str, str] | None = None,
    message_id: str | None = None,
    sender: str | None = None,
    to: str = "counters@dealer.test",
    date: dt.datetime = SENT,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender or SENDERS.get(make, "printer@dealer-client.test")
    msg["To"] = to
    msg["Subject"] = subject or f"{MODELS.get(make, 'Printer')} counter report"
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = message_id or make_msgid(domain="dealer-client.test")
    if attachment:
        msg.set_content(body)
        name, content = attachment
        subtype = "xml" if name.lower().endswith(".xml") else "csv"
        msg.add_attachment(content.encode(), maintype="text", subtype=subtype, filename=name)
    elif html:
        msg.set_content(body, subtype="html")
    else:
        msg.set_content(body)
    return msg.as_bytes()


def kyocera_message(serial: str, bw: int, color: int, **kwargs) -> bytes:
    return message(
        "Kyocera", kyocera(serial, bw, color, **{k: kwargs.pop(k) for k in ("when",) if k in kwargs}), **kwargs
    )


def broken_base64(serial: str) -> bytes:
    """A report whose only part claims base64 but is not: the email must not break the poll."""
    good = base64.b64encode(kyocera(serial, 1, 1).encode()).decode()
    return (
        "From: ecosys@dealer-client.test\r\nSubject: KYOCERA counter report\r\nMessage-ID: <broken@test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n" + good[:37] + "!!!***\r\n" + good[60:90] + "=\r\n"
    ).encode()
