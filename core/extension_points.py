"""Typed extension points: registries that enabled modules fill at setup, read by other modules through core.

A module never imports another module to get its data; it asks core for every implementation of a protocol
here. Only enabled modules register, so the licence gate applies by itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from flask import current_app

T = TypeVar("T")


@dataclass(frozen=True)
class BillableLine:
    """A line some module wants on an invoice; `(source, source_ref)` is unique over non-cancelled invoices."""

    source: str
    source_ref: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    vat_rate: Decimal
    kind: str
    contract_id: int | None = None
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    meter: str | None = None
    device_id: int | None = None
    unit: str = "pz"
    extra: dict[str, Any] = field(default_factory=dict)
    # A code of core_vat_code (core.vat_codes); None: the default code of `vat_rate`.
    vat_code: str | None = None


@runtime_checkable
class BillableSource(Protocol):
    """Gives invoicing the lines due for a customer as of a date (metering overage, rental fees, chargeback)."""

    name: str

    def billable_lines(self, customer_id: int, as_of: dt.date) -> list[BillableLine]:
        """Every line due by `as_of` (invoicing skips the `(source, source_ref)` already billed); must not write."""


@runtime_checkable
class ChunkPreparer(Protocol):
    """Optional method of a BillableSource: read what a chunk of customers needs in a few queries, once.

    A billing run calls it before billing the chunk's customers one by one; the source may then answer
    `billable_lines` for them from what it read. It must not write, and what it keeps must not outlive the chunk
    (`forget_chunk`) nor answer for data written since.
    """

    def prepare_chunk(self, customer_ids: list[int], as_of: dt.date) -> None:
        """Read ahead for these customers as of `as_of`; must not write."""

    def forget_chunk(self) -> None:
        """Drop what `prepare_chunk` kept."""


@runtime_checkable
class MissingReadingsReporter(Protocol):
    """Optional second method of a BillableSource: what it could not bill for lack of readings.

    A billing run calls it on every source that has it and lists the result on the run. Each dict has the keys
    `contract_id`, `device_id`, `meter`, `period_start`, `period_end` (ints, a meter code, dates).
    """

    def missing_readings(self, customer_id: int, as_of: dt.date) -> list[dict[str, Any]]:
        """The periods of `customer_id` whose overage waits for a closing reading as of `as_of`; must not write."""


@runtime_checkable
class MeterBillingCover(Protocol):
    """Says which contract periods a module bills in place of meter overage (device accounting's chargeback), so
    metering bills neither overage nor minimum charge for them: never both for the same devices and period."""

    def covered_periods(self, periods: set[tuple[int, dt.date]]) -> set[tuple[int, dt.date]]:
        """Of these (contract id, period start) pairs, those this module bills instead; must not write."""


@dataclass(frozen=True)
class DashboardCard:
    """A figure a module shows on the admin dashboard."""

    title: str
    value: str
    url: str | None = None


@runtime_checkable
class DashboardProvider(Protocol):
    def dashboard_cards(self) -> list[DashboardCard]:
        """Cards for the staff dashboard; called on each visit, so keep it to a few cheap queries."""


@dataclass(frozen=True)
class RecordLink:
    """One row of a record panel, or an action on a record: a text, where it leads, and a short detail beside it."""

    label: str
    url: str
    detail: str = ""


@dataclass(frozen=True)
class RecordPanel:
    """What a module shows on another record's page: its related rows, a link to all of them, and actions."""

    title: str
    items: tuple[RecordLink, ...] = ()
    more: RecordLink | None = None
    actions: tuple[RecordLink, ...] = ()
    empty: str = ""


@runtime_checkable
class RecordPanelProvider(Protocol):
    """Adds panels to the back-office page of a record of core or a module the provider may know.

    `kind` is one of "customer" (core_partner), "contract", "device" (rentals); a provider returns [] for a kind it
    does not know, so a module adds to a page without the page's module importing it.
    """

    def record_panels(self, kind: str, record_id: int) -> list[RecordPanel]:
        """The panels for record `record_id` of `kind`, seen by the current user; must not write."""


@runtime_checkable
class RecordActionProvider(Protocol):
    """Optional second method of a RecordPanelProvider: the actions on a record, for pages listing many records."""

    def record_actions(self, kind: str, record_id: int) -> list[RecordLink]:
        """What the current user can do with record `record_id` of `kind` (a metering device: enter a reading)."""


@dataclass(frozen=True)
class Banner:
    """A notice at the top of every back-office page (the licence's state, a tier nearly used up)."""

    text: str
    level: str = "warning"  # info | warning | danger (Bootstrap alert classes)
    url: str | None = None


@runtime_checkable
class BannerProvider(Protocol):
    def banners(self) -> list[Banner]:
        """Notices for the current staff user; called once per back-office page, so keep it to a few cheap queries."""


@runtime_checkable
class LoginGate(Protocol):
    """Decides whether a user whose password was right may start a browser login (lan_licensing's staff seats)."""

    def refuse_login(self, user: Any) -> str | None:
        """None lets `user` in; a text refuses the login and is shown on the login page. Called in the login's
        transaction before its session row is written, so a gate may lock rows until the login commits."""

    def refuse_resume(self, user: Any, login: Any) -> str | None:
        """The same for a login coming back: called when its `last_seen_at` (still the previous time) is about to
        move forward, at most once a minute per login. A text ends the login and is shown on the login page."""


@dataclass(frozen=True)
class LicenceUsage:
    """How much of one licensed quantity is in use, for the Licence page (device_accounting: its devices)."""

    quantity: str  # the licence's figure it is measured against: "devices"
    used: int
    what: str = ""  # what is counted, in the reader's language


@runtime_checkable
class LicenceUsageProvider(Protocol):
    def licence_usage(self, start: dt.date, end: dt.date) -> list[LicenceUsage]:
        """Quantities in use in the licence year from `start` to `end` (the dealer's dates, inclusive)."""


@dataclass(frozen=True)
class DeliveryTarget:
    """A device a module found by its serial or asset tag: its label and the customer it stands at."""

    device_id: int
    label: str
    customer_id: int | None
    customer_name: str


@runtime_checkable
class DeviceDelivery(Protocol):
    """Delivering stock from a technician's van into a device (rentals_inventory: a shipment to the device)."""

    def find_device(self, text: str) -> DeliveryTarget | None:
        """The device a technician scanned or typed (its serial or asset tag); None when there is none."""

    def deliver(
        self,
        device_id: int,
        product_id: int,
        quantity: Decimal,
        from_location_id: int,
        serials: Sequence[str],
        user: Any,
    ) -> None:
        """Post the delivery, or raise ValidationError naming a field (shown on the van page)."""


@dataclass(frozen=True)
class PaymentStatus:
    """How far a posted invoice is paid, as the module keeping the books sees it (accounting)."""

    state: str  # paid | partial | overdue | open | collecting
    amount_due: Decimal
    label: str  # the state in the reader's language, with what makes it (partial: how much is paid)


@runtime_checkable
class PaymentStatusProvider(Protocol):
    """Tells invoicing's pages and API how far invoices are paid; invoicing records no payments itself."""

    def payment_states(self, invoice_ids: Sequence[int]) -> dict[int, PaymentStatus]:
        """The state of each posted invoice or credit note of `invoice_ids` it knows (others are left out), in a
        few queries for all of them (a list page asks once per page); must not write."""


@dataclass(frozen=True)
class InvoiceReference:
    """The public procurement references of a contract, printed on its e-invoices (FatturaPA 2.1.3 / 2.1.2)."""

    kind: str  # contract (DatiContratto) | order (DatiOrdineAcquisto)
    reference: str  # IdDocumento: the customer's contract or order number
    date: dt.date | None = None
    cig: str | None = None
    cup: str | None = None


@runtime_checkable
class InvoiceReferenceProvider(Protocol):
    """Gives invoicing the procurement references of contracts (rentals), copied onto each draft of them."""

    def invoice_references(self, contract_ids: Sequence[int]) -> dict[int, InvoiceReference]:
        """The references of those of `contract_ids` that have any, in one query; must not write."""

    def contract_customers(self, contract_ids: Sequence[int]) -> dict[int, int]:
        """The customer id of each of `contract_ids` that exists (others are left out), in one query; must not
        write. Invoicing refuses a draft for one customer naming another customer's contract."""


@dataclass(frozen=True)
class DirectDebitMandate:
    """A customer's SEPA direct debit mandate, as the module keeping them has it (accounting)."""

    reference: str
    iban: str
    signed_on: dt.date | None = None


@runtime_checkable
class DirectDebitMandateProvider(Protocol):
    """Gives invoicing a customer's active SEPA mandate for the e-invoice's payment detail (MP19)."""

    def direct_debit_mandate(self, customer_id: int) -> DirectDebitMandate | None:
        """The customer's active mandate, if any; must not write."""


@dataclass(frozen=True, eq=False)
class ExtensionPoint(Generic[T]):
    """A named registry slot whose implementations satisfy `protocol`; `implementations(point)` is a `list[T]`."""

    name: str
    protocol: type[T]


BILLABLE_SOURCE: ExtensionPoint[BillableSource] = ExtensionPoint("billable_source", BillableSource)
DASHBOARD: ExtensionPoint[DashboardProvider] = ExtensionPoint("dashboard", DashboardProvider)
RECORD_PANELS: ExtensionPoint[RecordPanelProvider] = ExtensionPoint("record_panels", RecordPanelProvider)
METER_BILLING_COVER: ExtensionPoint[MeterBillingCover] = ExtensionPoint("meter_billing_cover", MeterBillingCover)
BANNERS: ExtensionPoint[BannerProvider] = ExtensionPoint("banners", BannerProvider)
LOGIN_GATE: ExtensionPoint[LoginGate] = ExtensionPoint("login_gate", LoginGate)
LICENCE_USAGE: ExtensionPoint[LicenceUsageProvider] = ExtensionPoint("licence_usage", LicenceUsageProvider)
DEVICE_DELIVERY: ExtensionPoint[DeviceDelivery] = ExtensionPoint("device_delivery", DeviceDelivery)
PAYMENT_STATUS: ExtensionPoint[PaymentStatusProvider] = ExtensionPoint("payment_status", PaymentStatusProvider)
INVOICE_REFERENCES: ExtensionPoint[InvoiceReferenceProvider] = ExtensionPoint(
    "invoice_references", InvoiceReferenceProvider
)
DIRECT_DEBIT_MANDATES: ExtensionPoint[DirectDebitMandateProvider] = ExtensionPoint(
    "direct_debit_mandates", DirectDebitMandateProvider
)
EXTENSION_POINTS: tuple[ExtensionPoint[Any], ...] = (
    BILLABLE_SOURCE,
    DASHBOARD,
    RECORD_PANELS,
    METER_BILLING_COVER,
    BANNERS,
    LOGIN_GATE,
    LICENCE_USAGE,
    DEVICE_DELIVERY,
    PAYMENT_STATUS,
    INVOICE_REFERENCES,
    DIRECT_DEBIT_MANDATES,
)


class ExtensionRegistry:
    """Per-app store of implementations, checked against the declared protocol when registered."""

    def __init__(self) -> None:
        self._items: dict[ExtensionPoint[Any], list[Any]] = {point: [] for point in EXTENSION_POINTS}

    def register(self, point: ExtensionPoint[T], implementation: T) -> None:
        if point not in self._items:
            declared = sorted(p.name for p in EXTENSION_POINTS)
            raise KeyError(f"unknown extension point {point!r}; declared: {declared}")
        if not isinstance(implementation, point.protocol):
            raise TypeError(f"{implementation!r} does not implement {point.protocol.__name__}")
        self._items[point].append(implementation)

    def get(self, point: ExtensionPoint[T]) -> list[T]:
        return list(self._items[point])


def implementations(point: ExtensionPoint[T]) -> list[T]:
    """Every implementation registered for `point` by the enabled modules of the current app."""
    return current_app.extensions["copydesk"].extensions.get(point)
