"""First run: the one-time link that lets the first administrator in."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from whistle.services import officers
from whistle.services.errors import OfficerExists, SetupUnavailable, WeakPassword
from whistle.web.forms import SetupForm
from whistle.web.runtime import db, runtime

bp = Blueprint("setup", __name__)


@bp.route("/setup/<token>", methods=["GET", "POST"])
def first_admin(token: str) -> str | tuple[str, int]:
    if not officers.setup_token_valid(db(), token):
        abort(404)
    form = SetupForm()
    if not form.validate_on_submit():
        return render_template("setup/first_admin.html", form=form), (422 if form.errors else 200)
    rt = runtime()
    try:
        created = officers.set_up_first_admin(
            db(),
            rt.keyring.kdf,
            token,
            form.email.data,
            form.display_name.data,
            form.password.data,
            rt.clock.now(),
            pepper=rt.keyring.pepper,
        )
    except SetupUnavailable:
        abort(404)
    except WeakPassword as error:
        form.password.errors.append(str(error))
        return render_template("setup/first_admin.html", form=form), 422
    except OfficerExists as error:
        form.email.errors.append(str(error))
        return render_template("setup/first_admin.html", form=form), 422
    return render_template("setup/done.html", officer=created.officer, recovery_code=created.recovery_code)
