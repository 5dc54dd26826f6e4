"""Uploads never touch the disk in clear, not even as temporary files.

Werkzeug spools a large upload to a temporary file while it parses the
request. Whistle's request class gives it a :class:`SealedSpool` instead: the
data is sealed chunk by chunk under a key that exists only in this process's
memory, and is read back once, in order, when the service seals the file
for good. Small files stay in memory.
"""

from __future__ import annotations

import tempfile
from typing import IO, Any

from flask import Request
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.formparser import FormDataParser, MultiPartParser

from whistle import crypto

#: The spool seals what it is given in chunks of this many bytes: a mebibyte
#: costs next to nothing to seal at once, and makes few calls and copies.
SPOOL_CHUNK = 1024 * 1024
#: ... and writes them to anonymous temporary files of this many chunks each.
#: Each file is closed as soon as it has been read back, so its pages are
#: dropped from memory without ever being written out to the disk: one file
#: for the whole upload stayed dirty in the page cache until the end, and the
#: kernel then held back the writing of the sealed file to the store.
SEGMENT_CHUNKS = 64
#: A file no larger than this stays in memory once written; a larger one is
#: held in memory only up to a chunk, and only while it is being written.
MEMORY_BYTES = 64 * 1024
#: The multipart parser reads the request body in pieces of this size (werkzeug's
#: own is 64 KiB). Each read copies what gunicorn has buffered, up to a
#: mebibyte, so with 64 KiB reads a large upload took a fifth more CPU.
PARSE_BUFFER = 256 * 1024
_SPOOL_CONTEXT = crypto.context("spool")


class SealedSpool:
    """A write-once, read-once file whose on-disk bytes are sealed.

    What is written is cut into chunks sealed as a STREAM (the construction of
    attachments: a counter and a last-chunk flag in every nonce) under a key
    of the spool's own, so that no chunk can be changed, dropped, reordered or
    cut short on the disk without the read failing. The last chunk is held in
    memory until the rewind says it is the last, and sealed to the disk then,
    unless the whole file is small (:data:`MEMORY_BYTES`).
    """

    def __init__(self, chunk_bytes: int = SPOOL_CHUNK, segment_chunks: int = SEGMENT_CHUNKS) -> None:
        key = crypto.new_key()
        self._sealer = crypto.StreamSealer(key, _SPOOL_CONTEXT)
        self._opener = crypto.StreamOpener(key, _SPOOL_CONTEXT)
        self._chunk_bytes = chunk_bytes
        self._segment_chunks = segment_chunks
        self._pending = bytearray()  # written, not yet sealed
        self._files: list[IO[bytes]] = []  # temporary files not yet read back, oldest first
        self._sealed = 0  # chunks sealed to disk
        self._opened = 0  # chunks read back
        self._reading = False
        self._chunk = b""  # the chunk being read
        self._offset = 0  # how much of it has been read
        self.size = 0
        self.closed = False

    def _seal(self, chunk: memoryview, last: bool) -> None:
        if self._sealed % self._segment_chunks == 0:
            self._files.append(tempfile.TemporaryFile())  # noqa: SIM115 - closed when read, or in close()
        self._files[-1].write(self._sealer.seal(chunk, last))
        self._sealed += 1

    def write(self, data: bytes) -> int:
        if self._reading:
            raise OSError("a sealed spool is written before it is read")
        self._pending += data
        self.size += len(data)
        if len(self._pending) > self._chunk_bytes:
            # Seal every full chunk that is followed by more: none of them is the last.
            sealed = 0
            with memoryview(self._pending) as view:
                while len(view) - sealed > self._chunk_bytes:
                    self._seal(view[sealed : sealed + self._chunk_bytes], last=False)
                    sealed += self._chunk_bytes
            del self._pending[:sealed]
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Werkzeug rewinds once after writing; that switches to reading."""
        if offset != 0 or whence != 0:
            raise OSError("a sealed spool can only be rewound")
        if self._reading:
            if self._opened or self._offset:
                raise OSError("a sealed spool can only be read once")
            return 0
        self._reading = True
        if self._files or len(self._pending) > MEMORY_BYTES:
            with memoryview(self._pending) as view:
                self._seal(view, last=True)
            for handle in self._files:
                handle.flush()
                handle.seek(0)
        else:
            self._chunk = bytes(self._pending)
        self._pending = bytearray()
        return 0

    def _next_chunk(self) -> bool:
        """Open the next sealed chunk; close each temporary file once all of it is read."""
        self._chunk, self._offset = b"", 0
        if self._opened >= self._sealed:
            return False
        last = self._opened == self._sealed - 1
        sealed = self._files[0].read(self._chunk_bytes + crypto.TAG_BYTES)
        self._chunk = self._opener.open(sealed, last)
        self._opened += 1
        if last or self._opened % self._segment_chunks == 0:
            self._files.pop(0).close()
        return True

    def read(self, size: int | None = -1) -> bytes:
        if not self._reading:
            self.seek(0)
        wanted = -1 if size is None or size < 0 else size
        parts = []
        while wanted:
            if self._offset >= len(self._chunk) and not self._next_chunk():
                break
            available = len(self._chunk) - self._offset
            take = available if wanted < 0 else min(wanted, available)
            # A whole chunk is handed on as it is, without a copy.
            whole = take == len(self._chunk)
            parts.append(self._chunk if whole else self._chunk[self._offset : self._offset + take])
            self._offset += take
            if wanted > 0:
                wanted -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def tell(self) -> int:
        return 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        self._files.clear()
        self._pending = bytearray()
        self._chunk = b""
        self.closed = True

    def __enter__(self) -> SealedSpool:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


class _FormDataParser(FormDataParser):
    """Werkzeug's form parser, with :data:`PARSE_BUFFER` for multipart bodies (otherwise the same)."""

    def _parse_multipart(
        self, stream: IO[bytes], mimetype: str, content_length: int | None, options: dict[str, str]
    ) -> tuple[IO[bytes], Any, Any]:
        parser = MultiPartParser(
            stream_factory=self.stream_factory,
            max_form_memory_size=self.max_form_memory_size,
            max_form_parts=self.max_form_parts,
            cls=self.cls,
            buffer_size=PARSE_BUFFER,
        )
        boundary = options.get("boundary", "").encode("ascii")
        if not boundary:
            raise ValueError("Missing boundary")
        form, files = parser.parse(stream, boundary, content_length)
        return stream, _named(form), _named(files)


def _named(parts: MultiDict[Any, Any]) -> MultiDict[str, Any]:
    """The parts that have a name.

    A part whose name cannot be read (a line break inside it, say) comes back from the parser
    named None, which no form asks for and Flask-WTF's token lookup fails on (a 500). It is left
    out, and the request is judged on the rest, as if it had not been sent.
    """
    kept: list[tuple[str, Any]] = []
    for name, value in parts.items(multi=True):
        if name is not None:
            kept.append((name, value))
        elif isinstance(value, FileStorage):
            value.close()  # nor is a nameless file's spool kept
    return type(parts)(kept)


class WhistleRequest(Request):
    form_data_parser_class = _FormDataParser

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return SealedSpool()  # type: ignore[return-value]
