"""The officer's other pages in a real browser: administration, invitations, two-factor
enrolment and the statistics, each in its empty state and sent back with errors.

The same checks as the reporter's journey (see ``Tab.check``): one h1, the portal's
title, no sideways scrolling, no console error and no request to another host, a
screenshot, and an axe-core audit wherever the variant runs script.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import expect

from tests.browser.conftest import VARIANTS, Portal, Tab, Variant


def log_in(tab: Tab) -> None:
    page = tab.page
    alice = tab.portal.officers[0]
    tab.goto("/officer/login")
    page.get_by_label("Email address").fill(alice.email)
    page.get_by_label("Password").fill(alice.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def invite(tab: Tab) -> str:
    """Alice invites Carol (after a first try with nothing filled in); returns the link."""
    page = tab.page
    tab.visit("/admin/", "Administration", "admin-officers")
    tab.sent_back("Create invitation link", "admin-officers-errors")
    expect(page.locator(".error-summary")).to_contain_text("Enter the officer's name.")
    page.get_by_label("Name", exact=True).fill("Carol Officer")
    page.get_by_label("Email address").fill("carol@example.org")
    page.get_by_role("button", name="Create invitation link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Invitation for Carol Officer")
    tab.check("admin-invited")
    link = page.locator(".receipt--link strong").inner_text()
    return urlsplit(link).path  # the link names the portal's public address


def settings_and_audit(tab: Tab) -> None:
    page = tab.page
    tab.goto("/admin/settings")
    tab.check("admin-settings")
    page.get_by_label("Days to acknowledge a report").fill("0")
    tab.sent_back("Save settings", "admin-settings-errors")
    expect(page.get_by_label("Days to acknowledge a report")).to_have_value("0")  # kept as typed
    tab.goto("/admin/audit")
    expect(page.locator("table")).to_be_visible()
    tab.check("admin-audit")


def two_factor_and_statistics(tab: Tab) -> None:
    page = tab.page
    tab.goto("/officer/account/two-factor")
    expect(page.get_by_role("heading", level=1)).to_have_text("Set up two-factor login")
    expect(page.get_by_role("img", name="QR code to scan with your authenticator app")).to_be_visible()
    tab.check("two-factor")
    page.get_by_label("Code shown by the app").fill("000000")
    tab.sent_back("Turn on two-factor login", "two-factor-errors")
    tab.visit("/officer/statistics", "Statistics for the board", "statistics")


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_administration_invitation_two_factor_and_statistics(open_tab, portal: Portal, variant: Variant):
    admin = open_tab(variant, portal, "officer")
    log_in(admin)
    link = invite(admin)
    settings_and_audit(admin)
    two_factor_and_statistics(admin)

    carol = open_tab(variant, portal, "invited officer")
    carol.visit(link, "Choose your password", "welcome")
    carol.sent_back("Set my password", "welcome-errors")
