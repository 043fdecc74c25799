"""The lesson ("Try this — predict before you click") in real chromium: answers checked against this sentence's
computed result, each with its why; questions a sentence is too short for refused with the reason; predictions
locked once revealed; the hidden labels back once every answer is out; the broadcasters chart drawn to scale.

    python -m pytest tests/test_browser_lesson.py -q
"""

from urllib.parse import urlencode

import pytest

from browser_fixtures import REPEATED, TROPHY, browser, chips, serve, shot, summary, tab  # noqa: F401 (fixtures)
from twelve_heads.server.api import GLOSSARY

pytestmark = pytest.mark.browser

NEAR = ("diagonal", "previous-token", "local")
EXPERIMENTS = ("shapes", "reach", "pair", "broadcasters")
card = "[data-experiment='{}']".format


@pytest.fixture(scope="module")
def server(wide_model, tiny_model, demo_model, tmp_path_factory):
    """The usual models and the planted-heads demo, whose broadcasters are there by construction."""
    live = serve(wide_model, tiny_model, tmp_path_factory, extra=[("demo", demo_model)])
    yield live
    live.close()


def predict_right(page, result):
    """Pick every experiment's right answer, computed from the API's answer (shapes: deliberately wrong)."""
    last, heads, layers = result["n_layer"] - 1, result["heads"], result["layers"]
    near = [sum(layer["counts"][label] for label in NEAR) for layer in layers]
    answer = "first" if near[0] > near[last] else "last" if near[0] < near[last] else "same"
    reach = sorted(range(result["n_head"]), key=lambda head: (-heads[last][head]["scores"]["long_range"], head))[0]
    broadcasters = [layer["counts"]["broadcaster"] for layer in layers]
    most = [layer for layer, count in enumerate(broadcasters) if count == max(broadcasters)]
    page.select_option("#predict-shapes-layer", "same" if answer != "same" else "first")
    page.select_option("#predict-reach-head", str(reach))
    page.select_option("#predict-pair-early", heads[0][0]["label"])
    page.select_option("#predict-pair-late", heads[last][7]["label"])
    page.select_option("#predict-broadcasters-count", str(broadcasters[last]))
    page.select_option("#predict-broadcasters-most", str(most[0]))
    return dict(near=near, answer=answer, reach=reach, broadcasters=broadcasters, most=most, last=last)


def test_the_lesson_reveals_and_checks_each_prediction_against_this_sentence_with_why(tab, server):
    page = tab.open()
    page.get_by_role("button", name="Repeated phrase").click()
    tab.ready()
    result = summary(server, REPEATED)
    heads = result["heads"]
    assert page.locator(f"{card('shapes')} .reveal").is_disabled()
    facts = predict_right(page, result)
    last, near, broadcasters = facts["last"], facts["near"], facts["broadcasters"]
    for experiment in EXPERIMENTS:
        page.click(f"{card(experiment)} .reveal")
    tab.ready()

    answer_text = {"first": "layer 0", "last": f"layer {last}", "same": "the same number"}[facts["answer"]]
    assert page.text_content(f"{card('shapes')} .verdict") == "✗ Not this time."
    assert page.text_content(f"{card('shapes')} .answer") == (
        f"Near-token heads: layer 0 has {near[0]}, layer {last} has {near[last]}. Broadcasters: layer 0 has "
        f"{broadcasters[0]}, layer {last} has {broadcasters[last]}. Answer: {answer_text}.")
    assert page.text_content(f"{card('reach')} .verdict") == "✓ Right."
    share = round(heads[last][facts["reach"]]["scores"]["long_range"] * 100)
    assert page.text_content(f"{card('reach')} .answer").startswith(
        f"Head {facts['reach']} reaches farthest at layer {last}: {share}% of its attention goes 5 or more tokens back")
    assert page.text_content(f"{card('pair')} .verdict") == "✓ Right: both."
    assert page.text_content(f"{card('pair')} .why") == (
        f"Why: layer 0 head 0: {heads[0][0]['reason']}; layer {last} head 7: {heads[last][7]['reason']}.")
    assert page.text_content(f"{card('broadcasters')} .verdict") == "✓ Right: both."
    for experiment in EXPERIMENTS:
        why = page.text_content(f"{card(experiment)} .why")
        assert why.startswith("Why: ") and why.endswith(".")
    shot(page, "lesson-1366x768.png")

    page.click(f"{card('reach')} .show-me")
    tab.ready()
    assert page.text_content("#focus-title") == f"Layer {last} · head {facts['reach']}"


def test_a_revealed_prediction_is_locked_until_the_sentence_changes(tab, server):
    page = tab.open()
    predict_right(page, summary(server, page.input_value("#text")))
    page.click(f"{card('broadcasters')} .reveal")
    tab.ready()
    verdict = page.text_content(f"{card('broadcasters')} .verdict")
    assert page.locator("#predict-broadcasters-count").is_disabled()
    assert page.locator("#predict-broadcasters-most").is_disabled()
    assert not page.locator("#predict-reach-head").is_disabled(), "an answer not revealed can still change"
    assert page.text_content(f"{card('broadcasters')} .verdict") == verdict
    page.get_by_role("button", name="Repeated phrase").click()
    tab.ready()
    assert not page.locator("#predict-broadcasters-count").is_disabled()
    assert page.locator(f"{card('broadcasters')} .outcome").is_hidden()


def test_a_one_token_sentence_is_refused_by_every_question_with_the_reason(tab):
    page = tab.open()
    page.fill("#text", "Hi")
    page.keyboard.press("Enter")
    tab.ready()
    labelled_from = GLOSSARY["scored_from_tokens"]  # the page's questions about labels take the server's word
    for experiment, needed in (("shapes", labelled_from), ("reach", 7), ("pair", labelled_from),
                               ("broadcasters", labelled_from)):
        blocked = page.locator(f"{card(experiment)} .blocked")
        assert blocked.is_visible()
        assert blocked.text_content().startswith(f"This needs a sentence of at least {needed} tokens, and this one "
                                                 "has 1 token: ")
        assert page.locator(f"{card(experiment)} .reveal").is_disabled()
        assert page.locator(f"{card(experiment)} select").first.is_disabled()
    assert "nothing can be 5 or more tokens back" in page.text_content(f"{card('reach')} .blocked")
    # The grid says why no head has a label, instead of twelve "mixed 0%".
    assert set(chips(page, ".thumb .chip")) == {"too short"}
    assert page.text_content("#grid-note").startswith("No head can be labelled yet: one token gives nothing to "
                                                      "choose from.")
    assert chips(page, ".thumb .confidence") == [""] * 12
    # Its only cell is 1.0; the scores, averaged over no row, are not shown as zeros beside it.
    page.locator(".thumb[data-head='0']").click()
    tab.ready()
    assert page.locator("#scores").is_hidden()
    assert page.text_content("#scores-note") == "Not measured: one token gives nothing to choose from."
    assert page.locator("#top-keys li:not([hidden]) .amount").all_text_contents() == ["1.0000"]


def test_hidden_labels_come_back_once_every_answer_is_revealed(tab, server):
    page = tab.open()
    page.check("#hide-labels")
    tab.ready()
    assert set(chips(page, ".thumb .chip")) == {"?"}
    assert page.inner_text("#counts") == "Labels hidden while you predict."
    predict_right(page, summary(server, page.input_value("#text")))
    for experiment in EXPERIMENTS[:-1]:
        page.click(f"{card(experiment)} .reveal")
    tab.ready()
    assert page.is_checked("#hide-labels"), "one answer is still to come"
    page.click(f"{card('broadcasters')} .reveal")
    tab.ready()
    assert not page.is_checked("#hide-labels")
    assert "?" not in chips(page, ".thumb .chip")


def test_the_broadcasters_chart_draws_each_layers_bar_to_scale(tab, server):
    page = tab.open("#" + urlencode({"text": TROPHY, "model": "demo"}))
    result = summary(server, TROPHY, model="demo")
    counts = [layer["counts"]["broadcaster"] for layer in result["layers"]]
    assert len(set(counts)) > 2, "the demo's layers have different numbers of broadcasters"
    predict_right(page, result)
    page.click(f"{card('broadcasters')} .reveal")
    tab.ready()
    bars = page.evaluate("""() => [...document.querySelectorAll("[data-experiment='broadcasters'] .bar")]
      .map((bar) => ({ height: bar.getBoundingClientRect().height, plot: bar.parentElement.getBoundingClientRect().height,
                       count: Number(bar.dataset.count) }))""")
    assert [bar["count"] for bar in bars] == counts
    plot = bars[0]["plot"]
    for bar in bars:
        assert bar["height"] == pytest.approx(plot * bar["count"] / max(counts), abs=0.6), bar
    page.set_viewport_size({"width": 1366, "height": 1600})  # the whole panel, not its scrolled part
    page.locator(f"{card('broadcasters')} .bars").scroll_into_view_if_needed()
    shot(page, "lesson-panel.png", element=".lesson")
