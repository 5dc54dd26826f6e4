"""A database of the first release, with sealed reports in it, upgraded to the latest schema.

The rows are written as the first release wrote them: into its tables
(revision 0001, reflected from the database), sealed with ``whistle.crypto``
exactly as ``whistle/services/reports.py``, ``attachments.py`` and
``officers.py`` did at that commit (5d81381). After ``upgrade`` to the head,
every report must still open for its reporter (with the receipt) and for its
officers (with their password), with its answers, messages and files intact
and the first release's statuses mapped onto the new ones; the organisation's
recovery key must still reach every report; and an excluded officer must
still be kept out. On SQLite, and on PostgreSQL when WHISTLE_TEST_DATABASE_URL
is set (in a database of the test's own).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, Table, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from tests.unit.conftest import CHEAP_KDF, PASSWORD
from tests.unit.databases import PG_ENV, SKIP_REASON, scratch_postgresql
from whistle import crypto
from whistle.db import make_engine, make_session_factory, upgrade
from whistle.models import ReportStatus
from whistle.services import cases, officers, recovery, reports
from whistle.services.context import Keyring, Moment, Policy
from whistle.services.errors import OfficerExcluded, ReportNotFound
from whistle.storage import SealedStore

FIRST_RELEASE = "0001"
ROOT = Path(__file__).resolve().parents[2]
RECEIVED = dt.date(2025, 1, 6)
LATER = dt.date(2025, 1, 13)
NOW = dt.datetime(2025, 2, 3, 10, 0, tzinfo=dt.UTC)
#: The first release's statuses and what revision 0002 makes of them.
STATUS_MAPPING = {
    "new": ReportStatus.NEW,
    "acknowledged": ReportStatus.ACKNOWLEDGED,
    "in_progress": ReportStatus.INVESTIGATING,
    "closed": ReportStatus.CLOSED,
}


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def first_release_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database brought to the first release's schema, and no further."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'whistle.db'}"
        upgrade(url, FIRST_RELEASE)
        yield url
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(SKIP_REASON)
    with scratch_postgresql(base, "first_release") as url:
        upgrade(url, FIRST_RELEASE)
        yield url


# --- the first release's way of writing ------------------------------------------------------


@dataclass(frozen=True)
class OldOfficer:
    id: int
    public_id: str
    email: str
    display_name: str


@dataclass
class OldReport:
    public_id: str
    receipt: str
    status: str
    answers: dict[str, object]
    #: (author, body) in the order written.
    messages: list[tuple[str, str]] = field(default_factory=list)
    #: attachment public id -> (file name, content type, bytes).
    files: dict[str, tuple[str, str, bytes]] = field(default_factory=dict)
    readers: list[OldOfficer] = field(default_factory=list)


class FirstRelease:
    """Writes officers and reports into the tables of revision 0001, sealed as that release sealed them."""

    def __init__(self, connection: Connection, keyring: Keyring, store: SealedStore) -> None:
        metadata = MetaData()
        metadata.reflect(bind=connection)
        self.tables: dict[str, Table] = dict(metadata.tables)
        assert "status_change" not in self.tables, "this is not the first release's schema"
        self.connection = connection
        self.keyring = keyring
        self.store = store

    def _insert(self, table: str, **values: object) -> int:
        result = self.connection.execute(self.tables[table].insert().values(**values))
        (row_id,) = result.inserted_primary_key or (None,)
        assert isinstance(row_id, int)
        return row_id

    def officer(self, display_name: str, email: str, *, is_admin: bool = False) -> OldOfficer:
        """As services/officers.py create_officer did at 0001."""
        public_id = crypto.new_public_id()
        pair = crypto.generate_keypair()
        password_salt, recovery_salt = crypto.new_salt(), crypto.new_salt()
        password_key = crypto.derive_key(PASSWORD.encode(), password_salt, self.keyring.kdf)
        recovery_code = crypto.new_recovery_code()
        row_id = self._insert(
            "officer",
            public_id=public_id,
            email=email,
            display_name=display_name,
            is_admin=is_admin,
            is_active=True,
            created_at=NOW - dt.timedelta(days=60),
            public_key=pair.public,
            private_key_sealed=crypto.seal(
                password_key, pair.private, crypto.context("officer", public_id, "private-key", "password")
            ),
            password_salt=password_salt,
            password_kdf=self.keyring.kdf.encode(),
            private_key_recovery_sealed=crypto.seal(
                crypto.recovery_code_key(recovery_code, recovery_salt),
                pair.private,
                crypto.context("officer", public_id, "private-key", "recovery"),
            ),
            recovery_salt=recovery_salt,
        )
        return OldOfficer(row_id, public_id, email, display_name)

    def report(
        self,
        everyone: list[OldOfficer],
        *,
        status: str,
        what_happened: str,
        excluded: tuple[OldOfficer, ...] = (),
        messages: tuple[tuple[str, OldOfficer | None, str], ...] = (),
        files: tuple[tuple[str, str, bytes], ...] = (),
    ) -> OldReport:
        """As services/reports.py submit_report (and the dialogue after it) did at 0001."""
        public_id = crypto.new_public_id()
        dek, internal_key = crypto.new_key(), crypto.new_key()
        receipt = crypto.new_receipt()
        normalised = crypto.normalise_receipt(receipt)
        salt = crypto.new_salt()
        receipt_key = crypto.derive_key(normalised.encode(), salt, self.keyring.kdf)
        # dataclasses.asdict(Answers(...)) of the first release, in its field order.
        answers: dict[str, object] = {
            "category": "child_at_risk",
            "what_happened": what_happened,
            "when_where": "East locality team, since the autumn",
            "immediate_risk": "not_sure",
            "raised_before": "yes",
            "raised_before_result": "Told my manager in November; nothing changed.",
            "excluded_officers": [officer.public_id for officer in excluded],
        }
        moved_on = status != "new"
        report_id = self._insert(
            "report",
            public_id=public_id,
            receipt_lookup=crypto.receipt_lookup(self.keyring.pepper, normalised),
            dek_receipt_sealed=crypto.seal(
                receipt_key, dek, crypto.context("report", public_id, "dek", "receipt")
            ),
            receipt_salt=salt,
            receipt_kdf=self.keyring.kdf.encode(),
            received_on=RECEIVED,
            status=status,
            status_changed_on=LATER if moved_on else RECEIVED,
            first_read_on=LATER if moved_on else None,
            acknowledged_on=LATER if moved_on else None,
            unread_reporter_messages=any(author == "reporter" for author, _o, _b in messages),
            answers_sealed=crypto.seal(
                dek, json.dumps(answers).encode(), crypto.context("report", public_id, "answers")
            ),
        )
        readers = [officer for officer in everyone if officer not in excluded]
        for purpose, key in (("data", dek), ("internal", internal_key)):
            info = crypto.wrap_info(public_id, purpose)
            self._insert(
                "key_wrap",
                report_id=report_id,
                recipient="organisation",
                officer_id=None,
                purpose=purpose,
                key_wrapped=crypto.wrap_key(self.keyring.organisation_public_key, key, info),
            )
            for officer in readers:
                officer_public_key = self.connection.execute(
                    text("SELECT public_key FROM officer WHERE id = :id"), {"id": officer.id}
                ).scalar_one()
                self._insert(
                    "key_wrap",
                    report_id=report_id,
                    recipient="officer",
                    officer_id=officer.id,
                    purpose=purpose,
                    key_wrapped=crypto.wrap_key(officer_public_key, key, info),
                )
        old = OldReport(public_id, receipt, status, answers, readers=readers)
        for author, officer, body in messages:
            message_id = crypto.new_public_id()
            self._insert(
                "message",
                public_id=message_id,
                report_id=report_id,
                author=author,
                officer_id=officer.id if officer else None,
                sent_on=LATER,
                body_sealed=crypto.seal(
                    dek, body.encode(), crypto.context("report", public_id, "message", message_id)
                ),
            )
            old.messages.append((author, body))
        for name, content_type, data in files:  # as services/attachments.py _seal_one did at 0001
            attachment_id = crypto.new_public_id()
            with self.store.create() as (blob_name, sink):
                size = crypto.encrypt_stream(
                    crypto.file_key(dek, attachment_id),
                    crypto.context("report", public_id, "attachment", attachment_id),
                    io.BytesIO(data),
                    sink,
                )
            meta = {"name": name, "type": content_type, "size": size}
            self._insert(
                "attachment",
                public_id=attachment_id,
                report_id=report_id,
                author="reporter",
                uploaded_on=RECEIVED,
                meta_sealed=crypto.seal(
                    dek,
                    json.dumps(meta).encode(),
                    crypto.context("report", public_id, "attachment-meta", attachment_id),
                ),
                blob_name=blob_name,
            )
            old.files[attachment_id] = (name, content_type, data)
        return old


@dataclass
class Upgraded:
    url: str
    organisation_private_key: bytes
    keyring: Keyring
    store: SealedStore
    officers: dict[str, OldOfficer]
    reports: list[OldReport]


@pytest.fixture
def upgraded(first_release_url: str, tmp_path: Path) -> Iterator[Upgraded]:
    """A first-release database with four reports in it, then upgraded to the head."""
    organisation = crypto.generate_keypair()
    keyring = Keyring(pepper=crypto.new_key(), organisation_public_key=organisation.public, kdf=CHEAP_KDF)
    store = SealedStore(tmp_path / "files")
    engine = make_engine(first_release_url)
    try:
        with engine.begin() as connection:
            old = FirstRelease(connection, keyring, store)
            alice = old.officer("Alice Officer", "alice@example.org", is_admin=True)
            bob = old.officer("Bob Officer", "bob@example.org")
            everyone = [alice, bob]
            written = [
                old.report(
                    everyone,
                    status="in_progress",
                    what_happened="Visits to a child on the protection plan were recorded but never made.",
                    messages=(
                        ("officer", alice, "Thank you. Can you say which weeks?"),
                        ("reporter", None, "The first three weeks of December."),
                    ),
                    files=(("visit-log.csv", "text/csv", b"date,visited\n2024-12-02,no\n" * 50),),
                ),
                old.report(
                    everyone,
                    status="new",
                    what_happened="My manager is the one changing the records; please keep this from Bob.",
                    excluded=(bob,),
                ),
                old.report(
                    everyone,
                    status="acknowledged",
                    what_happened="Supervision has not happened for six months.",
                    messages=(("officer", bob, "We have received your report."),),
                ),
                old.report(everyone, status="closed", what_happened="Agency staff without checks."),
            ]
    finally:
        engine.dispose()
    upgrade(first_release_url)
    yield Upgraded(
        first_release_url,
        organisation.private,
        keyring,
        store,
        {"alice": alice, "bob": bob},
        written,
    )


@pytest.fixture
def db(upgraded: Upgraded) -> Iterator[Session]:
    engine = make_engine(upgraded.url)
    session = make_session_factory(engine)()
    try:
        yield session
    finally:
        session.close()
        engine.dispose()


def moment() -> Moment:
    return Moment(NOW, NOW.date())


def actor(db: Session, email: str) -> cases.Actor:
    """An officer of the first release logs in with the same password after the upgrade."""
    officer, private_key = officers.authenticate(db, email, PASSWORD)
    return cases.Actor(officer, private_key)


# --- the checks -------------------------------------------------------------------------------


def test_the_database_is_at_the_head(upgraded: Upgraded, db: Session) -> None:
    version = db.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == head_revision() != FIRST_RELEASE


def test_every_report_opens_for_its_reporter(upgraded: Upgraded, db: Session) -> None:
    for old in upgraded.reports:
        public_id, dek = reports.open_with_receipt(db, upgraded.keyring, old.receipt)
        assert public_id == old.public_id
        case = reports.reporter_case(db, public_id, dek, Policy())
        assert case.status == STATUS_MAPPING[old.status]
        assert [(m.author.value, m.body) for m in case.messages] == old.messages
        assert sorted(a.filename for a in case.attachments) == sorted(f[0] for f in old.files.values())
        # The receipt's spelling still does not matter.
        assert (
            reports.open_with_receipt(db, upgraded.keyring, old.receipt.lower().replace("-", " "))[1] == dek
        )


def test_every_report_opens_for_its_officers(upgraded: Upgraded, db: Session) -> None:
    opened = 0
    for old in upgraded.reports:
        for reader in old.readers:
            case = cases.open_case(db, actor(db, reader.email), old.public_id, Policy(), moment())
            assert case.status == STATUS_MAPPING[old.status]
            assert case.answers == reports.Answers(
                **{**old.answers, "excluded_officers": tuple(old.answers["excluded_officers"])}  # type: ignore[arg-type]
            )
            assert [(m.author.value, m.body) for m in case.messages] == old.messages
            assert {a.public_id: (a.filename, a.content_type, a.size) for a in case.attachments} == {
                key: (name, kind, len(data)) for key, (name, kind, data) in old.files.items()
            }
            for attachment_id, (_name, _kind, data) in old.files.items():
                _info, chunks = cases.read_attachment(
                    db, upgraded.store, actor(db, reader.email), old.public_id, attachment_id, moment()
                )
                assert b"".join(chunks) == data
            opened += 1
    db.commit()
    assert opened == 7  # two readers for three reports, one for the report that excluded Bob


def test_the_statuses_and_clocks_of_the_first_release_carry_over(upgraded: Upgraded, db: Session) -> None:
    alice = actor(db, upgraded.officers["alice"].email)
    by_status = {old.status: old for old in upgraded.reports}
    investigating = cases.open_case(db, alice, by_status["in_progress"].public_id, Policy(), moment())
    assert investigating.status is ReportStatus.INVESTIGATING
    assert [entry.status for entry in investigating.history] == [ReportStatus.NEW, ReportStatus.INVESTIGATING]
    fresh = cases.open_case(db, alice, by_status["new"].public_id, Policy(), moment())
    assert fresh.deadlines.acknowledge_by == RECEIVED + dt.timedelta(days=7)
    assert fresh.deadlines.feedback_by == dt.date(2025, 4, 13)
    acknowledged = cases.open_case(db, alice, by_status["acknowledged"].public_id, Policy(), moment())
    assert acknowledged.deadlines.feedback_by == dt.date(2025, 4, 13)  # three months from acknowledgement
    # The next deadline the database works out for the list (migration 0007) follows the same clocks.
    rows = {row.public_id: row for row in cases.list_cases(db, alice.officer, NOW.date()).rows}
    assert rows[fresh.public_id].next_deadline == fresh.deadlines.acknowledge_by
    assert rows[acknowledged.public_id].next_deadline == dt.date(2025, 4, 13)
    assert rows[by_status["closed"].public_id].next_deadline is None


def test_an_excluded_officer_is_still_kept_out(upgraded: Upgraded, db: Session) -> None:
    excluding = next(old for old in upgraded.reports if old.answers["excluded_officers"])
    bob = actor(db, upgraded.officers["bob"].email)
    with pytest.raises((ReportNotFound, OfficerExcluded)):
        cases.open_case(db, bob, excluding.public_id, Policy(), moment())


def test_the_organisation_recovery_key_still_reaches_every_report(upgraded: Upgraded, db: Session) -> None:
    officers.create_officer(db, CHEAP_KDF, "carol@example.org", "Carol Officer", PASSWORD, NOW)
    result = recovery.recover_access(
        db, upgraded.keyring, upgraded.organisation_private_key, "carol@example.org", NOW
    )
    assert result.granted == len(upgraded.reports)
    carol = actor(db, "carol@example.org")
    for old in upgraded.reports:
        case = cases.open_case(db, carol, old.public_id, Policy(), moment())
        assert case.answers.what_happened == old.answers["what_happened"]


@pytest.mark.postgresql
def test_hosts_that_start_at_once_upgrade_the_database_once(tmp_path: Path) -> None:
    """Two processes run the migrations on one first-release database at the same moment."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(SKIP_REASON)
    with scratch_postgresql(base, "first_release_race") as url:
        upgrade(url, FIRST_RELEASE)
        code = f"from whistle.db import upgrade; upgrade({url!r})"
        started = [
            subprocess.Popen(
                [sys.executable, "-c", code],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _host in range(2)
        ]
        outputs = []
        for process in started:
            try:
                outputs.append(process.communicate(timeout=120)[0])
            finally:
                process.kill()
        assert [process.returncode for process in started] == [0, 0], outputs
        engine = make_engine(url)
        try:
            with engine.connect() as connection:
                versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        finally:
            engine.dispose()
        assert versions == [head_revision()]
