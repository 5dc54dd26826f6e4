"""The reporter's side: landing page, report form, receipt, and the way back in.

Nothing here logs, and nothing identifying is kept: no address, no user agent,
no time of day. The receipt is shown once and is never stored, logged or put
in a cookie.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, abort, make_response, redirect, render_template, request, session, url_for
from flask.wrappers import Response as FlaskResponse
from flask_limiter import RequestLimit
from werkzeug.wrappers import Response

from whistle import csrf
from whistle.models import SessionKind
from whistle.services import officers, reports
from whistle.services import settings as settings_service
from whistle.services.attachments import Upload
from whistle.services.errors import (
    AlreadySubmitted,
    NobodyToRead,
    ReceiptNotFound,
    ReceiptTriedTooOften,
    ReportNotFound,
    ServerBusy,
    UnknownOfficer,
    UploadRejected,
)
from whistle.services.turns import Work
from whistle.web import errors, limits, queues
from whistle.web.errors import wait_text
from whistle.web.forms import ReceiptForm, ReporterReplyForm, ReportForm, SendsFiles
from whistle.web.runtime import db, organisation, policy, public_url, runtime
from whistle.web.sessions import SealedSession

bp = Blueprint("reporter", __name__)

RECEIPT_NOT_FOUND = (
    "We could not find a report with that receipt code. Check it and try again; "
    "codes are 16 letters and numbers, and capitals, spaces and dashes do not matter."
)


#: How long a reporter whose report met a full queue is asked to wait before sending it again.
BUSY_RETRY_SECONDS = 10


def uploads_from(form: ReportForm | ReporterReplyForm) -> list[Upload]:
    keep = bool(form.keep_original.data)
    return [
        Upload(file.filename or "", file.mimetype or "", file.stream, keep_original=keep)
        for file in request.files.getlist(form.attachments.name)
        if file.filename
    ]


def _officer_choices() -> list[tuple[str, str]]:
    return [(officer.public_id, officer.display_name) for officer in officers.active_officers(db())]


@bp.get("/")
def index() -> str:
    return render_template(
        "reporter/index.html",
        officers=officers.active_officers(db()),
        organisation=organisation(),
    )


def _name_dropped_files(form: SendsFiles, files: Sequence[Upload]) -> None:
    """A form sent back keeps no file: each one chosen now is named with those named before."""
    if files:
        form.dropped_files.data = list(
            dict.fromkeys([*form.dropped_files.data, *(f.filename for f in files)])
        )
        form.send_without_files.data = False


def _files_left_behind(form: SendsFiles, files: Sequence[Upload]) -> bool:
    """Whether files named on a page sent back are neither chosen again nor left out on purpose;
    if so, the form says which."""
    chosen = {upload.filename for upload in files}
    missing = [name for name in form.dropped_files.data if name not in chosen]
    if not missing or form.send_without_files.data:
        return False
    form.attachments.errors.append(
        f"These files have not been sent: {', '.join(missing)}. Choose them again, "
        f"or tick “{form.send_without_files.label.text}”."
    )
    return True


def _render_report_form(form: ReportForm, files: Sequence[Upload] = (), **extra: Any) -> str:
    """The form, as sent or sent back with what was typed and the names of files not kept."""
    _name_dropped_files(form, files)
    return render_template("reporter/new_report.html", form=form, policy=policy(), **extra)


@bp.route("/report", methods=["GET", "POST"])
@limits.submission_limits
def new_report() -> str | tuple[str, int] | tuple[str, int, dict[str, str]]:
    form = ReportForm()
    form.excluded_officers.choices = _officer_choices()
    form.set_categories(settings_service.report_categories(organisation(), reports.CATEGORIES))
    if request.method != "POST":  # GET and HEAD
        form.form_token.data = reports.new_form_token()
        return _render_report_form(form)
    files = uploads_from(form)
    if not form.validate():
        return _render_report_form(form, files), 422
    if form.immediate_risk.data == "yes" and not form.emergency_seen.data:
        form.emergency_seen.data = True
        return _render_report_form(form, files, emergency=True)
    if _files_left_behind(form, files):
        return _render_report_form(form, files), 422
    rt = runtime()
    answers = reports.Answers(
        category=form.category.data,
        what_happened=form.what_happened.data,
        when_where=form.when_where.data or "",
        immediate_risk=form.immediate_risk.data,
        raised_before=form.raised_before.data,
        raised_before_result=form.raised_before_result.data or "",
        excluded_officers=tuple(form.excluded_officers.data),
    )
    try:
        with queues.turn(Work.REPORT):
            submitted = reports.submit_report(
                db(),
                rt.store,
                rt.keyring,
                policy(),
                answers,
                files,
                rt.clock.today(),
                form.form_token.data or None,
            )
    except AlreadySubmitted:
        return render_template("reporter/already_sent.html"), 409
    except (NobodyToRead, UnknownOfficer):
        form.excluded_officers.errors.append(
            "At least one officer must be able to read your report. Untick one of them."
        )
        return _render_report_form(form, files), 422
    except UploadRejected as error:
        form.attachments.errors.append(str(error))
        return _render_report_form(form, files), 422
    except ServerBusy:
        page = _render_report_form(form, files, busy=True)
        return page, 503, {"Retry-After": str(BUSY_RETRY_SECONDS)}
    # The receipt is shown in this response only: nothing keeps it.
    return render_template(
        "reporter/receipt.html", submitted=submitted, come_back_at=public_url("reporter.follow_up")
    )


@bp.route("/follow-up", methods=["GET", "POST"])
@limits.receipt_limits[0]
@queues.posts_in_turn(Work.RECEIPT)
def follow_up() -> str | Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    # The rate limits above come first: under a flood of guesses, a refusal must cost as little
    # as possible, so the CSRF check (which opens the session) is made here rather than before.
    if request.method == "POST":
        csrf.protect()
    form = ReceiptForm()
    if not form.validate_on_submit():
        gone = request.args.get("gone") == "1"
        return render_template("reporter/follow_up.html", form=form, gone=gone), (422 if form.errors else 200)
    rt = runtime()
    try:
        report_id, dek = reports.open_with_receipt(db(), rt.keyring, form.receipt.data, limits.may_open)
    except ReceiptNotFound:
        form.receipt.errors.append(RECEIPT_NOT_FOUND)
        return render_template("reporter/follow_up.html", form=form), 422
    except ReceiptTriedTooOften as refused:
        return errors.too_many(limits.seconds_until_open(refused.report))
    assert isinstance(session, SealedSession)
    session.clear()
    session.regenerate()
    session.update(kind=SessionKind.REPORTER.value, report=report_id, dek=dek)
    if form.draft.data:
        # Kept for the next page only, in the sealed session, never in clear.
        session["draft"] = form.draft.data
    return redirect(url_for("reporter.show_case"), 303)


def _visit_ended(typed: str) -> str:
    """The receipt page again, for a reporter whose visit ended while they wrote: what they
    wrote is on it, to be sent once the receipt is entered again."""
    return render_template(
        "reporter/follow_up.html", form=ReceiptForm(formdata=None, draft=typed), ended=True
    )


def _reporter_access() -> tuple[str, bytes]:
    if session.get("kind") != SessionKind.REPORTER.value:
        abort(redirect(url_for("reporter.follow_up"), 303))
    return session["report"], session["dek"]


def _render_case(form: ReporterReplyForm, files: Sequence[Upload] = (), **extra: Any) -> str:
    report_id, dek = _reporter_access()
    _name_dropped_files(form, files)
    case = reports.reporter_case(db(), report_id, dek, policy())
    categories = settings_service.report_categories(organisation(), reports.CATEGORIES)
    return render_template(
        "reporter/show_case.html", case=case, form=form, policy=policy(), categories=categories, **extra
    )


@bp.get("/follow-up/case")
def show_case() -> str:
    draft = session.pop("draft", None) if session.get("kind") == SessionKind.REPORTER.value else None
    form = ReporterReplyForm(formdata=None, body=draft)
    return _render_case(form, sent=request.args.get("sent") == "1", draft_restored=bool(draft))


def _case_bucket() -> str:
    return reports.follow_up_bucket(session["dek"])


def _follow_ups_unlimited() -> bool:
    """No limit set, or no case open (the view sends such a visitor to the receipt page)."""
    return not runtime().settings.follow_ups_per_case or session.get("kind") != SessionKind.REPORTER.value


def _too_many_follow_ups(_limit: RequestLimit) -> FlaskResponse:
    """The case page again, with what the reporter wrote, and how long to wait."""
    form = ReporterReplyForm()
    form.validate()
    seconds = limits.seconds_until_retry()
    form.body.errors.append(
        f"You have sent a lot in a short time. Please wait {wait_text(seconds)}, then send again. "
        "What you wrote is still here."
    )
    page = _render_case(form, uploads_from(form))
    return make_response(page, 429, {"Retry-After": str(seconds)})


@bp.post("/follow-up/case")
@limits.limiter.limit(
    lambda: runtime().settings.follow_ups_per_case,
    key_func=_case_bucket,
    scope="follow-up",
    exempt_when=_follow_ups_unlimited,
    on_breach=_too_many_follow_ups,
)
def add_message() -> str | Response | tuple[str, int]:
    if session.get("kind") != SessionKind.REPORTER.value:
        return _visit_ended(request.form.get("body", ""))
    report_id, dek = _reporter_access()
    form = ReporterReplyForm()
    files = uploads_from(form)
    if not form.validate():
        return _render_case(form, files), 422
    if _files_left_behind(form, files):
        return _render_case(form, files), 422
    if not (form.body.data or files):
        form.body.errors.append("Write a message or choose a file to send.")
        return _render_case(form), 422
    rt = runtime()
    try:
        reports.add_reporter_message(
            db(), rt.store, policy(), report_id, dek, form.body.data or "", files, rt.clock.today()
        )
    except UploadRejected as error:
        form.attachments.errors.append(str(error))
        return _render_case(form, files), 422
    return redirect(url_for("reporter.show_case", sent=1), 303)


@bp.errorhandler(ReportNotFound)
def report_gone(_error: ReportNotFound) -> Response:
    """The case of this reporter's session was deleted (its retention period ended) while they
    were away: end the session and say so on the receipt page, rather than fail."""
    session.clear()
    return redirect(url_for("reporter.follow_up", gone=1), 303)


@bp.post("/follow-up/leave")
def leave() -> Response:
    session.clear()
    return redirect(url_for("reporter.index"), 303)
