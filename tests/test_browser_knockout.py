"""Knocking heads out, end to end: Debian's chromium (through Playwright) against a real `flask run` server serving
the planted-heads demo (`twelve-heads export --demo`, built in this run) and a copy of the tiny model exported
as before head masks existed (it cannot knock heads out).

Every expected number comes from the API's own answer for the same sentence and heads (/api/attention with
ablate and predict), never hard-coded; the demo's circuit comes from its planted_heads.json. Tests wait on the
page's `data-ready` attribute, never on sleeps. Screenshots go to tests/artifacts/ (gitignored).

    python -m pytest tests/test_browser_knockout.py -q
"""

import json
import re
import shutil
import subprocess
import sys
from urllib.parse import urlencode

import pytest

from browser_fixtures import REPEATED, browser, check_quiet, hover_cell, new_tab, shot  # noqa: F401 (fixtures)
from browser_support import LiveServer, shown_token

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 800}
DESKTOP = {"width": 1280, "height": 900}
TOUCH_PX = 32  # the least width and height of a control a finger presses
LESSON = "[data-experiment='knockout-repeat']"


def export_before_intervention(source, target):
    """`source` as a model directory from before head masks (manifest version 1): model.onnx takes input_ids
    only, and there is no predict.onnx (as tests/test_intervene.py builds it)."""
    import onnx
    from onnx import numpy_helper

    from twelve_heads.modeldir import write_manifest
    from twelve_heads.server.intervene import head_mask
    copy = shutil.copytree(source, target)
    manifest = json.loads((copy / "manifest.json").read_text())
    graph = onnx.load(str(copy / "model.onnx"))
    ones = head_mask(manifest["n_layer"], manifest["n_head"])[None]
    graph.graph.initializer.append(numpy_helper.from_array(ones, "head_mask"))
    inputs = [graph_input for graph_input in graph.graph.input if graph_input.name != "head_mask"]
    del graph.graph.input[:]
    graph.graph.input.extend(inputs)
    kept = [output for output in graph.graph.output if output.name != "residual"]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    onnx.save(graph, str(copy / "model.onnx"))
    for name in ("predict.onnx", "embedding.bin", "atlas.json"):
        (copy / name).unlink(missing_ok=True)
    del manifest["intervention"], manifest["files"]
    manifest.pop("manifest_version")
    write_manifest(copy, manifest)
    # its own atlas (the copied one is of the graph before the rewrite, and the page would say so)
    subprocess.run([sys.executable, "-m", "twelve_heads.cli", "atlas", str(copy)], check=True, capture_output=True,
                   timeout=600)
    return copy


@pytest.fixture(scope="module")
def server(demo_model, tiny_model, tmp_path_factory):
    models = tmp_path_factory.mktemp("knockout-models")
    (models / "demo").symlink_to(demo_model, target_is_directory=True)
    export_before_intervention(tiny_model, models / "old")
    live = LiveServer(models, "demo", tmp_path_factory.mktemp("logs") / "server.log")
    yield live
    live.close()


@pytest.fixture(scope="module")
def planted(demo_model):
    return json.loads((demo_model / "planted_heads.json").read_text())


@pytest.fixture
def tab(browser, server):
    context, tab = new_tab(browser, server, DESKTOP)
    yield tab
    context.close()
    check_quiet(tab)


def fragment(text=REPEATED, **view):
    return "#" + urlencode({"text": text, "model": "demo", **view})


def knocked(server, heads, text=REPEATED, **options):
    status, body = server.api(text=text, model="demo", format="summary", ablate=heads, predict=True, **options)
    assert status == 200, body
    return body


def toggle(page, head):
    return page.locator(f".thumb[data-head='{head}'] .ko-toggle")


def listed(page):
    return [button.get_attribute("aria-label") for button in page.locator(".ko-list .ko-restore").all()]


def set_layer(tab, layer):
    tab.page.locator("#layer").fill(str(layer))
    tab.ready()


def minus(value):
    """A number as the page prints it: four decimals and a true minus sign."""
    return f"{value:.4f}".replace("-", "−")


def copying_head(planted):
    return tuple(planted["constants"]["copying_head"])


# ---- knocking out and restoring ----

def test_a_thumbnail_button_and_the_k_key_knock_heads_out_in_several_layers_and_restore_brings_them_back(tab, planted):
    page = tab.open(fragment(layer=4))
    layer, head = copying_head(planted)
    set_layer(tab, layer)
    button = toggle(page, head)
    assert button.get_attribute("aria-pressed") == "false"
    assert button.get_attribute("aria-label") == f"Knock out head {layer}.{head}"
    assert page.locator(".ko-panel").is_hidden(), "nothing is knocked out yet"
    button.click()
    tab.ready()
    assert button.get_attribute("aria-pressed") == "true"
    assert page.locator(f".thumb[data-head='{head}']").get_attribute("class").split().count("knocked-out") == 1
    assert listed(page) == [f"Restore head {layer}.{head}"]
    assert f"ablate={layer}.{head}" in page.url

    set_layer(tab, layer + 1)  # a second head, in another layer, by the key on the selected thumbnail
    page.locator(".thumb.selected .thumb-open").focus()  # the button clicked selected its head
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("k")
    tab.ready()
    assert toggle(page, 1).get_attribute("aria-pressed") == "true"
    assert listed(page) == [f"Restore head {layer}.{head}", f"Restore head {layer + 1}.1"]
    assert "ablate=" + f"{layer}.{head},{layer + 1}.1".replace(",", "%2C") in page.url
    assert "<dt>K</dt>" in page.inner_html("#key-list")

    page.keyboard.press("k")  # the key restores what it knocked out
    tab.ready()
    assert toggle(page, 1).get_attribute("aria-pressed") == "false"
    assert listed(page) == [f"Restore head {layer}.{head}"]
    page.get_by_role("button", name=f"Restore head {layer}.{head}").click()
    tab.ready()
    assert page.locator(".ko-panel").is_hidden() and "ablate" not in page.url
    assert page.locator(".thumb.knocked-out").count() == 0


def test_restore_all_brings_back_every_head_and_the_plain_answer(tab, server):
    page = tab.open(fragment(layer=5, ablate="4.11,5.1,5.5"))
    assert len(listed(page)) == 3
    page.get_by_role("button", name="Restore all").click()
    tab.ready()
    assert listed(page) == [] and page.locator(".ko-panel").is_hidden()
    assert "ablate" not in page.url
    plain = knocked(server, [])
    assert page.locator(".thumb .ko-change:visible").count() == 0
    assert page.text_content(".thumb[data-head='1'] .chip") == plain["heads"][5][1]["label"]


def test_the_focused_view_knocks_its_head_out_and_back(tab):
    page = tab.open(fragment(layer=5, head=1))
    focus_toggle = page.locator(".ko-focus-toggle")
    assert focus_toggle.get_attribute("aria-label") == "Knock out head 5.1"
    focus_toggle.click()
    tab.ready()
    assert focus_toggle.get_attribute("aria-pressed") == "true" and listed(page) == ["Restore head 5.1"]
    page.locator("#matrix").focus()
    page.keyboard.press("K")
    tab.ready()
    assert focus_toggle.get_attribute("aria-pressed") == "false" and listed(page) == []


def test_a_thumbnails_button_selects_its_head_so_the_k_key_then_acts_on_that_head(tab):
    page = tab.open(fragment(layer=4))  # head 0 selected
    toggle(page, 11).click()
    tab.ready()
    assert listed(page) == ["Restore head 4.11"]
    assert page.locator(".thumb[data-head='11']").get_attribute("class").split().count("selected") == 1
    page.keyboard.press("k")  # keyboard focus is on 4.11's button: K restores 4.11, not the head selected before
    tab.ready()
    assert listed(page) == [] and "ablate" not in page.url


def test_back_undoes_each_knock_out_and_never_leaves_the_page(tab):
    page = tab.open(fragment(layer=4))
    start = page.evaluate("history.length")
    toggle(page, 11).click()
    tab.ready()
    page.locator(".thumb[data-head='1'] .thumb-open").click()  # study 4.1 and knock it out there
    tab.ready()
    page.keyboard.press("k")
    tab.ready()
    assert listed(page) == ["Restore head 4.1", "Restore head 4.11"] and "head=1" in page.url
    assert page.evaluate("history.length") == start + 3  # 4.11 out, 4.1 studied, 4.1 out
    page.go_back()  # undoes 4.1, still studying it
    tab.ready()
    assert listed(page) == ["Restore head 4.11"] and page.locator("#focus").is_visible()
    page.go_back()  # leaves the head
    tab.ready()
    assert listed(page) == ["Restore head 4.11"] and page.locator("#focus").is_hidden()
    page.go_back()  # undoes 4.11
    tab.ready()
    assert listed(page) == [] and page.url.startswith(tab.base_url) and "text=" in page.url
    page.go_forward()
    tab.ready()
    assert listed(page) == ["Restore head 4.11"] and "ablate=4.11" in page.url


def test_esc_after_a_knock_out_in_a_studied_head_keeps_it_and_back_returns_to_the_head(tab):
    page = tab.open(fragment(layer=5))
    page.locator(".thumb[data-head='1'] .thumb-open").click()
    tab.ready()
    page.keyboard.press("k")
    tab.ready()
    page.keyboard.press("Escape")
    tab.ready()
    assert page.locator("#focus").is_hidden() and listed(page) == ["Restore head 5.1"] and "ablate=5.1" in page.url
    page.go_back()
    tab.ready()
    assert page.locator("#focus").is_visible() and listed(page) == ["Restore head 5.1"]


# ---- the permalink ----

def test_the_permalink_carries_the_knocked_out_heads_through_a_reload_and_back(tab):
    page = tab.open(fragment(layer=5))
    toggle(page, 1).click()
    tab.ready()
    set_layer(tab, 4)
    toggle(page, 11).click()
    tab.ready()
    url = page.url
    assert "ablate=4.11%2C5.1" in url
    page.reload()
    tab.ready()
    assert page.url == url
    assert listed(page) == ["Restore head 4.11", "Restore head 5.1"]
    assert toggle(page, 11).get_attribute("aria-pressed") == "true"
    page.evaluate("location.hash = location.hash.replace('ablate=4.11%2C5.1', 'ablate=5.1')")  # an edited URL
    tab.ready()
    assert listed(page) == ["Restore head 5.1"] and toggle(page, 11).get_attribute("aria-pressed") == "false"


def test_bad_heads_in_the_url_are_ignored_with_a_note_never_a_crash(tab):
    page = tab.open(fragment(layer=4, ablate="4.11,banana,99.1,-1.2,<b>x</b>"))
    assert listed(page) == ["Restore head 4.11"]
    note = page.text_content(".ko-note")
    assert "The link's “banana”, “-1.2”, “<b>x</b>” are not heads and were ignored: write each knocked-out head as " \
        "layer.head, like 4.11." in note
    assert "Head “99.1” is not in model “demo” (layers 0–11, heads 0–11) and was ignored." in note
    assert page.locator(".ko-note b").count() == 0, "a value from the URL is text, never markup"
    assert "ablate=4.11" in page.url and "banana" not in page.url


# ---- what the page shows, against the API ----

def test_the_prediction_panel_shows_the_apis_top_tokens_with_every_head_and_without(tab, server, planted):
    layer, head = copying_head(planted)
    page = tab.open(fragment(layer=layer, ablate=f"{layer}.{head}"))
    prediction = knocked(server, [[layer, head]])["prediction"]
    for side, key in (("clean", "top"), ("ablated", "top_ablated")):
        cells = page.locator(f".ko-table tbody tr td:nth-child({2 if side == 'clean' else 3})").all()
        assert [(int(cell.get_attribute("data-id")), float(cell.get_attribute("data-p"))) for cell in cells] == \
            [(entry["id"], entry["p"]) for entry in prediction[key]]
        assert [cell.locator(".token").text_content() for cell in cells] == \
            [shown_token(entry["token"]) for entry in prediction[key]]
        # under each token, where it stands in the other run: "now …" without the head, "was …" with every head
        other, word = ("ablated", "now") if side == "clean" else ("clean", "was")
        for cell, entry in zip(cells, prediction[key]):
            line = cell.locator(".ko-other")
            assert line.is_visible() and line.text_content().startswith(f"{word} ")
            assert line.text_content().endswith(f" · #{entry[f'rank_{other}']}")
    assert page.text_content(".ko-table thead") == f"#With every headWithout {layer}.{head}"
    assert page.text_content(".ko-prediction h3") == "Next token after “.”"
    # the demo continues the repeat with every head, and not without its copying head
    assert prediction["top"][0]["token"] != prediction["top_ablated"][0]["token"]
    assert prediction["top"][0]["rank_ablated"] > 1


def test_the_strip_shows_each_tokens_change_in_log_probability_on_hover_and_keyboard_focus(tab, server):
    page = tab.open(fragment(layer=5, ablate="4.11"))
    prediction = knocked(server, [[4, 11]])["prediction"]
    expected = [ablated - clean for clean, ablated in zip(prediction["logprob"], prediction["logprob_ablated"])]
    chips = page.locator(".ko-strip .ko-chip")
    assert chips.count() == len(expected) + 1
    assert chips.nth(0).get_attribute("data-change") is None, "nothing predicts the first token"
    assert [float(chips.nth(index + 1).get_attribute("data-change")) for index in range(len(expected))] == \
        pytest.approx(expected, abs=1e-12)
    worst = min(range(len(expected)), key=lambda position: expected[position])
    assert chips.nth(worst + 1).evaluate("chip => getComputedStyle(chip).backgroundColor") != \
        chips.nth(1).evaluate("chip => getComputedStyle(chip).backgroundColor")

    chips.nth(worst + 1).hover()
    tab.ready()
    readout = page.text_content(".ko-readout")
    assert readout.startswith(f"“{shown_token(knocked(server, [[4, 11]])['tokens'][worst + 1])}” (token {worst + 1})")
    assert f"log-probability {minus(prediction['logprob'][worst])} with every head" in readout
    assert f"{minus(prediction['logprob_ablated'][worst])} without" in readout

    page.mouse.move(0, 0)
    chips.nth(1).focus()
    page.keyboard.press("ArrowRight")  # along the tokens, not to the next head
    tab.ready()
    assert page.evaluate("document.activeElement.dataset.index") == "2"
    assert page.text_content(".ko-readout").startswith("“") and "(token 2)" in page.text_content(".ko-readout")
    assert f"{minus(prediction['logprob_ablated'][1])} without" in page.text_content(".ko-readout")
    assert page.locator(".thumb.selected").get_attribute("data-head") == "0"


def test_each_later_heads_change_mark_is_the_apis_and_a_knocked_out_head_still_shows_its_pattern(tab, server, planted):
    layer, head = copying_head(planted)
    page = tab.open(fragment(layer=layer, ablate=f"{layer}.{head}"))
    answer = knocked(server, [[layer, head]])
    assert page.locator(".thumb .ko-change:visible").count() == 0, "the knocked-out layer itself did not change"
    assert "still compute their patterns" in page.text_content(".ko-layer-note")
    painted = page.locator(f".thumb[data-head='{head}'] canvas.thumb-map").first.evaluate(
        "canvas => { const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;"
        "  const seen = new Set(); for (let i = 0; i < d.length; i += 4) seen.add(d[i] * 65536 + d[i+1] * 256 + d[i+2]);"
        "  return seen.size; }")
    assert painted > 2, "the knocked-out head's thumbnail shows the pattern it computes, not a blank"
    assert page.locator(f".thumb[data-head='{head}'] .ko-tag").is_visible()
    for later in (layer + 1, 11):
        set_layer(tab, later)
        marks = page.locator(".thumb .ko-change")
        assert [float(marks.nth(h).get_attribute("data-change")) for h in range(12)] == \
            [answer["heads"][later][h]["change"] for h in range(12)]
        assert marks.all_text_contents() == [f"Δ{answer['heads'][later][h]['change']:.2f}" for h in range(12)]
    set_layer(tab, layer + 1)
    induction = [h["head"] for h in planted["heads"] if h["role"] == "induction" and h["layer"] == layer + 1]
    assert induction and all(answer["heads"][layer + 1][h]["change"] > 0.1 for h in induction)
    for h in induction:
        assert page.locator(f".thumb[data-head='{h}'] .ko-change-bar").is_visible(), "a visible cue beside the number"
        assert "changed" in page.locator(f".thumb[data-head='{h}'] .thumb-open").get_attribute("aria-label")
    set_layer(tab, layer - 1)
    assert page.locator(".thumb .ko-change:visible").count() == 0
    assert page.text_content(".ko-layer-note").startswith(f"Nothing in layer {layer - 1} changed")


def test_the_focused_view_shows_clean_knocked_out_and_their_difference(tab, server, planted):
    layer, head = copying_head(planted)
    induction = next(h for h in planted["heads"] if h["role"] == "induction" and h["layer"] > layer)
    target = (induction["layer"], induction["head"])
    page = tab.open(fragment(layer=target[0], head=target[1], ablate=f"{layer}.{head}"))
    status, clean = server.api(text=REPEATED, model="demo", format="json", layer=target[0])
    status_out, out = server.api(text=REPEATED, model="demo", format="json", layer=target[0], ablate=[[layer, head]])
    assert status == status_out == 200
    query = 10  # a row of the repeat: with every head it looks at what followed its token's first copy
    key = max(range(query + 1), key=lambda k: clean["attention"][0][target[1]][query][k])
    for view, expected in (("ablated", out), ("clean", clean)):
        page.check(f"#ko-view-{view}")
        tab.ready()
        page.locator("#matrix").scroll_into_view_if_needed()
        hover_cell(page, query, key)
        tab.ready()
        shown = float(re.search(r"attention([0-9.]+)$", page.text_content("#tooltip")).group(1))
        assert shown == pytest.approx(expected["attention"][0][target[1]][query][key], abs=1.1e-4)  # 4 decimals
    page.check("#ko-view-diff")
    tab.ready()
    page.locator("#matrix").scroll_into_view_if_needed()
    hover_cell(page, query, key)
    tab.ready()
    a, b = out["attention"][0][target[1]][query][key], clean["attention"][0][target[1]][query][key]
    assert b - a > 0.3, "the induction head loses its pattern without the copying head"
    numbers = re.search(r"every head([0-9.]+)knocked out([0-9.]+)change([−+]?[0-9.]+)$", page.text_content("#tooltip"))
    assert [float(numbers.group(1)), float(numbers.group(2))] == pytest.approx([b, a], abs=1.1e-4)
    assert numbers.group(3).startswith("−")
    assert page.locator(".ko-diff-legend").is_visible()
    assert "knocked out minus every head" in page.get_attribute("#matrix", "aria-label")
    change = page.locator(".ko-focus-change")
    assert float(change.get_attribute("data-change")) == knocked(server, [[layer, head]])["heads"][target[0]][target[1]]["change"]
    shot(page, "knockout-focus-diff-1280x900.png", full_page=True)


# ---- the lesson ----

def test_the_clean_views_labels_follow_the_sink_toggle_as_the_knocked_out_ones_do(tab, server, planted):
    layer, head = copying_head(planted)
    plain, sink = (server.api(text=REPEATED, model="demo", format="summary", sink_aware=aware)[1]["heads"]
                   for aware in (False, True))
    # a head whose clean label the sink toggle changes, so the test sees whether the clean view relabels; not to
    # "mixed", which the page shows as "pure sink" when the first column was all the head looked at
    target = next((l, h) for l in range(len(plain)) for h in range(len(plain[l]))
                  if plain[l][h]["label"] != sink[l][h]["label"] != "mixed")
    page = tab.open(fragment(layer=target[0], head=target[1], ablate=f"{layer}.{head}"))
    page.check("#ko-view-clean")
    tab.ready()
    assert page.text_content("#focus-chip").strip() == plain[target[0]][target[1]]["label"]
    page.check("#sink-aware")
    tab.ready()
    assert page.text_content("#focus-chip").strip() == sink[target[0]][target[1]]["label"]


def test_the_lesson_checks_the_prediction_against_the_change_over_the_repeat(tab, server, planted):
    page = tab.open(fragment(text="Hello there, friend of mine.", layer=0))
    card = page.locator(LESSON)
    assert "repeats no phrase" in card.locator(".blocked").text_content()
    card.get_by_role("button", name="Load the repeat").click()
    tab.ready()
    assert page.input_value("#text") == REPEATED
    page.select_option("#predict-knockout-repeat-effect", "worse")
    assert card.locator(".reveal").is_disabled(), "nothing is knocked out yet"
    layer, head = copying_head(planted)
    set_layer(tab, layer)
    toggle(page, head).click()
    tab.ready()
    card.locator(".reveal").click()
    tab.ready()
    prediction = knocked(server, [[layer, head]])["prediction"]
    assert card.locator(".verdict").text_content() == "✓ Right."
    answer = card.locator(".answer").text_content()
    assert answer.endswith("Answer: much worse: the repeated tokens become much less expected.")
    ids = knocked(server, [[layer, head]])["ids"]
    repeat = [i for i in range(1, len(ids) - 1) if any(ids[j] == ids[i] and ids[j + 1] == ids[i + 1] for j in range(i))]
    assert len(repeat) >= 4
    mean = sum(prediction["logprob_ablated"][i] - prediction["logprob"][i] for i in repeat) / len(repeat)
    assert f"changed by −{abs(mean):.2f} on average" in answer
    assert page.locator("#predict-knockout-repeat-effect").is_disabled(), "locked once revealed"

    # Knock out an unrelated head instead: the card asks again, and the same guess is now wrong.
    writers = {tuple(planted["constants"][name]) for name in ("copying_head", "counting_head", "predicting_head")}
    unrelated = next((h["layer"], h["head"]) for h in planted["heads"]
                     if h["role"] == "broadcaster" and (h["layer"], h["head"]) not in writers and h["layer"] > 0)
    page.get_by_role("button", name=f"Restore head {layer}.{head}").click()
    tab.ready()
    set_layer(tab, unrelated[0])
    toggle(page, unrelated[1]).click()
    tab.ready()
    assert card.locator(".outcome").is_hidden() and not page.locator("#predict-knockout-repeat-effect").is_disabled()
    card.locator(".reveal").click()
    tab.ready()
    assert card.locator(".verdict").text_content() == "✗ Not this time."
    assert card.locator(".answer").text_content().endswith("Answer: about the same.")
    card.get_by_role("button", name="Show me").click()
    tab.ready()
    assert page.locator("#focus").is_visible()


# ---- a model that cannot knock heads out ----

def test_a_model_exported_before_knock_outs_says_so_and_offers_no_toggle(tab, server):
    models = {entry["name"]: entry for entry in json.loads(server_get(server, "/api/models"))["models"]}
    assert (models["demo"]["can_intervene"], models["old"]["can_intervene"]) == (True, False)
    page = tab.open(fragment(text="The cat sat on the mat.", model="old", ablate="1.2"))
    assert listed(page) == []
    note = page.text_content(".ko-note")
    assert note.startswith("Model “old” was exported before heads could be knocked out: re-export it with "
                           "`twelve-heads export` to knock heads out.")
    assert "ablate" not in page.url
    assert toggle(page, 0).is_disabled()
    assert "re-export" in toggle(page, 0).get_attribute("title")
    assert page.text_content(".ko-hint").startswith("Model “old” was exported before heads could be knocked out")
    assert page.locator(f"{LESSON} .blocked").text_content().startswith("Model “old” was exported before")
    page.locator(".thumb[data-head='0'] .thumb-open").focus()
    page.keyboard.press("k")
    tab.ready()
    assert listed(page) == [] and toggle(page, 0).get_attribute("aria-pressed") == "false"


def server_get(server, path):
    import urllib.request
    with urllib.request.urlopen(f"{server.url}{path}", timeout=30) as response:
        return response.read()


# ---- phones and desktops ----

@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone-360x800", "desktop-1280x900"])
def test_with_heads_knocked_out_nothing_overflows_and_every_control_is_a_touch_target(browser, server, viewport):
    context, tab = new_tab(browser, server, viewport)
    try:
        page = tab.open(fragment(layer=5, ablate="4.11,5.5"))
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        for selector in (".ko-panel", ".ko-table", ".ko-strip", ".grid"):
            bounds = page.locator(selector).bounding_box()
            assert bounds["x"] >= 0 and bounds["x"] + bounds["width"] <= viewport["width"], selector
        cut = page.evaluate("""() => [...document.querySelectorAll('.thumb .chip')]
          .filter((chip) => chip.scrollWidth > chip.clientWidth).map((chip) => chip.textContent)""")
        assert cut == [], "a label cut short beside its Δ"
        assert page.locator(".thumb .ko-change:visible").count() == 12
        controls = page.locator(".thumb .ko-toggle, .ko-restore, .ko-restore-all").all()
        assert len(controls) == 12 + 2 + 1
        for control in controls:
            bounds = control.bounding_box()
            assert bounds["width"] >= TOUCH_PX and bounds["height"] >= TOUCH_PX
        name = f"{viewport['width']}x{viewport['height']}"
        shot(page, f"knockout-grid-{name}.png", full_page=True)
        page.locator(".thumb[data-head='1'] .thumb-open").click()
        tab.ready()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        bounds = page.locator(".ko-focus-toggle").bounding_box()
        assert bounds["width"] >= TOUCH_PX and bounds["height"] >= TOUCH_PX
        shot(page, f"knockout-focus-{name}.png", full_page=True)
    finally:
        context.close()
    check_quiet(tab)
