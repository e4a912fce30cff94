"""What an SNMP answer means: vendor profiles chosen by sysObjectID, the PWG imaging counters, the Printer-MIB.

A profile is data: the make, its enterprise number and where its mono and colour totals are (a sum of OIDs, less
some, or the rows of a counter table whose type column says what they count). `interpret` turns the values read from
a device (OID -> int or text) into make, model, serial, counters by meter code and toner levels in percent, with a
note for each value it could not use. It is a pure function: tested without a network, and the same on the server
and in the on-site agent.

To add a make: append a `VendorProfile` to PROFILES (docs/metering.md, "SNMP polling and the on-site agent").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modules.metering.models import SUPPLY_COLOURS

ENTERPRISES = "1.3.6.1.4.1."

# SNMPv2-MIB and HOST-RESOURCES-MIB
SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
HR_DEVICE_DESCR = "1.3.6.1.2.1.25.3.2.1.3.1"
# Printer-MIB (RFC 3805)
PRT_GENERAL_SERIAL = "1.3.6.1.2.1.43.5.1.1.17.1"
PRT_MARKER_LIFE_COUNT = "1.3.6.1.2.1.43.10.2.1.4.1.1"
PRT_SUPPLIES = "1.3.6.1.2.1.43.11.1.1"  # prtMarkerSuppliesEntry
PRT_COLORANT_VALUE = "1.3.6.1.2.1.43.12.1.1.4.1"  # prtMarkerColorantValue.<hrDeviceIndex 1>.<colorant index>
# PWG-IMAGING-COUNTER-MIB (PWG 5106.1): imagingCounterMIB is enterprises.2699.1.3
IC_KEY_SERVICE_TYPE = "1.3.6.1.4.1.2699.1.3.1.2.1.1.2"  # icKeyServiceType.<key>
IC_IMPRESSION = "1.3.6.1.4.1.2699.1.3.1.8.1.1"  # icImpressionEntry.<column>.<key>.<workType>.<persistence>
IC_SYSTEM_TOTALS = 3  # IcServiceTypeTC systemTotals
IC_WORK_TOTALS = 3  # IcWorkTypeTC workTotals
IC_LIFETIME = 3  # IcPersistenceTC lifetime
IC_MONOCHROME_IMPS = 5
IC_FULL_COLOR_IMPS = 7

# The values every poll asks for before it knows the make.
FIRST_OIDS = (SYS_DESCR, SYS_OBJECT_ID, SYS_NAME, HR_DEVICE_DESCR, PRT_GENERAL_SERIAL, PRT_MARKER_LIFE_COUNT)
# The tables every poll walks: the supplies with their colorants, and the PWG counters where the device has them.
STANDARD_SUBTREES = (PRT_SUPPLIES, PRT_COLORANT_VALUE, IC_KEY_SERVICE_TYPE, IC_IMPRESSION)

# prtMarkerSuppliesEntry columns, and the PrtMarkerSuppliesTypeTC values that are toner or ink.
SUPPLY_COLORANT_INDEX = 3
SUPPLY_CLASS = 4
SUPPLY_TYPE = 5
SUPPLY_DESCRIPTION = 6
SUPPLY_MAX_CAPACITY = 8
SUPPLY_LEVEL = 9
SUPPLY_CONSUMED = 3  # PrtMarkerSuppliesClassTC supplyThatIsConsumed (a waste bottle is receptacleThatIsFilled)
TONER_TYPES = {3, 5, 6, 21}  # toner, ink, inkCartridge, tonerCartridge
UNKNOWN = -2
SOME_REMAINING = -3
# The meter of a page count that does not tell black and white from colour (the Printer-MIB life count): only a
# black-only device's counter is its `bw` (snmp.record_answer decides, knowing the device's model).
TOTAL = "total"
# Why a value could not be used (Note.code); snmp.note_text words each in the reader's language.
NOTE_CODES = ("partial", "negative", "not_adding_up", "some_remaining", "level_unknown", "life_negative")


@dataclass(frozen=True)
class Counter:
    """A counter read as the sum of `plus` less the sum of `minus`, plus `optional` where the device has them
    (Kyocera's fax counter: a model without fax has no such OID); every OID of `plus` and `minus` must be there."""

    plus: tuple[str, ...]
    minus: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


@dataclass(frozen=True)
class TypedCounter:
    """A counter summed over a table's rows whose type column (`type_column.<row>`) is one of `types`, read from
    `value_column.<row>` (Ricoh's engine counter table: the rows are numbered per model, their types are fixed)."""

    type_column: str
    value_column: str
    types: tuple[int, ...]


@dataclass(frozen=True)
class VendorProfile:
    """A make's SNMP tree: its enterprise number, its mono/colour totals by meter code, its model and serial."""

    key: str
    make: str
    enterprise: int
    counters: dict[str, Counter | TypedCounter]
    model_oid: str | None = None
    serial_oid: str | None = None

    def oids(self) -> tuple[str, ...]:
        """The scalar OIDs to get for this profile."""
        found = [oid for oid in (self.model_oid, self.serial_oid) if oid]
        for source in self.counters.values():
            if isinstance(source, Counter):
                found += [*source.plus, *source.minus, *source.optional]
        return tuple(dict.fromkeys(found))

    def subtrees(self) -> tuple[str, ...]:
        """The table columns to walk for this profile."""
        found = []
        for source in self.counters.values():
            if isinstance(source, TypedCounter):
                found += [source.type_column, source.value_column]
        return tuple(dict.fromkeys(found))


def _e(enterprise: int, rest: str) -> str:
    return f"{ENTERPRISES}{enterprise}.{rest}"


# KYOCERA-MIB kcprtMarkerServiceCount: .42.3.1.2.1.1.<function>.<mode>, functions 1 print, 2 copy, 4 fax; modes
# 1 black & white, 3 full colour.
_KYOCERA = "1.3.6.1.4.1.1347.42.3.1.2.1.1"
# Ricoh-Private-MIB ricohEngCounterType / ricohEngCounterValue: type 201 copy black, 202/203 copy colour (full, two
# colours), 401 print black, 402/403 print colour.
_RICOH = "1.3.6.1.4.1.367.3.2.1.2.19.5.1"
# Konica Minolta: .5.7.2.2.1.5.<colour 1 black, 2 colour>.<function 1 copy, 2 print>
_KONICA = "1.3.6.1.4.1.18334.1.1.1.5.7.2.2.1.5"
# CANON-MIB service counters: 112/113 black large/small, 122/123 full colour + single colour large/small.
_CANON = "1.3.6.1.4.1.1602.1.11.1.3.1.4"
# XEROX-HOST-RESOURCES-EXT-MIB xcmHrDevDetailValueInteger: .20.33 colour, .20.34 black printed impressions.
_XEROX = "1.3.6.1.4.1.253.8.53.13.2.1.6.1.20"
# Sharp: output totals by colour mode, .61 black & white, .63 full colour.
_SHARP = "1.3.6.1.4.1.2385.1.1.19.2.1.3.5.4"

PROFILES: tuple[VendorProfile, ...] = (
    VendorProfile(
        "kyocera",
        "Kyocera",
        1347,
        {
            "bw": Counter((f"{_KYOCERA}.1.1", f"{_KYOCERA}.2.1"), optional=(f"{_KYOCERA}.4.1",)),
            "color": Counter((f"{_KYOCERA}.1.3", f"{_KYOCERA}.2.3")),
        },
        model_oid=_e(1347, "43.5.1.1.1.1"),  # kcprtGeneralModelName.1
        serial_oid=_e(1347, "43.5.1.1.28.1"),  # kcprtSerialNumber.1
    ),
    VendorProfile(
        "ricoh",
        "Ricoh",
        367,
        {
            "bw": TypedCounter(f"{_RICOH}.2", f"{_RICOH}.9", (201, 401)),
            "color": TypedCounter(f"{_RICOH}.2", f"{_RICOH}.9", (202, 203, 402, 403)),
        },
    ),
    VendorProfile(
        "konica_minolta",
        "Konica Minolta",
        18334,
        {
            "bw": Counter((f"{_KONICA}.1.1", f"{_KONICA}.1.2")),
            "color": Counter((f"{_KONICA}.2.1", f"{_KONICA}.2.2")),
        },
        model_oid=_e(18334, "1.1.1.1.6.2.1.0"),
    ),
    VendorProfile(
        "hp",
        "HP",
        11,
        {
            # HP-LASERJET-COMMON-MIB status-prt-eng: total-engine-page-count (.5) less total-color-page-count (.7).
            "bw": Counter((_e(11, "2.3.9.4.2.1.4.1.2.5.0"),), (_e(11, "2.3.9.4.2.1.4.1.2.7.0"),)),
            "color": Counter((_e(11, "2.3.9.4.2.1.4.1.2.7.0"),)),
        },
        model_oid=_e(11, "2.3.9.4.2.1.1.3.2.0"),
        serial_oid=_e(11, "2.3.9.4.2.1.1.3.3.0"),
    ),
    VendorProfile(
        "canon",
        "Canon",
        1602,
        {
            "bw": Counter((f"{_CANON}.112", f"{_CANON}.113")),
            "color": Counter((f"{_CANON}.122", f"{_CANON}.123")),
        },
        model_oid=_e(1602, "1.1.1.1.0"),  # canPdInfoProductName
        serial_oid=_e(1602, "1.2.1.8.1.3.1.1"),  # canServInfoSerialNumberDeviceNumber
    ),
    VendorProfile(
        "xerox",
        "Xerox",
        253,
        {"bw": Counter((f"{_XEROX}.34",)), "color": Counter((f"{_XEROX}.33",))},
    ),
    VendorProfile(
        "sharp",
        "Sharp",
        2385,
        {"bw": Counter((f"{_SHARP}.61",)), "color": Counter((f"{_SHARP}.63",))},
    ),
    VendorProfile(
        "lexmark",
        "Lexmark",
        641,
        {"bw": Counter((_e(641, "2.1.5.2.0"),)), "color": Counter((_e(641, "2.1.5.3.0"),))},
        model_oid=_e(641, "2.1.2.1.2.1"),  # prtgenPrinterName
    ),
)


def enterprise_of(sys_object_id: str | None) -> int | None:
    """The enterprise number in a sysObjectID (1.3.6.1.4.1.<n>...), or None."""
    if not sys_object_id or not sys_object_id.startswith(ENTERPRISES):
        return None
    head = sys_object_id[len(ENTERPRISES) :].split(".", 1)[0]
    return int(head) if head.isdigit() else None


def profile_for(sys_object_id: str | None) -> VendorProfile | None:
    enterprise = enterprise_of(sys_object_id)
    return next((profile for profile in PROFILES if profile.enterprise == enterprise), None)


@dataclass(frozen=True)
class Note:
    """A value the answer had but could not be used: `code` (NOTE_CODES) and the meter or toner colour it is about.
    Kept as codes, not words: the on-site agent has no meter names; the server words them (snmp.note_text)."""

    code: str
    meter: str | None = None
    colour: str | None = None

    def as_dict(self) -> dict[str, str]:
        found = {"code": self.code, "meter": self.meter, "colour": self.colour}
        return {key: value for key, value in found.items() if value}


@dataclass
class Interpretation:
    """What a device's answer says; `notes` lists, in plain words, each value that could not be used."""

    make: str | None
    model: str | None
    serial: str | None
    counters: dict[str, int]
    supplies: dict[str, int]
    profile: str
    counter_source: dict[str, str] = field(default_factory=dict)  # meter -> "vendor", "pwg" or "printer-mib"
    notes: list[Note] = field(default_factory=list)


def _text(raw: dict[str, Any], oid: str | None) -> str | None:
    value = raw.get(oid) if oid else None
    if value is None:
        return None
    text = " ".join(str(value).replace("\x00", " ").split())
    return text or None


def _number(raw: dict[str, Any], oid: str) -> int | None:
    value = raw.get(oid)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _vendor_counter(raw: dict[str, Any], meter: str, source: Counter | TypedCounter, notes: list[Note]) -> int | None:
    if isinstance(source, TypedCounter):
        prefix = source.type_column + "."
        rows = [oid[len(prefix) :] for oid, kind in raw.items() if oid.startswith(prefix) and kind in source.types]
        if not rows:
            return None
        parts = [_number(raw, f"{source.value_column}.{row}") for row in rows]
        minus: list[int | None] = []
    else:
        present = [oid for oid in source.optional if oid in raw]
        parts = [_number(raw, oid) for oid in (*source.plus, *present)]
        minus = [_number(raw, oid) for oid in source.minus]
    if any(part is None for part in parts + minus):
        if any(part is not None for part in parts + minus):
            notes.append(Note("partial", meter=meter))
        return None
    if any(part < 0 for part in parts + minus):
        notes.append(Note("negative", meter=meter))
        return None
    value = sum(parts) - sum(minus)
    if value < 0:
        notes.append(Note("not_adding_up", meter=meter))
        return None
    return value


def _pwg_counters(raw: dict[str, Any], notes: list[Note]) -> dict[str, int]:
    """Lifetime impressions of the system totals key: monochrome -> bw, full colour -> color."""
    prefix = IC_KEY_SERVICE_TYPE + "."
    keys = sorted(int(oid[len(prefix) :]) for oid, kind in raw.items() if oid.startswith(prefix) and kind == 3)
    found: dict[str, int] = {}
    for key in keys[:1]:
        suffix = f"{key}.{IC_WORK_TOTALS}.{IC_LIFETIME}"
        for meter, column in (("bw", IC_MONOCHROME_IMPS), ("color", IC_FULL_COLOR_IMPS)):
            value = _number(raw, f"{IC_IMPRESSION}.{column}.{suffix}")
            if value is None:
                continue
            if value < 0:
                notes.append(Note("negative", meter=meter))
                continue
            found[meter] = value
    return found


def _supplies(raw: dict[str, Any], notes: list[Note]) -> dict[str, int]:
    """Toner levels in percent by colour."""
    prefix = f"{PRT_SUPPLIES}.{SUPPLY_LEVEL}."
    levels: dict[str, int] = {}
    for oid in sorted(raw):
        if not oid.startswith(prefix):
            continue
        index = oid[len(prefix) :]
        kind = _number(raw, f"{PRT_SUPPLIES}.{SUPPLY_TYPE}.{index}")
        supply_class = _number(raw, f"{PRT_SUPPLIES}.{SUPPLY_CLASS}.{index}")
        if kind not in TONER_TYPES or (supply_class is not None and supply_class != SUPPLY_CONSUMED):
            continue
        colour = _supply_colour(raw, index)
        if colour is None:
            continue
        level = _number(raw, oid)
        capacity = _number(raw, f"{PRT_SUPPLIES}.{SUPPLY_MAX_CAPACITY}.{index}")
        if level == SOME_REMAINING:
            notes.append(Note("some_remaining", colour=colour))
        elif level is None or level == UNKNOWN or level < 0 or capacity is None or capacity <= 0:
            notes.append(Note("level_unknown", colour=colour))
        else:
            levels.setdefault(colour, min(100, round(level * 100 / capacity)))
    return levels


def _supply_colour(raw: dict[str, Any], index: str) -> str | None:
    colorant = _number(raw, f"{PRT_SUPPLIES}.{SUPPLY_COLORANT_INDEX}.{index}")
    names = []
    if colorant:
        names.append((_text(raw, f"{PRT_COLORANT_VALUE}.{colorant}") or "").lower())
    names.append((_text(raw, f"{PRT_SUPPLIES}.{SUPPLY_DESCRIPTION}.{index}") or "").lower())
    for name in names:
        for colour in SUPPLY_COLOURS:
            if colour in name.replace("-", " ").split() or name == colour:
                return colour
    return None


def interpret(raw: dict[str, Any]) -> Interpretation:
    """Make, model, serial, counters by meter (bw, color) and toner levels from the values a device answered.

    Each meter comes from the make's profile, else from the PWG imaging counters; a device with neither gives its
    Printer-MIB life count as `total`: whether that is its `bw` depends on the device's model, not on the supplies
    it names (a colour device may name none), and only the server knows the model (snmp.record_answer).
    """
    sys_object_id = _text(raw, SYS_OBJECT_ID)
    profile = profile_for(sys_object_id)
    notes: list[Note] = []
    counters: dict[str, int] = {}
    origin: dict[str, str] = {}
    if profile is not None:
        for meter, source in profile.counters.items():
            value = _vendor_counter(raw, meter, source, notes)
            if value is not None:
                counters[meter], origin[meter] = value, "vendor"
    for meter, value in _pwg_counters(raw, notes).items():
        if meter not in counters:
            counters[meter], origin[meter] = value, "pwg"
    supplies = _supplies(raw, notes)
    if not counters:
        life = _number(raw, PRT_MARKER_LIFE_COUNT)
        if life is not None and life >= 0:
            counters[TOTAL], origin[TOTAL] = life, "printer-mib"
        elif life is not None:
            notes.append(Note("life_negative", meter=TOTAL))
    serial = _text(raw, PRT_GENERAL_SERIAL) or _text(raw, profile.serial_oid if profile else None)
    model = _text(raw, profile.model_oid if profile else None) or _text(raw, HR_DEVICE_DESCR) or _text(raw, SYS_DESCR)
    return Interpretation(
        make=profile.make if profile else None,
        model=model,
        serial=serial,
        counters=counters,
        supplies=supplies,
        profile=profile.key if profile else "printer-mib",
        counter_source=origin,
        notes=notes,
    )
