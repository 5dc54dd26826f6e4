"""The reporter's journey and the officer's reply, in a real browser, as each kind of visitor.

Each variant (phone and desktop, script on and off, and a 320 px screen in dark
mode showing the page without script) goes through every page a reporter and an officer
reach, in every state: empty forms, forms sent back with errors, the
immediate-risk step, the receipt (and its printout), the case page with a
thread, the officer's login, list and case page, the first administrator's setup
and a missing page. Every page is checked (see ``Tab.check``), screenshotted and,
where script runs, audited with axe-core.
"""

from __future__ import annotations

import io
import re

import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Page, expect

from tests.browser.conftest import VARIANTS, Portal, Tab, Variant

RECEIPT = re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$")
WHAT_HAPPENED = "Visits to the Hill Road family were recorded but never made.\nThe manager signed them off."
WHEN_WHERE = "Since the spring, in the east locality team"
RAISED_WITH = "Raised with my manager; nothing changed."
REPLY = "Thank you. Which team was this?"
ANSWER = "The east team, since April."
FOCUS_YELLOW = "rgb(255, 221, 0)"


def png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "white").save(buffer, "PNG")
    return buffer.getvalue()


def evidence() -> list[dict[str, object]]:
    return [{"name": "rota.png", "mimeType": "image/png", "buffer": png()}]


def group(page: Page, legend: str):
    return page.get_by_role("group", name=legend)


def continue_(page: Page) -> None:
    """Next step (script) or nothing (every step already shows)."""
    page.locator("section:not([hidden])").get_by_role("button", name="Continue").click()


def step_heading(page: Page, number: int):
    return page.locator(f"#step-{number}-title")


def send_report(page: Page) -> None:
    page.locator("#report-form").get_by_role("button", name="Send my report").click()


def expect_step(page: Page, variant: Variant, number: int) -> None:
    """With script, only this step shows and its heading has focus; without, all show."""
    if variant.enhanced:
        for other in range(1, 5):
            if other == number:
                expect(step_heading(page, other)).to_be_visible()
            else:
                expect(step_heading(page, other)).to_be_hidden()
        if number > 1:
            expect(step_heading(page, number)).to_be_focused()
            assert page.title().startswith(f"Step {number} of 4")
    else:
        for other in range(1, 5):
            expect(step_heading(page, other)).to_be_visible()


def fill_report(tab: Tab) -> None:
    """Answer every step; with script, go back twice on the way and find every answer kept."""
    page, variant = tab.page, tab.variant
    expect_step(page, variant, 1)
    group(page, "What is your concern about?").get_by_label("Poor practice or falsified records").check()
    page.get_by_label("What happened?", exact=True).fill(WHAT_HAPPENED)
    page.get_by_label("When and where did it happen? (optional)").fill(WHEN_WHERE)
    if variant.enhanced:
        continue_(page)
        expect_step(page, variant, 2)
    group(page, "Could a child or adult be at immediate risk of harm?").get_by_label(
        "Yes", exact=True
    ).check()
    group(page, "Have you raised this concern before?").get_by_label("Yes", exact=True).check()
    page.get_by_label("If you have, with whom, and what happened? (optional)").fill(RAISED_WITH)
    if variant.enhanced:
        # Back with the page's own button, then forward again: nothing typed is lost.
        page.get_by_role("button", name="Back").click()
        expect_step(page, variant, 1)
        expect(page.get_by_label("What happened?", exact=True)).to_have_value(WHAT_HAPPENED)
        continue_(page)
        expect_step(page, variant, 2)
        expect(
            group(page, "Have you raised this concern before?").get_by_label("Yes", exact=True)
        ).to_be_checked()
        continue_(page)
        expect_step(page, variant, 3)
    page.locator("#attachments").set_input_files(evidence())
    if variant.enhanced:
        continue_(page)
        expect_step(page, variant, 4)
        # The browser's own Back button goes to the previous step, not away from the form.
        page.go_back()
        expect_step(page, variant, 3)
        page.go_forward()
        expect_step(page, variant, 4)
    group(page, "Officers who should not see this report (optional)").get_by_label("Bob Officer").check()


def reporter_journey(tab: Tab) -> str:
    """From the landing page to a receipt; returns the receipt."""
    page, variant = tab.page, tab.variant
    tab.visit("/", "Raise a concern safely", "landing")

    page.get_by_role("link", name="Raise a concern", exact=True).click()
    dash = "\N{EN DASH}"
    title = f"Step 1 of 4: Your concern {dash} Raise a concern" if variant.enhanced else "Raise a concern"
    expect(page).to_have_title(f"{title} {dash} Northshire Council speak-up portal")
    tab.check("report-form")

    # Sent empty: an error summary at the top, linked to each field, and the title says so.
    if variant.enhanced:
        # Past the steps' own checks (below): the server checks everything again.
        page.evaluate("document.getElementById('report-form').submit()")
    else:
        send_report(page)
    expect(page).to_have_title(re.compile(r"^Error: Raise a concern"))
    summary = page.locator(".error-summary")
    expect(summary).to_contain_text("There is a problem")
    expect(summary.get_by_role("link")).to_have_count(4)
    expect(page.locator("#category-0")).to_have_attribute("required", "")
    expect(page.get_by_label("What happened?", exact=True)).to_have_attribute("aria-invalid", "true")
    assert "what_happened-error" in (
        page.get_by_label("What happened?", exact=True).get_attribute("aria-describedby") or ""
    )
    if variant.enhanced:
        expect(summary).to_be_focused()
        summary.get_by_role("link", name="Tell us what happened.").click()
        expect(page.get_by_label("What happened?", exact=True)).to_be_focused()
        summary.get_by_role("link", name="Choose what your concern is about.").click()
        expect(page.locator("#category-0")).to_be_focused()
    # Sent back, the form shows every step at once, so every error is in sight.
    for number in range(1, 5):
        expect(step_heading(page, number)).to_be_visible()
    tab.check("report-form-errors")

    # The answers, then the immediate-risk step: nothing is lost, nothing sent yet.
    # A form sent back shows every step; fill_report only steps through a fresh one.
    tab.goto("/report")
    if variant.enhanced:
        # Each step is checked as it is left, in the server's words, and cannot be left unanswered.
        continue_(page)
        expect_step(page, variant, 1)
        checked = page.locator("#step-1 .error-summary")
        expect(checked).to_be_focused()
        expect(checked.get_by_role("link")).to_have_text(
            ["Choose what your concern is about.", "Tell us what happened."]
        )
        expect(page.get_by_label("What happened?", exact=True)).to_have_attribute("aria-invalid", "true")
        tab.check("report-form-step-checked")
        checked.get_by_role("link", name="Tell us what happened.").click()
        expect(page.get_by_label("What happened?", exact=True)).to_be_focused()
    fill_report(tab)
    expect(page.locator("#step-1 .error-summary")).to_have_count(0)
    send_report(page)
    expect(page).to_have_title(re.compile(r"^Someone may be at immediate risk"))
    notice = page.locator(".notice--urgent[role=alert]")
    expect(notice).to_contain_text("call 999")
    if variant.enhanced:
        expect(notice).to_be_focused()
    expect(page.get_by_label("What happened?", exact=True)).to_have_value(WHAT_HAPPENED)
    expect(page.get_by_label("Bob Officer")).to_be_checked()
    expect(page.locator("#files-not-kept")).to_contain_text("rota.png")  # named, to choose again
    expect(notice.get_by_role("button")).to_have_count(0)  # no way to send without seeing that
    tab.check("report-form-immediate-risk")
    page.locator("#attachments").set_input_files(evidence())
    send_report(page)

    # The receipt: shown once, printable, with what happens next.
    expect(page.get_by_role("heading", level=1)).to_have_text("Your report has been sent")
    receipt = page.locator(".receipt strong").inner_text().strip()
    assert RECEIPT.match(receipt), receipt
    expect(page.locator(".files")).to_contain_text("rota.png")
    copy = page.get_by_role("button", name="Copy receipt code")
    if variant.enhanced:
        tab.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=tab.portal.url)
        copy.click()
        expect(page.get_by_role("status")).to_contain_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == receipt
        expect(page.get_by_role("button", name="Print this page")).to_be_visible()
    else:
        expect(copy).to_have_count(0)
    tab.check("receipt")
    page.emulate_media(media="print")
    expect(page.locator(".site-header")).to_be_hidden()
    expect(page.locator(".receipt")).to_be_visible()
    expect(page.get_by_text("Come back at:")).to_be_visible()
    tab.check("receipt-printed")
    page.emulate_media(media="screen")
    return receipt


def open_case(tab: Tab, receipt: str) -> None:
    page = tab.page
    tab.goto("/follow-up")
    tab.check("follow-up")
    page.get_by_label("Your receipt code").fill("AAAA-BBBB-CCCC-DDDD")
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_title(re.compile(r"^Error: Check on your report"))
    expect(page.locator(".field-error")).to_contain_text("We could not find a report")
    tab.check("follow-up-errors")
    # Typed as a person might: lower case, with spaces.
    page.get_by_label("Your receipt code").fill(receipt.lower().replace("-", " "))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your report")


def timeline(page: Page) -> list[str]:
    return [" ".join(text.split()) for text in page.locator(".timeline li").all_inner_texts()]


def officer_reply(tab: Tab) -> None:
    """Alice logs in, finds the report, reads it and replies."""
    page = tab.page
    alice = tab.portal.officers[0]
    tab.goto("/officer/login")
    tab.check("officer-login")
    page.get_by_label("Email address").fill(alice.email)
    page.get_by_label("Password").fill("not the password")
    tab.sent_back("Log in", "officer-login-errors")
    page.get_by_label("Email address").fill(alice.email)
    page.get_by_label("Password").fill(alice.password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    tab.check("officer-list")
    # Still a table to assistive technology on a narrow screen, where it scrolls on its own.
    expect(page.get_by_role("table")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Status")).to_be_visible()
    reports = page.locator("table.cases a[href*='/officer/reports/']")
    expect(reports).to_have_count(1)
    reports.first.click()
    expect(page.get_by_text("Visits to the Hill Road family were recorded but never made.")).to_be_visible()
    expect(page.get_by_text("rota.png")).to_be_visible()
    tab.check("officer-case")
    tab.sent_back("Send reply", "officer-case-errors")
    page.get_by_label("Reply to the reporter", exact=True).fill(REPLY)
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator(".thread")).to_contain_text(REPLY)
    page.get_by_label("Status", exact=True).select_option("acknowledged")
    page.get_by_role("button", name="Change status").click()
    expect(page.get_by_label("Status", exact=True)).to_have_value("acknowledged")
    tab.check("officer-case-thread")


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_reporter_journey_and_officer_reply(open_tab, portal: Portal, variant: Variant):
    reporter = open_tab(variant, portal)
    receipt = reporter_journey(reporter)

    open_case(reporter, receipt)
    page = reporter.page
    steps = timeline(page)
    assert re.search(r"Received \d{1,2} [A-Z][a-z]+ \d{4}$", steps[0]), steps
    assert any("Read by an officer Not yet" in step for step in steps), steps
    expect(page.locator(".timeline [aria-current=step]")).to_contain_text("Read by an officer")
    expect(page.get_by_text("No messages yet.")).to_be_visible()
    reporter.check("case")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page).to_have_title(re.compile(r"^Error: Your report"))
    expect(page.locator(".error-summary")).to_contain_text("Write a message or choose a file to send.")
    reporter.check("case-errors")

    officer_reply(open_tab(variant, portal, "officer"))

    reporter.goto("/follow-up/case")
    steps = timeline(page)
    assert any("Read by an officer Yes, on" in step for step in steps), steps
    assert any("Answered Yes. An officer last replied on" in step for step in steps), steps
    assert any("Acknowledged Yes, on" in step for step in steps), steps
    expect(page.locator(".timeline [aria-current=step]")).to_contain_text("Feedback due by")
    history = page.locator("details.history-details")
    expect(history.locator("li")).to_have_count(2)
    expect(history.locator("li").last).to_be_hidden()
    history.locator("summary").click()
    expect(history.locator("li").last).to_contain_text("Acknowledged by an officer")
    expect(page.locator(".thread")).to_contain_text(REPLY)
    expect(page.locator(".message--officer .message-meta")).to_contain_text("An officer,")
    reporter.check("case-thread")
    page.get_by_label("Your message").fill(ANSWER)
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Your message has been sent.")
    expect(page.locator(".thread")).to_contain_text(ANSWER)
    reporter.check("case-message-sent")

    page.get_by_role("button", name="Leave").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Raise a concern safely")
    reporter.goto("/follow-up/case")
    expect(page.get_by_role("heading", level=1)).to_have_text("Check on your report")

    reporter.visit("/no-such-page", "Page not found", "not-found")


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_first_administrator_sets_up_the_portal(open_tab, fresh_portal: Portal, variant: Variant):
    tab = open_tab(variant, fresh_portal, "administrator")
    page = tab.page
    tab.visit(f"/setup/{fresh_portal.setup_token}", "Set up Whistle", "setup")
    tab.sent_back("Create my account", "setup-errors", title="Set up Whistle")
    expect(page.locator(".error-summary").get_by_role("link")).to_have_count(3)
    page.get_by_label("Your name, as reporters and colleagues will see it").fill("Dana Admin")
    page.get_by_label("Email address").fill("dana@example.org")
    page.get_by_label("Choose a password (at least 12 characters)").fill("a long and careful passphrase")
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your account is ready")
    tab.check("setup-done")
