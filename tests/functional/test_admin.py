"""Administration: officers, the audit log and settings, without reading what is not theirs."""

from __future__ import annotations

import re

from tests.conftest import add_officer, form_post, login, reports_listed, submit_report


def _admin(app, account):
    client = app.test_client()
    assert login(client, account).status_code == 303
    return client


def test_administration_is_for_administrators_only(app, alice, bob):
    anonymous = app.test_client()
    for path in ("/admin/", "/admin/audit", "/admin/settings"):
        response = anonymous.get(path)
        assert response.status_code == 303
        assert response.headers["Location"].endswith("/officer/login")
    officer = _admin(app, bob)  # bob is not an administrator
    for path in ("/admin/", "/admin/audit", "/admin/settings"):
        assert officer.get(path).status_code == 403
    response = form_post(officer, "/officer/", {"organisation_name": "Hijacked"}, action="/admin/settings")
    assert response.status_code == 403


def test_the_officer_list_counts_cases_without_naming_them(app, client, alice, bob):
    submit_report(client, excluded_officers=[bob.public_id])
    submit_report(client)
    page = _admin(app, alice).get("/admin/").get_data(as_text=True)
    rows = dict(
        re.findall(
            r"<td>([^<]+)</td>\s*<td>[^<]+@example.org</td>(?:\s*<td>[^<]*</td>){2}\s*<td>(\d+)</td>", page
        )
    )
    assert rows == {"Alice Officer": "2", "Bob Officer": "1"}
    assert "Caseloads are far beyond safe limits" not in page


def test_deactivating_an_officer_ends_their_session_at_once(app, alice, bob):
    bob_client = _admin(app, bob)
    assert bob_client.get("/officer/").status_code == 200
    admin = _admin(app, alice)
    response = form_post(admin, "/admin/", {"officer": bob.public_id}, action="/admin/officers/deactivate")
    assert response.status_code == 303
    assert bob_client.get("/officer/").status_code == 303
    assert login(app.test_client(), bob).status_code == 422
    form_post(admin, "/admin/", {"officer": bob.public_id}, action="/admin/officers/reactivate")
    assert login(app.test_client(), bob).status_code == 303


def test_an_administrator_cannot_deactivate_themselves(app, alice):
    admin = _admin(app, alice)
    response = form_post(admin, "/admin/", {"officer": alice.public_id}, action="/admin/officers/deactivate")
    assert response.status_code == 404
    assert admin.get("/officer/").status_code == 200


def test_the_audit_log_hides_cases_the_administrator_was_excluded_from(app, client, alice, bob):
    carol = add_officer(app, "Carol Admin", "carol@example.org", admin=True)
    submit_report(client, excluded_officers=[carol.public_id])
    reader = _admin(app, alice)
    (report_id,) = reports_listed(reader)
    reader.get(f"/officer/reports/{report_id}")
    alice_log = reader.get("/admin/audit").get_data(as_text=True)
    assert "report opened" in alice_log
    assert report_id[:8] in alice_log
    carol_log = _admin(app, carol).get("/admin/audit").get_data(as_text=True)
    assert "report opened" not in carol_log
    assert report_id[:8] not in carol_log
    assert "login" in carol_log  # the log itself is there, only that case is not


def test_settings_change_the_portal_and_are_audited_without_their_values(app, client, alice):
    admin = _admin(app, alice)
    data = {
        "organisation_name": "Southshire Trust",
        "landing_text": "Read our **policy** first. <script>alert(1)</script>",
        "guidance_text": "Call the [safeguarding line](tel:01234567890).",
        "acknowledge_days": "5",
        "feedback_months": "2",
        "retention_months": "24",
    }
    response = form_post(admin, "/admin/settings", data)
    assert response.status_code == 303
    landing = client.get("/").get_data(as_text=True)
    assert "Southshire Trust" in landing
    assert "<strong>policy</strong>" in landing
    assert "<script>alert(1)</script>" not in landing
    assert 'href="tel:01234567890"' in landing
    # The new acknowledgement period shows on the next receipt.
    receipt_page = form_post(
        client,
        "/report",
        {"category": "other", "what_happened": "x", "immediate_risk": "no", "raised_before": "no"},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert "acknowledge your report by" in receipt_page
    log = admin.get("/admin/audit").get_data(as_text=True)
    assert "setting changed (organisation name)" in log
    entries = log[log.index("<tbody>") : log.index("</tbody>")]
    assert "Southshire" not in entries and "policy" not in entries


def test_bad_settings_are_refused_and_kept_on_the_page(app, alice):
    admin = _admin(app, alice)
    response = form_post(
        admin,
        "/admin/settings",
        {
            "organisation_name": "Kept name",
            "acknowledge_days": "0",
            "feedback_months": "x",
            "retention_months": "12",
        },
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "There is a problem" in page
    assert 'value="Kept name"' in page


def _link_on(page: str) -> str:
    match = re.search(r"http://127\.0\.0\.1:5000(/officer/welcome/[A-Za-z0-9_-]+)", page)
    assert match, "no one-time link on the page"
    return match.group(1)


def test_an_invited_officer_sets_their_password_and_gets_new_cases(app, client, alice):
    admin = _admin(app, alice)
    response = form_post(
        admin, "/admin/", {"display_name": "Fay New", "email": "fay@example.org"}, action="/admin/invitations"
    )
    assert response.status_code == 200
    link = _link_on(response.get_data(as_text=True))
    newcomer = app.test_client()
    done = form_post(newcomer, link, {"password": "a long enough password"})
    assert done.status_code == 200
    assert newcomer.get(link).status_code == 404  # once only
    submit_report(client)
    fay = app.test_client()
    assert (
        form_post(
            fay, "/officer/login", {"email": "fay@example.org", "password": "a long enough password"}
        ).status_code
        == 303
    )
    assert len(reports_listed(fay)) == 1
    # Inviting the same address twice is refused with a message.
    again = form_post(
        admin, "/admin/", {"display_name": "Fay", "email": "fay@example.org"}, action="/admin/invitations"
    )
    assert again.status_code == 422
    assert "already exists" in again.get_data(as_text=True)


def test_a_reset_without_recovery_key_loses_access_until_granted(app, client, alice, bob):
    submit_report(client)
    admin = _admin(app, alice)
    response = form_post(admin, "/admin/", {"officer": bob.public_id}, action="/admin/officers/reset")
    assert response.status_code == 200
    link = _link_on(response.get_data(as_text=True))
    assert login(app.test_client(), bob).status_code == 422  # the old password no longer works
    done = form_post(app.test_client(), link, {"password": "bob's brand new password"})
    assert done.status_code == 200
    bob_client = app.test_client()
    form_post(bob_client, "/officer/login", {"email": bob.email, "password": "bob's brand new password"})
    assert reports_listed(bob_client) == []


def test_administrators_choose_the_kinds_of_concern_on_the_report_form(app, client, alice):
    submit_report(client, category="caseloads")  # filed under the built-in list
    admin = _admin(app, alice)
    categories = "Missed home visits\n  Unsafe   handovers \n\n"
    data = {"organisation_name": "Northshire Council", "report_categories": categories}
    data.update({"acknowledge_days": "7", "feedback_months": "3", "retention_months": "12"})
    assert form_post(admin, "/admin/settings", data).status_code == 303
    form = client.get("/report").get_data(as_text=True)
    assert 'value="Missed home visits"' in form and 'value="Unsafe handovers"' in form
    assert 'value="caseloads"' not in form
    refused = form_post(
        client,
        "/report",
        {"category": "caseloads", "what_happened": "x", "immediate_risk": "no", "raised_before": "no"},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422
    submit_report(client, category="Unsafe handovers")
    pages = [
        admin.get(f"/officer/reports/{report_id}").get_data(as_text=True)
        for report_id in reports_listed(admin)
    ]
    assert any("<dd>Unsafe handovers</dd>" in page for page in pages)
    assert any("Unsafe caseloads or staffing" in page for page in pages)  # the older report keeps its words
