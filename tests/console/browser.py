"""What the console's browser checks share: Debian's chromium driven by Playwright, and the
bytes each page moved.

Playwright's own browser download cannot work where the tests run, so the browser is the
system's (`AEGIS_CHROMIUM`, default /usr/bin/chromium), sandbox off (it runs as the CI user in
a container)."""

import json
import os
import sys
from contextlib import contextmanager

from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("AEGIS_CHROMIUM", "/usr/bin/chromium")
# Generous: a loaded 2-core machine runs the host, the agents and the browser at once.
TIMEOUT_MS = 60_000


@contextmanager
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Weight:
    """Bytes a page moved over the network (headers and bodies), by kind: the console's own
    files (the shell and its assets) and the API's answers. A fresh context has a cold cache."""

    def __init__(self, page):
        self.files = 0
        self.api = 0
        self.requests = []
        page.on("requestfinished", self._finished)

    def _finished(self, request):
        sizes = request.sizes()
        moved = sizes["responseBodySize"] + sizes["responseHeadersSize"]
        path = request.url.split("://", 1)[-1].split("/", 1)[-1]
        if path.startswith("ui"):
            self.files += moved
        else:
            self.api += moved
        self.requests.append({"path": "/" + path, "bytes": moved})

    def report(self):
        return {"files": self.files, "api": self.api, "total": self.files + self.api,
                "requests": self.requests}


def new_page(b):
    context = b.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return context, page, errors


def enter_key(page, key):
    """The console asks for a key (the page has none yet): give it, and go on."""
    page.wait_for_selector("input[name=key]")
    page.fill("input[name=key]", key)
    page.click("form.login button[type=submit]")


def shot(page, name):
    """Saves a screenshot when AEGIS_CONSOLE_SCREENSHOTS names a folder (to look at a failure)."""
    folder = os.environ.get("AEGIS_CONSOLE_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def done(result):
    """Prints the result for the Rust test, which checks it."""
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
