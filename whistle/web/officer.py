"""The officer area: login, the case list and its views, a case and everything done with it.

Every route here is refused to anyone who is not a logged-in officer, except
those named in ``PUBLIC_ENDPOINTS``. A login is two steps for an officer with
two-factor login: the password unseals the private key, which is kept in the
sealed server-side session under a "pending" marker (never a logged-in
session) until the code is right.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from werkzeug.wrappers import Response as BaseResponse

from whistle import audit
from whistle.models import DetrimentRisk, Officer, Outcome, Priority, ReportStatus, SessionKind
from whistle.services import cases, junk, officers, reports
from whistle.services.errors import (
    AttachmentNotFound,
    CodeRefused,
    CodeReplayed,
    LastReader,
    LoginDelayed,
    LoginFailed,
    OfficerExcluded,
    ReportNotFound,
    UnknownLabel,
    UnknownOfficer,
)
from whistle.services.turns import Work
from whistle.web import devices, limits, queues
from whistle.web.errors import error_page, render_error
from whistle.web.forms import (
    AssignForm,
    CloseForm,
    CodeForm,
    GrantForm,
    JunkForm,
    LabelsForm,
    LoginForm,
    NoteForm,
    OfficerReplyForm,
    PriorityForm,
    RevokeForm,
    StatusForm,
    TriageForm,
)
from whistle.web.runtime import db, policy, runtime
from whistle.web.security import SANDBOX_POLICY, content_disposition
from whistle.web.sessions import SealedSession

bp = Blueprint("officer", __name__, url_prefix="/officer")

PUBLIC_ENDPOINTS = {"officer.login", "officer.enter_code"}
#: All that an officer who must set up two-factor login first may reach.
ENROLMENT_ENDPOINTS = {"account.enrol_two_factor", "account.show_qr_code", "officer.logout"}
LOGIN_FAILED = "That email address and password do not match an officer's account."
CODE_REFUSED = "That code is not right. Enter the 6-digit code your authenticator app shows now."
CODE_REPLAYED = "That code has been used already. Wait for your app to show a new code, then enter it."
LOGIN_ENDED = (
    "Your login was not completed. Please log in again; after several wrong codes, "
    "you may be asked to wait a minute first."
)
#: How long the second step of a login may wait for its code.
PENDING_FOR = dt.timedelta(minutes=5)


@bp.before_request
def require_officer() -> BaseResponse | None:
    """Deny by default: only a live officer session passes, never a pending login.

    An officer who must set up two-factor login reaches nothing else until they have.
    """
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    officer = None
    if session.get("kind") == SessionKind.OFFICER.value and "pending" not in session:
        officer = officers.get_active(db(), session.get("officer", ""))
    if officer is None:
        session.clear()
        return redirect(url_for("officer.login"), 303)
    g.officer = officer
    g.actor = cases.Actor(officer, session["key"])
    if request.endpoint not in ENROLMENT_ENDPOINTS and officers.needs_enrolment(db(), officer):
        return redirect(url_for("account.enrol_two_factor"), 303)
    return None


def _new_session(**data: Any) -> None:
    """Start a new session id with this data, so an id known before is worth nothing."""
    assert isinstance(session, SealedSession)
    session.clear()
    session.regenerate()
    session.update(data)


#: The case forms whose typed text comes back on the login page when the login has ended.
DRAFT_FORMS = {"officer.add_message": ("messages", "body"), "officer.add_note": ("notes", "note-body")}


def _draft_of(form: LoginForm) -> dict[str, str]:
    """A message or note written before the login ended, to keep (sealed) across the login."""
    if form.draft.data and form.draft_for.data:
        return {"draft": form.draft.data, "draft_for": form.draft_for.data}
    return {}


def _logged_in(officer: Officer, private_key: bytes, **draft: str) -> BaseResponse:
    _new_session(
        kind=SessionKind.OFFICER.value,
        officer=officer.public_id,
        officer_id=officer.id,
        key=private_key,
        **draft,
    )
    if officers.needs_enrolment(db(), officer):
        return devices.remember(redirect(url_for("account.enrol_two_factor"), 303), officer.public_id)
    if draft:
        case = url_for("officer.show_report", public_id=draft["draft_for"].split("/")[0])
        return devices.remember(redirect(case, 303), officer.public_id)
    return devices.remember(redirect(url_for("officer.list_reports"), 303), officer.public_id)


@bp.errorhandler(CSRFError)
def form_expired(_error: CSRFError) -> str | tuple[str, int]:
    """A reply or note sent after the login ended (its CSRF token ended with it): the login page,
    with what was written on it, to be sent once logged in again."""
    kind, field = DRAFT_FORMS.get(request.endpoint or "", ("", ""))
    body = request.form.get(field, "") if field else ""
    if not body or session.get("kind") == SessionKind.OFFICER.value:
        return render_error(400)
    public_id = (request.view_args or {}).get("public_id", "")
    form = LoginForm(formdata=None, draft=body, draft_for=f"{public_id}/{kind}")
    return render_template("officer/login.html", form=form, draft_kind=kind)


def _login_delayed(form: LoginForm, seconds: int) -> tuple[str, int, dict[str, str]]:
    form.password.errors.append(
        f"Several wrong passwords were tried for this account just now. Wait {seconds} seconds, then "
        "try again. On a device you have logged in from before, you need not wait."
    )
    return render_template("officer/login.html", form=form), 429, {"Retry-After": str(seconds)}


@bp.route("/login", methods=["GET", "POST"])
@limits.login_limit
@queues.posts_in_turn(Work.OFFICER)
def login() -> str | BaseResponse | tuple[str, int] | tuple[str, int, dict[str, str]]:
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("officer/login.html", form=form), (422 if form.errors else 200)
    rt = runtime()
    now = rt.clock.now()
    try:
        accepted = officers.check_password_login(
            db(),
            form.email.data,
            form.password.data,
            now,
            device_of=devices.known_officer(),
            kdf=rt.keyring.kdf,
            pepper=rt.keyring.pepper,
        )
    except LoginDelayed as delayed:
        return _login_delayed(form, delayed.seconds)
    except LoginFailed:
        db().commit()  # the failure counts (and slows the next try) even though this page refuses
        form.password.errors.append(LOGIN_FAILED)
        return render_template("officer/login.html", form=form), 422
    if accepted.needs_code:
        _new_session(
            pending=accepted.officer.public_id,
            officer_id=accepted.officer.id,
            key=accepted.private_key,
            pending_since=int(now.timestamp()),
            **_draft_of(form),
        )
        return redirect(url_for("officer.enter_code"), 303)
    return _logged_in(accepted.officer, accepted.private_key, **_draft_of(form))


def _pending_login(now: dt.datetime) -> tuple[str, bytes] | None:
    """The officer and key of a login waiting for its code, if it has not waited too long."""
    public_id, key, since = session.get("pending"), session.get("key"), session.get("pending_since")
    if not (isinstance(public_id, str) and isinstance(key, bytes) and isinstance(since, int)):
        return None
    if now - dt.datetime.fromtimestamp(since, dt.UTC) > PENDING_FOR:
        return None
    return public_id, key


@bp.route("/login/code", methods=["GET", "POST"])
def enter_code() -> str | BaseResponse | tuple[str, int]:
    rt = runtime()
    now = rt.clock.now()
    pending = _pending_login(now)
    if pending is None:
        session.clear()
        return redirect(url_for("officer.login"), 303)
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template("officer/login.html", code_form=form), (422 if form.errors else 200)
    public_id, private_key = pending
    try:
        officer = officers.check_code_login(db(), public_id, private_key, form.code.data, now)
    except LoginFailed:
        db().commit()
        session.clear()
        return render_template("officer/login.html", form=LoginForm(formdata=None), ended=LOGIN_ENDED), 422
    except CodeRefused as error:
        db().commit()  # counted, as a wrong password is
        form.code.errors.append(CODE_REPLAYED if isinstance(error, CodeReplayed) else CODE_REFUSED)
        return render_template("officer/login.html", code_form=form), 422
    draft = {key: session[key] for key in ("draft", "draft_for") if isinstance(session.get(key), str)}
    return _logged_in(officer, private_key, **draft)


@bp.post("/logout")
def logout() -> BaseResponse:
    audit.record(db(), "logout", g.officer.public_id, runtime().clock.now())
    session.clear()
    return redirect(url_for("officer.login"), 303)


def _choice(enum_type: type[Any], value: str | None, default: Any) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        return default


#: Any public id: the shape the ``public_id`` converter takes (32 hex digits, which need no quoting).
_ANY_PUBLIC_ID = "0" * 32


def _address_before_id(endpoint: str) -> str:
    """The address of ``endpoint`` up to the public id that ends it.

    The case list links each of its fifty rows to a case; building each link with ``url_for``
    was a fifth of the time of a row.
    """
    address = url_for(endpoint, public_id=_ANY_PUBLIC_ID)
    if not address.endswith(_ANY_PUBLIC_ID):
        raise ValueError(f"{endpoint} does not end with its public id")
    return address.removesuffix(_ANY_PUBLIC_ID)


@bp.get("/")
def list_reports() -> str:
    """A page of a view: the first, the last (``?last=1``), or the one after or before a cursor."""
    rt = runtime()
    today = rt.clock.today()
    if "last" in request.args:
        cursor, direction = None, cases.Direction.LAST
    elif "before" in request.args:
        cursor, direction = cases.Cursor.parse(request.args["before"]), cases.Direction.BEFORE
    else:
        cursor, direction = cases.Cursor.parse(request.args.get("after")), cases.Direction.AFTER
    listed = cases.case_list(
        db(),
        g.officer,
        today,
        view=_choice(cases.View, request.args.get("view"), cases.View.ALL),
        sort=_choice(cases.Sort, request.args.get("sort"), None),  # None: the view's own
        size=rt.settings.page_size,
        label=request.args.get("label") or None,
        cursor=cursor,
        direction=direction,
    )
    return render_template(
        "officer/list_reports.html",
        page=listed.page,
        case_address=_address_before_id("officer.show_report"),
        total=listed.total,
        counts=listed.counts,
        labels=listed.labels,
        views=cases.VIEW_LABELS,
        statuses=reports.STATUS_FOR_OFFICER,
        priorities=cases.PRIORITY_LABELS,
        junk_form=JunkForm(formdata=None),
        closed_as_junk=request.args.get("closed_as_junk", type=int),
    )


@bp.post("/reports/junk")
def close_junk() -> str | BaseResponse | tuple[str, int]:
    """Close the cases ticked on the list as junk, and go back to the list."""
    form = JunkForm()
    if not form.validate():
        errors = " ".join(error for errors in form.errors.values() for error in errors)
        return error_page(422, "Nothing was closed", f"{errors} Go back to the list and try again."), 422
    try:
        closed = junk.close_as_junk(db(), g.actor, form.reports.data, policy(), runtime().clock.moment())
    except ReportNotFound:
        abort(404)
    return redirect(url_for("officer.list_reports", closed_as_junk=closed), 303)


# --- one case --------------------------------------------------------------------

_FORMS: dict[str, type[FlaskForm]] = {
    "reply": OfficerReplyForm,
    "status_form": StatusForm,
    "close_form": CloseForm,
    "priority_form": PriorityForm,
    "assign_form": AssignForm,
    "triage_form": TriageForm,
    "note_form": NoteForm,
    "grant_form": GrantForm,
    "revoke_form": RevokeForm,
    "labels_form": LabelsForm,
}


def _render_case(public_id: str, **posted: FlaskForm) -> str:
    """The case page; a form that was posted and refused keeps what was typed."""
    rt = runtime()
    try:
        case = cases.open_case(db(), g.actor, public_id, policy(), rt.clock.moment())
    except ReportNotFound:
        abort(404)
    forms = {name: posted.get(name) or form_type(formdata=None) for name, form_type in _FORMS.items()}
    restored = _restore_draft(public_id, forms)
    forms["assign_form"].assignee.choices = [("", "Nobody yet")] + [
        (o.public_id, o.display_name) for o in case.readers
    ]
    forms["grant_form"].officer.choices = [(o.public_id, o.display_name) for o in case.can_be_granted]
    forms["labels_form"].names.choices = [(name, name) for name in case.all_labels]
    if "labels_form" not in posted:
        forms["labels_form"].names.data = case.labels
    if "status_form" not in posted:
        forms["status_form"].status.data = case.status.value
    if "priority_form" not in posted:
        forms["priority_form"].priority.data = case.priority.value
    if "assign_form" not in posted:
        forms["assign_form"].assignee.data = case.assignee_id or ""
    if "triage_form" not in posted:
        forms["triage_form"].category.data = case.officer_category or ""
        forms["triage_form"].risk.data = case.detriment_risk.value
        forms["triage_form"].protective_actions.data = case.protective_actions
    return render_template(
        "officer/show_report.html",
        case=case,
        history=cases.case_history(db(), g.actor, public_id),
        categories=reports.CATEGORIES,
        immediate_risk=reports.IMMEDIATE_RISK,
        raised_before=reports.RAISED_BEFORE,
        statuses=reports.STATUS_FOR_OFFICER,
        outcomes=cases.OUTCOME_LABELS,
        priorities=cases.PRIORITY_LABELS,
        risks=cases.RISK_LABELS,
        draft_restored=restored,
        **forms,
    )


def _restore_draft(public_id: str, forms: dict[str, FlaskForm]) -> str | None:
    """A reply or note written before the login ended goes back in its box, once."""
    target = session.get("draft_for")
    if not (isinstance(target, str) and target.startswith(public_id + "/")):
        return None
    kind = target.split("/")[1]
    forms["reply" if kind == "messages" else "note_form"].body.data = session.pop("draft")
    session.pop("draft_for")
    return kind


@bp.get("/reports/<public_id:public_id>")
def show_report(public_id: str) -> str:
    return _render_case(public_id)


def _act(
    public_id: str, name: str, form: FlaskForm, operation: Callable[[], None]
) -> str | BaseResponse | tuple[str, int]:
    """Validate a case form, run one service operation, and go back to the case."""
    if not form.validate():
        return _render_case(public_id, **{name: form}), 422
    try:
        operation()
    except ReportNotFound:
        abort(404)
    except (UnknownOfficer, OfficerExcluded, LastReader, UnknownLabel) as error:
        db().rollback()
        field = next(iter(form._fields.values()))
        field.errors = [*field.errors, _ACCESS_ERRORS.get(type(error), "That officer cannot be chosen.")]
        return _render_case(public_id, **{name: form}), 422
    return redirect(url_for("officer.show_report", public_id=public_id), 303)


_ACCESS_ERRORS = {
    OfficerExcluded: "The reporter asked that this officer should not see the report.",
    LastReader: "At least one officer must keep access to the case.",
    UnknownOfficer: "That officer cannot be chosen for this case.",
    UnknownLabel: "Choose from the labels listed, or define a new one.",
}


@bp.post("/reports/<public_id:public_id>/messages")
def add_message(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = OfficerReplyForm()
    return _act(
        public_id,
        "reply",
        form,
        lambda: cases.reply(
            db(),
            g.actor,
            public_id,
            form.body.data,
            runtime().clock.moment(),
            is_feedback=bool(form.is_feedback.data),
        ),
    )


@bp.post("/reports/<public_id:public_id>/status")
def change_status(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = StatusForm()
    rt = runtime()
    return _act(
        public_id,
        "status_form",
        form,
        lambda: cases.set_status(
            db(), g.actor, public_id, ReportStatus(form.status.data), policy(), rt.clock.moment()
        ),
    )


@bp.post("/reports/<public_id:public_id>/close")
def close_case(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = CloseForm()
    rt = runtime()
    return _act(
        public_id,
        "close_form",
        form,
        lambda: cases.close_case(
            db(),
            g.actor,
            public_id,
            Outcome(form.outcome.data),
            form.summary.data,
            policy(),
            rt.clock.moment(),
            share_with_reporter=bool(form.share.data),
        ),
    )


@bp.post("/reports/<public_id:public_id>/priority")
def change_priority(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = PriorityForm()
    return _act(
        public_id,
        "priority_form",
        form,
        lambda: cases.set_priority(
            db(), g.actor, public_id, Priority(form.priority.data), runtime().clock.moment()
        ),
    )


@bp.post("/reports/<public_id:public_id>/assignee")
def assign_officer(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = AssignForm()
    return _act(
        public_id,
        "assign_form",
        form,
        lambda: cases.assign(db(), g.actor, public_id, form.assignee.data or None, runtime().clock.moment()),
    )


@bp.post("/reports/<public_id:public_id>/triage")
def update_triage(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = TriageForm()
    return _act(
        public_id,
        "triage_form",
        form,
        lambda: cases.set_triage(
            db(),
            g.actor,
            public_id,
            (form.category.data or "").strip(),
            DetrimentRisk(form.risk.data),
            form.protective_actions.data or "",
            runtime().clock.moment(),
        ),
    )


@bp.post("/reports/<public_id:public_id>/labels")
def update_labels(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = LabelsForm()
    form.names.choices = [(name, name) for name in request.form.getlist(form.names.name)]
    return _act(
        public_id,
        "labels_form",
        form,
        lambda: cases.set_labels(
            db(), g.actor, public_id, form.names.data, form.new_label.data or "", runtime().clock.moment()
        ),
    )


@bp.post("/reports/<public_id:public_id>/notes")
def add_note(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = NoteForm()
    return _act(
        public_id,
        "note_form",
        form,
        lambda: cases.add_note(db(), g.actor, public_id, form.body.data, runtime().clock.moment()),
    )


@bp.post("/reports/<public_id:public_id>/access")
def grant_access(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = GrantForm()
    return _act(
        public_id,
        "grant_form",
        form,
        lambda: cases.grant(db(), g.actor, public_id, form.officer.data, runtime().clock.moment()),
    )


@bp.post("/reports/<public_id:public_id>/access/revoke")
def revoke_access(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = RevokeForm()
    return _act(
        public_id,
        "revoke_form",
        form,
        lambda: cases.revoke(db(), g.actor, public_id, form.officer.data, runtime().clock.moment()),
    )


@bp.get("/reports/<public_id:public_id>/attachments/<public_id:attachment_id>")
def download_attachment(public_id: str, attachment_id: str) -> Response:
    rt = runtime()
    try:
        info, chunks = cases.read_attachment(
            db(), rt.store, g.actor, public_id, attachment_id, rt.clock.moment()
        )
    except (ReportNotFound, AttachmentNotFound):
        abort(404)
    response = Response(chunks, mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(info.size)
    response.headers["Content-Disposition"] = content_disposition(info.filename)
    response.headers["Content-Security-Policy"] = SANDBOX_POLICY
    return response
