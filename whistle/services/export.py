"""Export of one case for an investigation: a ZIP with a readable summary, the thread,
the internal notes (optionally) and the attachments.

Everything in it is decrypted, so it is made only for an officer who can open
the case, and audited. The HTML files are built here with every value escaped
(report text is hostile input, and the files are opened in a browser); they
load nothing and carry a policy that runs nothing. Attachments keep their
bytes exactly, under names made safe for any unzip tool.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import unicodedata
import zipfile
from collections.abc import Iterable
from contextlib import closing
from typing import IO, Protocol, cast
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from whistle import audit, crypto
from whistle.models import Author, KeyPurpose, KeyWrap, Officer, Report
from whistle.services import attachments, cases
from whistle.services.attachments import AttachmentInfo
from whistle.services.cases import Actor, OfficerCase
from whistle.services.context import Moment, Policy
from whistle.services.errors import ReportNotFound
from whistle.services.reports import CATEGORIES, IMMEDIATE_RISK, RAISED_BEFORE, STATUS_FOR_OFFICER
from whistle.storage import SealedStore

MAX_NAME_CHARS = 120
#: What an empty field shows (an en dash).
NONE = "\u2013"
#: Characters no file name in the ZIP keeps: separators, Windows' reserved ones, controls.
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


# --- HTML, escaped by construction -------------------------------------------------


class _Html(str):
    """A fragment built here. Any plain ``str`` is escaped on its way in; only this is not."""

    __slots__ = ()


def _text(value: object) -> _Html:
    """Escape a value for HTML; line breaks in it become ``<br>``."""
    if isinstance(value, _Html):
        return value
    escaped = html.escape("" if value is None else str(value), quote=True)
    return _Html(escaped.replace("\r\n", "\n").replace("\n", "<br>\n"))


def _el(tag: str, *children: object, **attributes: str) -> _Html:
    attrs = "".join(
        f' {name.rstrip("_")}="{html.escape(value, quote=True)}"' for name, value in attributes.items()
    )
    return _Html(f"<{tag}{attrs}>{''.join(_text(child) for child in children)}</{tag}>")


def _join(parts: Iterable[_Html]) -> _Html:
    return _Html("\n".join(parts))


def _rows(pairs: Iterable[tuple[str, object]]) -> _Html:
    return _el("dl", *(_join([_el("dt", label), _el("dd", value)]) for label, value in pairs))


def _page(title: str, *body: _Html) -> bytes:
    document = _join(
        [
            _Html("<!doctype html>"),
            _Html('<html lang="en">'),
            _Html("<head>"),
            _Html('<meta charset="utf-8">'),
            # Opened from the disk, the file may load and run nothing.
            _Html('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'">'),
            _Html('<meta name="referrer" content="no-referrer">'),
            _el("title", title),
            _Html("</head>"),
            _Html("<body>"),
            *body,
            _Html("</body>"),
            _Html("</html>"),
        ]
    )
    return (document + "\n").encode()


def _day(value: dt.date | None) -> str:
    return value.strftime("%-d %B %Y") if value else NONE


def _utc(moment: dt.datetime) -> str:
    """A stored time (naive UTC from SQLite, aware from PostgreSQL) as UTC, to the minute."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# --- names in the ZIP --------------------------------------------------------------


def safe_name(name: str) -> str:
    """A file name that stays one plain file wherever the ZIP is unpacked."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    name = name.rstrip(". ")  # Windows drops these, which could merge two names
    if len(name) > MAX_NAME_CHARS:
        _stem, dot, suffix = name.rpartition(".")
        keep = suffix if dot and len(suffix) <= 10 else ""
        name = name[: MAX_NAME_CHARS - len(keep) - 1].rstrip() + ("." + keep if keep else "")
    return name or "file"


def _entry(name: str, day: dt.date) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(max(day.year, 1980), day.month, day.day, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o600 << 16
    return info


class _Unseekable:
    """Hands zipfile a stream it cannot seek, so it writes in one pass (data descriptors)."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        return len(data)

    def flush(self) -> None:
        pass


# --- the export --------------------------------------------------------------------


def _data_key(db: Session, actor: Actor, public_id: str) -> tuple[Report, bytes]:
    row = db.execute(
        select(Report, KeyWrap)
        .join(KeyWrap, KeyWrap.report_id == Report.id)
        .where(
            Report.public_id == public_id,
            KeyWrap.officer_id == actor.officer.id,
            KeyWrap.purpose == KeyPurpose.DATA,
        )
    ).one_or_none()
    if row is None:
        raise ReportNotFound(public_id)
    report, wrap = row
    info = crypto.wrap_info(report.public_id, KeyPurpose.DATA.value)
    return report, crypto.unwrap_key(actor.private_key, wrap.key_wrapped, info)


def export_name(public_id: str, today: dt.date) -> str:
    return f"case-{public_id}-{today.isoformat()}.zip"


def export_case(
    db: Session,
    store: SealedStore,
    actor: Actor,
    public_id: str,
    policy: Policy,
    at: Moment,
    sink: Sink,
    *,
    with_notes: bool,
) -> str:
    """Write the case's ZIP to ``sink``; return the file name to offer. Audited."""
    case = cases.open_case(db, actor, public_id, policy, at)
    report, dek = _data_key(db, actor, public_id)
    rows = {attachment.public_id: attachment for attachment in report.attachments}
    paths = {
        info.public_id: f"files/{number:02d}-{safe_name(info.filename)}"
        for number, info in enumerate(case.attachments, start=1)
    }
    names = {officer.public_id: officer.display_name for officer in db.scalars(select(Officer))}
    with zipfile.ZipFile(cast(IO[bytes], _Unseekable(sink)), "w") as archive:
        archive.writestr(
            _entry("summary.html", at.today), _summary(case, report, paths, actor, names, db, at)
        )
        archive.writestr(_entry("thread.html", at.today), _thread(case))
        if with_notes:
            archive.writestr(_entry("notes.html", at.today), _notes(case))
        for info in case.attachments:
            entry = _entry(paths[info.public_id], info.uploaded_on)
            entry.file_size = info.size  # lets zipfile choose ZIP64 up front for a large file
            plaintext = attachments.read(store, report, dek, rows[info.public_id])
            with archive.open(entry, "w") as out, closing(plaintext):
                for chunk in plaintext:
                    out.write(chunk)
    detail = "with notes" if with_notes else "without notes"
    audit.record(db, "report_exported", actor.name, at.now, report=public_id, detail=detail)
    db.flush()
    return export_name(public_id, at.today)


def _summary(
    case: OfficerCase,
    report: Report,
    paths: dict[str, str],
    actor: Actor,
    names: dict[str, str],
    db: Session,
    at: Moment,
) -> bytes:
    answers = case.answers
    title = f"Case {case.public_id}"
    lead = next((o.display_name for o in case.readers if o.public_id == case.assignee_id), "Nobody")
    record = cases.case_history(db, actor, case.public_id)
    return _page(
        title,
        _el("h1", title),
        _el(
            "p",
            f"Exported on {_day(at.today)} by {actor.officer.display_name}. Confidential: it holds "
            "what a reporter wrote in confidence. Keep it only as long as the investigation needs it.",
        ),
        _el("h2", "The case"),
        _rows(
            [
                ("Received", _day(case.received_on)),
                ("Status", f"{STATUS_FOR_OFFICER[case.status]} since {_day(case.status_changed_on)}"),
                ("Priority", cases.PRIORITY_LABELS[case.priority]),
                ("Lead officer", lead),
                ("Officers' category", case.officer_category or NONE),
                ("Risk of detriment to the reporter", cases.RISK_LABELS[case.detriment_risk]),
                ("Outcome", cases.OUTCOME_LABELS[case.outcome] if case.outcome else "Not closed"),
                ("Closed", _day(report.closed_on)),
                ("Closing summary", case.closing_summary or NONE),
                (
                    "Closing summary shared with the reporter",
                    "Yes" if case.summary_shared else "No",
                ),
                ("Legal hold", "Yes: never deleted by the retention rule" if report.legal_hold else "No"),
                ("Officers who can read it", ", ".join(o.display_name for o in case.readers)),
            ]
        ),
        _el("h2", "Deadlines"),
        _rows(
            [
                ("Acknowledge by", _day(case.deadlines.acknowledge_by)),
                ("Acknowledged", _day(report.acknowledged_on)),
                ("Feedback by", _day(case.deadlines.feedback_by)),
                ("Feedback given", _day(case.feedback_given_on)),
            ]
        ),
        _el("h2", "What the reporter told us"),
        _rows(
            [
                ("Concern", CATEGORIES.get(answers.category, answers.category)),
                ("What happened", answers.what_happened),
                ("When and where", answers.when_where or NONE),
                ("Immediate risk", IMMEDIATE_RISK.get(answers.immediate_risk, answers.immediate_risk)),
                ("Raised before", RAISED_BEFORE.get(answers.raised_before, answers.raised_before)),
                ("With whom, and what happened", answers.raised_before_result or NONE),
                (
                    "Kept from",
                    ", ".join(case.excluded_names) if case.excluded_names else "Nobody",
                ),
            ]
        ),
        _el("h2", "Files"),
        _files(case.attachments, paths),
        _el("h2", "Stages"),
        _el(
            "ol",
            *(
                _el(
                    "li",
                    f"{STATUS_FOR_OFFICER[step.status]}, {_day(step.changed_on)}"
                    + (f" ({step.officer})" if step.officer else ""),
                )
                for step in case.history
            ),
        ),
        _el("h2", "Record of this case"),
        _el(
            "ol",
            *(
                _el(
                    "li",
                    f"{_utc(event.at) if event.at else event.day}: {event.kind.replace('_', ' ')}"
                    + (f" ({event.detail})" if event.detail else "")
                    + f", by {names.get(event.actor, event.actor)}",
                )
                for event in record
            ),
        ),
    )


def _files(files: list[AttachmentInfo], paths: dict[str, str]) -> _Html:
    if not files:
        return _el("p", "No files.")
    return _el(
        "ul",
        *(
            _el(
                "li",
                _el("a", info.filename, href=quote(paths[info.public_id], safe="/")),
                f" ({paths[info.public_id]}; {info.size:,} bytes; from the "
                f"{'reporter' if info.author is Author.REPORTER else 'officers'}, {_day(info.uploaded_on)}) ",
                info.cleaning_text,
            )
            for info in files
        ),
    )


def _thread(case: OfficerCase) -> bytes:
    title = f"Conversation with the reporter, case {case.public_id}"
    if not case.messages:
        return _page(title, _el("h1", title), _el("p", "No messages."))
    return _page(
        title,
        _el("h1", title),
        _el(
            "ol",
            *(
                _el(
                    "li",
                    _el(
                        "p",
                        _el(
                            "strong",
                            "Reporter"
                            if message.author is Author.REPORTER
                            else (message.officer_name or "An officer"),
                        ),
                        f", {_day(message.sent_on)}",
                    ),
                    _el("p", message.body),
                )
                for message in case.messages
            ),
        ),
    )


def _notes(case: OfficerCase) -> bytes:
    title = f"Internal notes, case {case.public_id}"
    notes = (
        _el(
            "ol",
            *(
                _el(
                    "li",
                    _el(
                        "p",
                        _el("strong", note.author or "A former officer"),
                        f", {_utc(note.written_at)}",
                    ),
                    _el("p", note.body),
                )
                for note in case.notes
            ),
        )
        if case.notes
        else _el("p", "No notes.")
    )
    return _page(
        title,
        _el("h1", title),
        _el("p", "Internal: the reporter never saw these."),
        _el("h2", "Protective actions for the reporter"),
        _el("p", case.protective_actions or "None recorded."),
        _el("h2", "Notes"),
        notes,
    )
