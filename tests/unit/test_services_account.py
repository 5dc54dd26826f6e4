"""Getting back into an account, called directly: a password reset with the recovery key,
a reset by an administrator (new keys), and the one-time invitation links.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import AuditEvent, Invitation, KeyPurpose, KeyWrap, Officer, ServerSession
from whistle.services import cases, officers, reports, sessions, twofactor
from whistle.services.context import Keyring, Moment, Policy
from whistle.services.errors import (
    InvitationUnavailable,
    LoginFailed,
    NotAllowed,
    RecoveryFailed,
    ReportNotFound,
    UnknownOfficer,
    WeakPassword,
)
from whistle.storage import SealedStore

from .conftest import CHEAP_KDF, NOW, PASSWORD

if TYPE_CHECKING:
    from .conftest import MakeOfficer, OfficerKeys

NEW_PASSWORD = "a brand new passphrase for alice"
ANSWERS = reports.Answers(
    category="caseloads",
    what_happened="Caseloads are far beyond safe limits.",
    when_where="",
    immediate_risk="no",
    raised_before="no",
    raised_before_result="",
)
AT = Moment(NOW, NOW.date())


def submit(
    db: Session, store: SealedStore, keyring: Keyring, received: dt.date, excluded: tuple[str, ...] = ()
) -> str:
    answers = dataclasses.replace(ANSWERS, excluded_officers=excluded)
    return reports.submit_report(db, store, keyring, Policy(), answers, [], received).public_id


def can_open(db: Session, officer: Officer, private_key: bytes, public_id: str) -> bool:
    try:
        cases.open_case(db, cases.Actor(officer, private_key), public_id, Policy(), AT)
    except ReportNotFound:
        return False
    return True


def kinds(db: Session) -> list[tuple[str, str, str | None, str]]:
    return [
        (e.kind, e.actor, e.subject, e.detail) for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))
    ]


def log_in(db: Session, email: str, password: str) -> bytes:
    return officers.check_password_login(db, email, password, NOW).private_key


# --- with the recovery key ----------------------------------------------------------


def test_a_reset_with_the_recovery_key_keeps_every_case(
    db: Session, make_officer: MakeOfficer, store: SealedStore, keyring: Keyring
) -> None:
    alice = make_officer("Alice Officer")
    public_id = submit(db, store, keyring, dt.date(2024, 2, 1))
    public_key = alice.officer.public_key

    new_code = officers.reset_password(
        db, CHEAP_KDF, "Alice@Example.org", alice.recovery_code, NEW_PASSWORD, NOW
    )

    assert crypto.normalise_code(new_code, crypto.RECOVERY_CHARS) != crypto.normalise_code(
        alice.recovery_code, crypto.RECOVERY_CHARS
    )
    assert alice.officer.public_key == public_key
    with pytest.raises(LoginFailed):
        log_in(db, alice.officer.email, PASSWORD)
    private_key = log_in(db, alice.officer.email, NEW_PASSWORD)
    assert private_key == alice.private_key
    assert can_open(db, alice.officer, private_key, public_id)
    assert ("password_reset", alice.officer.public_id, alice.officer.public_id, "recovery key") in kinds(db)


def test_the_old_recovery_key_stops_working_and_the_new_one_works(
    db: Session, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    new_code = officers.reset_password(
        db, CHEAP_KDF, alice.officer.email, alice.recovery_code, NEW_PASSWORD, NOW
    )
    with pytest.raises(RecoveryFailed):
        officers.reset_password(
            db, CHEAP_KDF, alice.officer.email, alice.recovery_code, "yet another password", NOW
        )
    officers.reset_password(db, CHEAP_KDF, alice.officer.email, new_code, "yet another password", NOW)
    assert log_in(db, alice.officer.email, "yet another password") == alice.private_key


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("nobody@example.org", None),  # unknown email, a well-formed key
        ("alice@example.org", "0000-0000-0000-0000-0000-0000-0000-0000"),  # wrong key
        ("alice@example.org", "not a key at all"),  # not the shape of a key
        ("bob@example.org", None),  # someone else's key
    ],
)
def test_a_wrong_email_or_key_gets_one_answer_and_costs_no_derivation(
    db: Session, make_officer: MakeOfficer, monkeypatch: pytest.MonkeyPatch, email: str, code: str | None
) -> None:
    """A flood of made-up resets must not fill the officers' queue for derivations."""
    alice = make_officer("Alice Officer")
    make_officer("Bob Officer")
    derived: list[bytes] = []
    real = officers.derive_key
    monkeypatch.setattr(
        officers, "derive_key", lambda secret, *args: derived.append(secret) or real(secret, *args)
    )
    with pytest.raises(RecoveryFailed) as refused:
        officers.reset_password(db, CHEAP_KDF, email, code or alice.recovery_code, NEW_PASSWORD, NOW)
    assert str(refused.value) == ""
    assert derived == []
    monkeypatch.undo()
    assert log_in(db, alice.officer.email, PASSWORD) == alice.private_key


def test_a_deactivated_officer_cannot_reset(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    alice.officer.is_active = False
    with pytest.raises(RecoveryFailed):
        officers.reset_password(db, CHEAP_KDF, alice.officer.email, alice.recovery_code, NEW_PASSWORD, NOW)


def test_a_weak_new_password_is_refused_first(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    with pytest.raises(WeakPassword):
        officers.reset_password(db, CHEAP_KDF, alice.officer.email, alice.recovery_code, "short", NOW)
    # The key still works: nothing was used up.
    officers.reset_password(db, CHEAP_KDF, alice.officer.email, alice.recovery_code, NEW_PASSWORD, NOW)


def test_a_reset_ends_other_sessions_and_unlocks(db: Session, make_officer: MakeOfficer) -> None:
    alice = make_officer("Alice Officer")
    sessions.save(db, None, b"{}", None, alice.officer.id, dt.timedelta(minutes=30), NOW)
    alice.officer.locked_until = NOW + dt.timedelta(minutes=10)
    officers.reset_password(db, CHEAP_KDF, alice.officer.email, alice.recovery_code, NEW_PASSWORD, NOW)
    assert db.scalar(select(func.count(ServerSession.id))) == 0
    assert log_in(db, alice.officer.email, NEW_PASSWORD) == alice.private_key


def test_two_factor_stays_on_after_a_reset_with_the_recovery_key(
    db: Session, make_officer: MakeOfficer
) -> None:
    alice = make_officer("Alice Officer")
    secret = twofactor.new_secret()
    step = twofactor.time_step(NOW)
    twofactor.enable(db, alice.officer, alice.private_key, secret, twofactor.code_at(secret, step), NOW)
    officers.reset_password(db, CHEAP_KDF, alice.officer.email, alice.recovery_code, NEW_PASSWORD, NOW)
    accepted = officers.check_password_login(db, alice.officer.email, NEW_PASSWORD, NOW)
    assert accepted.needs_code
    assert twofactor.open_secret(alice.officer, accepted.private_key) == secret


# --- by an administrator, without the recovery key -----------------------------------


@pytest.fixture
def team(db: Session, make_officer: MakeOfficer) -> tuple[OfficerKeys, OfficerKeys]:
    return make_officer("Alice Officer", admin=True), make_officer("Bob Officer")


def test_a_reset_by_an_administrator_gives_new_keys_and_lists_the_cases_lost(
    db: Session, team: tuple[OfficerKeys, OfficerKeys], store: SealedStore, keyring: Keyring
) -> None:
    alice, bob = team
    shared = submit(db, store, keyring, dt.date(2024, 2, 3))
    only_bob = submit(db, store, keyring, dt.date(2024, 1, 9), excluded=(alice.officer.public_id,))
    old_public_key = bob.officer.public_key

    token = officers.reset_without_recovery(db, CHEAP_KDF, alice.officer, bob.officer.public_id, NOW)
    # From now on the old password and recovery key open nothing.
    with pytest.raises(LoginFailed):
        log_in(db, bob.officer.email, PASSWORD)
    with pytest.raises(RecoveryFailed):
        officers.reset_password(db, CHEAP_KDF, bob.officer.email, bob.recovery_code, NEW_PASSWORD, NOW)

    view = officers.show_invitation(db, token, NOW)
    assert view == officers.InvitationView("bob@example.org", "Bob Officer", replaces_keys=True)
    welcome = officers.accept_invitation(db, CHEAP_KDF, token, NEW_PASSWORD, NOW)

    assert welcome.officer is bob.officer
    assert bob.officer.public_key != old_public_key
    assert welcome.lost_cases == [
        officers.LostCase(dt.date(2024, 1, 9), colleague_can_grant=False),
        officers.LostCase(dt.date(2024, 2, 3), colleague_can_grant=True),
    ]
    assert db.scalar(select(func.count(KeyWrap.id)).where(KeyWrap.officer_id == bob.officer.id)) == 0
    private_key = log_in(db, bob.officer.email, NEW_PASSWORD)
    assert crypto.public_key_of(private_key) == bob.officer.public_key
    assert not can_open(db, bob.officer, private_key, shared)
    assert not can_open(db, bob.officer, private_key, only_bob)

    # A colleague's grant gives the case back, under the new key.
    cases.grant(db, cases.Actor(alice.officer, alice.private_key), shared, bob.officer.public_id, AT)
    assert can_open(db, bob.officer, private_key, shared)

    audit = kinds(db)
    assert ("password_reset", alice.officer.public_id, bob.officer.public_id, "without recovery key") in audit
    assert ("keys_replaced", bob.officer.public_id, bob.officer.public_id, "new key pair") in audit
    lost = db.scalars(select(AuditEvent.report).where(AuditEvent.kind == "access_lost")).all()
    assert sorted(lost) == sorted([shared, only_bob])


def test_the_new_recovery_key_of_a_reset_officer_works(
    db: Session, team: tuple[OfficerKeys, OfficerKeys]
) -> None:
    alice, bob = team
    token = officers.reset_without_recovery(db, CHEAP_KDF, alice.officer, bob.officer.public_id, NOW)
    welcome = officers.accept_invitation(db, CHEAP_KDF, token, NEW_PASSWORD, NOW)
    officers.reset_password(
        db, CHEAP_KDF, bob.officer.email, welcome.recovery_code, "yet another password", NOW
    )
    assert (
        crypto.public_key_of(log_in(db, bob.officer.email, "yet another password")) == bob.officer.public_key
    )


def test_a_reset_by_an_administrator_ends_sessions_and_two_factor(
    db: Session, team: tuple[OfficerKeys, OfficerKeys]
) -> None:
    alice, bob = team
    secret = twofactor.new_secret()
    twofactor.enable(
        db, bob.officer, bob.private_key, secret, twofactor.code_at(secret, twofactor.time_step(NOW)), NOW
    )
    sessions.save(db, None, b"{}", None, bob.officer.id, dt.timedelta(minutes=30), NOW)
    token = officers.reset_without_recovery(db, CHEAP_KDF, alice.officer, bob.officer.public_id, NOW)
    assert db.scalar(select(func.count(ServerSession.id))) == 0
    officers.accept_invitation(db, CHEAP_KDF, token, NEW_PASSWORD, NOW)
    assert not twofactor.enrolled(bob.officer)
    assert officers.check_password_login(db, bob.officer.email, NEW_PASSWORD, NOW).needs_code is False


def test_only_an_administrator_resets_and_not_themselves(
    db: Session, team: tuple[OfficerKeys, OfficerKeys]
) -> None:
    alice, bob = team
    with pytest.raises(NotAllowed):
        officers.reset_without_recovery(db, CHEAP_KDF, bob.officer, alice.officer.public_id, NOW)
    with pytest.raises(NotAllowed):
        officers.reset_without_recovery(db, CHEAP_KDF, alice.officer, alice.officer.public_id, NOW)
    with pytest.raises(UnknownOfficer):
        officers.reset_without_recovery(db, CHEAP_KDF, alice.officer, crypto.new_public_id(), NOW)
    with pytest.raises(NotAllowed):
        officers.reset_two_factor(db, bob.officer, alice.officer.public_id, NOW)
    assert log_in(db, alice.officer.email, PASSWORD) == alice.private_key


def test_a_link_works_once_and_not_after_it_expires(
    db: Session, team: tuple[OfficerKeys, OfficerKeys]
) -> None:
    alice, bob = team
    token = officers.reset_without_recovery(db, CHEAP_KDF, alice.officer, bob.officer.public_id, NOW)
    expired = NOW + officers.INVITATION_LIFETIME
    with pytest.raises(InvitationUnavailable):
        officers.show_invitation(db, token, expired)
    with pytest.raises(InvitationUnavailable):
        officers.accept_invitation(db, CHEAP_KDF, token, NEW_PASSWORD, expired)
    with pytest.raises(WeakPassword):
        officers.accept_invitation(db, CHEAP_KDF, token, "short", NOW)
    officers.accept_invitation(db, CHEAP_KDF, token, NEW_PASSWORD, NOW)
    with pytest.raises(InvitationUnavailable):
        officers.accept_invitation(db, CHEAP_KDF, token, "another new password", NOW)
    with pytest.raises(InvitationUnavailable):
        officers.show_invitation(db, "not-a-token", NOW)


def test_a_second_reset_replaces_the_first_link(db: Session, team: tuple[OfficerKeys, OfficerKeys]) -> None:
    alice, bob = team
    first = officers.reset_without_recovery(db, CHEAP_KDF, alice.officer, bob.officer.public_id, NOW)
    second = officers.reset_without_recovery(db, CHEAP_KDF, alice.officer, bob.officer.public_id, NOW)
    with pytest.raises(InvitationUnavailable):
        officers.show_invitation(db, first, NOW)
    officers.show_invitation(db, second, NOW)
    assert db.scalar(select(func.count(Invitation.id))) == 1
    # Only the hash of the token is stored.
    assert second.encode() not in db.scalar(select(Invitation.token_hash))


def test_a_deactivated_officers_link_does_not_work(
    db: Session, team: tuple[OfficerKeys, OfficerKeys]
) -> None:
    alice, bob = team
    token = officers.reset_without_recovery(db, CHEAP_KDF, alice.officer, bob.officer.public_id, NOW)
    bob.officer.is_active = False
    with pytest.raises(InvitationUnavailable):
        officers.accept_invitation(db, CHEAP_KDF, token, NEW_PASSWORD, NOW)


def test_an_invitation_to_a_new_email_makes_a_new_officer(
    db: Session, team: tuple[OfficerKeys, OfficerKeys]
) -> None:
    alice, _bob = team
    token = crypto.new_token()
    db.add(
        Invitation(
            token_hash=crypto.token_hash(token),
            email="carol@example.org",
            display_name="Carol Officer",
            is_admin=True,
            invited_by=alice.officer.id,
            expires_at=NOW + dt.timedelta(days=1),
        )
    )
    db.flush()
    assert officers.show_invitation(db, token, NOW).replaces_keys is False
    welcome = officers.accept_invitation(db, CHEAP_KDF, token, NEW_PASSWORD, NOW)
    carol = welcome.officer
    assert (carol.email, carol.display_name, carol.is_admin, carol.is_active) == (
        "carol@example.org",
        "Carol Officer",
        True,
        True,
    )
    assert welcome.lost_cases == []
    assert crypto.public_key_of(log_in(db, "carol@example.org", NEW_PASSWORD)) == carol.public_key
    officers.reset_password(db, CHEAP_KDF, carol.email, welcome.recovery_code, "yet another password", NOW)
    assert ("invitation_accepted", carol.public_id, carol.public_id, "") in kinds(db)


def test_the_officers_data_wraps_are_what_is_counted(
    db: Session, team: tuple[OfficerKeys, OfficerKeys], store: SealedStore, keyring: Keyring
) -> None:
    """Each case is listed once, though the officer holds two keys (data and internal) for it."""
    alice, bob = team
    submit(db, store, keyring, dt.date(2024, 2, 3))
    held = db.scalar(select(func.count(KeyWrap.id)).where(KeyWrap.officer_id == bob.officer.id))
    assert held == 2
    purposes = set(db.scalars(select(KeyWrap.purpose).where(KeyWrap.officer_id == bob.officer.id)))
    assert purposes == {KeyPurpose.DATA, KeyPurpose.INTERNAL}
    token = officers.reset_without_recovery(db, CHEAP_KDF, alice.officer, bob.officer.public_id, NOW)
    assert len(officers.accept_invitation(db, CHEAP_KDF, token, NEW_PASSWORD, NOW).lost_cases) == 1
