"""static/whistle.js and the stylesheet's media rules: what they add, and that nothing needs them.

Also a check of the checker: axe-core, as the journeys run it, does catch a
serious violation when a page has one.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Dialog, expect

from tests.browser.conftest import AUDITED, DESKTOP, NO_AXE, Portal, Variant

JS = Variant("desktop-js", **DESKTOP)
NARROW_JS = Variant("narrow-320-js", width=320, height=640, mobile=True)
NO_JS = Variant("desktop-no-js", **DESKTOP, scripts=False, enhanced=False)


def test_character_count_replaces_the_silent_limit(open_tab, portal: Portal):
    tab = open_tab(JS, portal)
    tab.goto("/report")
    page = tab.page
    box = page.get_by_label("What happened?", exact=True)
    count = page.locator("#what_happened ~ .char-count")
    expect(count).to_have_text("You have 20,000 characters remaining")
    # The browser's maxlength would cut a long paste short without a word; the count says instead.
    expect(box).not_to_have_attribute("maxlength", re.compile(".*"))
    box.fill("x" * 19_990)
    expect(count).to_have_text("You have 10 characters remaining")
    box.fill("line one\nline two")  # a line break is sent as two characters
    expect(count).to_have_text("You have 19,982 characters remaining")
    box.fill("x" * 20_001)
    expect(count).to_have_text("You have 1 character too many")
    expect(count).to_have_class(re.compile("char-count--over"))
    # Screen readers hear it once typing pauses, from a polite live region.
    expect(page.locator("#what_happened ~ [aria-live=polite]")).to_have_text("You have 1 character too many")
    expect(count).to_have_attribute("aria-hidden", "true")


def test_without_script_the_limit_is_stated_and_kept(open_tab, portal: Portal):
    tab = open_tab(NO_JS, portal)
    tab.goto("/report")
    page = tab.page
    expect(page.get_by_label("What happened?", exact=True)).to_have_attribute("maxlength", "20000")
    expect(page.get_by_text("You can write up to 20,000 characters.")).to_be_visible()
    expect(page.get_by_role("button", name="Continue")).to_have_count(0)
    expect(page.get_by_role("button", name="Send my report")).to_be_visible()


def _answer_step(page, step: int) -> None:
    if step == 1:
        page.get_by_label("Something else").check()
        page.get_by_label("What happened?", exact=True).fill("Visits were recorded but never made.")
    if step == 2:
        page.locator("#immediate_risk-1").check()
        page.locator("#raised_before-1").check()


def test_the_steps_fit_a_320_pixel_screen(open_tab, portal: Portal):
    tab = open_tab(NARROW_JS, portal)
    tab.goto("/report")
    page = tab.page
    tab.check("report-form")
    page.locator("section:not([hidden])").get_by_role("button", name="Continue").click()
    expect(page.locator("#step-1 .error-summary")).to_be_focused()  # checked, and said so
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 320, f"step 1 with its errors is {width}px wide"
    tab.check("report-form-step-errors")
    for step in (2, 3, 4):
        _answer_step(page, step - 1)
        page.locator("section:not([hidden])").get_by_role("button", name="Continue").click()
        expect(page.locator(f"#step-{step}-title")).to_be_focused()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, f"step {step} is {width}px wide"
    tab.check("report-form-last-step")


def test_enter_in_an_early_step_checks_it_moves_on_and_sends_nothing(open_tab, portal: Portal):
    tab = open_tab(JS, portal)
    tab.goto("/report")
    page = tab.page
    page.get_by_label("Something else").check()
    page.keyboard.press("Enter")
    summary = page.locator("#step-1 .error-summary")
    expect(summary).to_be_focused()
    expect(summary.get_by_role("link")).to_have_text(["Tell us what happened."])
    expect(page.locator("#step-2-title")).to_be_hidden()

    page.get_by_label("What happened?", exact=True).fill("Visits were recorded but never made.")
    page.get_by_label("Something else").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#step-2-title")).to_be_focused()
    expect(page).to_have_url(re.compile(r"/report#step-2$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Raise a concern")


def test_leaving_with_typed_text_asks_first(open_tab, portal: Portal):
    tab = open_tab(JS, portal)
    tab.goto("/report")
    page = tab.page
    page.get_by_label("What happened?", exact=True).click()
    page.keyboard.type("Something I would not want to lose.")
    asked: list[str] = []

    def answer(dialog: Dialog) -> None:
        asked.append(dialog.type)
        dialog.dismiss()  # "stay on this page"

    page.on("dialog", answer)
    page.get_by_role("link", name="Northshire Council speak-up portal").click(no_wait_after=True)
    expect(page.get_by_label("What happened?", exact=True)).to_have_value(
        "Something I would not want to lose."
    )
    assert asked == ["beforeunload"]
    expect(page).to_have_url(re.compile(r"/report$"))


def test_reduced_motion_turns_transitions_off(browser, portal: Portal):
    durations = {}
    for motion in ("no-preference", "reduce"):
        context = browser.new_context(reduced_motion=motion)
        page = context.new_page()
        page.goto(portal.link("/"))
        button = page.get_by_role("link", name="Raise a concern", exact=True)
        button.hover()
        durations[motion] = button.evaluate("e => getComputedStyle(e).transitionDuration")
        context.close()
    assert durations == {"no-preference": "0.15s", "reduce": "0s"}


def test_dark_mode_follows_the_system(browser, portal: Portal):
    colours = {}
    for scheme in ("light", "dark"):
        context = browser.new_context(color_scheme=scheme)
        page = context.new_page()
        page.goto(portal.link("/"))
        colours[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        context.close()
    assert colours == {"light": "rgb(255, 255, 255)", "dark": "rgb(22, 24, 25)"}


def test_the_audit_catches_a_serious_violation(open_tab, portal: Portal, axe_source):
    if axe_source is None:
        pytest.skip(NO_AXE)
    tab = open_tab(JS, portal)
    tab.goto("/")
    tab.page.evaluate(
        """() => {
          const input = document.createElement("input");  // no label
          document.querySelector("main").append(input);
        }"""
    )
    with pytest.raises(AssertionError, match="label"):
        tab.audit("deliberately-broken")
    AUDITED.pop("deliberately-broken", None)
