"""Keyboard only: the reporter's whole journey, and the officer's answer, without a mouse.

Only Tab, Shift+Tab, arrows, Space, Enter and typing are used. At every stop of
the Tab key the focused element must show the focus style (the GOV.UK yellow),
so a sighted keyboard user can always see where they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, Portal, Tab, Variant
from tests.browser.test_journeys import evidence

FOCUS_YELLOW = "rgb(255, 221, 0)"
FOCUS_TEXT = "rgb(11, 12, 12)"
FOCUSED = """() => {
  const e = document.activeElement;
  const s = getComputedStyle(e);
  const label = e.labels && e.labels.length ? e.labels[0].innerText.trim() : "";
  return {
    tag: e.tagName.toLowerCase(), id: e.id, name: e.getAttribute("name") || "",
    type: e.getAttribute("type") || "", href: e.getAttribute("href") || "", label: label,
    text: (e.innerText || "").trim().replace(/\\s+/g, " ").slice(0, 80),
    outline: [s.outlineStyle, s.outlineColor, s.outlineWidth], background: s.backgroundColor, colour: s.color,
    inViewport: (() => { const r = e.getBoundingClientRect();
      return r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < window.innerHeight; })(),
  };
}"""
KEYBOARD_VARIANTS = [
    Variant("keyboard-desktop-js", **DESKTOP),
    Variant("keyboard-desktop-no-js", **DESKTOP, scripts=False, enhanced=False),
]


def focused(page: Page) -> dict[str, Any]:
    return page.evaluate(FOCUSED)


def assert_focus_visible(stop: dict[str, Any]) -> None:
    style, colour, width = stop["outline"]
    outlined = style != "none" and colour == FOCUS_YELLOW and float(width.removesuffix("px")) >= 3
    highlighted = stop["background"] == FOCUS_YELLOW
    assert outlined or highlighted, f"no visible focus on {stop}"
    if highlighted:
        assert stop["colour"] == FOCUS_TEXT, f"the text on the yellow focus highlight is not dark: {stop}"
    assert stop["inViewport"], f"the focused element is off screen: {stop}"


def tab_to(
    page: Page, wanted: Callable[[dict[str, Any]], bool], what: str, limit: int = 120
) -> dict[str, Any]:
    """Press Tab until ``wanted`` holds for the focused element, checking each stop's focus style."""
    page.wait_for_load_state("load")  # the stylesheet too, as a person sees the page only then
    for _ in range(limit):
        page.keyboard.press("Tab")
        stop = focused(page)
        if stop["tag"] != "body":
            assert_focus_visible(stop)
        if wanted(stop):
            return stop
    raise AssertionError(f"Tab never reached {what}")


def named(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda stop: stop["name"] == name


def text(words: str) -> Callable[[dict[str, Any]], bool]:
    return lambda stop: stop["text"] == words


def arrive(page: Page, heading: str) -> None:
    """Wait for the next page to be there, stylesheet and all, before pressing on."""
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    page.wait_for_load_state("load")


def continue_by_keyboard(tab: Tab, step: int) -> None:
    if tab.variant.enhanced:
        tab_to(tab.page, text("Continue"), "Continue")
        tab.page.keyboard.press("Enter")
        expect(tab.page.locator(f"#step-{step}-title")).to_be_focused()


@pytest.mark.parametrize("variant", KEYBOARD_VARIANTS, ids=lambda v: v.name)
def test_reporter_journey_and_officer_reply_by_keyboard_alone(open_tab, portal: Portal, variant: Variant):
    tab = open_tab(variant, portal)
    page, keys = tab.page, tab.page.keyboard
    # Playwright turns file-chooser interception on when a first listener is added, and
    # not at once: a listener from the start means the Space key below is never too early.
    page.on("filechooser", lambda _chooser: None)
    tab.goto("/")

    # The first Tab shows the skip link; it takes focus to the main content.
    first = tab_to(page, text("Skip to main content"), "the skip link", limit=1)
    assert first["href"] == "#main"
    keys.press("Enter")
    tab_to(page, text("Raise a concern"), "the start button", limit=3)
    keys.press("Enter")
    arrive(page, "Raise a concern")

    # Step 1: arrows choose a radio, typing fills the boxes.
    tab_to(page, named("category"), "the first kind of concern")
    keys.press("ArrowDown")
    keys.press("ArrowDown")
    expect(page.get_by_label("Unsafe caseloads or staffing")).to_be_checked()
    tab_to(page, named("what_happened"), "What happened?", limit=1)
    keys.type("Visits were recorded but never made.")
    tab_to(page, named("when_where"), "When and where", limit=2)
    keys.type("East team, spring")
    continue_by_keyboard(tab, 2)

    # Step 2.
    tab_to(page, named("immediate_risk"), "immediate risk")
    keys.press("ArrowDown")
    expect(page.locator("#immediate_risk-1")).to_be_checked()
    tab_to(page, named("raised_before"), "raised before", limit=2)
    keys.press("Space")
    expect(page.locator("#raised_before-0")).to_be_checked()
    tab_to(page, named("raised_before_result"), "with whom", limit=2)
    keys.type("My manager.")
    continue_by_keyboard(tab, 3)

    # Step 3: the file input opens the file chooser from the keyboard.
    tab_to(page, named("attachments"), "the file input")
    with page.expect_file_chooser() as chooser:
        keys.press("Space")
    chooser.value.set_files(evidence())
    continue_by_keyboard(tab, 4)

    # Step 4: keep one officer out, and send.
    tab_to(page, lambda stop: stop["label"] == "Bob Officer", "Bob Officer")
    keys.press("Space")
    expect(page.get_by_label("Bob Officer")).to_be_checked()
    tab_to(page, text("Send my report"), "Send my report")
    keys.press("Enter")
    arrive(page, "Your report has been sent")
    receipt = page.locator(".receipt strong").inner_text().strip()

    # Back with the receipt.
    tab_to(page, text("Check on a report"), "Check on a report")
    keys.press("Enter")
    arrive(page, "Check on your report")
    tab_to(page, named("receipt"), "the receipt box")
    keys.type(receipt)
    keys.press("Enter")
    arrive(page, "Your report")
    tab_to(page, named("body"), "the message box")
    keys.type("One more thing: it happened again.")
    tab_to(page, text("Send"), "Send")
    keys.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Your message has been sent.")

    # The officer: log in, open the report, answer it.
    officer = open_tab(variant, portal, "officer")
    page, keys = officer.page, officer.page.keyboard
    alice = portal.officers[0]
    officer.goto("/officer/login")
    arrive(page, "Officer log in")
    tab_to(page, named("email"), "the email box")
    keys.type(alice.email)
    tab_to(page, named("password"), "the password box", limit=1)
    keys.type(alice.password)
    keys.press("Enter")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    tab_to(page, lambda stop: "/officer/reports/" in stop["href"], "the report in the list")
    keys.press("Enter")
    expect(page.get_by_text("Visits were recorded but never made.")).to_be_visible()
    expect(page.get_by_text("One more thing: it happened again.")).to_be_visible()
    tab_to(page, lambda stop: stop["tag"] == "textarea" and stop["name"] == "body", "the reply box")
    keys.type("Thank you. We are looking into it.")
    tab_to(page, text("Send reply"), "Send reply")
    keys.press("Enter")
    expect(page.locator(".thread")).to_contain_text("Thank you. We are looking into it.")

    # And the reporter reads it.
    tab.goto("/follow-up/case")
    expect(tab.page.locator(".thread")).to_contain_text("Thank you. We are looking into it.")
    expect(tab.page.locator(".timeline")).to_contain_text(re.compile(r"Answered\s+Yes"))
