"""Demonstration cases: sealed like real ones, opened by officers, never mixed with real reports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.unit.conftest import CHEAP_KDF, NOW, PASSWORD, MakeOfficer, OfficerKeys, Organisation
from tests.unit.databases import PG_ENV, SKIP_REASON, scratch_postgresql
from whistle import crypto
from whistle.cli import cli
from whistle.config import WEAK_KDF_ENV
from whistle.db import make_engine, make_session_factory, upgrade
from whistle.models import AuditEvent, KeyPurpose, KeyWrap, Officer, Recipient, Report, ReportStatus
from whistle.services import cases, officers, reports, seed
from whistle.services.context import Moment, Policy
from whistle.services.errors import NobodyToRead, NotSeedable, ReceiptNotFound
from whistle.storage import SealedStore

TODAY = NOW.date()


@pytest.fixture
def factory(db: Session) -> sessionmaker[Session]:
    """Sessions on the test's database, as the command gets them (one transaction a batch)."""
    return sessionmaker(bind=db.get_bind(), expire_on_commit=False)


@pytest.fixture
def alice(make_officer: MakeOfficer, db: Session) -> OfficerKeys:
    keys = make_officer("Alice Officer")
    db.commit()
    return keys


@pytest.fixture
def bob(make_officer: MakeOfficer, db: Session) -> OfficerKeys:
    keys = make_officer("Bob Officer")
    db.commit()
    return keys


def run_seed(
    factory: sessionmaker[Session], organisation: Organisation, policy: Policy, count: int, **options: int
) -> int:
    return seed.seed(factory, organisation.keyring, policy, NOW, TODAY, count, **options)


def every_case(db: Session, officer: OfficerKeys) -> list[str]:
    page = cases.list_cases(db, officer.officer, TODAY, size=1000)
    return [row.public_id for row in page.rows]


def test_seeded_cases_are_listed_and_open_for_the_officers(
    db: Session,
    factory: sessionmaker[Session],
    organisation: Organisation,
    policy: Policy,
    alice: OfficerKeys,
    bob: OfficerKeys,
) -> None:
    progress: list[tuple[int, int]] = []
    total = seed.seed(
        factory,
        organisation.keyring,
        policy,
        NOW,
        TODAY,
        30,
        batch_size=12,
        progress=lambda *p: progress.append(p),
    )

    assert total == 30
    assert progress == [(12, 30), (24, 30), (30, 30)]
    assert db.scalar(select(func.count(Report.id))) == 30
    listed = every_case(db, alice)
    assert len(listed) == 30  # the first officer is never the one a "reporter" excluded
    actor = cases.Actor(alice.officer, alice.private_key)
    opened = [cases.open_case(db, actor, public_id, policy, Moment(NOW, TODAY)) for public_id in listed]
    assert all(case.answers.what_happened.startswith(seed.DEMO_MARK) for case in opened)
    assert any(case.messages for case in opened)
    assert any(case.notes for case in opened)
    assert any(case.protective_actions for case in opened)
    assert any(case.closing_summary for case in opened)
    for case in opened:
        assert case.received_on <= TODAY
        assert [entry.changed_on for entry in case.history] == sorted(
            entry.changed_on for entry in case.history
        )
    # Bob reads every case no "reporter" excluded him from.
    bob_actor = cases.Actor(bob.officer, bob.private_key)
    for public_id in every_case(db, bob):
        assert cases.open_case(db, bob_actor, public_id, policy, Moment(NOW, TODAY)).answers.category


def test_each_view_of_the_case_list_has_seeded_cases(
    db: Session,
    factory: sessionmaker[Session],
    organisation: Organisation,
    policy: Policy,
    alice: OfficerKeys,
) -> None:
    run_seed(factory, organisation, policy, 8)

    for view in cases.View:
        assert cases.list_cases(db, alice.officer, TODAY, view=view).rows, f"the view {view} is empty"
        assert cases.count_cases(db, alice.officer, TODAY, view).count >= 1, view


def test_the_organisation_recovery_key_opens_seeded_cases(
    db: Session,
    factory: sessionmaker[Session],
    organisation: Organisation,
    policy: Policy,
    alice: OfficerKeys,
) -> None:
    run_seed(factory, organisation, policy, 3)

    for report in db.scalars(select(Report)):
        wrap = db.scalar(
            select(KeyWrap).where(
                KeyWrap.report_id == report.id,
                KeyWrap.recipient == Recipient.ORGANISATION,
                KeyWrap.purpose == KeyPurpose.DATA,
            )
        )
        assert wrap is not None
        info = crypto.wrap_info(report.public_id, KeyPurpose.DATA.value)
        dek = crypto.unwrap_key(organisation.private_key, wrap.key_wrapped, info)
        assert reports.read_answers(report, dek).what_happened.startswith(seed.DEMO_MARK)
        assert report.receipt_kdf == organisation.keyring.kdf.encode()


def test_seeding_again_adds_to_the_seeded_cases_and_is_audited(
    db: Session,
    factory: sessionmaker[Session],
    organisation: Organisation,
    policy: Policy,
    alice: OfficerKeys,
) -> None:
    run_seed(factory, organisation, policy, 4)
    assert run_seed(factory, organisation, policy, 5) == 9

    assert db.scalar(select(func.count(Report.id))) == 9
    events = list(db.scalars(select(AuditEvent).where(AuditEvent.kind == "demo_cases_seeded")))
    assert [event.detail for event in events] == ["4", "5"]


def test_seeding_refuses_an_instance_with_a_real_report(
    db: Session,
    factory: sessionmaker[Session],
    organisation: Organisation,
    policy: Policy,
    store: SealedStore,
    alice: OfficerKeys,
) -> None:
    reports.submit_report(
        db, store, organisation.keyring, policy, reports.Answers("caseloads", "Real words."), [], TODAY
    )
    db.commit()

    with pytest.raises(NotSeedable):
        run_seed(factory, organisation, policy, 3)
    assert db.scalar(select(func.count(Report.id))) == 1


def test_seeding_refuses_a_real_report_that_arrives_between_batches(
    db: Session,
    factory: sessionmaker[Session],
    organisation: Organisation,
    policy: Policy,
    store: SealedStore,
    alice: OfficerKeys,
) -> None:
    run_seed(factory, organisation, policy, 2)
    with factory() as session:
        plan = seed.make_plan(session, organisation.keyring, policy, TODAY)
    batch = seed.make_cases(plan, 3, 1)
    reports.submit_report(
        db, store, organisation.keyring, policy, reports.Answers("caseloads", "Real words."), [], TODAY
    )
    db.commit()

    with pytest.raises(NotSeedable), factory() as session, session.begin():
        seed.store_cases(session, batch)
    assert db.scalar(select(func.count(Report.id))) == 3


def test_seeding_needs_an_officer_to_read_the_cases(
    factory: sessionmaker[Session], organisation: Organisation, policy: Policy
) -> None:
    with pytest.raises(NobodyToRead):
        run_seed(factory, organisation, policy, 1)


def test_no_receipt_opens_a_seeded_report(
    db: Session,
    factory: sessionmaker[Session],
    organisation: Organisation,
    policy: Policy,
    alice: OfficerKeys,
) -> None:
    run_seed(factory, organisation, policy, 1)

    with pytest.raises(ReceiptNotFound):
        reports.open_with_receipt(db, organisation.keyring, crypto.new_receipt())


def test_worker_processes_make_the_same_kind_of_cases(
    db: Session,
    factory: sessionmaker[Session],
    organisation: Organisation,
    policy: Policy,
    alice: OfficerKeys,
) -> None:
    assert run_seed(factory, organisation, policy, 14, workers=2, batch_size=3) == 14

    actor = cases.Actor(alice.officer, alice.private_key)
    listed = every_case(db, alice)
    assert len(listed) == 14
    for public_id in listed:
        assert cases.open_case(db, actor, public_id, policy, Moment(NOW, TODAY)).answers.what_happened


def test_statuses_and_clocks_are_consistent(
    db: Session,
    factory: sessionmaker[Session],
    organisation: Organisation,
    policy: Policy,
    alice: OfficerKeys,
) -> None:
    run_seed(factory, organisation, policy, 60)

    for report in db.scalars(select(Report)):
        clocks = reports.deadlines(report.received_on, report.acknowledged_on, policy)
        assert (report.acknowledge_by, report.feedback_by) == (clocks.acknowledge_by, clocks.feedback_by)
        assert (report.status is ReportStatus.NEW) == (report.acknowledged_on is None)
        assert (report.status is ReportStatus.CLOSED) == (report.closed_on is not None)
        for day in (report.acknowledged_on, report.closed_on, report.feedback_given_on, report.first_read_on):
            assert day is None or report.received_on <= day <= TODAY


# --- the command ------------------------------------------------------------------


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("WHISTLE_") and name != WEAK_KDF_ENV:
            monkeypatch.delenv(name)
    path = tmp_path / "instance"
    monkeypatch.setenv("WHISTLE_INSTANCE", str(path))
    monkeypatch.setenv("WHISTLE_KDF_TIME_COST", "1")
    monkeypatch.setenv("WHISTLE_KDF_MEMORY_COST", "8")
    old = os.umask(0o022)
    os.umask(old)
    yield path
    os.umask(old)


def test_the_seed_command_fills_an_instance_and_then_refuses_one_with_real_reports(instance: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["init"]).exit_code == 0
    refused = runner.invoke(cli, ["seed", "--cases", "3"])
    assert refused.exit_code == 1
    assert "add an officer first" in refused.output
    added = runner.invoke(
        cli, ["officer", "add", "--email", "a@example.org", "--name", "A"], input="correct horse battery\n"
    )
    assert added.exit_code == 0, added.output

    result = runner.invoke(cli, ["seed", "--cases", "3", "--workers", "1"])

    assert result.exit_code == 0, result.output
    assert "3 of 3 cases" in result.output
    assert "the instance holds 3 seeded cases" in result.output
    for path in instance.glob("whistle.db*"):  # sealed, like everything a reporter writes
        assert seed.DEMO_MARK.encode() not in path.read_bytes()


@pytest.mark.postgresql
def test_seeding_works_on_postgresql(organisation: Organisation, policy: Policy) -> None:
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(SKIP_REASON)
    with scratch_postgresql(url, "seed") as scratch:
        upgrade(scratch)
        engine = make_engine(scratch)
        try:
            factory = make_session_factory(engine)
            with factory() as db, db.begin():
                created = officers.create_officer(db, CHEAP_KDF, "a@example.org", "A", PASSWORD, NOW)
            with factory() as db:
                _officer, private_key = officers.authenticate(db, "a@example.org", PASSWORD)
            assert seed.seed(factory, organisation.keyring, policy, NOW, TODAY, 12, batch_size=5) == 12
            with factory() as db:
                officer = db.get(Officer, created.officer.id)
                assert officer is not None
                actor = cases.Actor(officer, private_key)
                listed = [row.public_id for row in cases.list_cases(db, officer, TODAY, size=100).rows]
                assert len(listed) == 12
                for public_id in listed:
                    assert cases.open_case(db, actor, public_id, policy, Moment(NOW, TODAY)).answers.category
        finally:
            engine.dispose()
