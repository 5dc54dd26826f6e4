"""Attachments: files sealed as streams in the store, their names and types sealed too."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, BinaryIO, cast

from whistle import crypto
from whistle.models import Attachment, Author, Report
from whistle.services.cleaning import CleanStatus, clean
from whistle.services.cleaning.sandbox import clean_bytes_in_child
from whistle.services.context import Policy
from whistle.services.errors import AttachmentNotFound, UploadRejected
from whistle.storage import SealedStore

MAX_NAME_CHARS = 200
CLEANING_TEXT: dict[str, str] = {
    CleanStatus.CLEANED: "Hidden details (such as author, device or location) were removed.",
    CleanStatus.NOTHING_FOUND: "No hidden details were found.",
    CleanStatus.KEPT: "Kept exactly as sent, hidden details included, as the reporter asked.",
    CleanStatus.UNSUPPORTED: "This type of file cannot be cleaned: it was stored exactly as sent.",
    CleanStatus.TOO_LARGE: "Too large to be cleaned: it was stored exactly as sent.",
    CleanStatus.FAILED: "Could not be read to be cleaned: it was stored exactly as sent.",
    CleanStatus.OVER_BOUNDS: (
        "Not cleaned: it would take too much memory or time to clean. It was stored exactly as sent."
    ),
}
GENERIC_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class Upload:
    """A file as it arrives: its name and type as the browser sent them, and its bytes."""

    filename: str
    content_type: str
    stream: IO[bytes]
    #: The reporter asked to keep the file exactly as it is (its metadata is evidence).
    keep_original: bool = False


@dataclass(frozen=True)
class AttachmentInfo:
    public_id: str
    filename: str
    content_type: str
    size: int
    author: Author
    uploaded_on: dt.date
    #: What happened to the file's hidden details (a cleaning.CleanStatus value).
    cleaning: str = ""

    @property
    def cleaning_text(self) -> str:
        return CLEANING_TEXT.get(self.cleaning, "")


def check_uploads(uploads: Sequence[Upload], limits: Policy, held: int = 0) -> None:
    """Refuse more files than one message may carry, or than the case (holding `held`) may hold."""
    if len(uploads) > limits.max_files:
        raise UploadRejected(f"You can add up to {limits.max_files} files at a time.")
    if uploads and held + len(uploads) > limits.max_files_per_case:
        raise UploadRejected(files_left_text(limits, held))


def files_left(limits: Policy, held: int) -> int:
    """How many more files a case holding `held` may take."""
    return max(0, limits.max_files_per_case - held)


def files_left_text(limits: Policy, held: int) -> str:
    left = files_left(limits, held)
    if not left:
        return (
            f"Your report already holds {held} files, the most it can hold. "
            "You can still send messages; to send more evidence, describe it in a message and ask how."
        )
    return f"Your report can hold {left} more {'file' if left == 1 else 'files'}. Please choose fewer."


def _meta_context(report: Report, attachment_id: str) -> bytes:
    return crypto.context("report", report.public_id, "attachment-meta", attachment_id)


def _data_context(report: Report, attachment_id: str) -> bytes:
    return crypto.context("report", report.public_id, "attachment", attachment_id)


class _Limited:
    """Reads through to a stream and refuses to go past a size limit."""

    def __init__(self, stream: IO[bytes], limit: int, filename: str) -> None:
        self.stream = stream
        self.remaining = limit
        self.filename = filename

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.remaining -= len(data)
        if self.remaining < 0:
            raise UploadRejected(f"The file {self.filename} is larger than the limit.")
        return data


def seal_uploads(
    store: SealedStore,
    report: Report,
    dek: bytes,
    uploads: Sequence[Upload],
    author: Author,
    limits: Policy,
    today: dt.date,
) -> list[Attachment]:
    """Seal every upload into the store and return the rows to add.

    Either all files are stored or none: on any error the blobs written so far
    are deleted before the error is raised.
    """
    check_uploads(uploads, limits, held=len(report.attachments))
    attachments: list[Attachment] = []
    try:
        for upload in uploads:
            attachments.append(_seal_one(store, report, dek, upload, author, limits, today))
    except BaseException:
        for attachment in attachments:
            store.delete(attachment.blob_name)
        raise
    return attachments


def _seal_one(
    store: SealedStore,
    report: Report,
    dek: bytes,
    upload: Upload,
    author: Author,
    limits: Policy,
    today: dt.date,
) -> Attachment:
    public_id = crypto.new_public_id()
    filename = _clean_filename(upload.filename)
    source = _Limited(upload.stream, limits.max_file_bytes, filename)
    cleaned = clean(
        source,  # type: ignore[arg-type]
        keep_original=upload.keep_original,
        max_bytes=limits.max_clean_bytes,
        cleaner=clean_bytes_in_child,
    )
    with store.create() as (blob_name, sink):
        size = crypto.encrypt_stream(
            crypto.file_key(dek, public_id),
            _data_context(report, public_id),
            cleaned.stream,  # type: ignore[arg-type]
            sink,
        )
        # The stored size tells only the order of magnitude of the file's (Padmé, as for words).
        crypto.pad_stream(sink, crypto.sealed_stream_size(size))
    meta = {
        "name": filename,
        "type": upload.content_type or GENERIC_TYPE,
        "size": size,
        "cleaning": cleaned.status.value,
    }
    return Attachment(
        public_id=public_id,
        author=author,
        uploaded_on=today,
        meta_sealed=crypto.seal_padded(dek, json.dumps(meta).encode(), _meta_context(report, public_id)),
        blob_name=blob_name,
    )


def _clean_filename(name: str) -> str:
    """Keep the last path component only, without control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(char for char in base if char.isprintable()).strip()
    return cleaned[:MAX_NAME_CHARS] or "file"


def describe(report: Report, dek: bytes, attachment: Attachment) -> AttachmentInfo:
    meta = json.loads(
        crypto.open_sealed(dek, attachment.meta_sealed, _meta_context(report, attachment.public_id))
    )
    return AttachmentInfo(
        public_id=attachment.public_id,
        filename=meta["name"],
        content_type=meta["type"],
        size=meta["size"],
        author=attachment.author,
        uploaded_on=attachment.uploaded_on,
        cleaning=meta.get("cleaning", ""),
    )


def describe_all(report: Report, dek: bytes) -> list[AttachmentInfo]:
    """A report's files by day, and by name within a day: their keys are random, and nothing in
    clear says which of one day's files came first."""
    described = (describe(report, dek, attachment) for attachment in report.attachments)
    return sorted(described, key=lambda info: (info.uploaded_on, info.filename.casefold(), info.public_id))


def find(report: Report, attachment_public_id: str) -> Attachment:
    for attachment in report.attachments:
        if attachment.public_id == attachment_public_id:
            return attachment
    raise AttachmentNotFound(attachment_public_id)


class Plaintext:
    """An attachment's decrypted chunks, and ``close()`` for the sealed file behind them.

    A WSGI server calls ``close()`` on what it was given to send, whether or not
    it read it all (a HEAD request reads nothing), so the file is never left open.
    """

    def __init__(self, handle: IO[bytes], chunks: Iterator[bytes]) -> None:
        self._handle = handle
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        finally:
            self._handle.close()

    def close(self) -> None:
        self._handle.close()


def read(store: SealedStore, report: Report, dek: bytes, attachment: Attachment) -> Plaintext:
    """The decrypted bytes of an attachment, chunk by chunk, never all in memory.

    Everything is taken from the rows now, so the chunks can be read after the
    database session has closed (while a response streams).
    """
    key = crypto.file_key(dek, attachment.public_id)
    associated_data = _data_context(report, attachment.public_id)
    sealed = crypto.sealed_stream_size(describe(report, dek, attachment).size)
    handle = store.open(attachment.blob_name)
    # Files sealed before padding end where their sealed stream does; padded ones go on with filler.
    return Plaintext(
        handle, crypto.decrypt_stream(key, associated_data, cast(BinaryIO, crypto.FirstBytes(handle, sealed)))
    )
