"""DMC's XML dialect (the seed's) read in one pass of expat's callbacks, straight into the
:class:`Report` that ``parsers.dmc_dialects`` reads JSON into: no tree is built and walked.

What it gives is what reading the ElementTree of the document gives (a test holds the two
together on generated documents): per media element (a child of the root), its attributes
(``fields``), those of its children named ``status`` (``history``), of its first descendant
``vxml_info`` and ``transfer`` (in document order, beside the statuses as in section 2.9.5 or
inside one as in 2.9), and the element as JSON for ``raw``: ``@name`` for attributes, a list
per child name (in the order the names first come), ``#text`` for the text before the first
child when it is not blank. Names are ElementTree's (``{uri}local`` in a namespace).

Refused, with the reasons of the tree's reading: what :func:`parsers.xml.feed` refuses (DTDs,
entities, XML that is not well-formed) first, then a root other than ``status_report``, then in
document order an unknown medium or an element nested deeper than any report DMC sends.
"""

from __future__ import annotations

from core.errors import PayloadError
from core.models import Channel
from core.vocabulary import JsonValue
from parsers.dmc_dialects import MAX_DEPTH, Medium, Report, medium_channel
from parsers.xml import expat_parser, feed, universal

_ROOT, _MEDIUM = 1, 2
"""The depths of the root element and of the media elements (expat's count, the root is 1)."""


def xml_report(body: bytes) -> Report:
    reading = _Reading()
    parser = expat_parser()
    parser.StartElementHandler = reading.start
    parser.EndElementHandler = reading.end
    parser.CharacterDataHandler = reading.characters
    parser.StartNamespaceDeclHandler = reading.namespace
    feed(parser, body)
    if reading.error is not None:
        raise reading.error
    return Report(reading.username, reading.media)


class _Reading:
    """One document's reading: the handlers, and what they have read so far."""

    __slots__ = (
        "channel",
        "chars",
        "depth",
        "error",
        "fields",
        "fresh",
        "header",
        "history",
        "media",
        "namespaced",
        "nodes",
        "tag",
        "texts",
        "transfer",
        "username",
        "vxml",
    )

    def __init__(self) -> None:
        self.depth = 0
        self.namespaced = False
        """A namespace was declared: names may be ``uri}local`` (:func:`universal`)."""
        self.error: PayloadError | None = None
        """The first refusal met; the document is still read to its end (well-formed?)."""
        self.username: str | None = None
        self.header: dict[str, JsonValue] = {}
        self.media: list[Medium] = []
        # the medium being read
        self.tag = ""
        self.channel = Channel.SMS
        self.fields: dict[str, str] = {}
        self.history: list[dict[str, str]] = []
        self.vxml: dict[str, str] | None = None
        self.transfer: dict[str, str] | None = None
        # the raw JSON of the elements open from the medium down, and their texts
        self.nodes: list[dict[str, JsonValue]] = []
        self.texts: list[str] = []
        self.chars = ""
        """The text of the innermost open element, while it has no child (``fresh``)."""
        self.fresh = False

    def namespace(self, prefix: str | None, uri: str | None) -> None:
        self.namespaced = True

    def start(self, name: str, attributes: dict[str, str]) -> None:
        self.depth = depth = self.depth + 1
        if self.error is not None:
            return
        if self.namespaced:  # rare: names as ElementTree gives them
            name = universal(name)
            attributes = {universal(k): v for k, v in attributes.items()}
        at = _AT
        node: dict[str, JsonValue] = {at.get(k) or _at(k): v for k, v in attributes.items()}
        if depth > _MEDIUM:  # the usual element: inside a medium
            if depth > MAX_DEPTH + 1:  # the medium is at depth 1 of MAX_DEPTH
                self.error = PayloadError("XML nested too deeply", reason="invalid_xml")
                return
            if name == "status":
                if depth == _MEDIUM + 1:
                    self.history.append(attributes)
            elif name == "vxml_info":
                if self.vxml is None:
                    self.vxml = attributes
            elif name == "transfer" and self.transfer is None:
                self.transfer = attributes
            if self.fresh:  # the parent's first child: the parent's text is complete
                self.texts[-1] = self.chars
            parent = self.nodes[-1]
            if name in parent:  # a list: names have no "@", and "#text" comes at the end
                parent[name].append(node)  # type: ignore[union-attr]
            else:
                parent[name] = [node]
        elif depth == _MEDIUM:
            channel = medium_channel(name)
            if channel is None:
                self.error = PayloadError(f"unknown medium {name[:40]!r}", reason="unknown_medium")
                return
            self.tag, self.channel, self.fields, self.history = name, channel, attributes, []
            self.vxml = self.transfer = None
        else:  # the root
            if name != "status_report":
                self.error = PayloadError(f"root element {name!r}", reason="unknown_document")
            self.username = attributes.get("username")
            self.header = node
            return
        self.nodes.append(node)
        self.texts.append("")
        self.chars = ""
        self.fresh = True

    def characters(self, text: str) -> None:
        if self.fresh:
            self.chars += text

    def end(self, name: str) -> None:
        depth = self.depth
        self.depth = depth - 1
        if self.error is not None or depth == _ROOT:
            return
        if self.fresh:  # no child: its text is what came since its start
            text = self.chars
            self.texts.pop()
            self.fresh = False  # what follows is the parent's, after a child: not its text
        else:
            text = self.texts.pop()
        node = self.nodes.pop()
        if text and not text.isspace():
            node["#text"] = text
        if depth == _MEDIUM:
            tag = self.tag
            raw = self.header.copy()
            raw[tag] = node
            self.media.append(
                Medium(
                    tag=tag,
                    channel=self.channel,
                    fields=self.fields,
                    history=self.history,
                    vxml=self.vxml,
                    transfer=self.transfer,
                    raw=raw,
                )
            )


_AT: dict[str, str] = {}
"""Attribute names as JSON keys (``@name``), made once for the names DMC sends: a lookup costs
less than making the key (and hashing it) for every attribute of every element."""
_AT_KEPT = 256


def _at(name: str) -> str:
    key = "@" + name
    if len(_AT) < _AT_KEPT:  # bounded: names are the sender's choice
        _AT[name] = key
    return key
