"""Attachments through the real server: upload and officer download, against the machine's own limit.

The limit is measured in the same run, on the same disk: ``crypto.encrypt_stream``
from a generator-backed reader into a file in the instance's store folder
(flushed and fsynced, as the store does) for uploads, and ``crypto.decrypt_stream``
of that file for downloads. Each transfer goes through gunicorn (gunicorn.conf.py,
one worker) as a subprocess; the worker's peak resident memory is its VmHWM,
reset before each transfer (or, where the kernel does not allow that, the
highest VmRSS seen while polling every 20 ms).

Argon2id runs with cheap parameters on this instance, so that the one
derivation of a submission does not count against the file's throughput.

For context, not as a goal: how fast the same bytes go through a TCP
connection on 127.0.0.1 alone, from another process into this one's reused
buffer as a download does, with no crypto, disk or HTTP at all. A download
cannot be faster than that, whatever the server does.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select

from bench.common import (
    MB,
    OUT,
    REPORT_FIELDS,
    Client,
    Instance,
    PatternReader,
    Server,
    add_officers,
    csrf_token,
    fmt,
    log,
    make_instance,
    multipart_with_file,
    pattern,
    peak_mib,
    reset_peak,
    rss_mib,
    table,
    write_section,
)
from whistle import crypto
from whistle.db import make_engine
from whistle.models import Attachment, Report
from whistle.storage import SealedStore

GOAL_RATIO = 0.5
GOAL_PEAK_MIB = 128
#: How much more the largest file may take than the smallest and still count as flat.
GROWTH_MIB = 16


@dataclass
class Transfer:
    """The best of a few rounds of one file size: server transfers and the machine's limit."""

    size: int
    upload: Timing
    upload_limit: Timing
    upload_peak_mib: float
    download: Timing
    download_limit: Timing
    download_peak_mib: float
    baseline_mib: float
    loopback: Timing

    def rate(self, timing: Timing) -> float:
        return self.size / MB / timing.wall

    @property
    def upload_ratio(self) -> float:
        return self.upload_limit.wall / self.upload.wall

    @property
    def download_ratio(self) -> float:
        return self.download_limit.wall / self.download.wall

    @property
    def delivery_ratio(self) -> float:
        """The download against decrypting the bytes and then sending them over the loopback."""
        return (self.download_limit.wall + self.loopback.wall) / self.download.wall


class PeakWatch:
    """The worker's peak resident memory during a transfer."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.polled = rss_mib(pid)
        self.exact = reset_peak(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.polled = max(self.polled, rss_mib(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.polled, peak_mib(self.pid)) if self.exact else self.polled


@dataclass
class Timing:
    wall: float
    cpu: float


def cpu_seconds(pid: int | None = None) -> float:
    """User and system CPU time of a process (this one by default), all threads."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stopwatch:
    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid
        self.wall = time.perf_counter()
        self.cpu = cpu_seconds(pid)

    def stop(self) -> Timing:
        return Timing(time.perf_counter() - self.wall, cpu_seconds(self.pid) - self.cpu)


def machine_limit(store: Path, size: int) -> tuple[Timing, Timing]:
    """Time to seal ``size`` bytes into a file in the store folder, and to open them again."""
    key, associated_data = crypto.new_key(), crypto.context("bench", "limit")
    path = store / "limit.sealed"
    try:
        watch = Stopwatch()
        with path.open("wb") as sink:
            crypto.encrypt_stream(key, associated_data, PatternReader(size), sink)  # type: ignore[arg-type]
            sink.flush()
            os.fsync(sink.fileno())
        sealed = watch.stop()
        watch = Stopwatch()
        with path.open("rb") as source:
            for _chunk in crypto.decrypt_stream(key, associated_data, source):
                pass
        return sealed, watch.stop()
    finally:
        path.unlink(missing_ok=True)


#: The sender of :func:`loopback`: waits for one byte, then sends as many as it is told.
_SENDER = """
import os, socket, sys
port, size = int(sys.argv[1]), int(sys.argv[2])
block = os.urandom(1 << 20)
with socket.create_connection(("127.0.0.1", port)) as connection:
    connection.recv(1)
    while size:
        piece = block[: min(size, len(block))]
        connection.sendall(piece)
        size -= len(piece)
"""


def loopback(size: int) -> Timing:
    """Time to receive ``size`` bytes over TCP on 127.0.0.1 from another process, as downloads are read."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        sender = subprocess.Popen([sys.executable, "-c", _SENDER, str(port), str(size)])  # noqa: S603
        try:
            connection, _address = listener.accept()
            with connection:
                buffer = memoryview(bytearray(MB))
                received = 0
                watch = Stopwatch()
                connection.sendall(b"!")
                while count := connection.recv_into(buffer):
                    received += count
                timing = watch.stop()
        finally:
            sender.wait(timeout=60)
    if received != size:
        raise RuntimeError(f"the loopback gave {received} bytes, not {size}")
    return timing


def _latest_attachment(instance: Instance) -> tuple[str, str]:
    engine = make_engine(instance.database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(Report.public_id, Attachment.public_id)
                .join(Attachment, Attachment.report_id == Report.id)
                .order_by(Attachment.id.desc())
                .limit(1)
            ).one()
            return row[0], row[1]
    finally:
        engine.dispose()


def transfer(server: Server, instance: Instance, officer: str, size: int, rounds: int) -> Transfer:
    """Upload and download a file of ``size`` bytes ``rounds`` times; keep the best of each figure.

    The best (shortest) time is the one least disturbed by whatever else the
    machine was doing; the limit is measured just before each round.
    """
    (pid,) = server.worker_pids
    store = instance.path / "files"
    store.mkdir(exist_ok=True)
    best: Transfer | None = None
    for _round in range(rounds):
        limit_up, limit_down = machine_limit(store, size)
        through = loopback(size)
        baseline = rss_mib(pid)
        upload, upload_peak = _upload(server, pid, size)
        report_id, attachment_id = _latest_attachment(instance)
        client = Client(server.port, timeout=600)
        client.login(officer)
        peaks = PeakWatch(pid)
        watch = Stopwatch(pid)
        received = _download(client, f"/officer/reports/{report_id}/attachments/{attachment_id}")
        download = watch.stop()
        download_peak = peaks.stop()
        if received != size:
            raise RuntimeError(f"the download gave {received} bytes, not {size}")
        done = Transfer(
            size, upload, limit_up, upload_peak, download, limit_down, download_peak, baseline, through
        )
        best = done if best is None else _best(best, done)
        _remove_reports(instance)
    assert best is not None
    return best


def _best(one: Transfer, other: Transfer) -> Transfer:
    def faster(a: Timing, b: Timing) -> Timing:
        return a if a.wall <= b.wall else b

    return Transfer(
        one.size,
        faster(one.upload, other.upload),
        faster(one.upload_limit, other.upload_limit),
        max(one.upload_peak_mib, other.upload_peak_mib),
        faster(one.download, other.download),
        faster(one.download_limit, other.download_limit),
        max(one.download_peak_mib, other.download_peak_mib),
        min(one.baseline_mib, other.baseline_mib),
        faster(one.loopback, other.loopback),
    )


def _upload(server: Server, pid: int, size: int) -> tuple[Timing, float]:
    reporter = Client(server.port, timeout=600)
    fields = [("csrf_token", csrf_token(reporter.get("/report").text)), *REPORT_FIELDS]
    content_type, length, body = multipart_with_file(
        fields, "attachments", "interview.mp4", "video/mp4", pattern(size), size
    )
    peaks = PeakWatch(pid)
    watch = Stopwatch(pid)
    reply = reporter.request(
        "POST", "/report", body, {"Content-Type": content_type, "Content-Length": str(length)}
    )
    upload = watch.stop()
    peak = peaks.stop()
    if reply.status != 200:
        raise RuntimeError(f"the upload of {size} bytes got {reply.status}:\n{server.log_tail()}")
    return upload, peak


def _remove_reports(instance: Instance) -> None:
    """Delete the benchmark's reports and their sealed files, so the disk holds one copy at most."""
    engine = make_engine(instance.database_url)
    try:
        with engine.begin() as connection:
            names = list(connection.scalars(select(Attachment.blob_name)))
            connection.execute(delete(Report))
    finally:
        engine.dispose()
    store = SealedStore(instance.path / "files")
    for name in names:
        store.delete(name)


def _download(client: Client, path: str) -> int:
    """Stream a response into one reused buffer, a mebibyte at a time; return its length.

    Reading into a buffer keeps the client from being the bottleneck (a fresh
    megabyte object for every read costs it more than the server spends).
    """
    connection = http.client.HTTPConnection("127.0.0.1", client.port, timeout=client.timeout)
    buffer = bytearray(MB)
    try:
        connection.request("GET", path, headers=client.headers())
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"the download got {response.status}")
        received = 0
        while count := response.readinto(buffer):
            received += count
        return received
    finally:
        connection.close()


def run(quick: bool = False, results: Path | None = None) -> list[Transfer]:
    log("== Attachments: upload and download through gunicorn, against AES-256-GCM + disk ==")
    sizes = [1 * MB, 4 * MB] if quick else [10 * MB, 100 * MB, 1024 * MB]
    workdir = OUT / "attachments"
    workdir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(workdir).free
    skipped = [size for size in sizes if 3 * size + 512 * MB > free]
    sizes = [size for size in sizes if size not in skipped]
    for size in skipped:
        log(f"  skipping {size // MB} MB: {free // MB} MB of disk free, {(3 * size) // MB + 512} MB needed")
    instance = make_instance(workdir / "instance")
    officer = add_officers(instance, ["Olive Officer"])[0]
    server = Server(instance, workdir / "server", env={"WHISTLE_MAX_FILE_BYTES": str(max(sizes) + MB)})
    transfers = []
    try:
        with server:
            transfer(server, instance, officer, MB, rounds=1)  # warm-up: the first request imports a lot
            for size in sizes:
                done = transfer(
                    server, instance, officer, size, rounds=1 if quick else 2 if size > 256 * MB else 3
                )
                transfers.append(done)
                log(
                    f"  {size // MB:>5} MB: upload {fmt(done.rate(done.upload))} MB/s "
                    f"({100 * done.upload_ratio:.0f}% of {fmt(done.rate(done.upload_limit))}), "
                    f"peak {fmt(done.upload_peak_mib)} MiB; download {fmt(done.rate(done.download))} MB/s "
                    f"({100 * done.download_ratio:.0f}% of {fmt(done.rate(done.download_limit))}), "
                    f"peak {fmt(done.download_peak_mib)} MiB; server CPU {fmt(done.upload.cpu, 2)} s up, "
                    f"{fmt(done.download.cpu, 2)} s down (limit {fmt(done.upload_limit.cpu, 2)} s, "
                    f"{fmt(done.download_limit.cpu, 2)} s); loopback alone "
                    f"{fmt(done.rate(done.loopback))} MB/s"
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _write(transfers, skipped, results)
    return transfers


def _write(transfers: list[Transfer], skipped: list[int], results: Path | None) -> None:
    rows = [
        [
            f"{t.size // MB:,} MB",
            fmt(t.rate(t.upload)),
            fmt(t.rate(t.upload_limit)),
            f"**{100 * t.upload_ratio:.0f}%**",
            f"{fmt(t.upload.cpu, 2)} / {fmt(t.upload_limit.cpu, 2)}",
            fmt(t.upload_peak_mib),
            fmt(t.rate(t.download)),
            fmt(t.rate(t.download_limit)),
            f"**{100 * t.download_ratio:.0f}%**",
            f"{fmt(t.download.cpu, 2)} / {fmt(t.download_limit.cpu, 2)}",
            fmt(t.download_peak_mib),
            fmt(t.baseline_mib),
            fmt(t.rate(t.loopback)),
            f"{t.delivery_ratio:.0%}",
        ]
        for t in transfers
    ]
    upload_ok = all(t.upload_ratio >= GOAL_RATIO for t in transfers)
    download_ok = all(t.download_ratio >= GOAL_RATIO for t in transfers)
    delivery_ok = all(t.delivery_ratio >= GOAL_RATIO for t in transfers)
    peaks = [max(t.upload_peak_mib, t.download_peak_mib) for t in transfers]
    memory_ok = bool(peaks) and max(peaks) < GOAL_PEAK_MIB and peaks[-1] - peaks[0] <= GROWTH_MIB
    body = table(
        [
            "file",
            "upload MB/s",
            "limit MB/s",
            "upload / limit",
            "CPU s: server / limit",
            "upload peak MiB",
            "download MB/s",
            "limit MB/s",
            "download / limit",
            "CPU s: server / limit",
            "download peak MiB",
            "idle worker MiB",
            "loopback MB/s",
            "download / (limit + loopback)",
        ],
        rows,
    )
    notes = [
        "",
        "Upload: `POST /report` with one 'video/mp4' file (multipart, streamed by the client), timed from "
        "the first byte sent to the receipt page. Download: an officer's `GET` of that attachment, streamed "
        "and discarded. Limit: `crypto.encrypt_stream` of as many bytes from a generator-backed reader into "
        "a file in the store folder (fsynced), and `crypto.decrypt_stream` of that file, in the benchmark "
        "process, just before each round. Best of 3 rounds (2 for 1 GB). CPU: the worker's CPU seconds for "
        "the transfer against the benchmark's for the limit (steadier than wall time on a busy machine). "
        "Peak: the gunicorn worker's VmHWM, reset before each transfer. Loopback: the same bytes received "
        "over TCP on 127.0.0.1 from another process alone (no crypto, disk or HTTP), in the same reused "
        "buffer as the download: no download can be faster, so against the download limit it caps the "
        "download ratio at loopback / limit. MB = 2^20 bytes.",
        "",
        f"Goal: at least {GOAL_RATIO:.0%} of the limit - uploads **{'met' if upload_ok else 'not met'}**, "
        f"downloads **{'met' if download_ok else 'not met'}** (against decrypting and then sending the "
        f"bytes over the loopback, the work a download cannot avoid: "
        f"**{'met' if delivery_ok else 'not met'}**); peak "
        f"memory flat in the file size (largest within {GROWTH_MIB} MiB of smallest) and under "
        f"{GOAL_PEAK_MIB} MiB - "
        f"**{'met' if memory_ok else 'not met'}**.",
    ]
    if skipped:
        notes.append(f"Skipped for lack of disk space: {', '.join(f'{s // MB} MB' for s in skipped)}.")
    write_section("attachments", "Attachments", body + "\n" + "\n".join(notes), **_where(results))


def _where(results: Path | None) -> dict[str, Path]:
    return {"results": results} if results is not None else {}
