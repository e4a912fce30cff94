"""Bank statement files read into plain lines: CSV exports (a column mapping per profile) and ISO 20022 CAMT.053.

Pure functions over bytes: nothing here touches the database. `parse(raw, filename)` recognises the format, and a
malformed file raises a ValidationError on the field `file` naming the file and the line (CSV) or the line and
element (XML), before anything is stored. Each parsed line carries `key`: the bank's identity of the line (its
reference when the bank gives one, else date, amount, text and counterparty with the occurrence among identical
lines), so the same line read from two files, or the same file read twice, has the same key.

CSV column mapping (`CsvProfile`): for each field, the header names it is read from (any case, spaces and
underscores alike). A file's header row is the first of its first 40 rows naming a date column and either an amount
column or a credit/debit pair; rows before it (account holder, IBAN, period) are skipped, an IBAN found in them is
the account's. Rows whose date cell is empty, or whose first cell starts with "Saldo" (balances), are skipped.

- `generic`: date, value_date, amount (signed) or credit and debit, description, details, counterparty, iban,
  reference, currency; `,` `;` or tab; dates YYYY-MM-DD, DD/MM/YYYY or DD.MM.YYYY; amounts 1234.56, 1234,56,
  1.234,56 or 1,234.56 (the last separator is the decimal one).
- `it_movimenti`: the "lista movimenti" export of Italian banks (Intesa Sanpaolo, UniCredit and most others):
  `;`, dates DD/MM/YYYY (or DD/MM/YY), amounts 1.234,56, columns "Data contabile" (or "Data operazione", "Data
  registrazione", "Data"), "Data valuta" (or "Valuta"), "Entrate" (or "Accrediti", "Avere") and "Uscite" (or
  "Addebiti", "Dare"; written with or without a minus) or a signed "Importo", "Descrizione" (or "Causale",
  "Operazione"), "Descrizione estesa" (or "Dettagli", "Descrizione completa"), "Ordinante/Beneficiario" (or
  "Controparte", "Ordinante", "Beneficiario"), "IBAN" (or "IBAN controparte"), "Divisa".
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal

from flask_babel import gettext as _
from lxml import etree
from stdnum import iban as stdnum_iban

from core.csv_files import decode
from core.validation import MAX_YEAR, MIN_YEAR, ValidationError

FORMATS = ("csv", "camt053")
MAX_FILE_BYTES = 10 * 1024 * 1024
# Room for the form fields and the multipart framing around the largest file accepted (an upload's body limit).
FORM_OVERHEAD = 64 * 1024
MAX_LINES = 20_000
# What the statement line's columns hold; longer text is cut, a longer IBAN is not one.
MAX_COUNTERPARTY, MAX_REFERENCE, MAX_REMITTANCE, MAX_CELL = 200, 100, 2000, 10_000
AMOUNT_LIMIT = Decimal("1e12")
# What an IBAN looks like (country, check digits, 11 to 30 more): found in header text, a counterparty's must be one.
_IBAN_SHAPE = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")
_CURRENCY = re.compile(r"[A-Z]{3}")
CAMT_NAMESPACE = re.compile(r"urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d\d)")
HEADER_SEARCH_ROWS = 40


@dataclass(frozen=True)
class ParsedLine:
    """One movement of the account: `amount` is signed (+ money in)."""

    date: dt.date
    amount: Decimal
    value_date: dt.date | None = None
    currency: str = "EUR"
    counterparty: str = ""
    counterparty_iban: str = ""
    remittance: str = ""
    bank_reference: str = ""
    # What identifies the line at the bank when it gives a reference (the key is its digest); else its content.
    identity: str = ""
    key: str = ""


@dataclass
class ParsedStatement:
    format: str
    profile: str | None
    account_iban: str | None
    lines: list[ParsedLine] = field(default_factory=list)


@dataclass(frozen=True)
class CsvProfile:
    """Which header names each field is read from, and how the bank writes numbers and dates."""

    name: str
    columns: dict[str, tuple[str, ...]]
    date_formats: tuple[str, ...]
    delimiters: str = ",;\t"
    decimal_comma: bool | None = None  # None: the last separator of a number is its decimal one


def _header_name(text: str) -> str:
    return re.sub(r"[\s_]+", " ", text.strip().lower())


def _names(*names: str) -> tuple[str, ...]:
    return tuple(_header_name(name) for name in names)


PROFILES: dict[str, CsvProfile] = {
    "it_movimenti": CsvProfile(
        name="it_movimenti",
        columns={
            "date": _names("Data contabile", "Data operazione", "Data registrazione", "Data"),
            "value_date": _names("Data valuta", "Valuta"),
            "amount": _names("Importo", "Importo (EUR)", "Importo EUR"),
            "credit": _names("Entrate", "Accrediti", "Avere"),
            "debit": _names("Uscite", "Addebiti", "Dare"),
            "description": _names("Descrizione", "Causale", "Operazione", "Causale ABI"),
            "details": _names("Descrizione estesa", "Dettagli", "Descrizione completa"),
            "counterparty": _names("Ordinante/Beneficiario", "Controparte", "Ordinante", "Beneficiario"),
            "iban": _names("IBAN", "IBAN controparte", "IBAN ordinante"),
            "reference": _names("Riferimento", "Riferimento banca", "CRO", "TRN"),
            "currency": _names("Divisa"),
        },
        date_formats=("%d/%m/%Y", "%d/%m/%y", "%d.%m.%Y", "%d-%m-%Y"),
        delimiters=";",
        decimal_comma=True,
    ),
    "generic": CsvProfile(
        name="generic",
        columns={
            "date": _names("date", "booking date"),
            "value_date": _names("value date", "value_date"),
            "amount": _names("amount"),
            "credit": _names("credit"),
            "debit": _names("debit"),
            "description": _names("description", "text"),
            "details": _names("details", "remittance"),
            "counterparty": _names("counterparty", "name"),
            "iban": _names("iban", "counterparty iban"),
            "reference": _names("reference", "bank reference"),
            "currency": _names("currency"),
        },
        date_formats=("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y"),
    ),
}


def _fail(filename: str, where: str, message: str) -> ValidationError:
    return ValidationError({"file": _("%(file)s, %(where)s: %(message)s", file=filename, where=where, message=message)})


def _file_error(filename: str, message: str) -> ValidationError:
    return ValidationError({"file": _("%(file)s: %(message)s", file=filename, message=message)})


def detect_format(raw: bytes) -> str:
    """`camt053` for an XML document, else `csv`."""
    head = raw[:200].lstrip(b"\xef\xbb\xbf \t\r\n")
    return "camt053" if head.startswith(b"<") else "csv"


def parse(raw: bytes, filename: str, *, format: str | None = None, profile: str | None = None) -> ParsedStatement:
    """Read a bank statement file; ValidationError (field `file`) when it is empty, too large or malformed."""
    if not raw.strip():
        raise _file_error(filename, _("The file is empty."))
    if len(raw) > MAX_FILE_BYTES:
        raise _file_error(filename, _("The file is larger than %(size)d MB.", size=MAX_FILE_BYTES // 1024 // 1024))
    format = format or detect_format(raw)
    if format == "camt053":
        statement = parse_camt053(raw, filename)
    elif format == "csv":
        statement = parse_csv(raw, filename, profile=profile)
    else:
        raise ValidationError({"format": _("Choose one of: %(choices)s", choices=", ".join(FORMATS))})
    if not statement.lines:
        raise _file_error(filename, _("The file holds no movements."))
    if len(statement.lines) > MAX_LINES:
        raise _file_error(filename, _("The file holds more than %(count)d movements.", count=MAX_LINES))
    return statement


# Amounts, dates, text


def parse_amount(text: str, decimal_comma: bool | None) -> Decimal | None:
    """`1.234,56` (decimal comma), `1,234.56`, `-12.5`, `12,50 EUR`: a Decimal with at most 2 places, or None.

    With `decimal_comma` None the last separator is the decimal one; a thousands separator must group 3 digits.
    """
    text = re.sub(r"[\s€']|EUR", "", text.strip(), flags=re.IGNORECASE)
    negative = text.startswith("-") or text.endswith("-") or (text.startswith("(") and text.endswith(")"))
    text = text.strip("+-()")
    if not re.fullmatch(r"\d[\d.,]*", text):
        return None
    if decimal_comma is None:
        last = max(text.rfind("."), text.rfind(","))
        decimal = text[last] if last >= 0 else "."
    else:
        decimal = "," if decimal_comma else "."
    thousands = "." if decimal == "," else ","
    integer, separator, fraction = text.rpartition(decimal)
    if not separator:
        integer, fraction = text, ""
    if thousands in integer:
        if not re.fullmatch(rf"\d{{1,3}}(\{thousands}\d{{3}})+", integer):
            return None
        integer = integer.replace(thousands, "")
    if not integer.isdigit() or (fraction and not fraction.isdigit()) or len(fraction) > 2:
        return None
    amount = Decimal(f"{integer}.{fraction or '0'}").quantize(Decimal("0.01"))
    if amount >= AMOUNT_LIMIT:
        return None
    return -amount if negative else amount


def parse_date(text: str, formats: Iterable[str]) -> dt.date | None:
    text = text.strip()
    for pattern in formats:
        try:
            value = dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
        if MIN_YEAR <= value.year <= MAX_YEAR:
            return value
    return None


def _clean(text: str | None, limit: int) -> str:
    """The text on one line, runs of white space (and NUL bytes, which no text column stores) as one space."""
    return " ".join((text or "").replace("\x00", " ").split())[:limit]


def _account_iban(cells: list[str]) -> str | None:
    """The first valid IBAN written in the rows above a CSV's header (spaces allowed)."""
    for cell in cells:
        for match in _IBAN_SHAPE.finditer(compact_iban(cell)):
            if stdnum_iban.is_valid(match.group()):
                return match.group()
    return None


def compact_iban(text: str | None) -> str:
    """The IBAN as stored (python-stdnum's compact form, what core.partners.normalize_iban returns): no spaces, upper
    case; a stored IBAN compared with a file's goes through it too."""
    return stdnum_iban.compact(text or "")


def _iban(text: str | None) -> str:
    compact = compact_iban(text)
    return compact if _IBAN_SHAPE.fullmatch(compact) and len(compact) <= 34 else ""


def _line_keys(lines: list[ParsedLine]) -> list[ParsedLine]:
    """Give each line its key: the bank's reference when given, else its content and its occurrence among equals."""
    seen: Counter[str] = Counter()
    keyed = []
    for line in lines:
        if line.identity:
            identity = line.identity
        else:
            text = " ".join(f"{line.remittance} {line.counterparty}".casefold().split())
            content = f"{line.date.isoformat()}|{line.amount}|{text}|{line.counterparty_iban}"
            seen[content] += 1
            identity = f"{content}|{seen[content]}"
        keyed.append(replace(line, key=hashlib.sha256(identity.encode()).hexdigest()))
    return keyed


# CSV


def parse_csv(raw: bytes, filename: str, *, profile: str | None = None) -> ParsedStatement:
    """Read a CSV export with the named profile, or with the first profile whose header the file has."""
    if profile is not None and profile not in PROFILES:
        raise ValidationError({"profile": _("Choose one of: %(choices)s", choices=", ".join(PROFILES))})
    text = decode(raw)
    candidates = [PROFILES[profile]] if profile else list(PROFILES.values())
    for candidate in candidates:
        found = _find_header(text, candidate)
        if found is not None:
            return _read_csv(text, filename, candidate, found)
    if profile:
        message = _("No header row with the columns of the profile %(profile)s was found.", profile=profile)
    else:
        message = _("No header row with a date and an amount (or credit and debit) column was found.")
    raise _file_error(filename, message)


@dataclass(frozen=True)
class _Header:
    delimiter: str
    line: int
    columns: dict[str, int]
    names: list[str]
    account_iban: str | None


def _reader(text: str, delimiter: str):
    csv.field_size_limit(MAX_FILE_BYTES)
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)


def _find_header(text: str, profile: CsvProfile) -> _Header | None:
    for delimiter in profile.delimiters:
        reader = _reader(text, delimiter)
        above: list[str] = []
        try:
            for number, cells in enumerate(reader):
                if number >= HEADER_SEARCH_ROWS:
                    break
                names = [_header_name(cell) for cell in cells]
                columns: dict[str, int] = {}
                for field_name, aliases in profile.columns.items():
                    found = next((names.index(alias) for alias in aliases if alias in names), None)
                    if found is not None:
                        columns[field_name] = found
                if "date" in columns and ("amount" in columns or {"credit", "debit"} <= columns.keys()):
                    names = [cell.strip() for cell in cells]
                    return _Header(delimiter, reader.line_num, columns, names, _account_iban(above))
                above.extend(cells)
        except csv.Error:
            continue
    return None


def _read_csv(text: str, filename: str, profile: CsvProfile, header: _Header) -> ParsedStatement:
    reader = _reader(text, header.delimiter)
    lines: list[ParsedLine] = []
    try:
        for cells in reader:
            if reader.line_num <= header.line:
                continue
            line = _csv_line(filename, profile, header, reader.line_num, [cell.strip() for cell in cells])
            if line is not None:
                lines.append(line)
    except csv.Error as error:
        raise _fail(filename, _("line %(line)d", line=reader.line_num), str(error)) from None
    return ParsedStatement("csv", profile.name, header.account_iban, _line_keys(lines))


def _csv_line(filename: str, profile: CsvProfile, header: _Header, number: int, cells: list[str]) -> ParsedLine | None:
    """The row's movement; None for blank rows, balances and rows without a date (a bank's totals)."""
    if not any(cells) or cells[0].lower().startswith("saldo"):
        return None
    for position, cell in enumerate(cells):
        if len(cell) > MAX_CELL:
            column = header.names[position] if position < len(header.names) else str(position + 1)
            where = _("line %(line)d, column %(column)s", line=number, column=column)
            raise _fail(filename, where, _("At most %(max)d characters.", max=MAX_CELL))

    def cell(name: str) -> str:
        index = header.columns.get(name)
        return cells[index] if index is not None and index < len(cells) else ""

    def where(name: str) -> str:
        return _("line %(line)d, column %(column)s", line=number, column=header.names[header.columns[name]])

    if not cell("date"):
        return None
    date = parse_date(cell("date"), profile.date_formats)
    if date is None:
        raise _fail(filename, where("date"), _("Not a date: %(value)s", value=cell("date")[:40]))
    value_date = None
    if cell("value_date"):
        value_date = parse_date(cell("value_date"), profile.date_formats)
        if value_date is None:
            raise _fail(filename, where("value_date"), _("Not a date: %(value)s", value=cell("value_date")[:40]))
    amount = _csv_amount(filename, profile, header, cell, where)
    if amount is None:
        return None
    currency = (cell("currency") or "EUR").upper()
    if not _CURRENCY.fullmatch(currency):
        raise _fail(filename, where("currency"), _("Not a currency code: %(value)s", value=currency[:40]))
    description, details = cell("description"), cell("details")
    remittance = details if description and details.startswith(description) else f"{description} {details}"
    reference = _clean(cell("reference"), MAX_REFERENCE)
    return ParsedLine(
        date=date,
        amount=amount,
        value_date=value_date,
        currency=currency,
        counterparty=_clean(cell("counterparty"), MAX_COUNTERPARTY),
        counterparty_iban=_iban(cell("iban")),
        remittance=_clean(remittance, MAX_REMITTANCE),
        bank_reference=reference,
        identity=f"ref|{reference}" if reference else "",
    )


def _csv_amount(filename: str, profile: CsvProfile, header: _Header, cell, where) -> Decimal | None:
    """The signed amount of a row (None for a zero movement)."""
    values: dict[str, Decimal] = {}
    for name in ("amount", "credit", "debit"):
        if cell(name):
            value = parse_amount(cell(name), profile.decimal_comma)
            if value is None:
                raise _fail(filename, where(name), _("Not an amount: %(value)s", value=cell(name)[:40]))
            values[name] = value
    if "amount" in values:
        amount = values["amount"]
    else:
        credit, debit = abs(values.get("credit", Decimal(0))), abs(values.get("debit", Decimal(0)))
        if credit and debit:
            raise _fail(filename, where("credit"), _("A movement is either money in or money out, not both."))
        if "credit" not in values and "debit" not in values:
            column = "amount" if "amount" in header.columns else "credit"
            raise _fail(filename, where(column), _("The amount is missing."))
        amount = credit - debit
    return amount or None


# CAMT.053

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True
)


def parse_camt053(raw: bytes, filename: str) -> ParsedStatement:
    """Read an ISO 20022 bank-to-customer statement (camt.053.001.02 to .13; booked entries only).

    An entry with several transactions (a batch) becomes one line per transaction when each has its amount and they
    add up to the entry; otherwise one line with every transaction's remittance text.
    """
    try:
        root = etree.fromstring(raw, _PARSER)
    except etree.XMLSyntaxError as error:
        where = _("line %(line)d", line=error.lineno or 1)
        raise _fail(filename, where, _("Not well-formed XML: %(error)s", error=error.msg)) from None
    if root.getroottree().docinfo.doctype:
        raise _fail(filename, _("line %(line)d", line=1), _("A document type declaration is not allowed."))
    name = etree.QName(root)
    if name.localname != "Document" or not CAMT_NAMESPACE.fullmatch(name.namespace or ""):
        message = _("Not a CAMT.053 statement (namespace %(namespace)s).", namespace=name.namespace or "-")
        raise _fail(filename, _element(root), message)
    reader = _Camt(filename, {"c": name.namespace})
    statements = root.findall("c:BkToCstmrStmt/c:Stmt", reader.ns)
    if not statements:
        raise _fail(filename, _element(root), _("The element %(element)s is missing.", element="BkToCstmrStmt/Stmt"))
    ibans = {iban for stmt in statements if (iban := _iban(stmt.findtext("c:Acct/c:Id/c:IBAN", None, reader.ns)))}
    if len(ibans) > 1:
        raise _file_error(filename, _("The file holds statements of more than one account: import one at a time."))
    lines: list[ParsedLine] = []
    for stmt in statements:
        for entry in stmt.findall("c:Ntry", reader.ns):
            lines.extend(reader.entry_lines(entry))
    return ParsedStatement("camt053", None, next(iter(ibans), None), _line_keys(lines))


def _element(element) -> str:
    path = []
    node = element
    while node is not None and len(path) < 4:
        path.append(etree.QName(node).localname)
        node = node.getparent()
    return _("line %(line)d, element %(element)s", line=element.sourceline or 1, element="/".join(reversed(path)))


class _Camt:
    def __init__(self, filename: str, ns: dict[str, str]) -> None:
        self.filename, self.ns = filename, ns

    def text(self, element, path: str) -> str:
        return _clean(element.findtext(path, None, self.ns), MAX_REMITTANCE)

    def fail(self, element, message: str) -> ValidationError:
        return _fail(self.filename, _element(element), message)

    def entry_lines(self, entry) -> list[ParsedLine]:
        status = self.text(entry, "c:Sts/c:Cd") or self.text(entry, "c:Sts")
        if status and status != "BOOK":
            return []
        amount_element = entry.find("c:Amt", self.ns)
        if amount_element is None:
            raise self.fail(entry, _("The element %(element)s is missing.", element="Amt"))
        sign = self.sign(entry, entry)
        amount = sign * self.amount(amount_element)
        currency = (amount_element.get("Ccy") or "EUR").strip().upper()
        if not _CURRENCY.fullmatch(currency):
            raise self.fail(amount_element, _("Not a currency code: %(value)s", value=currency[:40]))
        date = self.date(entry, "c:BookgDt", required=True)
        value_date = self.date(entry, "c:ValDt", required=False)
        servicer_ref = self.text(entry, "c:AcctSvcrRef")
        entry_ref = self.text(entry, "c:NtryRef")
        transactions = entry.findall("c:NtryDtls/c:TxDtls", self.ns)
        details = [self.transaction(tx, sign) for tx in transactions]
        base = ParsedLine(date=date, amount=amount, value_date=value_date, currency=currency)
        splittable = len(details) > 1 and all(d["amount"] is not None for d in details)
        if splittable and sum(d["amount"] for d in details) == amount:
            return self.split(base, details, servicer_ref, entry_ref)
        first = details[0] if details else {"counterparty": "", "iban": "", "servicer_ref": ""}
        texts = [d["remittance"] for d in details] + [self.text(entry, "c:AddtlNtryInf")]
        reference = servicer_ref or entry_ref or (first["servicer_ref"] if len(details) == 1 else "")
        if servicer_ref or entry_ref:
            identity = self.identity(servicer_ref, entry_ref, date, amount)
        else:
            identity = f"acct|{reference}" if reference else ""
        return [
            replace(
                base,
                counterparty=first["counterparty"],
                counterparty_iban=first["iban"],
                remittance=_clean(" ".join(t for t in texts if t), MAX_REMITTANCE),
                bank_reference=_clean(reference, MAX_REFERENCE),
                identity=identity,
            )
        ]

    def split(self, base: ParsedLine, details: list[dict], servicer_ref: str, entry_ref: str) -> list[ParsedLine]:
        """One line per transaction of a batch entry, each with its own reference where the bank gives one."""
        lines = []
        for position, detail in enumerate(details, start=1):
            own = detail["servicer_ref"]
            if own:
                reference, identity = own, f"acct|{own}"
            elif servicer_ref or entry_ref:
                reference = f"{servicer_ref or entry_ref}/{position}"
                identity = self.identity(servicer_ref, entry_ref, base.date, base.amount) + f"|{position}"
            else:
                reference, identity = "", ""
            lines.append(
                replace(
                    base,
                    amount=detail["amount"],
                    counterparty=detail["counterparty"],
                    counterparty_iban=detail["iban"],
                    remittance=detail["remittance"],
                    bank_reference=_clean(reference, MAX_REFERENCE),
                    identity=identity,
                )
            )
        return lines

    @staticmethod
    def identity(servicer_ref: str, entry_ref: str, date: dt.date, amount: Decimal) -> str:
        # The servicer's reference is unique at the bank; an entry reference may restart in each statement.
        return f"acct|{servicer_ref}" if servicer_ref else f"ntry|{entry_ref}|{date.isoformat()}|{amount}"

    def sign(self, element, fallback) -> int:
        indicator = self.text(element, "c:CdtDbtInd") or self.text(fallback, "c:CdtDbtInd")
        if indicator not in ("CRDT", "DBIT"):
            found = element.find("c:CdtDbtInd", self.ns)
            message = _("The element CdtDbtInd must be CRDT or DBIT, not %(value)s.", value=indicator or "-")
            raise self.fail(found if found is not None else element, message)
        return 1 if indicator == "CRDT" else -1

    def amount(self, element) -> Decimal:
        text = (element.text or "").strip()
        if not re.fullmatch(r"\d{1,12}(\.\d{1,2})?", text):
            raise self.fail(element, _("Not an amount with at most 2 decimal places: %(value)s", value=text[:40]))
        return Decimal(text).quantize(Decimal("0.01"))

    def date(self, entry, path: str, required: bool) -> dt.date | None:
        holder = entry.find(path, self.ns)
        if holder is None:
            if required:
                raise self.fail(entry, _("The element %(element)s is missing.", element=path.removeprefix("c:")))
            return None
        element = holder.find("c:Dt", self.ns)
        if element is None:
            element = holder.find("c:DtTm", self.ns)
        text = (element.text or "").strip() if element is not None else ""
        value = parse_date(text[:10], ("%Y-%m-%d",))
        if value is None:
            raise self.fail(element if element is not None else holder, _("Not a date: %(value)s", value=text[:40]))
        return value

    def transaction(self, tx, entry_sign: int) -> dict:
        amount_element = next(
            (found for path in ("c:Amt", "c:AmtDtls/c:TxAmt/c:Amt") if (found := tx.find(path, self.ns)) is not None),
            None,
        )
        amount = None
        if amount_element is not None:
            has_own = tx.find("c:CdtDbtInd", self.ns) is not None
            amount = (self.sign(tx, tx) if has_own else entry_sign) * self.amount(amount_element)
        # Money in names who paid (the debtor), money out whom it went to (the creditor).
        party = "Dbtr" if entry_sign > 0 else "Cdtr"
        name = (
            self.text(tx, f"c:RltdPties/c:{party}/c:Nm")
            or self.text(tx, f"c:RltdPties/c:{party}/c:Pty/c:Nm")
            or self.text(tx, f"c:RltdPties/c:Ultmt{party}/c:Nm")
            or self.text(tx, f"c:RltdPties/c:Ultmt{party}/c:Pty/c:Nm")
        )
        iban = _iban(tx.findtext(f"c:RltdPties/c:{party}Acct/c:Id/c:IBAN", None, self.ns))
        texts = [_clean(node.text, MAX_REMITTANCE) for node in tx.findall("c:RmtInf/c:Ustrd", self.ns)]
        texts += [_clean(node.text, MAX_REMITTANCE) for node in tx.findall("c:RmtInf/c:Strd//c:Ref", self.ns)]
        texts.append(self.text(tx, "c:AddtlTxInf"))
        return {
            "amount": amount,
            "counterparty": name[:MAX_COUNTERPARTY],
            "iban": iban,
            "remittance": _clean(" ".join(t for t in texts if t), MAX_REMITTANCE),
            "servicer_ref": self.text(tx, "c:Refs/c:AcctSvcrRef"),
        }
