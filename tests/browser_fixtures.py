"""Fixtures and helpers shared by the browser tests (tests/test_browser*.py): a real `flask run` server with the
models built in this run, Debian's chromium through Playwright, and a Tab that fails its test on any console
error or dialog. Test modules import the fixtures they use by name.

Tests wait on the page's `data-ready` attribute ("true" once the view matches the state and nothing is on its
way: no request, no URL still to write), never on sleeps."""

import pytest

from browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, LiveServer, synthetic_copy

playwright_api = pytest.importorskip("playwright.sync_api")

TROPHY = "The trophy doesn't fit in the suitcase because it is too big."
REPEATED = "The cat sat on the mat. The cat sat on the mat."
READY = "body[data-ready='true']"
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
SMALL_LAPTOP = {"width": 1280, "height": 720}
TABLET = {"width": 768, "height": 1024}
TIMEOUT_MS = 30_000


class Tab:
    """A page plus what it said: console errors, uncaught exceptions, and any dialog (alert) it opened."""

    def __init__(self, page, base_url):
        self.page, self.base_url = page, base_url
        self.errors, self.dialogs, self.allowed = [], [], []
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("dialog", self.on_dialog)

    def on_dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, fragment: str = ""):
        self.page.goto(f"{self.base_url}/{fragment}")
        self.ready()
        return self.page

    def ready(self):
        self.page.wait_for_selector(READY, state="attached")

    def unexpected_errors(self):
        return [error for error in self.errors if not any(allowed in error for allowed in self.allowed)]


def serve(wide_model, tiny_model, tmp_path_factory, extra=()):
    models = tmp_path_factory.mktemp("browser-models")
    (models / "wide").symlink_to(wide_model, target_is_directory=True)
    (models / "tiny").symlink_to(tiny_model, target_is_directory=True)
    synthetic_copy(wide_model, models / "planted")
    for name, path in extra:
        (models / name).symlink_to(path, target_is_directory=True)
    return LiveServer(models, "wide", tmp_path_factory.mktemp("logs") / "server.log")


@pytest.fixture(scope="module")
def server(wide_model, tiny_model, tmp_path_factory):
    live = serve(wide_model, tiny_model, tmp_path_factory)
    yield live
    live.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def new_tab(browser, server, viewport=LAPTOP):
    context = browser.new_context(viewport=viewport, accept_downloads=True)
    return context, Tab(context.new_page(), server.url)


@pytest.fixture
def tab(browser, server):
    """A fresh 1366×768 page; the test fails if the page logged a console error or opened a dialog."""
    context, tab = new_tab(browser, server)
    yield tab
    context.close()
    check_quiet(tab)


def check_quiet(tab):
    assert not tab.unexpected_errors(), f"console errors: {tab.unexpected_errors()}"
    assert not tab.dialogs, f"the page opened dialogs: {tab.dialogs}"


def summary(server, text, model="wide", **options):
    status, body = server.api(text=text, model=model, format="summary", **options)
    assert status == 200, body
    return body


def chips(page, selector):
    return page.locator(selector).all_text_contents()


def shot(page, name, element=None, full_page=False):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = page.locator(element) if element else page
    target.screenshot(path=str(ARTIFACTS / name), **({} if element else {"full_page": full_page}))


def set_layer(tab, layer):
    tab.page.locator("#layer").fill(str(layer))
    tab.ready()


def box(page, selector):
    return page.locator(selector).bounding_box()


def hover_cell(page, query, key):
    canvas = page.locator("#matrix")
    bounds = canvas.bounding_box()
    left, top, cell = (float(canvas.get_attribute(f"data-{name}")) for name in ("left", "top", "cell"))
    page.mouse.move(bounds["x"] + left + (key + 0.5) * cell, bounds["y"] + top + (query + 0.5) * cell)

