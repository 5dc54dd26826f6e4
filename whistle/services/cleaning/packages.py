"""Office Open XML and OpenDocument packages: ZIPs rewritten entry by entry, within bounds."""

from __future__ import annotations

import io
import zipfile

from whistle.services.cleaning.office_xml import rewrite_xml, rules_for
from whistle.services.cleaning.outcome import BeyondBounds

#: A ZIP package may inflate to this many times the cleaning limit in all (an XML part, to
#: the limit itself), in at most so many entries. What is inflated is counted as it is read.
ZIP_EXPANSION = 10
#: ... and to no more than this many times its own size: real documents inflate
#: a few times, tens of times for a plain spreadsheet; a ZIP bomb, a thousand.
ZIP_RATIO = 100
MAX_ZIP_ENTRIES = 10_000

_READ_CHUNK = 1024 * 1024
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

_ODF_KINDS = {
    b"application/vnd.oasis.opendocument.text": "odt",
    b"application/vnd.oasis.opendocument.spreadsheet": "ods",
    b"application/vnd.oasis.opendocument.presentation": "odp",
}
_ODF_MIMETYPES = {kind: mimetype for mimetype, kind in _ODF_KINDS.items()}
_OOXML_FOLDERS = (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx"))


def package_kind(package: zipfile.ZipFile) -> str:
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


def clean_package(package: zipfile.ZipFile, kind: str, sent: int, max_bytes: int) -> tuple[bytes, bool]:
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
        raise BeyondBounds("the package has too many entries")
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
                cleaned.writestr(fresh, _ODF_MIMETYPES[kind])  # what package_kind read there
                continue
            fresh.compress_type = zipfile.ZIP_DEFLATED
            rules = rules_for(kind, entry.filename)
            if rules is None:
                with package.open(entry) as source, cleaned.open(fresh, "w") as target:
                    while chunk := source.read(_READ_CHUNK):
                        budget.spend(len(chunk))
                        target.write(chunk)
                continue
            part = _inflate(package, entry, max_bytes, budget)
            rewritten = rewrite_xml(part, rules)
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
            raise BeyondBounds("the package expands too far")


def _inflate(package: zipfile.ZipFile, entry: zipfile.ZipInfo, limit: int, budget: _Budget) -> bytes:
    """An entry's bytes, read in chunks, refused as soon as they pass `limit`."""
    buffer = io.BytesIO()
    with package.open(entry) as source:
        while chunk := source.read(_READ_CHUNK):
            budget.spend(len(chunk))
            if buffer.tell() + len(chunk) > limit:
                raise BeyondBounds("an entry is too large to clean")
            buffer.write(chunk)
    return buffer.getvalue()
