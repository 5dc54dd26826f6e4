"""Files built to hurt the cleaner, made in memory for the tests that refuse them."""

from __future__ import annotations

import io
import secrets
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


WORD = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_nested(depth: int, padding: int = 0) -> bytes:
    """A docx whose tracked change holds `depth` nested runs (see `docx_with`).

    Four million levels inflate to 28 MB from a few kilobytes.
    """
    return docx_with(b"<w:r>" * depth + b"</w:r>" * depth, padding)


def docx_with_changes(count: int, padding: int = 0) -> bytes:
    """A docx of `count` tracked changes, each with an author to replace (see `docx_with`)."""
    return docx_with(b'<w:ins w:author="Someone"/>' * count, padding)


def docx_with(body: bytes, padding: int = 0) -> bytes:
    """A docx whose document holds `body` in a tracked change, and `padding` random bytes beside it.

    The padding makes the package large enough that it does not inflate too
    many times its own size, so that only what is inside can give it away.
    """
    document = (
        f'<w:document xmlns:w="{WORD}"><w:ins w:author="Someone">'.encode() + body + b"</w:ins></w:document>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", document)
        archive.writestr("word/media/noise.bin", secrets.token_bytes(padding))
    return buffer.getvalue()
