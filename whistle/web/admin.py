"""Administration: officers, invitations, the audit log and the organisation's settings.

Administrators run the system without reading what is not theirs: nothing
here decrypts a report, and every list that names reports is limited to the
reports this administrator may open.
"""

from __future__ import annotations

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from whistle.services import administration, officers
from whistle.services import settings as settings_service
from whistle.services.errors import InvalidSetting, NotAllowed, OfficerExists, UnknownOfficer
from whistle.web.forms import InviteForm, OfficerStatusForm, SettingsForm
from whistle.web.officer import require_officer
from whistle.web.runtime import db, organisation, public_url, runtime

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def require_admin() -> BaseResponse | None:
    """An officer session first (deny by default), then the administrator role."""
    denied = require_officer()
    if denied is not None:
        return denied
    if not g.officer.is_admin:
        abort(403)
    return None


@bp.get("/")
def list_officers() -> str:
    return render_template(
        "admin/list_officers.html",
        officers=administration.officers_overview(db(), g.officer),
        invite_form=InviteForm(formdata=None),
        status_form=OfficerStatusForm(formdata=None),
    )


@bp.post("/invitations")
def invite_officer() -> str | tuple[str, int]:
    form = InviteForm()
    if form.validate():
        rt = runtime()
        try:
            token = administration.invite(
                db(),
                g.officer,
                form.email.data,
                form.display_name.data,
                bool(form.is_admin.data),
                rt.clock.now(),
            )
        except OfficerExists as error:
            form.email.errors.append(str(error))
        else:
            link = public_url("account.welcome", token=token)
            return render_template("admin/invited.html", link=link, name=form.display_name.data)
    page = render_template(
        "admin/list_officers.html",
        officers=administration.officers_overview(db(), g.officer),
        invite_form=form,
        status_form=OfficerStatusForm(formdata=None),
    )
    return page, 422


def _set_active(active: bool) -> BaseResponse:
    form = OfficerStatusForm()
    if not form.validate():
        abort(400)
    try:
        administration.set_active(db(), g.officer, form.officer.data, active, runtime().clock.now())
    except UnknownOfficer:
        abort(404)
    return redirect(url_for("admin.list_officers"), 303)


@bp.post("/officers/deactivate")
def deactivate_officer() -> BaseResponse:
    return _set_active(False)


@bp.post("/officers/reactivate")
def reactivate_officer() -> BaseResponse:
    return _set_active(True)


@bp.get("/audit")
def show_audit() -> str:
    page = administration.audit_log(db(), g.officer, request.args.get("page", 1, type=int) or 1)
    names = {
        o.officer.public_id: o.officer.display_name for o in administration.officers_overview(db(), g.officer)
    }
    return render_template("admin/show_audit.html", page=page, names=names)


def _render_settings(form: SettingsForm) -> str:
    return render_template("admin/edit_settings.html", form=form)


@bp.get("/settings")
def edit_settings() -> str:
    form = SettingsForm(formdata=None, data=organisation())
    return _render_settings(form)


@bp.post("/settings")
def save_settings() -> str | BaseResponse | tuple[str, int]:
    form = SettingsForm()
    if not form.validate():
        return _render_settings(form), 422
    values = {name: form[name].data for name in settings_service.DEFINITIONS if name in form}
    try:
        settings_service.change(db(), g.officer.public_id, values, runtime().clock.now())
    except InvalidSetting as error:
        form.organisation_name.errors.append(str(error))
        return _render_settings(form), 422
    return redirect(url_for("admin.edit_settings", saved=1), 303)


@bp.post("/officers/reset")
def reset_officer() -> str:
    """A new key pair for an officer who lost both password and recovery key."""
    form = OfficerStatusForm()
    if not form.validate():
        abort(400)
    rt = runtime()
    try:
        token = officers.reset_without_recovery(
            db(), rt.keyring.kdf, g.officer, form.officer.data, rt.clock.now()
        )
    except (UnknownOfficer, NotAllowed):
        abort(404)
    link = public_url("account.welcome", token=token)
    return render_template("admin/reset.html", link=link)


@bp.post("/officers/two-factor/reset")
def reset_two_factor() -> BaseResponse:
    form = OfficerStatusForm()
    if not form.validate():
        abort(400)
    try:
        officers.reset_two_factor(db(), g.officer, form.officer.data, runtime().clock.now())
    except (UnknownOfficer, NotAllowed):
        abort(404)
    return redirect(url_for("admin.list_officers"), 303)
