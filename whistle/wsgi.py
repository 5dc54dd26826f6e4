"""The WSGI entry point: ``gunicorn whistle.wsgi:app`` (what ``whistle serve`` runs).

WHISTLE_INSTANCE selects the instance folder."""

import contextlib
import ctypes
import ctypes.util

from whistle import create_app

#: glibc's mallopt() parameters.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def reuse_large_buffers() -> None:
    """Let glibc keep buffers of up to a few MiB for reuse instead of mapping each one afresh.

    An upload passes through buffers of 64 KiB to 1 MiB (gunicorn's reads, the
    multipart parser, the sealed spool). By default glibc maps every block over
    128 KiB separately and unmaps it when freed, so each buffer costs fresh,
    zeroed pages: on the benchmark machine that took more CPU than the
    encryption. Served processes only; elsewhere (musl, macOS) nothing changes.
    """
    with contextlib.suppress(OSError, AttributeError, TypeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 4 * 1024 * 1024)
        libc.mallopt(_M_TRIM_THRESHOLD, 32 * 1024 * 1024)


reuse_large_buffers()
app = create_app()
