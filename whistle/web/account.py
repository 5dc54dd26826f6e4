"""An officer's own account: two-factor login, and getting back in after a lost password.

Every route here needs a logged-in officer (the officer area's guard), except
the two pages for officers who cannot log in: the password reset with a
recovery key, and the one-time welcome link of an invitation or of a reset by
an administrator.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, g, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from whistle.services import officers, twofactor
from whistle.services.errors import (
    CodeRefused,
    InvitationUnavailable,
    NotConfirmed,
    RecoveryFailed,
    ResetTriedTooOften,
    WeakPassword,
)
from whistle.services.turns import Work
from whistle.web import errors, limits, queues
from whistle.web.forms import EnrolTwoFactorForm, ResetPasswordForm, WelcomeForm
from whistle.web.officer import require_officer
from whistle.web.runtime import db, organisation, runtime

bp = Blueprint("account", __name__, url_prefix="/officer")

PUBLIC_ENDPOINTS = {"account.reset", "account.welcome"}
#: Where the secret of a two-factor set-up waits, in the sealed session, until a code confirms it.
ENROLMENT = "totp_enrolment"
RESET_FAILED = "That email address and recovery key do not match an officer's account."


@bp.before_request
def require_account_officer() -> BaseResponse | None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    return require_officer()


# --- two-factor login ------------------------------------------------------------


def _pending_secret(create: bool) -> bytes | None:
    secret = session.get(ENROLMENT)
    if isinstance(secret, bytes):
        return secret
    if not create:
        return None
    secret = twofactor.new_secret()
    session[ENROLMENT] = secret
    return secret


@bp.route("/account/two-factor", methods=["GET", "POST"])
def enrol_two_factor() -> str | BaseResponse | tuple[str, int]:
    enrolled = twofactor.enrolled(g.officer)
    if request.method == "GET" and enrolled and not request.args.get("again"):
        if ENROLMENT in session:
            del session[ENROLMENT]
        return render_template("account/enrol_two_factor.html", enrolled=True, done=request.args.get("done"))
    form = EnrolTwoFactorForm()
    secret = _pending_secret(create=request.method == "GET")
    if secret is None:
        return redirect(url_for("account.enrol_two_factor"), 303)
    if form.validate_on_submit():
        try:
            if enrolled and not form.current.data:
                raise NotConfirmed()
            officers.move_two_factor(
                db(),
                g.officer,
                g.actor.private_key,
                secret,
                form.code.data,
                form.current.data or "",
                runtime().clock.now(),
                pepper=runtime().keyring.pepper,
            )
        except NotConfirmed:
            form.current.errors.append(
                "To move two-factor login to a new app, enter your password or your current app's code."
            )
        except CodeRefused:
            form.code.errors.append(
                "That code is not right. Check that the app shows this portal, then enter its newest code."
            )
        else:
            session.pop(ENROLMENT, None)
            return redirect(url_for("account.enrol_two_factor", done=1), 303)
    return render_template(
        "account/enrol_two_factor.html",
        enrolled=enrolled,
        required=twofactor.required(db()),
        form=form,
        secret_text=twofactor.secret_text(secret),
    ), (422 if form.errors else 200)


@bp.get("/account/two-factor/qr.svg")
def show_qr_code() -> Response:
    """The QR code of the set-up in progress, as an SVG document (img-src 'self' allows it)."""
    secret = _pending_secret(create=False)
    if secret is None:
        abort(404)
    uri = twofactor.provisioning_uri(secret, g.officer.email, organisation()["organisation_name"])
    return Response(twofactor.qr_code_svg(uri), mimetype="image/svg+xml")


# --- getting back in -------------------------------------------------------------


@bp.route("/reset", methods=["GET", "POST"])
@queues.posts_in_turn(Work.OFFICER)
def reset() -> str | tuple[str, int] | tuple[str, int, dict[str, str]]:
    form = ResetPasswordForm()
    if not form.validate_on_submit():
        return render_template("account/reset.html", form=form), (422 if form.errors else 200)
    rt = runtime()
    try:
        recovery_code = officers.reset_password(
            db(),
            rt.keyring.kdf,
            form.email.data,
            form.recovery_key.data,
            form.password.data,
            rt.clock.now(),
            limits.may_reset,
            pepper=rt.keyring.pepper,
        )
    except WeakPassword as error:
        form.password.errors.append(str(error))
        return render_template("account/reset.html", form=form), 422
    except ResetTriedTooOften as refused:
        return errors.too_many(limits.seconds_until_reset(refused.officer))
    except RecoveryFailed:
        db().commit()  # the failed attempt stays in the audit log
        form.recovery_key.errors.append(RESET_FAILED)
        return render_template("account/reset.html", form=form), 422
    return render_template("account/reset_done.html", recovery_code=recovery_code)


@bp.route("/welcome/<token>", methods=["GET", "POST"])
def welcome(token: str) -> str | tuple[str, int]:
    rt = runtime()
    try:
        invitation = officers.show_invitation(db(), token, rt.clock.now())
    except InvitationUnavailable:
        abort(404)
    form = WelcomeForm()
    if not form.validate_on_submit():
        page = render_template("account/welcome.html", form=form, invitation=invitation)
        return page, (422 if form.errors else 200)
    try:
        done = officers.accept_invitation(
            db(), rt.keyring.kdf, token, form.password.data, rt.clock.now(), pepper=rt.keyring.pepper
        )
    except InvitationUnavailable:
        abort(404)
    except WeakPassword as error:
        form.password.errors.append(str(error))
        return render_template("account/welcome.html", form=form, invitation=invitation), 422
    return render_template(
        "account/welcome_done.html",
        officer=done.officer,
        recovery_code=done.recovery_code,
        lost_cases=done.lost_cases,
        replaced_keys=invitation.replaces_keys,
    )
