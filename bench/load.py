"""Responsiveness under load: the landing page alone, then while the receipt form is hammered,
with the clients talking to gunicorn directly, then to nginx in front of it as docs/deploy.md says.

gunicorn (gunicorn.conf.py) with two workers serves an instance at the real
Argon2id cost. One client fetches the landing page over and over and records
each latency. In the second phase, 20 clients keep entering wrong receipts
and 5 keep submitting reports, as fast as they are answered (no pause, no
backing off: an attacker does not back off). Every answer is checked: a
wrong receipt must get 422 (not found), a report 200, the landing page 200;
429 (rate limit) and 503 (too many derivations at once) are the deliberate
refusals; anything else, or an error or timeout, is a failure.

The two phases run twice, each time on a gunicorn of its own (the same
instance and settings, every rate-limit counter empty):

- gunicorn alone: every client talks to gunicorn directly;
- nginx in front: every client talks to nginx (one worker process), which
  passes each request on to gunicorn over plain HTTP on the loopback, as
  configured by the nginx blocks of docs/deploy.md, section 7, read from the
  guide itself (bench/common.py: nginx_config): whistle-proxy.conf, with the
  outer bound on the receipt form and the report form (a POST over the
  guide's rate waits in nginx; one beyond its burst gets nginx's own 429,
  counted apart, as "429 by nginx"). No TLS. Without an nginx program, these
  phases are skipped, and RESULTS.md says so.

Each setup has its own goal line: the landing page's p95 under load within
3x its idle value, and no failed request.

Every client keeps its connection open between requests, as browsers do (a
new TCP connection a request cost the clients and the server more than the
answers did). The attackers are threads of this process; the visitor runs in
a process of its own, so that its timings do not include waiting for the
attackers' interpreter lock. All run on the same cores as the server: the CPU
time of the server's workers, of nginx's worker, of the attacking clients and
of the landing-page visitor is measured and reported.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.queues import Queue
from pathlib import Path

from bench.common import (
    OUT,
    REPORT_FIELDS,
    Client,
    Instance,
    Nginx,
    Reply,
    Server,
    add_officers,
    csrf_token,
    fmt,
    guide_bounds,
    log,
    make_instance,
    median,
    nginx_binary,
    nginx_version,
    percentile,
    table,
    write_section,
)
from whistle import crypto
from whistle.crypto import KdfParams

GOAL_P95_GROWTH = 3.0
#: nginx's own answer beyond the burst of its limit_req on the forms, as _status tells it apart.
NGINX_REFUSAL = "429 by nginx"
DELIBERATE: set[int | str] = {429, 503, NGINX_REFUSAL}
RECEIPT_CLIENTS = 20
SUBMIT_CLIENTS = 5
#: One event loop answers thousands of requests a second; more would only take the cores from gunicorn.
NGINX_WORKERS = 1
GUNICORN_ALONE = "gunicorn alone"
NGINX_IN_FRONT = "nginx in front"
INSTALL_NGINX = "install it (`apt-get install nginx` on Debian or Ubuntu) and run the benchmark again"


@dataclass(frozen=True)
class Setup:
    """What the clients talk to: its name and port, and the processes whose CPU time is counted."""

    name: str
    port: int
    server_pids: list[int]
    nginx_pids: list[int] = field(default_factory=list)

    @property
    def front(self) -> str:
        """Who answers when the portal does not (see _status)."""
        return "nginx" if self.nginx_pids else "gunicorn"


@dataclass
class Phase:
    setup: str
    name: str
    landing_ms: list[float] = field(default_factory=list)
    statuses: dict[str, Counter[int | str]] = field(default_factory=dict)
    seconds: float = 0.0
    #: CPU seconds used meanwhile by the server's workers, nginx's worker (with nginx in front),
    #: the attackers' process and the visitor's.
    server_cpu: float = 0.0
    nginx_cpu: float | None = None
    attackers_cpu: float = 0.0
    visitor_cpu: float = 0.0

    def answers(self) -> int:
        return sum(sum(counter.values()) for counter in self.statuses.values())

    def portal_answers(self) -> int:
        """The answers that came from the portal, not from nginx or gunicorn themselves."""
        return sum(
            n
            for counter in self.statuses.values()
            for status, n in counter.items()
            if isinstance(status, int)
        )

    def count(self, kind: str, status: int | str) -> None:
        self.statuses.setdefault(kind, Counter())[status] += 1

    def failures(self) -> int:
        expected: dict[str, set[int | str]] = {
            "landing": {200},
            "receipt": DELIBERATE | {422},
            "report": DELIBERATE | {200},
        }
        return sum(
            n
            for kind, counter in self.statuses.items()
            for status, n in counter.items()
            if status not in expected[kind]
        )


def _status(ask: Callable[[], Reply], front: str) -> int | str:
    """The status of the answer to ``ask()``, or the name of the error it met. Every answer of the
    portal carries its Content-Security-Policy: one without it is the ``front`` server's own (nginx's
    429 beyond the burst of its limit_req, a 502 if gunicorn did not answer; gunicorn's 400)."""
    try:
        reply = ask()
    except OSError as error:
        return type(error).__name__
    return reply.status if "Content-Security-Policy" in reply.headers else f"{reply.status} by {front}"


def _visit(
    port: int, front: str, seconds: float, results: Queue[tuple[list[float], list[int | str], float]]
) -> None:
    """The landing-page visitor, in a process of its own: its timings must not include waiting for
    the interpreter lock of the attackers' process, which a real visitor's browser never shares."""
    cpu = time.process_time()
    client = Client(port, timeout=30, keep_alive=True)
    latencies: list[float] = []
    statuses: list[int | str] = []
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        started = time.perf_counter()
        status = _status(partial(client.get, "/"), front)
        if status == 200:
            latencies.append((time.perf_counter() - started) * 1000)
        statuses.append(status)
        time.sleep(0.05)
    results.put((latencies, statuses, time.process_time() - cpu))


def measure_landing(setup: Setup, phase: Phase, seconds: float) -> None:
    """Run the visitor's process for ``seconds`` and record what it saw."""
    context = multiprocessing.get_context("spawn")
    results: Queue[tuple[list[float], list[int | str], float]] = context.Queue()
    visitor = context.Process(target=_visit, args=(setup.port, setup.front, seconds, results))
    visitor.start()
    latencies, statuses, cpu = results.get(timeout=seconds + 60)
    visitor.join(timeout=60)
    phase.landing_ms.extend(latencies)
    for status in statuses:
        phase.count("landing", status)
    phase.visitor_cpu = cpu


def _wrong_receipts(setup: Setup, phase: Phase, stop: threading.Event) -> None:
    client = Client(setup.port, timeout=30, keep_alive=True)
    token = csrf_token(client.get("/follow-up").text)
    while not stop.is_set():
        fields = [("csrf_token", token), ("receipt", crypto.new_receipt())]
        phase.count("receipt", _status(partial(client.post_form, "/follow-up", fields), setup.front))


def _submissions(setup: Setup, phase: Phase, stop: threading.Event) -> None:
    client = Client(setup.port, timeout=30, keep_alive=True)
    fields = [("csrf_token", csrf_token(client.get("/report").text)), *REPORT_FIELDS]
    while not stop.is_set():
        phase.count("report", _status(partial(client.post_form, "/report", fields), setup.front))


def _cpu_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """CPU seconds another process (all its threads) has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _processes_cpu(pids: list[int]) -> float:
    return sum(_process_cpu(pid) for pid in pids)


def run_phase(setup: Setup, name: str, seconds: float, loaded: bool) -> Phase:
    phase = Phase(setup.name, name)
    stop = threading.Event()
    threads = []
    if loaded:
        kinds = [_wrong_receipts] * RECEIPT_CLIENTS + [_submissions] * SUBMIT_CLIENTS
        threads += [threading.Thread(target=kind, args=(setup, phase, stop)) for kind in kinds]
    server_cpu = _processes_cpu(setup.server_pids)
    nginx_cpu = _processes_cpu(setup.nginx_pids)
    clients_cpu = _cpu_seconds()
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    measure_landing(setup, phase, seconds)  # the visitor's whole time falls within the attack
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    phase.seconds = time.perf_counter() - started
    phase.server_cpu = _processes_cpu(setup.server_pids) - server_cpu
    if setup.nginx_pids:
        phase.nginx_cpu = _processes_cpu(setup.nginx_pids) - nginx_cpu
    phase.attackers_cpu = _cpu_seconds() - clients_cpu
    return phase


def _pair(instance: Instance, workdir: Path, seconds: float, nginx: str | None = None) -> list[Phase]:
    """Idle, then under load, on a gunicorn of its own (its rate-limit counters empty): the clients
    talk to it directly, or, given an nginx program, to nginx in front of it."""
    with Server(instance, workdir / "server", workers=2) as server, ExitStack() as stack:
        setup = Setup(GUNICORN_ALONE, server.port, server.worker_pids)
        if nginx:
            proxy = stack.enter_context(Nginx(nginx, workdir / "nginx", server.port, NGINX_WORKERS))
            setup = Setup(NGINX_IN_FRONT, proxy.port, server.worker_pids, proxy.worker_pids)
        Client(setup.port).get("/")
        return [
            run_phase(setup, "idle", seconds, loaded=False),
            run_phase(setup, "under load", seconds, loaded=True),
        ]


def run(quick: bool = False, results: Path | None = None) -> list[Phase]:
    log("== Responsiveness: the landing page alone, and under wrong receipts and submissions ==")
    kdf = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1) if quick else KdfParams()
    seconds = 1.5 if quick else 20.0
    nginx = nginx_binary()
    if nginx is None:
        log(f"  no nginx program found: the phases with nginx in front are skipped; {INSTALL_NGINX}")
    workdir = OUT / "load"
    instance = make_instance(workdir / "instance", kdf=kdf)
    add_officers(instance, ["Olive Officer", "Bob Officer", "Carol Officer"])
    try:
        phases = _pair(instance, workdir / "gunicorn", seconds)
        if nginx:
            phases += _pair(instance, workdir / "nginx", seconds, nginx)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for phase in phases:
        log(
            f"  {phase.setup}, {phase.name}: landing median {fmt(median(phase.landing_ms))} ms, "
            f"p95 {fmt(percentile(phase.landing_ms, 0.95))} ms ({len(phase.landing_ms)} requests); "
            + "; ".join(f"{kind} {dict(counter)}" for kind, counter in phase.statuses.items())
            + f"; failures {phase.failures()}"
        )
        log(f"    {_cpu_note(phase)}")
    _write(phases, kdf, seconds, nginx_version(nginx) if nginx else None, results)
    return phases


def _write(
    phases: list[Phase], kdf: KdfParams, seconds: float, nginx: str | None, results: Path | None
) -> None:
    rows = [
        [
            phase.setup,
            phase.name,
            fmt(median(phase.landing_ms)),
            fmt(percentile(phase.landing_ms, 0.95)),
            str(len(phase.landing_ms)),
            _statuses(phase, "receipt", seconds),
            _statuses(phase, "report", seconds),
            str(phase.failures()),
        ]
        for phase in phases
    ]
    body = table(
        [
            "clients talk to",
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
    in_front = (
        f"every client talks to nginx ({nginx}, {NGINX_WORKERS} worker process, `access_log off`) on "
        "the loopback, configured from the nginx blocks of docs/deploy.md, section 7, as the benchmark "
        "reads them: whistle-proxy.conf (each request passed on to gunicorn on a connection of its own) "
        f"and the outer bound on the two forms (`limit_req` without `nodelay`: {guide_bounds()}; a POST "
        "over the rate waits in nginx, and one beyond the burst gets nginx's own 429, counted as "
        f'"{NGINX_REFUSAL}"). '
        "Plain HTTP: the cost of TLS is not in these figures."
        if nginx
        else "not measured: no nginx program was found on this machine; " + INSTALL_NGINX + "."
    )
    notes = [
        "",
        f"gunicorn.conf.py with 2 workers (its default threads and derivation slots), Argon2id "
        f"`{kdf.encode()}`, {seconds:.0f} s per phase. Under load: {RECEIPT_CLIENTS} clients entering wrong "
        f"receipts and {SUBMIT_CLIENTS} submitting reports, "
        "each as fast as it is answered (threads of the benchmark's process); one visitor, in a process "
        "of its own, fetches the landing page every 50 ms in both phases. Every client keeps its "
        "connection open (HTTP keep-alive). "
        "The rate limits are the configured ones (in memory, per worker). Each pair of phases has a "
        "gunicorn of its own (the same instance and settings), so both start with empty counters.",
        "",
        f"- **{GUNICORN_ALONE}**: every client talks to gunicorn directly (its own `gthread` worker).",
        f"- **{NGINX_IN_FRONT}**: {in_front}",
        "",
        *[f"- {phase.setup}, {phase.name}: {_cpu_note(phase)}." for phase in phases],
        "",
        "The clients run on the same cores as the server, so what they use is taken from it (the "
        "faster they are answered, the more they use).",
        *[
            "\n" + _goal(setup, [phase for phase in phases if phase.setup == setup])
            for setup in _setups(phases)
        ],
    ]
    write_section(
        "load",
        "Responsiveness under load",
        body + "\n" + "\n".join(notes),
        **({"results": results} if results else {}),
    )


def _setups(phases: list[Phase]) -> list[str]:
    return list(dict.fromkeys(phase.setup for phase in phases))


def _goal(setup: str, phases: list[Phase]) -> str:
    idle, loaded = phases
    growth = percentile(loaded.landing_ms, 0.95) / percentile(idle.landing_ms, 0.95)
    failures = sum(phase.failures() for phase in phases)
    return (
        f"Goal, **{setup}**: landing p95 under load within {GOAL_P95_GROWTH:.0f}x its idle value — "
        f"{growth:.1f}x **{_met(growth <= GOAL_P95_GROWTH)}**; no failed request besides deliberate "
        f"refusals (429, 503, {NGINX_REFUSAL}) — {failures} failed, **{_met(failures == 0)}**."
    )


def _met(met: bool) -> str:
    return "met" if met else "not met"


def _cpu_note(phase: Phase) -> str:
    """Where the CPU went in a phase: the server's workers, nginx's, the attacking clients and the visitor."""
    answers, portal = phase.answers(), phase.portal_answers()
    parts = [
        f"server workers {fmt(phase.server_cpu)} s ({_share(phase.server_cpu, phase)} of one core, "
        f"{fmt(phase.server_cpu / portal * 1000, 2) if portal else '-'} ms an answer from the portal, "
        "derivations included)"
    ]
    if phase.nginx_cpu is not None:
        parts.append(
            f"nginx worker {fmt(phase.nginx_cpu)} s ({_share(phase.nginx_cpu, phase)}, "
            f"{fmt(phase.nginx_cpu / answers * 1000, 2) if answers else '-'} ms an answer)"
        )
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
