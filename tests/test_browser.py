"""The page, end to end: Debian's chromium (through Playwright) against a real `flask run` server on loopback,
serving the 12 × 12 `wide` model built in this test run and a copy of it marked synthetic.

Every expectation about labels and numbers is computed from the API's own answer for the same sentence, never
hard-coded. Tests wait on the page's `data-ready` attribute (set after a draw has painted), never on sleeps.
Screenshots go to tests/artifacts/ (gitignored).

    python -m pytest tests/test_browser.py -q
"""

import base64
import re
from urllib.parse import urlencode

import numpy as np
import pytest

from browser_support import (ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, LiveServer, png_size, shown_token,
                             synthetic_copy)

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

TROPHY = "The trophy doesn't fit in the suitcase because it is too big."
REPEATED = "The cat sat on the mat. The cat sat on the mat."
MARKUP = "<img src=x onerror=alert(1)>"
LABELS = {"broadcaster", "diagonal", "previous-token", "local", "long-range", "duplicate-token", "induction",
          "diffuse", "mixed"}
NEAR = ("diagonal", "previous-token", "local")
READY = "body[data-ready='true']"
LAPTOP = {"width": 1366, "height": 768}
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


@pytest.fixture(scope="module")
def server(wide_model, tiny_model, tmp_path_factory):
    models = tmp_path_factory.mktemp("browser-models")
    (models / "wide").symlink_to(wide_model, target_is_directory=True)
    (models / "tiny").symlink_to(tiny_model, target_is_directory=True)
    synthetic_copy(wide_model, models / "planted")
    live = LiveServer(models, "wide", tmp_path_factory.mktemp("logs") / "server.log")
    yield live
    live.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def tab(browser, server):
    """A fresh 1366×768 page; the test fails if the page logged a console error or opened a dialog."""
    context = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    tab = Tab(context.new_page(), server.url)
    yield tab
    context.close()
    assert not tab.unexpected_errors(), f"console errors: {tab.unexpected_errors()}"
    assert not tab.dialogs, f"the page opened dialogs: {tab.dialogs}"


def summary(server, text, **options):
    status, body = server.api(text=text, model="wide", format="summary", **options)
    assert status == 200, body
    return body


def chips(page, selector):
    return page.locator(selector).all_text_contents()


def shot(page, name, element=None):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (page.locator(element) if element else page).screenshot(path=str(ARTIFACTS / name))


def set_layer(tab, layer):
    tab.page.locator("#layer").fill(str(layer))
    tab.ready()


def hover_cell(page, query, key):
    canvas = page.locator("#matrix")
    box = canvas.bounding_box()
    left, top, cell = (float(canvas.get_attribute(f"data-{name}")) for name in ("left", "top", "cell"))
    page.mouse.move(box["x"] + left + (key + 0.5) * cell, box["y"] + top + (query + 0.5) * cell)


def test_page_loads_the_first_preset_with_every_head_labelled(tab, server):
    page = tab.open()
    expected = summary(server, TROPHY)
    assert page.input_value("#text") == TROPHY
    assert chips(page, "#tokens li") == [shown_token(token) for token in expected["tokens"]]
    assert page.locator(".thumb").count() == expected["n_head"] == 12
    labels = chips(page, ".thumb .chip")
    assert labels == [head["label"] for head in expected["heads"][0]]
    assert set(labels) <= LABELS
    assert page.locator(".thumb .head-number").first.text_content() == "H0"
    counts = page.text_content("#counts")
    for label, count in expected["layers"][0]["counts"].items():
        assert (f"{count} {label}" in counts) == (count > 0)
    assert page.locator("#synthetic-banner").is_hidden()
    shot(page, "grid-1366x768.png")


def test_a_preset_replaces_the_sentence_and_its_tokens(tab, server):
    page = tab.open()
    page.get_by_role("button", name="Repeated phrase").click()
    tab.ready()
    expected = summary(server, REPEATED)
    assert page.input_value("#text") == REPEATED
    assert chips(page, "#tokens li") == [shown_token(token) for token in expected["tokens"]]
    assert chips(page, ".thumb .chip") == [head["label"] for head in expected["heads"][0]]
    assert REPEATED.replace(" ", "+") in page.url


def test_the_layer_slider_shows_that_layers_heads_and_counts(tab, server):
    page = tab.open()
    expected = summary(server, TROPHY)
    for layer in (5, 11):
        set_layer(tab, layer)
        assert page.text_content("#layer-value").startswith(f"{layer} ")
        assert page.locator(".thumb").count() == 12
        assert chips(page, ".thumb .chip") == [head["label"] for head in expected["heads"][layer]]
        assert page.text_content("#counts").startswith(f"Layer {layer}:")
        assert f"layer={layer}" in page.url


def test_quick_layer_switches_end_on_the_last_layers_url_and_are_timed_for_the_benchmark(tab):
    page = tab.open()
    page.focus("#layer")
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    tab.ready()  # the permalink is written after the frame; ready waits for it
    assert page.input_value("#layer") == "5" and "layer=5" in page.evaluate("location.hash")
    latest = "(name) => { const entry = performance.getEntriesByName(name).at(-1); " \
             "return { start: entry.startTime, end: entry.startTime + entry.duration, detail: entry.detail }; }"
    switch, draw = (page.evaluate(latest, f"twelve-heads:{name}") for name in ("layer-switch", "draw"))
    assert switch["detail"]["to"] == draw["detail"]["layer"] == 5 and switch["end"] == draw["end"]
    assert switch["start"] <= draw["start"] and not draw["detail"]["focused"] and draw["detail"]["gridMs"] >= 0


def test_clicking_a_head_opens_it_and_hovering_a_cell_shows_query_key_and_value(tab, server):
    page = tab.open()
    set_layer(tab, 2)
    page.locator(".thumb[data-head='3']").click()
    tab.ready()
    expected = summary(server, TROPHY)["heads"][2][3]
    assert page.locator("#focus").is_visible() and page.locator("#grid-area").is_hidden()
    assert page.text_content("#focus-title") == "Layer 2 · head 3"
    assert page.text_content("#focus-chip") == expected["label"]
    assert page.text_content("#focus-reason") == expected["reason"]

    status, dense = server.api(text=TROPHY, model="wide", format="json", layer=2)
    assert status == 200
    tokens = dense["tokens"]
    query, key = tokens.index(" it"), tokens.index(" trophy")
    hover_cell(page, query, key)
    tab.ready()
    tooltip = page.locator("#tooltip")
    assert tooltip.is_visible()
    text = tooltip.text_content()
    assert f"query{query} “␣it”" in text and f"key{key} “␣trophy”" in text
    shown = float(text.split("attention")[1].split()[0])
    assert shown == pytest.approx(dense["attention"][0][3][query][key], abs=1.1e-4)
    assert page.text_content("#top-title") == f"Query {query} “␣it” attends most to"
    top = [float(value) for value in chips(page, "#top-keys .amount")]
    assert top == sorted(top, reverse=True) and len(top) == 5
    assert top[0] == pytest.approx(max(dense["attention"][0][3][query]), abs=1.1e-4)
    shot(page, "focused-head.png")


def test_the_keyboard_moves_between_heads_and_layers_and_enter_and_esc_open_and_close(tab, server):
    page = tab.open()
    page.focus(".thumb[data-head='0']")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowUp")
    tab.ready()
    assert page.get_attribute(".thumb.selected", "data-head") == "1"
    assert page.evaluate("document.activeElement.dataset.head") == "1"
    assert page.input_value("#layer") == "1"
    assert page.get_attribute(".thumb[data-head='1']", "aria-label").startswith("layer 1 head 1: ")

    page.keyboard.press("Enter")
    tab.ready()
    assert page.text_content("#focus-title") == "Layer 1 · head 1"
    page.keyboard.press("ArrowRight")
    tab.ready()
    assert page.text_content("#focus-title") == "Layer 1 · head 2"
    page.focus("#matrix")
    page.keyboard.press("ArrowUp")
    tab.ready()
    n_tokens = len(summary(server, TROPHY)["tokens"])
    assert page.locator("#tooltip").is_visible()
    assert f"query{n_tokens - 2} " in page.text_content("#tooltip")

    page.keyboard.press("Escape")
    tab.ready()
    assert page.locator("#focus").is_hidden() and page.locator("#grid").is_visible()
    assert page.evaluate("document.activeElement.dataset.head") == "2"
    page.keyboard.press("ArrowDown")
    tab.ready()
    assert page.input_value("#layer") == "0"


def test_a_permalink_restores_text_layer_head_and_toggles(tab, server, browser):
    fragment = "#" + urlencode({"text": REPEATED, "model": "wide", "layer": 4, "head": 6, "bos": 1, "sink": 1})
    page = tab.open(fragment)
    expected = summary(server, REPEATED, prepend_bos=True, sink_aware=True)
    assert page.input_value("#text") == REPEATED
    assert page.input_value("#layer") == "4"
    assert page.is_checked("#prepend-bos") and page.is_checked("#sink-aware")
    assert chips(page, "#tokens li")[0] == "<|endoftext|>"
    assert page.text_content("#focus-title") == "Layer 4 · head 6"
    assert page.text_content("#focus-chip") == expected["heads"][4][6]["label"]

    # Round trip: the URL the page writes for a view opens that view again.
    page.keyboard.press("Escape")
    tab.ready()
    set_layer(tab, 7)
    page.locator(".thumb[data-head='2']").click()
    tab.ready()
    page.click("#sink-aware")
    tab.ready()
    relabelled = summary(server, REPEATED, prepend_bos=True, sink_aware=False)
    assert page.text_content("#focus-chip") == relabelled["heads"][7][2]["label"]
    context = browser.new_context(viewport=LAPTOP)
    again = Tab(context.new_page(), server.url)
    again.page.goto(page.url)
    again.ready()
    assert again.page.input_value("#text") == REPEATED
    assert again.page.input_value("#layer") == "7"
    assert again.page.text_content("#focus-title") == "Layer 7 · head 2"
    assert again.page.is_checked("#prepend-bos") and not again.page.is_checked("#sink-aware")
    assert not again.unexpected_errors()
    context.close()


def test_the_lesson_reveals_and_checks_each_prediction_against_this_sentence(tab, server):
    page = tab.open()
    page.get_by_role("button", name="Repeated phrase").click()
    tab.ready()
    result = summary(server, REPEATED)
    last, heads, layers = result["n_layer"] - 1, result["heads"], result["layers"]

    def near(layer):
        return sum(layers[layer]["counts"][label] for label in NEAR)

    answer = "first" if near(0) > near(last) else "last" if near(0) < near(last) else "same"
    wrong = "same" if answer != "same" else "first"
    reach = sorted(range(result["n_head"]), key=lambda head: (-heads[last][head]["scores"]["long_range"], head))[0]
    early, late = heads[0][0]["label"], heads[last][7]["label"]
    broadcasters = [layer["counts"]["broadcaster"] for layer in layers]
    most = [layer for layer, count in enumerate(broadcasters) if count == max(broadcasters)]

    card = "[data-experiment='{}']".format
    assert page.locator(f"{card('shapes')} .reveal").is_disabled()
    page.select_option("#predict-shapes-layer", wrong)
    page.select_option("#predict-reach-head", str(reach))
    page.select_option("#predict-pair-early", early)
    page.select_option("#predict-pair-late", late)
    page.select_option("#predict-broadcasters-count", str(broadcasters[last]))
    page.select_option("#predict-broadcasters-most", str(most[0]))
    for experiment in ("shapes", "reach", "pair", "broadcasters"):
        page.click(f"{card(experiment)} .reveal")
    tab.ready()

    answer_text = {"first": "layer 0", "last": f"layer {last}", "same": "the same number"}[answer]
    assert page.text_content(f"{card('shapes')} .verdict") == "✗ Not this time."
    assert page.text_content(f"{card('shapes')} .answer").endswith(
        f"layer 0 has {near(0)}, layer {last} has {near(last)}. Broadcasters: layer 0 has {broadcasters[0]}, "
        f"layer {last} has {broadcasters[last]}. Answer: {answer_text}.")
    assert page.text_content(f"{card('reach')} .verdict") == "✓ Right."
    share = round(heads[last][reach]["scores"]["long_range"] * 100)
    assert page.text_content(f"{card('reach')} .answer").startswith(
        f"Head {reach} reaches farthest at layer {last}: {share}% of its attention goes 5 or more tokens back")
    assert page.text_content(f"{card('pair')} .verdict") == "✓ Right: both."
    assert page.text_content(f"{card('pair')} .answer").startswith(f"Layer 0 head 0 is {early} (")
    assert f"Layer {last} head 7 is {late} (" in page.text_content(f"{card('pair')} .answer")
    assert page.text_content(f"{card('broadcasters')} .verdict") == "✓ Right: both."
    assert page.text_content(f"{card('broadcasters')} .answer").startswith(f"Layer {last} has {broadcasters[last]} ")
    assert page.locator(f"{card('broadcasters')} .bars .column").count() == result["n_layer"]
    shot(page, "lesson-1366x768.png")
    page.set_viewport_size({"width": LAPTOP["width"], "height": 1400})  # the whole panel, not its scrolled part
    shot(page, "lesson-panel.png", element=".lesson")
    page.set_viewport_size(LAPTOP)

    page.click(f"{card('reach')} .show-me")
    tab.ready()
    assert page.text_content("#focus-title") == f"Layer {last} · head {reach}"


@pytest.mark.parametrize("view", ["grid", "focus"])
def test_the_grid_and_a_focused_head_download_as_png(tab, view):
    page = tab.open()
    if view == "focus":
        page.locator(".thumb[data-head='4']").click()
        tab.ready()
    with page.expect_download() as download_info:
        page.click(f"#{view}-png")
    download = download_info.value
    suffix = "L0H4.png" if view == "focus" else "L0.png"
    assert download.suggested_filename == f"twelve-heads_wide_{suffix}"
    data = open(download.path(), "rb").read()
    width, height = png_size(data)
    assert width >= 1000 and height >= 600 and len(data) > 20_000
    (ARTIFACTS / f"download-{view}.png").write_bytes(data)


def test_markup_in_a_sentence_is_shown_as_text_and_never_run(tab, server):
    page = tab.open()
    page.fill("#text", MARKUP)
    page.click("#look")
    tab.ready()
    expected = summary(server, MARKUP)
    assert page.locator("img").count() == 0
    assert chips(page, "#tokens li") == [shown_token(token) for token in expected["tokens"]]
    assert "".join(chips(page, "#tokens li")).replace("␣", " ") == MARKUP
    page.locator(".thumb[data-head='0']").click()
    tab.ready()
    assert page.locator("img").count() == 0
    assert tab.dialogs == []


def test_an_empty_sentence_shows_the_servers_message(tab, server):
    page = tab.open()
    status, body = server.api(text="   ", model="wide")
    assert status == 400
    tab.allowed.append("status of 400")  # the browser logs the failed request itself
    page.fill("#text", "   ")
    page.click("#look")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error") == body["error"]
    assert page.locator(".thumb").first.is_hidden()
    assert "Traceback" not in page.content()


def test_a_synthetic_model_always_shows_the_banner(tab):
    page = tab.open()
    assert page.locator("#model-picker").is_visible()
    page.select_option("#model", "planted")
    tab.ready()
    banner = page.locator("#synthetic-banner")
    assert banner.is_visible()
    assert "synthetic model with planted heads" in banner.text_content()
    assert "not GPT-2" in banner.text_content()
    assert "model=planted" in page.url
    shot(page, "synthetic-banner.png")
    page.select_option("#model", "wide")
    tab.ready()
    assert banner.is_hidden()


def test_a_long_sentence_fetches_each_layer_as_it_is_shown(tab, server):
    long_text = " ".join([TROPHY, REPEATED, "apples, pears, plums, cherries, grapes, lemons, limes."] * 5)
    expected = summary(server, long_text)
    assert expected["n_tokens"] > 192, "the sentence must be long enough for per-layer fetching"
    page = tab.open("#" + urlencode({"text": long_text, "model": "wide", "layer": 9}))
    assert page.locator(".thumb.pending").count() == 0
    assert chips(page, ".thumb .chip") == [head["label"] for head in expected["heads"][9]]
    assert "each thumbnail pixel shows the largest value" in page.text_content("#pool-note")
    page.locator(".thumb[data-head='5']").click()
    tab.ready()
    status, layer = server.api(text=long_text, model="wide", format="packed", layer=9)
    assert status == 200 and layer["attention_layers"] == [9]
    values = np.frombuffer(base64.b64decode(layer["attention_packed"]["data"]), dtype="<u2")
    per_head = expected["n_tokens"] * (expected["n_tokens"] + 1) // 2
    hover_cell(page, 60, 57)  # cells are ~2 px here: read back which cell the pointer landed on
    tab.ready()
    found = re.fullmatch(r"query(\d+) “.*”key(\d+) “.*”attention([\d.]+)", page.text_content("#tooltip"))
    assert found, page.text_content("#tooltip")
    query, key, shown = int(found[1]), int(found[2]), float(found[3])
    assert abs(query - 60) <= 1 and abs(key - 57) <= 1
    value = values[5 * per_head + query * (query + 1) // 2 + key] / layer["attention_packed"]["scale"]
    assert shown == pytest.approx(value, abs=1e-4)


def test_a_smaller_model_adapts_the_slider_grid_and_lesson(tab, server):
    page = tab.open("#" + urlencode({"text": TROPHY, "model": "tiny", "layer": 7}))
    status, expected = server.api(text=TROPHY, model="tiny")
    assert status == 200, expected
    last, heads = expected["n_layer"] - 1, expected["n_head"]
    assert page.get_attribute("#layer", "max") == str(last) and page.input_value("#layer") == str(last)
    assert page.locator(".thumb").count() == heads
    assert page.text_content("[data-experiment='pair'] h3") == f"3. Layer 0 head 0 vs layer {last} head {heads - 1}"
    assert page.locator("#predict-reach-head option").count() == heads + 1
