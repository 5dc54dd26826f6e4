"""Files built to hurt the cleaner, made in memory for the tests that refuse them."""

from __future__ import annotations

import io
import zipfile

MIB = 1024 * 1024


def docx_with_zeros(name: str, mebibytes: int, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A docx with one more entry, `name`, of so many MiB of zeros (never all held in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
        info = zipfile.ZipInfo(name)
        info.compress_type = compression
        with archive.open(info, "w") as entry:
            for _ in range(mebibytes):
                entry.write(bytes(MIB))
    return buffer.getvalue()
