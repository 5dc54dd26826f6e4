"""The report services called directly: submission, the reporter's way back, the officer's reading room.

Every test runs on a fresh SQLite file made by the migrations, with real keys
and real sealing; nothing of Whistle is mocked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from whistle import crypto
from whistle.models import Attachment, Author, KeyPurpose, Recipient, Report, ReportStatus
from whistle.services import reports
from whistle.services.attachments import MAX_NAME_CHARS, Upload
from whistle.services.context import Clock, Keyring, Policy
from whistle.services.errors import (
    NobodyToRead,
    ReceiptNotFound,
    UnknownOfficer,
    UploadRejected,
)
from whistle.storage import SealedStore

if TYPE_CHECKING:
    from .conftest import MakeOfficer, Organisation

RECEIVED = dt.date(2024, 1, 31)
ANSWERS = reports.Answers(
    category="caseloads",
    what_happened="Caseloads are far beyond safe limits; home visits to children are being missed.",
    when_where="Since the spring, in the east locality team",
    immediate_risk="no",
    raised_before="yes",
    raised_before_result="Raised with my manager; nothing changed.",
)
RECEIPT_SHAPE = re.compile(rf"[{crypto.CROCKFORD}]{{4}}(-[{crypto.CROCKFORD}]{{4}}){{3}}")


def _submit(
    db: Session,
    store: SealedStore,
    keyring: Keyring,
    policy: Policy,
    answers: reports.Answers = ANSWERS,
    uploads: tuple[Upload, ...] = (),
    today: dt.date = RECEIVED,
) -> reports.Submitted:
    return reports.submit_report(db, store, keyring, policy, answers, list(uploads), today)


def _upload(name: str, data: bytes, content_type: str = "text/plain") -> Upload:
    return Upload(name, content_type, io.BytesIO(data))


def _report(db: Session, public_id: str) -> Report:
    report = db.scalar(select(Report).where(Report.public_id == public_id))
    assert report is not None
    return report


def _wrap(report: Report, recipient: Recipient, purpose: KeyPurpose, officer_id: int | None = None) -> bytes:
    (wrap,) = [
        w
        for w in report.wraps
        if w.recipient == recipient and w.purpose == purpose and w.officer_id == officer_id
    ]
    return wrap.key_wrapped


def _answers_sealed_with(dek: bytes, report: Report) -> dict[str, object]:
    context = crypto.context("report", report.public_id, "answers")
    answers: dict[str, object] = json.loads(crypto.open_sealed(dek, report.answers_sealed, context))
    return answers


def _files_in(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def _count(db: Session, model: type) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


# --- submission and the receipt --------------------------------------------


def test_submit_then_the_receipt_opens_the_same_data_key_and_the_answers(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy
) -> None:
    keyring = organisation.keyring
    submitted = _submit(db, store, keyring, policy)

    assert RECEIPT_SHAPE.fullmatch(submitted.receipt)
    assert submitted.received_on == RECEIVED
    assert submitted.deadlines == reports.Deadlines(dt.date(2024, 2, 7), dt.date(2024, 5, 7))

    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    assert public_id == submitted.public_id
    report = _report(db, public_id)
    info = crypto.wrap_info(public_id, KeyPurpose.DATA.value)
    org_dek = crypto.unwrap_key(
        organisation.private_key, _wrap(report, Recipient.ORGANISATION, KeyPurpose.DATA), info
    )
    assert dek == org_dek
    assert _answers_sealed_with(dek, report) == {**dataclasses.asdict(ANSWERS), "excluded_officers": []}

    case = reports.reporter_case(db, public_id, dek, policy)
    assert case.status is ReportStatus.NEW
    assert case.status_text == reports.STATUS_FOR_REPORTER[ReportStatus.NEW]
    assert case.received_on == RECEIVED
    assert case.read_on is None
    assert case.messages == []
    assert case.attachments == []


def test_receipt_is_read_in_any_case_with_spaces_instead_of_dashes(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy
) -> None:
    submitted = _submit(db, store, keyring, policy)
    typed = " " + submitted.receipt.lower().replace("-", " ") + " "
    assert reports.open_with_receipt(db, keyring, typed)[0] == submitted.public_id


def test_neither_the_answers_nor_the_receipt_reach_the_database_file(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, tmp_path: Path
) -> None:
    submitted = _submit(db, store, keyring, policy)
    db.commit()
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("whistle.db*"))
    assert b"east locality team" not in stored
    assert crypto.normalise_receipt(submitted.receipt).encode() not in stored
    assert submitted.receipt.encode() not in stored


def test_keys_are_wrapped_for_the_organisation_and_each_officer_not_excluded(
    db: Session,
    store: SealedStore,
    organisation: Organisation,
    policy: Policy,
    make_officer: MakeOfficer,
) -> None:
    alice, bob, carol = (
        make_officer("Alice Officer"),
        make_officer("Bob Officer"),
        make_officer("Carol Officer"),
    )
    answers = dataclasses.replace(ANSWERS, excluded_officers=(carol.officer.public_id,))
    submitted = _submit(db, store, organisation.keyring, policy, answers)
    _public_id, dek = reports.open_with_receipt(db, organisation.keyring, submitted.receipt)
    report = _report(db, submitted.public_id)

    recipients = {(w.recipient, w.officer_id, w.purpose) for w in report.wraps}
    expected = {
        (recipient, officer_id, purpose)
        for recipient, officer_id in (
            (Recipient.ORGANISATION, None),
            (Recipient.OFFICER, alice.officer.id),
            (Recipient.OFFICER, bob.officer.id),
        )
        for purpose in KeyPurpose
    }
    assert recipients == expected
    assert len(report.wraps) == len(expected)
    assert carol.officer.id not in {w.officer_id for w in report.wraps}

    data_info = crypto.wrap_info(report.public_id, KeyPurpose.DATA.value)
    internal_info = crypto.wrap_info(report.public_id, KeyPurpose.INTERNAL.value)
    internal = crypto.unwrap_key(
        organisation.private_key, _wrap(report, Recipient.ORGANISATION, KeyPurpose.INTERNAL), internal_info
    )
    assert len(internal) == crypto.KEY_BYTES
    assert internal != dek
    for reader in (alice, bob):
        officer_id = reader.officer.id
        assert (
            crypto.unwrap_key(
                reader.private_key, _wrap(report, Recipient.OFFICER, KeyPurpose.DATA, officer_id), data_info
            )
            == dek
        )
        assert (
            crypto.unwrap_key(
                reader.private_key,
                _wrap(report, Recipient.OFFICER, KeyPurpose.INTERNAL, officer_id),
                internal_info,
            )
            == internal
        )
    # The excluded officer's key opens none of them, and a wrap is bound to its purpose.
    alice_data = _wrap(report, Recipient.OFFICER, KeyPurpose.DATA, alice.officer.id)
    with pytest.raises(crypto.CryptoError):
        crypto.unwrap_key(carol.private_key, alice_data, data_info)
    with pytest.raises(crypto.CryptoError):
        crypto.unwrap_key(alice.private_key, alice_data, internal_info)


def test_a_deactivated_officer_gets_no_key(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    bob.officer.is_active = False
    db.flush()
    report = _report(db, _submit(db, store, keyring, policy).public_id)
    assert {w.officer_id for w in report.wraps} == {None, alice.officer.id}


def test_excluding_every_officer_is_refused_and_nothing_is_stored(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    alice, bob = make_officer("Alice Officer"), make_officer("Bob Officer")
    answers = dataclasses.replace(ANSWERS, excluded_officers=(alice.officer.public_id, bob.officer.public_id))
    with pytest.raises(NobodyToRead):
        _submit(db, store, keyring, policy, answers, (_upload("a.txt", b"evidence"),))
    assert _count(db, Report) == 0
    assert _files_in(store.root) == []


def test_excluding_an_unknown_officer_is_refused(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    make_officer("Alice Officer")
    answers = dataclasses.replace(ANSWERS, excluded_officers=(crypto.new_public_id(),))
    with pytest.raises(UnknownOfficer):
        _submit(db, store, keyring, policy, answers)
    assert _count(db, Report) == 0


def test_without_any_officer_the_report_is_wrapped_for_the_organisation_only(
    db: Session, store: SealedStore, organisation: Organisation, policy: Policy
) -> None:
    submitted = _submit(db, store, organisation.keyring, policy)
    report = _report(db, submitted.public_id)
    assert {(w.recipient, w.purpose) for w in report.wraps} == {
        (Recipient.ORGANISATION, KeyPurpose.DATA),
        (Recipient.ORGANISATION, KeyPurpose.INTERNAL),
    }
    assert len(report.wraps) == 2
    dek = crypto.unwrap_key(
        organisation.private_key,
        _wrap(report, Recipient.ORGANISATION, KeyPurpose.DATA),
        crypto.wrap_info(report.public_id, KeyPurpose.DATA.value),
    )
    assert _answers_sealed_with(dek, report)["what_happened"] == ANSWERS.what_happened


@pytest.mark.parametrize(
    "receipt",
    [
        pytest.param(None, id="unknown"),
        pytest.param("not a receipt", id="malformed"),
        pytest.param("ABCD-EFGH-JKMN-PQR", id="too-short"),
        pytest.param("ÄBCD-EFGH-JKMN-PQRS", id="not-ascii"),
        pytest.param("", id="empty"),
    ],
)
def test_a_receipt_that_matches_no_report_is_not_found(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, receipt: str | None
) -> None:
    _submit(db, store, keyring, policy)
    with pytest.raises(ReceiptNotFound):
        reports.open_with_receipt(db, keyring, crypto.new_receipt() if receipt is None else receipt)


def test_a_receipt_is_not_found_when_the_sealed_key_was_tampered_with(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy
) -> None:
    submitted = _submit(db, store, keyring, policy)
    report = _report(db, submitted.public_id)
    sealed = bytearray(report.dek_receipt_sealed)
    sealed[-1] ^= 1
    report.dek_receipt_sealed = bytes(sealed)
    db.flush()
    with pytest.raises(ReceiptNotFound):
        reports.open_with_receipt(db, keyring, submitted.receipt)


def test_a_receipt_is_not_found_under_another_instance_pepper(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy
) -> None:
    submitted = _submit(db, store, keyring, policy)
    other = dataclasses.replace(keyring, pepper=crypto.new_key())
    with pytest.raises(ReceiptNotFound):
        reports.open_with_receipt(db, other, submitted.receipt)


# --- deadlines ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "acknowledged", "acknowledge_by", "feedback_by"),
    [
        pytest.param(
            dt.date(2024, 1, 31), None, dt.date(2024, 2, 7), dt.date(2024, 5, 7), id="unacknowledged"
        ),
        pytest.param(
            dt.date(2024, 11, 28),
            dt.date(2024, 11, 30),
            dt.date(2024, 12, 5),
            dt.date(2025, 2, 28),
            id="month-end",
        ),
        pytest.param(
            dt.date(2023, 11, 27),
            dt.date(2023, 11, 29),
            dt.date(2023, 12, 4),
            dt.date(2024, 2, 29),
            id="leap-year",
        ),
        pytest.param(
            dt.date(2024, 12, 28), None, dt.date(2025, 1, 4), dt.date(2025, 4, 4), id="across-the-new-year"
        ),
    ],
)
def test_deadlines(
    received: dt.date, acknowledged: dt.date | None, acknowledge_by: dt.date, feedback_by: dt.date
) -> None:
    assert reports.deadlines(received, acknowledged, Policy()) == reports.Deadlines(
        acknowledge_by, feedback_by
    )


def test_deadlines_follow_the_policy() -> None:
    policy = Policy(acknowledge_days=3, feedback_months=1)
    assert reports.deadlines(dt.date(2024, 1, 31), None, policy) == reports.Deadlines(
        dt.date(2024, 2, 3), dt.date(2024, 3, 3)
    )


# --- the dialogue ----------------------------------------------------------------


def test_a_reporter_may_send_files_without_a_message(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, make_officer: MakeOfficer
) -> None:
    make_officer("Alice Officer")
    submitted = _submit(db, store, keyring, policy)
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    reports.add_reporter_message(
        db, store, policy, public_id, dek, "", [_upload("rota.pdf", b"%PDF", "application/pdf")], RECEIVED
    )
    db.expire_all()
    case = reports.reporter_case(db, public_id, dek, policy)
    assert case.messages == []
    assert [(a.filename, a.content_type, a.size, a.author) for a in case.attachments] == [
        ("rota.pdf", "application/pdf", 4, Author.REPORTER)
    ]
    assert _report(db, public_id).unread_reporter_messages is True


# --- attachments -----------------------------------------------------------------


def test_the_session_that_added_files_sees_each_attachment_once(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy
) -> None:
    submitted = _submit(db, store, keyring, policy)
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    report = _report(db, public_id)  # held, as a request holds it until it ends
    reports.add_reporter_message(
        db, store, policy, public_id, dek, "", [_upload("a.txt", b"a"), _upload("b.txt", b"b")], RECEIVED
    )
    assert _count(db, Attachment) == 2
    names = [a.filename for a in reports.reporter_case(db, public_id, dek, policy).attachments]
    assert (names, len(report.attachments)) == (["a.txt", "b.txt"], 2)


def test_too_many_files_are_rejected_and_nothing_is_stored(
    db: Session, store: SealedStore, keyring: Keyring
) -> None:
    policy = Policy(max_files=2)
    uploads = tuple(_upload(f"{n}.txt", b"x") for n in range(3))
    with pytest.raises(UploadRejected, match="up to 2 files"):
        _submit(db, store, keyring, policy, uploads=uploads)
    assert _files_in(store.root) == []
    assert _count(db, Report) == 0


def test_a_file_over_the_limit_is_rejected_and_no_blob_is_left(
    db: Session, store: SealedStore, keyring: Keyring
) -> None:
    policy = Policy(max_file_bytes=10)
    uploads = (_upload("fits.txt", b"x" * 10), _upload("big.txt", b"x" * 11), _upload("later.txt", b"x"))
    with pytest.raises(UploadRejected, match=r"big\.txt"):
        _submit(db, store, keyring, policy, uploads=uploads)
    assert _files_in(store.root) == []
    assert _count(db, Report) == 0
    assert _count(db, Attachment) == 0


def test_a_file_at_the_limit_is_accepted(db: Session, store: SealedStore, keyring: Keyring) -> None:
    policy = Policy(max_file_bytes=10)
    submitted = _submit(db, store, keyring, policy, uploads=(_upload("fits.txt", b"x" * 10),))
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    db.expire_all()
    assert [a.size for a in reports.reporter_case(db, public_id, dek, policy).attachments] == [10]
    assert len(_files_in(store.root)) == 1


def test_a_rejected_follow_up_file_leaves_no_new_blob(
    db: Session, store: SealedStore, keyring: Keyring, make_officer: MakeOfficer
) -> None:
    make_officer("Alice Officer")
    policy = Policy(max_file_bytes=10)
    submitted = _submit(db, store, keyring, policy, uploads=(_upload("first.txt", b"1"),))
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    db.commit()
    before = _files_in(store.root)
    with pytest.raises(UploadRejected):
        reports.add_reporter_message(
            db,
            store,
            policy,
            public_id,
            dek,
            "see attached",
            [_upload("ok.txt", b"fine"), _upload("huge.txt", b"x" * 11)],
            RECEIVED,
        )
    assert _files_in(store.root) == before


def test_a_rejected_follow_up_leaves_the_case_as_it_was(
    db: Session, store: SealedStore, keyring: Keyring, make_officer: MakeOfficer
) -> None:
    make_officer("Alice Officer")
    policy = Policy(max_file_bytes=10)
    submitted = _submit(db, store, keyring, policy)
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    db.commit()
    report = _report(db, public_id)  # held, as a request holds it until it ends
    with pytest.raises(UploadRejected):
        reports.add_reporter_message(
            db,
            store,
            policy,
            public_id,
            dek,
            "see attached",
            [_upload("ok.txt", b"fine"), _upload("huge.txt", b"x" * 11)],
            RECEIVED,
        )
    case = reports.reporter_case(db, public_id, dek, policy)
    assert (case.messages, case.attachments, report.messages) == ([], [], [])


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\y.doc", "y.doc"),
        ("/home/jo/Desktop/minutes final.pdf", "minutes final.pdf"),
        ("", "file"),
        ("   ", "file"),
        ("folder/", "file"),
        ("re\x00po\nrt\u202e.txt", "report.txt"),
        ("a" * 300, "a" * MAX_NAME_CHARS),
    ],
)
def test_file_names_keep_only_their_last_component(
    db: Session, store: SealedStore, keyring: Keyring, policy: Policy, sent: str, kept: str
) -> None:
    submitted = _submit(db, store, keyring, policy, uploads=(_upload(sent, b"data"),))
    public_id, dek = reports.open_with_receipt(db, keyring, submitted.receipt)
    db.expire_all()
    assert [a.filename for a in reports.reporter_case(db, public_id, dek, policy).attachments] == [kept]


# --- the clock -------------------------------------------------------------------


def test_the_clock_gives_utc_time_and_the_organisation_day() -> None:
    now = Clock().now()
    assert now.utcoffset() == dt.timedelta(0)
    kiritimati = Clock(ZoneInfo("Pacific/Kiritimati"))  # UTC+14: often already tomorrow
    before = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=14)).date()
    today = kiritimati.today()
    after = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=14)).date()
    assert today in {before, after}
