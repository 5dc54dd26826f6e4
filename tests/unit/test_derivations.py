"""The derivation gate: Argon2id runs on threads of lower priority, and a flood does not take every thread."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from tests.unit.conftest import CHEAP_KDF
from whistle import crypto
from whistle.services import context
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


def test_a_flood_beyond_the_waiting_room_is_turned_away_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """One running and one waiting with a single slot: a third request gets a 503 without waiting."""
    entered, release = threading.Event(), threading.Event()
    real_derive = crypto.derive_key

    def slow(secret: bytes, salt: bytes, params: crypto.KdfParams) -> bytes:
        entered.set()
        assert release.wait(10)
        return real_derive(secret, salt, params)

    monkeypatch.setattr(crypto, "derive_key", slow)
    gate = context.DerivationGate(slots=1, wait_seconds=10)
    assert gate.waiting == 1
    salt = crypto.new_salt()
    results: list[bytes] = []
    running = threading.Thread(target=lambda: results.append(gate.derive_key(b"one", salt, CHEAP_KDF)))
    waiting = threading.Thread(target=lambda: results.append(gate.derive_key(b"two", salt, CHEAP_KDF)))
    try:
        running.start()
        assert entered.wait(5)
        waiting.start()
        while gate._waiting == 0:  # the second request is waiting for the slot
            threading.Event().wait(0.001)
        with pytest.raises(ServerBusy):
            gate.derive_key(b"three", salt, CHEAP_KDF)
    finally:
        release.set()
        running.join(10)
        waiting.join(10)
        gate.close()
    assert sorted(results) == sorted(real_derive(secret, salt, CHEAP_KDF) for secret in (b"one", b"two"))


@pytest.mark.parametrize(("slots", "waiting"), [(1, 1), (2, 1), (4, 2), (8, 4)])
def test_fewer_requests_wait_than_a_worker_has_threads(slots: int, waiting: int) -> None:
    """gunicorn.conf.py gives a worker at least two threads a slot: running and waiting take fewer."""
    gate = context.DerivationGate(slots=slots, wait_seconds=1)
    assert gate.waiting == waiting
    assert slots + gate.waiting < max(4, 2 * slots)
