"""Cleaning evidence: removing identifying metadata before it is sealed.

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
inflates to); uploads are also cleaned in a child process whose memory and
CPU time the system bounds (sandbox.py).

The upload arrives as a read-once stream: it is read only with ``read(n)``,
at most ``max_bytes + 1`` bytes are held in memory (none beyond the first
kilobyte for a type no cleaner reads, such as a video), and nothing is ever
written to disk. Whatever cannot be cleaned (an unknown type, a file over the
limit, a file that does not parse, a ZIP or image that would take more memory
or time to clean than a file may) comes back byte for byte as it arrived, with
a status that says why: evidence is never lost.

This package logs nothing: a log line written while an upload is cleaned would
date that upload. For the same reason pypdf, which reports malformed files
through `logging`, is silenced (pdf.py), and library warnings are ignored while
a file is cleaned (only Pillow's DecompressionBombWarning is raised, and
refused).

Each kind has a module of its own: images.py, pdf.py, packages.py (Office and
OpenDocument ZIPs) with office_xml.py (their XML parts); advice.py says what to
warn a reporter of by file name; sandbox.py runs the cleaning in a bounded
child process.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from PIL import Image

from whistle.services.cleaning.advice import warning_for
from whistle.services.cleaning.images import MAX_PIXELS, clean_image
from whistle.services.cleaning.office_xml import MAX_XML_DEPTH
from whistle.services.cleaning.outcome import BeyondBounds, CleanStatus, Outcome, Unsupported
from whistle.services.cleaning.packages import (
    MAX_ZIP_ENTRIES,
    ZIP_EXPANSION,
    ZIP_RATIO,
    clean_package,
    package_kind,
)
from whistle.services.cleaning.pdf import clean_pdf

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "MAX_CLEAN_BYTES",
    "MAX_PIXELS",
    "MAX_XML_DEPTH",
    "MAX_ZIP_ENTRIES",
    "ZIP_EXPANSION",
    "ZIP_RATIO",
    "CleanStatus",
    "Cleaned",
    "Cleaner",
    "Outcome",
    "clean",
    "clean_bytes",
    "public_kind",
    "warning_for",
]

#: Files larger than this are stored as they are: cleaning happens in memory.
MAX_CLEAN_BYTES = 64 * 1024 * 1024

_READ_CHUNK = 1024 * 1024
#: How much of a file's start tells its type (see _sniff).
_SNIFF_BYTES = 1024


@dataclass(frozen=True)
class Cleaned:
    #: The bytes to seal: the cleaned copy, or the original bytes, positioned for reading.
    stream: IO[bytes]
    status: CleanStatus
    #: "jpeg", "png", "webp", "tiff", "gif", "pdf", "docx", "xlsx", "pptx", "odt", "ods", "odp", or "".
    kind: str


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
                    kind = package_kind(package)
                    if not kind:
                        raise Unsupported
                    cleaned, found = clean_package(package, kind, len(data), max_bytes)
            elif kind == "pdf":
                cleaned, found = clean_pdf(data)
            else:
                cleaned, found = clean_image(data, kind)
    except Unsupported:
        return Outcome(CleanStatus.UNSUPPORTED, public_kind(kind))
    except (BeyondBounds, MemoryError, Image.DecompressionBombWarning, Image.DecompressionBombError):
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
    an error itself at twice its pixel limit, and `clean_image` counts pixels.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield
