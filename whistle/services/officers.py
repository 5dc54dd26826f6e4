"""Officers: their key pairs, logins (slowed by wrong passwords, and two-factor codes),
password resets, invitation links and the first administrator's setup.

A login refuses an unknown email, a deactivated officer, a locked account and a
wrong password with one answer. Only a login for an active officer costs an
Argon2id derivation: an email that is no active officer's is refused at once, so
a flood of made-up logins costs nothing. Its timing tells whether an email is an
active officer's, which the landing page, naming every officer, all but says
already.

Wrong passwords slow an account down rather than lock it: after a few failures
in a row, a device the officer has not logged in from must wait before the next
attempt, longer after each further failure (up to a minute), and an attempt made
while it must wait is refused without a derivation and without being counted.
A device the officer has logged in from before (the web layer vouches for it
with a signed cookie) does not wait, so a stranger's failures can slow others
but never keep the officer out. Five failures in a row
(wrong passwords or wrong codes) lock the account for fifteen minutes.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from zxcvbn import zxcvbn

from whistle import audit, crypto
from whistle.models import Invitation, KeyPurpose, KeyWrap, Officer, Report, ServerSession, SetupToken
from whistle.services import twofactor
from whistle.services.context import derive_key
from whistle.services.errors import (
    CodeRefused,
    CodeReplayed,
    InvitationUnavailable,
    LoginDelayed,
    LoginFailed,
    NotAllowed,
    NotConfirmed,
    OfficerExists,
    RecoveryFailed,
    ResetTriedTooOften,
    SetupUnavailable,
    UnknownOfficer,
    WeakPassword,
)

MIN_PASSWORD_CHARS = 12
#: zxcvbn's score, 0 to 4: 3 is "safely unguessable" (about 10^10 guesses).
MIN_PASSWORD_SCORE = 3
#: Failures in a row (wrong password or wrong code) before unknown devices must wait ...
FREE_FAILURES = 3
#: ... one second after the first of them, twice as long after each further one, up to this.
LONGEST_WAIT = dt.timedelta(minutes=1)
#: How long an invitation or reset link can be used.
INVITATION_LIFETIME = dt.timedelta(days=7)


@dataclass(frozen=True)
class NewOfficer:
    officer: Officer
    #: The one-time recovery key, shown once to the officer and never stored.
    recovery_code: str


def _password_context(public_id: str) -> bytes:
    return crypto.context("officer", public_id, "private-key", "password")


def _recovery_context(public_id: str) -> bytes:
    return crypto.context("officer", public_id, "private-key", "recovery")


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_password(password: str, *, known: Sequence[str] = ()) -> None:
    """Refuse a password under 12 characters, or one zxcvbn (Dropbox's estimator of guessing
    cost) scores below 3 of 4, taking the officer's own name and email (``known``) as easy.

    A database copy alone lets the password seal of a private key be guessed offline: the
    length rule alone let "aaaaaaaaaaaa" and "password1234" through."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise WeakPassword(f"Choose a password of at least {MIN_PASSWORD_CHARS} characters.")
    # zxcvbn's own cost grows with the length; past 100 characters the score is settled.
    verdict = zxcvbn(password[:100], user_inputs=[part for text in known for part in text.split("@")])
    if verdict["score"] < MIN_PASSWORD_SCORE:
        warning = verdict["feedback"].get("warning") or "it follows a pattern that is tried early"
        raise WeakPassword(
            f"That password would be easy to guess ({warning.rstrip('.').lower()}). "
            "Choose a longer one: three or four unrelated words are strong and easy to remember."
        )


#: Marks a password seal whose key mixes in the instance's pepper (see :func:`_password_key`).
PEPPERED = "pepper+"


def _password_key(officer: Officer, password: str, pepper: bytes) -> bytes:
    """The key of an officer's password seal: Argon2id of the password, then, for a peppered
    seal, HKDF with the instance's pepper, which lives in the instance folder and never in the
    database. A copy of the database alone then gives nothing to guess passwords against."""
    stored = officer.password_kdf
    key = derive_key(
        password.encode(), officer.password_salt, crypto.KdfParams.decode(stored.removeprefix(PEPPERED))
    )
    if not stored.startswith(PEPPERED):
        return key  # sealed before the pepper was mixed in; sealed again at the next login
    return crypto.expand_key(key, pepper, b"officer password")


def _open_private_key(officer: Officer, password: str, pepper: bytes) -> bytes:
    """The officer's private key, opened with their password; :class:`crypto.CryptoError` if wrong."""
    key = _password_key(officer, password, pepper)
    return crypto.open_sealed(key, officer.private_key_sealed, _password_context(officer.public_id))


def _seal_under_password(
    officer: Officer, kdf: crypto.KdfParams, password: str, private_key: bytes, pepper: bytes
) -> None:
    officer.password_salt = crypto.new_salt()
    officer.password_kdf = (PEPPERED if pepper else "") + kdf.encode()
    password_key = _password_key(officer, password, pepper)
    officer.private_key_sealed = crypto.seal(password_key, private_key, _password_context(officer.public_id))


def _seal_keys(
    officer: Officer, kdf: crypto.KdfParams, password: str, private_key: bytes, pepper: bytes
) -> str:
    """Seal a private key under the password and under a fresh one-time recovery key,
    which is returned (to be shown once) and never stored."""
    officer.recovery_salt = crypto.new_salt()
    _seal_under_password(officer, kdf, password, private_key, pepper)
    recovery_code = crypto.new_recovery_code()
    officer.private_key_recovery_sealed = crypto.seal(
        crypto.recovery_code_key(recovery_code, officer.recovery_salt),
        private_key,
        _recovery_context(officer.public_id),
    )
    return recovery_code


def create_officer(
    db: Session,
    kdf: crypto.KdfParams,
    email: str,
    display_name: str,
    password: str,
    now: dt.datetime,
    *,
    is_admin: bool = False,
    pepper: bytes = b"",
) -> NewOfficer:
    """Make an officer with a fresh hybrid key pair, sealed under their password (with the
    instance's ``pepper`` mixed in) and, separately, under a one-time recovery key."""
    check_password(password, known=(email, display_name))
    email = normalise_email(email)
    if db.scalar(select(Officer.id).where(Officer.email == email)) is not None:
        raise OfficerExists(f"An officer with the email address {email} already exists.")
    pair = crypto.generate_keypair()
    officer = Officer(
        public_id=crypto.new_public_id(),
        email=email,
        display_name=display_name.strip(),
        is_admin=is_admin,
        is_active=True,
        created_at=now,
        public_key=pair.public,
    )
    recovery_code = _seal_keys(officer, kdf, password, pair.private, pepper)
    db.add(officer)
    db.flush()
    return NewOfficer(officer, recovery_code)


def authenticate(db: Session, email: str, password: str, *, pepper: bytes = b"") -> tuple[Officer, bytes]:
    """Check a password by unsealing the officer's private key with it.

    An unknown email or a deactivated officer gives the same error as a wrong
    password, without a derivation.
    """
    officer = db.scalar(select(Officer).where(Officer.email == normalise_email(email)))
    if officer is None or not officer.is_active:
        raise LoginFailed()
    try:
        private_key = _open_private_key(officer, password, pepper)
    except crypto.CryptoError as exc:
        raise LoginFailed() from exc
    return officer, private_key


def get_active(db: Session, public_id: str) -> Officer | None:
    return db.scalar(select(Officer).where(Officer.public_id == public_id, Officer.is_active))


def active_officers(db: Session) -> list[Officer]:
    return list(db.scalars(select(Officer).where(Officer.is_active).order_by(Officer.display_name)))


def has_officers(db: Session) -> bool:
    return bool(db.scalar(select(func.count(Officer.id))))


# --- first run -----------------------------------------------------------------


def new_setup_token(db: Session, now: dt.datetime) -> str | None:
    """A one-time token for the first administrator, replacing any earlier one.

    Returns None once the instance has an officer: setup is then closed.
    """
    if has_officers(db):
        return None
    db.execute(delete(SetupToken))
    token = crypto.new_token()
    db.add(SetupToken(token_hash=crypto.token_hash(token), created_at=now))
    db.flush()
    return token


def setup_token_valid(db: Session, token: str) -> bool:
    if has_officers(db):
        return False
    return (
        db.scalar(select(SetupToken.id).where(SetupToken.token_hash == crypto.token_hash(token))) is not None
    )


def set_up_first_admin(
    db: Session,
    kdf: crypto.KdfParams,
    token: str,
    email: str,
    display_name: str,
    password: str,
    now: dt.datetime,
    *,
    pepper: bytes = b"",
) -> NewOfficer:
    """Use the setup token (once) to create the first administrator."""
    if not setup_token_valid(db, token):
        raise SetupUnavailable()
    check_password(password, known=(email,))
    db.execute(delete(SetupToken))
    return create_officer(db, kdf, email, display_name, password, now, is_admin=True, pepper=pepper)


# --- logins: lockout and the two-factor step -------------------------------------


@dataclass(frozen=True)
class PasswordAccepted:
    """The password opened the officer's private key."""

    officer: Officer
    private_key: bytes = field(repr=False)
    #: A two-factor code must follow before the officer is logged in.
    needs_code: bool


def _utc(moment: dt.datetime) -> dt.datetime:
    """The same instant however the database hands it back (aware, or naive UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def wait_after(failures: int) -> dt.timedelta:
    """How long an unknown device waits after this many failures in a row."""
    if failures < FREE_FAILURES:
        return dt.timedelta(0)
    return min(LONGEST_WAIT, dt.timedelta(seconds=2 ** min(failures - FREE_FAILURES, 16)))


def seconds_to_wait(officer: Officer, now: dt.datetime) -> int:
    """How long a device the officer has not logged in from must still wait (0: none)."""
    if officer.locked_until is None:
        return 0
    left = (_utc(officer.locked_until) - now).total_seconds()
    return max(0, math.ceil(left))


def _failed(db: Session, officer: Officer, now: dt.datetime, reason: str) -> bool:
    """Count a failure and make unknown devices wait; return whether they must wait now."""
    audit.record(db, "login_failed", audit.SYSTEM, now, subject=officer.public_id, detail=reason)
    officer.failed_logins += 1
    wait = wait_after(officer.failed_logins)
    if wait:
        officer.locked_until = now + wait
        if officer.failed_logins == FREE_FAILURES:
            audit.record(db, "login_slowed", audit.SYSTEM, now, subject=officer.public_id)
    db.flush()
    return bool(wait)


def _succeeded(db: Session, officer: Officer, now: dt.datetime) -> None:
    officer.failed_logins = 0
    officer.locked_until = None
    audit.record(db, "login", officer.public_id, now)
    db.flush()


def check_password_login(
    db: Session,
    email: str,
    password: str,
    now: dt.datetime,
    *,
    device_of: str | None = None,
    kdf: crypto.KdfParams | None = None,
    pepper: bytes = b"",
) -> PasswordAccepted:
    """The first step of a login: the password, which unseals the private key.

    ``device_of`` is the officer (public id) whose earlier login on this device
    the web layer vouches for; that officer does not wait after failures.
    Raises :class:`LoginDelayed` when this device must wait first (without a
    derivation), and :class:`LoginFailed` for an unknown email, a deactivated
    officer or a wrong password alike. A failure is counted and audited (it
    must be committed even though the login is refused). An officer without
    two-factor login is logged in here.
    """
    officer = db.scalar(select(Officer).where(Officer.email == normalise_email(email)))
    if officer is None or not officer.is_active:
        raise LoginFailed()
    wait = seconds_to_wait(officer, now)
    if wait and device_of != officer.public_id:
        raise LoginDelayed(wait)
    try:
        private_key = _open_private_key(officer, password, pepper)
    except crypto.CryptoError as exc:
        _failed(db, officer, now, "password")
        raise LoginFailed() from exc
    if pepper and kdf is not None and not officer.password_kdf.startswith(PEPPERED):
        # Sealed before the pepper was mixed in: sealed again with it, now that the password is known.
        _seal_under_password(officer, kdf, password, private_key, pepper)
    needs_code = twofactor.enrolled(officer)
    if not needs_code:
        _succeeded(db, officer, now)
    return PasswordAccepted(officer, private_key, needs_code)


def check_code_login(
    db: Session, officer_public_id: str, private_key: bytes, code: str, now: dt.datetime
) -> Officer:
    """The second step: a two-factor code, accepted once.

    Raises :class:`CodeRefused` (or :class:`CodeReplayed`) for a wrong or used
    code, and :class:`LoginFailed` when the pending login is over: the officer
    was deactivated, or a wrong code came after too many failures in a row
    (the password must then be given again, and a device the officer has not
    logged in from waits first). So someone who knows the password cannot guess
    codes faster than the password step lets them.
    """
    officer = get_active(db, officer_public_id)
    if officer is None:
        raise LoginFailed()
    try:
        twofactor.check_code(db, officer, private_key, code, now)
    except CodeRefused as error:
        reason = "replayed code" if isinstance(error, CodeReplayed) else "code"
        if _failed(db, officer, now, reason):
            raise LoginFailed() from error
        raise
    _succeeded(db, officer, now)
    return officer


def move_two_factor(
    db: Session,
    officer: Officer,
    private_key: bytes,
    secret: bytes,
    code: str,
    current: str,
    now: dt.datetime,
    *,
    pepper: bytes = b"",
) -> None:
    """Move an officer's two-factor login to a new app, once they prove it is them.

    ``current`` is their password or a code from the app they use now: a session
    someone else has taken over cannot tie the account to that person's phone.
    A wrong one raises :class:`NotConfirmed` and counts as a failed login.
    """
    if twofactor.enrolled(officer):
        digits = "".join(current.split())
        try:
            if len(digits) == twofactor.DIGITS and digits.isdigit():
                twofactor.check_code(db, officer, private_key, digits, now)
            else:
                _open_private_key(officer, current, pepper)
        except (CodeRefused, crypto.CryptoError) as error:
            _failed(db, officer, now, "two-factor change")
            raise NotConfirmed() from error
    twofactor.enable(db, officer, private_key, secret, code, now)


def needs_enrolment(db: Session, officer: Officer) -> bool:
    """Two-factor login is mandatory and this officer has not set it up yet."""
    return not twofactor.enrolled(officer) and twofactor.required(db)


# --- password resets and invitations ---------------------------------------------


def _end_sessions(db: Session, officer: Officer) -> None:
    db.execute(delete(ServerSession).where(ServerSession.officer_id == officer.id))


def _open_with_recovery_code(officer: Officer | None, recovery_code: str) -> bytes | None:
    if officer is None:
        return None
    try:
        return crypto.open_sealed(
            crypto.recovery_code_key(recovery_code, officer.recovery_salt),
            officer.private_key_recovery_sealed,
            _recovery_context(officer.public_id),
        )
    except (crypto.InvalidCode, crypto.CryptoError):
        return None


def _any_officer(_public_id: str) -> bool:
    return True


def reset_password(
    db: Session,
    kdf: crypto.KdfParams,
    email: str,
    recovery_code: str,
    password: str,
    now: dt.datetime,
    may_try: Callable[[str], bool] = _any_officer,
    *,
    pepper: bytes = b"",
) -> str:
    """Set a new password with the officer's recovery key; return their new recovery key.

    The private key is opened with the recovery key and sealed again, so the
    officer keeps access to every case. The old recovery key stops working.
    An unknown email, a deactivated officer and a wrong key all raise
    :class:`RecoveryFailed`, without a derivation: the recovery key has 160
    random bits and is checked with HKDF, so a failure is cheap and its timing
    tells nothing but whether the email is an active officer's (as for logins),
    and a flood of made-up resets cannot fill the officers' queue for
    derivations. Every other session of the officer ends; two-factor login
    stays as it was. ``may_try(officer public id)`` says whether a reset may be
    tried for the officer now (the web layer's limit, counted only for an active
    officer's email); if not, :class:`ResetTriedTooOften` is raised.
    """
    check_password(password, known=(email,))
    officer = db.scalar(select(Officer).where(Officer.email == normalise_email(email), Officer.is_active))
    if officer is not None and not may_try(officer.public_id):
        raise ResetTriedTooOften(officer.public_id)
    private_key = _open_with_recovery_code(officer, recovery_code)
    if officer is None or private_key is None:
        if officer is not None:
            audit.record(
                db,
                "password_reset_failed",
                audit.SYSTEM,
                now,
                subject=officer.public_id,
                detail="recovery key",
            )
        raise RecoveryFailed()
    new_code = _seal_keys(officer, kdf, password, private_key, pepper)
    officer.failed_logins = 0
    officer.locked_until = None
    _end_sessions(db, officer)
    audit.record(
        db, "password_reset", officer.public_id, now, subject=officer.public_id, detail="recovery key"
    )
    db.flush()
    return new_code


def new_invitation(
    db: Session,
    email: str,
    display_name: str,
    is_admin: bool,
    invited_by: Officer | None,
    now: dt.datetime,
    *,
    resets: Officer | None = None,
) -> str:
    """A one-time link token for this email, cancelling every earlier link for it.

    A link made to reset ``resets`` works for that officer only; any other link
    makes a new officer and never applies to an account that exists.
    """
    db.execute(delete(Invitation).where(Invitation.email == email))
    token = crypto.new_token()
    db.add(
        Invitation(
            token_hash=crypto.token_hash(token),
            email=email,
            display_name=display_name,
            is_admin=is_admin,
            invited_by=invited_by.id if invited_by is not None else None,
            officer_id=resets.id if resets is not None else None,
            expires_at=now + INVITATION_LIFETIME,
        )
    )
    db.flush()
    return token


def reset_without_recovery(
    db: Session, kdf: crypto.KdfParams, admin: Officer, officer_public_id: str, now: dt.datetime
) -> str:
    """An administrator resets an officer who lost both password and recovery key.

    Returns the token of a one-time link (``/officer/welcome/<token>``) where
    the officer chooses a new password and gets a new key pair. From now on
    the old password and recovery key open nothing and the officer's sessions
    end. ``kdf`` is what the unusable old seal is marked with.
    """
    if not admin.is_admin or not admin.is_active:
        raise NotAllowed()
    officer = get_active(db, officer_public_id)
    if officer is None:
        raise UnknownOfficer(officer_public_id)
    if officer.id == admin.id:
        raise NotAllowed()
    # The old private key is thrown away: nothing that opens it is kept.
    discarded = crypto.new_key()
    officer.private_key_sealed = crypto.seal(
        discarded, crypto.new_key(), _password_context(officer.public_id)
    )
    officer.password_kdf = kdf.encode()
    officer.private_key_recovery_sealed = crypto.seal(
        discarded, crypto.new_key(), _recovery_context(officer.public_id)
    )
    twofactor.turn_off(officer)
    _end_sessions(db, officer)
    token = new_invitation(
        db, officer.email, officer.display_name, officer.is_admin, admin, now, resets=officer
    )
    officer.reset_notice_due = True
    audit.record(
        db, "password_reset", admin.public_id, now, subject=officer.public_id, detail="without recovery key"
    )
    db.flush()
    return token


@dataclass(frozen=True)
class InvitationView:
    """What the welcome page shows before the password is chosen."""

    email: str
    display_name: str
    #: The link resets an existing officer: their old cases will need a grant.
    replaces_keys: bool


@dataclass(frozen=True)
class LostCase:
    received_on: dt.date
    #: Another officer can still open it, so they can give access again.
    colleague_can_grant: bool


@dataclass(frozen=True)
class Welcome:
    officer: Officer
    #: The one-time recovery key, shown once and never stored.
    recovery_code: str
    #: Cases the officer could open with their old keys, which now need a grant.
    lost_cases: list[LostCase]


def _live_invitation(db: Session, token: str, now: dt.datetime) -> tuple[Invitation, Officer | None]:
    """The invitation of a link that still works, and the officer it resets (if it is a reset).

    An invitation to a new officer never applies to an account that exists, and
    a reset link only to the active officer it was made for.
    """
    invitation = db.scalar(select(Invitation).where(Invitation.token_hash == crypto.token_hash(token)))
    if invitation is None or _utc(invitation.expires_at) <= now:
        raise InvitationUnavailable()
    existing = db.scalar(select(Officer).where(Officer.email == invitation.email))
    if existing is None and invitation.officer_id is None:
        return invitation, None
    if existing is None or not existing.is_active or invitation.officer_id != existing.id:
        raise InvitationUnavailable()
    return invitation, existing


def show_invitation(db: Session, token: str, now: dt.datetime) -> InvitationView:
    invitation, existing = _live_invitation(db, token, now)
    return InvitationView(invitation.email, invitation.display_name, existing is not None)


def _held_reports(db: Session, officer: Officer) -> tuple[list[Report], set[int]]:
    """The reports this officer holds a key for, and those of them another active officer holds."""
    reports = list(
        db.scalars(
            select(Report)
            .join(KeyWrap, KeyWrap.report_id == Report.id)
            .where(KeyWrap.officer_id == officer.id, KeyWrap.purpose == KeyPurpose.DATA)
            .order_by(Report.received_on, Report.id)
        )
    )
    others = set(
        db.scalars(
            select(KeyWrap.report_id)
            .join(Officer, Officer.id == KeyWrap.officer_id)
            .where(
                KeyWrap.report_id.in_([report.id for report in reports]),
                KeyWrap.officer_id != officer.id,
                KeyWrap.purpose == KeyPurpose.DATA,
                Officer.is_active,
            )
        )
    )
    return reports, others


def accept_invitation(
    db: Session, kdf: crypto.KdfParams, token: str, password: str, now: dt.datetime, *, pepper: bytes = b""
) -> Welcome:
    """Use a one-time link: set a password, and get a new key pair with it.

    For an invitation to a new email, a new officer is made with the name,
    email and role of the invitation. For an existing officer (a reset by an
    administrator), their key pair is replaced: every key wrap of the old one
    is deleted, and the cases they held are returned so the page can say which
    now need a grant from a colleague. The officer keeps their name and role;
    two-factor login must be set up again. A deactivated officer's link does
    not work.
    """
    invitation, officer = _live_invitation(db, token, now)
    check_password(password, known=(invitation.email, invitation.display_name))
    db.delete(invitation)
    if officer is None:
        created = create_officer(
            db,
            kdf,
            invitation.email,
            invitation.display_name,
            password,
            now,
            is_admin=invitation.is_admin,
            pepper=pepper,
        )
        audit.record(
            db, "invitation_accepted", created.officer.public_id, now, subject=created.officer.public_id
        )
        return Welcome(created.officer, created.recovery_code, [])
    reports, others = _held_reports(db, officer)
    for report in reports:
        audit.record(
            db, "access_lost", officer.public_id, now, report=report.public_id, subject=officer.public_id
        )
    db.execute(delete(KeyWrap).where(KeyWrap.officer_id == officer.id))
    pair = crypto.generate_keypair()
    officer.public_key = pair.public
    recovery_code = _seal_keys(officer, kdf, password, pair.private, pepper)
    twofactor.turn_off(officer)
    officer.failed_logins = 0
    officer.locked_until = None
    _end_sessions(db, officer)
    audit.record(
        db, "keys_replaced", officer.public_id, now, subject=officer.public_id, detail="new key pair"
    )
    db.flush()
    return Welcome(officer, recovery_code, [LostCase(r.received_on, r.id in others) for r in reports])


def reset_two_factor(db: Session, admin: Officer, officer_public_id: str, now: dt.datetime) -> None:
    """An administrator switches off an officer's two-factor login (a lost phone).

    The officer keeps their keys; where two-factor login is mandatory they
    must set it up again at their next login.
    """
    if not admin.is_admin or not admin.is_active:
        raise NotAllowed()
    officer = get_active(db, officer_public_id)
    if officer is None:
        raise UnknownOfficer(officer_public_id)
    twofactor.turn_off(officer)
    officer.failed_logins = 0
    officer.locked_until = None
    audit.record(db, "two_factor_reset", admin.public_id, now, subject=officer.public_id)
    db.flush()
