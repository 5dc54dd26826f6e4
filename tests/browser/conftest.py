"""Browser tests: the portal served for real, driven by Debian's Chromium through Playwright.

Each test gets a portal of its own: a temporary instance (SQLite, cheap Argon2)
served by werkzeug in a thread of the test process, with two officers. Chromium
is the system's (``apt-get install chromium``), launched through
``executable_path``: Playwright's own browser download is not used. axe-core
comes from the npm registry (``npm ci --prefix tests/browser``) and is added to
pages as a Playwright init script, which the page's Content-Security-Policy does
not govern: every page, audited or not, runs under the portal's real CSP.

Without Chromium (or Playwright) every test here is skipped, with the reason
shown; without axe-core the journeys still run and the audit is skipped, with
the reason shown. Screenshots of every page go to ``test-results/screenshots/``;
the folder, the count and the audit's findings are printed at the end of the run.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.conftest import CHEAP_KDF, OfficerAccount, add_officer, runtime_of
from whistle import create_app
from whistle.config import Settings, create_instance
from whistle.db import upgrade
from whistle.services import officers

try:  # a dev dependency: without it the browser tests are skipped, not failed
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Response,
        expect,
        sync_playwright,
    )
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None
else:
    # Generous for a busy 2-core machine; a passing run waits far less.
    expect.set_options(timeout=10_000)

HERE = Path(__file__).resolve().parent
AXE_JS = HERE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Rate limits loose enough for many journeys against one portal in a few seconds.
LOOSE_LIMITS = (
    'receipt_attempts_global = "1000 per minute"\n'
    'receipt_attempts_per_receipt = "1000 per minute"\n'
    'login_attempts_per_account = "1000 per minute"\n'
    'login_attempts_per_device = "1000 per minute"\n'
    'submissions_global = "1000 per minute"\n'
)
#: axe-core impacts that fail a page; the others are listed at the end of the run.
FAILING_IMPACTS = {"serious", "critical"}
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
NO_AXE = "axe-core is not installed (npm ci --prefix tests/browser), so pages were not audited"


def chromium_path() -> str | None:
    """WHISTLE_CHROMIUM when it is set, else Debian's Chromium."""
    named = os.environ.get("WHISTLE_CHROMIUM")
    candidates = (
        [named]
        if named
        else ["/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")]
    )
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def why_not_runnable() -> str | None:
    if sync_playwright is None:
        return "Playwright is not installed (pip install -e '.[dev]'), so the browser tests are skipped"
    if chromium_path() is None:
        where = os.environ.get("WHISTLE_CHROMIUM") or "/usr/bin/chromium"
        return f"no Chromium at {where} (apt-get install chromium), so the browser tests are skipped"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = why_not_runnable()
    if reason is None:
        return
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))


# --- what the run saw, for the summary at the end --------------------------------

SHOTS: list[Path] = []
#: page -> variant -> the rule ids (with impact) axe reported below "serious".
AUDITED: dict[str, dict[str, list[str]]] = defaultdict(dict)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not SHOTS:
        return
    terminalreporter.section("browser tests")
    if AUDITED:
        audits = sum(len(variants) for variants in AUDITED.values())
        terminalreporter.write_line(
            f"axe-core: {audits} audits of {len(AUDITED)} page states; what each page state had "
            f"(a serious or critical finding fails its test):"
        )
        for page in sorted(AUDITED):
            found = sorted({rule for rules in AUDITED[page].values() for rule in rules})
            terminalreporter.write_line(f"  {page}: {', '.join(found) or 'no violations'}")
    elif not AXE_JS.exists():
        terminalreporter.write_line(NO_AXE)
    count = len(list(SCREENSHOTS.rglob("*.png")))
    terminalreporter.write_line(f"screenshots: {count} in {SCREENSHOTS}")


# --- the portal, served for real ------------------------------------------------


class QuietHandler(WSGIRequestHandler):
    """werkzeug's request handler without its access log, which would name the client's address."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class Portal:
    url: str
    app: Flask
    officers: list[OfficerAccount] = field(default_factory=list)
    setup_token: str | None = None

    def link(self, path: str) -> str:
        return self.url + path


@contextmanager
def serve_portal(path: Path, *, with_officers: bool = True) -> Iterator[Portal]:
    database_url = f"sqlite:///{path / 'whistle.db'}"
    settings = f'database_url = "{database_url}"\norganisation_name = "Northshire Council"\n'
    create_instance(path, CHEAP_KDF + LOOSE_LIMITS + settings)
    upgrade(database_url)
    app = create_app(Settings.load(path))
    portal = Portal(url="", app=app)
    if with_officers:
        portal.officers = [
            add_officer(app, "Alice Officer", "alice@example.org", admin=True),
            add_officer(app, "Bob Officer", "bob@example.org"),
        ]
    else:
        rt = runtime_of(app)
        with rt.session_factory() as db, db.begin():
            portal.setup_token = officers.new_setup_token(db, rt.clock.now())
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="portal", daemon=True)
    thread.start()
    portal.url = f"http://127.0.0.1:{server.server_port}"
    try:
        yield portal
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        runtime_of(app).engine.dispose()


@pytest.fixture
def portal(tmp_path: Path) -> Iterator[Portal]:
    """A portal with two officers, Alice (an administrator) and Bob."""
    with serve_portal(tmp_path / "instance") as served:
        yield served


@pytest.fixture
def fresh_portal(tmp_path: Path) -> Iterator[Portal]:
    """A portal with no officer yet, and a one-time setup link."""
    with serve_portal(tmp_path / "instance", with_officers=False) as served:
        yield served


# --- the browser ------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def axe_source() -> str | None:
    return AXE_JS.read_text(encoding="utf-8") if AXE_JS.exists() else None


@dataclass(frozen=True)
class Variant:
    """A kind of visitor: screen size, script on or off, colour scheme."""

    name: str
    width: int
    height: int
    #: JavaScript runs in the page at all (Playwright's java_script_enabled).
    scripts: bool = True
    #: static/whistle.js is served (off: the page is as a browser without script sees it).
    enhanced: bool = True
    dark: bool = False
    mobile: bool = False

    @property
    def audited(self) -> bool:
        """axe-core needs script in the page (it runs asynchronously)."""
        return self.scripts


PHONE = {"width": 390, "height": 844, "mobile": True}
DESKTOP = {"width": 1280, "height": 900}
VARIANTS = [
    Variant("phone-js", **PHONE),
    Variant("phone-no-js", **PHONE, scripts=False, enhanced=False),
    Variant("desktop-js", **DESKTOP),
    Variant("desktop-no-js", **DESKTOP, scripts=False, enhanced=False),
    # The narrowest screen WCAG's reflow criterion names, in dark mode, with the page a
    # browser without script sees (whistle.js is not served) audited by axe-core.
    Variant("narrow-320-dark-no-js", width=320, height=640, mobile=True, enhanced=False, dark=True),
]


class Tab:
    """One page of a browser context, with the checks every page must pass.

    ``check(name)`` takes a screenshot, audits the page with axe-core (when the
    variant runs script), and checks what holds on every page: one h1, a title
    naming the portal, no sideways scrolling, no error in the console (a CSP
    violation is one), and no request to any host but the portal.
    """

    def __init__(self, context: BrowserContext, variant: Variant, portal: Portal, axe: str | None, who: str):
        self.context = context
        self.variant = variant
        self.portal = portal
        self.axe = axe
        self.who = who
        self.page: Page = context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("response", self._response)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.route("**/*", self._route)

    def _console(self, message: ConsoleMessage) -> None:
        # A page sent back with errors has a 4xx status, which Chromium logs as a failed
        # load; failed loads are judged in _response instead, where the kind is known.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console error: {message.text}")

    def _response(self, response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            self.problems.append(f"{response.status} for {response.url}")

    def _route(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).netloc != urlsplit(self.portal.url).netloc:
            self.problems.append(f"request to another host: {url}")
            route.abort()
        elif not self.variant.enhanced and urlsplit(url).path.endswith("/whistle.js"):
            route.fulfill(status=200, content_type="text/javascript", body="")
        else:
            route.continue_()

    def goto(self, path: str) -> None:
        self.page.goto(self.portal.link(path))

    def visit(self, path: str, heading: str, name: str) -> None:
        """Go to ``path``, see the page whose h1 is ``heading``, and check it as ``name``."""
        self.goto(path)
        expect(self.page.get_by_role("heading", level=1)).to_have_text(heading)
        self.check(name)

    def sent_back(self, button: str, name: str, title: str = "") -> None:
        """Press ``button`` on a form that will be refused: the page comes back marked as an
        error (its title starts "Error: ", then ``title``), and passes every check as ``name``."""
        self.page.get_by_role("button", name=button).click()
        expect(self.page).to_have_title(re.compile("^Error: " + re.escape(title)))
        self.check(name)

    def check(self, name: str) -> None:
        page = self.page
        page.wait_for_load_state("load")
        assert self.problems == [], (name, self.problems)
        assert page.locator("h1").count() == 1, f"{name}: a page has exactly one h1"
        assert page.title().endswith("Northshire Council speak-up portal"), page.title()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name}: the page scrolls sideways by {overflow}px at {self.variant.width}px"
        folder = SCREENSHOTS / self.variant.name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{len([p for p in SHOTS if p.parent == folder]) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        SHOTS.append(path)
        if self.axe and self.variant.audited:
            self.audit(name)

    def audit(self, name: str) -> None:
        violations = self.page.evaluate(
            "options => axe.run(document, options).then(r => r.violations)", AXE_OPTIONS
        )
        failing = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
            for v in violations
            if v["impact"] in FAILING_IMPACTS
        ]
        AUDITED[name][self.variant.name] = [f"{v['id']} ({v['impact']})" for v in violations]
        assert failing == [], f"axe-core on {name} ({self.variant.name}):\n" + "\n".join(failing)


@pytest.fixture
def open_tab(browser: Browser, axe_source: str | None) -> Iterator[Any]:
    """``open_tab(variant, portal, who)``: a tab in a browser context of its own (its own cookies)."""
    contexts: list[BrowserContext] = []

    def open_(variant: Variant, portal: Portal, who: str = "reporter") -> Tab:
        context = browser.new_context(
            viewport={"width": variant.width, "height": variant.height},
            is_mobile=variant.mobile,
            has_touch=variant.mobile,
            java_script_enabled=variant.scripts,
            color_scheme="dark" if variant.dark else "light",
            reduced_motion="no-preference",
            locale="en-GB",
        )
        context.set_default_timeout(10_000)
        if axe_source and variant.audited:
            context.add_init_script(script=axe_source)
        contexts.append(context)
        return Tab(context, variant, portal, axe_source, who)

    yield open_
    for context in contexts:
        context.close()
