"""The sentence box and what it shows, in real chromium: the live token count and one limit in tokens, refused
text kept out of the URL, the stale marker after an edit, Enter and Shift+Enter, split characters explained,
the toggles' visible help, and the sink-aware view's pure-sink rows and heads (on the planted-heads demo,
whose broadcasters rest on the first token by construction).

    python -m pytest tests/test_browser_sentence.py -q
"""

from urllib.parse import urlencode

import pytest

from browser_fixtures import (TROPHY, box, browser, chips, hover_cell, serve, shot, summary,  # noqa: F401
                              tab)

pytestmark = pytest.mark.browser

EMOJI = "I love 🎉 parties"
TOO_MANY_CHARACTERS = "word " * 6_000  # 30,000 characters
SET_ASIDE_RGB, EMPTY_ROW_RGB, MASKED_RGB = [240, 196, 140], [253, 240, 224], [224, 224, 224]  # static/heatmap.js


@pytest.fixture(scope="module")
def server(wide_model, tiny_model, demo_model, tmp_path_factory):
    live = serve(wide_model, tiny_model, tmp_path_factory, extra=[("demo", demo_model)])
    yield live
    live.close()


def thumb_pixel(page, head, query, key):
    """[r, g, b] of one cell of a thumbnail's heatmap (a short sentence's thumbnail has one pixel per cell)."""
    return page.evaluate("""([head, query, key]) => {
      const canvas = document.querySelector(`.thumb[data-head='${head}'] canvas`);
      return [...canvas.getContext("2d").getImageData(key, query, 1, 1).data.slice(0, 3)];
    }""", [head, query, key])


def type_into(tab, text):
    tab.page.fill("#text", text)
    tab.ready()


def test_the_token_count_follows_the_text_as_it_is_typed(tab, server):
    page = tab.open()
    status, count = server.api("/api/tokens", text=TROPHY, model="wide")
    assert status == 200 and page.text_content("#draft-count") == f"{count['n_tokens']} of {count['max_tokens']} tokens"
    text = TROPHY + " It was heavy."
    type_into(tab, text)
    _, count = server.api("/api/tokens", text=text, model="wide")
    assert page.text_content("#draft-count") == f"{count['n_tokens']} of 256 tokens"
    page.check("#prepend-bos")
    tab.ready()
    _, with_bos = server.api("/api/tokens", text=text, model="wide", prepend_bos=True)
    assert with_bos["n_tokens"] == count["n_tokens"] + 1
    assert page.text_content("#draft-count") == f"{with_bos['n_tokens']} of 256 tokens"


def test_over_the_limit_the_count_says_so_and_look_is_refused_in_the_same_tokens(tab, server):
    page = tab.open()
    text = "word " * 299 + "word"
    type_into(tab, text)
    assert page.text_content("#draft-count") == "300 tokens: this model reads at most 256"
    assert "over" in page.get_attribute("#draft-count", "class")
    tab.allowed.append("status of 400")
    page.click("#look")
    tab.ready()
    assert page.text_content("#error") == "the sentence has 300 tokens; this model reads at most 256. Shorten it"


def test_too_many_characters_speaks_the_token_limit_and_stays_out_of_the_url(tab, server):
    page = tab.open()
    shown_url = page.url
    message = ("the text has 30,000 characters; this model reads at most 256 tokens (about 1,200 characters of "
               "English). Shorten it")
    status, body = server.api("/api/tokens", text=TOO_MANY_CHARACTERS, model="wide")
    assert (status, body) == (400, {"error": message})
    tab.allowed.append("status of 400")
    type_into(tab, TOO_MANY_CHARACTERS)
    assert page.text_content("#draft-count") == message
    page.click("#look")
    tab.ready()
    assert page.text_content("#error") == message
    assert page.text_content("#draft-count") == "", "said once: the alert below the presets says it"
    assert page.url == shown_url and len(page.url) < 500, "the refused text is not written into the URL"
    assert chips(page, "#tokens li")[1] == "␣trophy", "the sentence shown before stays, marked stale"
    assert "stale" in page.get_attribute("#tokens", "class")


def test_a_permalink_to_a_refused_text_is_taken_out_of_the_url(tab):
    tab.allowed.append("status of 400")
    page = tab.open("#" + urlencode({"text": TOO_MANY_CHARACTERS, "model": "wide"}))
    assert page.text_content("#error").startswith("the text has 30,000 characters;")
    assert "text=" not in page.url
    assert page.input_value("#text") == TOO_MANY_CHARACTERS, "the text stays in the box to be shortened"


def test_an_edit_not_yet_looked_at_is_marked_and_the_preset_shown_stays_highlighted(tab):
    page = tab.open()
    assert page.text_content("#status") == ""
    type_into(tab, "A sentence of my own.")
    assert page.text_content("#status") == ("Edited: the heads below still show the sentence before. Press Look "
                                            "(or Enter) to see yours.")
    assert "edited" in page.get_attribute("#text", "class") and "stale" in page.get_attribute("body", "class")
    assert page.get_attribute("#presets button:text-is('Coreference')", "aria-pressed") == "true"
    page.click("#look")
    tab.ready()
    assert page.text_content("#status") == "" and "stale" not in (page.get_attribute("body", "class") or "")
    assert page.locator("#presets button[aria-pressed='true']").count() == 0
    assert chips(page, "#tokens li")[0] == "A"


def test_enter_looks_and_shift_enter_starts_a_new_line(tab):
    page = tab.open()
    assert page.text_content("#text-hint") == "Enter looks · Shift+Enter starts a new line"
    url = page.url
    page.fill("#text", "First line")
    page.focus("#text")
    page.keyboard.press("End")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    tab.ready()
    assert page.input_value("#text") == "First line\nsecond line" and page.url == url
    page.keyboard.press("Enter")
    tab.ready()
    assert "↵" in "".join(chips(page, "#tokens li")) and "First+line%0Asecond+line" in page.url


def test_pieces_of_a_split_character_are_marked_and_say_which_character(tab, server):
    page = tab.open()
    type_into(tab, EMOJI)
    page.keyboard.press("Enter")
    tab.ready()
    tokens = summary(server, EMOJI)["tokens"]
    fragments = page.locator("#tokens .token.fragment")
    assert fragments.count() == sum("\\x" in token for token in tokens) == 3
    titles = [fragments.nth(index).get_attribute("title") for index in range(3)]
    assert titles[0].endswith("piece 1 of 3 of “🎉” (its bytes f0 9f)")
    assert titles[2].endswith("piece 3 of 3 of “🎉” (its bytes 89)")
    assert page.locator("#fragment-note").is_visible()


def test_both_toggles_have_visible_help(tab):
    page = tab.open()
    for toggle, words in (("prepend-bos", "document-boundary token"), ("sink-aware", "pure sink")):
        help_box = page.locator(f"#{toggle}").locator("xpath=ancestor::span[1]").locator("details")
        assert help_box.locator("p").is_hidden()
        help_box.locator("summary").click()
        assert help_box.locator("p").is_visible() and words in help_box.locator("p").text_content()
        help_box.locator("summary").click()


def test_hiding_the_first_column_shows_pure_sinks_as_such_not_as_empty_mixed_heads(tab, server):
    result = summary(server, TROPHY, model="demo", sink_aware=True)
    pure = [(layer, head) for layer, heads in enumerate(result["heads"]) for head, info in enumerate(heads)
            if info["reason"] == "all attention sits on the first token; nothing is left once it is set aside"]
    assert pure, "the demo has broadcasters that rest on the first token alone"
    layer, head = pure[0]
    page = tab.open("#" + urlencode({"text": TROPHY, "model": "demo", "layer": layer, "sink": 1}))
    thumb = page.locator(f".thumb[data-head='{head}']")
    assert thumb.locator(".chip").text_content() == "pure sink" and thumb.get_attribute("data-tag") == "pure sink"
    assert thumb.locator(".confidence").text_content() == ""
    assert page.locator("#set-aside-key").is_visible() and page.locator("#empty-row-key").is_visible()
    # One pixel per cell: the set-aside first column, a pure-sink row and the masked triangle each have a colour.
    pixels = [thumb_pixel(page, head, query, key) for query, key in ((5, 0), (5, 3), (3, 5))]
    assert pixels == [SET_ASIDE_RGB, EMPTY_ROW_RGB, MASKED_RGB]
    shot(page, "pure-sink-grid.png")

    thumb.click()
    tab.ready()
    assert page.text_content("#focus-chip") == "pure sink"
    assert page.text_content("#focus-reason") == ("pure sink: all attention sits on the first token; nothing is left "
                                                 "once it is set aside.")
    assert page.text_content("#scores-note").startswith("Not measured: ")
    hover_cell(page, 5, 3)
    tab.ready()
    assert "pure sink: nothing left off the first token" in page.text_content("#tooltip")
    assert page.text_content("#top-empty").startswith("Nothing: all of this row's attention is on the first token")
    hover_cell(page, 5, 0)
    tab.ready()
    assert "set aside: the first column" in page.text_content("#tooltip")
    shot(page, "pure-sink-focus.png")


def test_a_sink_aware_reason_says_its_qualifier_once(tab, server):
    page = tab.open("#" + urlencode({"text": TROPHY, "model": "wide", "sink": 1}))
    result = summary(server, TROPHY, sink_aware=True)
    reasons = [info["reason"] for heads in result["heads"] for info in heads]
    assert all("(first token aside) (of the attention" not in reason for reason in reasons)
    local = next(((layer, head) for layer, heads in enumerate(result["heads"]) for head, info in enumerate(heads)
                  if info["label"] in ("local", "long-range")), None)
    assert local, "some head of the wide model is local or long-range with the first column aside"
    page.locator("#layer").fill(str(local[0]))
    tab.ready()
    page.locator(f".thumb[data-head='{local[1]}']").click()
    tab.ready()
    reason = page.text_content("#focus-reason")
    assert reason.endswith("tokens back (of the attention not on the first token)") and "aside" not in reason
    assert box(page, "#focus-reason")["height"] > 0
