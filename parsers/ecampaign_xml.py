"""eCampaign's ``xml`` document read in one pass of expat's callbacks, straight into what its
events are made of: the import reports and the message groups. No tree is built and walked.

What it gives is what walking the document's ElementTree gives (a test holds the two together
on generated documents, ``tests/test_parser_ecampaign_xml.py``):

- a :data:`Report` per element named ``importFromXml``, in document order (the root too);
- then a :data:`Group` per message group: the children of any element that has a ``msgid``
  child, cut where a name comes again (``msgid``, ``state``, ``timestamp``, ``msgid``... make
  two), in the document order of their parents, then their own.

Names are matched without namespace and case; ``fields`` holds, per such name, the stripped
text of the first child of that name (the text before its own first child, as ElementTree's
``.text``). ``raw`` is the JSON of what was received: attributes and child elements side by side
by their names as ElementTree writes them (``{uri}local`` in a namespace), a repeated name as a
list, an element without children nor attributes as its text, ``#text`` for the text of one with
attributes and no children; ``None`` when it would go deeper than :data:`MAX_DEPTH` (the tree's
walk refused it there, ``invalid_xml``, when it made the event: the caller refuses it at the same
point). What :func:`parsers.xml.feed` refuses (DTDs, entities, XML that is not well-formed) is
refused with its reasons.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any, TypeVar

from core.vocabulary import JsonValue
from parsers.xml import expat_parser, feed, universal

MAX_DEPTH = 20
"""How deep ``raw`` follows nested elements; the documented callbacks have three levels."""

Fields = dict[str, str]
"""Lower-cased local element names → stripped text, for reading."""
Report = tuple[Fields, list[JsonValue], dict[str, JsonValue] | None]
"""An ``importFromXml`` element: its children's ``fields``, the texts of the ``error`` children
of its ``errors`` children, its ``raw`` (attributes and children)."""
Group = tuple[Fields, dict[str, JsonValue] | None]
"""One message: ``fields`` of its elements, ``raw`` (its parent's attributes and its elements)."""

_Node = tuple[str, str, str, JsonValue, int, "list[_Node] | None"]
"""A closed element as its parent needs it: name (ElementTree's), name for reading (local,
lower-cased), text, JSON (``raw``), depth (the deepest level of its subtree holding an element
with children or attributes, itself 0, -1 when it has neither), children (``None``: none)."""


_T = TypeVar("_T")


def read(document: str) -> tuple[list[Report], list[Group]]:
    reading = _Reading()
    parser = expat_parser()
    parser.StartElementHandler = reading.start
    parser.EndElementHandler = reading.end
    parser.CharacterDataHandler = reading.characters
    parser.StartNamespaceDeclHandler = reading.namespace
    feed(parser, document)
    return _in_order(reading.reports), _in_order(reading.groups)


def _in_order(found: list[tuple[int, list[_T]]]) -> list[_T]:
    """What was found where elements end, in the order in which they start."""
    if len(found) == 1:
        return found[0][1]
    found.sort(key=_first)
    return [item for _, items in found for item in items]


def _first(item: tuple[int, object]) -> int:
    return item[0]


class _Reading:
    """One document's reading: the handlers, and what they have read so far."""

    __slots__ = ("chars", "fresh", "groups", "namespaced", "reports", "stack", "started")

    def __init__(self) -> None:
        self.namespaced = False
        """A namespace was declared: names may be ``uri}local`` (:func:`universal`)."""
        self.stack: list[list[Any]] = []
        """The open elements, each a list (cheaper to build than an object): name, attributes,
        children (``None`` until the first one), text, start number, has a ``msgid`` child,
        depth (as in :data:`_Node`, so far)."""
        self.started = 0
        """Elements started so far: each one's number is its place in document order."""
        self.chars = ""
        """The text of the innermost open element, while it has no child (``fresh``)."""
        self.fresh = False
        self.reports: list[tuple[int, list[Report]]] = []
        self.groups: list[tuple[int, list[Group]]] = []

    def namespace(self, prefix: str | None, uri: str | None) -> None:
        self.namespaced = True

    def start(self, name: str, attributes: dict[str, str]) -> None:
        if self.namespaced:  # rare: names as ElementTree gives them
            name = universal(name)
            attributes = {universal(k): v for k, v in attributes.items()}
        if self.fresh:  # the parent's first child: the parent's text is complete
            parent = self.stack[-1]
            parent[2] = []
            parent[3] = self.chars
        self.started += 1
        depth = 0 if attributes else -1
        self.stack.append([name, attributes, None, "", self.started, False, depth])
        self.chars = ""
        self.fresh = True

    def characters(self, text: str) -> None:
        if self.fresh:
            self.chars += text

    def end(self, name: str) -> None:
        stack = self.stack
        tag: str
        attributes: dict[str, str]
        children: list[_Node] | None
        tag, attributes, children, text, started, messages, depth = stack.pop()
        if self.fresh:
            text = self.chars
            self.fresh = False  # what follows is the parent's, after a child: not its text
        key = (tag.rpartition("}")[2] if self.namespaced else tag).lower()
        content: JsonValue
        if children is None:
            content = {**attributes, "#text": text} if attributes else text
            if key == "importfromxml":
                self.reports.append((started, [({}, [], dict(attributes))]))
        else:
            content = raw = _merged(attributes, children)
            if messages:
                self.groups.append((started, _groups(attributes, children, raw, depth)))
            if key == "importfromxml":
                self.reports.append((started, [_report(children, raw, depth)]))
        if stack:
            parent = stack[-1]
            parent[2].append((tag, key, text, content, depth, children))
            if depth >= parent[6]:
                parent[6] = depth + 1
            if key == "msgid":
                parent[5] = True


def _merged(attributes: dict[str, str], nodes: list[_Node]) -> dict[str, JsonValue]:
    """Attributes and the elements' JSON side by side; a repeated name gives a list."""
    if not attributes:
        raw: dict[str, JsonValue] = {node[0]: node[3] for node in nodes}
        if len(raw) == len(nodes):  # no name repeated: the usual document
            return raw
    raw = dict(attributes)
    for tag, _, _, content, _, _ in nodes:
        if tag not in raw:
            raw[tag] = content
            continue
        previous = raw[tag]
        raw[tag] = [*previous, content] if isinstance(previous, list) else [previous, content]
    return raw


def _report(children: list[_Node], raw: dict[str, JsonValue], depth: int) -> Report:
    fields: Fields = {}
    errors: list[JsonValue] = []
    for _, key, text, _, _, below in children:
        if key not in fields:
            fields[key] = text.strip()
        if key == "errors" and below is not None:
            errors += [node[2].strip() for node in below if node[1] == "error"]
    return fields, errors, None if depth > MAX_DEPTH else raw


def _groups(
    attributes: dict[str, str], children: list[_Node], raw: dict[str, JsonValue], depth: int
) -> list[Group]:
    """The messages among ``children`` (``raw``, ``depth``: their parent's): a new one starts
    where a name comes again."""
    fields = {node[1]: node[2].strip() for node in children}
    if len(fields) == len(children):  # no name comes again: one message, all of the parent
        return [(fields, None if depth > MAX_DEPTH else raw)]
    cuts = [0]
    seen: set[str] = set()
    for at, node in enumerate(children):
        if node[1] in seen:
            cuts.append(at)
            seen = set()
        seen.add(node[1])
    cuts.append(len(children))
    groups: list[Group] = []
    for begin, end in pairwise(cuts):
        nodes = children[begin:end]
        fields = {node[1]: node[2].strip() for node in nodes}  # names differ in a group
        deep = max(node[4] for node in nodes) + 1 > MAX_DEPTH
        groups.append((fields, None if deep else _merged(attributes, nodes)))
    return groups
