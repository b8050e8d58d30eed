"""XML as providers send it, with DTDs and entities refused (defusedxml's rules): as a tree
(:func:`parse_xml`), or through expat's callbacks in one pass (:func:`expat_parser`,
:func:`feed`) for a parser that reads a document straight into its own values."""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError
from xml.etree.ElementTree import fromstring as xml_fromstring
from xml.parsers.expat import ExpatError, ParserCreate, XMLParserType

from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)
from defusedxml.ElementTree import fromstring

from core.errors import PayloadError
from parsers.text import UTF8_BOM


def parse_xml(document: bytes | str) -> Element:
    """XML through defusedxml with DTDs forbidden: entity expansion ("billion laughs"), external
    entities and quadratic blow-up are refused before anything is expanded.

    A document that cannot hold a DTD (:func:`_without_dtd`), as providers send them, goes to
    the standard parser instead: the same expat builds the same tree, in C and twice as fast.
    """
    try:
        if _without_dtd(document):  # so nothing for defusedxml to refuse
            return xml_fromstring(document)  # noqa: S314
        root: Element = fromstring(document, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise _refused(exc) from exc
    except (ParseError, ValueError) as exc:
        raise PayloadError(f"invalid XML: {exc}", reason="invalid_xml") from exc
    return root


def expat_parser() -> XMLParserType:
    """An expat parser set up as :func:`parse_xml`'s: names as ElementTree gives them once
    ``"{"`` is put before a namespaced one (``uri}local``: see :func:`universal`), and a DTD,
    an entity declaration or an external entity refused the moment expat meets it, by the
    handlers defusedxml sets (``forbid_dtd=True``). Text comes in one call per run
    (``buffer_text``). Set the handlers of the reading, then :func:`feed` it the document."""
    if len(_NAMES) > _NAMES_KEPT:  # bounded: names are the sender's choice
        _NAMES.clear()
    parser = ParserCreate(None, "}", intern=_NAMES)
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_unparsed_entity
    parser.ExternalEntityRefHandler = _refuse_external_entity
    return parser


_NAMES: dict[str, str] = {}
"""The names expat has met, shared by every parser: a document's element and attribute names
are the strings of the documents before it (made once, their hashes known), not new ones."""
_NAMES_KEPT = 4096


def feed(parser: XMLParserType, document: bytes | str) -> None:
    """The whole ``document`` through ``parser``; what :func:`parse_xml` refuses is refused
    with the same reasons (``forbidden_xml``, ``invalid_xml``). An exception of the reading's
    own handlers goes through as it is."""
    try:
        parser.Parse(document, True)
    except DefusedXmlException as exc:
        raise _refused(exc) from exc
    except (ExpatError, ValueError) as exc:
        raise PayloadError(f"invalid XML: {exc}", reason="invalid_xml") from exc


def universal(name: str) -> str:
    """An expat name as ElementTree writes it: ``{uri}local`` for a namespaced one (expat gives
    ``uri}local``; a name itself cannot hold ``}``)."""
    return "{" + name if "}" in name else name


def _refused(exc: DefusedXmlException) -> PayloadError:
    return PayloadError(f"refused XML construct: {type(exc).__name__}", reason="forbidden_xml")


def _refuse_dtd(name: str, sysid: str | None, pubid: str | None, internal: bool) -> None:
    raise DTDForbidden(name, sysid, pubid)


def _refuse_entity(
    name: str,
    is_parameter: bool,
    value: str | None,
    base: str | None,
    sysid: str | None,
    pubid: str | None,
    notation: str | None,
) -> None:
    raise EntitiesForbidden(name, value, base, sysid, pubid, notation)


def _refuse_unparsed_entity(
    name: str, base: str | None, sysid: str, pubid: str | None, notation: str
) -> None:
    raise EntitiesForbidden(name, None, base, sysid, pubid, notation)


def _refuse_external_entity(
    context: str, base: str | None, sysid: str | None, pubid: str | None
) -> int:
    raise ExternalReferenceForbidden(context, base, sysid, pubid)


_PLAIN_XML_DECLARATION = re.compile(
    rb"<\?xml\s+version\s*=\s*(['\"])1\.[0-9]+\1"
    rb"(?:\s+encoding\s*=\s*(['\"])(?i:utf-8|us-ascii|iso-8859-1)\2)?"
    rb"(?:\s+standalone\s*=\s*(['\"])(?:yes|no)\3)?\s*\?>"
)
"""An XML declaration naming no encoding, or one where ``<!`` can only be the bytes ``<!``."""


def _without_dtd(document: bytes | str) -> bool:
    """``document`` has no ``<!DOCTYPE`` (nor comment or CDATA: no ``<!`` at all), for sure.

    Text is read as it is (expat ignores its declared encoding). Bytes are read in UTF-8 unless a
    BOM or the XML declaration says otherwise: any NUL byte (UTF-16 and UTF-32 put one in every
    ``<``) or declaration other than a plain UTF-8, ASCII or Latin-1 one, and the document is
    left to defusedxml.
    """
    if isinstance(document, str):
        return "<!" not in document
    if b"<!" in document or b"\x00" in document:
        return False
    start = document.removeprefix(UTF8_BOM)
    return not start.startswith(b"<?xml") or _PLAIN_XML_DECLARATION.match(start) is not None
