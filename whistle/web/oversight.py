"""Oversight of cases: legal hold, the board's statistics and the export of one case.

Part of the officer area (``/officer``): every route is refused to anyone who
is not a logged-in officer, by the officer area's own guard.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from whistle.services import export, retention, statistics
from whistle.services.errors import ReportNotFound
from whistle.web.forms import LegalHoldForm
from whistle.web.officer import require_officer
from whistle.web.runtime import db, policy, runtime
from whistle.web.security import SANDBOX_POLICY, content_disposition
from whistle.web.uploads import SPOOL_CHUNK, SealedSpool

bp = Blueprint("oversight", __name__, url_prefix="/officer")
bp.before_request(require_officer)

#: The years the statistics page accepts in its filter; anything else shows every year.
YEARS = range(2000, 2200)


def _query(name: str) -> str | None:
    """A query parameter; a query string that is not UTF-8 is a bad request, not a crash."""
    try:
        return request.args.get(name)
    except UnicodeDecodeError:
        abort(400)


@bp.post("/reports/<public_id:public_id>/hold")
def set_legal_hold(public_id: str) -> BaseResponse:
    form = LegalHoldForm()
    if not form.validate():
        abort(400)
    try:
        retention.set_legal_hold(db(), g.actor, public_id, form.hold.data == "on", runtime().clock.moment())
    except ReportNotFound:
        abort(404)
    return redirect(url_for("officer.show_report", public_id=public_id), 303)


@bp.get("/statistics")
def show_statistics() -> str:
    text = _query("year") or ""
    year = int(text) if len(text) == 4 and text.isascii() and text.isdigit() else None
    rules = policy()
    figures = statistics.board_statistics(
        db(), g.officer, runtime().clock.today(), rules, year=year if year in YEARS else None
    )
    return render_template(
        "oversight/show_statistics.html",
        stats=figures,
        smallest=statistics.SMALLEST_SHOWN,
        acknowledge_days=rules.acknowledge_days,
        feedback_months=rules.feedback_months,
    )


def _drain(spool: SealedSpool) -> Iterator[bytes]:
    try:
        while chunk := spool.read(SPOOL_CHUNK):
            yield chunk
    finally:
        spool.close()


@bp.get("/reports/<public_id:public_id>/export")
def export_report(public_id: str) -> Response:
    """The case as a ZIP, made in a sealed spool (never in clear on the disk) and streamed out."""
    with_notes = _query("notes") == "1"
    rt = runtime()
    spool = SealedSpool()
    try:
        name = export.export_case(
            db(),
            rt.store,
            g.actor,
            public_id,
            policy(),
            rt.clock.moment(),
            spool,
            with_notes=with_notes,
        )
    except ReportNotFound:
        spool.close()
        abort(404)
    except BaseException:
        spool.close()
        raise
    size = spool.size
    spool.seek(0)
    response = Response(_drain(spool), mimetype="application/zip")
    response.call_on_close(spool.close)
    response.headers["Content-Length"] = str(size)
    response.headers["Content-Disposition"] = content_disposition(name)
    response.headers["Content-Security-Policy"] = SANDBOX_POLICY
    return response
