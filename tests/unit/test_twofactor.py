"""Two-factor login and lockout, called directly: codes, the sealed secret, replays, and
what repeated failures do to a login.

Codes are computed here independently of Whistle (RFC 6238 with HMAC-SHA1, the
way authenticator apps do it), so a fault in the service's own code generation
would show.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import struct
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import AuditEvent, Officer
from whistle.services import officers, settings, twofactor
from whistle.services.errors import CodeRefused, CodeReplayed, LoginDelayed, LoginFailed, UnknownOfficer

from .conftest import NOW, PASSWORD

if TYPE_CHECKING:
    from .conftest import MakeOfficer, OfficerKeys

STEP = dt.timedelta(seconds=30)


def authenticator_code(secret: bytes, moment: dt.datetime) -> str:
    """RFC 6238 as an authenticator app computes it, written out here on purpose."""
    counter = int(moment.timestamp()) // 30
    digest = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**6
    return f"{number:06d}"


def wrong_code(secret: bytes, moment: dt.datetime) -> str:
    """A six-digit code that no step accepted at ``moment`` has."""
    window = {authenticator_code(secret, moment + drift * STEP) for drift in (-1, 0, 1)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in window)


def enrol(db: Session, keys: OfficerKeys, at: dt.datetime = NOW) -> bytes:
    secret = twofactor.new_secret()
    twofactor.enable(db, keys.officer, keys.private_key, secret, authenticator_code(secret, at), at)
    return secret


def audit_kinds(db: Session) -> list[tuple[str, str | None, str]]:
    events = db.scalars(select(AuditEvent).order_by(AuditEvent.id))
    return [(event.kind, event.subject, event.detail) for event in events]


# --- codes -------------------------------------------------------------------------


def test_a_code_matches_what_an_authenticator_app_shows() -> None:
    secret = twofactor.new_secret()
    assert len(secret) == 20
    for moment in (NOW, NOW + dt.timedelta(seconds=29), NOW + dt.timedelta(hours=5)):
        step = twofactor.time_step(moment)
        assert twofactor.code_at(secret, step) == authenticator_code(secret, moment)
        assert twofactor.matching_step(secret, authenticator_code(secret, moment), moment) == step


#: The secret of RFC 6238's test vectors: fixed, so the codes of nearby steps are known to differ.
RFC_SECRET = b"12345678901234567890"


def test_the_code_of_rfc_6238_is_computed() -> None:
    moment = dt.datetime.fromtimestamp(59, dt.UTC)
    assert twofactor.code_at(RFC_SECRET, twofactor.time_step(moment)) == "287082"


def test_the_step_before_and_after_are_accepted_but_no_further() -> None:
    now_step = twofactor.time_step(NOW)
    codes = {drift: authenticator_code(RFC_SECRET, NOW + drift * STEP) for drift in range(-3, 4)}
    assert len(set(codes.values())) == len(codes)
    for drift in (-1, 0, 1):
        assert twofactor.matching_step(RFC_SECRET, codes[drift], NOW) == now_step + drift
    for drift in (-3, -2, 2, 3):
        with pytest.raises(CodeRefused):
            twofactor.matching_step(RFC_SECRET, codes[drift], NOW)


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "12 34 5x"])
def test_a_code_that_is_not_six_digits_is_refused(typed: str) -> None:
    with pytest.raises(CodeRefused):
        twofactor.matching_step(twofactor.new_secret(), typed, NOW)


def test_a_code_typed_with_spaces_is_read() -> None:
    secret = twofactor.new_secret()
    code = authenticator_code(secret, NOW)
    assert twofactor.matching_step(secret, f" {code[:3]} {code[3:]} ", NOW) == twofactor.time_step(NOW)


def test_a_code_of_another_secret_is_refused() -> None:
    other = bytes(range(20))
    code = authenticator_code(other, NOW)
    assert code not in {authenticator_code(RFC_SECRET, NOW + d * STEP) for d in (-1, 0, 1)}
    with pytest.raises(CodeRefused):
        twofactor.matching_step(RFC_SECRET, code, NOW)


def test_the_secret_is_offered_typed_and_as_an_otpauth_address() -> None:
    secret = twofactor.new_secret()
    typed = twofactor.secret_text(secret)
    assert re.fullmatch(r"[A-Z2-7]{4}( [A-Z2-7]{4}){7}", typed)
    assert base64.b32decode(typed.replace(" ", "")) == secret

    uri = urlparse(twofactor.provisioning_uri(secret, "alice@example.org", "Northshire Council"))
    query = parse_qs(uri.query)
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert uri.path == "/Northshire%20Council:alice%40example.org"
    assert base64.b32decode(query["secret"][0] + "=" * (-len(query["secret"][0]) % 8)) == secret
    assert query["issuer"] == ["Northshire Council"]
    assert (query["digits"], query["period"], query["algorithm"]) == (["6"], ["30"], ["SHA1"])


def test_the_qr_code_is_plain_svg_with_nothing_the_csp_forbids() -> None:
    svg = twofactor.qr_code_svg("otpauth://totp/A:b?secret=ABCDEFGH&issuer=A").decode()
    assert svg.startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")
    assert "<path" in svg
    assert not re.search(r"\sstyle\s*=|<style|<script|\son[a-z]+\s*=|javascript:|href", svg, re.I)


# --- the sealed secret -------------------------------------------------------------


def test_the_secret_is_sealed_under_the_officers_private_key(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    secret = enrol(db, alice)
    sealed = alice.officer.totp_secret_sealed
    assert sealed is not None
    assert secret not in sealed
    assert base64.b32encode(secret) not in sealed
    assert twofactor.open_secret(alice.officer, alice.private_key) == secret


def test_the_secret_does_not_open_with_another_key_or_on_another_officer(
    db: Session, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    enrol(db, alice)
    with pytest.raises(CodeRefused):
        twofactor.open_secret(alice.officer, bob.private_key)
    # Copied onto another officer's row, it does not open, even with that officer's key.
    bob.officer.totp_secret_sealed = alice.officer.totp_secret_sealed
    with pytest.raises(CodeRefused):
        twofactor.open_secret(bob.officer, bob.private_key)
    with pytest.raises(CodeRefused):
        twofactor.open_secret(bob.officer, alice.private_key)


def test_enrolment_needs_a_right_code_and_is_audited(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    secret = twofactor.new_secret()
    wrong = wrong_code(secret, NOW)
    with pytest.raises(CodeRefused):
        twofactor.enable(db, alice.officer, alice.private_key, secret, wrong, NOW)
    assert not twofactor.enrolled(alice.officer)

    twofactor.enable(db, alice.officer, alice.private_key, secret, authenticator_code(secret, NOW), NOW)
    assert twofactor.enrolled(alice.officer)
    assert alice.officer.totp_last_step == twofactor.time_step(NOW)
    assert ("two_factor_enabled", None, "") in audit_kinds(db)


# --- replays -------------------------------------------------------------------------


def test_a_code_is_accepted_once(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    secret = enrol(db, alice)
    later = NOW + 2 * STEP
    code = authenticator_code(secret, later)
    twofactor.check_code(db, alice.officer, alice.private_key, code, later)
    with pytest.raises(CodeReplayed):
        twofactor.check_code(db, alice.officer, alice.private_key, code, later + dt.timedelta(seconds=5))


def test_the_enrolment_code_cannot_be_used_to_log_in(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    secret = enrol(db, alice)
    with pytest.raises(CodeReplayed):
        twofactor.check_code(db, alice.officer, alice.private_key, authenticator_code(secret, NOW), NOW)


def test_a_code_of_an_earlier_step_is_refused_once_a_later_one_was_used(
    db: Session, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    secret = enrol(db, alice)
    at = NOW + 10 * STEP
    twofactor.check_code(db, alice.officer, alice.private_key, authenticator_code(secret, at + STEP), at)
    # The code of the current step is still within the window, but older than the one used.
    with pytest.raises(CodeReplayed):
        twofactor.check_code(db, alice.officer, alice.private_key, authenticator_code(secret, at), at)
    twofactor.check_code(
        db, alice.officer, alice.private_key, authenticator_code(secret, at + 2 * STEP), at + STEP
    )


def test_two_requests_racing_with_one_code_cannot_both_pass(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    secret = enrol(db, alice)
    db.commit()
    # A second request read the officer before the first one used the code.
    with Session(db.get_bind(), expire_on_commit=False) as other:
        stale = other.get(Officer, alice.officer.id)
        assert stale is not None
        other.commit()
        at = NOW + 4 * STEP
        code = authenticator_code(secret, at)
        twofactor.check_code(db, alice.officer, alice.private_key, code, at)
        db.commit()
        assert stale.totp_last_step < twofactor.time_step(at)
        with pytest.raises(CodeReplayed):
            twofactor.check_code(other, stale, alice.private_key, code, at)
    db.expire_all()
    stored = db.scalar(select(Officer.totp_last_step).where(Officer.id == alice.officer.id))
    assert stored == twofactor.time_step(at)


# --- logins and lockout --------------------------------------------------------------


def test_a_password_login_without_two_factor_is_complete(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    accepted = officers.check_password_login(db, "alice@example.org", PASSWORD, NOW)
    assert accepted.needs_code is False
    assert accepted.private_key == alice.private_key
    assert audit_kinds(db)[-1][0] == "login"


def test_with_two_factor_the_password_is_only_the_first_step(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    secret = enrol(db, alice)
    accepted = officers.check_password_login(db, "alice@example.org", PASSWORD, NOW)
    assert accepted.needs_code is True
    assert audit_kinds(db)[-1][0] != "login"
    later = NOW + 2 * STEP
    officer = officers.check_code_login(
        db, alice.officer.public_id, accepted.private_key, authenticator_code(secret, later), later
    )
    assert officer is alice.officer
    assert audit_kinds(db)[-1][0] == "login"


def fail_passwords(db: Session, email: str, count: int, at: dt.datetime = NOW) -> None:
    for attempt in range(count):
        with pytest.raises(LoginFailed):
            officers.check_password_login(db, email, f"wrong guess {attempt}", at)


def test_a_few_wrong_passwords_cost_no_wait(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    fail_passwords(db, alice.officer.email, officers.FREE_FAILURES - 1)
    assert officers.seconds_to_wait(alice.officer, NOW) == 0
    assert (
        officers.check_password_login(db, alice.officer.email, PASSWORD, NOW).private_key == alice.private_key
    )


def test_wrong_passwords_make_unknown_devices_wait_longer_each_time_up_to_a_minute(
    db: Session, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    email = alice.officer.email
    at = NOW
    waits = []
    for attempt in range(12):
        with pytest.raises(LoginFailed) as refused:
            officers.check_password_login(db, email, f"wrong guess {attempt}", at)
        assert not isinstance(refused.value, LoginDelayed)
        waits.append(officers.seconds_to_wait(alice.officer, at))
        # While it must wait, even the right password is refused, and nothing is counted.
        if waits[-1]:
            with pytest.raises(LoginDelayed) as delayed:
                officers.check_password_login(db, email, PASSWORD, at)
            assert delayed.value.seconds == waits[-1]
        at += dt.timedelta(seconds=waits[-1])
    assert waits == [0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert alice.officer.failed_logins == 12
    accepted = officers.check_password_login(db, email, PASSWORD, at)
    assert accepted.private_key == alice.private_key
    assert alice.officer.failed_logins == 0
    assert officers.seconds_to_wait(alice.officer, at) == 0


def test_a_device_the_officer_logged_in_from_does_not_wait(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    bob = make_officer("Bob Officer")
    fail_passwords(db, alice.officer.email, 10)
    with pytest.raises(LoginDelayed):
        officers.check_password_login(db, alice.officer.email, PASSWORD, NOW)
    # Bob's device is not Alice's: it waits.
    with pytest.raises(LoginDelayed):
        officers.check_password_login(db, alice.officer.email, PASSWORD, NOW, device_of=bob.officer.public_id)
    accepted = officers.check_password_login(
        db, alice.officer.email, PASSWORD, NOW, device_of=alice.officer.public_id
    )
    assert accepted.private_key == alice.private_key


def test_a_refusal_while_waiting_costs_no_derivation_and_is_not_counted(
    db: Session, make_officer: MakeOfficer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = make_officer("Alice Officer")
    fail_passwords(db, alice.officer.email, officers.FREE_FAILURES)
    events = len(audit_kinds(db))
    derivations: list[bytes] = []
    real = officers.derive_key

    def counting(secret: bytes, salt: bytes, params: crypto.KdfParams) -> bytes:
        derivations.append(secret)
        return real(secret, salt, params)

    monkeypatch.setattr(officers, "derive_key", counting)
    for email, password in [
        ("nobody@example.org", PASSWORD),  # unknown: refused at once
        (alice.officer.email, PASSWORD),  # must wait
        (alice.officer.email, "wrong guess"),  # must wait
    ]:
        with pytest.raises(LoginFailed):
            officers.check_password_login(db, email, password, NOW)
    assert derivations == []
    assert alice.officer.failed_logins == officers.FREE_FAILURES
    assert len(audit_kinds(db)) == events


def test_failures_and_the_slowing_are_audited_without_the_password(
    db: Session, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    fail_passwords(db, alice.officer.email, officers.FREE_FAILURES, NOW)
    fail_passwords(db, alice.officer.email, 1, NOW + dt.timedelta(seconds=1))
    subject = alice.officer.public_id
    assert audit_kinds(db) == [
        *[("login_failed", subject, "password")] * officers.FREE_FAILURES,
        ("login_slowed", subject, ""),
        ("login_failed", subject, "password"),
    ]
    for event in db.scalars(select(AuditEvent)):
        assert "wrong guess" not in " ".join(str(v) for v in (event.actor, event.subject, event.detail))


def test_a_success_starts_the_count_again(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    for _ in range(2):
        fail_passwords(db, alice.officer.email, officers.FREE_FAILURES - 1)
        officers.check_password_login(db, alice.officer.email, PASSWORD, NOW)
    assert officers.seconds_to_wait(alice.officer, NOW) == 0


def test_wrong_codes_count_as_wrong_passwords_do(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    secret = enrol(db, alice)
    at = NOW + 10 * STEP
    good = authenticator_code(secret, at)
    wrong = wrong_code(secret, at)
    accepted = officers.check_password_login(db, alice.officer.email, PASSWORD, at)
    for _ in range(officers.FREE_FAILURES - 1):
        with pytest.raises(CodeRefused):
            officers.check_code_login(db, alice.officer.public_id, accepted.private_key, wrong, at)
    # The failure that starts the wait ends the pending login: the password must come again.
    with pytest.raises(LoginFailed):
        officers.check_code_login(db, alice.officer.public_id, accepted.private_key, wrong, at)
    with pytest.raises(LoginDelayed):
        officers.check_password_login(db, alice.officer.email, PASSWORD, at)
    later = at + dt.timedelta(seconds=officers.seconds_to_wait(alice.officer, at))
    again = officers.check_password_login(db, alice.officer.email, PASSWORD, later)
    assert (
        officers.check_code_login(db, alice.officer.public_id, again.private_key, good, later)
        is alice.officer
    )
    kinds = [kind for kind, _subject, _detail in audit_kinds(db)]
    assert kinds.count("login_failed") == officers.FREE_FAILURES
    assert kinds.count("login_slowed") == 1


def test_a_right_password_does_not_reset_the_count_of_wrong_codes(
    db: Session, make_officer: MakeOfficer
) -> None:
    """Otherwise someone who knows the password could guess codes without end."""
    alice = make_officer("Alice Officer")
    secret = enrol(db, alice)
    at = NOW + 10 * STEP
    for attempt in range(officers.FREE_FAILURES):
        accepted = officers.check_password_login(db, alice.officer.email, PASSWORD, at)
        last = attempt == officers.FREE_FAILURES - 1
        with pytest.raises(LoginFailed if last else CodeRefused):
            officers.check_code_login(
                db, alice.officer.public_id, accepted.private_key, wrong_code(secret, at), at
            )
    assert officers.seconds_to_wait(alice.officer, at) > 0


def test_a_replayed_code_is_refused_and_counted(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    secret = enrol(db, alice)
    at = NOW + 10 * STEP
    code = authenticator_code(secret, at)
    accepted = officers.check_password_login(db, alice.officer.email, PASSWORD, at)
    officers.check_code_login(db, alice.officer.public_id, accepted.private_key, code, at)
    again = officers.check_password_login(db, alice.officer.email, PASSWORD, at)
    with pytest.raises(CodeReplayed):
        officers.check_code_login(db, alice.officer.public_id, again.private_key, code, at)
    assert audit_kinds(db)[-1] == ("login_failed", alice.officer.public_id, "replayed code")
    assert alice.officer.failed_logins == 1


def test_a_deactivated_officer_cannot_finish_a_pending_login(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    secret = enrol(db, alice)
    at = NOW + 10 * STEP
    accepted = officers.check_password_login(db, alice.officer.email, PASSWORD, at)
    alice.officer.is_active = False
    with pytest.raises(LoginFailed):
        officers.check_code_login(
            db, alice.officer.public_id, accepted.private_key, authenticator_code(secret, at), at
        )


def test_mandatory_two_factor_asks_those_not_enrolled(db: Session, make_officer: MakeOfficer) -> None:
    alice, bob = make_officer("Alice Officer", admin=True), make_officer("Bob Officer")
    enrol(db, alice)
    assert not officers.needs_enrolment(db, bob.officer)
    settings.change(db, alice.officer.public_id, {"require_two_factor": True}, NOW)
    assert officers.needs_enrolment(db, bob.officer)
    assert not officers.needs_enrolment(db, alice.officer)


def test_an_administrator_can_switch_off_an_officers_two_factor(
    db: Session, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer", admin=True), make_officer("Bob Officer")
    enrol(db, bob)
    officers.reset_two_factor(db, alice.officer, bob.officer.public_id, NOW)
    assert not twofactor.enrolled(bob.officer)
    assert officers.check_password_login(db, bob.officer.email, PASSWORD, NOW).needs_code is False
    assert ("two_factor_reset", bob.officer.public_id, "") in audit_kinds(db)


def test_an_officer_without_two_factor_has_no_secret_to_check(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    with pytest.raises(CodeRefused):
        twofactor.check_code(db, alice.officer, alice.private_key, "123456", NOW)


def test_switching_off_an_unknown_or_inactive_officer_is_refused(
    db: Session, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer", admin=True), make_officer("Bob Officer")
    enrol(db, bob)
    bob.officer.is_active = False
    with pytest.raises(UnknownOfficer):
        officers.reset_two_factor(db, alice.officer, bob.officer.public_id, NOW)
    assert twofactor.enrolled(bob.officer)
