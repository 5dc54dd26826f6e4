"""The whole journey: a reporter raises a concern, an officer reads and answers, the reporter comes back."""

from __future__ import annotations

import io
import re

from tests.conftest import follow_up, form_post, login, reports_listed, submit_report


def test_reporter_and_officer_journey(client, app, alice):
    landing = client.get("/")
    assert landing.status_code == 200
    assert "Alice Officer" in landing.get_data(as_text=True)
    assert "999" in landing.get_data(as_text=True)
    assert "Set-Cookie" not in landing.headers

    receipt = submit_report(client, attachments=[(io.BytesIO(b"%PDF-1.4 minutes"), "minutes.pdf")])

    officer = app.test_client()
    assert login(officer, alice).status_code == 303
    listed = reports_listed(officer)
    assert len(listed) == 1
    page = officer.get(f"/officer/reports/{listed[0]}").get_data(as_text=True)
    assert "Caseloads are far beyond safe limits" in page
    assert "minutes.pdf" in page

    attachment = re.search(r'href="(/officer/reports/[0-9a-f]+/attachments/[0-9a-f]+)"', page).group(1)
    download = officer.get(attachment)
    assert download.data == b"%PDF-1.4 minutes"
    assert download.headers["Content-Disposition"].startswith("attachment")

    response = form_post(
        officer,
        f"/officer/reports/{listed[0]}",
        {"body": "Thank you. Which team?"},
        action=f"/officer/reports/{listed[0]}/messages",
    )
    assert response.status_code == 303

    reporter = app.test_client()
    response = follow_up(reporter, receipt.lower().replace("-", " "))
    assert response.status_code == 303
    case = reporter.get("/follow-up/case").get_data(as_text=True)
    assert "Thank you. Which team?" in case
    assert "Read by an officer" in case
