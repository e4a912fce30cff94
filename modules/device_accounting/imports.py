"""CSV import of print users with their cards, cost center and PIN: preview, errors by row and column, all or nothing.

Each row goes through users.py and cost_centers.py like the admin, the portal and the API, in file order and in one
transaction (core.csv_import.Importer); a row that fails is undone on its own (a savepoint), so the rows after it are
checked against the rows that are right, and then nothing at all is written. A username the customer already has
updates that user (its filled cells; cards are added, never removed). A cost center path the customer does not have is
an error, unless the import is asked to create it (`create_cost_centers`, or UserAndCostCenterImporter).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import sqlalchemy as sa
from flask_babel import format_decimal, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from core.csv_import import Column, Importer, Problem, Row, Template, Written, header_problems
from core.db import db
from core.models import Partner
from core.validation import ValidationError
from modules.device_accounting.cost_centers import resolve_path
from modules.device_accounting.models import PrintUser
from modules.device_accounting.users import (
    add_card,
    card_taken,
    check_card_number,
    find_by_username,
    save_user,
    set_pin,
)

LIST_SEPARATORS = re.compile(r"[;|]")
# Where a field error of the services shows in the file.
FIELD_COLUMNS = {
    "customer_id": "customer",
    "default_cost_center_id": "cost_center",
    "cost_center_ids": "cost_centers",
    "number": "cards",
}
USER_FIELDS = ("username", "full_name", "email", "language")

CUSTOMER_COLUMN = Column("customer", _l("The customer's VAT number, fiscal code or exact name."), required=True)
USER_COLUMNS = (
    Column("username", _l("Unique in the customer, any case. A username already there updates that user."), True),
    Column("full_name"),
    Column("email", _l("Optional; unique in the customer.")),
    Column("language", _l("it, en or es; empty: the customer's.")),
    Column(
        "cost_center",
        _l("The default cost center, as its path from the top."),
        example="Amministrazione / Contabilità",
    ),
    Column(
        "cost_centers",
        _l('Other cost centers the user may charge, separated by ";" or "|".'),
        example="Amministrazione | Direzione",
    ),
    Column(
        "cards",
        _l(
            'Card numbers, separated by ";" or "|"; leading zeros count (0004521 is not 4521): format the column as '
            "text in the spreadsheet."
        ),
        example="0004521;0004522",
    ),
    Column("pin", _l("Optional: 4 to 8 digits, unique in the customer.")),
)
EXAMPLE_ROWS = (
    ("mrossi", "Mario Rossi", "mario.rossi@example.com", "it", "Amministrazione / Contabilità", "", "0004521", "4821"),
    ("lbianchi", "Laura Bianchi", "", "", "Direzione", "Amministrazione", "0004522;A1B2C3", ""),
)
CUSTOMER_EXAMPLE = "12345670157"


class UserImporter(Importer):
    """Print users, one per row. Staff import for any customer (a `customer` column); a customer's admin imports for
    their own customer only (`UserImporter(user_id, customer_id=...)`: no `customer` column)."""

    kind = "print_users"
    title = _l("Print users")
    permission = "print_accounting.edit"
    description = _l(
        "One print user per row, with its cards and cost center. A username already there updates that user."
    )
    columns = (CUSTOMER_COLUMN, *USER_COLUMNS)
    templates = (
        Template(
            "print_users",
            _l("Download the template"),
            tuple(column.name for column in (CUSTOMER_COLUMN, *USER_COLUMNS)),
            tuple((CUSTOMER_EXAMPLE, *row) for row in EXAMPLE_ROWS),
            file_name="copydesk-print-users.csv",
        ),
    )
    # What a customer's own import shows and takes (the portal): the same without the `customer` column.
    customer_columns: ClassVar[tuple[Column, ...]] = USER_COLUMNS
    customer_templates: ClassVar[tuple[Template, ...]] = (
        Template(
            "print_users",
            _l("Download the template"),
            tuple(column.name for column in USER_COLUMNS),
            EXAMPLE_ROWS,
            file_name="copydesk-print-users.csv",
        ),
    )
    customer_permission: ClassVar[str] = "portal.print_accounting"
    create_cost_centers: ClassVar[bool] = False

    def __init__(
        self, user_id: int | None = None, customer_id: int | None = None, create_cost_centers: bool | None = None
    ) -> None:
        super().__init__(user_id)
        self.customer_id = customer_id
        self.creating_cost_centers = self.create_cost_centers if create_cost_centers is None else create_cost_centers
        self._customers: dict[str, int | None] = {}
        self._seen: dict[tuple[int, str], int] = {}

    @classmethod
    def imported_message(cls, count: int) -> str:
        return ngettext(
            "%(count)s print user imported.", "%(count)s print users imported.", count, count=format_decimal(count)
        )

    def check_header(self, header: list[str]) -> list[Problem]:
        columns = self.columns if self.customer_id is None else self.customer_columns
        names = {column.name for column in columns}
        missing = [column.name for column in columns if column.required and column.name not in header]
        return header_problems(missing, [name for name in header if name and name not in names])

    def write(self, entry: Row) -> Written:
        savepoint = db.session.begin_nested()
        try:
            written = self._write(entry)
        except ValidationError:
            savepoint.rollback()
            raise
        savepoint.commit()
        return written

    def place(self, entry: Row, name: str, message: str) -> Problem:
        top = name.split(".")[0]
        return entry.line, FIELD_COLUMNS.get(top, top), message

    def _write(self, entry: Row) -> Written:
        cells = entry.cells
        errors: dict[str, str] = {}
        customer_id = self.customer_id if self.customer_id is not None else self._customer(cells.get("customer", ""))
        if customer_id is None:
            value = cells.get("customer", "")
            raise ValidationError(
                {
                    "customer": _("No customer has the VAT number, fiscal code or name %(value)s.", value=value)
                    if value
                    else _("This field is required.")
                }
            )
        username = cells.get("username", "")
        user = find_by_username(customer_id, username) if username.strip() else None
        key = (customer_id, username.strip().lower())
        if username.strip() and key in self._seen:
            raise ValidationError(
                {"username": _("%(username)s is also on row %(row)d.", username=username, row=self._seen[key])}
            )
        if username.strip():
            self._seen[key] = entry.line
        notes: list[str] = []
        if user is not None:
            notes.append(_("Updates the print user %(user)s.", user=str(user)))
        data: dict[str, Any] = {field: cells[field] for field in USER_FIELDS if field in cells}
        if user is not None:
            data = {field: value for field, value in data.items() if value}

        if cells.get("cost_center"):
            try:
                center, created = resolve_path(
                    customer_id, cells["cost_center"], self.creating_cost_centers, field="cost_center"
                )
            except ValidationError as error:
                errors |= error.errors
            else:
                data["default_cost_center_id"] = center.id
                notes += [_("Creates the cost center %(path)s.", path=path) for path in created]
        if cells.get("cost_centers"):
            ids = [] if user is None else [center.id for center in user.cost_centers]
            for path in _split(cells["cost_centers"]):
                try:
                    center, created = resolve_path(customer_id, path, self.creating_cost_centers, field="cost_centers")
                except ValidationError as error:
                    errors.setdefault("cost_centers", error.errors["cost_centers"])
                    continue
                ids.append(center.id)
                notes += [_("Creates the cost center %(path)s.", path=path) for path in created]
            data["cost_center_ids"] = ids

        cards = _split(cells.get("cards", ""))
        for number in cards:
            try:
                check_card_number(number, "cards")
            except ValidationError as error:
                errors.setdefault("cards", f"{number}: {error.errors['cards']}")
                continue
            problem = card_taken(customer_id, number, user.id if user else None)
            if problem is not None and not (user is not None and _owns_active(user, number)):
                errors.setdefault("cards", problem)
        try:
            user = save_user(customer_id, data, user)
        except ValidationError as error:
            raise ValidationError(errors | error.errors) from None
        if errors:
            raise ValidationError(errors)
        for number in cards:
            if _owns_active(user, number):
                continue  # already this user's: importing the same file twice changes nothing
            try:
                add_card(user, number, "cards")
            except ValidationError as error:
                errors.setdefault("cards", error.errors["cards"])
        if cells.get("pin"):
            try:
                set_pin(user, cells["pin"])
            except ValidationError as error:
                errors |= error.errors
        if errors:
            raise ValidationError(errors)
        return Written(new=True, notes=tuple(notes))

    def _customer(self, value: str) -> int | None:
        """A customer by VAT number, fiscal code or exact name (any case); None when none matches."""
        value = value.strip()
        if not value:
            return None
        if value not in self._customers:
            compact = re.sub(r"\s+", "", value).upper().removeprefix("IT")
            self._customers[value] = db.session.scalar(
                sa.select(Partner.id)
                .where(Partner.is_customer.is_(True))
                .where(
                    sa.or_(
                        Partner.vat_number == compact,
                        Partner.fiscal_code == compact,
                        sa.func.lower(Partner.name) == value.lower(),
                    )
                )
                .order_by(Partner.id)
            )
        return self._customers[value]


class UserAndCostCenterImporter(UserImporter):
    """The same import, creating the cost centers the file names that the customer does not have yet."""

    kind = "print_users_new_cost_centers"
    title = _l("Print users, creating missing cost centers")
    description = _l(
        "As the print user import, and a cost center the customer does not have yet is created (the check lists "
        "each one)."
    )
    create_cost_centers = True


def _owns_active(user: PrintUser, number: str) -> bool:
    return any(card.number == number and card.active for card in user.cards)


def _split(cell: str) -> list[str]:
    return [part.strip() for part in LIST_SEPARATORS.split(cell or "") if part.strip()]
