"""What cleaning an upload costs the server, now that each file is cleaned in a bounded child.

Through gunicorn, as a reporter sends them: each file is posted once with "keep
it exactly as it is" ticked (nothing is cleaned) and once without (cleaned in a
child process). The difference in the server's CPU time (the worker's, and its
children's) is what cleaning costs there; against cleaning the same bytes in
the benchmark's own process, what the child adds. Then the files of issue 15,
built to hurt the cleaner: what each costs the server, what the worker's
memory does, and what the officer is told.
"""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from PIL import Image

from bench.attachments import PeakWatch
from bench.common import (
    MB,
    OUT,
    REPORT_FIELDS,
    Client,
    Server,
    add_officers,
    csrf_token,
    fmt,
    log,
    make_instance,
    median,
    multipart_with_file,
    table,
    write_section,
)
from tests.hostile import docx_nested, docx_with_changes, docx_with_zeros
from whistle.services.attachments import CLEANING_TEXT
from whistle.services.cleaning import clean

#: The settings' default limit up to which files are cleaned.
MAX_CLEAN_BYTES = 32 * MB


@dataclass(frozen=True)
class Ordinary:
    name: str
    sent: int
    here_ms: float
    kept_ms: float
    cleaned_ms: float
    wall_ms: float

    @property
    def in_child_ms(self) -> float:
        return self.cleaned_ms - self.kept_ms

    @property
    def overhead_ms(self) -> float:
        return self.in_child_ms - self.here_ms


@dataclass(frozen=True)
class Hostile:
    name: str
    sent: int
    told: str
    server_ms: float
    wall_ms: float
    peak_mib: float


def photo(width: int, height: int) -> bytes:
    image = Image.effect_noise((width, height), 40).convert("RGB")
    exif = Image.Exif()
    exif[0x013B] = "Jane Doe"  # Artist
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def big_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side)).save(out, "PNG")
    return out.getvalue()


def server_cpu(worker: int) -> float:
    """CPU seconds of the worker, of its fork server and of the children that server has reaped."""
    process = psutil.Process(worker)
    total = sum(process.cpu_times()[:2])
    for child in process.children():
        times = child.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
    return total


def upload(server: Server, worker: int, data: bytes, keep: bool) -> tuple[float, float, str]:
    """Post a report with `data` as its file: the server's CPU seconds, wall seconds and page."""
    reporter = Client(server.port, timeout=120)
    fields = [("csrf_token", csrf_token(reporter.get("/report").text)), *REPORT_FIELDS]
    if keep:
        fields.append(("keep_original", "y"))
    content_type, length, body = multipart_with_file(
        fields, "attachments", "evidence", "application/octet-stream", [data], len(data)
    )
    cpu, wall = server_cpu(worker), time.perf_counter()
    reply = reporter.request(
        "POST", "/report", body, {"Content-Type": content_type, "Content-Length": str(length)}
    )
    wall, cpu = time.perf_counter() - wall, server_cpu(worker) - cpu
    if reply.status != 200:
        raise RuntimeError(f"the upload got {reply.status}:\n{server.log_tail()}")
    return cpu, wall, reply.text


def ordinary(server: Server, worker: int, name: str, data: bytes, rounds: int) -> Ordinary:
    started = time.process_time()
    for _ in range(rounds):
        clean(io.BytesIO(data), max_bytes=MAX_CLEAN_BYTES)
    here = (time.process_time() - started) / rounds
    kept = [upload(server, worker, data, keep=True) for _ in range(rounds)]
    cleaned = [upload(server, worker, data, keep=False) for _ in range(rounds)]
    return Ordinary(
        name,
        len(data),
        here * 1000,
        median([cpu for cpu, _, _ in kept]) * 1000,
        median([cpu for cpu, _, _ in cleaned]) * 1000,
        median([wall for _, wall, _ in cleaned]) * 1000,
    )


def hostile(server: Server, worker: int, name: str, data: bytes) -> Hostile:
    peaks = PeakWatch(worker)
    cpu, wall, page = upload(server, worker, data, keep=False)
    peak = peaks.stop()
    told = next((text for text in CLEANING_TEXT.values() if text in page), "?")
    return Hostile(name, len(data), told, cpu * 1000, wall * 1000, peak)


def run(quick: bool = False, results: Path | None = None) -> tuple[list[Ordinary], list[Hostile]]:
    log("== Cleaning uploads: in a bounded child, through gunicorn ==")
    rounds = 3 if quick else 10
    workdir = OUT / "cleaning"
    workdir.mkdir(parents=True, exist_ok=True)
    instance = make_instance(workdir / "instance")
    add_officers(instance, ["Olive Officer"])
    ordinary_files: list[tuple[str, Callable[[], bytes]]] = [
        ("photo 640x480", lambda: photo(640, 480)),
        ("photo 4000x3000", lambda: photo(4000, 3000)),
        ("docx, 2,000 tracked changes", lambda: docx_with_changes(2_000)),
    ]
    hostile_files: list[tuple[str, Callable[[], bytes]]] = [
        ("ZIP bomb: docx whose mimetype inflates to 300 MiB", lambda: docx_with_zeros("mimetype", 300)),
        ("4 million nested XML elements", lambda: docx_nested(4_000_000, padding=400_000)),
        ("PNG of 9,400 x 9,400 pixels", lambda: big_png(9_400)),
        (
            "docx of 1 million tracked changes (seconds of parsing)",
            lambda: docx_with_changes(1_000_000, 300_000),
        ),
    ]
    try:
        with Server(instance, workdir / "server") as server:
            (worker,) = server.worker_pids
            upload(server, worker, photo(64, 48), keep=False)  # warm-up: imports, and the fork server
            found = [ordinary(server, worker, name, make(), rounds) for name, make in ordinary_files]
            for row in found:
                log(
                    f"  {row.name}: {fmt(row.here_ms)} ms here, {fmt(row.in_child_ms)} ms in a child "
                    f"(+{fmt(row.overhead_ms)} ms)"
                )
            bad = [
                hostile(server, worker, name, make()) for name, make in hostile_files[: 2 if quick else None]
            ]
            for item in bad:
                log(f"  {item.name}: {fmt(item.server_ms)} ms, peak {fmt(item.peak_mib)} MiB; {item.told}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _write(found, bad, results)
    return found, bad


def _write(found: list[Ordinary], bad: list[Hostile], results: Path | None) -> None:
    body = table(
        [
            "file",
            "KB",
            "cleaning here, CPU ms",
            "in a child, server CPU ms",
            "the child's overhead, CPU ms",
            "upload, wall ms",
        ],
        [
            [
                row.name,
                fmt(row.sent / 1024),
                fmt(row.here_ms),
                fmt(row.in_child_ms),
                f"**{fmt(row.overhead_ms)}**",
                fmt(row.wall_ms),
            ]
            for row in found
        ],
    )
    body += (
        "\n\nOne gunicorn worker (gunicorn.conf.py). In a child: the server's CPU time (the worker's, its"
        " fork server's and the children's) for a report with the file, less the same with the file kept"
        " as sent (nothing cleaned); the median of the rounds. Here: `cleaning.clean` of the same bytes in"
        " the benchmark's process. CPU time is counted in ticks of 10 ms. Part of the child's overhead is"
        " that each child runs the imports of the"
        " server's main script again (gunicorn's), which Python 3.11's fork server does not preload.\n\n"
    )
    body += table(
        [
            "file built to hurt the cleaner",
            "KB sent",
            "server CPU ms",
            "wall ms",
            "worker peak MiB",
            "the officer is told",
        ],
        [
            [
                item.name,
                fmt(item.sent / 1024),
                fmt(item.server_ms),
                fmt(item.wall_ms),
                fmt(item.peak_mib),
                item.told,
            ]
            for item in bad
        ],
    )
    body += (
        "\n\nEach posted once in a report. Worker peak: the worker's own peak resident size (the child's"
        " memory is its own, bounded at 1 GiB). Before the bounds, the ZIP bomb was stored as 300 MiB, the"
        " nested XML took 15 s and 1.4 GB and the PNG 750 MB, in the worker."
    )
    write_section("cleaning", "Cleaning uploads", body, *([results] if results else []))
