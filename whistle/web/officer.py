"""The officer's reading room: login, the list of reports, a report, the thread.

Every route here is refused to anyone who is not a logged-in officer, except
those named in ``PUBLIC_ENDPOINTS``.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from whistle.models import ReportStatus, SessionKind
from whistle.services import officers, reports
from whistle.services.errors import AttachmentNotFound, LoginFailed, ReportNotFound
from whistle.web import limits
from whistle.web.forms import LoginForm, OfficerReplyForm, StatusForm
from whistle.web.runtime import db, runtime
from whistle.web.security import SANDBOX_POLICY, content_disposition
from whistle.web.sessions import SealedSession

bp = Blueprint("officer", __name__, url_prefix="/officer")

PUBLIC_ENDPOINTS = {"officer.login"}
LOGIN_FAILED = "That email address and password do not match an officer's account."


@bp.before_request
def require_officer() -> BaseResponse | None:
    """Deny by default: only a live officer session passes."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    officer = None
    if session.get("kind") == SessionKind.OFFICER.value:
        officer = officers.get_active(db(), session.get("officer", ""))
    if officer is None:
        session.clear()
        return redirect(url_for("officer.login"), 303)
    g.officer = officer
    g.private_key = session["key"]
    return None


@bp.route("/login", methods=["GET", "POST"])
@limits.login_limit
def login() -> str | BaseResponse | tuple[str, int]:
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("officer/login.html", form=form), (422 if form.errors else 200)
    rt = runtime()
    try:
        officer, private_key = officers.authenticate(
            db(), rt.keyring.kdf, form.email.data, form.password.data
        )
    except LoginFailed:
        form.password.errors.append(LOGIN_FAILED)
        return render_template("officer/login.html", form=form), 422
    assert isinstance(session, SealedSession)
    session.clear()
    session.regenerate()
    session.update(
        kind=SessionKind.OFFICER.value, officer=officer.public_id, officer_id=officer.id, key=private_key
    )
    return redirect(url_for("officer.list_reports"), 303)


@bp.post("/logout")
def logout() -> BaseResponse:
    session.clear()
    return redirect(url_for("officer.login"), 303)


@bp.get("/")
def list_reports() -> str:
    rt = runtime()
    page = reports.list_reports(
        db(), g.officer, rt.policy, request.args.get("page", 1, type=int) or 1, rt.settings.page_size
    )
    return render_template("officer/list_reports.html", page=page, statuses=reports.STATUS_FOR_OFFICER)


def _render_report(public_id: str, reply: OfficerReplyForm, status: StatusForm) -> str:
    rt = runtime()
    try:
        case = reports.open_report(db(), g.officer, g.private_key, public_id, rt.policy, rt.clock.today())
    except ReportNotFound:
        abort(404)
    status.status.data = status.status.data or case.status.value
    return render_template(
        "officer/show_report.html",
        case=case,
        reply=reply,
        status_form=status,
        categories=reports.CATEGORIES,
        immediate_risk=reports.IMMEDIATE_RISK,
        raised_before=reports.RAISED_BEFORE,
        statuses=reports.STATUS_FOR_OFFICER,
    )


@bp.get("/reports/<public_id:public_id>")
def show_report(public_id: str) -> str:
    return _render_report(public_id, OfficerReplyForm(formdata=None), StatusForm(formdata=None))


@bp.post("/reports/<public_id:public_id>/messages")
def add_message(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = OfficerReplyForm()
    if not form.validate():
        return _render_report(public_id, form, StatusForm(formdata=None)), 422
    try:
        reports.reply_as_officer(
            db(), g.officer, g.private_key, public_id, form.body.data, runtime().clock.today()
        )
    except ReportNotFound:
        abort(404)
    return redirect(url_for("officer.show_report", public_id=public_id), 303)


@bp.post("/reports/<public_id:public_id>/status")
def change_status(public_id: str) -> str | BaseResponse | tuple[str, int]:
    form = StatusForm()
    if not form.validate():
        return _render_report(public_id, OfficerReplyForm(formdata=None), form), 422
    try:
        reports.set_status(
            db(), g.officer, public_id, ReportStatus(form.status.data), runtime().clock.today()
        )
    except ReportNotFound:
        abort(404)
    return redirect(url_for("officer.show_report", public_id=public_id), 303)


@bp.get("/reports/<public_id:public_id>/attachments/<public_id:attachment_id>")
def download_attachment(public_id: str, attachment_id: str) -> Response:
    rt = runtime()
    try:
        info, chunks = reports.read_attachment(
            db(), rt.store, g.officer, g.private_key, public_id, attachment_id
        )
    except (ReportNotFound, AttachmentNotFound):
        abort(404)
    response = Response(chunks, mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(info.size)
    response.headers["Content-Disposition"] = content_disposition(info.filename)
    response.headers["Content-Security-Policy"] = SANDBOX_POLICY
    return response
