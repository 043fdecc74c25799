"""Compare mode end to end: Debian's chromium (through Playwright) against a real `flask run` server on loopback
serving the 12 × 12 `wide` model built in this test run.

Every expected number is computed from the API's own answers (/api/compare, /api/attention) for the same
sentences, never hard-coded. Tests wait on the page's `data-ready` attribute, never on sleeps. Screenshots go
to tests/artifacts/ (gitignored).

    python -m pytest tests/test_compare_browser.py -q
"""

import json
import urllib.request
from urllib.parse import urlencode

import pytest

from browser_fixtures import browser  # noqa: F401 (the page tests' one Chromium fixture)
from browser_support import ARTIFACTS, LiveServer, png_size, shown_token


pytestmark = pytest.mark.browser

BIG = "The trophy doesn't fit in the suitcase because it is too big."
SMALL = "The trophy doesn't fit in the suitcase because it is too small."
GOOD, NOT_GOOD = ("The film was good, and we stayed until the end.", "The film was not good, and we stayed until the end.")
READY = "body[data-ready='true']"
LAPTOP = {"width": 1366, "height": 768}
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def server(wide_model, tmp_path_factory):
    models = tmp_path_factory.mktemp("compare-browser-models")
    (models / "wide").symlink_to(wide_model, target_is_directory=True)
    live = LiveServer(models, "wide", tmp_path_factory.mktemp("logs") / "server.log")
    yield live
    live.close()


class Tab:
    def __init__(self, browser, base_url):
        self.context = browser.new_context(viewport=LAPTOP, accept_downloads=True)
        self.page = self.context.new_page()
        self.base_url, self.errors = base_url, []
        self.page.set_default_timeout(TIMEOUT_MS)
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def open(self, fragment=""):
        self.page.goto(f"{self.base_url}/{fragment}")
        self.ready()
        return self.page

    def ready(self):
        self.page.wait_for_selector(READY, state="attached")


@pytest.fixture
def tab(browser, server):
    tab = Tab(browser, server.url)
    yield tab
    tab.context.close()
    assert not tab.errors, f"console errors: {tab.errors}"


def compared(server, a, b, **options):
    request = urllib.request.Request(f"{server.url}/api/compare", data=json.dumps({"a": a, "b": b, **options}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def dense(server, text, layer):
    status, body = server.api(text=text, model="wide", format="json", layer=layer)
    assert status == 200, body
    return body["attention"][0]  # (H, T, T)


def fragment(**view):
    return "#" + urlencode({"model": "wide", **view})


def changes_by_rank(comparison):
    heads = [(layer, head, info["change"]) for layer, row in enumerate(comparison["heads"]) for head, info in enumerate(row)]
    return sorted(heads, key=lambda item: (-item[2], item[0], item[1]))


def shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_a_pair_preset_fills_both_boxes_and_every_thumbnail_shows_its_change(tab, server):
    page = tab.open()
    assert page.locator("#compare-box").is_hidden()
    page.get_by_role("button", name="Trophy big / small").click()
    tab.ready()
    expected = compared(server, BIG, SMALL)
    assert page.input_value("#text") == BIG and page.input_value("#text-b") == SMALL
    assert page.locator("#tokens-b li").all_text_contents() == [shown_token(t) for t in expected["b"]["tokens"]]
    assert page.locator(".thumb .change").all_text_contents() == [
        f"Δ{head['change']:.2f}" for head in expected["heads"][0]]
    assert page.locator(".thumb .side-b canvas").first.is_visible()
    assert page.get_attribute("[aria-label='Sentence pairs to compare'] button:has-text('Trophy')", "aria-pressed") == "true"
    note = page.text_content("#compare-note")
    assert note.startswith(f"They first differ at token {expected['alignment']['first_difference']} (“ big” in A, "
                           f"“ small” in B).") and "tokenize differently" not in note
    assert "b=" in page.url and "diff=" not in page.url


def test_the_pages_change_numbers_are_the_servers_through_the_diff_component(tab, server):
    """diff.js's headChange on the packed attention the page holds gives the server's change for every head."""
    page = tab.open(fragment(text=GOOD, b=NOT_GOOD, layer=5))
    expected = compared(server, GOOD, NOT_GOOD)
    computed = page.evaluate("""async () => {
        const { state } = await import("/static/state.js");
        const { headChange } = await import("/static/diff.js");
        const { attentionB, alignment } = state.compare.result;
        return Array.from({ length: 12 }, (_, head) => headChange(
            (q) => state.attention.row(5, head, q, false), (q) => attentionB.row(5, head, q, false), alignment));
    }""")
    assert computed == pytest.approx([head["change"] for head in expected["heads"][5]], abs=1e-4)


def test_different_tokenizations_are_aligned_and_said_so(tab, server):
    page = tab.open()
    page.get_by_role("button", name="Negation (one token more)").click()
    tab.ready()
    expected = compared(server, GOOD, NOT_GOOD)
    alignment = expected["alignment"]
    nA, nB = alignment["n_tokens"]
    assert nB == nA + 1 and alignment["unmatched_b"] == [expected["b"]["tokens"].index(" not")]
    assert page.text_content("#compare-note").startswith(
        f"A and B tokenize differently ({nA} and {nB} tokens): {len(alignment['pairs'])} positions are aligned by "
        "their token ids; “ not” in B has no partner.")
    assert page.locator("#tokens-b li.unmatched").all_text_contents() == ["␣not"]
    assert page.locator("#tokens li.unmatched").count() == 0


def test_the_difference_grid_paints_a_minus_b_on_the_diverging_scale(tab, server):
    layer, head = 11, 0
    page = tab.open(fragment(text=BIG, b=SMALL, layer=layer))
    page.keyboard.press("d")
    tab.ready()
    assert page.locator("body.diff-view").count() == 1 and page.locator(".thumb .side-a canvas").first.is_hidden()
    assert "diff=1" in page.url
    first = compared(server, BIG, SMALL)["alignment"]["first_difference"]
    a, b = dense(server, BIG, layer)[head], dense(server, SMALL, layer)[head]
    limit = float(page.text_content("#diff-max").lstrip("+"))
    probes = [(first - 1, 0), (first, 0), (first, first), (first + 1, 2)]
    # The page's numbers are the packed ones (within 7.6e-6): allow the neighbouring step of the 255-step scale.
    pixels = page.evaluate("""async ([head, cells, values, limit]) => {
        const { DIVERGING_LUT, divergingIndex } = await import("/static/diff.js");
        const colour = (index) => Array.from(DIVERGING_LUT.subarray(3 * index, 3 * index + 3)).join(",");
        const canvas = document.querySelectorAll(".thumb .side-diff canvas")[head];
        const context = canvas.getContext("2d");
        return cells.map(([q, k], at) => {
            const index = divergingIndex(values[at], limit);
            return [Array.from(context.getImageData(k, q, 1, 1).data.subarray(0, 3)).join(","),
                    [index - 1, index, index + 1].filter((i) => i >= 0 && i < 255).map(colour)];
        });
    }""", [head, probes, [a[q][k] - b[q][k] for q, k in probes], limit])
    assert pixels[0][0] == "247,247,247", "a row before the first difference is unchanged: white"
    for painted, allowed in pixels:
        assert painted in allowed
    assert any(painted != "247,247,247" for painted, _ in pixels[1:])
    page.keyboard.press("d")
    tab.ready()
    assert page.locator("body.diff-view").count() == 0 and "diff=1" not in page.url


def test_the_focused_view_shows_a_b_and_their_difference_and_a_querys_two_aligned_rows(tab, server):
    layer, head = 11, 2
    page = tab.open(fragment(text=BIG, b=SMALL, layer=layer))
    page.locator(f".thumb[data-head='{head}']").click()
    tab.ready()
    assert page.text_content("#focus-title") == f"Layer {layer} · head {head}"
    for canvas in ("#matrix-a", "#matrix-b", "#matrix-diff"):
        assert page.locator(canvas).is_visible()
    expected = compared(server, BIG, SMALL)
    assert page.text_content("#focus-confidence") == f"change {expected['heads'][layer][head]['change']:.3f}"
    labels = [expected[side]["heads"][layer][head]["label"] for side in ("a", "b")]
    assert page.text_content("#focus-chip") == f"{labels[0]} (A) · B: {labels[1]}"
    tokens = expected["a"]["tokens"]
    query = tokens.index(" it")
    page.select_option("#compare-query", str(query))
    tab.ready()
    a, b = dense(server, BIG, layer)[head][query], dense(server, SMALL, layer)[head][query]
    rows = page.locator("#row-bars tbody tr")
    assert rows.count() == query + 1
    for key in range(query + 1):
        cells = rows.nth(key).locator("td")
        assert rows.nth(key).locator("th").text_content() == shown_token(tokens[key])
        assert float(cells.nth(0).locator(".amount").get_attribute("title")) == pytest.approx(a[key], abs=1e-4)
        assert float(cells.nth(1).locator(".amount").get_attribute("title")) == pytest.approx(b[key], abs=1e-4)
    biggest = max(range(query + 1), key=lambda key: abs(a[key] - b[key]))
    assert page.text_content("#compare-summary").startswith(
        f"“␣it” → “{shown_token(tokens[biggest])}”: {a[biggest]:.2f} in A, {b[biggest]:.2f} in B")
    trophy = tokens.index(" trophy")
    row = rows.nth(trophy)
    assert row.locator("td").nth(0).locator(".amount").text_content() == f"{a[trophy]:.2f}"  # "it → trophy 0.xx in A"
    assert row.locator("td").nth(1).locator(".amount").text_content() == f"{b[trophy]:.2f}"

    page.focus("#matrix-diff")  # the keyboard probes the difference and Enter picks the probed query
    page.keyboard.press("ArrowDown")
    tab.ready()
    probed = page.text_content("#compare-probe")
    assert probed.startswith(f"query {query + 1} ") and " in A, " in probed
    page.keyboard.press("Enter")
    tab.ready()
    assert page.input_value("#compare-query") == str(query + 1)
    page.keyboard.press("Escape")
    tab.ready()
    assert page.locator("#focus").is_hidden()


def test_which_heads_care_lists_the_largest_changes_and_links_to_their_focused_view(tab, server):
    page = tab.open(fragment(text=BIG, b=SMALL, layer=0))
    ranking = changes_by_rank(compared(server, BIG, SMALL))
    links = page.locator("#ranking-list a")
    assert links.count() == 12
    assert links.all_text_contents() == [f"Layer {layer} · head {head}" for layer, head, _ in ranking[:12]]
    assert page.locator("#ranking-list .amount").all_text_contents() == [f"{change:.3f}" for *_, change in ranking[:12]]
    layer, head, _ = ranking[0]
    assert f"layer={layer}" in links.first.get_attribute("href") and f"head={head}" in links.first.get_attribute("href")
    links.first.click()
    tab.ready()
    assert page.text_content("#focus-title") == f"Layer {layer} · head {head}"
    assert page.input_value("#layer") == str(layer) and f"head={head}" in page.url
    assert links.first.get_attribute("aria-current") == "true"


def test_a_compare_permalink_restores_both_sentences_the_view_and_the_head(tab, server, browser):
    page = tab.open(fragment(text=BIG, b=SMALL, layer=7, head=4, diff=1, bos=1))
    assert page.input_value("#text-b") == SMALL and page.is_checked("#prepend-bos")
    assert page.text_content("#focus-title") == "Layer 7 · head 4"
    expected = compared(server, BIG, SMALL, prepend_bos=True)
    assert page.text_content("#focus-confidence") == f"change {expected['heads'][7][4]['change']:.3f}"
    page.keyboard.press("Escape")
    tab.ready()
    assert page.is_checked("#view-diff")
    page.keyboard.press("PageUp")  # the next layer's key works in compare mode (↑ moves between the grid's rows)
    tab.ready()
    assert page.locator(".thumb .change").all_text_contents() == [f"Δ{h['change']:.2f}" for h in expected["heads"][8]]
    page.check("#view-side")
    tab.ready()
    again = Tab(browser, server.url)
    again.open(page.url.split("/", 3)[3])
    assert again.page.input_value("#text") == BIG and again.page.input_value("#text-b") == SMALL
    assert again.page.input_value("#layer") == "8" and again.page.is_checked("#view-side")
    assert again.page.locator("#focus").is_hidden() and not again.errors
    again.context.close()

    page.click("#compare-close")  # one sentence again: B leaves the URL, A's view stays
    tab.ready()
    assert page.locator("#compare-box").is_hidden() and "b=" not in page.url
    assert page.locator(".thumb .change").all_text_contents() == [""] * 12


def test_the_lesson_checks_the_predicted_layer_against_the_ranking(tab, server):
    page = tab.open()
    card = "[data-experiment='compare-layer']"
    assert page.locator(f"{card} .reveal").is_disabled()
    page.click(f"{card} .load-pair")
    tab.ready()
    assert page.input_value("#text-b") == SMALL
    top = changes_by_rank(compared(server, BIG, SMALL))[:12]
    counts = [sum(1 for layer, *_ in top if layer == candidate) for candidate in range(12)]
    right = [layer for layer in range(12) if counts[layer] == max(counts)]
    wrong = next(layer for layer in range(12) if layer not in right)
    page.select_option("#predict-compare-layer-layer", str(wrong))
    page.click(f"{card} .reveal")
    tab.ready()
    assert page.text_content(f"{card} .verdict") == "✗ Not this time."
    answer = page.text_content(f"{card} .answer")
    assert answer.startswith("Of the 12 heads that change most, ")
    assert answer.endswith(f"Answer: layer {' or '.join(map(str, right))}.")
    assert f"The most: layer {top[0][0]} head {top[0][1]} (change {top[0][2]:.3f})" in answer
    assert page.locator(f"{card} .bars .bar").count() == 12
    page.click(f"{card} .show-me")
    tab.ready()
    assert page.text_content("#focus-title") == f"Layer {top[0][0]} · head {top[0][1]}"


@pytest.mark.parametrize("view", ["grid", "focus"])
def test_compare_mode_downloads_as_png(tab, view):
    page = tab.open(fragment(text=BIG, b=SMALL, layer=3, **({"head": 5} if view == "focus" else {})))
    with page.expect_download() as download_info:
        page.click(f"#{view}-png")
    download = download_info.value
    where = "L3-H5" if view == "focus" else "L3"
    assert download.suggested_filename == f"twelve-heads_wide_{where}_the-trophy-doesnt-fit-in-the_compare.png"
    data = open(download.path(), "rb").read()
    width, height = png_size(data)
    assert width >= 1000 and height >= 600
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"download-compare-{view}.png").write_bytes(data)


def test_screenshots_of_the_trophy_pair_at_the_last_layer(tab):
    page = tab.open(fragment(text=BIG, b=SMALL, layer=11))
    shot(page, "compare-trophy-last-layer.png")
    page.check("#view-diff")
    tab.ready()
    shot(page, "compare-trophy-last-layer-diff.png")
    page.locator(".thumb[data-head='0']").click()
    tab.ready()
    shot(page, "compare-trophy-last-layer-focus.png")


def test_long_sentences_fetch_each_layer_of_both_as_it_is_shown(tab, server):
    base = " ".join([BIG, "The cat sat on the mat. The cat sat on the mat.", "apples, pears, plums, cherries."] * 6)
    a, b = base + " It was big.", base + " It was far too small."
    expected = compared(server, a, b)
    assert expected["a"]["attention_per_layer"] and expected["b"]["attention_per_layer"]
    page = tab.open(fragment(text=a, b=b, layer=9))
    assert page.locator(".thumb.pending").count() == 0
    assert page.locator(".thumb .change").all_text_contents() == [f"Δ{h['change']:.2f}" for h in expected["heads"][9]]
    loaded = page.evaluate("""async () => {
        const { state } = await import("/static/state.js");
        return [[...state.attention.layers.keys()], [...state.compare.result.attentionB.layers.keys()]];
    }""")
    assert loaded == [[9], [9]]
    page.locator(".thumb[data-head='5']").click()
    tab.ready()
    assert page.locator("#row-bars tbody tr").count() > 0
