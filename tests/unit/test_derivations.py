"""The derivation gate: Argon2id runs on threads of lower priority, and a flood does not take every thread."""

from __future__ import annotations

import os
import runpy
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import CHEAP_KDF
from whistle import crypto
from whistle.services import context, turns
from whistle.services.errors import ServerBusy


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux's")
def test_derivations_run_at_a_lower_priority_than_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real_derive = crypto.derive_key

    def recording(secret: bytes, salt: bytes, params: crypto.KdfParams) -> bytes:
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real_derive(secret, salt, params)

    monkeypatch.setattr(crypto, "derive_key", recording)
    gate = context.DerivationGate(slots=1, wait_seconds=1)
    try:
        salt = crypto.new_salt()
        assert gate.derive_key(b"secret", salt, CHEAP_KDF) == real_derive(b"secret", salt, CHEAP_KDF)
    finally:
        gate.close()
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen == [min(19, own + context.DERIVATION_NICENESS)]


class Recorder:
    """Derivations that note the order in which they ran; the first waits until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.order: list[bytes] = []
        self.entered, self.release = threading.Event(), threading.Event()
        self.real = crypto.derive_key
        monkeypatch.setattr(crypto, "derive_key", self.derive)

    def derive(self, secret: bytes, salt: bytes, params: crypto.KdfParams) -> bytes:
        self.order.append(secret)
        self.entered.set()
        assert self.release.wait(10)
        return self.real(secret, salt, params)


def start(
    gate: context.DerivationGate, secret: bytes, kind: turns.Work, errors: list[str]
) -> threading.Thread:
    def run() -> None:
        try:
            gate.derive_key(secret, crypto.new_salt(), CHEAP_KDF, kind)
        except ServerBusy:
            errors.append(secret.decode())

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def finish(recorder: Recorder, threads: list[threading.Thread], gate: context.DerivationGate) -> None:
    recorder.release.set()
    for thread in threads:
        thread.join(10)
    gate.close()


def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(5000):
        if condition():
            return
        threading.Event().wait(0.001)
    raise AssertionError("never happened")


def test_a_flood_of_one_kind_waits_its_turn_and_another_kind_queued_last_is_served_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One slot: a junk report runs and more than a queue's worth wait (none is refused: a script
    refused at once would ask again at once); a receipt, queued last, is served next."""
    recorder = Recorder(monkeypatch)
    gate = context.DerivationGate(slots=1, wait_seconds=10)
    errors: list[str] = []
    threads = [start(gate, b"junk-0", turns.Work.REPORT, errors)]
    queued = [f"junk-{n}".encode() for n in range(1, turns.waiting_for(1) + 3)]
    try:
        assert recorder.entered.wait(5)
        for n, secret in enumerate(queued, start=1):
            threads.append(start(gate, secret, turns.Work.REPORT, errors))
            wait_until(lambda n=n: gate.queued(turns.Work.REPORT) == n)
        threads.append(start(gate, b"receipt", turns.Work.RECEIPT, errors))
        wait_until(lambda: gate.queued(turns.Work.RECEIPT) == 1)
    finally:
        finish(recorder, threads, gate)
    assert errors == []
    assert recorder.order == [b"junk-0", b"receipt", *queued]


def test_slots_are_shared_out_between_kinds_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(monkeypatch)
    gate = context.DerivationGate(slots=1, wait_seconds=10)
    errors: list[str] = []
    threads = [start(gate, b"login-0", turns.Work.OFFICER, errors)]
    try:
        assert recorder.entered.wait(5)
        for n in (1, 2):
            for kind in (turns.Work.REPORT, turns.Work.RECEIPT, turns.Work.OFFICER):
                threads.append(start(gate, f"{kind.value}-{n}".encode(), kind, errors))
                wait_until(lambda kind=kind, n=n: gate.queued(kind) == n)
    finally:
        finish(recorder, threads, gate)
    assert errors == []
    assert recorder.order == [
        b"login-0",
        *[b"report-1", b"receipt-1", b"officer-1"],
        *[b"report-2", b"receipt-2", b"officer-2"],
    ]


def test_a_request_that_waits_too_long_is_told_the_portal_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder(monkeypatch)
    gate = context.DerivationGate(slots=1, wait_seconds=0.05)
    errors: list[str] = []
    holder = start(gate, b"first", turns.Work.REPORT, errors)
    try:
        assert recorder.entered.wait(5)
        with pytest.raises(ServerBusy):
            gate.derive_key(b"second", crypto.new_salt(), CHEAP_KDF, turns.Work.RECEIPT)
        assert gate.queued(turns.Work.RECEIPT) == 0  # it left the queue
    finally:
        recorder.release.set()
        holder.join(10)
    # The slot is free again once the first derivation is done.
    salt = crypto.new_salt()
    assert gate.derive_key(b"third", salt, CHEAP_KDF, turns.Work.RECEIPT) == recorder.real(
        b"third", salt, CHEAP_KDF
    )
    gate.close()


def gunicorn_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> dict[str, Any]:
    """The gunicorn settings (gunicorn.conf.py reads them from the package), run afresh with
    these WHISTLE_* variables and no instance."""
    for name in ("WHISTLE_WORKERS", "WHISTLE_THREADS", "WHISTLE_KDF_SLOTS", "WHISTLE_ACCESS_LOG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WHISTLE_INSTANCE", str(tmp_path / "no instance"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_module("whistle.gunicorn_conf")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_worker_has_threads_for_every_slot_and_queue_and_pages_besides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: str
) -> None:
    conf = gunicorn_settings(monkeypatch, tmp_path, WHISTLE_WORKERS=workers)
    slots = max(1, conf["cores"] // int(workers))
    busy = slots + len(turns.Work) * turns.waiting_for(slots)
    assert conf["threads"] >= busy + turns.PAGE_THREADS


def test_gunicorn_writes_an_access_log_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert gunicorn_settings(monkeypatch, tmp_path)["accesslog"] is None
    assert gunicorn_settings(monkeypatch, tmp_path, WHISTLE_ACCESS_LOG="-")["accesslog"] == "-"
