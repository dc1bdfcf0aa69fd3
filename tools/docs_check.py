"""Look at the built docs in a real browser: what a reader sees, not what the Markdown says.

    python tools/docs_check.py SITE_DIR [--screenshots DIR]

Serves the built site on 127.0.0.1, opens three pages in headless Chromium (Debian's
``/usr/bin/chromium`` through ``/usr/bin/chromedriver``, driven by Selenium: no browser is
downloaded) and fails when a page shows what did not render:

* reST markup from a docstring as literal text (``:class:`Money```, ``:meth:``...), or an
  autorefs cross-reference left unresolved (``[`Money`][paygate.money.Money]`` as text);
* a Mermaid diagram's source (or a ``state-diagram`` fence the build hook did not draw);
* on the state machine page, no drawn state diagram: the inline SVG must be there, visible,
  wide enough to read and not cut off at the right.

Each page's screenshot goes to ``--screenshots`` (the reference page: its first screen; the
state machine page: the diagram itself). ``nox -s docs`` runs this after the build;
tests/test_docs_site.py runs it in the test suite where Chromium is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("PAYGATE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("PAYGATE_CHROMEDRIVER", "/usr/bin/chromedriver"))
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)

PAGES = {"index": "", "state-machine": "state-machine/", "reference": "reference/"}

REST_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|exc|data|mod|obj|const):`?\w")
UNRESOLVED_REF = re.compile(r"\]\[paygate[\w.]*\]")
MERMAID_SOURCE = re.compile(r"stateDiagram|flowchart (?:TD|LR)|graph (?:TD|LR)|sequenceDiagram")


class BrowserUnavailable(RuntimeError):
    """No Chromium, chromedriver or Selenium on this machine."""


def browser_unavailable_reason() -> str | None:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not os.access(binary, os.X_OK):
            return f"{binary} not found (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install --group docs)"
    return None


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    """The built site over HTTP on a free port (as a reader gets it: search, assets)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _chromium() -> Iterator[Any]:
    reason = browser_unavailable_reason()
    if reason:
        raise BrowserUnavailable(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="paygate-docs-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # an explicit driver path: Selenium Manager (which would download one) never runs
    driver = webdriver.Chrome(
        options=options, service=Service(str(CHROMEDRIVER), log_output=os.devnull)
    )
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


_DIAGRAMS = """
return Array.from(document.querySelectorAll('svg.state-diagram')).map(svg => {
  const box = svg.getBoundingClientRect();
  return {width: box.width, height: box.height, right: box.right,
          column: svg.closest('article, .md-content, body').getBoundingClientRect().right,
          text: svg.textContent};
});
"""


def check_page(driver: Any, name: str, url: str, screenshots: Path | None) -> list[str]:
    from selenium.webdriver.common.by import By

    driver.get(url)
    problems: list[str] = []
    shown = driver.execute_script("return document.body.innerText")
    for pattern, what in (
        (REST_ROLE, "reST markup shown as text"),
        (UNRESOLVED_REF, "an unresolved cross-reference shown as text"),
        (MERMAID_SOURCE, "a Mermaid diagram's source shown as text"),
    ):
        for match in list(pattern.finditer(shown))[:3]:
            context = shown[max(0, match.start() - 40) : match.end() + 40].replace("\n", " ")
            problems.append(f"{name}: {what}: ...{context}...")
    if "```" in shown or "edges: paygate." in shown:
        problems.append(f"{name}: a fence shown as text (the build hook did not run)")
    if driver.find_elements(By.CSS_SELECTOR, ".mermaid, code.language-mermaid"):
        problems.append(f"{name}: a Mermaid element (needs a script to draw)")
    if screenshots:
        screenshots.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshots / f"{name}.png"))
    if name == "state-machine":
        diagrams = driver.execute_script(_DIAGRAMS)
        if not diagrams:
            problems.append(f"{name}: no state diagram (svg.state-diagram) on the page")
        for diagram in diagrams:
            if diagram["width"] < 300 or diagram["height"] < 300:
                problems.append(f"{name}: the state diagram is too small to read: {diagram}")
            if diagram["right"] > diagram["column"] + 1:
                problems.append(f"{name}: the state diagram is cut off at the right")
            if "pending" not in diagram["text"] or "charged_back" not in diagram["text"]:
                problems.append(f"{name}: the state diagram lacks its states")
        if diagrams and screenshots:
            # a window tall enough for the whole diagram, the header out of its way
            size = driver.get_window_size()
            driver.set_window_size(size["width"], int(diagrams[0]["height"]) + 400)
            driver.execute_script(
                "document.querySelector('.md-header')?.remove();"
                "document.querySelector('svg.state-diagram').scrollIntoView();"
            )
            svg = driver.find_element(By.CSS_SELECTOR, "svg.state-diagram")
            svg.screenshot(str(screenshots / f"{name}-diagram.png"))
            driver.set_window_size(size["width"], size["height"])
    return problems


def check_site(site: Path, screenshots: Path | None = None) -> list[str]:
    """Every problem found on the three pages (empty: the docs render)."""
    missing = [page for page in PAGES.values() if not (site / page / "index.html").is_file()]
    if missing:
        return [f"not built: {site / page / 'index.html'}" for page in missing]
    problems: list[str] = []
    with _serve(site) as base, _chromium() as driver:
        for name, page in PAGES.items():
            problems += check_page(driver, name, base + page, screenshots)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build --site-dir)")
    parser.add_argument("--screenshots", type=Path, help="where to save the screenshots")
    args = parser.parse_args(argv)
    try:
        problems = check_site(args.site, args.screenshots)
    except BrowserUnavailable as error:
        print(f"docs check: no browser: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"docs check: {len(PAGES)} pages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
