"""Tests of the sealed file store: atomic publication, private files, no path escapes."""

from __future__ import annotations

import re
import stat
import time
from pathlib import Path

import pytest

from whistle.storage import SealedStore, StorageError


@pytest.fixture
def store(tmp_path: Path) -> SealedStore:
    return SealedStore(tmp_path / "files")


def _write(store: SealedStore, data: bytes) -> str:
    with store.create() as (name, handle):
        handle.write(data)
    return name


def _settled(store: SealedStore, data: bytes) -> str:
    """A file written, then settled into its place as ``whistle maintain`` does."""
    name = _write(store, data)
    assert store.settle(time.time()) == 1
    return name


def _all_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_root_is_created_private(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "files"
    SealedStore(root)
    assert root.is_dir()
    assert stat.S_IMODE(root.stat().st_mode) & 0o077 == 0


def test_create_then_open_reads_the_same_bytes(store: SealedStore) -> None:
    data = bytes(range(256)) * 100
    name = _write(store, data)
    with store.open(name) as handle:
        assert handle.read() == data


def test_empty_blob_round_trip(store: SealedStore) -> None:
    name = _write(store, b"")
    with store.open(name) as handle:
        assert handle.read() == b""


def test_name_is_random_hex_and_file_is_under_a_two_letter_folder(store: SealedStore) -> None:
    name = _settled(store, b"sealed")
    assert re.fullmatch("[0-9a-f]{48}", name)
    path = store.root / name[:2] / name
    assert path.read_bytes() == b"sealed"
    assert _all_files(store.root) == [path]


def test_file_mode_is_0600(store: SealedStore) -> None:
    name = _write(store, b"sealed")
    assert stat.S_IMODE((store.root / "new" / name).stat().st_mode) == 0o600
    store.settle(time.time())
    path = store.root / name[:2] / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0


def test_names_are_distinct(store: SealedStore) -> None:
    names = [_write(store, b"x") for _ in range(50)]
    assert len(set(names)) == 50


def test_blob_is_not_visible_until_the_block_ends(store: SealedStore) -> None:
    with store.create() as (name, handle):
        handle.write(b"half")
        with pytest.raises(StorageError):
            store.open(name)
        assert list(store.names()) == []
    with store.open(name) as reader:
        assert reader.read() == b"half"
    assert list(store.names()) == [name]


class _Boom(Exception):
    pass


def test_exception_inside_create_leaves_no_file(store: SealedStore) -> None:
    with pytest.raises(_Boom), store.create() as (name, handle):
        handle.write(b"some sealed bytes")
        raise _Boom
    assert _all_files(store.root) == []
    assert list(store.names()) == []
    assert store.remove_partial() == 0
    with pytest.raises(StorageError):
        store.open(name)


def test_exception_inside_create_keeps_other_blobs(store: SealedStore) -> None:
    kept = _write(store, b"kept")
    with pytest.raises(_Boom), store.create() as (_name, handle):
        handle.write(b"lost")
        raise _Boom
    assert list(store.names()) == [kept]
    assert _all_files(store.root) == [store.root / "new" / kept]


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "..",
        "",
        "ABC",
        "a/b",
        "/etc/passwd",
        "ab/../../x",
        "0g",
        ".part-ab",
        "ab\x00",
        "ab ",
        "\uff10\uff11",
    ],
)
def test_names_outside_the_alphabet_are_refused(store: SealedStore, name: str) -> None:
    with pytest.raises(StorageError):
        store.open(name)
    with pytest.raises(StorageError):
        store.delete(name)


def test_refused_delete_removes_nothing_outside_the_store(tmp_path: Path) -> None:
    store = SealedStore(tmp_path / "files")
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    with pytest.raises(StorageError):
        store.delete("../victim")
    assert victim.read_bytes() == b"keep me"


def test_a_subfolder_linked_outside_the_store_is_refused(tmp_path: Path) -> None:
    store = SealedStore(tmp_path / "files")
    outside = tmp_path / "outside"
    outside.mkdir()
    name = "ab" + "0" * 46
    (outside / name).write_bytes(b"not ours")
    (store.root / "ab").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match="outside"):
        store.open(name)
    with pytest.raises(StorageError):
        store.delete(name)
    assert (outside / name).read_bytes() == b"not ours"


def test_open_of_a_missing_name_fails(store: SealedStore) -> None:
    with pytest.raises(StorageError, match="no such blob"):
        store.open("ab" + "0" * 46)
    name = _write(store, b"x")
    missing = name[:-1] + ("0" if name[-1] != "0" else "1")
    with pytest.raises(StorageError):
        store.open(missing)


def test_delete_removes(store: SealedStore) -> None:
    name = _settled(store, b"x")
    other = _write(store, b"y")
    store.delete(name)
    with pytest.raises(StorageError):
        store.open(name)
    assert list(store.names()) == [other]
    assert not (store.root / name[:2] / name).exists()


def test_delete_of_a_missing_name_is_quiet(store: SealedStore) -> None:
    store.delete("ab" + "0" * 46)
    name = _write(store, b"x")
    store.delete(name)
    store.delete(name)
    assert list(store.names()) == []


def test_names_lists_published_blobs_only(store: SealedStore) -> None:
    assert list(store.names()) == []
    names = {_write(store, bytes([i])) for i in range(10)}
    (store.root / "ab").mkdir(exist_ok=True)
    (store.root / "ab" / (".part-ab" + "0" * 46)).write_bytes(b"partial")
    with store.create() as (pending, handle):
        handle.write(b"pending")
        assert set(store.names()) == names
    assert set(store.names()) == names | {pending}


def test_remove_partial_deletes_leftovers_and_counts_them(store: SealedStore) -> None:
    kept = _write(store, b"kept")
    folder = store.root / "cd"
    folder.mkdir(exist_ok=True)
    leftover = folder / (".part-cd" + "1" * 46)
    leftover.write_bytes(b"half written")
    second = folder / (".part-cd" + "2" * 46)
    second.write_bytes(b"")
    assert store.remove_partial() == 2
    assert not leftover.exists()
    assert not second.exists()
    assert list(store.names()) == [kept]
    with store.open(kept) as handle:
        assert handle.read() == b"kept"
    assert store.remove_partial() == 0


def test_remove_partial_on_an_empty_store(store: SealedStore) -> None:
    assert store.remove_partial() == 0


def test_a_second_store_on_the_same_root_sees_the_blobs(tmp_path: Path) -> None:
    first = SealedStore(tmp_path / "files")
    name = _write(first, b"shared")
    second = SealedStore(tmp_path / "files")
    with second.open(name) as handle:
        assert handle.read() == b"shared"


# --- file system times: whistle maintain settles new files ------------------------------


def test_a_file_can_be_read_before_and_after_it_is_settled(store: SealedStore) -> None:
    name = _write(store, b"evidence")
    with store.open(name) as handle:
        assert handle.read() == b"evidence"
    store.settle(time.time())
    assert not (store.root / "new" / name).exists()
    with store.open(name) as handle:
        assert handle.read() == b"evidence"
    assert store.settle(time.time()) == 0


def test_after_settling_no_file_or_folder_time_dates_an_upload(store: SealedStore) -> None:
    """A copy of the files, taken after the hourly run, shows the run's time, never an upload's."""
    names = [_write(store, bytes([i]) * 100) for i in range(5)]
    uploads = [(store.root / "new" / name).stat() for name in names]
    time.sleep(1.1)
    started = time.time()
    assert store.settle(started) == 5
    for name, upload in zip(names, uploads, strict=True):
        settled = (store.root / name[:2] / name).stat()
        assert settled.st_ino != upload.st_ino, "a new file, born when the run was"
        assert settled.st_ctime >= started - 0.01 > upload.st_ctime
        assert settled.st_mtime % 86_400 == 0, "the day only"
    for folder in {store.root, store.root / "new", *(store.root / name[:2] for name in names)}:
        assert folder.stat().st_mtime % 86_400 == 0, folder
        assert folder.stat().st_ctime >= started - 0.01, folder
