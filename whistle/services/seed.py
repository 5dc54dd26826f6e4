"""Demonstration cases: fill an instance with realistic sealed cases, quickly.

``whistle seed --cases N`` is for demonstrations and benchmarks. Each seeded
case is sealed like a real one: a random data key and internal key, the
answers, messages, notes and closing summary sealed under them, and both keys
wrapped with HPKE for the organisation recovery key and for every active
officer (bar the odd one the "reporter" excluded). Officers open seeded cases
exactly as they open real ones.

What is not real, on purpose:

* **No receipt.** A real report seals its data key under Argon2id of the
  receipt, which costs a fraction of a second per report (hours for 100,000
  cases). A seeded report stores the instance's Argon2id parameters and a
  fresh salt as usual, but its data key is sealed under a random key that is
  thrown away, and its lookup is random bytes (what an HMAC under the pepper
  looks like to anyone). So a seeded report can never be followed up by a
  reporter.
* **No attachments**, and the audit log gets one entry for the whole seeding
  rather than one per case.

Every answer starts with "[Demonstration]", so no seeded case is mistaken for
a real concern.

Seeding refuses an instance that holds any report it did not make: the
number of seeded reports is kept in the ``seeded_reports`` setting, and the
instance must hold exactly that many reports before every batch. (Deleting a
seeded case therefore also stops further seeding: start from a new instance.)
"""

from __future__ import annotations

import collections
import datetime as dt
import itertools
import json
import multiprocessing
import random
import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from whistle import audit, crypto
from whistle.db import Base, analyze
from whistle.models import (
    Author,
    DetrimentRisk,
    KeyPurpose,
    KeyWrap,
    Message,
    Note,
    Officer,
    Outcome,
    Priority,
    Recipient,
    Report,
    ReportStatus,
    Setting,
    StatusChange,
)
from whistle.services.context import Keyring, Policy
from whistle.services.errors import NobodyToRead, NotSeedable
from whistle.services.reports import (
    CATEGORIES,
    Answers,
    answers_context,
    deadlines,
    message_context,
    seal_position,
    summary_context,
)

#: The setting that counts the reports made by seeding.
SEEDED_SETTING = "seeded_reports"
#: Cases made and inserted together, in one transaction.
BATCH_SIZE = 1000
#: Seeded cases arrive over this many days before today.
SPAN_DAYS = 3 * 365
DEMO_MARK = "[Demonstration] "

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class OfficerKey:
    id: int
    public_id: str
    public_key: bytes = field(repr=False)


@dataclass(frozen=True)
class SeedPlan:
    """Everything a batch needs, and nothing secret: it goes to worker processes."""

    today: dt.date
    policy: Policy
    kdf: str
    organisation_public_key: bytes = field(repr=False)
    officers: tuple[OfficerKey, ...]


@dataclass
class SeededCase:
    """One case as rows to insert; the children get the report's id once it has one."""

    report: dict[str, Any]
    wraps: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)


# --- checks ----------------------------------------------------------------------


def seeded_count(db: Session) -> int:
    row = db.get(Setting, SEEDED_SETTING)
    return int(json.loads(row.value)) if row is not None else 0


def check_seedable(db: Session) -> int:
    """Refuse an instance with any report that seeding did not make; return the report count."""
    reports = db.scalar(select(func.count(Report.id))) or 0
    if reports != seeded_count(db):
        raise NotSeedable(
            "this instance holds reports that were not made by `whistle seed`; "
            "demonstration cases go into a new instance only"
        )
    return reports


def make_plan(db: Session, keyring: Keyring, policy: Policy, today: dt.date) -> SeedPlan:
    check_seedable(db)
    officers = tuple(
        OfficerKey(officer.id, officer.public_id, officer.public_key)
        for officer in db.scalars(
            select(Officer).where(Officer.is_active).order_by(Officer.created_at, Officer.email)
        )
    )
    if not officers:
        raise NobodyToRead("add an officer first: seeded cases are wrapped for the active officers")
    return SeedPlan(
        today=today,
        policy=policy,
        kdf=keyring.kdf.encode(),
        organisation_public_key=keyring.organisation_public_key,
        officers=officers,
    )


# --- what a case says -------------------------------------------------------------

_WHAT = {
    "child_at_risk": [
        "A child on our caseload was left at home with a parent after a visit found clear signs of neglect.",
        "Concerns about a baby's weight loss were raised at two visits but no strategy discussion was held.",
        "A child protection plan was stepped down although the risks in the home had not changed.",
    ],
    "exploitation": [
        "A teenager in care keeps going missing overnight and comes back with new phones and money.",
        "Staff at a children's home have seen older men collecting a young person in different cars.",
    ],
    "caseloads": [
        "Social workers in the team carry more than thirty children each; statutory visits are missed.",
        "Agency staff leave after weeks and their cases sit unallocated, some on child protection plans.",
    ],
    "supervision": [
        "Newly qualified workers have had no supervision for months and are making decisions alone.",
        "Supervision notes are being written afterwards for sessions that never took place.",
    ],
    "poor_practice": [
        "Visit records are being backdated so that the figures meet the timescales.",
        "Assessments are copied from one sibling's file to another's without anyone seeing the child.",
    ],
    "reprisals": [
        "A colleague who raised caseloads with the service manager was moved to another team the next week.",
        "After I questioned a decision in a strategy meeting I was left out of team meetings.",
    ],
    "other": [
        "Budget pressure is being used to refuse placements that the children's assessments say they need.",
        "Information about children is being shared on personal messaging groups.",
    ],
}
_WHEN = [
    "Over the last few months, in the east locality team",
    "Since the restructure, at the duty and assessment team",
    "Several times this year, at the children's home",
    "At the end of last month, in the disabled children's team",
    "Ongoing, across the fostering service",
]
_FOLLOW_UP = [
    "It is still happening and several colleagues have noticed it too.",
    "I am worried that something serious will happen before anyone acts.",
    "I have kept notes of the dates if that helps.",
]
_OFFICER_MESSAGES = [
    "Thank you for raising this. We have received your concern and an officer is looking at it.",
    "Could you tell us roughly when this started and whether anyone else has raised it?",
    "We have spoken to the service manager and are reviewing the cases you describe.",
]
_REPORTER_MESSAGES = [
    "It started around the spring. Two colleagues raised it with the team manager before me.",
    "Nothing has changed since I wrote. Visits are still being missed.",
    "Thank you for letting me know.",
]
_NOTES = [
    "Checked the allocation figures for the team: they support what the reporter says.",
    "Discussed with the head of service; an audit of the files named is booked.",
    "Risk of detriment considered: the team is small, so no one will be told who raised this.",
]
_PROTECTIVE_ACTIONS = (
    "Keep the reporter's team out of the review meetings; check in monthly on their welfare."
)
_SUMMARIES = [
    "We looked into your concern. The cases were reviewed and visits are now back within timescales.",
    "Your concern was referred to the local safeguarding partnership, who are taking it forward.",
    "We reviewed the records and could not find evidence of what was described; we will keep watching.",
]
_OFFICER_CATEGORIES = ["Safeguarding", "Staffing and caseloads", "Practice standards", "Conduct"]

#: Profiles the first cases of every batch take, so that each view of the case list has cases.
_PROFILES = ("new_recent", "new_overdue", "urgent", "feedback_due", "feedback_overdue", "closed", "excluded")


# --- making cases (pure: crypto only, so it runs in worker processes) ---------


def make_cases(plan: SeedPlan, count: int, rng_seed: int) -> list[SeededCase]:
    """``count`` sealed cases, their shape drawn from ``rng_seed``; keys always from ``secrets``."""
    rng = random.Random(rng_seed)  # noqa: S311 - shapes of demonstration data, never a key
    return [_make_case(plan, rng, _PROFILES[i] if i < len(_PROFILES) else "") for i in range(count)]


@dataclass
class _Life:
    """The workflow of a case: what happened on which day."""

    received: dt.date
    status: ReportStatus = ReportStatus.NEW
    acknowledged: dt.date | None = None
    feedback_given: dt.date | None = None
    closed: dt.date | None = None
    steps: list[tuple[ReportStatus, dt.date]] = field(default_factory=list)


def _day(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    """A day from ``start`` to ``end`` (or ``start`` when the range is empty)."""
    return start + dt.timedelta(days=rng.randint(0, max(0, (end - start).days)))


def _life(plan: SeedPlan, rng: random.Random, profile: str) -> _Life:
    today = plan.today
    months = plan.policy.feedback_months
    if profile == "new_recent":
        return _Life(today - dt.timedelta(days=rng.randint(0, plan.policy.acknowledge_days - 1)))
    if profile == "new_overdue":
        return _Life(today - dt.timedelta(days=plan.policy.acknowledge_days + rng.randint(1, 20)))
    if profile in ("feedback_due", "feedback_overdue"):
        # Acknowledged a feedback period before a target day, so the feedback falls due on that day
        # or up to three days before it (a month's end shortens the months): within the week, or late.
        offset = rng.randint(3, 7) if profile == "feedback_due" else -rng.randint(1, 30)
        acknowledged = today + dt.timedelta(days=offset) - relativedelta(months=months)
        received = acknowledged - dt.timedelta(days=rng.randint(0, 5))
        return _open_life(rng, received, acknowledged, today, months, feedback=False)
    age = rng.randint(30 if profile == "closed" else 0, SPAN_DAYS)
    received = today - dt.timedelta(days=age)
    if profile == "urgent":
        acknowledged = _day(rng, received, min(today, received + dt.timedelta(days=3)))
        return _open_life(rng, received, acknowledged, today, months)
    # Most cases of the last fortnight are new still; the odd older one was never picked up.
    if profile != "closed" and rng.random() < (0.65 if age <= 14 else 0.02):
        return _Life(received)
    closing = 0.97 if age > 365 else 0.85 if age > 180 else 0.5 if age > 60 else 0.15 if age > 14 else 0.0
    acknowledged = _day(rng, received, min(today, received + dt.timedelta(days=9)))
    if profile == "closed" or rng.random() < closing:
        return _closed_life(rng, received, acknowledged, today)
    return _open_life(rng, received, acknowledged, today, months)


def _open_life(
    rng: random.Random,
    received: dt.date,
    acknowledged: dt.date,
    today: dt.date,
    months: int,
    *,
    feedback: bool = True,
) -> _Life:
    life = _Life(received, acknowledged=acknowledged, steps=[(ReportStatus.ACKNOWLEDGED, acknowledged)])
    day = acknowledged
    for status in (ReportStatus.ASSESSING, ReportStatus.INVESTIGATING, ReportStatus.AWAITING_REPORTER):
        if rng.random() < 0.5 or day >= today:
            break
        day = _day(rng, day + dt.timedelta(days=1), min(today, day + dt.timedelta(days=30)))
        life.steps.append((status, day))
    life.status = life.steps[-1][0]
    feedback_by = acknowledged + relativedelta(months=months)
    if feedback and rng.random() < (0.85 if feedback_by < today else 0.3):
        life.feedback_given = _day(
            rng, min(today, acknowledged + dt.timedelta(days=14)), min(today, feedback_by)
        )
    return life


def _closed_life(rng: random.Random, received: dt.date, acknowledged: dt.date, today: dt.date) -> _Life:
    """A case closed at least a day after it was acknowledged (so at least 15 days old)."""
    start = acknowledged + dt.timedelta(days=1)
    closed = _day(rng, start, min(today, start + dt.timedelta(days=rng.randint(20, 300))))
    life = _Life(received, ReportStatus.CLOSED, acknowledged, feedback_given=closed, closed=closed)
    life.steps = [
        (ReportStatus.ACKNOWLEDGED, acknowledged),
        (ReportStatus.INVESTIGATING, _day(rng, acknowledged, closed)),
        (ReportStatus.CLOSED, closed),
    ]
    return life


def _answers(rng: random.Random, plan: SeedPlan, profile: str) -> Answers:
    category = rng.choice(list(CATEGORIES))
    risk = "yes" if profile == "urgent" else rng.choices(["yes", "no", "not_sure"], [4, 80, 16])[0]
    excluded: tuple[str, ...] = ()
    if len(plan.officers) > 1 and (profile == "excluded" or (not profile and rng.random() < 0.05)):
        excluded = (rng.choice(plan.officers[1:]).public_id,)
    raised = rng.choice(["yes", "no"])
    return Answers(
        category=category,
        what_happened=DEMO_MARK + " ".join([rng.choice(_WHAT[category]), rng.choice(_FOLLOW_UP)]),
        when_where=rng.choice(_WHEN),
        immediate_risk=risk,
        raised_before=raised,
        raised_before_result="Raised with my manager; nothing changed." if raised == "yes" else "",
        excluded_officers=excluded,
    )


def _make_case(plan: SeedPlan, rng: random.Random, profile: str) -> SeededCase:
    public_id = crypto.new_public_id()
    dek, internal = crypto.new_key(), crypto.new_key()
    answers = _answers(rng, plan, profile)
    readers = [officer for officer in plan.officers if officer.public_id not in answers.excluded_officers]
    life = _life(plan, rng, profile)
    clocks = deadlines(life.received, life.acknowledged, plan.policy)
    if profile == "urgent" or answers.immediate_risk == "yes":
        priority = Priority.URGENT
    else:
        priority = rng.choices(
            [Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW], [3, 15, 72, 10]
        )[0]
    lead = readers[0] if profile == "urgent" else rng.choice(readers)
    assigned = life.acknowledged is not None and (profile == "urgent" or rng.random() < 0.8)
    risk: DetrimentRisk | None = None
    if profile == "urgent":
        # Acknowledged (see _life) and triaged with a high risk to its reporter, so that every
        # seeded instance, however small, shows protective actions.
        triaged, risk = True, DetrimentRisk.HIGH
    else:
        triaged = life.acknowledged is not None and rng.random() < 0.7
        if triaged:
            risk = rng.choice([DetrimentRisk.LOW, DetrimentRisk.MEDIUM, DetrimentRisk.HIGH])
    case = SeededCase(
        report={
            "public_id": public_id,
            "receipt_lookup": secrets.token_bytes(32),  # no receipt leads here
            # Sealed under a random key that is never kept: no receipt opens a seeded report.
            "dek_receipt_sealed": crypto.seal(
                crypto.new_key(), dek, crypto.context("report", public_id, "dek", "receipt")
            ),
            "receipt_salt": crypto.new_salt(),
            "receipt_kdf": plan.kdf,
            "received_on": life.received,
            "status": life.status,
            "status_changed_on": life.steps[-1][1] if life.steps else life.received,
            "first_read_on": life.acknowledged or (life.received if rng.random() < 0.3 else None),
            "acknowledged_on": life.acknowledged,
            "unread_reporter_messages": life.closed is None
            and life.acknowledged is not None
            and rng.random() < 0.1,
            "answers_sealed": crypto.seal_padded(
                dek, json.dumps(asdict(answers)).encode(), answers_context(public_id)
            ),
            "priority": priority,
            "acknowledge_by": clocks.acknowledge_by,
            "feedback_by": clocks.feedback_by,
            "feedback_months": plan.policy.feedback_months,
            "assignee_id": lead.id if assigned else None,
            "officer_category": rng.choice(_OFFICER_CATEGORIES) if triaged else None,
            "detriment_risk": risk or DetrimentRisk.NOT_ASSESSED,
            "protective_actions_sealed": (
                crypto.seal_padded(
                    internal,
                    _PROTECTIVE_ACTIONS.encode(),
                    crypto.context("report", public_id, "internal", "protective-actions"),
                )
                if risk is DetrimentRisk.HIGH
                else None
            ),
            "outcome": rng.choice(list(Outcome)) if life.closed else None,
            "closed_on": life.closed,
            "closing_summary_sealed": (
                crypto.seal_padded(dek, rng.choice(_SUMMARIES).encode(), summary_context(public_id))
                if life.closed
                else None
            ),
            "summary_shared": life.closed is not None and rng.random() < 0.7,
            "feedback_given_on": life.feedback_given,
        }
    )
    for purpose, key in ((KeyPurpose.DATA, dek), (KeyPurpose.INTERNAL, internal)):
        info = crypto.wrap_info(public_id, purpose.value)
        case.wraps.append(
            {
                "recipient": Recipient.ORGANISATION,
                "officer_id": None,
                "purpose": purpose,
                "key_wrapped": crypto.wrap_key(plan.organisation_public_key, key, info),
            }
        )
        case.wraps.extend(
            {
                "recipient": Recipient.OFFICER,
                "officer_id": officer.id,
                "purpose": purpose,
                "key_wrapped": crypto.wrap_key(officer.public_key, key, info),
            }
            for officer in readers
        )
    case.history.append(
        {"status": ReportStatus.NEW, "changed_on": life.received, "officer_id": None, "seq": 0}
    )
    case.history.extend(
        {"status": status, "changed_on": day, "officer_id": lead.id, "seq": seq}
        for seq, (status, day) in enumerate(life.steps, start=1)
    )
    if life.acknowledged is not None:
        _add_dialogue(case, rng, dek, internal, lead, life)
    return case


def _message(
    case: SeededCase, dek: bytes, author: Author, officer: OfficerKey | None, day: dt.date, body: str
) -> None:
    public_id = case.report["public_id"]
    message_id = crypto.new_public_id()
    case.messages.append(
        {
            "public_id": message_id,
            "author": author,
            "officer_id": officer.id if officer else None,
            "sent_on": day,
            "body_sealed": crypto.seal_padded(dek, body.encode(), message_context(public_id, message_id)),
            "position_sealed": seal_position(dek, public_id, message_id, len(case.messages)),
        }
    )


def _add_dialogue(
    case: SeededCase, rng: random.Random, dek: bytes, internal: bytes, lead: OfficerKey, life: _Life
) -> None:
    assert life.acknowledged is not None
    last = life.closed or life.feedback_given or life.steps[-1][1]
    _message(case, dek, Author.OFFICER, lead, life.acknowledged, _OFFICER_MESSAGES[0])
    if rng.random() < 0.6:
        _message(case, dek, Author.OFFICER, lead, _day(rng, life.acknowledged, last), _OFFICER_MESSAGES[1])
        if rng.random() < 0.7:
            _message(
                case,
                dek,
                Author.REPORTER,
                None,
                _day(rng, life.acknowledged, last),
                rng.choice(_REPORTER_MESSAGES),
            )
    if life.feedback_given is not None and life.closed is None:
        _message(case, dek, Author.OFFICER, lead, life.feedback_given, _OFFICER_MESSAGES[2])
    if rng.random() < 0.5:
        note_id = crypto.new_public_id()
        written = _day(rng, life.acknowledged, last)
        case.notes.append(
            {
                "public_id": note_id,
                "officer_id": lead.id,
                "written_at": dt.datetime.combine(written, dt.time(10, rng.randint(0, 59)), dt.UTC),
                "body_sealed": crypto.seal_padded(
                    internal,
                    rng.choice(_NOTES).encode(),
                    crypto.context("report", case.report["public_id"], "note", note_id),
                ),
            }
        )


# --- storing ------------------------------------------------------------------------


def store_cases(db: Session, cases: Sequence[SeededCase]) -> None:
    """Insert a batch of made cases and count them as seeded; refuses if a real report crept in."""
    before = check_seedable(db)
    ids = db.scalars(
        insert(Report).returning(Report.id, sort_by_parameter_order=True),
        [case.report for case in cases],
    ).all()
    children: tuple[tuple[type[Base], str], ...] = (
        (KeyWrap, "wraps"),
        (StatusChange, "history"),
        (Message, "messages"),
        (Note, "notes"),
    )
    for model, name in children:
        rows = [
            {**row, "report_id": report_id}
            for case, report_id in zip(cases, ids, strict=True)
            for row in getattr(case, name)
        ]
        if rows:
            db.execute(insert(model), rows)
    setting = db.get(Setting, SEEDED_SETTING) or Setting(name=SEEDED_SETTING)
    setting.value = json.dumps(before + len(cases))
    db.add(setting)
    db.flush()


def _batches(count: int, size: int) -> list[int]:
    return [min(size, count - start) for start in range(0, count, size)]


def _made(plan: SeedPlan, sizes: list[int], workers: int) -> Iterator[list[SeededCase]]:
    """Batches of made cases, in order; with several workers, a few batches ahead at most."""
    if workers <= 1:
        for size in sizes:
            yield make_cases(plan, size, secrets.randbits(64))
        return
    # "spawn": the parent holds database connections and threads that a fork would copy.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        queued = iter(sizes)
        pending = collections.deque(
            pool.submit(make_cases, plan, size, secrets.randbits(64))
            for size in itertools.islice(queued, 2 * workers)
        )
        while pending:
            batch = pending.popleft().result()
            following = next(queued, 0)
            if following:
                pending.append(pool.submit(make_cases, plan, following, secrets.randbits(64)))
            yield batch


def seed(
    session_factory: sessionmaker[Session],
    keyring: Keyring,
    policy: Policy,
    now: dt.datetime,
    today: dt.date,
    count: int,
    *,
    workers: int = 1,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> int:
    """Add ``count`` demonstration cases, a batch per transaction; return how many are seeded in all."""
    with session_factory() as db, db.begin():
        plan = make_plan(db, keyring, policy, today)
    sizes = _batches(count, batch_size)
    done = 0
    for batch in _made(plan, sizes, min(workers, len(sizes))):
        with session_factory() as db, db.begin():
            store_cases(db, batch)
        done += len(batch)
        if progress is not None:
            progress(done, count)
    with session_factory() as db, db.begin():
        audit.record(db, "demo_cases_seeded", audit.COMMAND_LINE, now, detail=str(done))
    with session_factory() as db:
        # Statistics that know the new rows, for the plans: what `whistle db analyze` does daily.
        connection = db.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        if connection.dialect.name == "postgresql":
            # What autovacuum would do soon after a bulk load: the statistics, and a visibility map
            # that lets index-only scans skip the table. VACUUM cannot run inside a transaction,
            # so this connection commits each statement itself.
            connection.execute(text("VACUUM (ANALYZE) report, key_wrap, status_change, message, note"))
        else:
            analyze(connection)
        return seeded_count(db)
