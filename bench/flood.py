"""One attacker floods the portal while genuine people act: how long each takes to get through.

gunicorn (gunicorn.conf.py, one worker, as it runs with the counters in
memory) serves an instance at the real Argon2id cost, with three officers. One
attacker runs nine threads, each asking again the moment it is answered, on a
kept-alive connection: two try made-up logins, one wrong passwords for an
officer's own address, three random receipts and three send junk reports.

Meanwhile genuine people act, one after another, several rounds: a new
reporter sends a report (the form, then the post), a returning reporter opens
their report with its receipt, and the officer logs in from the browser they
have logged in from before. Each is timed from the first request to the answer
that lets them in; a "busy" page (503) is sent again two seconds later, as a
person would. A visitor, in a process of its own, fetches the landing page every
50 ms, first with no flood and then throughout it.

Goals: each genuine action through within 60 s, and none failed; the landing
page's p95 under the flood within 3x its idle value (the goal of the load
benchmark).
"""

from __future__ import annotations

import re
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench.common import (
    OUT,
    PASSWORD,
    REPORT_FIELDS,
    Client,
    Reply,
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
from bench.load import GOAL_P95_GROWTH, Phase, Setup, measure_landing
from whistle import crypto
from whistle.crypto import KdfParams

GOAL_SECONDS = 60.0
ATTACK = [
    "login",
    "login",
    "officer's password",
    "receipt",
    "receipt",
    "receipt",
    "report",
    "report",
    "report",
]
JOURNEYS = ("new report", "receipt check", "officer login")
BUSY_PAUSE = 2.0
RECEIPT = r"\b([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})\b"


@dataclass
class Flood:
    answers: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    #: Per journey: seconds each took, how many times "busy" was answered, and failures.
    took: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in JOURNEYS})
    resent: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    idle: Phase | None = None
    flooded: Phase | None = None


def _attack(port: int, kind: str, officer: str, stop: threading.Event, flood: Flood) -> None:
    client = Client(port, timeout=120, keep_alive=True)
    while not stop.is_set():
        try:
            if kind == "login":
                fields = [("email", f"{secrets.token_hex(4)}@example.org"), ("password", "a guess")]
                reply = client.submit_form("/officer/login", fields)
            elif kind == "officer's password":
                reply = client.submit_form(
                    "/officer/login", [("email", officer), ("password", secrets.token_hex(8))]
                )
            elif kind == "receipt":
                reply = client.submit_form("/follow-up", [("receipt", crypto.new_receipt())])
            else:
                reply = client.submit_form(
                    "/report", [*REPORT_FIELDS[:1], ("what_happened", "junk"), *REPORT_FIELDS[2:]]
                )
            flood.answers[f"{kind}: {reply.status}"] += 1
        except (OSError, RuntimeError) as error:
            flood.answers[f"{kind}: {type(error).__name__}"] += 1


def _through(name: str, flood: Flood, act: Callable[[], Reply], wanted: int) -> None:
    """Time one genuine action until it gets ``wanted``; a 503 is sent again, as a person would."""
    started = time.perf_counter()
    while True:
        try:
            reply = act()
        except (OSError, RuntimeError):
            flood.failed[name] += 1
            return
        if reply.status != 503 or time.perf_counter() - started > GOAL_SECONDS:
            break
        flood.resent[name] += 1
        time.sleep(BUSY_PAUSE)
    if reply.status == wanted:
        flood.took[name].append(time.perf_counter() - started)
    else:
        flood.failed[name] += 1


def _genuine(port: int, officer: str, browser: Client, receipts: list[str], flood: Flood) -> None:
    credentials = [("email", officer), ("password", PASSWORD)]
    for receipt in receipts:
        reporter, returning = Client(port, timeout=120), Client(port, timeout=120)
        _through("new report", flood, partial(reporter.submit_form, "/report", REPORT_FIELDS), 200)
        check = partial(returning.submit_form, "/follow-up", [("receipt", receipt)])
        _through("receipt check", flood, check, 303)
        _through("officer login", flood, partial(browser.submit_form, "/officer/login", credentials), 303)
        _log_out(browser)


def _log_out(browser: Client) -> None:
    page = browser.get("/officer/")
    if page.status == 200:
        browser.post_form("/officer/logout", [("csrf_token", csrf_token(page.text))])


def _receipts(port: int, count: int) -> list[str]:
    found = []
    for _ in range(count):
        reply = Client(port).submit_form("/report", REPORT_FIELDS)
        match = re.search(RECEIPT, reply.text)
        if reply.status != 200 or match is None:
            raise RuntimeError(f"a report before the flood failed with {reply.status}")
        found.append(match.group(1))
    return found


def run(quick: bool = False, results: Path | None = None) -> Flood:
    log("== A flood by one attacker while genuine people act ==")
    kdf = KdfParams(time_cost=1, memory_cost=8 * 1024, parallelism=1) if quick else KdfParams()
    rounds = 2 if quick else 5
    idle_seconds = 2.0 if quick else 10.0
    workdir = OUT / "flood"
    instance = make_instance(workdir / "instance", kdf=kdf)
    officer = add_officers(instance, ["Olive Officer", "Bob Officer", "Carol Officer"])[0]
    flood = Flood()
    try:
        with Server(instance, workdir / "server", workers=1) as server:
            setup = Setup("gunicorn alone", server.port, server.worker_pids)
            receipts = _receipts(server.port, rounds)
            browser = Client(server.port, timeout=120)
            browser.login(officer)  # the officer's own browser, known from now on
            _log_out(browser)
            flood.idle = Phase(setup.name, "idle")
            measure_landing(setup, flood.idle, idle_seconds)
            stop = threading.Event()
            attackers = [
                threading.Thread(target=_attack, args=(server.port, kind, officer, stop, flood))
                for kind in ATTACK
            ]
            started = time.perf_counter()
            for thread in attackers:
                thread.start()
            time.sleep(1.0 if quick else 5.0)  # the flood is in full swing
            genuine = threading.Thread(target=_genuine, args=(server.port, officer, browser, receipts, flood))
            genuine.start()
            flood.flooded = Phase(setup.name, "flood")
            while genuine.is_alive():
                measure_landing(setup, flood.flooded, idle_seconds)
            stop.set()
            for thread in attackers:
                thread.join(timeout=120)
            flood.seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    for name in JOURNEYS:
        log(
            f"  {name}: {_times(flood, name)}; sent again after 'busy' {flood.resent[name]}, "
            f"failed {flood.failed[name]}"
        )
    log(f"  attacker's answers: {dict(flood.answers)}")
    _write(flood, kdf, rounds, results)
    return flood


def _times(flood: Flood, name: str) -> str:
    took = flood.took[name]
    if not took:
        return "none got through"
    return f"median {fmt(median(took), 2)} s, slowest {fmt(max(took), 2)} s ({len(took)} done)"


def _landing_p95(phase: Phase | None) -> float:
    return percentile(phase.landing_ms, 0.95) if phase and phase.landing_ms else float("nan")


def _answers(flood: Flood, kind: str) -> str:
    mine = {
        key.split(": ", 1)[1]: n for key, n in sorted(flood.answers.items()) if key.startswith(kind + ": ")
    }
    rate = sum(mine.values()) / flood.seconds if flood.seconds else 0.0
    return ", ".join(f"{status}: {n:,}" for status, n in mine.items()) + f" ({rate:,.1f}/s)"


def _write(flood: Flood, kdf: KdfParams, rounds: int, results: Path | None) -> None:
    rows = [
        [
            name,
            str(len(flood.took[name])),
            fmt(median(flood.took[name]), 2) if flood.took[name] else "-",
            fmt(max(flood.took[name]), 2) if flood.took[name] else "-",
            str(flood.resent[name]),
            str(flood.failed[name]),
        ]
        for name in JOURNEYS
    ]
    body = table(
        ["genuine action", "got through", "median s", "slowest s", "sent again after busy", "failed"], rows
    )
    attack = table(
        ["attacker's threads", "answers (per s)"],
        [[f"{ATTACK.count(kind)} x {kind}", _answers(flood, kind)] for kind in dict.fromkeys(ATTACK)],
    )
    idle, flooded = _landing_p95(flood.idle), _landing_p95(flood.flooded)
    growth = flooded / idle if idle else float("nan")
    slowest = max((max(took) for took in flood.took.values() if took), default=float("inf"))
    failures = sum(flood.failed.values()) + sum(1 for took in flood.took.values() if not took)
    notes = [
        "",
        attack,
        "",
        f"gunicorn.conf.py with one worker (its default threads and derivation slots), Argon2id "
        f"`{kdf.encode()}`, three officers, the default settings (no global limit on receipts or "
        f"reports). {rounds} rounds of the three genuine actions, one after another, during a flood of "
        f"{flood.seconds:.0f} s by one attacker of nine threads, each asking again as soon as answered on "
        "a kept-alive connection. The officer logs in from the browser they logged in from before the "
        "flood, while one attacking thread keeps trying wrong passwords for their address. A 'busy' "
        f"answer (503) is sent again {BUSY_PAUSE:g} s later.",
        "",
        f"Landing page p95: {fmt(idle)} ms idle, {fmt(flooded)} ms during the flood "
        f"({len(flood.flooded.landing_ms) if flood.flooded else 0} requests).",
        "",
        f"Goal: every genuine action through within {GOAL_SECONDS:.0f} s — slowest {fmt(slowest, 2)} s, "
        f"{failures} failed, **{'met' if slowest <= GOAL_SECONDS and not failures else 'not met'}**; "
        f"landing p95 during the flood within {GOAL_P95_GROWTH:.0f}x idle — {fmt(growth)}x "
        f"**{'met' if growth <= GOAL_P95_GROWTH else 'not met'}**.",
    ]
    write_section(
        "flood",
        "A flood by one attacker while genuine people act",
        body + "\n" + "\n".join(notes),
        **({"results": results} if results else {}),
    )
