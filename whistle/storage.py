"""The sealed file store: attachments as sealed streams under random names.

Files are written to a temporary name inside the store, flushed and renamed
into place, so a reader never sees half a file; they are created with mode
0600. Every path is checked to stay inside the store's root. The store knows
nothing of keys: it keeps bytes that are already sealed.

A file's change and birth times cannot be set, and they would date an upload
to the second. So a new file waits in ``new/`` until :meth:`SealedStore.settle`
(``whistle maintain``, hourly and at start-up) copies every waiting file into its
place at once, in no particular order: each settled file is then a new inode
born when the run was, and every time a file or folder carries dates nothing
more finely than the hour the upload fell in. Modification times keep the day.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

_NAME_BYTES = 24
_TEMP_PREFIX = ".part-"
#: Where new files wait to be settled into place.
NEW = "new"
_COPY_CHUNK = 1024 * 1024


class StorageError(Exception):
    """A name that is not one of ours, or a file that is not there."""


class SealedStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, name: str) -> Path:
        if not name or not all(c in "0123456789abcdef" for c in name):
            raise StorageError("not a blob name")
        path = (self.root / name[:2] / name).resolve()
        if not path.is_relative_to(self.root):
            raise StorageError("path outside the store")
        return path

    def _waiting(self, name: str) -> Path:
        """Where a new file waits to be settled (the name is checked by :meth:`_path` first)."""
        self._path(name)
        return self.root / NEW / name

    @contextmanager
    def create(self) -> Iterator[tuple[str, BinaryIO]]:
        """Yield a fresh random name and a file to write; publish it (to ``new/``) on success."""
        name = secrets.token_hex(_NAME_BYTES)
        path = self._waiting(name)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        temp = path.with_name(_TEMP_PREFIX + name)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield name, handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
            _to_start_of_day(time.time(), path, path.parent, self.root)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def open(self, name: str) -> BinaryIO:
        # Settled, or still waiting: a file moves from new/ to its place at most once.
        for path in (self._path(name), self._waiting(name), self._path(name)):
            try:
                return path.open("rb")
            except FileNotFoundError:
                continue
        raise StorageError("no such blob")

    def delete(self, name: str) -> None:
        self._waiting(name).unlink(missing_ok=True)
        self._path(name).unlink(missing_ok=True)

    def names(self, older_than: float | None = None) -> Iterator[str]:
        """Every published blob, or those last changed before ``older_than`` (a timestamp)."""
        for pattern in ("??/*", f"{NEW}/*"):
            for path in self.root.glob(pattern):
                if not path.name.startswith(_TEMP_PREFIX) and _older(path, older_than):
                    yield path.name

    def settle(self, now: float) -> int:
        """Copy every waiting file into its place, as a new file, in random order; return how many.

        The copies are born now, all of them: their birth and change times, and
        those of the folders they enter, date no upload more finely than this run.
        Their modification times, and the folders', keep only the day.
        """
        waiting = [path for path in (self.root / NEW).glob("*") if not path.name.startswith(_TEMP_PREFIX)]
        secrets.SystemRandom().shuffle(waiting)
        touched = {self.root, self.root / NEW}
        settled = 0
        for source in waiting:
            target = self._path(source.name)
            target.parent.mkdir(mode=0o700, exist_ok=True)
            temp = target.with_name(_TEMP_PREFIX + source.name)
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with source.open("rb") as reading, os.fdopen(fd, "wb") as writing:
                    while chunk := reading.read(_COPY_CHUNK):
                        writing.write(chunk)
                    writing.flush()
                    os.fsync(writing.fileno())
            except (FileExistsError, FileNotFoundError):
                continue  # another run is settling it, or it was deleted meanwhile
            os.replace(temp, target)
            source.unlink(missing_ok=True)
            _to_start_of_day(now, target)
            touched.add(target.parent)
            settled += 1
        _to_start_of_day(now, *(path for path in touched if path.exists()))
        return settled

    def writable(self) -> bool:
        """Whether this process can make files in the store now (its root is a folder it may write)."""
        return self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)

    def blur_root_time(self) -> None:
        """Keep only the day of the root's own time (UTC).

        Earlier versions left the root with the moment its newest folder was
        made, which was the moment of an upload.
        """
        _to_start_of_day(self.root.stat().st_mtime, self.root)

    def remove_partial(self, older_than: float | None = None) -> int:
        """Delete files left half-written by a crash; return how many.

        With several processes, pass a time well in the past so that a file
        another process is writing right now is left alone.
        """
        removed = 0
        for path in [*self.root.glob(f"??/{_TEMP_PREFIX}*"), *self.root.glob(f"{NEW}/{_TEMP_PREFIX}*")]:
            if _older(path, older_than):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def start_of_day(timestamp: float) -> float:
    return float(int(timestamp) // 86_400 * 86_400)


def _to_start_of_day(timestamp: float, *targets: Path) -> None:
    """File times would tell when a reporter uploaded: give the file and the folders whose
    times its arrival changed only the day (UTC) of ``timestamp``."""
    day = start_of_day(timestamp)
    for target in targets:
        os.utime(target, (day, day))


def _older(path: Path, timestamp: float | None) -> bool:
    if timestamp is None:
        return True
    try:
        return path.stat().st_mtime < timestamp
    except FileNotFoundError:
        return False
