"""Uploads never touch the disk in clear, not even while the request is being parsed.

Unit tests of :class:`whistle.web.uploads.SealedSpool` (what werkzeug writes a
large upload into), then the same property end to end: every temporary file
opened while a large multipart upload is parsed is recorded, and what was
written to it must never hold the file's bytes.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from typing import IO, Any

import pytest

from tests.conftest import follow_up, login, reports_listed
from tests.security.helpers import find, post_multipart, submit_report_with_files, text_needles
from whistle import crypto
from whistle.web.uploads import MEMORY_BYTES, SPOOL_CHUNK, SealedSpool

MARKER = b"MARKER-SPOOL-9c2e|"
ONE_MB = 1024 * 1024
#: Small chunks and temporary files of a few chunks each, so that a mebibyte
#: crosses many of both (the defaults are a mebibyte and 64 of them).
CHUNK = 64 * 1024
SEGMENT = 4


def _spool() -> SealedSpool:
    return SealedSpool(chunk_bytes=CHUNK, segment_chunks=SEGMENT)


def _pattern(size: int) -> bytes:
    """``size`` bytes of the marker, numbered so that misplaced chunks are caught."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += MARKER + str(counter).encode() + b"\n"
        counter += 1
    return bytes(out[:size])


def _disk_bytes(spool: SealedSpool) -> bytes:
    """What the spool's temporary files hold on disk, read without moving their positions."""
    assert spool._files
    held = []
    for handle in spool._files:
        handle.flush()
        fd = handle.fileno()
        held.append(os.pread(fd, os.fstat(fd).st_size, 0))
    return b"".join(held)


def _write_in_pieces(spool: SealedSpool, data: bytes, sizes: list[int]) -> None:
    offset, turn = 0, 0
    while offset < len(data):
        piece = data[offset : offset + sizes[turn % len(sizes)]]
        assert spool.write(piece) == len(piece)
        offset += len(piece)
        turn += 1


def _read_all(spool: SealedSpool, size: int) -> bytes:
    parts = []
    while True:
        part = spool.read(size)
        if not part:
            return b"".join(parts)
        assert size < 0 or len(part) <= size
        parts.append(part)


PIECES = [1, 1000, CHUNK - 1, 3, CHUNK + 17, 65, 250_000]


@pytest.mark.parametrize("read_size", [1_000_003, 1, 4096, CHUNK - 1, CHUNK, CHUNK + 1, -1])
def test_large_data_round_trips_and_is_sealed_on_disk(read_size):
    data = _pattern(ONE_MB)
    if read_size == 1:
        data = data[: 5 * CHUNK + 5]  # one byte at a time is slow: enough to cross chunks and files
    spool = _spool()
    _write_in_pieces(spool, data, PIECES)
    assert spool.size == len(data)

    assert spool._files, "a large upload must be spooled to disk"
    on_disk = _disk_bytes(spool)
    assert MARKER not in on_disk
    assert len(on_disk) >= len(data) - 2 * CHUNK, "the sealed chunks are not on disk"

    assert spool.seek(0) == 0
    on_disk = _disk_bytes(spool)  # the tail is sealed at the rewind
    assert MARKER not in on_disk
    assert len(on_disk) > len(data)
    handles = list(spool._files)
    assert _read_all(spool, read_size) == data
    assert spool.read() == b""
    assert all(handle.closed for handle in handles), "a temporary file stayed open once read"
    spool.close()
    assert spool.closed


def test_a_default_spool_seals_a_large_upload_to_disk():
    data = _pattern(2 * SPOOL_CHUNK + 5)
    with SealedSpool() as spool:
        _write_in_pieces(spool, data, [256 * 1024])
        assert spool._files, "a large upload must be spooled to disk"
        assert MARKER not in _disk_bytes(spool)
        spool.seek(0)
        assert MARKER not in _disk_bytes(spool)
        assert _read_all(spool, 256 * 1024) == data


@pytest.mark.parametrize("size", [MEMORY_BYTES + 1, SPOOL_CHUNK, SPOOL_CHUNK + 1])
def test_a_file_larger_than_the_memory_limit_is_sealed_to_disk_at_the_rewind(size):
    """Held in memory while it is written (it might be followed by more), then sealed: a
    request of many such files does not keep them all in memory while it is handled."""
    data = _pattern(size)
    with SealedSpool() as spool:
        _write_in_pieces(spool, data, [256 * 1024])
        spool.seek(0)
        assert spool._files, "the file stayed in memory"
        assert MARKER not in _disk_bytes(spool)
        assert spool._pending == b"" and spool._chunk == b""
        assert spool.read(-1) == data


def test_each_temporary_file_is_closed_once_read():
    """Read back, the spool lets go of its temporary files one by one: their pages are
    dropped, never written out, and a large upload does not hold them all to the end."""
    data = _pattern(3 * SEGMENT * CHUNK + 7)
    spool = _spool()
    spool.write(data)
    spool.seek(0)
    handles = list(spool._files)
    assert len(handles) == 4
    assert spool.read(SEGMENT * CHUNK) == data[: SEGMENT * CHUNK]
    assert [handle.closed for handle in handles] == [True, False, False, False]
    assert spool.read(-1) == data[SEGMENT * CHUNK :]
    assert all(handle.closed for handle in handles)
    spool.close()


def test_reading_in_changing_sizes():
    data = _pattern(ONE_MB + 12_345)
    sizes = [5, CHUNK * 2 + 3, 0, 1, 100_000, CHUNK]
    with _spool() as spool:
        _write_in_pieces(spool, data, [CHUNK * 3, 7, 70_000])
        spool.seek(0)
        parts = []
        for turn in range(len(data)):
            size = sizes[turn % len(sizes)]
            part = spool.read(size)
            assert len(part) <= size
            if size and not part:
                break
            parts.append(part)
        assert spool.read(-1) == b""
    assert b"".join(parts) == data


@pytest.mark.parametrize("chunks", [1, 2, SEGMENT, SEGMENT + 1, 2 * SEGMENT])
def test_exact_multiple_of_the_chunk_size(chunks):
    data = _pattern(chunks * CHUNK)
    spool = _spool()
    spool.write(data)
    if chunks == 1:
        assert spool._files == []  # one chunk is held in memory until it is known to be the last
    else:
        assert MARKER not in _disk_bytes(spool)
    spool.seek(0)
    assert chunks == 1 or MARKER not in _disk_bytes(spool)
    assert spool.read(-1) == data
    spool.close()


@pytest.mark.parametrize("size", [0, 1, MEMORY_BYTES - 1, MEMORY_BYTES])
def test_small_data_stays_in_memory(size):
    data = _pattern(size)
    spool = SealedSpool()
    _write_in_pieces(spool, data, [100, 3, 250_000])
    assert spool._files == []
    spool.seek(0)
    assert spool._files == []
    assert spool.read(10) + spool.read(-1) == data
    assert spool.read() == b""


def test_read_everything_at_once():
    data = _pattern(ONE_MB // 2)
    with _spool() as spool:
        spool.write(data)
        spool.seek(0)
        assert spool.read(-1) == data
        assert spool.read(-1) == b""


def test_each_spool_has_its_own_key():
    """The same bytes spooled twice leave different bytes on disk: the key is per spool."""
    data = _pattern(3 * CHUNK)
    first, second = _spool(), _spool()
    first.write(data)
    second.write(data)
    assert _disk_bytes(first) != _disk_bytes(second)
    first.close()
    second.close()


def _flip_a_byte(handle: IO[bytes], position: int) -> None:
    fd = handle.fileno()
    original = os.pread(fd, 1, position)
    os.pwrite(fd, bytes([original[0] ^ 0x01]), position)


def _truncate_the_last_file(spool: SealedSpool) -> None:
    fd = spool._files[-1].fileno()
    os.truncate(fd, os.fstat(fd).st_size - 1)


def _swap_two_files(spool: SealedSpool) -> None:
    first, second = (handle.fileno() for handle in spool._files[:2])
    one, other = (os.pread(fd, os.fstat(fd).st_size, 0) for fd in (first, second))
    for fd, data in ((first, other), (second, one)):
        os.truncate(fd, 0)
        os.pwrite(fd, data, 0)


def _swap_two_chunks(spool: SealedSpool) -> None:
    fd = spool._files[0].fileno()
    sealed = CHUNK + crypto.TAG_BYTES
    one, other = os.pread(fd, sealed, 0), os.pread(fd, sealed, sealed)
    os.pwrite(fd, other, 0)
    os.pwrite(fd, one, sealed)


def _drop_the_last_chunk(spool: SealedSpool) -> None:
    os.truncate(spool._files[-1].fileno(), 0)  # the last file holds the last chunk alone


@pytest.mark.parametrize(
    "tamper",
    [
        lambda spool: _flip_a_byte(spool._files[0], 40),
        lambda spool: _flip_a_byte(spool._files[-1], 3),
        _truncate_the_last_file,
        _swap_two_files,
        _swap_two_chunks,
        _drop_the_last_chunk,
    ],
    ids=["first chunk", "last file", "cut short", "files swapped", "chunks swapped", "last chunk dropped"],
)
def test_tampering_with_the_temporary_files_is_detected(tamper):
    """Whoever can write the temporary folder cannot change an upload on its way in."""
    data = _pattern(2 * SEGMENT * CHUNK + 5)
    spool = _spool()
    spool.write(data)
    spool.seek(0)
    tamper(spool)
    with pytest.raises(crypto.CryptoError):
        spool.read(-1)
    spool.close()


def test_only_a_rewind_is_allowed():
    spool = _spool()
    spool.write(_pattern(2 * CHUNK))
    with pytest.raises(OSError, match="rewound"):
        spool.seek(10)
    with pytest.raises(OSError, match="rewound"):
        spool.seek(0, os.SEEK_END)
    spool.close()


def test_written_once_then_read_once():
    data = _pattern(3 * CHUNK)
    spool = _spool()
    spool.write(data)
    assert spool.seek(0) == 0
    assert spool.seek(0) == 0  # a second rewind before reading changes nothing
    assert spool.read(10) == data[:10]
    with pytest.raises(OSError, match="once"):
        spool.seek(0)
    with pytest.raises(OSError, match="before"):
        spool.write(b"more")
    assert spool.read(-1) == data[10:]
    spool.close()


@pytest.mark.parametrize("size", [10, 3 * CHUNK + 1])
def test_reading_without_a_rewind_reads_from_the_start(size):
    data = _pattern(size)
    with _spool() as spool:
        spool.write(data)
        assert spool.read(-1) == data


def test_close_closes_the_temporary_files():
    spool = _spool()
    spool.write(_pattern(2 * SEGMENT * CHUNK))
    handles = list(spool._files)
    assert len(handles) == 2
    with spool:
        pass
    assert all(handle.closed for handle in handles)
    assert spool.closed


# --- end to end: what the request's temporary files held ----------------------------


class RecordingFile:
    """Wraps a real temporary file: records every byte written, and what it holds when closed."""

    def __init__(self, real: IO[bytes]) -> None:
        self._real = real
        self.written = bytearray()
        self.at_close: bytes | None = None

    def write(self, data: Any) -> int:
        self.written += bytes(data)
        return self._real.write(data)

    def close(self) -> None:
        if self.at_close is None and not self._real.closed:
            self._real.flush()
            fd = self._real.fileno()
            self.at_close = os.pread(fd, os.fstat(fd).st_size, 0)
        self._real.close()

    def __enter__(self) -> RecordingFile:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.fixture
def temporary_files(monkeypatch, tmp_path) -> list[RecordingFile]:
    """Every ``tempfile.TemporaryFile`` opened during the test, in a folder of its own."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    real: Callable[..., IO[bytes]] = tempfile.TemporaryFile
    opened: list[RecordingFile] = []

    def recording(*args: Any, **kwargs: Any) -> RecordingFile:
        handle = RecordingFile(real(*args, **kwargs))
        opened.append(handle)
        return handle

    monkeypatch.setattr(tempfile, "TemporaryFile", recording)
    yield opened
    assert list(folder.iterdir()) == [], "a temporary file was left behind"


CONTENT = "MARKER-SPOOLED-CONTENT-f00d"
NAME = "MARKER-SPOOLED-NAME-beef.txt"
LARGE = (f"{CONTENT} evidence line\n" * 60_000).encode()


def _assert_nothing_in_clear(temporary_files: list[RecordingFile]) -> None:
    assert temporary_files, "no temporary file was used, so this test would prove nothing"
    written = sum(len(f.written) for f in temporary_files)
    assert written >= len(LARGE), "the upload did not go through a temporary file"
    needles = text_needles(CONTENT, NAME)
    for handle in temporary_files:
        assert handle.at_close is not None, "a temporary file was never closed"
        assert find(bytes(handle.written), needles) == []
        assert find(handle.at_close, needles) == []


def test_a_large_report_upload_is_never_spooled_in_clear(app, client, alice, temporary_files):
    assert len(LARGE) > ONE_MB
    receipt = submit_report_with_files(client, attachments=[(LARGE, NAME)])
    _assert_nothing_in_clear(temporary_files)

    # What went through the spool arrived intact.
    officer = app.test_client()
    login(officer, alice)
    [public_id] = reports_listed(officer)
    page = officer.get(f"/officer/reports/{public_id}").get_data(as_text=True)
    assert NAME in page
    link = re.search(r'href="(/officer/reports/[0-9a-f]+/attachments/[0-9a-f]+)"', page).group(1)
    assert officer.get(link).data == LARGE
    assert receipt


def test_a_large_follow_up_upload_is_never_spooled_in_clear(app, client, alice, temporary_files):
    receipt = submit_report_with_files(client)
    assert temporary_files == []  # a report without files needs no temporary file
    reporter = app.test_client()
    assert follow_up(reporter, receipt).status_code == 303
    response = post_multipart(reporter, "/follow-up/case", {"body": "", "attachments": [(LARGE, NAME)]})
    assert response.status_code == 303
    _assert_nothing_in_clear(temporary_files)

    officer = app.test_client()
    login(officer, alice)
    [public_id] = reports_listed(officer)
    page = officer.get(f"/officer/reports/{public_id}").get_data(as_text=True)
    link = re.search(r'href="(/officer/reports/[0-9a-f]+/attachments/[0-9a-f]+)"', page).group(1)
    assert officer.get(link).data == LARGE


def test_a_rejected_upload_closes_its_temporary_file(instance, temporary_files):
    """A file over the limit is refused; its spool is still closed, and nothing is kept."""
    from whistle import create_app
    from whistle.config import Settings

    small = create_app(Settings.load(instance.path, max_file_bytes=ONE_MB))
    small.config["TESTING"] = True
    try:
        client = small.test_client()
        response = post_multipart(
            client,
            "/report",
            {
                "category": "caseloads",
                "what_happened": "Too large a file.",
                "immediate_risk": "no",
                "raised_before": "no",
                "attachments": [(LARGE, NAME)],
            },
        )
        assert response.status_code == 422
        _assert_nothing_in_clear(temporary_files)
        blobs = [p for p in (instance.path / "files").rglob("*") if p.is_file()]
        assert blobs == []
    finally:
        small.extensions["whistle"].engine.dispose()
