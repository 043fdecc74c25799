"""The page, end to end: Debian's chromium (through Playwright) against a real `flask run` server on loopback,
serving the 12 × 12 `wide` model built in this test run, the 2 × 4 `tiny` one and a copy of `wide` marked
synthetic. This file: loading, presets, layers, the focused head, the keyboard, history and permalinks, downloads,
long sentences. The layouts, the lesson and the sentence box have files of their own (test_browser_*.py).

Every expectation about labels and numbers is computed from the API's own answer for the same sentence, never
hard-coded. Tests wait on the page's `data-ready` attribute, never on sleeps. Screenshots go to tests/artifacts/.

    python -m pytest tests/test_browser.py -q
"""

import base64
import json
import re
from urllib.parse import urlencode

import numpy as np
import pytest

from browser_fixtures import (LAPTOP, REPEATED, TROPHY, Tab, browser, chips, hover_cell, server, set_layer, shot,
                              summary, tab)  # noqa: F401 (fixtures)
from browser_support import ARTIFACTS, png_size, shown_token

pytestmark = pytest.mark.browser

MARKUP = "<img src=x onerror=alert(1)>"
LONG_TEXT = " ".join([TROPHY, REPEATED, "apples, pears, plums, cherries, grapes, lemons, limes."] * 5)


def test_page_loads_the_first_preset_with_every_head_labelled(tab, server):
    page = tab.open()
    expected = summary(server, TROPHY)
    assert page.input_value("#text") == TROPHY
    assert chips(page, "#tokens li") == [shown_token(token) for token in expected["tokens"]]
    assert page.locator(".thumb").count() == expected["n_head"] == 12
    assert chips(page, ".thumb .chip") == [head["label"] for head in expected["heads"][0]]
    assert page.locator(".thumb .head-number").first.text_content() == "H0"
    counts = page.text_content("#counts")
    for label, count in expected["layers"][0]["counts"].items():
        assert (f"{count} {label}" in counts) == (count > 0)
    assert page.get_attribute("#presets button:text-is('Coreference')", "aria-pressed") == "true"
    assert page.locator("#synthetic-banner").is_hidden()


def test_a_preset_replaces_the_sentence_and_its_tokens_and_shows_as_the_one_loaded(tab, server):
    page = tab.open()
    page.get_by_role("button", name="Repeated phrase").click()
    tab.ready()
    expected = summary(server, REPEATED)
    assert page.input_value("#text") == REPEATED
    assert chips(page, "#tokens li") == [shown_token(token) for token in expected["tokens"]]
    assert chips(page, ".thumb .chip") == [head["label"] for head in expected["heads"][0]]
    assert REPEATED.replace(" ", "+") in page.url
    pressed = page.locator("#presets button[aria-pressed='true']")
    assert pressed.count() == 1 and pressed.text_content() == "Repeated phrase"


def test_the_layer_slider_shows_that_layers_heads_and_counts(tab, server):
    page = tab.open()
    expected = summary(server, TROPHY)
    for layer in (5, 11):
        set_layer(tab, layer)
        assert page.text_content("#layer-value").startswith(f"{layer} ")
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
    assert [float(value) for value in chips(page, "#scores td:nth-child(2)")[:2]] == \
        [round(expected["scores"]["first"], 2), round(expected["scores"]["self"], 2)]

    status, dense = server.api(text=TROPHY, model="wide", format="json", layer=2)
    assert status == 200
    tokens = dense["tokens"]
    query, key = tokens.index(" it"), tokens.index(" trophy")
    hover_cell(page, query, key)
    tab.ready()
    text = page.locator("#tooltip").text_content()
    assert f"query{query} “␣it”" in text and f"key{key} “␣trophy”" in text
    shown = float(text.split("attention")[1].split()[0])
    assert shown == pytest.approx(dense["attention"][0][3][query][key], abs=1.1e-4)
    assert page.text_content("#top-title") == f"Query {query} “␣it” attends most to"
    row = dense["attention"][0][3][query]
    top = [float(value) for value in chips(page, "#top-keys li:not([hidden]) .amount")]
    assert top == sorted(top, reverse=True) and top[0] == pytest.approx(max(row), abs=1.1e-4)
    assert len(top) == min(5, sum(value >= 0.00005 for value in row)) and min(top) > 0  # never padded with 0.0000


def test_arrows_move_along_and_between_the_rows_of_the_grid_and_through_layers_in_a_studied_head(tab, server):
    page = tab.open()
    columns = len(page.evaluate("getComputedStyle(document.getElementById('grid')).gridTemplateColumns").split())
    assert columns == 6  # two rows of six at 1366 px
    page.focus(".thumb[data-head='0'] .thumb-open")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")  # the row below
    tab.ready()
    assert page.get_attribute(".thumb.selected", "data-head") == str(1 + columns)
    assert page.evaluate("document.activeElement.closest('.thumb').dataset.head") == str(1 + columns)
    page.keyboard.press("ArrowDown")  # no row below the last: stays
    page.keyboard.press("ArrowUp")
    tab.ready()
    assert page.get_attribute(".thumb.selected", "data-head") == "1" and page.input_value("#layer") == "0"
    page.keyboard.press("PageUp")
    tab.ready()
    assert page.input_value("#layer") == "1"
    assert page.get_attribute(".thumb[data-head='1'] .thumb-open", "aria-label").startswith("layer 1 head 1: ")

    page.keyboard.press("Enter")
    tab.ready()
    assert page.text_content("#focus-title") == "Layer 1 · head 1"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowUp")  # a studied head has no rows: ↑ is the next layer, as on the map
    tab.ready()
    assert page.text_content("#focus-title") == "Layer 2 · head 2"
    page.focus("#matrix")
    page.keyboard.press("ArrowUp")
    tab.ready()
    n_tokens = len(summary(server, TROPHY)["tokens"])
    assert f"query{n_tokens - 2} " in page.text_content("#tooltip")

    page.keyboard.press("Escape")
    tab.ready()
    assert page.locator("#focus").is_hidden() and page.locator("#grid").is_visible()
    assert page.evaluate("document.activeElement.closest('.thumb').dataset.head") == "2"
    page.keyboard.press("PageDown")
    tab.ready()
    assert page.input_value("#layer") == "1"


def test_the_map_draws_the_last_layer_on_top_moves_with_the_arrows_and_reads_out_the_head(tab, server):
    page = tab.open()
    expected = summary(server, TROPHY)
    top_left = page.locator("#map").bounding_box()
    page.mouse.move(top_left["x"] + 6, top_left["y"] + 6)  # the top row's first cell
    tab.ready()
    last = expected["n_layer"] - 1
    head = expected["heads"][last][0]
    assert page.text_content("#map-readout") == f"Layer {last} · head 0: {head['label']} " \
                                                f"{round(head['confidence'] * 100)}%"
    page.mouse.move(0, 0)
    page.focus("#map")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowRight")
    tab.ready()
    assert page.input_value("#layer") == "1" and page.get_attribute(".thumb.selected", "data-head") == "1"
    assert page.text_content("#map-readout").startswith("Layer 1 · head 1: ")
    assert page.text_content("#map-readout").endswith("(selected)")
    assert page.evaluate("document.activeElement.id") == "map"  # the map keeps focus while it moves
    page.keyboard.press("Enter")
    tab.ready()
    assert page.text_content("#focus-title") == "Layer 1 · head 1"


def test_a_hand_edited_link_says_what_it_could_not_take(tab, server):
    text = "Hello there my friend"
    status, answer = server.api(text=text, format="summary")  # the default model, as the page will fall back to it
    assert status == 200
    model, last = answer["model"], answer["n_layer"] - 1
    page = tab.open("#" + urlencode({"text": text, "model": "nope", "layer": "99", "head": "<b>"}))
    assert page.text_content("#link-note") == (
        "The link's head “<b>” is not a head number: it was left out. "
        f"The link's model “nope” is not served here: showing “{model}”. "
        f"Layer 99 is not in model “{model}” (layers 0–{last}): showing layer {last}.")
    assert page.locator("#grid").is_visible() and page.input_value("#layer") == str(last)
    shot(page, "link-note.png")
    page.click("#look")  # the next Look is the student's own: the note has said its piece
    tab.ready()
    assert page.locator("#link-note").is_hidden()


def test_esc_closes_the_keyboard_panel_first_then_the_studied_head(tab):
    page = tab.open()
    page.locator(".thumb[data-head='4']").click()
    tab.ready()
    page.click("details.keys summary")
    assert page.locator("#key-list").is_visible()
    page.keyboard.press("Escape")
    tab.ready()
    assert page.locator("#key-list").is_hidden() and page.locator("#focus").is_visible()
    page.keyboard.press("Escape")
    tab.ready()
    assert page.locator("#focus").is_hidden() and page.locator("#grid").is_visible()


def test_back_returns_from_a_studied_head_to_the_grid_and_forward_opens_it_again(tab):
    page = tab.open()
    start_length = page.evaluate("history.length")
    page.locator(".thumb[data-head='4']").click()
    tab.ready()
    assert "head=4" in page.url and page.evaluate("history.length") == start_length + 1
    page.go_back()
    tab.ready()
    assert page.locator("#grid").is_visible() and page.locator("#focus").is_hidden()
    assert "head=" not in page.url and page.url.startswith(tab.base_url)
    page.go_forward()
    tab.ready()
    assert page.text_content("#focus-title") == "Layer 0 · head 4"

    # Esc leaves through the same entry, and the grid's entry is rewritten with the layer studied last.
    page.keyboard.press("PageUp")
    tab.ready()
    page.keyboard.press("Escape")
    tab.ready()
    assert page.locator("#grid").is_visible() and "head=" not in page.url and "layer=1" in page.url
    assert page.evaluate("history.state") is None


def test_a_permalink_restores_text_layer_head_and_toggles(tab, server, browser):
    fragment = "#" + urlencode({"text": REPEATED, "model": "wide", "layer": 4, "head": 6, "bos": 1, "sink": 1})
    page = tab.open(fragment)
    expected = summary(server, REPEATED, prepend_bos=True, sink_aware=True)
    assert page.input_value("#text") == REPEATED and page.input_value("#layer") == "4"
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
    assert again.page.input_value("#text") == REPEATED and again.page.input_value("#layer") == "7"
    assert again.page.text_content("#focus-title") == "Layer 7 · head 2"
    assert again.page.is_checked("#prepend-bos") and not again.page.is_checked("#sink-aware")
    assert not again.unexpected_errors()
    context.close()


@pytest.mark.parametrize("view", ["grid", "focus"])
def test_the_grid_and_a_focused_head_download_as_png_named_for_what_they_show(tab, view):
    page = tab.open()
    page.click("#sink-aware")
    tab.ready()
    if view == "focus":
        page.locator(".thumb[data-head='4']").click()
        tab.ready()
    with page.expect_download() as download_info:
        page.click(f"#{view}-png")
    download = download_info.value
    where = "L0-H4" if view == "focus" else "L0"
    assert download.suggested_filename == f"twelve-heads_wide_{where}_the-trophy-doesnt-fit-in-the_sink.png"
    data = open(download.path(), "rb").read()
    width, height = png_size(data)
    assert width >= 1000 and height >= 600 and len(data) > 20_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
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
    assert page.locator("img").count() == 0 and tab.dialogs == []


def test_a_refused_sentence_shows_the_servers_message_and_keeps_the_last_one_shown_marked_stale(tab, server):
    page = tab.open()
    before = page.url
    status, body = server.api(text="   ", model="wide")
    assert status == 400
    tab.allowed.append("status of 400")  # the browser logs the failed request itself
    page.fill("#text", "   ")
    page.click("#look")
    tab.ready()
    assert page.text_content("#error") == body["error"]
    assert page.locator(".thumb").count() == 12 and page.locator("#grid").is_visible()
    assert page.text_content("#status").startswith("Edited: the heads below still show the sentence before.")
    assert page.url == before and "Traceback" not in page.content()


def test_a_synthetic_model_always_shows_the_banner(tab):
    page = tab.open()
    page.select_option("#model", "planted")
    tab.ready()
    banner = page.locator("#synthetic-banner")
    assert banner.is_visible() and "synthetic model with planted heads" in banner.text_content()
    assert "not GPT-2" in banner.text_content() and "model=planted" in page.url
    page.select_option("#model", "wide")
    tab.ready()
    assert banner.is_hidden()


def test_a_long_sentence_fetches_each_layer_as_it_is_shown(tab, server):
    expected = summary(server, LONG_TEXT)
    assert expected["n_tokens"] > 192, "the sentence must be long enough for per-layer fetching"
    page = tab.open("#" + urlencode({"text": LONG_TEXT, "model": "wide", "layer": 9}))
    assert page.locator(".thumb.pending").count() == 0
    assert chips(page, ".thumb .chip") == [head["label"] for head in expected["heads"][9]]
    assert "each thumbnail pixel shows the largest value" in page.text_content("#pool-note")
    page.locator(".thumb[data-head='5']").click()
    tab.ready()
    status, layer = server.api(text=LONG_TEXT, model="wide", format="packed", layer=9)
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


def test_layers_passed_on_the_way_are_not_fetched_and_a_fetch_no_longer_needed_is_cancelled(tab):
    page = tab.open("#" + urlencode({"text": LONG_TEXT, "model": "wide", "layer": 0}))
    held, sent, finished, failed = [], [], [], []
    answered = {6}  # the layer the student stops on; the others' requests are held unanswered
    layer_of = lambda request: json.loads(request.post_data or "{}").get("layer")  # noqa: E731

    def route(route):
        layer = layer_of(route.request)
        if layer:
            sent.append(layer)
        route.continue_() if not layer or layer in answered else held.append(route)

    page.route("**/api/attention", route)
    page.on("requestfinished", lambda request: layer_of(request) and finished.append(layer_of(request)))
    page.on("requestfailed", lambda request: layer_of(request) and failed.append((layer_of(request), request.failure)))
    page.focus("#layer")
    with page.expect_request(lambda request: layer_of(request) == 1):
        page.keyboard.press("ArrowRight")  # layer 1: its request is sent, and held
    assert page.text_content("#status").startswith("Fetching layer 1's attention")
    assert page.locator(".thumb.pending").count() == 12 and page.locator(".thumb.pending .thumb-map").first.is_hidden()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    tab.ready()
    assert page.input_value("#layer") == "6" and page.locator(".thumb.pending").count() == 0
    assert sent[0] == 1 and sent[-1] == 6  # layers 2–5 are passed within the settling time: not sent at all
    assert failed and failed[0][0] == 1 and "ERR_ABORTED" in failed[0][1]  # no longer shown: cancelled
    assert sorted(layer for layer, _ in failed) == sorted(sent[:-1]), "every layer sent but not shown was cancelled"
    assert finished == [6], "only the layer shown was fetched to the end"
    page.unroute("**/api/attention")


def test_a_smaller_model_adapts_the_slider_grid_and_lesson(tab, server):
    page = tab.open("#" + urlencode({"text": TROPHY, "model": "tiny", "layer": 7}))
    status, expected = server.api(text=TROPHY, model="tiny")
    assert status == 200, expected
    last, heads = expected["n_layer"] - 1, expected["n_head"]
    assert page.get_attribute("#layer", "max") == str(last) and page.input_value("#layer") == str(last)
    assert page.locator(".thumb").count() == heads
    assert page.text_content("[data-experiment='pair'] h3") == f"3. Layer 0 head 0 vs layer {last} head {heads - 1}"
    assert page.locator("#predict-reach-head option").count() == heads + 1
    shot(page, "tiny-model.png")
