"""Responsiveness under load: the landing page alone, then while the receipt form is hammered.

gunicorn (gunicorn.conf.py) with two workers serves an instance at the real
Argon2id cost. One client fetches the landing page over and over and records
each latency. In the second phase, 20 clients keep entering wrong receipts
and 5 keep submitting reports, as fast as they are answered (no pause, no
backing off: an attacker does not back off). Every answer is checked: a
wrong receipt must get 422 (not found), a report 200, the landing page 200;
429 (rate limit) and 503 (too many derivations at once) are the deliberate
refusals; anything else, or an error or timeout, is a failure.

Every client keeps its connection open between requests, as browsers do (a
new TCP connection a request cost the clients and the server more than the
answers did). The attackers are threads of this process; the visitor runs in
a process of its own, so that its timings do not include waiting for the
attackers' interpreter lock. All run on the same cores as the server: the CPU
time of the server's workers, of the attacking clients and of the
landing-page visitor is measured and reported.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path

from bench.common import (
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
    percentile,
    table,
    write_section,
)
from whistle import crypto
from whistle.crypto import KdfParams

GOAL_P95_GROWTH = 3.0
DELIBERATE = {429, 503}
RECEIPT_CLIENTS = 20
SUBMIT_CLIENTS = 5


@dataclass
class Phase:
    name: str
    landing_ms: list[float] = field(default_factory=list)
    statuses: dict[str, Counter[int | str]] = field(default_factory=dict)
    seconds: float = 0.0
    #: CPU seconds used meanwhile by the server's workers, the attackers' process and the visitor's.
    server_cpu: float = 0.0
    attackers_cpu: float = 0.0
    visitor_cpu: float = 0.0

    def answers(self) -> int:
        return sum(sum(counter.values()) for counter in self.statuses.values())

    def count(self, kind: str, status: int | str) -> None:
        self.statuses.setdefault(kind, Counter())[status] += 1

    def failures(self) -> int:
        expected = {"landing": {200}, "receipt": {422} | DELIBERATE, "report": {200} | DELIBERATE}
        return sum(
            n
            for kind, counter in self.statuses.items()
            for status, n in counter.items()
            if status not in expected[kind]
        )


def _visit(port: int, seconds: float, results: Queue[tuple[list[float], list[int | str], float]]) -> None:
    """The landing-page visitor, in a process of its own: its timings must not include waiting for
    the interpreter lock of the attackers' process, which a real visitor's browser never shares."""
    cpu = time.process_time()
    client = Client(port, timeout=30, keep_alive=True)
    latencies: list[float] = []
    statuses: list[int | str] = []
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        started = time.perf_counter()
        try:
            status: int | str = client.get("/").status
        except OSError as error:
            status = type(error).__name__
        if status == 200:
            latencies.append((time.perf_counter() - started) * 1000)
        statuses.append(status)
        time.sleep(0.05)
    results.put((latencies, statuses, time.process_time() - cpu))


def _landing(port: int, phase: Phase, seconds: float) -> None:
    """Run the visitor's process for ``seconds`` and record what it saw."""
    context = multiprocessing.get_context("spawn")
    results: Queue[tuple[list[float], list[int | str], float]] = context.Queue()
    visitor = context.Process(target=_visit, args=(port, seconds, results))
    visitor.start()
    latencies, statuses, cpu = results.get(timeout=seconds + 60)
    visitor.join(timeout=60)
    phase.landing_ms.extend(latencies)
    for status in statuses:
        phase.count("landing", status)
    phase.visitor_cpu = cpu


def _wrong_receipts(port: int, phase: Phase, stop: threading.Event) -> None:
    client = Client(port, timeout=30, keep_alive=True)
    token = csrf_token(client.get("/follow-up").text)
    while not stop.is_set():
        try:
            status: int | str = client.post_form(
                "/follow-up", [("csrf_token", token), ("receipt", crypto.new_receipt())]
            ).status
        except OSError as error:
            status = type(error).__name__
        phase.count("receipt", status)


def _submissions(port: int, phase: Phase, stop: threading.Event) -> None:
    client = Client(port, timeout=30, keep_alive=True)
    token = csrf_token(client.get("/report").text)
    while not stop.is_set():
        fields = [("csrf_token", token), *REPORT_FIELDS]
        try:
            status: int | str = client.post_form("/report", fields).status
        except OSError as error:
            status = type(error).__name__
        phase.count("report", status)


def _cpu_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """CPU seconds another process (all its threads) has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_phase(port: int, name: str, seconds: float, loaded: bool, workers: list[int] | None = None) -> Phase:
    phase = Phase(name)
    stop = threading.Event()
    threads = []
    if loaded:
        kinds = [_wrong_receipts] * RECEIPT_CLIENTS + [_submissions] * SUBMIT_CLIENTS
        threads += [threading.Thread(target=kind, args=(port, phase, stop)) for kind in kinds]
    server_cpu = sum(_process_cpu(pid) for pid in workers or [])
    clients_cpu = _cpu_seconds()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    _landing(port, phase, seconds)  # the visitor's whole time falls within the attack
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    phase.seconds = time.perf_counter() - started
    phase.server_cpu = sum(_process_cpu(pid) for pid in workers or []) - server_cpu
    phase.attackers_cpu = _cpu_seconds() - clients_cpu
    return phase


def run(quick: bool = False, results: Path | None = None) -> list[Phase]:
    log("== Responsiveness: the landing page alone, and under wrong receipts and submissions ==")
    kdf = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1) if quick else KdfParams()
    seconds = 1.5 if quick else 20.0
    workdir = OUT / "load"
    instance = make_instance(workdir / "instance", kdf=kdf)
    add_officers(instance, ["Olive Officer", "Bob Officer", "Carol Officer"])
    server = Server(instance, workdir / "server", workers=2)
    try:
        with server:
            Client(server.port).get("/")
            phases = [
                run_phase(server.port, "idle", seconds, loaded=False, workers=server.worker_pids),
                run_phase(server.port, "under load", seconds, loaded=True, workers=server.worker_pids),
            ]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for phase in phases:
        log(
            f"  {phase.name:>10}: landing median {fmt(median(phase.landing_ms))} ms, "
            f"p95 {fmt(percentile(phase.landing_ms, 0.95))} ms ({len(phase.landing_ms)} requests); "
            + "; ".join(f"{kind} {dict(counter)}" for kind, counter in phase.statuses.items())
            + f"; failures {phase.failures()}"
        )
        log(f"  {'':>10}  {_cpu_note(phase)}")
    _write(phases, kdf, seconds, results)
    return phases


def _write(phases: list[Phase], kdf: KdfParams, seconds: float, results: Path | None) -> None:
    idle, loaded = phases
    growth = percentile(loaded.landing_ms, 0.95) / percentile(idle.landing_ms, 0.95)
    failures = sum(phase.failures() for phase in phases)
    rows = []
    for phase in phases:
        rows.append(
            [
                phase.name,
                fmt(median(phase.landing_ms)),
                fmt(percentile(phase.landing_ms, 0.95)),
                str(len(phase.landing_ms)),
                _statuses(phase, "receipt", seconds),
                _statuses(phase, "report", seconds),
                str(phase.failures()),
            ]
        )
    body = table(
        [
            "phase",
            "landing median ms",
            "landing p95 ms",
            "landing requests",
            "wrong receipts: answers (per s)",
            "submissions: answers (per s)",
            "failed",
        ],
        rows,
    )
    notes = [
        "",
        f"gunicorn.conf.py with 2 workers (its default threads and derivation slots), Argon2id "
        f"`{kdf.encode()}`, {seconds:.0f} s per phase. Under load: {RECEIPT_CLIENTS} clients entering wrong "
        f"receipts and {SUBMIT_CLIENTS} submitting reports, "
        "each as fast as it is answered (threads of the benchmark's process); one visitor, in a process "
        "of its own, fetches the landing page every 50 ms in both phases. Every client keeps its "
        "connection open (HTTP keep-alive). "
        "The rate limits are the configured ones (in memory, per worker).",
        "",
        *[f"- {phase.name}: {_cpu_note(phase)}." for phase in phases],
        "",
        "The clients run on the same cores as the server, so what they use is taken from it.",
        "",
        f"Goal: landing p95 under load within {GOAL_P95_GROWTH:.0f}x its idle value — {growth:.1f}x "
        f"**{'met' if growth <= GOAL_P95_GROWTH else 'not met'}**; no failed request besides deliberate "
        f"429/503 — {failures} failed, **{'met' if failures == 0 else 'not met'}**.",
    ]
    write_section(
        "load",
        "Responsiveness under load",
        body + "\n" + "\n".join(notes),
        **({"results": results} if results else {}),
    )


def _cpu_note(phase: Phase) -> str:
    """Where the CPU went in a phase: the server's workers, the attacking clients and the visitor."""
    answers = phase.answers()
    parts = [
        f"server workers {fmt(phase.server_cpu)} s ({_share(phase.server_cpu, phase)} of one core, "
        f"{fmt(phase.server_cpu / answers * 1000, 2) if answers else '-'} ms an answer, derivations included)"
    ]
    if "receipt" in phase.statuses:
        attacks = answers - sum(phase.statuses.get("landing", Counter()).values())
        parts.append(
            f"attacking clients {fmt(phase.attackers_cpu)} s ({_share(phase.attackers_cpu, phase)}, "
            f"{fmt(phase.attackers_cpu / attacks * 1000, 2) if attacks else '-'} ms a request)"
        )
    parts.append(f"landing-page visitor {fmt(phase.visitor_cpu)} s ({_share(phase.visitor_cpu, phase)})")
    return "CPU: " + "; ".join(parts)


def _share(cpu: float, phase: Phase) -> str:
    return f"{cpu / phase.seconds * 100:.0f}%" if phase.seconds else "-"


def _statuses(phase: Phase, kind: str, seconds: float) -> str:
    counter = phase.statuses.get(kind)
    if not counter:
        return "-"
    total = sum(counter.values())
    parts = ", ".join(
        f"{status}: {n:,}" for status, n in sorted(counter.items(), key=lambda item: str(item[0]))
    )
    return f"{parts} ({total / seconds:,.1f}/s)"
