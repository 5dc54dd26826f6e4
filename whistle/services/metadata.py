"""Removing identifying metadata from evidence before it is sealed.

A photo can carry the phone that took it and the place and time it was taken;
an Office document, the names of its author and of everyone who commented on
it; a PDF, its author and the software it came from. An employer hunting the
reporter (threat model, item 3) reads these first, so known formats are
cleaned here, with well-kept libraries and no parser of our own:

* Images (JPEG, PNG, WebP, TIFF, GIF) are decoded with Pillow and only their
  pixels are encoded again: EXIF (with GPS and the embedded thumbnail), XMP,
  IPTC, comments and PNG text chunks do not survive. The EXIF orientation is
  applied to the pixels first, so a photo does not come out sideways. The ICC
  colour profile and the resolution are kept. Every frame of an animated GIF,
  PNG or WebP and every page of a TIFF is kept; of a JPEG only the main
  picture (the extra pictures of an MPO file are previews or depth maps).
  JPEG and WebP are encoded again at quality 95, TIFF losslessly (deflate).
* PDFs are copied with pypdf without the document information dictionary,
  the XMP metadata streams of the catalogue and of each page, application
  data (/PieceInfo) and the file identifier (a fresh random one is written);
  the author names of comments (annotations, not form fields) become
  "Author".
* Office Open XML (docx, xlsx, pptx) and OpenDocument (odt, ods, odp) are ZIP
  packages of XML parts. The package is rewritten in memory with `zipfile`:
  the document properties (author, last editor, company, manager, template,
  title, subject, keywords, description, dates, custom properties) are
  removed, the authors and initials of comments and tracked changes are
  replaced by "Author" and "A", and Word's link to its template (a path that
  names the user's folder) becomes "Normal.dotm". Parts that hold none of
  these keep their exact bytes. Entry dates, extra fields and comments of the
  ZIP itself are not kept. Every entry is compressed again, so the copy is
  about the size of what was sent; only an OpenDocument package's `mimetype`
  stays uncompressed, as its first entry. What the entries inflate to is
  counted as they are read, and bounded (see ZIP_RATIO).

What is *not* cleaned, so the reporter should still be warned: the visible
content (a name in the text, a face in a photo), pictures embedded inside
Office documents and PDFs (they keep their own EXIF), attachments inside a PDF,
Word's revision-session ids and printer settings.

Every check here bounds what a file can cost (pixels, nesting, what a package
inflates to); the web side also runs the cleaning itself in a child process
whose memory and CPU time the system bounds (see sandbox.py).

The upload arrives as a read-once stream: it is read only with ``read(n)``,
at most ``max_bytes + 1`` bytes are held in memory (none beyond the first
kilobyte for a type no cleaner reads, such as a video), and nothing is ever
written to disk. Whatever cannot be cleaned (an unknown type, a file over the
limit, a file that does not parse, a ZIP or image that would take more memory
or time to clean than a file may) comes back byte for byte as it arrived, with
a status that says why: evidence is never lost.

This module logs nothing: a log line written while an upload is cleaned would
date that upload. For the same reason pypdf, which reports malformed files
through `logging`, is silenced below, and library warnings are ignored while
a file is cleaned (only Pillow's DecompressionBombWarning is raised, and
refused).
"""

from __future__ import annotations

import enum
import io
import logging
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO, TYPE_CHECKING, Any, cast
from xml.sax.expatreader import ExpatParser
from xml.sax.handler import ContentHandler
from xml.sax.saxutils import XMLGenerator
from xml.sax.xmlreader import AttributesImpl, InputSource

from PIL import Image, ImageOps, ImageSequence
from PIL.GifImagePlugin import GifImageFile
from PIL.JpegImagePlugin import JpegImageFile
from PIL.PngImagePlugin import PngImageFile
from PIL.TiffImagePlugin import TiffImageFile
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, TextStringObject

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "MAX_CLEAN_BYTES",
    "CleanStatus",
    "Cleaned",
    "Cleaner",
    "Outcome",
    "clean",
    "clean_bytes",
    "public_kind",
    "warning_for",
]

_pypdf_log = logging.getLogger("pypdf")
_pypdf_log.addHandler(logging.NullHandler())
_pypdf_log.propagate = False

#: Files larger than this are stored as they are: cleaning happens in memory.
MAX_CLEAN_BYTES = 64 * 1024 * 1024
#: All frames or pages of one image together, counted before any is decoded: a 48-megapixel
#: photo fits. Decoding takes 3 or 4 bytes a pixel, and each step of cleaning a copy.
MAX_PIXELS = 50_000_000
#: A ZIP package may inflate to this many times the cleaning limit in all (an XML part, to
#: the limit itself), in at most so many entries. What is inflated is counted as it is read.
ZIP_EXPANSION = 10
#: ... and to no more than this many times its own size: real documents inflate
#: a few times, tens of times for a plain spreadsheet; a ZIP bomb, a thousand.
ZIP_RATIO = 100
MAX_ZIP_ENTRIES = 10_000
#: How deep the elements of an XML part may nest (libxml2's own limit; Office writes tens).
MAX_XML_DEPTH = 256

_READ_CHUNK = 1024 * 1024
#: How much of a file's start tells its type (see _sniff).
_SNIFF_BYTES = 1024
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class CleanStatus(enum.StrEnum):
    #: Identifying metadata was removed.
    CLEANED = "cleaned"
    #: A supported type, with nothing to remove (still rewritten, or passed through).
    NOTHING_FOUND = "nothing_found"
    #: The reporter asked to keep the file exactly as it is.
    KEPT = "kept"
    #: A type we cannot clean: stored as it is.
    UNSUPPORTED = "unsupported"
    #: Larger than the cleaning limit: stored as it is.
    TOO_LARGE = "too_large"
    #: Looked like a supported type but could not be parsed: stored as it is.
    FAILED = "failed"
    #: Would take more memory or time to clean than a file may (a ZIP or image bomb): stored as it is.
    OVER_BOUNDS = "over_bounds"


@dataclass(frozen=True)
class Cleaned:
    #: The bytes to seal: the cleaned copy, or the original bytes, positioned for reading.
    stream: IO[bytes]
    status: CleanStatus
    #: "jpeg", "png", "webp", "tiff", "gif", "pdf", "docx", "xlsx", "pptx", "odt", "ods", "odp", or "".
    kind: str


class _Unsupported(Exception):
    """A type we recognise but do not clean (an encrypted PDF, a camera raw file, a plain ZIP)."""


class _BeyondBounds(Exception):
    """Cleaning the file would take more memory or time than a file may."""


@dataclass(frozen=True)
class Outcome:
    """What cleaning the whole bytes of a file came to."""

    status: CleanStatus
    kind: str
    #: The cleaned copy, or None when the bytes are to be kept as they came.
    cleaned: bytes | None = None


#: Cleans the bytes of a file whose start announced `kind`, within `max_bytes`:
#: `clean_bytes` itself, or the same in a child process (see sandbox.py).
Cleaner = Callable[[bytes, str, int], Outcome]


def clean(
    stream: IO[bytes],
    *,
    keep_original: bool = False,
    max_bytes: int = MAX_CLEAN_BYTES,
    cleaner: Cleaner | None = None,
) -> Cleaned:
    """Remove identifying metadata from an upload, or say why it stays as it is.

    `stream` is read forward only, with ``read(n)``. With `keep_original`
    (the reporter's explicit choice) it is returned untouched and unread.
    Errors raised by `stream` itself (an upload over the size limit, say)
    are not caught. The bytes of a type that can be cleaned are handed to
    `cleaner` (by default `clean_bytes`, in this process).
    """
    if keep_original:
        return Cleaned(stream, CleanStatus.KEPT, "")
    head = _read_at_most(stream, min(_SNIFF_BYTES, max_bytes + 1))
    kind = _sniff(head)
    if not kind:
        # No cleaner reads this type: pass it on as it comes, without holding it in memory.
        return Cleaned(io.BufferedReader(_Chained(head, stream)), CleanStatus.UNSUPPORTED, "")
    data = head + _read_at_most(stream, max_bytes + 1 - len(head))
    if len(data) > max_bytes:
        return Cleaned(io.BufferedReader(_Chained(data, stream)), CleanStatus.TOO_LARGE, public_kind(kind))
    outcome = (cleaner or clean_bytes)(data, kind, max_bytes)
    kept = data if outcome.cleaned is None else outcome.cleaned
    return Cleaned(io.BytesIO(kept), outcome.status, outcome.kind)


def clean_bytes(data: bytes, kind: str, max_bytes: int) -> Outcome:
    """Clean the whole bytes of a file whose start announced `kind` (see _sniff)."""
    try:
        with _library_warnings_quiet():
            if kind == "zip":
                with zipfile.ZipFile(io.BytesIO(data)) as package:
                    kind = _package_kind(package)
                    if not kind:
                        raise _Unsupported
                    cleaned, found = _clean_package(package, kind, len(data), max_bytes)
            elif kind == "pdf":
                cleaned, found = _clean_pdf(data)
            else:
                cleaned, found = _clean_image(data, kind)
    except _Unsupported:
        return Outcome(CleanStatus.UNSUPPORTED, public_kind(kind))
    except (_BeyondBounds, MemoryError, Image.DecompressionBombWarning, Image.DecompressionBombError):
        return Outcome(CleanStatus.OVER_BOUNDS, public_kind(kind))
    except Exception:
        # Hostile or broken files make these libraries raise nearly anything
        # (OSError, ValueError, SyntaxError, KeyError, RecursionError, ...).
        # Whatever it was, the evidence is kept exactly as it came.
        return Outcome(CleanStatus.FAILED, public_kind(kind))
    return Outcome(CleanStatus.CLEANED if found else CleanStatus.NOTHING_FOUND, kind, cleaned)


# --- reading the upload --------------------------------------------------------


def _read_at_most(stream: IO[bytes], limit: int) -> bytes:
    buffer = io.BytesIO()
    remaining = limit
    while remaining > 0:
        chunk = stream.read(min(remaining, _READ_CHUNK))
        if not chunk:
            break
        buffer.write(chunk)
        remaining -= len(chunk)
    return buffer.getvalue()


class _Chained(io.RawIOBase):
    """The bytes already read, then the rest of the read-once stream they came from."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        if self._head:
            size = min(len(target), len(self._head))
            target[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        chunk = self._rest.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)


_SIGNATURES = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"PK\x03\x04", "zip"),  # told apart later: docx, xlsx, pptx, odt, ods, odp
)


def _sniff(head: bytes) -> str:
    """The type that the first bytes announce, whatever the file is called."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if b"%PDF-" in head[:1024]:  # readers accept a little junk before the header
        return "pdf"
    return ""


def public_kind(kind: str) -> str:
    """The kind to report for a sniffed one: a ZIP that is no known package is just a file."""
    return "" if kind == "zip" else kind


@contextmanager
def _library_warnings_quiet() -> Iterator[None]:
    """Ignore library warnings, but refuse an image that would decompress into a bomb.

    `warnings.catch_warnings` is process-wide, so two threads cleaning at once
    may see each other's filters. Nothing depends on that alone: Pillow raises
    an error itself at twice its pixel limit, and `_clean_image` counts pixels.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


# --- images ----------------------------------------------------------------------

_PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tiff": "TIFF", "gif": "GIF"}
#: What an encoder needs from `info` and identifies no one; everything else is dropped.
_KEPT_INFO = ("icc_profile", "dpi", "transparency", "duration", "loop")
#: `info` entries that hold metadata.
_METADATA_INFO = ("exif", "xmp", "photoshop", "comment", "XML:com.adobe.xmp")
#: JPEG segments that hold no metadata: the JFIF header, an ICC profile, Adobe's colour transform.
_PLAIN_JPEG_SEGMENTS = (("APP0", b"JFIF\x00"), ("APP2", b"ICC_PROFILE\x00"), ("APP14", b"Adobe"))
#: TIFF tags that say who, where, when or with what: names, device, software,
#: dates, XMP, IPTC, Photoshop data, the EXIF and GPS directories, Windows' XP* tags.
_TIFF_METADATA_TAGS = (
    *(269, 270, 271, 272, 285, 305, 306, 315, 316, 700, 33432, 33723, 34377, 34665, 34853, 37724),
    *range(40091, 40096),
)
#: SubIFDs and DNGVersion: a camera raw file, whose first picture is only a preview.
_CAMERA_RAW_TAGS = (330, 50706)
#: GIF application extensions that only say how to loop.
_LOOP_EXTENSIONS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")


def _clean_image(data: bytes, kind: str) -> tuple[bytes, bool]:
    with Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[kind]]) as image:
        if isinstance(image, TiffImageFile) and any(tag in image.tag_v2 for tag in _CAMERA_RAW_TAGS):
            raise _Unsupported  # re-encoding would keep the preview and lose the picture
        found = False
        frames: list[Image.Image] = []
        pixels = 0
        for frame in ImageSequence.Iterator(image):
            pixels += frame.width * frame.height
            if pixels > MAX_PIXELS:
                raise _BeyondBounds("too many pixels")
            found |= _carries_metadata(frame)
            frames.append(_pixels_only(frame))
            if kind == "jpeg":
                break  # the main picture of an MPO file; the others are previews or depth maps
    out = io.BytesIO()
    frames[0].save(out, format=_PILLOW_FORMATS[kind], **_save_options(kind, frames))
    return out.getvalue(), found


def _carries_metadata(frame: Image.Image) -> bool:
    if any(key in frame.info for key in _METADATA_INFO):
        return True
    if isinstance(frame, JpegImageFile):
        return not all(_plain_segment(marker, body) for marker, body in frame.applist)
    if isinstance(frame, PngImageFile):
        return bool(frame.text)
    if isinstance(frame, TiffImageFile):
        return any(tag in frame.tag_v2 for tag in _TIFF_METADATA_TAGS)
    if isinstance(frame, GifImageFile):
        extension = frame.info.get("extension")
        return extension is not None and not bytes(extension[0]).startswith(_LOOP_EXTENSIONS)
    return False


def _plain_segment(marker: str, body: bytes) -> bool:
    return any(marker == name and body.startswith(start) for name, start in _PLAIN_JPEG_SEGMENTS)


def _pixels_only(frame: Image.Image) -> Image.Image:
    """A copy of the frame, upright, whose `info` keeps only what the encoder needs."""
    upright = ImageOps.exif_transpose(frame)
    upright.info = {key: frame.info[key] for key in _KEPT_INFO if key in frame.info}
    return upright


def _save_options(kind: str, frames: list[Image.Image]) -> dict[str, Any]:
    first = frames[0]
    options: dict[str, Any] = {key: first.info[key] for key in ("icc_profile", "dpi") if key in first.info}
    if kind in ("jpeg", "webp"):
        options["quality"] = 95
    elif kind == "tiff":
        options["compression"] = "tiff_adobe_deflate"
    if len(frames) > 1:
        options["save_all"] = True
        options["append_images"] = frames[1:]
        if kind != "tiff":
            options["duration"] = [frame.info.get("duration", 0) for frame in frames]
            if "loop" in first.info:
                options["loop"] = first.info["loop"]
    return options


# --- PDF ---------------------------------------------------------------------------


def _clean_pdf(data: bytes) -> tuple[bytes, bool]:
    """Prune the parsed document, then copy what is still reachable from its catalogue.

    Pruning before copying (rather than deleting from the copy) means that
    nothing removed can linger in the output as an unreferenced object.
    """
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise _Unsupported
    trailer = reader.trailer
    found = bool(reader.metadata)
    for key in ("/Info", "/ID"):
        if key in trailer:
            del trailer[key]
    found |= _drop(reader.root_object, "/Metadata", "/PieceInfo")
    for page in reader.pages:
        original = cast(DictionaryObject, cast(IndirectObject, page.indirect_reference).get_object())
        found |= _drop(original, "/Metadata", "/PieceInfo")
        found |= _anonymise_annotations(original)
    writer = PdfWriter(clone_from=reader)
    writer.generate_file_identifiers()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), found


def _drop(dictionary: DictionaryObject, *keys: str) -> bool:
    present = [key for key in keys if key in dictionary]
    for key in present:
        del dictionary[key]
    return bool(present)


def _anonymise_annotations(page: DictionaryObject) -> bool:
    """Give every comment the author "Author"; a form field's /T is its name, and stays."""
    changed = False
    for item in cast(ArrayObject, page.get("/Annots", ArrayObject()).get_object()):
        annotation = cast(DictionaryObject, item.get_object())
        if annotation.get("/Subtype") != "/Widget" and annotation.get("/T", "Author") != "Author":
            annotation[NameObject("/T")] = TextStringObject("Author")
            changed = True
    return changed


# --- Office Open XML and OpenDocument packages ---------------------------------------

_ODF_KINDS = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.presentation": "odp",
}
_ODF_MIMETYPES = {kind: mimetype for mimetype, kind in _ODF_KINDS.items()}
_OOXML_FOLDERS = (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx"))


def _package_kind(package: zipfile.ZipFile) -> str:
    """docx, xlsx, pptx, odt, ods, odp, or "" for any other ZIP."""
    entries = package.infolist()
    if entries and entries[0].filename == "mimetype":
        with package.open(entries[0]) as mimetype:
            kind = _ODF_KINDS.get(mimetype.read(100), "")
        if kind:
            return kind
    names = [entry.filename for entry in entries]
    if "[Content_Types].xml" in names:
        for folder, kind in _OOXML_FOLDERS:
            if any(name.startswith(folder) for name in names):
                return kind
    return ""


def _clean_package(package: zipfile.ZipFile, kind: str, sent: int, max_bytes: int) -> tuple[bytes, bool]:
    """The package rewritten, every entry compressed again, within bounds on what it inflates to.

    The sizes the entries declare are not trusted: what is inflated is counted
    as it is read, chunk by chunk, and reading stops as soon as a bound is
    passed. Every entry is compressed again (a stored one too, whatever its
    name), except OpenDocument's first ``mimetype``, which the format wants
    stored and which holds a few bytes. So the copy is about the size of what
    was sent.
    """
    entries = package.infolist()
    if len(entries) > MAX_ZIP_ENTRIES:
        raise _BeyondBounds("the package has too many entries")
    if len({entry.filename for entry in entries}) != len(entries):
        raise ValueError("two entries have the same name")  # which one would a reader open?
    budget = _Budget(min(ZIP_EXPANSION * max_bytes, ZIP_RATIO * sent))
    found = False
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as cleaned:
        for index, entry in enumerate(entries):
            fresh = zipfile.ZipInfo(entry.filename, date_time=_ZIP_EPOCH)
            fresh.external_attr = entry.external_attr
            if index == 0 and entry.filename == "mimetype" and kind in _ODF_MIMETYPES:
                fresh.compress_type = zipfile.ZIP_STORED
                cleaned.writestr(fresh, _ODF_MIMETYPES[kind])  # what _package_kind read there
                continue
            fresh.compress_type = zipfile.ZIP_DEFLATED
            rules = _rules_for(kind, entry.filename)
            if rules is None:
                with package.open(entry) as source, cleaned.open(fresh, "w") as target:
                    while chunk := source.read(_READ_CHUNK):
                        budget.spend(len(chunk))
                        target.write(chunk)
                continue
            part = _inflate(package, entry, max_bytes, budget)
            rewritten = _rewrite_xml(part, rules)
            found |= rewritten is not None
            cleaned.writestr(fresh, part if rewritten is None else rewritten)
    return out.getvalue(), found


class _Budget:
    """How many more bytes the entries of a package may inflate to."""

    def __init__(self, total: int) -> None:
        self.left = total

    def spend(self, size: int) -> None:
        self.left -= size
        if self.left < 0:
            raise _BeyondBounds("the package expands too far")


def _inflate(package: zipfile.ZipFile, entry: zipfile.ZipInfo, limit: int, budget: _Budget) -> bytes:
    """An entry's bytes, read in chunks, refused as soon as they pass `limit`."""
    buffer = io.BytesIO()
    with package.open(entry) as source:
        while chunk := source.read(_READ_CHUNK):
            budget.spend(len(chunk))
            if buffer.tell() + len(chunk) > limit:
                raise _BeyondBounds("an entry is too large to clean")
            buffer.write(chunk)
    return buffer.getvalue()


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


def _rules_for(kind: str, name: str) -> _Rules | None:
    """The rules for an entry, or None for an entry that is not XML."""
    if not name.endswith((".xml", ".rels")):
        return None
    if kind in ("odt", "ods", "odp"):
        return _ODF_META_RULES if PurePosixPath(name).name == "meta.xml" else _ODF_BODY_RULES
    return _OOXML_RULES


def _rewrite_xml(part: bytes, rules: _Rules) -> bytes | None:
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
            raise _BeyondBounds("the elements of an XML part are nested too deep")
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


# --- warnings by file name ------------------------------------------------------------------

_CLEANABLE = frozenset(
    {
        *(".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".tif", ".tiff", ".gif", ".pdf"),
        *(".docx", ".docm", ".xlsx", ".xlsm", ".pptx", ".pptm", ".odt", ".ods", ".odp"),
        # Plain text has no hidden details to remove.
        *(".txt", ".csv"),
    }
)
_STORED_AS_IS = "It will be stored exactly as you send it."
_PHOTO = (
    "Photos in this format can carry the phone or camera model and the time and place they were "
    f"taken, and we cannot remove that. {_STORED_AS_IS} To be safer, convert it to JPEG first, or "
    "take a screenshot of it and send the screenshot."
)
_RECORDING = (
    "Videos and sound recordings can carry the phone or camera model and the time and place they "
    f"were recorded, and we cannot remove that. {_STORED_AS_IS}"
)
_OLD_DOCUMENT = (
    "Documents in this format keep the author's name, the organisation and other hidden details, and "
    f"we cannot remove them. {_STORED_AS_IS} To be safer, save it as .docx, .xlsx, .pptx or PDF first "
    "and send that copy."
)
_ARCHIVE = (
    "We cannot look inside compressed folders to remove hidden details from the files in them. "
    f"{_STORED_AS_IS} To be safer, send the files one by one."
)
_EMAIL = (
    "Saved emails carry the names and addresses of the sender and recipients and details of the "
    f"mail servers they passed through, and we cannot remove them. {_STORED_AS_IS} To be safer, "
    "copy the parts that matter into your report instead."
)
_OTHER = (
    "We cannot remove hidden details from this type of file, such as the name of the person who made "
    f"it or the device it was made on. {_STORED_AS_IS} If that could identify you, convert it first: "
    "for example, save a document as PDF, or take a screenshot."
)
_WARNINGS = {
    **dict.fromkeys(
        (".heic", ".heif", ".avif", ".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".raf"), _PHOTO
    ),
    **dict.fromkeys((".mp4", ".mov", ".m4v", ".avi", ".mkv", ".webm", ".3gp", ".wmv", ".mpg"), _RECORDING),
    **dict.fromkeys((".mp3", ".m4a", ".wav", ".aac", ".ogg", ".opus", ".amr", ".flac", ".wma"), _RECORDING),
    **dict.fromkeys(
        (".doc", ".dot", ".xls", ".ppt", ".rtf", ".pages", ".numbers", ".key", ".odg"), _OLD_DOCUMENT
    ),
    **dict.fromkeys((".zip", ".rar", ".7z", ".tar", ".gz", ".tgz", ".bz2", ".xz"), _ARCHIVE),
    **dict.fromkeys((".eml", ".msg"), _EMAIL),
}


def warning_for(filename: str) -> str | None:
    """A plain-English warning for a file whose type (by its name) cannot be cleaned, else None.

    This judges by name only, to warn before anything is sent; the status that
    `clean` returns is what happened to the bytes.
    """
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    if suffix in _CLEANABLE:
        return None
    return _WARNINGS.get(suffix, _OTHER)
