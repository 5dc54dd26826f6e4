"""Labels that officers define, put on cases and filter the list by."""

from __future__ import annotations

import re

from tests.conftest import form_post, login, reports_listed, submit_report


def _officer(app, account):
    client = app.test_client()
    assert login(client, account).status_code == 303
    return client


def test_an_officer_defines_a_label_puts_it_on_a_case_and_filters_by_it(app, client, alice, bob):
    submit_report(client)
    submit_report(client)
    officer = _officer(app, alice)
    first, second = reports_listed(officer)
    case_page = f"/officer/reports/{first}"
    response = form_post(
        officer, case_page, {"labels-new_label": "  Staffing   review "}, action=f"{case_page}/labels"
    )
    assert response.status_code == 303
    page = officer.get(case_page).get_data(as_text=True)
    assert 'class="badge badge--label">Staffing review<' in page
    # The list shows it and filters by it; other officers see the same labels.
    listed = officer.get("/officer/?label=Staffing+review").get_data(as_text=True)
    assert re.findall(r'href="/officer/reports/([0-9a-f]{32})"', listed) == [first]
    assert len(reports_listed(_officer(app, bob))) == 2
    assert "Staffing review" in _officer(app, bob).get("/officer/").get_data(as_text=True)
    # The label is chosen again (not redefined) on the second case, then taken off the first.
    form_post(
        officer,
        f"/officer/reports/{second}",
        {"labels-names": "Staffing review"},
        action=f"/officer/reports/{second}/labels",
    )
    form_post(officer, case_page, {}, action=f"{case_page}/labels")
    listed = officer.get("/officer/?label=Staffing+review").get_data(as_text=True)
    assert re.findall(r'href="/officer/reports/([0-9a-f]{32})"', listed) == [second]
    assert "labels changed" in officer.get(case_page).get_data(as_text=True)


def test_an_unknown_or_over_long_label_is_refused_and_an_unknown_filter_lists_nothing(app, client, alice):
    submit_report(client)
    officer = _officer(app, alice)
    (report_id,) = reports_listed(officer)
    case_page = f"/officer/reports/{report_id}"
    unknown = form_post(officer, case_page, {"labels-names": "never defined"}, action=f"{case_page}/labels")
    assert unknown.status_code == 422
    assert "Choose from the labels listed" in unknown.get_data(as_text=True)
    too_long = form_post(officer, case_page, {"labels-new_label": "x" * 41}, action=f"{case_page}/labels")
    assert too_long.status_code == 422
    assert "x" * 41 in too_long.get_data(as_text=True)  # what was typed is given back
    assert reports_listed_with(officer, "/officer/?label=nothing") == []


def reports_listed_with(client, path):
    return re.findall(r'href="/officer/reports/([0-9a-f]{32})"', client.get(path).get_data(as_text=True))
