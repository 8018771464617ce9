"""Shared scaffolding for the real-browser tests: Playwright (sync API) drives Debian's Chromium
against pytest-django's live server. Import the fixtures into a test module to use them.

They need DJANGO_ALLOW_ASYNC_UNSAFE=true: Playwright's sync API runs an event loop in the test
thread, and the tests still read and write through the ORM (the Makefile sets it).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect, sync_playwright

from tests.incidents.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous for a loaded CI machine, short enough that a failure is quick.
STEP_MS = 8000

# Runs in every page before the page's own scripts (and outside its CSP): reports CSP violations.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__reportCsp(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} at ${where}`);
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def base_url(live_server: Any, transactional_db: None) -> str:
    """The live server's URL, after checking it answers plain HTTP (no redirect to https)."""
    url = live_server.url
    request = urllib.request.Request(f"{url}/login/", method="GET")  # noqa: S310 (our own http server)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=10) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    assert status == 200, (
        f"GET {url}/login/ answered {status}: the live server redirects (SECURE_SSL_REDIRECT was "
        "read before it was turned off?)"
    )
    return url


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass
class Problems:
    """What went wrong in one browser context: console errors, uncaught exceptions, CSP violations."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return [*self.console_errors, *self.page_errors, *self.csp_violations, *self.failed_requests]


@dataclass
class Session:
    context: BrowserContext
    page: Page
    problems: Problems


@pytest.fixture
def open_session(browser: Browser, base_url: str) -> Iterator[Any]:
    """Open a browser context, log in through the login page, and watch it for problems."""
    contexts: list[BrowserContext] = []

    def _open(user: Any, *, javascript: bool = True) -> Session:
        context = browser.new_context(base_url=base_url, java_script_enabled=javascript)
        contexts.append(context)
        context.set_default_timeout(STEP_MS)
        problems = Problems()
        context.expose_binding("__reportCsp", lambda _source, text: problems.csp_violations.append(text))
        context.add_init_script(CSP_LISTENER)
        page = context.new_page()
        _watch(page, problems)
        login(page, user)
        return Session(context=context, page=page, problems=problems)

    yield _open
    for context in contexts:
        context.close()


def _watch(page: Page, problems: Problems) -> None:
    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.console_errors.append(f"{message.text} ({message.location.get('url', '')})")

    def on_failed(request: Any) -> None:
        # A poll still in flight when the page navigates away is cancelled by the browser: not a fault.
        if request.method == "GET" and request.failure == "net::ERR_ABORTED":
            return
        problems.failed_requests.append(f"{request.method} {request.url}: {request.failure}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.page_errors.append(str(exc)))
    page.on("requestfailed", on_failed)


def login(page: Page, user: Any) -> None:
    page.goto("/login/")
    page.locator("#id_username").fill(user.get_username())
    page.locator("#id_password").fill(PASSWORD)
    with page.expect_navigation():
        page.locator("button[type=submit]").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))
    expect(page.locator(".topbar .who")).to_have_text(user.get_username())
