"""Submissions per second at the configured Argon2id cost, against the bound the cores set.

Each submission derives one Argon2id key (the receipt's), so the machine can
take at most ``cores / t`` submissions a second, where ``t`` is the time of
one derivation, measured here in the same run (several times, the best kept).
gunicorn (gunicorn.conf.py, with one worker per core) serves an
instance with three officers, and ``2 x cores`` clients submit reports as
fast as they are answered. The submission rate limit is raised for this
benchmark only, or it, not the machine, would be the bound.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import (
    CORES,
    OUT,
    REPORT_FIELDS,
    Client,
    Server,
    add_officers,
    csrf_token,
    fmt,
    log,
    make_instance,
    table,
    write_section,
)
from whistle import crypto
from whistle.crypto import KdfParams
from whistle.services.context import DerivationGate

GOAL_RATIO = 0.8
#: Clients per core: enough to keep every derivation slot busy (more only spin on 503 answers).
CLIENTS_PER_CORE = 2


@dataclass
class Result:
    kdf: KdfParams
    derivation_s: float
    #: Derivations per second with one on every core, through the gate (before and after the run).
    sustained: float
    submitted: int
    refused: int
    failed: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.submitted / self.seconds

    @property
    def bound(self) -> float:
        return CORES / self.derivation_s

    @property
    def ratio(self) -> float:
        return self.rate / self.bound

    @property
    def sustained_ratio(self) -> float:
        return self.rate / self.sustained


def one_derivation(kdf: KdfParams, times: int) -> float:
    """The best time of one derivation alone."""
    salt = crypto.new_salt()
    best = float("inf")
    for turn in range(times):
        started = time.perf_counter()
        crypto.derive_key(b"receipt %d" % turn, salt, kdf)
        best = min(best, time.perf_counter() - started)
    return best


def sustained_derivations(kdf: KdfParams, seconds: float) -> float:
    """Derivations per second with one running on every core for ``seconds``, through the server's gate.

    The gate runs them as the server does (on threads of lower priority), so on
    a busy machine this is the rate the server itself could reach at best.
    """
    gate = DerivationGate(slots=CORES, wait_seconds=60)
    salt = crypto.new_salt()
    done = [0] * CORES
    deadline = time.perf_counter() + seconds

    def derive(core: int) -> None:
        while time.perf_counter() < deadline:
            gate.derive_key(b"receipt %d" % core, salt, kdf)
            done[core] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=derive, args=(core,)) for core in range(CORES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    gate.close()
    return sum(done) / elapsed


def _submitter(port: int, counts: dict[str, int], lock: threading.Lock, stop: threading.Event) -> None:
    client = Client(port, timeout=60)
    token = csrf_token(client.get("/report").text)
    while not stop.is_set():
        try:
            status = client.post_form("/report", [("csrf_token", token), *REPORT_FIELDS]).status
            outcome = "submitted" if status == 200 else "refused" if status in (429, 503) else "failed"
        except OSError:
            outcome = "failed"
        if not stop.is_set():  # what is answered after the end does not count
            with lock:
                counts[outcome] += 1


def run(quick: bool = False, results: Path | None = None) -> Result:
    log("== Submissions per second at the configured Argon2id cost ==")
    kdf = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1) if quick else KdfParams()
    seconds = 2.0 if quick else 30.0
    workdir = OUT / "submissions"
    instance = make_instance(workdir / "instance", kdf=kdf)
    add_officers(instance, ["Olive Officer", "Bob Officer", "Carol Officer"])
    server = Server(
        instance, workdir / "server", workers=CORES, env={"WHISTLE_SUBMISSIONS_GLOBAL": "100000 per minute"}
    )
    counts = {"submitted": 0, "refused": 0, "failed": 0}
    try:
        derivation = one_derivation(kdf, 3 if quick else 5)
        sustained = [sustained_derivations(kdf, 1.0 if quick else 8.0)]
        with server:
            lock, stop = threading.Lock(), threading.Event()
            warm = Client(server.port)
            warm.post_form("/report", [("csrf_token", csrf_token(warm.get("/report").text)), *REPORT_FIELDS])
            threads = [
                threading.Thread(target=_submitter, args=(server.port, counts, lock, stop))
                for _ in range(CLIENTS_PER_CORE * CORES)
            ]
            for thread in threads:
                thread.start()
            time.sleep(0.5 if quick else 2.0)  # every client has started and is in its loop
            with lock:
                for key in counts:
                    counts[key] = 0
            started = time.perf_counter()
            time.sleep(seconds)
            stop.set()
            elapsed = time.perf_counter() - started
            for thread in threads:
                thread.join(timeout=60)
        derivation = min(derivation, one_derivation(kdf, 3 if quick else 5))
        sustained.append(sustained_derivations(kdf, 1.0 if quick else 8.0))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = Result(
        kdf, derivation, max(sustained), counts["submitted"], counts["refused"], counts["failed"], elapsed
    )
    log(
        f"  one derivation {fmt(derivation * 1000)} ms alone: bound {fmt(result.bound, 2)}/s; one a core "
        f"through the gate: {fmt(result.sustained, 2)}/s; measured {fmt(result.rate, 2)}/s = "
        f"{100 * result.ratio:.0f}% of the bound, {100 * result.sustained_ratio:.0f}% of the sustained rate "
        f"({result.submitted} submitted, {result.refused} refused, {result.failed} failed in {elapsed:.0f} s)"
    )
    _write(result, results)
    return result


def _write(result: Result, results: Path | None) -> None:
    body = table(
        [
            "Argon2id",
            "one derivation ms",
            "bound: cores / t per s",
            "sustained: one a core per s",
            "submissions per s",
            "of the bound",
            "of the sustained rate",
            "refused",
            "failed",
        ],
        [
            [
                f"`{result.kdf.encode()}`",
                fmt(result.derivation_s * 1000),
                fmt(result.bound, 2),
                fmt(result.sustained, 2),
                fmt(result.rate, 2),
                f"**{100 * result.ratio:.0f}%**",
                f"{100 * result.sustained_ratio:.0f}%",
                str(result.refused),
                str(result.failed),
            ]
        ],
    )
    notes = [
        "",
        f"gunicorn.conf.py with {CORES} workers (one a core; its default threads and derivation slots); "
        f"{2 * CORES} clients submitting a report (no file) as fast as they are answered, for "
        f"{result.seconds:.0f} s after a warm-up; three officers, so each submission also makes six HPKE "
        "wraps, plus two for the organisation. Submission rate limit raised to 100,000 a minute for this "
        "benchmark. One derivation: the best of five alone in the benchmark process, before and after the "
        "run. Sustained: derivations per second with one running on every core for 8 s, through the same "
        "gate as the server's (threads of lower priority), before and after the run, the better kept: on a "
        "shared machine this, not cores / t, is what the server could reach.",
        "",
        f"Goal: at least {GOAL_RATIO:.0%} of the bound - "
        f"**{'met' if result.ratio >= GOAL_RATIO else 'not met'}**.",
    ]
    write_section(
        "submissions",
        "Submissions per second",
        body + "\n" + "\n".join(notes),
        **({"results": results} if results else {}),
    )
