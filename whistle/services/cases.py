"""Case handling: what officers do with a report, from triage to closing.

Every operation here starts from the acting officer's key wrap: an officer who
holds no key for a report (never given one, or excluded by the reporter) gets
:class:`ReportNotFound`, the same answer as for a report that does not exist.
Every decryption and change is written to the audit log.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Select,
    and_,
    bindparam,
    delete,
    func,
    literal,
    literal_column,
    not_,
    select,
    true,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.elements import BindParameter, UnaryExpression
from sqlalchemy.sql.selectable import ScalarSelect

from whistle import audit, crypto
from whistle.models import (
    AuditEvent,
    Author,
    DetrimentRisk,
    KeyPurpose,
    KeyWrap,
    Label,
    Note,
    Officer,
    Outcome,
    Priority,
    Recipient,
    Report,
    ReportStatus,
    StatusChange,
    report_label,
)
from whistle.services import attachments
from whistle.services.attachments import AttachmentInfo
from whistle.services.context import Moment, Policy
from whistle.services.errors import (
    LastReader,
    NeedsOutcome,
    OfficerExcluded,
    ReportNotFound,
    UnknownLabel,
    UnknownOfficer,
)
from whistle.services.reports import (
    Answers,
    Deadlines,
    ThreadMessage,
    add_message,
    answers_context,
    read_answers,
    refresh_clocks,
    summary_context,
    thread,
)
from whistle.storage import SealedStore

OUTCOME_LABELS = {
    Outcome.SUBSTANTIATED: "Substantiated",
    Outcome.PARTLY_SUBSTANTIATED: "Partly substantiated",
    Outcome.NOT_SUBSTANTIATED: "Not substantiated",
    Outcome.REFERRED: "Referred elsewhere",
    Outcome.WITHDRAWN: "Withdrawn",
    Outcome.JUNK: "Junk (not a genuine concern)",
}
PRIORITY_LABELS = {
    Priority.URGENT: "Urgent",
    Priority.HIGH: "High",
    Priority.NORMAL: "Normal",
    Priority.LOW: "Low",
}
RISK_LABELS = {
    DetrimentRisk.NOT_ASSESSED: "Not assessed yet",
    DetrimentRisk.LOW: "Low",
    DetrimentRisk.MEDIUM: "Medium",
    DetrimentRisk.HIGH: "High",
}
DUE_SOON = dt.timedelta(days=7)


class View(enum.StrEnum):
    """The day-to-day views of the case list."""

    ALL = "all"
    NEW = "new"
    MINE = "mine"
    URGENT = "urgent"
    DUE_SOON = "due_soon"
    OVERDUE = "overdue"


VIEW_LABELS = {
    View.ALL: "All open and closed",
    View.NEW: "New",
    View.MINE: "Assigned to me",
    View.URGENT: "Urgent",
    View.DUE_SOON: "Due within 7 days",
    View.OVERDUE: "Overdue",
}


class Sort(enum.StrEnum):
    RECEIVED = "received"
    PRIORITY = "priority"
    ACKNOWLEDGE_BY = "acknowledge_by"
    FEEDBACK_BY = "feedback_by"
    NEXT_DEADLINE = "next_deadline"
    STATUS = "status"


#: How a view opens: most by the day received, newest first; the deadline views by the
#: deadline, the one most at risk first.
_DEFAULT_SORTS = {View.DUE_SOON: Sort.NEXT_DEADLINE, View.OVERDUE: Sort.NEXT_DEADLINE}


def default_sort(view: View) -> Sort:
    return _DEFAULT_SORTS.get(view, Sort.RECEIVED)


@dataclass(frozen=True)
class Actor:
    """The officer acting, with the private key their login unsealed."""

    officer: Officer
    private_key: bytes = field(repr=False)

    @property
    def name(self) -> str:
        return self.officer.public_id


@dataclass(frozen=True)
class CaseRow:
    public_id: str
    received_on: dt.date
    status: ReportStatus
    priority: Priority
    assignee: str | None
    unread_reporter_messages: bool
    read: bool
    acknowledge_by: dt.date | None
    feedback_by: dt.date | None
    next_deadline: dt.date | None
    overdue: bool
    due_soon: bool
    labels: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NoteView:
    author: str | None
    written_at: dt.datetime
    body: str


@dataclass(frozen=True)
class HistoryEntry:
    status: ReportStatus
    changed_on: dt.date
    officer: str | None


@dataclass(frozen=True)
class OfficerCase:
    public_id: str
    received_on: dt.date
    status: ReportStatus
    status_changed_on: dt.date
    priority: Priority
    assignee_id: str | None
    deadlines: Deadlines
    answers: Answers
    excluded_names: list[str]
    messages: list[ThreadMessage]
    attachments: list[AttachmentInfo]
    notes: list[NoteView]
    history: list[HistoryEntry]
    officer_category: str | None
    detriment_risk: DetrimentRisk
    protective_actions: str
    outcome: Outcome | None
    closing_summary: str
    summary_shared: bool
    feedback_given_on: dt.date | None
    readers: list[Officer]
    can_be_granted: list[Officer]
    labels: list[str] = field(default_factory=list)
    all_labels: list[str] = field(default_factory=list)
    legal_hold: bool = False


def _written(value: Any, column: InstrumentedAttribute[Any]) -> BindParameter[Any]:
    """A value for ``column`` written into the statement's text, not passed beside it.

    psycopg prepares a statement once it has run five times on a connection. PostgreSQL then
    either plans it once for any values (any status as common as another, any date range as
    wide as another) or, judging that plan worse, plans it again at every run: with 100,000
    cases, the view counts and the page read cost three milliseconds a page more that way. With
    the officer, the day and the view's constants written in, a statement is prepared for each
    officer and day on a connection (psycopg keeps the hundred last used), and its one plan is
    the plan for those values. Only for values the portal itself holds (ids, days, our enums):
    what comes from a request, such as a cursor, stays a parameter.
    """
    return bindparam(None, value, type_=column.type, literal_execute=True)


# --- clocks --------------------------------------------------------------------


def _open_case() -> ColumnElement[bool]:
    # Written in: the partial indexes of open cases are only used when the query's condition is
    # theirs word for word, which a parameter is not.
    return Report.status != _written(ReportStatus.CLOSED, Report.status)


def _ack_running() -> ColumnElement[bool]:
    """Still to acknowledge: the condition of the index ix_report_acknowledge_running, word for word."""
    return and_(_open_case(), Report.acknowledged_on.is_(None))


def _feedback_running() -> ColumnElement[bool]:
    """Feedback still to give: the condition of the index ix_report_feedback_running, word for word."""
    return and_(_open_case(), Report.feedback_given_on.is_(None))


def _deadline_running() -> ColumnElement[bool]:
    """A deadline still to meet: the condition of the index ix_report_next_deadline, word for word."""
    return Report.next_deadline.is_not(None)


# A case is overdue when the nearest deadline it has still to meet (Report.next_deadline, which
# the database computes from the clocks) is past, and due soon when it falls within the week:
# each view is one range of that deadline's index. A range implies a deadline, which is what the
# index's condition asks; saying so again would only make the planners count it twice (and judge
# the view a tenth of its size).


def _overdue(today: dt.date) -> ColumnElement[bool]:
    return Report.next_deadline < _written(today, Report.next_deadline)


def _due_soon(today: dt.date) -> ColumnElement[bool]:
    return and_(
        Report.next_deadline >= _written(today, Report.next_deadline),
        Report.next_deadline <= _written(today + DUE_SOON, Report.next_deadline),
    )


#: The views whose every case has a deadline still to meet.
_DEADLINE_VIEWS = frozenset({View.DUE_SOON, View.OVERDUE})


def _urgency(next_deadline: dt.date | None, today: dt.date) -> tuple[bool, bool]:
    """Whether a case is overdue, and whether it is due soon: the views' rules, for one case."""
    if next_deadline is None:
        return False, False
    return next_deadline < today, today <= next_deadline <= today + DUE_SOON


# --- lists -----------------------------------------------------------------------
#
# The list never decrypts anything and never counts or skips through every case:
# it reads one page from where the last one ended (keyset pagination), driven by
# an index on the clear workflow fields, and view counts stop at COUNT_CAP. So a
# page costs about as much with ten thousand cases as with a hundred thousand
# (bench/RESULTS.md has the figures).

#: View counts stop here ("100+"): beyond it, an exact figure would mean reading every case in
#: the view, and a hundred cases cost as much to count as the page costs to read. The exact
#: figures are on the statistics page.
COUNT_CAP = 100


@dataclass(frozen=True)
class Tally:
    """How many cases a view holds, exactly up to :data:`COUNT_CAP`."""

    count: int
    more: bool = False

    def __str__(self) -> str:
        return f"{COUNT_CAP:,}+" if self.more else f"{self.count:,}"

    def __bool__(self) -> bool:
        return self.count > 0


def _readable(officer: Officer) -> ColumnElement[bool]:
    return (
        select(KeyWrap.id)
        .where(
            KeyWrap.report_id == Report.id,
            KeyWrap.officer_id == _written(officer.id, KeyWrap.officer_id),
            KeyWrap.purpose == _written(KeyPurpose.DATA, KeyWrap.purpose),
        )
        .exists()
    )


def readable_by(officer: Officer) -> Select[Report]:
    """Reports this officer holds a key for: the only ones they can ever see."""
    return select(Report).where(_readable(officer))


def _in_view(query: Select[Report], view: View, officer: Officer, today: dt.date) -> Select[Report]:
    if view is View.NEW:
        return query.where(Report.status == _written(ReportStatus.NEW, Report.status))
    if view is View.MINE:
        return query.where(Report.assignee_id == _written(officer.id, Report.assignee_id), _open_case())
    if view is View.URGENT:
        return query.where(Report.priority == _written(Priority.URGENT, Report.priority), _open_case())
    if view is View.DUE_SOON:
        return query.where(_due_soon(today))
    if view is View.OVERDUE:
        return query.where(_overdue(today))
    return query


@dataclass(frozen=True)
class _Group:
    """Some of the cases, ordered by ``key`` then id in one direction.

    A sort order is groups in turn, each a separate indexed range, so that
    sorting by priority or status costs a few short index reads, not a sort
    of every case.
    """

    where: ColumnElement[bool]
    key: InstrumentedAttribute[Any]
    descending: bool = False

    def ordering(self, forward: bool = True) -> tuple[UnaryExpression[Any], UnaryExpression[Any]]:
        """ORDER BY key, id: in the group's own direction, or against it to read backwards."""
        if self.descending == forward:
            return self.key.desc(), Report.id.desc()
        return self.key.asc(), Report.id.asc()


def _newest_first(where: ColumnElement[bool]) -> _Group:
    return _Group(where, Report.received_on, descending=True)


def _soonest_first(running: ColumnElement[bool], key: InstrumentedAttribute[Any]) -> tuple[_Group, _Group]:
    # Deadlines still running come first, soonest first; met ones (done, given, closed) after them.
    return _Group(running, key), _Group(not_(running), key)


_ORDERS: dict[Sort, tuple[_Group, ...]] = {
    Sort.RECEIVED: (_newest_first(true()),),
    Sort.PRIORITY: tuple(_newest_first(Report.priority == p) for p in Priority),
    Sort.ACKNOWLEDGE_BY: _soonest_first(_ack_running(), Report.acknowledge_by),
    Sort.FEEDBACK_BY: _soonest_first(_feedback_running(), Report.feedback_by),
    # The cases with nothing left to meet have no next deadline: newest first, after the others.
    Sort.NEXT_DEADLINE: (
        _Group(_deadline_running(), Report.next_deadline),
        _newest_first(not_(_deadline_running())),
    ),
}

_CURSOR = re.compile(r"(\d{1,2})\.(\d{4}-\d{2}-\d{2})\.(\d{1,19})")


@dataclass(frozen=True)
class Cursor:
    """A place in a sorted list: a case's group, sort key and id. Not secret, and checked on use."""

    group: int
    key: dt.date
    id: int

    def __str__(self) -> str:
        return f"{self.group}.{self.key.isoformat()}.{self.id}"

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """The cursor a link carries, or None for anything else (which gives the first page)."""
        match = _CURSOR.fullmatch(text or "")
        if match is None:
            return None
        try:
            cursor = cls(int(match[1]), dt.date.fromisoformat(match[2]), int(match[3]))
        except ValueError:
            return None
        return cursor if cursor.id < 2**63 else None


class Direction(enum.StrEnum):
    """Which way a page is read from its cursor."""

    AFTER = "after"  # the next page: the cases after the cursor
    BEFORE = "before"  # the previous page: the cases before it
    LAST = "last"  # the last page (no cursor)


@dataclass(frozen=True)
class CasePage:
    rows: list[CaseRow]
    view: View
    sort: Sort
    label: str | None = None
    #: Cursors for the previous and next pages, or None where there is none.
    previous: Cursor | None = None
    next: Cursor | None = None

    @property
    def chosen_sort(self) -> Sort | None:
        """The sort, if the officer chose it over the view's own: the other views keep it."""
        return None if self.sort is default_sort(self.view) else self.sort


@dataclass(frozen=True)
class CaseList:
    """What the case list page shows: one page of a view, every view's count, and the labels."""

    page: CasePage
    #: How many cases the page's view (and label) holds.
    total: Tally
    counts: dict[View, Tally]
    labels: list[str]


def _statuses(view: View) -> list[ReportStatus]:
    """The statuses a view's cases can have, in the order of the workflow."""
    if view is View.NEW:
        return [ReportStatus.NEW]
    if view is View.ALL:
        return list(ReportStatus)
    return [status for status in ReportStatus if status is not ReportStatus.CLOSED]


def _order(sort: Sort, view: View) -> tuple[_Group, ...]:
    """How a view reads in a sort: the groups that can hold its cases, without conditions the view implies.

    A planner cannot tell that a view of open cases holds no closed one: asked
    whether it does, it may read every case to find out. And a condition said
    twice is counted twice, which makes a planner misjudge how many cases match.
    """
    if sort is Sort.STATUS:
        statuses = _statuses(view)
        if len(statuses) == 1:
            return (_newest_first(true()),)
        return tuple(_newest_first(Report.status == status) for status in statuses)
    if sort is Sort.NEXT_DEADLINE and view in _DEADLINE_VIEWS:
        # The first group alone, without its condition: the view's range already implies it.
        return (_Group(true(), Report.next_deadline),)
    return _ORDERS[sort]


def _opening(view: View) -> _Group:
    """The group a view's first cases come from as it opens: its order is the view's own index's."""
    return _order(default_sort(view), view)[0]


def opening_key(view: View) -> InstrumentedAttribute[Any]:
    """The key a view's first cases are ordered by as it opens."""
    return _opening(view).key


def opening_order(view: View) -> tuple[UnaryExpression[Any], UnaryExpression[Any]]:
    """The ORDER BY of a view as it opens (its key, then id)."""
    return _opening(view).ordering()


def _after(group: _Group, cursor: Cursor, forward: bool) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Within the cursor's group, the cases after it in the direction of reading, in two parts:
    those that share its key (after it by id), then those beyond its key.

    Not one row comparison, ``(key, id) > (k, i)``: a planner judges that as if it had nothing
    to do with a view's own range on the same key (due within 7 days, overdue), finds the two
    together would leave a handful of cases, and reads the whole rest of the view to sort it.
    A plain bound on the key joins the view's range, and the page is read from the index in order.
    """
    key, last = literal(cursor.key, Date), literal(cursor.id)  # an id any size: the cursor is typed in
    if group.descending == forward:
        return and_(group.key == key, Report.id < last), group.key < key
    return and_(group.key == key, Report.id > last), group.key > key


#: What a list row shows: clear workflow fields and the lead's name, none of the sealed columns.
#: Read as plain rows, not reports: a page of them costs a fraction of loading fifty objects.
_ROW_COLUMNS = (
    Report.id,
    Report.public_id,
    Report.received_on,
    Report.status,
    Report.priority,
    Report.unread_reporter_messages,
    Report.first_read_on,
    Report.acknowledged_on,
    Report.acknowledge_by,
    Report.feedback_given_on,
    Report.feedback_by,
    Report.next_deadline,
    Officer.display_name.label("assignee"),
)


#: A row of :data:`_ROW_COLUMNS`: the cursor reads its sort key by name, :func:`_row` unpacks it in order.
_ListRow = Row[*tuple[Any, ...]]


def _ranges(
    order: tuple[_Group, ...], cursor: Cursor | None, forward: bool
) -> Iterator[tuple[int, _Group, ColumnElement[bool]]]:
    """The ranges to read in turn, from the cursor onwards (or from an end), in the direction of
    reading: each group (by its index in the order), with the part of it that is left to read."""
    groups = list(enumerate(order))
    for index, group in groups if forward else reversed(groups):
        if cursor is None:
            yield index, group, true()
        elif index == cursor.group:
            for part in _after(group, cursor, forward):
                yield index, group, part
        elif (index > cursor.group) == forward:  # a group the cursor has not reached yet
            yield index, group, true()


def _read(
    db: Session,
    query: Select[Report],
    order: tuple[_Group, ...],
    cursor: Cursor | None,
    forward: bool,
    limit: int,
) -> list[tuple[Cursor, _ListRow]]:
    """Up to ``limit`` cases from the cursor onwards (or from an end), in the direction of reading."""
    found: list[tuple[Cursor, _ListRow]] = []
    for index, group, part in _ranges(order, cursor, forward):
        page = query.where(group.where, part)
        # A group may hold none of the view's cases (overdue ones whose feedback was given, say).
        # Asked for in order, the database may walk the sort's whole index to find that out;
        # asked whether there is any, it uses the view's own index.
        if len(order) > 1 and not db.scalar(select(page.exists())):
            continue
        rows = (
            page.with_only_columns(*_ROW_COLUMNS)
            .outerjoin(Officer, Report.assignee_id == Officer.id)
            .order_by(*group.ordering(forward))
            .limit(limit - len(found))
        )
        for row in db.execute(rows):
            found.append((Cursor(index, getattr(row, group.key.key), row.id), row))
        if len(found) >= limit:
            break
    return found


#: The labels of some reports, by name: one statement, made once. The ids are a single expanding
#: parameter, where ``in_(ids)`` would build and compare a bound value for each report, every page.
_LABELS_OF = (
    select(report_label.c.report_id, Label.name)
    .join(Label, Label.id == report_label.c.label_id)
    .where(report_label.c.report_id.in_(bindparam("report_ids", expanding=True)))
    .order_by(Label.name)
)


def _labels_of(db: Session, report_ids: list[int]) -> dict[int, list[str]]:
    """The labels of each of these reports, by name, in one query."""
    labelled: dict[int, list[str]] = {}
    for report_id, name in db.execute(_LABELS_OF, {"report_ids": report_ids}):
        labelled.setdefault(report_id, []).append(name)
    return labelled


def _row(row: _ListRow, labels: list[str], today: dt.date) -> CaseRow:
    # Unpacked by position (the order of _ROW_COLUMNS): far cheaper than reading a row by name.
    (
        _,
        public_id,
        received_on,
        status,
        priority,
        unread,
        first_read_on,
        acknowledged_on,
        acknowledge_by,
        feedback_given_on,
        feedback_by,
        next_deadline,
        assignee,
    ) = row
    overdue, due_soon = _urgency(next_deadline, today)
    return CaseRow(
        public_id=public_id,
        received_on=received_on,
        status=status,
        priority=priority,
        assignee=assignee,
        unread_reporter_messages=unread,
        read=first_read_on is not None,
        acknowledge_by=acknowledge_by if acknowledged_on is None else None,
        feedback_by=feedback_by if feedback_given_on is None else None,
        next_deadline=next_deadline,
        overdue=overdue,
        due_soon=due_soon,
        labels=labels,
    )


def view_query(officer: Officer, today: dt.date, view: View, label: str | None) -> Select[Report]:
    """The cases of a view (with a label, or not) that this officer can read, in no order."""
    query = _in_view(readable_by(officer), view, officer, today)
    if label:
        query = query.where(Report.labels.any(Label.name == label))
    return query


def list_cases(
    db: Session,
    officer: Officer,
    today: dt.date,
    *,
    view: View = View.ALL,
    sort: Sort | None = None,
    size: int = 50,
    label: str | None = None,
    cursor: Cursor | None = None,
    direction: Direction = Direction.AFTER,
) -> CasePage:
    """One page of a view, filtered and sorted on clear workflow fields only.

    Without a cursor, the first page (or the last, for :attr:`Direction.LAST`);
    with one, the page after or before it. A cursor that leads nowhere (the
    cases around it have changed) gives the first page. Without a sort, the
    view's own (:func:`default_sort`).
    """
    sort = sort or default_sort(view)
    order = _order(sort, view)
    if direction is Direction.LAST or (cursor is not None and cursor.group >= len(order)):
        cursor = None  # the last page reads from the end; a place in no group reads from the start
    forward = direction is not Direction.LAST and (direction is Direction.AFTER or cursor is None)
    found = _read(db, view_query(officer, today, view, label), order, cursor, forward, limit=size + 1)
    if cursor is not None and not found:
        return list_cases(db, officer, today, view=view, sort=sort, size=size, label=label)
    # Beyond the page, in the direction it was read: more cases if one more came back; behind
    # it, the page its cursor came from.
    beyond, behind = len(found) > size, cursor is not None
    found = found[:size] if forward else found[:size][::-1]
    earlier, later = (behind, beyond) if forward else (beyond, behind)
    labels = _labels_of(db, [row.id for _, row in found]) if found else {}
    return CasePage(
        [_row(row, labels.get(row.id, []), today) for _, row in found],
        view,
        sort,
        label,
        previous=found[0][0] if found and earlier else None,
        next=found[-1][0] if found and later else None,
    )


def _capped_count(officer: Officer, today: dt.date, view: View, label: str | None) -> ScalarSelect[int]:
    if view is View.ALL and not label:
        # Every case the officer holds a key for: the keys alone say it, without reading a report.
        ids = select(KeyWrap.report_id).where(
            KeyWrap.officer_id == _written(officer.id, KeyWrap.officer_id),
            KeyWrap.purpose == _written(KeyPurpose.DATA, KeyWrap.purpose),
        )
    else:
        # In the view's own order, as its page reads it: a planner left to choose may pick an index
        # that holds the view's cases among many others (all of an officer's cases, closed ones
        # included) and read through those to find the first hundred.
        viewed = view_query(officer, today, view, label)
        ids = viewed.with_only_columns(Report.id).order_by(*opening_order(view))
    capped = ids.limit(literal_column(str(COUNT_CAP + 1)))
    return select(func.count()).select_from(capped.subquery()).scalar_subquery()


def _tally(counted: int | None) -> Tally:
    return Tally(min(counted or 0, COUNT_CAP), more=(counted or 0) > COUNT_CAP)


def count_cases(db: Session, officer: Officer, today: dt.date, view: View, label: str | None = None) -> Tally:
    """How many cases a view (with a label, or not) holds for this officer, up to :data:`COUNT_CAP`."""
    return _tally(db.scalar(select(_capped_count(officer, today, view, label))))


def view_counts(db: Session, officer: Officer, today: dt.date) -> dict[View, Tally]:
    """How many cases each view holds, for this officer only (up to :data:`COUNT_CAP`), in one query."""
    counted = db.execute(select(*(_capped_count(officer, today, view, None) for view in View))).one()
    return {view: _tally(n) for view, n in zip(View, counted, strict=True)}


def case_list(
    db: Session,
    officer: Officer,
    today: dt.date,
    *,
    view: View,
    sort: Sort | None,
    size: int,
    label: str | None,
    cursor: Cursor | None,
    direction: Direction,
) -> CaseList:
    """The case list page: :func:`list_cases`, the view counts, and the labels to filter by."""
    page = list_cases(
        db, officer, today, view=view, sort=sort, size=size, label=label, cursor=cursor, direction=direction
    )
    counts = view_counts(db, officer, today)
    total = count_cases(db, officer, today, view, label) if label else counts[view]
    return CaseList(page, total, counts, label_names(db, officer))


# --- one case --------------------------------------------------------------------


def _wrap(db: Session, officer: Officer, public_id: str, purpose: KeyPurpose) -> tuple[Report, KeyWrap]:
    row = db.execute(
        select(Report, KeyWrap)
        .join(KeyWrap, KeyWrap.report_id == Report.id)
        .where(Report.public_id == public_id, KeyWrap.officer_id == officer.id, KeyWrap.purpose == purpose)
    ).one_or_none()
    if row is None:
        raise ReportNotFound(public_id)
    return row[0], row[1]


def _report(db: Session, actor: Actor, public_id: str) -> Report:
    return _wrap(db, actor.officer, public_id, KeyPurpose.DATA)[0]


def _key(db: Session, actor: Actor, public_id: str, purpose: KeyPurpose) -> tuple[Report, bytes]:
    report, wrap = _wrap(db, actor.officer, public_id, purpose)
    info = crypto.wrap_info(report.public_id, purpose.value)
    return report, crypto.unwrap_key(actor.private_key, wrap.key_wrapped, info)


def _note_context(public_id: str, note_id: str) -> bytes:
    return crypto.context("report", public_id, "note", note_id)


def _internal_context(public_id: str, name: str) -> bytes:
    return crypto.context("report", public_id, "internal", name)


def _readers(db: Session, report: Report) -> list[Officer]:
    return list(
        db.scalars(
            select(Officer)
            .join(KeyWrap, KeyWrap.officer_id == Officer.id)
            .where(KeyWrap.report_id == report.id, KeyWrap.purpose == KeyPurpose.DATA)
            .order_by(Officer.display_name)
        )
    )


def open_case(db: Session, actor: Actor, public_id: str, policy: Policy, at: Moment) -> OfficerCase:
    """Decrypt a case for an officer who holds its keys; mark it read; audit it."""
    report, dek = _key(db, actor, public_id, KeyPurpose.DATA)
    _report_again, internal = _key(db, actor, public_id, KeyPurpose.INTERNAL)
    answers = read_answers(report, dek)
    if report.first_read_on is None:
        report.first_read_on = at.today
    report.unread_reporter_messages = False
    excluded = set(answers.excluded_officers)
    officers = list(db.scalars(select(Officer).order_by(Officer.display_name)))
    readers = _readers(db, report)
    reader_ids = {officer.id for officer in readers}
    audit.record(db, "report_opened", actor.name, at.now, report=public_id)
    return OfficerCase(
        public_id=report.public_id,
        received_on=report.received_on,
        status=report.status,
        status_changed_on=report.status_changed_on,
        priority=report.priority,
        assignee_id=report.assignee.public_id if report.assignee else None,
        deadlines=Deadlines(
            report.acknowledge_by or report.received_on, report.feedback_by or report.received_on
        ),
        answers=answers,
        excluded_names=sorted(o.display_name for o in officers if o.public_id in excluded),
        messages=thread(report, dek, officer_names=True),
        attachments=attachments.describe_all(report, dek),
        notes=[
            NoteView(
                author=note.officer.display_name if note.officer else None,
                written_at=note.written_at,
                body=crypto.open_sealed(
                    internal, note.body_sealed, _note_context(public_id, note.public_id)
                ).decode(),
            )
            for note in report.notes
        ],
        history=[
            HistoryEntry(change.status, change.changed_on, _officer_name(db, change.officer_id))
            for change in report.history
        ],
        officer_category=report.officer_category,
        detriment_risk=report.detriment_risk,
        protective_actions=(
            crypto.open_sealed(
                internal, report.protective_actions_sealed, _internal_context(public_id, "protective-actions")
            ).decode()
            if report.protective_actions_sealed
            else ""
        ),
        outcome=report.outcome,
        closing_summary=(
            crypto.open_sealed(dek, report.closing_summary_sealed, summary_context(public_id)).decode()
            if report.closing_summary_sealed
            else ""
        ),
        summary_shared=report.summary_shared,
        feedback_given_on=report.feedback_given_on,
        readers=readers,
        can_be_granted=[
            o for o in officers if o.is_active and o.id not in reader_ids and o.public_id not in excluded
        ],
        labels=[lab.name for lab in report.labels],
        all_labels=label_names(db, actor.officer),
        legal_hold=report.legal_hold,
    )


def _officer_name(db: Session, officer_id: int | None) -> str | None:
    if officer_id is None:
        return None
    officer = db.get(Officer, officer_id)
    return officer.display_name if officer else None


def reply(
    db: Session, actor: Actor, public_id: str, body: str, at: Moment, *, is_feedback: bool = False
) -> None:
    """Answer the reporter; a reply marked as feedback stops the three-month clock.

    A first reply to a new report acknowledges it: the reporter has been answered, so the
    case and the reporter's timeline must not still say it waits to be looked at.
    """
    report, dek = _key(db, actor, public_id, KeyPurpose.DATA)
    add_message(report, dek, Author.OFFICER, actor.officer, body, at.today)
    if is_feedback and report.feedback_given_on is None:
        report.feedback_given_on = at.today
    audit.record(
        db, "message_sent", actor.name, at.now, report=public_id, detail="feedback" if is_feedback else ""
    )
    if report.status is ReportStatus.NEW:
        _change_status(report, ReportStatus.ACKNOWLEDGED, actor.officer, at.today)
        audit.record(
            db, "status_changed", actor.name, at.now, report=public_id, detail=ReportStatus.ACKNOWLEDGED.value
        )
    db.flush()


def _change_status(report: Report, status: ReportStatus, officer: Officer, today: dt.date) -> None:
    report.status = status
    report.status_changed_on = today
    if status is not ReportStatus.NEW and report.acknowledged_on is None:
        report.acknowledged_on = today
    refresh_clocks(report)
    report.history.append(
        StatusChange(status=status, changed_on=today, officer_id=officer.id, seq=len(report.history))
    )


def set_status(
    db: Session, actor: Actor, public_id: str, status: ReportStatus, policy: Policy, at: Moment
) -> None:
    """Move a case along; closing needs an outcome (see :func:`close_case`)."""
    report = _report(db, actor, public_id)
    if status is ReportStatus.CLOSED:
        raise NeedsOutcome()
    if report.status == status:
        return
    if report.status is ReportStatus.CLOSED:
        # Reopened: the old outcome and its summary no longer stand.
        report.outcome = None
        report.closed_on = None
        report.closing_summary_sealed = None
        report.summary_shared = False
    _change_status(report, status, actor.officer, at.today)
    audit.record(db, "status_changed", actor.name, at.now, report=public_id, detail=status.value)
    db.flush()


def close_case(
    db: Session,
    actor: Actor,
    public_id: str,
    outcome: Outcome,
    summary: str,
    policy: Policy,
    at: Moment,
    *,
    share_with_reporter: bool,
) -> None:
    """Close with an outcome and a summary; shared, the summary is the reporter's feedback."""
    report, dek = _key(db, actor, public_id, KeyPurpose.DATA)
    report.outcome = outcome
    report.closed_on = at.today
    report.closing_summary_sealed = crypto.seal_padded(dek, summary.encode(), summary_context(public_id))
    report.summary_shared = share_with_reporter
    if share_with_reporter and report.feedback_given_on is None:
        report.feedback_given_on = at.today
    if report.status is not ReportStatus.CLOSED:
        _change_status(report, ReportStatus.CLOSED, actor.officer, at.today)
    audit.record(db, "case_closed", actor.name, at.now, report=public_id, detail=outcome.value)
    db.flush()


def set_priority(db: Session, actor: Actor, public_id: str, priority: Priority, at: Moment) -> None:
    report = _report(db, actor, public_id)
    if report.priority != priority:
        report.priority = priority
        audit.record(db, "priority_changed", actor.name, at.now, report=public_id, detail=priority.value)
        db.flush()


def assign(db: Session, actor: Actor, public_id: str, assignee_id: str | None, at: Moment) -> None:
    """Make an officer who can read the case its lead (or nobody)."""
    report = _report(db, actor, public_id)
    assignee = None
    if assignee_id:
        assignee = next((o for o in _readers(db, report) if o.public_id == assignee_id), None)
        if assignee is None or not assignee.is_active:
            raise UnknownOfficer("only an active officer who can read the case can lead it")
    report.assignee = assignee
    audit.record(db, "assigned", actor.name, at.now, report=public_id, subject=assignee_id)
    db.flush()


def set_triage(
    db: Session,
    actor: Actor,
    public_id: str,
    category: str,
    risk: DetrimentRisk,
    protective_actions: str,
    at: Moment,
) -> None:
    """The officers' category and the risk-of-detriment assessment with its protective actions."""
    report, internal = _key(db, actor, public_id, KeyPurpose.INTERNAL)
    report.officer_category = category or None
    report.detriment_risk = risk
    report.protective_actions_sealed = (
        crypto.seal_padded(
            internal, protective_actions.encode(), _internal_context(public_id, "protective-actions")
        )
        if protective_actions
        else None
    )
    audit.record(db, "triage_updated", actor.name, at.now, report=public_id, detail=risk.value)
    db.flush()


def add_note(db: Session, actor: Actor, public_id: str, body: str, at: Moment) -> None:
    """An internal note, sealed under the internal key: the reporter never gets it."""
    report, internal = _key(db, actor, public_id, KeyPurpose.INTERNAL)
    note_id = crypto.new_public_id()
    report.notes.append(
        Note(
            public_id=note_id,
            officer_id=actor.officer.id,
            written_at=at.now,
            body_sealed=crypto.seal_padded(internal, body.encode(), _note_context(public_id, note_id)),
        )
    )
    audit.record(db, "note_added", actor.name, at.now, report=public_id)
    db.flush()


def read_attachment(
    db: Session, store: SealedStore, actor: Actor, public_id: str, attachment_id: str, at: Moment
) -> tuple[AttachmentInfo, attachments.Plaintext]:
    """An attachment's description and its decrypted bytes, as a stream; audited."""
    report, dek = _key(db, actor, public_id, KeyPurpose.DATA)
    attachment = attachments.find(report, attachment_id)
    audit.record(db, "attachment_downloaded", actor.name, at.now, report=public_id, subject=attachment_id)
    return attachments.describe(report, dek, attachment), attachments.read(store, report, dek, attachment)


# --- access ----------------------------------------------------------------------


def _excluded_ids(report: Report, dek: bytes) -> set[str]:
    return set(
        json.loads(crypto.open_sealed(dek, report.answers_sealed, answers_context(report.public_id))).get(
            "excluded_officers", []
        )
    )


def wrap_for(report: Report, officer: Officer, keys: dict[KeyPurpose, bytes]) -> None:
    """Give an officer the case's keys (both purposes), wrapped for their public key."""
    for purpose, key in keys.items():
        report.wraps.append(
            KeyWrap(
                recipient=Recipient.OFFICER,
                officer_id=officer.id,
                purpose=purpose,
                key_wrapped=crypto.wrap_key(
                    officer.public_key, key, crypto.wrap_info(report.public_id, purpose.value)
                ),
            )
        )


def grant(db: Session, actor: Actor, public_id: str, officer_id: str, at: Moment) -> None:
    """Give another officer access; never one the reporter excluded."""
    report, dek = _key(db, actor, public_id, KeyPurpose.DATA)
    _same, internal = _key(db, actor, public_id, KeyPurpose.INTERNAL)
    target = db.scalar(select(Officer).where(Officer.public_id == officer_id, Officer.is_active))
    if target is None:
        raise UnknownOfficer(officer_id)
    if officer_id in _excluded_ids(report, dek):
        raise OfficerExcluded()
    if target.id in {o.id for o in _readers(db, report)}:
        return
    wrap_for(report, target, {KeyPurpose.DATA: dek, KeyPurpose.INTERNAL: internal})
    audit.record(db, "access_granted", actor.name, at.now, report=public_id, subject=officer_id)
    db.flush()


def revoke(db: Session, actor: Actor, public_id: str, officer_id: str, at: Moment) -> None:
    """Remove an officer's keys for a case; the last reader cannot be removed."""
    report = _report(db, actor, public_id)
    readers = _readers(db, report)
    target = next((o for o in readers if o.public_id == officer_id), None)
    if target is None:
        raise UnknownOfficer(officer_id)
    if not any(o.is_active and o.id != target.id for o in readers):
        raise LastReader()
    db.execute(delete(KeyWrap).where(KeyWrap.report_id == report.id, KeyWrap.officer_id == target.id))
    if report.assignee_id == target.id:
        report.assignee = None
    audit.record(db, "access_revoked", actor.name, at.now, report=public_id, subject=officer_id)
    db.flush()


def case_history(db: Session, actor: Actor, public_id: str) -> list[AuditEvent]:
    """The audit entries of one case, for officers who can read it."""
    _report(db, actor, public_id)
    return list(db.scalars(select(AuditEvent).where(AuditEvent.report == public_id).order_by(AuditEvent.id)))


# --- labels ----------------------------------------------------------------------

MAX_LABEL_CHARS = 40


def label_names(db: Session, officer: Officer) -> list[str]:
    """The labels on cases this officer can open, for choosing and filtering.

    Labels are shared, but a label seen only on a case a reporter kept from this
    officer would tell them the case exists, so it is not offered to them.
    """
    readable = readable_by(officer).with_only_columns(Report.id)
    used = select(report_label.c.label_id).where(report_label.c.report_id.in_(readable))
    return list(db.scalars(select(Label.name).where(Label.id.in_(used)).order_by(Label.name)))


def set_labels(
    db: Session, actor: Actor, public_id: str, names: Sequence[str], new_label: str, at: Moment
) -> None:
    """Put exactly these labels on a case, defining ``new_label`` first if it is new."""
    report = _report(db, actor, public_id)
    wanted = {name for name in names if name}
    new_label = " ".join(new_label.split())[:MAX_LABEL_CHARS]
    if new_label:
        wanted.add(new_label)
        if db.scalar(select(Label.id).where(Label.name == new_label)) is None:
            db.add(Label(name=new_label))
            db.flush()
    labels = list(db.scalars(select(Label).where(Label.name.in_(wanted)).order_by(Label.name)))
    if {lab.name for lab in labels} != wanted:
        raise UnknownLabel()
    report.labels = labels
    audit.record(db, "labels_changed", actor.name, at.now, report=public_id, detail=", ".join(sorted(wanted)))
    db.flush()
