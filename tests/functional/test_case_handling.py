"""Case handling through the officer's pages, as officers and the reporter see it.

The forms of the case page (status, closing, priority, lead, triage, notes, access),
the list's views, sorts and counts, the case's own record, and an officer the
reporter excluded, who must find no trace of the case anywhere. CSRF stays on: each
form is posted with the token of the page it came from, as a browser would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html as html_lib
import io
import re
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import (
    Instance,
    OfficerAccount,
    add_officer,
    csrf_token,
    follow_up,
    login,
    runtime_of,
    submit_report,
)
from whistle import create_app
from whistle.config import Settings
from whistle.models import AuditEvent, KeyWrap, Note, Report
from whistle.services.context import Clock

WHAT_HAPPENED = "Home visits to children on the east team's caseload have been missed for weeks."
SUMMARY = "We found the caseloads unsafe; two posts were added and visits are back on schedule."
NOTE = "Internal: check the duty rota for March before replying."
ACTIONS = "Supervision moved to the west team manager; HR told to watch for reprisals."


# --- helpers -----------------------------------------------------------------


def text_of(page: str) -> str:
    """The words a person reads on a page: tags dropped, entities decoded, spaces collapsed."""
    inline = re.sub(r"</?(?:strong|em|span|a|abbr|code)\b[^>]*>", "", page)
    words = re.sub(r"<[^>]+>", " ", inline)
    return " ".join(html_lib.unescape(words).split())


def officer_client(app: Flask, account: OfficerAccount) -> FlaskClient:
    officer = app.test_client()
    response = login(officer, account)
    assert response.status_code == 303, response.get_data(as_text=True)
    return officer


@dataclasses.dataclass(frozen=True)
class ShiftedClock(Clock):
    """The real clock, moved by ``offset``."""

    offset: dt.timedelta = dt.timedelta(0)

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


def set_clock(app: Flask, offset: dt.timedelta) -> None:
    """Move the app's clock to ``offset`` from the real time."""
    rt = runtime_of(app)
    moved = dataclasses.replace(rt, clock=ShiftedClock(rt.clock.timezone, offset))
    app.extensions["whistle"] = moved
    app.session_interface.runtime = moved  # type: ignore[attr-defined]


def today(app: Flask) -> dt.date:
    return runtime_of(app).clock.today()


def day(value: dt.date) -> str:
    return f"{value.day} {value.strftime('%b %Y')}"


def report_ids(app: Flask) -> set[str]:
    """The public ids of every report (the reporter is never shown one)."""
    with runtime_of(app).session_factory() as db:
        return set(db.scalars(select(Report.public_id)))


def report_submitted(app: Flask, days_ago: int = 0, **fields: object) -> tuple[str, str]:
    """Submit a report as a reporter would, ``days_ago`` days back; its id and receipt."""
    before = report_ids(app)
    if days_ago:
        set_clock(app, -dt.timedelta(days=days_ago))
    try:
        receipt = submit_report(app.test_client(), **{"what_happened": WHAT_HAPPENED, **fields})
    finally:
        set_clock(app, dt.timedelta(0))
    (new,) = report_ids(app) - before
    return new, receipt


def case_path(report_id: str, action: str = "") -> str:
    return f"/officer/reports/{report_id}" + (f"/{action}" if action else "")


def post_on_case(client: FlaskClient, report_id: str, action: str, data: dict[str, object]):
    """Post one of the case page's forms with the page's CSRF token."""
    page = client.get(case_path(report_id))
    assert page.status_code == 200, page.status_code
    token = csrf_token(page.get_data(as_text=True))
    return client.post(case_path(report_id, action), data={"csrf_token": token, **data})


def case_text(client: FlaskClient, report_id: str) -> str:
    response = client.get(case_path(report_id))
    assert response.status_code == 200, response.status_code
    return text_of(response.get_data(as_text=True))


def reporter_text(app: Flask, receipt: str) -> str:
    reporter = app.test_client()
    assert follow_up(reporter, receipt).status_code == 303
    response = reporter.get("/follow-up/case")
    assert response.status_code == 200
    return text_of(response.get_data(as_text=True))


def listed(client: FlaskClient, query: str = "") -> list[str]:
    html = client.get(f"/officer/{query}").get_data(as_text=True)
    return re.findall(r'href="/officer/reports/([0-9a-f]{32})"', html)


def view_counts(page: str) -> dict[str, int]:
    """The count shown beside each view's link."""
    found = re.findall(
        r'href="/officer/\?view=(\w+)[^"]*"[^>]*>[^<]*<span class="count[^"]*">(\d+)</span>', page
    )
    return {view: int(count) for view, count in found}


def field_errors(page: str) -> list[str]:
    return [text_of(error) for error in re.findall(r'<p class="field-error"[^>]*>(.*?)</p>', page, re.S)]


def selected(page: str, name: str) -> str | None:
    """The value chosen in a select on the page."""
    select_html = re.search(rf'<select[^>]*name="{name}"[^>]*>(.*?)</select>', page, re.S)
    assert select_html, f"no select named {name}"
    option = re.search(
        r'<option\b[^>]*\bselected\b[^>]*value="([^"]*)"|<option\b[^>]*value="([^"]*)"[^>]*\bselected\b',
        select_html.group(1),
    )
    if option is None:
        return None
    return option.group(1) if option.group(1) is not None else option.group(2)


def audit_entries(app: Flask, report_id: str) -> list[tuple[str, str]]:
    rt = runtime_of(app)
    with rt.session_factory() as db:
        rows = db.execute(
            select(AuditEvent.kind, AuditEvent.actor)
            .where(AuditEvent.report == report_id)
            .order_by(AuditEvent.id)
        ).all()
    return [(kind, actor) for kind, actor in rows]


# --- status and closing ---------------------------------------------------------


def test_a_status_change_is_shown_to_the_officer_and_in_plain_words_to_the_reporter(app, alice):
    report_id, receipt = report_submitted(app)
    officer = officer_client(app, alice)

    response = post_on_case(officer, report_id, "status", {"status": "investigating"})

    assert response.status_code == 303
    assert response.headers["Location"].endswith(case_path(report_id))
    page = officer.get(case_path(report_id)).get_data(as_text=True)
    assert selected(page, "status") == "investigating"
    text = text_of(page)
    assert f"Investigating since {day(today(app))}" in text
    assert "status changed (investigating)" in text
    assert f"Your concern is being looked into (since {today(app).day} {today(app).strftime('%B %Y')})" in (
        reporter_text(app, receipt)
    )


def test_closed_is_not_a_status_to_choose(app, alice):
    report_id, _receipt = report_submitted(app)
    officer = officer_client(app, alice)

    response = post_on_case(officer, report_id, "status", {"status": "closed"})

    assert response.status_code == 422
    assert "New since" in text_of(response.get_data(as_text=True))
    assert ("status_changed", alice.public_id) not in audit_entries(app, report_id)


def test_closing_with_the_summary_shared_shows_it_to_the_reporter(app, alice):
    report_id, receipt = report_submitted(app)
    officer = officer_client(app, alice)

    response = post_on_case(
        officer, report_id, "close", {"outcome": "substantiated", "summary": SUMMARY, "share": "y"}
    )

    assert response.status_code == 303
    page = case_text(officer, report_id)
    assert SUMMARY in page
    assert "Shared with the reporter." in page
    assert "case closed (substantiated)" in page
    reporter = reporter_text(app, receipt)
    assert "How your report ended" in reporter
    assert "Your concern was found to be substantiated." in reporter
    assert SUMMARY in reporter
    assert "Closed" in reporter


def test_closing_without_sharing_keeps_the_summary_from_the_reporter(app, alice):
    report_id, receipt = report_submitted(app)
    officer = officer_client(app, alice)

    response = post_on_case(officer, report_id, "close", {"outcome": "not_substantiated", "summary": SUMMARY})

    assert response.status_code == 303
    page = case_text(officer, report_id)
    assert SUMMARY in page
    assert "Not shared with the reporter." in page
    reporter = reporter_text(app, receipt)
    assert "Closed" in reporter
    assert SUMMARY not in reporter
    assert "How your report ended" not in reporter
    assert "not substantiated" not in reporter.lower()


@pytest.mark.parametrize(
    "summary",
    [
        pytest.param("", id="empty"),
        pytest.param("   \n ", id="blank"),
        pytest.param("x" * 20_001, id="too-long"),
    ],
)
def test_a_close_without_a_proper_summary_is_refused_and_keeps_what_was_typed(app, alice, summary):
    report_id, receipt = report_submitted(app)
    officer = officer_client(app, alice)

    response = post_on_case(
        officer, report_id, "close", {"outcome": "referred", "summary": summary, "share": "y"}
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert selected(page, "outcome") == "referred"
    assert re.search(r'<input[^>]*\bchecked\b[^>]*name="share"|<input[^>]*name="share"[^>]*\bchecked\b', page)
    if summary.strip():
        assert summary in page
        assert field_errors(page) == ["Error: Please keep this under 20,000 characters."]
    else:
        assert field_errors(page) == ["Error: Write a closing summary."]
    assert "New since" in text_of(page)
    assert "Received, waiting to be looked at" in reporter_text(app, receipt)


# --- priority, lead officer, triage, notes -----------------------------------------


def test_priority_and_lead_officer_are_set_from_the_case_page(app, alice, bob):
    report_id, _receipt = report_submitted(app)
    officer = officer_client(app, alice)

    assert post_on_case(officer, report_id, "priority", {"priority": "high"}).status_code == 303
    assert post_on_case(officer, report_id, "assignee", {"assignee": bob.public_id}).status_code == 303

    page = officer.get(case_path(report_id)).get_data(as_text=True)
    assert selected(page, "priority") == "high"
    assert selected(page, "assignee") == bob.public_id
    assert "priority changed (high)" in text_of(page)
    assert listed(officer_client(app, bob), "?view=mine") == [report_id]
    listing = text_of(officer.get("/officer/").get_data(as_text=True))
    assert "High" in listing
    assert "Bob Officer" in listing

    assert post_on_case(officer, report_id, "assignee", {"assignee": ""}).status_code == 303
    assert selected(officer.get(case_path(report_id)).get_data(as_text=True), "assignee") == ""
    assert listed(officer_client(app, bob), "?view=mine") == []


def test_only_an_officer_who_can_read_the_case_can_lead_it(app, alice):
    carol = add_officer(app, "Carol Officer", "carol@example.org")
    report_id, _receipt = report_submitted(app, excluded_officers=[carol.public_id])
    officer = officer_client(app, alice)

    response = post_on_case(officer, report_id, "assignee", {"assignee": carol.public_id})

    assert response.status_code == 422
    assert "That officer cannot be chosen for this case." in text_of(response.get_data(as_text=True))
    assert officer_client(app, carol).get(case_path(report_id)).status_code == 404


def test_triage_is_kept_through_closing_and_never_shown_to_the_reporter(app, alice):
    report_id, receipt = report_submitted(app)
    officer = officer_client(app, alice)

    response = post_on_case(
        officer,
        report_id,
        "triage",
        {"category": "Staffing", "risk": "high", "protective_actions": ACTIONS},
    )
    assert response.status_code == 303
    post_on_case(officer, report_id, "close", {"outcome": "substantiated", "summary": SUMMARY, "share": "y"})

    page = officer.get(case_path(report_id)).get_data(as_text=True)
    assert selected(page, "risk") == "high"
    assert 'value="Staffing"' in page
    assert ACTIONS in html_lib.unescape(page)
    assert "triage updated (high)" in text_of(page)
    reporter = reporter_text(app, receipt)
    assert ACTIONS not in reporter
    assert "Staffing" not in reporter


def test_an_internal_note_is_shown_to_officers_and_never_to_the_reporter(app, alice, bob):
    report_id, receipt = report_submitted(app)
    officer = officer_client(app, alice)
    page = officer.get(case_path(report_id)).get_data(as_text=True)
    note_token = re.search(r'name="note-csrf_token" type="hidden" value="([^"]+)"', page)
    assert note_token, "the note form has its own prefixed CSRF field"

    response = officer.post(
        case_path(report_id, "notes"), data={"note-csrf_token": note_token.group(1), "note-body": NOTE}
    )

    assert response.status_code == 303
    for reader in (officer, officer_client(app, bob)):
        text = case_text(reader, report_id)
        assert re.search(r"Alice Officer, \d+ \w{3} \d{4} \d{2}:\d{2} " + re.escape(NOTE), text)
    assert "note added" in case_text(officer, report_id)
    reporter = reporter_text(app, receipt)
    assert NOTE not in reporter
    rt = runtime_of(app)
    with rt.session_factory() as db:
        (sealed,) = db.scalars(select(Note.body_sealed))
    assert NOTE.encode() not in sealed


def test_a_note_posted_without_its_prefix_is_refused(app, alice):
    report_id, _receipt = report_submitted(app)
    officer = officer_client(app, alice)
    page = officer.get(case_path(report_id)).get_data(as_text=True)
    token = re.search(r'name="note-csrf_token" type="hidden" value="([^"]+)"', page)
    assert token

    response = officer.post(
        case_path(report_id, "notes"), data={"note-csrf_token": token.group(1), "body": NOTE}
    )

    assert response.status_code == 422
    assert "Write the note first." in text_of(response.get_data(as_text=True))
    assert "No notes yet." in text_of(response.get_data(as_text=True))


def test_a_reply_marked_as_feedback_is_shown_as_given(app, alice):
    report_id, receipt = report_submitted(app)
    officer = officer_client(app, alice)

    response = post_on_case(
        officer, report_id, "messages", {"body": "Here is what we have done.", "is_feedback": "y"}
    )

    assert response.status_code == 303
    assert f"(given {day(today(app))})" in case_text(officer, report_id)
    assert "message sent (feedback)" in case_text(officer, report_id)
    assert "Here is what we have done." in reporter_text(app, receipt)


# --- access ----------------------------------------------------------------------------


def test_access_granted_lets_an_officer_open_the_case_and_revoked_takes_it_away(app, alice):
    report_id, _receipt = report_submitted(app)
    bob = add_officer(app, "Bob Officer", "bob@example.org")  # joined after the report arrived
    officer = officer_client(app, alice)
    colleague = officer_client(app, bob)
    assert colleague.get(case_path(report_id)).status_code == 404
    assert listed(colleague) == []

    granted = post_on_case(officer, report_id, "access", {"officer": bob.public_id})

    assert granted.status_code == 303
    assert WHAT_HAPPENED in case_text(colleague, report_id)
    assert listed(colleague) == [report_id]
    page = case_text(officer, report_id)
    assert "access granted" in page
    assert "Remove access for Bob Officer" in page

    revoked = post_on_case(officer, report_id, "access/revoke", {"officer": bob.public_id})

    assert revoked.status_code == 303
    assert colleague.get(case_path(report_id)).status_code == 404
    assert listed(colleague) == []
    assert view_counts(colleague.get("/officer/").get_data(as_text=True))["all"] == 0
    assert "access revoked" in case_text(officer, report_id)
    rt = runtime_of(app)
    with rt.session_factory() as db:
        assert db.scalar(select(func.count()).select_from(KeyWrap).where(KeyWrap.officer_id.isnot(None))) == 2


def test_an_officer_the_reporter_excluded_cannot_be_given_access(app, alice):
    carol = add_officer(app, "Carol Officer", "carol@example.org")
    report_id, _receipt = report_submitted(app, excluded_officers=[carol.public_id])
    officer = officer_client(app, alice)
    page = officer.get(case_path(report_id)).get_data(as_text=True)
    assert f'value="{carol.public_id}"' not in page, "she is not offered"

    response = post_on_case(officer, report_id, "access", {"officer": carol.public_id})

    assert response.status_code == 422
    assert "should not see the report" in text_of(response.get_data(as_text=True))
    assert officer_client(app, carol).get(case_path(report_id)).status_code == 404
    assert "access_granted" not in [kind for kind, _actor in audit_entries(app, report_id)]


def test_the_last_officer_with_access_cannot_be_removed(app, alice):
    report_id, _receipt = report_submitted(app)
    officer = officer_client(app, alice)
    assert "Remove access" not in case_text(officer, report_id), "no button is offered"

    response = post_on_case(officer, report_id, "access/revoke", {"officer": alice.public_id})

    assert response.status_code == 422
    assert "At least one officer must keep access to the case." in text_of(response.get_data(as_text=True))
    assert officer.get(case_path(report_id)).status_code == 200


# --- the list: views, counts and sorts -------------------------------------------------


@pytest.fixture
def caseload(app, alice, bob) -> dict[str, str]:
    """Four cases on chosen days: overdue, urgent, Alice's own, and a closed one."""
    overdue, _ = report_submitted(app, days_ago=40)
    urgent, _ = report_submitted(app, days_ago=3, immediate_risk="yes", emergency_seen="y")
    mine, _ = report_submitted(app, days_ago=1)
    closed, _ = report_submitted(app, days_ago=60)
    officer = officer_client(app, alice)
    post_on_case(officer, urgent, "priority", {"priority": "urgent"})
    post_on_case(officer, mine, "status", {"status": "acknowledged"})
    post_on_case(officer, mine, "assignee", {"assignee": alice.public_id})
    post_on_case(officer, closed, "close", {"outcome": "withdrawn", "summary": "Withdrawn."})
    return {"overdue": overdue, "urgent": urgent, "mine": mine, "closed": closed}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["mine", "urgent", "overdue", "closed"]),
        ("?view=all", ["mine", "urgent", "overdue", "closed"]),
        ("?view=new", ["urgent", "overdue"]),
        ("?view=mine", ["mine"]),
        ("?view=urgent", ["urgent"]),
        ("?view=due_soon", ["urgent"]),
        ("?view=overdue", ["overdue"]),
        # Soonest deadline still to meet first (the overdue one's was a month ago); then those with none.
        ("?sort=next_deadline", ["overdue", "urgent", "mine", "closed"]),
        ("?sort=priority", ["urgent", "mine", "overdue", "closed"]),
        ("?sort=received", ["mine", "urgent", "overdue", "closed"]),
        ("?view=new&sort=acknowledge_by", ["overdue", "urgent"]),
        ("?sort=status", ["urgent", "overdue", "mine", "closed"]),  # in the order of the workflow
        ("?view=new&sort=status", ["urgent", "overdue"]),
        ("?view=mine&sort=status&last=1", ["mine"]),
        ("?view=overdue&sort=status", ["overdue"]),
        # Unknown views and sorts fall back to all cases, newest first.
        ("?view=archive", ["mine", "urgent", "overdue", "closed"]),
        ("?view=NEW&sort=secret", ["mine", "urgent", "overdue", "closed"]),
        ("?view=&sort=", ["mine", "urgent", "overdue", "closed"]),
        ("?view=new&view=mine", ["urgent", "overdue"]),
    ],
)
def test_each_view_and_sort_lists_the_right_cases(app, alice, caseload, query, expected):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # show the page a browser would get
    officer = officer_client(app, alice)
    names = {public_id: name for name, public_id in caseload.items()}

    response = officer.get(f"/officer/{query}")

    assert response.status_code == 200
    ids = re.findall(r'href="/officer/reports/([0-9a-f]{32})"', response.get_data(as_text=True))
    assert [names[i] for i in ids] == expected


def test_the_counts_beside_each_view_are_the_officers_own(app, alice, bob, caseload):
    counts = {"all": 4, "new": 2, "mine": 1, "urgent": 1, "due_soon": 1, "overdue": 1}
    for query in ("", "?view=overdue", "?view=bogus&sort=nonsense"):
        page = officer_client(app, alice).get(f"/officer/{query}").get_data(as_text=True)
        assert view_counts(page) == counts, query
    # Bob leads nothing.
    assert view_counts(officer_client(app, bob).get("/officer/").get_data(as_text=True)) == {
        **counts,
        "mine": 0,
    }


def view_links(page: str) -> dict[str, str]:
    """Where each view's link leads."""
    found = re.findall(r'<a href="(/officer/\?view=(\w+)[^"]*)"[^>]*>[^<]*<span class="count', page)
    return {view: href.replace("&amp;", "&") for href, view in found}


def test_each_view_opens_in_its_own_order_unless_the_officer_chose_one(app, alice, caseload):
    officer = officer_client(app, alice)
    # From the list as it opens, each view's link leads to the view as it opens: the deadline
    # views sorted by the deadline, most at risk first, the others newest first.
    links = view_links(officer.get("/officer/").get_data(as_text=True))
    assert links["overdue"] == "/officer/?view=overdue"
    assert links["all"] == "/officer/?view=all"
    page = officer.get(links["due_soon"]).get_data(as_text=True)
    assert 'aria-sort="ascending">Next deadline' in page
    assert view_links(page)["all"] == "/officer/?view=all"
    # A sort the officer chose goes with them from view to view.
    links = view_links(officer.get("/officer/?view=all&sort=priority").get_data(as_text=True))
    assert links["overdue"] == "/officer/?view=overdue&sort=priority"
    links = view_links(officer.get("/officer/?view=overdue&sort=received").get_data(as_text=True))
    assert links["all"] == "/officer/?view=all&sort=received"


def list_rows(page: str) -> dict[str, list[str]]:
    """Each row of a case list, by case: the text of its cells, as a screen reader reads them."""
    page = re.sub(r'<span aria-hidden="true"[^>]*>[^<]*</span>', "", page)
    return {
        report_id: [text_of(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S)
        for report_id in re.findall(r"/officer/reports/([0-9a-f]{32})", row)
    }


def test_list_rows_flag_overdue_and_urgent_cases(app, alice, caseload):
    page = officer_client(app, alice).get("/officer/").get_data(as_text=True)
    rows = {report_id: " ".join(cells) for report_id, cells in list_rows(page).items()}
    assert "Overdue" in rows[caseload["overdue"]]
    assert "Urgent" in rows[caseload["urgent"]]
    assert "Due soon" in rows[caseload["urgent"]]
    assert "Overdue" not in rows[caseload["closed"]]
    assert "Due soon" not in rows[caseload["closed"]]
    assert "Alice Officer" in rows[caseload["mine"]]


def test_a_list_row_reads_the_case_s_day_priority_status_lead_labels_and_deadlines(app, alice, caseload):
    officer = officer_client(app, alice)
    mine = caseload["mine"]
    post_on_case(officer, mine, "labels", {"labels-new_label": "Staffing"})
    with app.extensions["whistle"].session_factory() as db:
        reports = {r.public_id: r for r in db.scalars(select(Report))}

    rows = list_rows(officer.get("/officer/").get_data(as_text=True))

    def day(report_id: str, field: str) -> str:
        date = getattr(reports[report_id], field)
        return f"{date.day} {date:%b %Y}"

    assert rows[mine] == [
        f"{day(mine, 'received_on')}, Normal, Acknowledged, lead Alice Officer",
        "Normal",
        "Acknowledged",
        "Alice Officer",
        "Staffing",
        day(mine, "feedback_by"),  # the next deadline: acknowledging is done
        "Done",
        day(mine, "feedback_by"),
        "No new message",
        f"Close the case received {day(mine, 'received_on')} as junk",
    ]
    # A case nobody leads, with no label and nothing acknowledged yet.
    overdue = caseload["overdue"]
    assert rows[overdue][0] == f"{day(overdue, 'received_on')}, Normal, New Not read"
    assert rows[overdue][2] == "New Overdue"
    assert rows[overdue][3:8] == [
        "No lead yet",
        "No labels",
        day(overdue, "acknowledge_by"),  # the next deadline
        day(overdue, "acknowledge_by"),
        day(overdue, "feedback_by"),
    ]


# --- the record of a case ---------------------------------------------------------------


def test_the_case_page_shows_a_record_of_who_did_what(app, alice):
    report_id, _receipt = report_submitted(app)
    officer = officer_client(app, alice)
    post_on_case(officer, report_id, "messages", {"body": "Thank you for raising this."})

    text = case_text(officer, report_id)

    record = text.split("Record of this case", 1)[1]
    # The day only: an officer's exact time is sealed for the organisation's recovery key.
    assert re.search(r"\d{1,2} \w{3} \d{4} report opened", record)
    assert not re.search(r"\d{2}:\d{2} report opened", record)
    assert "message sent" in record
    assert "Thank you for raising this." not in record, "the record names events, not content"
    assert [kind for kind, _actor in audit_entries(app, report_id)][:4] == [
        "report_opened",
        "message_sent",
        "status_changed",  # the first reply acknowledges the report
        "report_opened",
    ]
    assert {actor for _kind, actor in audit_entries(app, report_id)} == {alice.public_id}


@pytest.fixture
def tokyo_app(instance: Instance) -> Iterator[Flask]:
    app = create_app(Settings.load(instance.path, timezone="Asia/Tokyo"))
    app.config["TESTING"] = True
    yield app
    runtime_of(app).engine.dispose()


def test_note_times_are_in_the_organisations_time_zone(tokyo_app):
    app = tokyo_app
    alice = add_officer(app, "Alice Officer", "alice@example.org", admin=True)
    report_id, _receipt = report_submitted(app)
    officer = officer_client(app, alice)
    zone = ZoneInfo("Asia/Tokyo")
    before = dt.datetime.now(zone)
    page = officer.get(case_path(report_id)).get_data(as_text=True)
    token = re.search(r'name="note-csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    officer.post(case_path(report_id, "notes"), data={"note-csrf_token": token.group(1), "note-body": NOTE})

    text = case_text(officer, report_id)

    after = dt.datetime.now(zone)
    minutes = {f"{before:%H:%M}", f"{after:%H:%M}"}
    note = re.search(r"Alice Officer, \d+ \w{3} \d{4} (\d{2}:\d{2}) ", text)
    assert note
    assert note.group(1) in minutes


# --- an officer the reporter excluded ------------------------------------------------------


def test_an_excluded_officer_sees_no_count_no_row_and_no_case_route(app, alice):
    carol = add_officer(app, "Carol Officer", "carol@example.org")
    report_id, receipt = report_submitted(
        app,
        days_ago=30,
        immediate_risk="yes",
        emergency_seen="y",
        excluded_officers=[carol.public_id],
        attachments=[(io.BytesIO(b"minutes of the meeting"), "minutes.txt")],
    )
    officer = officer_client(app, alice)
    post_on_case(officer, report_id, "assignee", {"assignee": alice.public_id})
    alice_page = officer.get(case_path(report_id)).get_data(as_text=True)
    (download,) = re.findall(r'href="(/officer/reports/[0-9a-f]+/attachments/[0-9a-f]+)"', alice_page)
    before = audit_entries(app, report_id)
    excluded = officer_client(app, carol)

    for query in ("", "?view=new", "?view=mine", "?view=urgent", "?view=due_soon", "?view=overdue"):
        page = excluded.get(f"/officer/{query}").get_data(as_text=True)
        assert view_counts(page) == dict.fromkeys(["all", "new", "mine", "urgent", "due_soon", "overdue"], 0)
        assert report_id not in page
        for sort in ("received", "priority", "status"):
            assert report_id not in excluded.get(f"/officer/{query or '?'}&sort={sort}").get_data(
                as_text=True
            )

    token = csrf_token(excluded.get("/officer/").get_data(as_text=True))
    attempts = {
        "status": {"status": "investigating"},
        "close": {"outcome": "withdrawn", "summary": "Closed by Carol.", "share": "y"},
        "priority": {"priority": "low"},
        "assignee": {"assignee": carol.public_id},
        "triage": {"category": "Nothing", "risk": "low", "protective_actions": ""},
        "notes": {"note-csrf_token": token, "note-body": "Carol was here."},
        "messages": {"body": "Carol was here."},
        "access": {"officer": carol.public_id},
        "access/revoke": {"officer": alice.public_id},
    }
    assert excluded.get(case_path(report_id)).status_code == 404
    assert excluded.get(download).status_code == 404
    for action, data in attempts.items():
        response = excluded.post(case_path(report_id, action), data={"csrf_token": token, **data})
        assert response.status_code == 404, action
        assert WHAT_HAPPENED not in response.get_data(as_text=True)

    assert audit_entries(app, report_id) == before
    text = case_text(officer, report_id)
    assert "Carol was here." not in text
    assert "Closed by Carol." not in text
    assert "Urgent" in text
    assert "Received, waiting to be looked at" in reporter_text(app, receipt)


def test_immediate_risk_puts_nothing_in_clear_and_the_reader_is_asked_to_mark_it_urgent(app, alice):
    report_id, _receipt = report_submitted(app, immediate_risk="yes", emergency_seen="y")
    with runtime_of(app).session_factory() as db:
        assert db.scalar(select(Report.priority).where(Report.public_id == report_id)).value == "normal"
    officer = officer_client(app, alice)
    page = case_text(officer, report_id)
    assert "may be at immediate risk" in page and "Mark this case urgent" in page
    assert post_on_case(officer, report_id, "priority", {"priority": "urgent"}).status_code == 303
    assert "Mark this case urgent" not in case_text(officer, report_id)
    listed = officer.get("/officer/?view=urgent").get_data(as_text=True)
    assert report_id in listed
