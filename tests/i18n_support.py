"""Helpers for the translation tests: compile the catalogues, extract the marked strings as `make messages` does."""

from __future__ import annotations

import io
import os
import re
import tempfile
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_keywords, parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
CORE_TRANSLATIONS = ROOT / "core" / "translations"
TRANSLATED = ("it", "es")  # English is the source language: its catalogue may leave msgstr empty


def catalogue_dirs() -> list[Path]:
    """The translation folders `make translations` compiles: core's and each module's."""
    return [path for path in (CORE_TRANSLATIONS, *sorted(ROOT.glob("modules/*/translations"))) if path.is_dir()]


def compile_catalogues(directories: list[Path] | None = None) -> list[Path]:
    """Compile every .po whose .mo is missing or older, as `make translations` does; returns the .mo files written.

    Each .mo is written to a temporary file and renamed, so a test run in another process never reads half a file.
    """
    written = []
    for directory in directories or catalogue_dirs():
        written += [_compile(po) for po in sorted(directory.glob("*/LC_MESSAGES/*.po")) if _is_stale(po)]
    return written


def _is_stale(po: Path) -> bool:
    mo = po.with_suffix(".mo")
    return not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime


def _compile(po: Path) -> Path:
    with po.open("rb") as source:
        catalog = read_po(source, locale=po.parent.parent.name)
    with tempfile.NamedTemporaryFile(dir=po.parent, suffix=".mo.tmp", delete=False) as target:
        write_mo(target, catalog)  # fuzzy entries are guesses: left out, their English shows
    os.chmod(target.name, 0o644)  # as pybabel writes it, not the temporary file's owner-only mode
    mo = po.with_suffix(".mo")
    os.replace(target.name, mo)
    return mo


def makefile_keywords() -> dict:
    """Babel's default keywords plus the Makefile's BABEL_KEYWORDS: the tests extract what `make messages` does."""
    match = re.search(r"^BABEL_KEYWORDS\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile has no BABEL_KEYWORDS line"
    return {**DEFAULT_KEYWORDS, **parse_keywords(match.group(1).split())}


def extract_messages(pot: Path) -> Catalog:
    """Extract every marked string of the code and templates (babel.cfg) into `pot` and return that catalogue."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    catalog = Catalog(project="Copydesk")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=makefile_keywords()
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    buffer = io.BytesIO()
    write_po(buffer, catalog)
    pot.write_bytes(buffer.getvalue())
    return catalog


def load_catalogue(language: str) -> Catalog:
    with (CORE_TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source, locale=language)
