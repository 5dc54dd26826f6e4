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
from werkzeug.formparser import FormDataParser, MultiPartParser

from whistle import crypto

SPOOL_CHUNK = 64 * 1024
#: The multipart parser reads the request body in pieces of this size (werkzeug's
#: own is 64 KiB). Each read copies what gunicorn has buffered, up to a
#: mebibyte, so with 64 KiB reads a large upload took a fifth more CPU.
PARSE_BUFFER = 256 * 1024
_LENGTH_BYTES = 4


class SealedSpool:
    """A write-once, read-once file whose on-disk bytes are sealed."""

    def __init__(self, chunk_bytes: int = SPOOL_CHUNK) -> None:
        self._key = crypto.new_key()
        self._chunk_bytes = chunk_bytes
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self._written = 0  # chunks sealed to disk
        self._read = 0  # chunks read back
        self.size = 0
        self.closed = False

    def _seal(self, data: bytes) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        sealed = crypto.seal(self._key, data, crypto.context("spool", str(self._written)))
        self._file.write(len(sealed).to_bytes(_LENGTH_BYTES, "big") + sealed)
        self._written += 1

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.size += len(data)
        while len(self._buffer) >= self._chunk_bytes:
            self._seal(bytes(self._buffer[: self._chunk_bytes]))
            del self._buffer[: self._chunk_bytes]
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        """Werkzeug rewinds once after writing; that switches to reading."""
        if offset != 0 or whence != 0:
            raise OSError("a sealed spool can only be rewound")
        if self._file is not None:
            if self._buffer:
                self._seal(bytes(self._buffer))
                self._buffer.clear()
            self._file.seek(0)
        self._read = 0
        return 0

    def _next_chunk(self) -> bytes:
        if self._file is None or self._read >= self._written:
            return b""
        length = int.from_bytes(self._file.read(_LENGTH_BYTES), "big")
        sealed = self._file.read(length)
        data = crypto.open_sealed(self._key, sealed, crypto.context("spool", str(self._read)))
        self._read += 1
        return data

    def read(self, size: int = -1) -> bytes:
        if self._file is None:
            data = bytes(self._buffer[:size] if size >= 0 else self._buffer)
            del self._buffer[: len(data)]
            return data
        while size < 0 or len(self._buffer) < size:
            chunk = self._next_chunk()
            if not chunk:
                break
            self._buffer += chunk
        data = bytes(self._buffer[:size] if size >= 0 else self._buffer)
        del self._buffer[: len(data)]
        return data

    def tell(self) -> int:
        return 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._buffer.clear()
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
        return stream, form, files


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
