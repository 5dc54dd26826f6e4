"""The XML parts of Office and OpenDocument packages: rules for what to change, and the rewriter."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from xml.sax.expatreader import ExpatParser
from xml.sax.handler import ContentHandler
from xml.sax.saxutils import XMLGenerator
from xml.sax.xmlreader import AttributesImpl, InputSource

from whistle.services.cleaning.outcome import BeyondBounds

#: How deep the elements of an XML part may nest (libxml2's own limit; Office writes tens).
MAX_XML_DEPTH = 256

# The XML parts are rewritten with the standard library's SAX parser and
# XMLGenerator, not ElementTree: ElementTree renames namespace prefixes and
# drops unused declarations, and Office then refuses a part whose
# mc:Ignorable="w14 wp14" names a prefix that is no longer declared. SAX with
# namespace processing off hands over the names and declarations exactly as
# written, so only what the rules change is changed.

_DC = "http://purl.org/dc/elements/1.1/"
_DCTERMS = "http://purl.org/dc/terms/"
_CP = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
_EXTENDED = (
    "http://schemas.openxmlformats.org/officeDocument/2006/extended-properties",
    "http://purl.oclc.org/ooxml/officeDocument/extendedProperties",
)
_CUSTOM = (
    "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties",
    "http://purl.oclc.org/ooxml/officeDocument/customProperties",
)
_WORD = (
    "http://schemas.openxmlformats.org/wordprocessingml/2006/main",
    "http://purl.oclc.org/ooxml/wordprocessingml/main",
)
_WORD_2012 = "http://schemas.microsoft.com/office/word/2012/wordml"
_SHEET = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",
)
_SHEET_PERSONS = "http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments"
_SLIDES = (
    "http://schemas.openxmlformats.org/presentationml/2006/main",
    "http://purl.oclc.org/ooxml/presentationml/main",
)
_SLIDES_AUTHORS = "http://schemas.microsoft.com/office/powerpoint/2018/8/main"
_RELATIONSHIP = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_ATTACHED_TEMPLATE = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/attachedTemplate",
    "http://purl.oclc.org/ooxml/officeDocument/relationships/attachedTemplate",
)
_ODF_META = "urn:oasis:names:tc:opendocument:xmlns:meta:1.0"
_XML = "http://www.w3.org/XML/1998/namespace"


@dataclass(frozen=True)
class _Rules:
    """What to change in an XML part; names are "{namespace}local"."""

    #: Elements removed with everything in them (optional elements: better absent than empty).
    remove: frozenset[str]
    #: Elements whose text is replaced.
    text: Mapping[str, str]
    #: (element or "*", attribute) -> the value that replaces the attribute's.
    attributes: Mapping[tuple[str, str], str]
    #: Relationship types whose target is replaced.
    targets: Mapping[str, str]
    #: Local names, one of which a part must contain for a rule to apply. XML
    #: names cannot be escaped, so a part without any of them is left as it is.
    triggers: tuple[bytes, ...]


def _rules(
    remove: frozenset[str] = frozenset(),
    text: Mapping[str, str] | None = None,
    attributes: Mapping[tuple[str, str], str] | None = None,
    targets: Mapping[str, str] | None = None,
) -> _Rules:
    text = text or {}
    attributes = attributes or {}
    targets = targets or {}
    names = {*remove, *text, *(attribute if element == "*" else element for element, attribute in attributes)}
    if targets:
        names.add(_RELATIONSHIP)
    triggers = tuple(sorted({name.rsplit("}", 1)[-1].encode() for name in names}))
    return _Rules(remove, text, attributes, targets, triggers)


def _person(element: str, *pairs: tuple[str, str]) -> dict[tuple[str, str], str]:
    return {(element, attribute): value for attribute, value in pairs}


_OOXML_RULES = _rules(
    remove=frozenset(
        {
            *(f"{{{_DC}}}{name}" for name in ("creator", "description", "subject", "title", "identifier")),
            *(f"{{{_DCTERMS}}}{name}" for name in ("created", "modified")),
            *(
                f"{{{_CP}}}{name}"
                for name in (
                    "lastModifiedBy",
                    "keywords",
                    "category",
                    "contentStatus",
                    "revision",
                    "lastPrinted",
                )
            ),
            *(
                f"{{{namespace}}}{name}"
                for namespace in _EXTENDED
                for name in ("Company", "Manager", "Template", "HyperlinkBase")
            ),
            *(f"{{{namespace}}}property" for namespace in _CUSTOM),
        }
    ),
    text={f"{{{namespace}}}author": "Author" for namespace in _SHEET},  # the authors of Excel's notes
    attributes={
        # Comments and tracked changes in Word.
        **{("*", f"{{{namespace}}}author"): "Author" for namespace in _WORD},
        **{("*", f"{{{namespace}}}initials"): "A" for namespace in _WORD},
        # Word's list of people (people.xml), with their account ids.
        ("*", f"{{{_WORD_2012}}}author"): "Author",
        **_person(
            f"{{{_WORD_2012}}}presenceInfo",
            (f"{{{_WORD_2012}}}userId", "Author"),
            (f"{{{_WORD_2012}}}providerId", "None"),
        ),
        # Excel's threaded comments (persons/person.xml).
        **_person(
            f"{{{_SHEET_PERSONS}}}person",
            ("displayName", "Author"),
            ("userId", "Author"),
            ("providerId", "None"),
        ),
        # PowerPoint's comment authors, old (commentAuthors.xml) and new (authors.xml).
        **{(f"{{{namespace}}}cmAuthor", "name"): "Author" for namespace in _SLIDES},
        **{(f"{{{namespace}}}cmAuthor", "initials"): "A" for namespace in _SLIDES},
        **_person(
            f"{{{_SLIDES_AUTHORS}}}author",
            ("name", "Author"),
            ("initials", "A"),
            ("userId", "Author"),
            ("providerId", "None"),
        ),
    },
    targets=dict.fromkeys(_ATTACHED_TEMPLATE, "Normal.dotm"),
)
_ODF_META_RULES = _rules(
    remove=frozenset(
        {
            *(f"{{{_DC}}}{name}" for name in ("creator", "description", "subject", "title", "date")),
            *(
                f"{{{_ODF_META}}}{name}"
                for name in (
                    "initial-creator",
                    "printed-by",
                    "keyword",
                    "user-defined",
                    "creation-date",
                    "print-date",
                    "template",
                )
            ),
        }
    )
)
#: Comments (office:annotation) and tracked changes (office:change-info) in the body.
_ODF_BODY_RULES = _rules(text={f"{{{_DC}}}creator": "Author", f"{{{_ODF_META}}}creator-initials": "A"})


def rules_for(kind: str, name: str) -> _Rules | None:
    """The rules for an entry, or None for an entry that is not XML."""
    if not name.endswith((".xml", ".rels")):
        return None
    if kind in ("odt", "ods", "odp"):
        return _ODF_META_RULES if PurePosixPath(name).name == "meta.xml" else _ODF_BODY_RULES
    return _OOXML_RULES


def rewrite_xml(part: bytes, rules: _Rules) -> bytes | None:
    """The part with the rules applied, or None if there was nothing to change."""
    if b"\x00" in part:
        # UTF-16 or UTF-32 (or not XML): the triggers below could not see the names.
        raise ValueError("an XML part is not UTF-8")
    if not any(trigger in part for trigger in rules.triggers):
        return None
    if b"<!DOCTYPE" in part or b"<!ENTITY" in part:
        raise ValueError("document type declarations are refused")  # entity expansion
    out = io.BytesIO()
    rewriter = _Rewriter(XMLGenerator(out, "utf-8", short_empty_elements=True), rules)
    parser = ExpatParser()  # not xml.sax.make_parser(), which the environment can redirect
    parser.setContentHandler(rewriter)
    source = InputSource()
    source.setByteStream(io.BytesIO(part))
    source.setEncoding("utf-8")  # overrides the declaration: the DOCTYPE check above saw UTF-8
    parser.parse(source)
    return out.getvalue() if rewriter.changed else None


def _clark(qname: str, scope: Mapping[str, str], *, attribute: bool) -> str:
    """A prefixed name as "{namespace}local"; an unprefixed attribute has no namespace."""
    prefix, _, local = qname.rpartition(":")
    namespace = scope.get(prefix, "") if prefix or not attribute else ""
    return f"{{{namespace}}}{local}" if namespace else local


class _Rewriter(ContentHandler):
    """Copies SAX events to an XMLGenerator, applying the rules on the way.

    The content of a removed element, or of one whose text is replaced, is
    "hidden": not written, only remembered, to tell whether anything changed.
    """

    def __init__(self, out: XMLGenerator, rules: _Rules) -> None:
        super().__init__()
        self._out = out
        self._rules = rules
        self._scopes: list[dict[str, str]] = [{"xml": _XML}]
        self._hidden = 0  # depth inside a hidden element
        self._closing: str | None = None  # a replaced element, to close when its content ends
        self._replacement = ""
        self._seen: list[str] = []
        self.changed = False

    def startDocument(self) -> None:
        self._out.startDocument()

    def endDocument(self) -> None:
        self._out.endDocument()

    def processingInstruction(self, target: str, data: str) -> None:
        if not self._hidden:
            self._out.processingInstruction(target, data)

    def characters(self, content: str) -> None:
        if self._hidden:
            self._seen.append(content)
        else:
            self._out.characters(content)

    def startElement(self, name: str, attrs: AttributesImpl) -> None:
        if len(self._scopes) + self._hidden > MAX_XML_DEPTH:
            raise BeyondBounds("the elements of an XML part are nested too deep")
        if self._hidden:
            self._hidden += 1
            self._seen.append("<")  # content that is more than text
            return
        values = dict(attrs.items())
        scope = dict(self._scopes[-1])
        for qname, value in values.items():
            if qname == "xmlns" or qname.startswith("xmlns:"):
                scope[qname[6:]] = value
        self._scopes.append(scope)
        tag = _clark(name, scope, attribute=False)
        if tag in self._rules.remove:
            self._hide(None, "")
            self._seen.append("@" * len(values))  # attributes are content too (a template's path)
            return
        self._out.startElement(name, AttributesImpl(self._attributes(tag, values, scope)))
        replacement = self._rules.text.get(tag)
        if replacement is not None:
            self._out.characters(replacement)
            self._hide(name, replacement)

    def endElement(self, name: str) -> None:
        if self._hidden:
            self._hidden -= 1
            if self._hidden:
                return
            hidden = "".join(self._seen)
            if self._closing is None:
                self.changed |= bool(hidden.strip())
            else:
                self.changed |= hidden != self._replacement
                self._out.endElement(self._closing)
        else:
            self._out.endElement(name)
        self._scopes.pop()

    def _hide(self, closing: str | None, replacement: str) -> None:
        self._hidden = 1
        self._closing = closing
        self._replacement = replacement
        self._seen = []

    def _attributes(self, tag: str, values: dict[str, str], scope: Mapping[str, str]) -> dict[str, str]:
        rules = self._rules
        target = rules.targets.get(values.get("Type", "")) if tag == _RELATIONSHIP else None
        result: dict[str, str] = {}
        for qname, value in values.items():
            name = _clark(qname, scope, attribute=True)
            new = rules.attributes.get((tag, name), rules.attributes.get(("*", name)))
            if name == "Target" and target is not None:
                new = target
            if new is not None and new != value:
                self.changed = True
                value = new
            result[qname] = value
        return result
