"""The case page and the header lead to legal hold, export and statistics."""

from __future__ import annotations

from tests.conftest import csrf_token, login, reports_listed, submit_report


def test_legal_hold_export_and_statistics_are_reached_from_the_pages(app, client, alice):
    submit_report(client)
    officer = app.test_client()
    login(officer, alice)
    (report_id,) = reports_listed(officer)
    case_page = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    assert f'href="/officer/reports/{report_id}/export?notes=0"' in case_page
    assert 'href="/officer/statistics"' in case_page
    assert "Put on legal hold" in case_page
    response = officer.post(
        f"/officer/reports/{report_id}/hold", data={"csrf_token": csrf_token(case_page), "hold": "on"}
    )
    assert response.status_code == 303
    page = officer.get(f"/officer/reports/{report_id}").get_data(as_text=True)
    assert "Release legal hold" in page and ">Legal hold<" in page
    assert officer.get("/officer/statistics").status_code == 200
    export = officer.get(f"/officer/reports/{report_id}/export?notes=0")
    assert export.status_code == 200
    assert export.data[:2] == b"PK"
