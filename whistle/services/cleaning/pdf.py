"""PDFs: copied with pypdf without their information, XMP, private data and file identifier."""

from __future__ import annotations

import io
import logging
from typing import cast

from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, IndirectObject, NameObject, TextStringObject

from whistle.services.cleaning.outcome import Unsupported

# pypdf reports malformed files through `logging`: a log line written while an upload is
# cleaned would date that upload.
_pypdf_log = logging.getLogger("pypdf")
_pypdf_log.addHandler(logging.NullHandler())
_pypdf_log.propagate = False


def clean_pdf(data: bytes) -> tuple[bytes, bool]:
    """Prune the parsed document, then copy what is still reachable from its catalogue.

    Pruning before copying (rather than deleting from the copy) means that
    nothing removed can linger in the output as an unreferenced object.
    """
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise Unsupported
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
