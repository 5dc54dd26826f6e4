"""An officer the reporter excluded learns nothing, and no administrator can get round it.

Each test takes the excluded officer's side (or an administrator's trying to get
past an exclusion) and looks at what they can see.
"""

from __future__ import annotations

import re

from tests.conftest import add_officer, form_post, login, reports_listed, submit_report
from tests.functional.test_account import NEW_PASSWORD
from tests.functional.test_admin import _link_on
from tests.functional.test_oversight import _close, cases_figure, purge


def _signed_in(app, account):
    client = app.test_client()
    assert login(client, account).status_code == 303
    return client


def _counts(page: str) -> dict[str, str]:
    return dict(
        re.findall(
            r"<td>([^<]+)</td>\s*<td>[^<]+@example.org</td>(?:\s*<td>[^<]*</td>){2}\s*<td>(\d+)</td>", page
        )
    )


def test_an_excluded_administrator_sees_no_colleague_with_more_cases(app, client, alice, bob):
    carol = add_officer(app, "Carol Admin", "carol@example.org", admin=True)
    submit_report(client, excluded_officers=[carol.public_id])
    submit_report(client)
    assert _counts(_signed_in(app, alice).get("/admin/").get_data(as_text=True)) == {
        "Alice Officer": "2",
        "Bob Officer": "2",
        "Carol Admin": "1",
    }
    assert _counts(_signed_in(app, carol).get("/admin/").get_data(as_text=True)) == {
        "Alice Officer": "1",
        "Bob Officer": "1",
        "Carol Admin": "1",
    }


def test_a_label_used_only_on_a_hidden_case_is_not_offered_to_the_excluded_officer(app, client, alice, bob):
    submit_report(client, excluded_officers=[bob.public_id])
    submit_report(client)
    reader = _signed_in(app, alice)
    hidden = next(r for r in reports_listed(reader) if r not in reports_listed(_signed_in(app, bob)))
    case = f"/officer/reports/{hidden}"
    assert (
        form_post(
            reader, case, {"labels-new_label": "Ward 7 night staff"}, action=f"{case}/labels"
        ).status_code
        == 303
    )
    assert "Ward 7 night staff" in reader.get("/officer/").get_data(as_text=True)

    excluded = _signed_in(app, bob)
    (visible,) = reports_listed(excluded)
    assert "Ward 7 night staff" not in excluded.get("/officer/").get_data(as_text=True)
    assert "Ward 7 night staff" not in excluded.get(f"/officer/reports/{visible}").get_data(as_text=True)


def test_a_deleted_hidden_case_does_not_appear_in_the_excluded_officers_figures(
    app, client, alice, bob, monkeypatch
):
    monkeypatch.setenv("FLASK_RUN_FROM_CLI", "false")
    submit_report(client, excluded_officers=[bob.public_id])
    reader = _signed_in(app, alice)
    (hidden,) = reports_listed(reader)
    _close(app, reader, hidden, 13)
    before = _signed_in(app, bob).get("/officer/statistics").get_data(as_text=True)
    assert purge(app).exit_code == 0
    after = _signed_in(app, bob).get("/officer/statistics").get_data(as_text=True)
    assert "No cases." in before and "No cases." in after
    assert cases_figure(after) == "fewer than 3"
    # The reader still counts the case they could open.
    assert "No cases." not in reader.get("/officer/statistics").get_data(as_text=True)


def _invite(admin, name: str, email: str) -> str:
    page = form_post(admin, "/admin/", {"display_name": name, "email": email}, action="/admin/invitations")
    assert page.status_code == 200
    return _link_on(page.get_data(as_text=True))


def test_a_second_invitation_cancels_the_first(app, alice):
    admin = _signed_in(app, alice)
    first = _invite(admin, "Dan New", "dan@example.org")
    second = _invite(admin, "Dan New", "dan@example.org")
    assert app.test_client().get(first).status_code == 404
    stale = app.test_client()
    assert form_post(stale, second, {"password": NEW_PASSWORD}, action=first).status_code == 404
    assert form_post(app.test_client(), second, {"password": NEW_PASSWORD}).status_code == 200


def test_an_invitation_never_takes_over_an_account_made_after_it(app, client, alice):
    """The link an administrator kept must not replace the keys of the officer who now has that email."""
    link = _invite(_signed_in(app, alice), "Erin New", "erin@example.org")
    erin = add_officer(app, "Erin New", "erin@example.org")
    submit_report(client)
    assert app.test_client().get(link).status_code == 404
    attacker = app.test_client()
    assert form_post(attacker, "/officer/login", {"password": NEW_PASSWORD}, action=link).status_code == 404
    # Erin still logs in with her own password and reads the case.
    assert len(reports_listed(_signed_in(app, erin))) == 1


def test_deactivation_takes_away_every_key_and_reactivation_gives_none_back(app, client, alice, bob):
    submit_report(client)
    (case,) = reports_listed(_signed_in(app, bob))
    admin = _signed_in(app, alice)
    form_post(admin, "/admin/", {"officer": bob.public_id}, action="/admin/officers/deactivate")
    form_post(admin, "/admin/", {"officer": bob.public_id}, action="/admin/officers/reactivate")
    back = _signed_in(app, bob)
    assert reports_listed(back) == []
    assert back.get(f"/officer/reports/{case}").status_code == 404
    # A colleague can grant the case again.
    granted = form_post(
        admin,
        f"/officer/reports/{case}",
        {"officer": bob.public_id},
        action=f"/officer/reports/{case}/access",
    )
    assert granted.status_code == 303
    assert back.get(f"/officer/reports/{case}").status_code == 200
