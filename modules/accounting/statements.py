"""Bank statements: a file imported once into its bank journal's statement lines, a proposed match per line, and
staff confirming a line (a customer payment recorded from it) or ignoring it.

Proposals, in order: an open invoice whose number the remittance text quotes ("saldo fattura 12/2026", also written
12-2026 or 0012/2026); else, when the customer is known (the counterparty's IBAN on a SEPA mandate, its VAT number
in the text, or its exact name), that customer's open invoice of exactly the line's amount (the oldest due); else
the customer alone, or nothing. Money out, and lines in another currency, get no proposal.

Stored once: the same file (by SHA-256) again adds nothing; a file overlapping an earlier one adds only its new
lines (UNIQUE journal + line key, see statement_files). A file with no new line stores nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from flask_babel import gettext as _

from core.db import db
from core.models import Partner
from core.validation import ValidationError, fail
from modules.accounting import ledger, payments, reconcile
from modules.accounting.models import BankStatement, Journal, Payment, SepaMandate, StatementLine
from modules.accounting.statement_files import ParsedLine, ParsedStatement, compact_iban, parse
from modules.invoicing.models import Invoice

_KEY_CHUNK = 500
# Words after which an Italian bank's text names who paid or was paid ("ORD. Rossi Srl CAUSALE: ...").
_PARTY_IN_TEXT = re.compile(
    r"\b(?:ORD(?:INANTE)?|DA|BENEF(?:ICIARIO)?|A FAVORE DI)\s*[.:]\s*(.+?)"
    r"(?=\s+(?:CAUSALE|CAUS|INFO|RIF|CRO|TRN|ID|NOTE|BIC|IBAN)\b|\s*$)",
    re.IGNORECASE,
)
_VAT_IN_TEXT = re.compile(r"(?<![0-9A-Z])(?:IT)?(\d{11})(?!\d)", re.IGNORECASE)


@dataclass
class ImportResult:
    """What an import did: the statement stored (or the earlier one of the same file), lines added and skipped."""

    statement: BankStatement | None
    created: bool
    added: int
    skipped: int
    lines: list[StatementLine] = field(default_factory=list)


@dataclass(frozen=True)
class Proposal:
    invoice_id: int | None
    partner_id: int | None
    reason: str  # invoice_number, amount, none


def _bank_journal(journal: Journal | str | None, account_iban: str | None) -> Journal:
    if journal is not None and journal != "":
        found = ledger.get_journal(journal)
        if found.kind != "bank" or not found.active:
            fail("journal", _("Choose an active bank journal."))
        if account_iban and found.iban and compact_iban(found.iban) != account_iban:
            fail(
                "journal",
                _(
                    "The file is a statement of the account %(file_iban)s, the journal %(journal)s is of %(iban)s.",
                    file_iban=account_iban,
                    journal=found.code,
                    iban=found.iban,
                ),
            )
        return found
    if account_iban:
        for candidate in db.session.scalars(
            sa.select(Journal).where(Journal.kind == "bank", Journal.active.is_(True)).order_by(Journal.id)
        ):
            if candidate.iban and compact_iban(candidate.iban) == account_iban:
                return candidate
    return ledger.get_journal("bank")


def open_line_counts(statement_ids: Sequence[int]) -> dict[int, int]:
    """How many lines of each statement are still to confirm (statements with none are left out)."""
    if not statement_ids:
        return {}
    return dict(
        db.session.execute(
            sa.select(StatementLine.statement_id, sa.func.count(StatementLine.id))
            .where(StatementLine.statement_id.in_(list(statement_ids)), StatementLine.state == "open")
            .group_by(StatementLine.statement_id)
        ).all()
    )


def import_statement(
    raw: bytes,
    filename: str,
    *,
    journal: Journal | str | None = None,
    profile: str | None = None,
    format: str | None = None,
    user_id: int | None = None,
) -> ImportResult:
    """Import a bank statement file into a bank journal (the one with the file's IBAN, else the default bank).

    ValidationError (`file`, `profile`, `format` or `journal`) before anything is written; the caller commits.
    """
    filename = (filename or "statement").replace("\x00", "").strip()[:200] or "statement"
    parsed = parse(raw, filename, format=format, profile=profile)
    bank = _bank_journal(journal, parsed.account_iban)
    digest = hashlib.sha256(raw).hexdigest()
    earlier = db.session.scalar(
        sa.select(BankStatement).where(BankStatement.journal_id == bank.id, BankStatement.sha256 == digest).limit(1)
    )
    if earlier is not None:
        return ImportResult(earlier, False, 0, len(parsed.lines))
    new_lines = _new_lines(bank, parsed.lines)
    skipped = len(parsed.lines) - len(new_lines)
    if not new_lines:
        return ImportResult(None, False, 0, skipped)
    statement = _store(bank, parsed, raw, filename, digest, new_lines, user_id)
    propose(statement.lines)
    db.session.flush()
    return ImportResult(statement, True, len(new_lines), skipped, list(statement.lines))


def _new_lines(bank: Journal, lines: Sequence[ParsedLine]) -> list[ParsedLine]:
    keys = [line.key for line in lines]
    known: set[str] = set()
    for start in range(0, len(keys), _KEY_CHUNK):
        chunk = keys[start : start + _KEY_CHUNK]
        known.update(
            db.session.scalars(
                sa.select(StatementLine.line_key).where(
                    StatementLine.journal_id == bank.id, StatementLine.line_key.in_(chunk)
                )
            )
        )
    fresh: dict[str, ParsedLine] = {}
    for line in lines:
        if line.key not in known:
            fresh.setdefault(line.key, line)
    return list(fresh.values())


def _store(
    bank: Journal,
    parsed: ParsedStatement,
    raw: bytes,
    filename: str,
    digest: str,
    lines: list[ParsedLine],
    user_id: int | None,
) -> BankStatement:
    statement = BankStatement(
        journal_id=bank.id,
        filename=filename,
        format=parsed.format,
        profile=parsed.profile,
        sha256=digest,
        content=raw,
        line_count=len(lines),
        imported_by=user_id,
    )
    statement.lines = [
        StatementLine(
            journal_id=bank.id,
            line_key=line.key,
            date=line.date,
            value_date=line.value_date,
            amount=line.amount,
            currency=line.currency,
            counterparty=line.counterparty or _party_in_text(line.remittance, line.amount),
            counterparty_iban=line.counterparty_iban,
            remittance=line.remittance,
            bank_reference=line.bank_reference,
            state="open",
        )
        for line in lines
    ]
    try:
        with db.session.begin_nested():
            db.session.add(statement)
            db.session.flush()
    except sa.exc.IntegrityError:
        # Another import of the same lines committed first: this one adds nothing twice.
        fail("file", _("%(file)s is being imported by someone else: try again.", file=filename))
    return statement


def _party_in_text(text: str, amount: Decimal) -> str:
    """Who paid (money in: "ORD.") or was paid, as an Italian bank's description writes it."""
    for match in _PARTY_IN_TEXT.finditer(text or ""):
        word = match.group(0).split()[0].upper().rstrip(".:")
        if (amount > 0) == word.startswith(("ORD", "DA")):
            return match.group(1).strip()[:200]
    return ""


# Proposals


def _name_key(name: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", name.casefold()).split())


def _number_pattern(number: str) -> str:
    parts = [part for part in re.split(r"[^0-9A-Za-z]+", number) if part]
    pieces = [f"0*{part.lstrip('0') or '0'}" if part.isdigit() else re.escape(part) for part in parts]
    return r"\s*[/\-_.\\]\s*".join(pieces)


class _Matcher:
    """What proposing needs, read once for a batch of lines: open invoices and how customers are recognised."""

    def __init__(self, lines: Sequence[StatementLine]) -> None:
        self.items = [
            item
            for item in reconcile.open_receivables()
            if item.invoice_id is not None and item.residual > 0 and item.line.partner_id is not None
        ]
        invoices = {item.invoice_id: item for item in self.items}
        numbers: dict[str, list] = {}
        if invoices:
            for invoice_id, number, kind in db.session.execute(
                sa.select(Invoice.id, Invoice.number, Invoice.type).where(Invoice.id.in_(invoices))
            ):
                if number and kind == "invoice":
                    numbers.setdefault(_number_pattern(number), []).append(invoices[invoice_id])
        self.by_pattern = numbers
        self.regex = None
        if numbers:
            alternatives = sorted(numbers, key=len, reverse=True)
            groups = "|".join(f"(?P<n{index}>{pattern})" for index, pattern in enumerate(alternatives))
            self.regex = re.compile(rf"(?<![0-9A-Za-z/])(?:{groups})(?![0-9/])", re.IGNORECASE)
            self.patterns = alternatives
        self._customers(lines)

    def _customers(self, lines: Sequence[StatementLine]) -> None:
        ibans = {line.counterparty_iban for line in lines if line.counterparty_iban}
        self.by_iban: dict[str, set[int]] = {}
        if ibans:
            for partner_id, iban in db.session.execute(
                sa.select(SepaMandate.partner_id, SepaMandate.iban).where(SepaMandate.active.is_(True))
            ):
                if compact_iban(iban) in ibans:
                    self.by_iban.setdefault(compact_iban(iban), set()).add(partner_id)
        vats = {number for line in lines for number in _VAT_IN_TEXT.findall(f"{line.remittance} {line.counterparty}")}
        self.by_vat: dict[str, set[int]] = {}
        if vats:
            candidates = vats | {f"IT{number}" for number in vats}
            for partner_id, vat in db.session.execute(
                sa.select(Partner.id, Partner.vat_number).where(
                    Partner.is_customer.is_(True), Partner.vat_number.in_(candidates)
                )
            ):
                self.by_vat.setdefault(vat.upper().removeprefix("IT"), set()).add(partner_id)
        names = {_name_key(line.counterparty) for line in lines if line.counterparty}
        self.by_name: dict[str, set[int]] = {}
        if names:
            lowered = {line.counterparty.strip().lower() for line in lines if line.counterparty}
            for partner_id, name in db.session.execute(
                sa.select(Partner.id, Partner.name).where(
                    Partner.is_customer.is_(True), sa.func.lower(Partner.name).in_(lowered)
                )
            ):
                self.by_name.setdefault(_name_key(name), set()).add(partner_id)

    def named_items(self, text: str) -> list:
        """The open invoices whose numbers `text` quotes, in the order quoted."""
        if self.regex is None or not text:
            return []
        found = []
        for match in self.regex.finditer(text):
            pattern = self.patterns[int(match.lastgroup[1:])]
            for item in self.by_pattern[pattern]:
                if item not in found:
                    found.append(item)
        return found

    def customer(self, line: StatementLine) -> int | None:
        for candidates in (
            self.by_iban.get(line.counterparty_iban, set()) if line.counterparty_iban else set(),
            set().union(
                *(self.by_vat.get(v, set()) for v in _VAT_IN_TEXT.findall(f"{line.remittance} {line.counterparty}"))
            ),
            self.by_name.get(_name_key(line.counterparty), set()) if line.counterparty else set(),
        ):
            if len(candidates) == 1:
                return next(iter(candidates))
        return None

    def propose(self, line: StatementLine) -> Proposal:
        if line.amount <= 0 or line.currency != "EUR":
            return Proposal(None, None, "none")
        named = self.named_items(line.remittance)
        if named:
            partner_id = named[0].line.partner_id
            return Proposal(named[0].invoice_id, partner_id, "invoice_number")
        partner_id = self.customer(line)
        if partner_id is None:
            return Proposal(None, None, "none")
        exact = [item for item in self.items if item.line.partner_id == partner_id and item.residual == line.amount]
        if exact:
            return Proposal(exact[0].invoice_id, partner_id, "amount")
        return Proposal(None, partner_id, "none")


def propose(lines: Iterable[StatementLine]) -> int:
    """Work out the proposal of each open line again (after new invoices, mandates or customers); how many have one."""
    lines = [line for line in lines if line.state == "open"]
    if not lines:
        return 0
    matcher = _Matcher(lines)
    proposed = 0
    for line in lines:
        proposal = matcher.propose(line)
        line.proposed_invoice_id = proposal.invoice_id
        line.proposed_partner_id = proposal.partner_id
        line.proposal_reason = proposal.reason
        proposed += proposal.partner_id is not None
    db.session.flush()
    return proposed


# Confirming and ignoring


def _locked(line: StatementLine) -> StatementLine:
    """The line read again under a row lock, so two confirmations of one line cannot both record a payment."""
    db.session.execute(sa.select(StatementLine.id).where(StatementLine.id == line.id).with_for_update()).all()
    db.session.refresh(line)
    return line


def confirm(
    line: StatementLine,
    *,
    partner_id: int | None = None,
    invoice_id: int | None = None,
    advance: bool = False,
    user_id: int | None = None,
) -> Payment:
    """Record the line as the customer's payment (payments.record_payment) and mark it matched.

    Without `partner_id`/`invoice_id` the proposal is confirmed. The payment is matched to the invoice, or, when the
    text quotes several invoices of the customer, to each of them in turn. ValidationError, nothing written, when
    the line is not open, is money out, names no customer, or pays more than is due without `advance`.
    """
    line = _locked(line)
    if line.state != "open":
        fail("state", _("Only an open line can be confirmed; this one is %(state)s.", state=line.state))
    if line.amount <= 0:
        fail("amount", _("Money out is not a customer's payment: ignore the line or post it by hand."))
    if line.currency != "EUR":
        fail("currency", _("Only lines in EUR can be confirmed."))
    proposed = invoice_id is None and partner_id is None
    if proposed:
        invoice_id, partner_id = line.proposed_invoice_id, line.proposed_partner_id
    if invoice_id is not None:
        invoice = db.session.get(Invoice, invoice_id) if isinstance(invoice_id, int) else None
        if invoice is None or (partner_id is not None and invoice.customer_id != partner_id):
            fail("invoice_id", _("Choose an invoice of this customer."))
        partner_id = invoice.customer_id
    if partner_id is None:
        fail("partner_id", _("Choose the customer who paid."))
    # A transfer quoting several invoices of the customer pays each of them, when staff did not pick one.
    named = _named_invoice_lines(line, partner_id) if proposed or invoice_id is None else []
    several = len(named) > 1
    payment = payments.record_payment(
        partner_id,
        line.amount,
        line.date,
        method="bank_transfer",
        journal=line.journal,
        reference=(line.remittance or line.bank_reference)[:200],
        invoice_id=None if several else invoice_id,
        advance=advance,
        statement_line_id=line.id,
        user_id=user_id,
    )
    if several:
        _match_each(payment, named, user_id)
    line.state, line.payment_id = "matched", payment.id
    db.session.flush()
    return payment


def _named_invoice_lines(line: StatementLine, partner_id: int) -> list:
    matcher = _Matcher([])
    return [item for item in matcher.named_items(line.remittance) if item.line.partner_id == partner_id]


def _match_each(payment: Payment, items: list, user_id: int | None) -> None:
    """Match the payment's receivable credit to each quoted invoice in turn, up to what is left of it."""
    credit = next(entry_line for entry_line in payment.entry.lines if entry_line.credit > 0)
    for item in items:
        left = -reconcile.residual(credit)
        if left <= 0:
            break
        due = reconcile.residual(item.line)
        if due > 0:
            reconcile.reconcile(item.line, credit, min(left, due), auto=True, user_id=user_id)


def ignore(line: StatementLine) -> None:
    """Set an open line aside (bank fees, transfers between own accounts): no payment is recorded."""
    line = _locked(line)
    if line.state != "open":
        fail("state", _("Only an open line can be ignored; this one is %(state)s.", state=line.state))
    line.state = "ignored"
    db.session.flush()


def reopen(line: StatementLine) -> None:
    """Put an ignored line back to open (a confirmed one reopens when its payment is cancelled)."""
    line = _locked(line)
    if line.state != "ignored":
        fail("state", _("Only an ignored line can be reopened; this one is %(state)s.", state=line.state))
    line.state = "open"
    propose([line])


@dataclass
class ConfirmAllResult:
    confirmed: list[Payment]
    refused: dict[int, str]  # line id -> why


def confirm_all(statement: BankStatement, *, user_id: int | None = None) -> ConfirmAllResult:
    """Confirm every open line of the statement that has a proposed customer; a refused one stays open."""
    result = ConfirmAllResult([], {})
    for line in list(statement.lines):
        if line.state != "open" or line.proposed_partner_id is None:
            continue
        try:
            with db.session.begin_nested():
                result.confirmed.append(confirm(line, user_id=user_id))
        except ValidationError as error:
            result.refused[line.id] = error.messages()
    return result
