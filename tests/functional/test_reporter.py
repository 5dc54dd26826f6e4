"""The reporter's side, as a member of staff (or someone watching them) would see it.

Landing page, submitting a concern, the emergency step, excluding officers, coming
back with the receipt, answering, and what the reporter sees of an officer's work.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html as html_lib
import io
import re
import secrets

from dateutil.relativedelta import relativedelta
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import (
    REPORT,
    OfficerAccount,
    csrf_token,
    follow_up,
    form_post,
    login,
    reports_listed,
    runtime_of,
    submit_report,
)
from whistle.services.context import Clock

COOKIE = "whistle"
RECEIPT_SHAPE = re.compile(
    r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$"
)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# --- helpers -----------------------------------------------------------------


def text_of(page: str) -> str:
    """The words a person reads on a page: tags dropped, entities decoded, spaces collapsed."""
    inline = re.sub(r"</?(?:strong|em|span|a|abbr|code)\b[^>]*>", "", page)
    words = re.sub(r"<[^>]+>", " ", inline)
    return " ".join(html_lib.unescape(words).split())


def day(date: dt.date) -> str:
    return date.strftime("%-d %B %Y")


def officer_client(app: Flask, account: OfficerAccount) -> FlaskClient:
    officer = app.test_client()
    response = login(officer, account)
    assert response.status_code == 303, response.get_data(as_text=True)
    return officer


def textarea(page: str, name: str) -> str:
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', page, re.S)
    assert match, f"no textarea {name} on the page"
    return html_lib.unescape(match.group(1)).lstrip("\r\n")


def field_errors(page: str) -> list[str]:
    return [text_of(error) for error in re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', page, re.S)]


def cookie_value(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(COOKIE)
    return cookie.value if cookie else None


def random_receipt() -> str:
    code = "".join(secrets.choice(CROCKFORD) for _ in range(16))
    return "-".join(code[i : i + 4] for i in range(0, 16, 4))


@dataclasses.dataclass(frozen=True)
class ShiftedClock(Clock):
    """The real clock, moved forward by ``offset``: lets a test pass the time."""

    offset: dt.timedelta = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


def pass_time(app: Flask, offset: dt.timedelta) -> None:
    """Move the app's clock to ``offset`` after the real time (for views and sessions)."""
    rt = runtime_of(app)
    moved = dataclasses.replace(rt, clock=ShiftedClock(rt.clock.timezone, offset))
    app.extensions["whistle"] = moved
    app.session_interface.runtime = moved  # type: ignore[attr-defined]


def open_case(app: Flask, receipt: str) -> FlaskClient:
    reporter = app.test_client()
    response = follow_up(reporter, receipt)
    assert response.status_code == 303, response.get_data(as_text=True)
    return reporter


# --- landing page ------------------------------------------------------------


def test_landing_page_names_the_organisation_its_officers_and_gives_safety_advice(client, alice, bob):
    response = client.get("/")

    assert response.status_code == 200
    text = text_of(response.get_data(as_text=True))
    assert "Northshire Council" in text
    assert "Alice Officer" in text
    assert "Bob Officer" in text
    assert "immediate danger" in text
    assert "Call 999 now" in text
    assert "Use your own phone or computer, not a work device or the work network" in text
    assert "We do not keep your IP address" in text
    assert "Tor Browser" in text


def test_landing_page_sets_no_cookie(client, alice):
    response = client.get("/")

    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert cookie_value(client) is None


def test_landing_page_and_form_leave_out_a_deactivated_officer(client, app, alice, bob):
    from whistle.models import Officer

    rt = runtime_of(app)
    with rt.session_factory() as db, db.begin():
        db.query(Officer).filter(Officer.public_id == bob.public_id).one().is_active = False

    landing = client.get("/").get_data(as_text=True)
    form = client.get("/report").get_data(as_text=True)

    assert "Alice Officer" in landing
    assert "Bob Officer" not in landing
    assert alice.public_id in form
    assert bob.public_id not in form
    assert "Bob Officer" not in form


# --- submitting ----------------------------------------------------------------


def test_receipt_page_shows_a_well_formed_receipt_and_both_deadlines(client, app, alice):
    response = form_post(client, "/report", dict(REPORT), content_type="multipart/form-data")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    receipt = re.search(r'<p class="receipt"[^>]*><strong>([^<]*)</strong>', page).group(1)
    assert RECEIPT_SHAPE.match(receipt), receipt
    today = runtime_of(app).clock.today()
    acknowledge_by = today + dt.timedelta(days=7)
    feedback_by = acknowledge_by + relativedelta(months=3)
    text = text_of(page)
    assert f"An officer should acknowledge your report by {day(acknowledge_by)}." in text
    assert f"You should hear what is being done about it by {day(feedback_by)}." in text
    assert response.headers["Cache-Control"] == "no-store"


def test_receipts_differ_between_reports(client, alice):
    receipts = {submit_report(client) for _ in range(3)}

    assert len(receipts) == 3


def test_receipt_is_never_shown_again_nor_kept_in_a_cookie(client, alice):
    form_page = client.get("/report")
    submitted = client.post(
        "/report",
        data={**REPORT, "csrf_token": csrf_token(form_page.get_data(as_text=True))},
        content_type="multipart/form-data",
    )
    receipt = re.search(
        r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b", submitted.get_data(as_text=True)
    )
    assert receipt, "no receipt on the page"
    forms = {receipt.group(0), receipt.group(0).replace("-", ""), receipt.group(0).lower()}

    later = [client.get(path) for path in ("/", "/report", "/follow-up", "/follow-up/case")]

    for response in later:
        page = response.get_data(as_text=True)
        assert not any(form in page for form in forms), response.request.path
        assert not any(form in page.replace(" ", "") for form in forms), response.request.path
    set_cookies = [value for r in [form_page, submitted, *later] for value in r.headers.getlist("Set-Cookie")]
    assert set_cookies, "the form page should have set a session cookie, so this check means something"
    for header in set_cookies:
        assert not any(form.lower() in header.lower() for form in forms)
    jar = cookie_value(client) or ""
    assert not any(form.lower() in jar.lower() for form in forms)


def hidden_value(page: str, name: str) -> str:
    field = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    assert field, f"no field {name} on the page"
    return html_lib.unescape(re.search(r'value="([^"]*)"', field.group(0)).group(1))


def test_a_resent_report_form_makes_no_second_report_and_shows_no_receipt(client, app, alice):
    form_page = client.get("/report").get_data(as_text=True)
    sending = {
        **REPORT,
        "csrf_token": csrf_token(form_page),
        "form_token": hidden_value(form_page, "form_token"),
    }

    first = client.post("/report", data=sending, content_type="multipart/form-data")
    # The browser reloads the receipt page: the same form is sent again, twice.
    again = [client.post("/report", data=sending, content_type="multipart/form-data") for _ in range(2)]

    assert "Your report has been sent" in first.get_data(as_text=True)
    for response in again:
        page = response.get_data(as_text=True)
        assert response.status_code == 409
        assert "Your report has already arrived" in text_of(page)
        assert "nothing new has been sent" in text_of(page)
        assert not re.search(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b", page)
    assert len(reports_listed(officer_client(app, alice))) == 1


def test_each_report_form_makes_its_own_report(client, app, alice):
    for _ in range(2):
        form_page = client.get("/report").get_data(as_text=True)
        sending = {
            **REPORT,
            "csrf_token": csrf_token(form_page),
            "form_token": hidden_value(form_page, "form_token"),
        }
        assert client.post("/report", data=sending, content_type="multipart/form-data").status_code == 200

    assert len(reports_listed(officer_client(app, alice))) == 2


def test_the_officer_reads_what_the_reporter_wrote(client, app, alice):
    submit_report(client, what_happened="Visits to the Hill Road family were recorded but never made.")

    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    page = text_of(officer.get(f"/officer/reports/{report_id}").get_data(as_text=True))

    assert "Visits to the Hill Road family were recorded but never made." in page
    assert "Unsafe caseloads or staffing" in page
    assert "Raised with my manager; nothing changed." in page


# --- immediate risk ----------------------------------------------------------


def test_immediate_risk_first_shows_emergency_guidance_and_creates_nothing(client, app, alice):
    data = {**REPORT, "immediate_risk": "yes", "what_happened": "A baby was left alone overnight."}

    first = form_post(client, "/report", data, content_type="multipart/form-data")

    assert first.status_code == 200
    page = first.get_data(as_text=True)
    assert "call 999" in text_of(page)
    assert "You said someone may be at immediate risk" in text_of(page)
    assert "Your report has been sent" not in page
    assert not re.search(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b", page)
    assert textarea(page, "what_happened") == "A baby was left alone overnight."
    officer = officer_client(app, alice)
    assert reports_listed(officer) == []

    hidden = re.search(r'<input[^>]*name="emergency_seen"[^>]*>', page)
    assert hidden, "the page should carry the hidden emergency_seen field"
    assert 'type="hidden"' in hidden.group(0)
    seen = re.search(r'value="([^"]*)"', hidden.group(0)).group(1)
    second = client.post(
        "/report",
        data={**data, "emergency_seen": seen, "csrf_token": csrf_token(page)},
        content_type="multipart/form-data",
    )

    assert second.status_code == 200
    assert "Your report has been sent" in second.get_data(as_text=True)
    (report_id,) = reports_listed(officer)
    shown = text_of(officer.get(f"/officer/reports/{report_id}").get_data(as_text=True))
    assert "The reporter says a child or adult may be at immediate risk." in shown
    assert "A baby was left alone overnight." in shown


def test_no_immediate_risk_is_sent_at_once(client, app, alice):
    page = form_post(client, "/report", dict(REPORT), content_type="multipart/form-data").get_data(
        as_text=True
    )

    assert "Your report has been sent" in page
    assert "You said someone may be at immediate risk" not in page
    assert len(reports_listed(officer_client(app, alice))) == 1


def test_the_form_marks_each_required_question_with_the_words_the_server_would_use(client):
    page = client.get("/report").get_data(as_text=True)

    required = re.findall(r'<div class="field[^"]*" data-required="([^"]*)">', page)
    assert required == [
        "Choose what your concern is about.",
        "Tell us what happened.",
        "Tell us whether someone may be at immediate risk.",
        "Tell us whether you have raised this before.",
    ]


# --- files across a page sent back --------------------------------------------------------


def hidden_values(page: str, name: str) -> list[str]:
    fields = re.findall(rf'<input type="hidden" name="{name}" value="([^"]*)">', page)
    return [html_lib.unescape(value) for value in fields]


def _send_back_with_files(client: FlaskClient, **fields: object) -> str:
    """Send the form with two files and a mistake (or immediate risk): it comes back."""
    photos = [(io.BytesIO(b"photo one"), "ward-round.jpg"), (io.BytesIO(b"photo two"), "rota <week 3>.pdf")]
    response = form_post(
        client, "/report", {**REPORT, "attachments": photos, **fields}, content_type="multipart/form-data"
    )
    return response.get_data(as_text=True)


def test_files_dropped_by_a_sent_back_form_are_named_and_must_be_chosen_again_or_left_out(client, app, alice):
    page = _send_back_with_files(client, what_happened="")

    notice = text_of(page[page.index('id="files-not-kept"') : page.index("<h1>")])
    assert "Your files have not been kept" in notice
    assert "ward-round.jpg" in notice and "rota <week 3>.pdf" in notice
    step_3 = text_of(page[page.index('id="step-3"') : page.index('id="step-4"')])
    assert "Not kept when this page came back: ward-round.jpg, rota <week 3>.pdf." in step_3
    assert "Send my report without these files" in step_3
    assert hidden_values(page, "dropped_files") == ["ward-round.jpg", "rota <week 3>.pdf"]

    # Corrected and sent again, without the files and without saying so: not sent.
    corrected = {
        **REPORT,
        "csrf_token": csrf_token(page),
        "dropped_files": hidden_values(page, "dropped_files"),
    }
    refused = client.post("/report", data=corrected, content_type="multipart/form-data")
    assert refused.status_code == 422
    refused_page = refused.get_data(as_text=True)
    assert "These files have not been sent: ward-round.jpg, rota <week 3>.pdf." in text_of(refused_page)
    assert "Your report has been sent" not in refused_page
    assert reports_listed(officer_client(app, alice)) == []

    # One chosen again: the other is still named.
    again = {**corrected, "attachments": [(io.BytesIO(b"photo one"), "ward-round.jpg")]}
    partly = client.post("/report", data=again, content_type="multipart/form-data").get_data(as_text=True)
    assert "These files have not been sent: rota <week 3>.pdf." in text_of(partly)

    # Left out on purpose: sent.
    without = {**corrected, "csrf_token": csrf_token(partly), "send_without_files": "y"}
    sent = client.post("/report", data=without, content_type="multipart/form-data")
    assert "Your report has been sent" in sent.get_data(as_text=True)


def test_after_the_emergency_page_the_report_goes_with_its_files_chosen_again(client, app, alice):
    page = _send_back_with_files(client, immediate_risk="yes")

    assert "You said someone may be at immediate risk" in text_of(page)
    assert "ward-round.jpg" in text_of(page[: page.index("<h1>")])
    urgent = page[page.index("notice--urgent") : page.index('id="files-not-kept"')]
    assert "Send my report</button>" not in urgent, "no shortcut that would send without the files"

    chosen = [(io.BytesIO(b"photo one"), "ward-round.jpg"), (io.BytesIO(b"photo two"), "rota <week 3>.pdf")]
    resent = {
        **REPORT,
        "immediate_risk": "yes",
        "emergency_seen": "y",
        "csrf_token": csrf_token(page),
        "dropped_files": hidden_values(page, "dropped_files"),
        "attachments": chosen,
    }
    sent = client.post("/report", data=resent, content_type="multipart/form-data")

    assert sent.status_code == 200
    receipt = text_of(sent.get_data(as_text=True))
    assert "ward-round.jpg" in receipt and "rota <week 3>.pdf" in receipt


def test_a_file_dropped_from_a_message_sent_back_is_named_and_not_left_behind_unasked(client, app, alice):
    reporter = open_case(app, submit_report(client))
    page = reporter.get("/follow-up/case").get_data(as_text=True)
    too_long = "x" * 20_001

    back = reporter.post(
        "/follow-up/case",
        data={
            "csrf_token": csrf_token(page),
            "body": too_long,
            "attachments": [(io.BytesIO(b"rota"), "rota.pdf")],
        },
    ).get_data(as_text=True)

    reply_form = text_of(back[back.index('action="/follow-up/case"') :])
    assert "Not kept when this page came back: rota.pdf." in reply_form
    assert hidden_values(back, "dropped_files") == ["rota.pdf"]
    resent = {"csrf_token": csrf_token(back), "body": "Shorter.", "dropped_files": ["rota.pdf"]}
    refused = reporter.post("/follow-up/case", data=resent)
    assert refused.status_code == 422
    assert "These files have not been sent: rota.pdf." in text_of(refused.get_data(as_text=True))
    sent = reporter.post("/follow-up/case", data={**resent, "send_without_files": "y"})
    assert sent.status_code == 303


# --- excluding officers ----------------------------------------------------------


def test_an_excluded_officer_cannot_see_or_open_the_report(client, app, alice, bob):
    submit_report(client, excluded_officers=[bob.public_id])

    alice_client = officer_client(app, alice)
    (report_id,) = reports_listed(alice_client)
    alice_page = text_of(alice_client.get(f"/officer/reports/{report_id}").get_data(as_text=True))
    assert "The reporter asked that Bob Officer should not see this report." in alice_page

    bob_client = officer_client(app, bob)
    assert reports_listed(bob_client) == []
    assert "There are no reports for you yet." in bob_client.get("/officer/").get_data(as_text=True)
    hidden = bob_client.get(f"/officer/reports/{report_id}")
    assert hidden.status_code == 404
    unknown = bob_client.get(f"/officer/reports/{secrets.token_hex(16)}")
    assert hidden.get_data(as_text=True) == unknown.get_data(as_text=True), "a 404 must not hint it exists"
    response = form_post(
        bob_client, "/officer/", {"status": "closed"}, action=f"/officer/reports/{report_id}/status"
    )
    assert response.status_code == 404
    response = form_post(
        bob_client, "/officer/", {"body": "Who are you?"}, action=f"/officer/reports/{report_id}/messages"
    )
    assert response.status_code == 404


def test_a_report_nobody_excluded_reaches_every_officer(client, app, alice, bob):
    submit_report(client)

    assert len(reports_listed(officer_client(app, alice))) == 1
    assert len(reports_listed(officer_client(app, bob))) == 1
    page = officer_client(app, alice).get(f"/officer/reports/{reports_listed(officer_client(app, alice))[0]}")
    assert "should not see this report" not in page.get_data(as_text=True)


def test_excluding_every_officer_is_refused_and_keeps_the_text(client, app, alice, bob):
    data = {
        **REPORT,
        "what_happened": "Both managers sign off records they have not read.",
        "excluded_officers": [alice.public_id, bob.public_id],
    }

    response = form_post(client, "/report", data, content_type="multipart/form-data")

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "At least one officer must be able to read your report." in text_of(page)
    assert textarea(page, "what_happened") == "Both managers sign off records they have not read."
    assert re.search(rf'value="{alice.public_id}" checked', page)
    assert reports_listed(officer_client(app, alice)) == []
    assert reports_listed(officer_client(app, bob)) == []


# --- coming back with the receipt ----------------------------------------------------


def test_a_receipt_works_in_lower_case_with_spaces_and_without_separators(client, app, alice):
    receipt = submit_report(client)

    for typed in (
        receipt,
        receipt.lower(),
        receipt.replace("-", " "),
        " " + receipt.replace("-", "  ").lower() + " ",
        receipt.replace("-", ""),
    ):
        reporter = app.test_client()
        response = follow_up(reporter, typed)
        assert response.status_code == 303, typed
        assert response.headers["Location"].endswith("/follow-up/case")
        case = reporter.get("/follow-up/case")
        assert case.status_code == 200, typed
        assert "Your report" in case.get_data(as_text=True)


def test_a_receipt_typed_with_letters_for_look_alike_digits_works(client, app, alice):
    receipts = [submit_report(client) for _ in range(3)]
    while not any("0" in r for r in receipts) or not any("1" in r for r in receipts):
        receipts.append(submit_report(client))
        assert len(receipts) < 200, "the receipts never contained 0 and 1"
    with_zero = next(r for r in receipts if "0" in r)
    with_one = next(r for r in receipts if "1" in r)

    for typed in (
        with_zero.replace("0", "O"),
        with_zero.replace("0", "o"),
        with_one.replace("1", "I"),
        with_one.replace("1", "l"),
    ):
        reporter = app.test_client()
        assert follow_up(reporter, typed).status_code == 303, typed
        assert reporter.get("/follow-up/case").status_code == 200


def test_unknown_and_malformed_receipts_get_one_and_the_same_answer(client, app, alice):
    receipt = submit_report(client)
    unknown = random_receipt()
    while unknown == receipt:
        unknown = random_receipt()
    one_wrong = receipt[:-1] + ("A" if receipt[-1] != "A" else "B")
    attempts = [unknown, one_wrong, "hello", receipt.replace("-", "")[:15], receipt.replace("-", "") + "A"]

    answers = []
    for typed in attempts:
        response = follow_up(app.test_client(), typed)
        assert response.status_code == 422, typed
        answers.append(field_errors(response.get_data(as_text=True)))

    assert answers[0] == [
        "Error: We could not find a report with that receipt code. Check it and try again; codes are "
        "16 letters and numbers, and capitals, spaces and dashes do not matter."
    ]
    assert all(answer == answers[0] for answer in answers), answers


def test_an_empty_receipt_asks_for_one(client, app, alice):
    # An empty box cannot reveal whether a report exists, so it may say what is missing.
    response = follow_up(app.test_client(), "")

    assert response.status_code == 422
    assert field_errors(response.get_data(as_text=True)) == ["Error: Enter your receipt code."]


def test_the_case_page_needs_a_receipt_first(client, alice):
    submit_report(client)

    response = client.get("/follow-up/case")
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/follow-up")
    assert "Your report" not in response.get_data(as_text=True)
    # A message sent without a case open goes nowhere: it comes back on the receipt page.
    page = client.post("/follow-up/case", data={"body": "hi"}).get_data(as_text=True)
    assert "Check on your report" in text_of(page)
    assert textarea(page, "draft") == "hi"
    assert "Your report" not in page


def test_the_session_cookie_changes_when_the_receipt_is_accepted(client, app, alice):
    receipt = submit_report(client)
    reporter = app.test_client()
    page = reporter.get("/follow-up").get_data(as_text=True)
    before = cookie_value(reporter)
    assert before

    response = reporter.post("/follow-up", data={"csrf_token": csrf_token(page), "receipt": receipt})

    assert response.status_code == 303
    after = cookie_value(reporter)
    assert after and after != before
    planted = app.test_client()
    planted.set_cookie(COOKIE, before)
    assert planted.get("/follow-up/case").status_code == 303


def test_leave_ends_the_reporter_session_for_good(client, app, alice):
    receipt = submit_report(client)
    reporter = open_case(app, receipt)
    case = reporter.get("/follow-up/case")
    assert case.status_code == 200
    kept = cookie_value(reporter)

    response = reporter.post("/follow-up/leave", data={"csrf_token": csrf_token(case.get_data(as_text=True))})

    assert response.status_code == 303
    assert response.headers["Location"].endswith("/")
    after = reporter.get("/follow-up/case")
    assert after.status_code == 303
    assert after.headers["Location"].endswith("/follow-up")
    replay = app.test_client()
    replay.set_cookie(COOKIE, kept)
    assert replay.get("/follow-up/case").status_code == 303


def test_a_reporter_session_idles_out_after_twenty_minutes(client, app, alice):
    reporter = open_case(app, submit_report(client))

    pass_time(app, dt.timedelta(minutes=10))
    assert reporter.get("/follow-up/case").status_code == 200
    pass_time(app, dt.timedelta(minutes=10 + 21))
    response = reporter.get("/follow-up/case")

    assert response.status_code == 303
    assert response.headers["Location"].endswith("/follow-up")


def test_a_message_written_past_the_idle_limit_comes_back_to_be_sent_after_the_receipt(client, app, alice):
    receipt = submit_report(client)
    reporter = open_case(app, receipt)
    case_page = reporter.get("/follow-up/case").get_data(as_text=True)
    typed = "The rota for March was changed after the audit.\nAsk the team manager."

    pass_time(app, dt.timedelta(minutes=31))
    ended = reporter.post("/follow-up/case", data={"csrf_token": csrf_token(case_page), "body": typed})

    page = ended.get_data(as_text=True)
    assert ended.status_code == 200
    assert "Your message has not been sent yet" in text_of(page)
    assert textarea(page, "draft") == typed
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    assert "The rota for March" not in officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)

    back = reporter.post(
        "/follow-up", data={"csrf_token": csrf_token(page), "receipt": receipt, "draft": typed}
    )
    assert back.status_code == 303
    restored = reporter.get(back.headers["Location"]).get_data(as_text=True)
    assert textarea(restored, "body") == typed
    assert "It has not been sent yet" in text_of(restored)
    assert textarea(reporter.get("/follow-up/case").get_data(as_text=True), "body") == "", "offered once"

    sent = reporter.post("/follow-up/case", data={"csrf_token": csrf_token(restored), "body": typed})
    assert sent.status_code == 303
    assert "The rota for March was changed" in officer.get(f"/officer/reports/{report_id}").get_data(
        as_text=True
    )


# --- the dialogue --------------------------------------------------------------------


def test_reporter_replies_with_text_and_with_a_file_and_the_officer_gets_both(client, app, alice):
    reporter = open_case(app, submit_report(client))

    sent = form_post(
        reporter,
        "/follow-up/case",
        {"body": "It was the east team, on the Tuesday."},
        content_type="multipart/form-data",
    )
    assert sent.status_code == 303
    assert sent.headers["Location"].endswith("/follow-up/case?sent=1")
    page = text_of(reporter.get("/follow-up/case?sent=1").get_data(as_text=True))
    assert "Your message has been sent." in page
    assert "It was the east team, on the Tuesday." in page

    rota = b"%PDF-1.4 rota for March"
    sent = form_post(
        reporter,
        "/follow-up/case",
        {"body": "", "attachments": [(io.BytesIO(rota), "rota.pdf")]},
        content_type="multipart/form-data",
    )
    assert sent.status_code == 303
    assert "rota.pdf" in text_of(reporter.get("/follow-up/case").get_data(as_text=True))

    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    case = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    assert "It was the east team, on the Tuesday." in text_of(case)
    link = re.search(r'href="([^"]+/attachments/[0-9a-f]+)"[^>]*>rota\.pdf<', case)
    assert link, "the officer should see the reporter's file"
    assert officer.get(link.group(1)).data == rota


def test_a_reply_with_neither_text_nor_file_is_refused(client, app, alice):
    reporter = open_case(app, submit_report(client))

    response = form_post(reporter, "/follow-up/case", {"body": ""}, content_type="multipart/form-data")

    assert response.status_code == 422
    assert "Write a message or choose a file to send." in text_of(response.get_data(as_text=True))
    officer = officer_client(app, alice)
    assert "New message" not in officer.get("/officer/").get_data(as_text=True)


def test_officer_sees_a_new_message_flag_that_clears_once_opened(client, app, alice):
    receipt = submit_report(client)
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    officer.get(f"/officer/reports/{report_id}")
    assert "New message" not in officer.get("/officer/").get_data(as_text=True)

    reporter = open_case(app, receipt)
    form_post(reporter, "/follow-up/case", {"body": "One more thing."}, content_type="multipart/form-data")

    assert "New message" in officer.get("/officer/").get_data(as_text=True)
    assert "One more thing." in officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    assert "New message" not in officer.get("/officer/").get_data(as_text=True)


def test_officer_reply_reaches_the_reporter_without_the_officer_name(client, app, alice):
    reporter = open_case(app, submit_report(client))
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)

    response = form_post(
        officer,
        f"/officer/reports/{report_id}",
        {"body": "Thank you. Can you tell us the month?"},
        action=f"/officer/reports/{report_id}/messages",
    )

    assert response.status_code == 303
    page = text_of(reporter.get("/follow-up/case").get_data(as_text=True))
    assert "Thank you. Can you tell us the month?" in page
    assert "An officer," in page
    assert "Alice" not in page


# --- status --------------------------------------------------------------------------


def test_reporter_sees_acknowledgement_and_that_the_report_was_read(client, app, alice):
    receipt = submit_report(client)
    today = runtime_of(app).clock.today()
    reporter = open_case(app, receipt)
    before = text_of(reporter.get("/follow-up/case").get_data(as_text=True))
    assert "Received, waiting to be looked at" in before
    assert "Read by an officer Not yet" in before

    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)
    response = form_post(
        officer,
        f"/officer/reports/{report_id}",
        {"status": "acknowledged"},
        action=f"/officer/reports/{report_id}/status",
    )
    assert response.status_code == 303

    after = text_of(reporter.get("/follow-up/case").get_data(as_text=True))
    assert "Acknowledged by an officer" in after
    assert f"Read by an officer Yes, on {day(today)}" in after
    assert f"Feedback due by {day(today + relativedelta(months=3))}" in after


def test_a_head_request_for_the_form_is_not_taken_for_a_submission(client):
    response = client.head("/report")
    assert response.status_code == 200


def test_the_printed_receipt_gives_the_published_address_whatever_the_host_header(client, alice):
    forged = {"Host": "evil.example"}
    token = csrf_token(client.get("/report", headers=forged).get_data(as_text=True))
    data = {
        "csrf_token": token,
        "category": "other",
        "what_happened": "x",
        "immediate_risk": "no",
        "raised_before": "no",
    }
    page = client.post("/report", data=data, headers=forged).get_data(as_text=True)
    assert "Come back at: http://127.0.0.1:5000/follow-up" in page
    assert "evil.example" not in page


def test_a_reporter_whose_case_was_deleted_is_sent_back_with_a_plain_word(client, app, alice):
    from sqlalchemy import delete

    from whistle.models import Report

    receipt = submit_report(client)
    assert follow_up(client, receipt).status_code == 303
    with runtime_of(app).session_factory() as db, db.begin():
        db.execute(delete(Report))
    response = client.get("/follow-up/case")
    assert response.status_code == 303 and response.headers["Location"].endswith("/follow-up?gone=1")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "deleted" in page and "no longer opens anything" in page
    # The session is over: the case page sends them to the receipt form.
    assert client.get("/follow-up/case").headers["Location"].endswith("/follow-up")


# --- the timeline tells the truth in every state --------------------------------------------


def on_case(officer: FlaskClient, report_id: str, action: str, data: dict[str, str]) -> None:
    """An officer sends one of the case page's forms."""
    page = f"/officer/reports/{report_id}"
    response = form_post(officer, page, data, action=f"{page}/{action}")
    assert response.status_code == 303, response.get_data(as_text=True)


def timeline_of(page: str) -> list[str]:
    """Each step of the reporter's timeline as it reads, after the hidden Done/Next/Later."""
    steps = re.findall(r'<li class="timeline-step[^>]*>(.*?)</li>', page, re.S)
    return [text_of(re.sub(r'<span class="visually-hidden">[^<]*</span>', "", step)) for step in steps]


def test_a_first_reply_acknowledges_the_report_and_the_timeline_agrees(client, app, alice):
    reporter = open_case(app, submit_report(client))
    today = runtime_of(app).clock.today()
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)

    on_case(officer, report_id, "messages", {"body": "Thank you. We are looking into it."})

    page = reporter.get("/follow-up/case").get_data(as_text=True)
    lead = text_of(re.search(r'<p class="lead">(.*?)</p>', page, re.S).group(1))
    assert lead.startswith("Acknowledged by an officer"), lead
    steps = timeline_of(page)
    assert f"Acknowledged Yes, on {day(today)}" in steps
    assert any(step.startswith("Answered Yes.") for step in steps)
    assert "Not yet" not in " ".join(steps)
    current = re.search(r'<li class="timeline-step timeline-step--current"[^>]*>(.*?)</li>', page, re.S)
    assert text_of(current.group(1)).startswith(
        f"Next: Feedback due by {day(today + relativedelta(months=3))}"
    )
    assert "Acknowledged" in text_of(officer.get(f"/officer/reports/{report_id}").get_data(as_text=True))


def test_a_reply_marked_as_the_feedback_ends_feedback_due_for_the_reporter(client, app, alice):
    reporter = open_case(app, submit_report(client))
    today = runtime_of(app).clock.today()
    officer = officer_client(app, alice)
    (report_id,) = reports_listed(officer)

    on_case(officer, report_id, "messages", {"body": "Here is what we have done.", "is_feedback": "y"})

    page = reporter.get("/follow-up/case").get_data(as_text=True)
    steps = timeline_of(page)
    assert f"Feedback given Given on {day(today)}." in steps
    assert "Feedback due by" not in text_of(page)
    assert 'aria-current="step"' not in page  # every step is done


def test_a_report_keeps_the_deadlines_it_was_given_when_the_periods_change(client, app, alice):
    today = runtime_of(app).clock.today()
    acknowledge_by, feedback_by = (
        today + dt.timedelta(days=7),
        today + dt.timedelta(days=7) + relativedelta(months=3),
    )
    reporter = open_case(app, submit_report(client))
    admin = officer_client(app, alice)
    periods = {"organisation_name": "Northshire Council", "acknowledge_days": "2", "feedback_months": "1"}
    changed = form_post(admin, "/admin/settings", {**periods, "retention_months": "12"})
    assert changed.status_code == 303, changed.get_data(as_text=True)

    before = text_of(reporter.get("/follow-up/case").get_data(as_text=True))
    assert f"An officer should acknowledge your report by {day(acknowledge_by)}." in before
    assert f"Feedback due by {day(feedback_by)}" in before

    (report_id,) = reports_listed(admin)
    on_case(admin, report_id, "status", {"status": "acknowledged"})
    after = text_of(reporter.get("/follow-up/case").get_data(as_text=True))
    # Three months from acknowledgement, the period the report was given; not the new one month.
    assert f"Feedback due by {day(today + relativedelta(months=3))}" in after


EXIT_LINK = '<a class="exit-link" href="https://www.bbc.co.uk/weather" rel="noreferrer">Exit this page</a>'


def test_every_reporter_page_has_a_quick_exit_that_needs_no_javascript(client, alice):
    for path in ("/", "/report", "/follow-up"):
        page = client.get(path).get_data(as_text=True)
        assert EXIT_LINK in page, path
        assert "clear your browsing history" in page


def test_a_reporter_can_read_again_what_they_sent(client, alice):
    receipt = submit_report(client, what_happened="The night rota leaves one nurse for 28 beds.")
    assert follow_up(client, receipt).status_code == 303
    page = client.get("/follow-up/case").get_data(as_text=True)
    assert "Read what you sent" in page
    assert "The night rota leaves one nurse for 28 beds." in page
    assert "Since the spring, in the east locality team" in page
