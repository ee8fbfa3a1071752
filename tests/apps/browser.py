"""Driving Debian's Chromium with Playwright: page checks every e2e test applies (axe-core, CSP, screenshots)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright

from tests.apps.stack import AXE_JS, CHROMIUM, ROOT

SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 360, "height": 780}


@contextmanager
def chromium() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `make browser-deps` (installs Debian's chromium)")
    if not AXE_JS.exists():
        raise RuntimeError(f"{AXE_JS} is missing: run `make browser-deps` (installs axe-core from npm)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--lang=nl-NL"],
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Checker:
    """Runs axe-core on a page at desktop and phone width, collects CSP violations, takes screenshots."""

    write_screenshots: bool
    #: axe and the 360 px layout checks judge the apps' HTML, which does not depend on the hub's database:
    #: the e2e tests run them on SQLite only (every step and assertion of the flows runs on both).
    page_checks: bool = True
    axe_source: str = field(default_factory=lambda: AXE_JS.read_text())
    console_errors: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> Page:
        page.on("console", lambda m: self.console_errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
        return page

    def axe(self, page: Page) -> list[dict[str, Any]]:
        # Playwright's evaluate runs outside the page's CSP, so the app's strict CSP stays in force.
        page.evaluate(self.axe_source)
        result = page.evaluate("""async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
        }""")
        return [v for v in result if v["impact"] in ("serious", "critical")]

    def check(self, page: Page, name: str) -> None:
        """axe at 1280 px and 360 px (no serious/critical violations), no horizontal scroll at 360 px."""
        if not self.page_checks:
            self.checked.append(name)
            return
        for label, size in (("desktop", DESKTOP), ("360", PHONE)):
            page.set_viewport_size(size)
            bad = self.axe(page)
            assert not bad, f"axe on {name} at {label}: {json.dumps(bad, indent=1)}"
            if label == "360":
                overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, f"{name} scrolls sideways at 360 px ({overflow}px)"
            if self.write_screenshots:
                page.evaluate("window.scrollTo(0, 0)")
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=label == "360")
        page.set_viewport_size(DESKTOP)
        self.checked.append(name)


def new_context(browser: Browser) -> BrowserContext:
    return browser.new_context(viewport=DESKTOP, locale="nl-NL", timezone_id="Europe/Amsterdam")
