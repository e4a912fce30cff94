"""The official FatturaPA 1.2.3 schema for tests: `validate(xml)` fails with the schema's errors, never fetching."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from lxml import etree

from modules.invoicing.fatturapa_rules import check

DATA = Path(__file__).parent / "data" / "fatturapa"
SCHEMA = DATA / "Schema_del_file_xml_FatturaPA_v1.2.3.xsd"
# The schema imports XML Signature from its w3.org address: that address is the local copy.
LOCAL_COPIES = {
    "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd": DATA / "xmldsig-core-schema.xsd"
}


class _LocalSchemas(etree.Resolver):
    def resolve(self, system_url, public_id, context):
        local = LOCAL_COPIES.get(system_url)
        return self.resolve_filename(str(local), context) if local else None


@functools.cache
def schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=True)
    parser.resolvers.add(_LocalSchemas())
    return etree.XMLSchema(etree.parse(str(SCHEMA), parser))


def validate(xml: bytes) -> None:
    """Fail the test, listing the schema's errors, unless `xml` is valid FatturaPA 1.2.3."""
    document = etree.fromstring(xml, etree.XMLParser(no_network=True, resolve_entities=False))
    checked = schema()
    if not checked.validate(document):
        errors = "\n".join(f"line {error.line}: {error.message}" for error in checked.error_log)
        pytest.fail(f"FatturaPA not valid against the XSD 1.2.3:\n{errors}")


def assert_valid(xml: bytes) -> etree._Element:
    """The XSD and our own rules (fatturapa_rules.check) both pass; returns the parsed document."""
    validate(xml)
    assert check(xml) == []
    return etree.fromstring(xml)
