"""The head atlas on the page, in real chromium against a real `flask run` server: the map's corpus mode (each
cell the head's consensus, filled by its consistency; hover and keyboard read out the server's sentence), every
thumbnail's and the focused head's usual job beside this sentence's label, the focused head's evidence, the
broadcasters lesson's corpus range, GPT-2 small's literature, a model without an atlas, and the toggles.

Every expected value comes from /api/atlas and /api/attention for the same model and settings, never hard-coded.
Tests wait on the page's `data-ready` attribute, never on sleeps. Screenshots go to tests/artifacts/.

    python -m pytest tests/test_browser_atlas.py -q
"""

import json
import re
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest

from browser_fixtures import (REPEATED, TROPHY, Tab, browser, check_quiet, serve, set_layer, shot, summary,  # noqa: F401
                              tab)
from browser_support import synthetic_copy
from twelve_heads.modeldir import ATLAS, MANIFEST

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 800}
DESKTOP = {"width": 1280, "height": 900}


def copy_with_manifest(model, target, change):
    """The model's files linked into `target`, its manifest changed by `change` (nothing recomputed)."""
    synthetic_copy(model, target)
    manifest = json.loads((target / MANIFEST).read_text())
    manifest["synthetic"] = json.loads((model / MANIFEST).read_text())["synthetic"]
    change(manifest)
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))


@pytest.fixture(scope="module")
def server(wide_model, tiny_model, demo_model, tmp_path_factory):
    """The usual models, the planted-heads demo, `gpt2` (wide, its manifest saying it is GPT-2 small) and `bare`
    (tiny without its atlas)."""
    copies = tmp_path_factory.mktemp("atlas-copies")
    copy_with_manifest(wide_model, copies / "gpt2", lambda manifest: manifest.update(source="gpt2"))
    copy_with_manifest(tiny_model, copies / "bare", lambda manifest: manifest["files"].pop(ATLAS))
    (copies / "bare" / ATLAS).unlink()
    live = serve(wide_model, tiny_model, tmp_path_factory, extra=[("demo", demo_model), ("gpt2", copies / "gpt2"),
                                                                   ("bare", copies / "bare")])
    yield live
    live.close()


def get_atlas(server, model, prepend_bos=False, sink_aware=False):
    """(status, body) of GET /api/atlas."""
    query = urlencode({"model": model, "prepend_bos": int(prepend_bos), "sink_aware": int(sink_aware)})
    try:
        with urllib.request.urlopen(f"{server.url}/api/atlas?{query}", timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def atlas_of(server, model, **settings):
    status, body = get_atlas(server, model, **settings)
    assert status == 200, body
    return body


def opened(tab, model, text=TROPHY, **fields):
    return tab.open("#" + urlencode({"text": text, "model": model, **fields}))


def corpus_mode(tab):
    tab.page.check("#map-mode-corpus")
    tab.ready()


def share_of(head):
    """The percentage the server's sentence gives ("induction on 88% of 173 items" → "88")."""
    return re.search(r"(\d+)% of", head["usually"]).group(1)


def usual_job(head):
    """The thumbnail's words for the head's usual job, from the server's own percentage."""
    if head["usual"]:
        return f"usually {head['consensus']} ({share_of(head)}%)"
    return f"no usual job (most often {head['consensus']}, {share_of(head)}%)"


def usually_here(head, here, can_show, why_not_here):
    """The page's line, with the server's reason (/api/atlas why_not_here) where this sentence cannot show the job."""
    if head["consensus"] == here:
        return f"{usual_job(head)}; here too"
    why = f" — {why_not_here[head['consensus']]}" if head["usual"] and can_show.get(head["consensus"]) is False else ""
    return f"{usual_job(head)}; here: {here}{why}"


MAP_PIXELS = """async () => {
  const { CHIP_STYLE } = await import("/static/labels.js");
  const canvas = document.getElementById("map");
  const [cell, gap] = [Number(canvas.dataset.cell), Number(canvas.dataset.gap)];
  const dpr = window.devicePixelRatio;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  const colour = (x, y) => {
    const at = 4 * (Math.floor(y * dpr) * canvas.width + Math.floor(x * dpr));
    return "#" + [0, 1, 2].map((i) => pixels.data[at + i].toString(16).padStart(2, "0")).join("").toUpperCase();
  };
  const rows = Math.round(canvas.height / dpr / (cell + gap));
  const cells = [];
  for (let row = 0; row < rows; row++) {
    for (let head = 0; head < Math.round(canvas.width / dpr / (cell + gap)); head++) {
      const [left, top] = [gap + head * (cell + gap) + cell / 2, gap + row * (cell + gap)];
      const bottom = colour(left, top + cell - 0.5);
      let solid = 0;
      while (solid < cell && colour(left, top + cell - 0.5 - solid) === bottom) solid++;
      const right = gap + head * (cell + gap) + cell;
      cells.push({ layer: rows - 1 - row, head, bottom, solid, dot: colour(right - 2.5, top + 2.5) });
    }
  }
  return { cells, colours: Object.fromEntries(Object.entries(CHIP_STYLE).map(([name, s]) => [name, s.colour.toUpperCase()])),
           cell };
}"""


def differs(head, label):
    """Whether the page marks the head: it has a usual job, and this sentence labels it otherwise."""
    return head["usual"] and head["consensus"] != label


def here_label(result, layer, index):
    """This sentence's label as the page names it: a head with no scored row is a pure sink (static/labels.js)."""
    info = result["heads"][layer][index]
    scored = sum(info["scores"][name] for name in ("first", "self", "local", "long_range")) > 0.5
    return info["label"] if scored or not result["sink_aware"] else "pure sink"


def readout(atlas, result, layer, index):
    """The map's words for a head in corpus mode: the server's sentence, and this sentence's label where it differs."""
    head, label = atlas["heads"][layer][index], here_label(result, layer, index)
    return f"Layer {layer} · head {index}: {head['usually']}" + (f"; this sentence: {label}" if differs(head, label) else "")


def check_cells(painted, atlas, result, selected_layer):
    """Each cell's colour is its consensus label's, its solid part its consistency and its dot whether this sentence
    labels it otherwise, except where the selection's frames lie over a cell's edge: the selected layer's cells
    and those of the layers drawn next to it."""
    checked = 0
    for cell in painted["cells"]:
        if abs(cell["layer"] - selected_layer) <= 1:
            continue
        head = atlas["heads"][cell["layer"]][cell["head"]]
        assert (cell["dot"] == "#000000") == differs(head, here_label(result, cell["layer"], cell["head"])), cell
        solid = int(head["consensus_share"] * painted["cell"] + 0.5)
        if solid:
            assert cell["bottom"] == painted["colours"][head["consensus"]], cell
            assert cell["solid"] == solid, (cell, head["consensus_share"])
        else:
            assert cell["bottom"] != painted["colours"][head["consensus"]], cell
        checked += 1
    return checked


def test_the_corpus_map_paints_each_heads_consensus_filled_by_its_consistency(tab, server):
    page = opened(tab, "demo", layer=0)
    atlas, result = atlas_of(server, "demo"), summary(server, TROPHY, model="demo")
    corpus_mode(tab)
    painted = page.evaluate(MAP_PIXELS)
    assert len(painted["cells"]) == 144
    assert check_cells(painted, atlas, result, selected_layer=0) == 120
    set_layer(tab, 5)
    assert check_cells(page.evaluate(MAP_PIXELS), atlas, result, selected_layer=5) == 108  # layers 0 and 1 too
    assert any(cell["dot"] == "#000000" for cell in painted["cells"]), "the trophy sentence gives induction heads nothing"
    assert "how often it holds" in page.text_content("#map-caption")
    assert page.text_content(".atlas-count").startswith(
        f"{atlas['summary']['usual_heads']} of {atlas['summary']['heads']} heads have a usual job over {atlas['items']} items")


def test_the_permalink_carries_the_corpus_map_and_reopens_it(tab, server):
    page = opened(tab, "demo", layer=5)
    assert "map=" not in page.url and page.is_checked("#map-mode-sentence")
    corpus_mode(tab)
    assert "map=corpus" in page.url
    page.reload()
    tab.ready()
    assert page.is_checked("#map-mode-corpus")
    assert page.text_content(".atlas-count").startswith(f"{atlas_of(server, 'demo')['summary']['usual_heads']} of ")
    page.check("#map-mode-sentence")
    tab.ready()
    assert "map=" not in page.url


def test_a_random_models_low_consistency_shows_as_partly_filled_cells(tab, server):
    page = opened(tab, "wide", layer=0)
    atlas, result = atlas_of(server, "wide"), summary(server, TROPHY, model="wide")
    corpus_mode(tab)
    painted = page.evaluate(MAP_PIXELS)
    assert check_cells(painted, atlas, result, selected_layer=0) == 120
    partial = [cell for cell in painted["cells"] if cell["layer"] and cell["solid"] < painted["cell"]]
    assert len(partial) >= 12, "a random model's heads are not all consistent"


def test_hovering_or_moving_on_the_corpus_map_reads_out_the_servers_sentence(tab, server):
    page = opened(tab, "demo")
    atlas, result = atlas_of(server, "demo"), summary(server, TROPHY, model="demo")
    corpus_mode(tab)
    bounds = page.locator("#map").bounding_box()
    assert differs(atlas["heads"][5][5], result["heads"][5][5]["label"]), "5.5, an induction head, is marked"
    for layer, head in [(11, 0), (5, 5), (0, 11)]:
        page.mouse.move(bounds["x"] + 1 + head * 13 + 6, bounds["y"] + 1 + (11 - layer) * 13 + 6)
        tab.ready()
        assert page.text_content("#map-readout") == readout(atlas, result, layer, head)
    page.mouse.move(0, 0)
    page.focus("#map")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowRight")
    tab.ready()
    assert page.text_content("#map-readout") == f"{readout(atlas, result, 1, 1)} (selected)"
    page.check("#map-mode-sentence")
    tab.ready()
    assert page.text_content("#map-readout").startswith(f"Layer 1 · head 1: {result['heads'][1][1]['label']}")


@pytest.mark.parametrize("model, layer", [("demo", 0), ("demo", 5), ("wide", 5)])
def test_every_thumbnail_shows_the_usual_job_and_marks_where_this_sentence_differs(tab, server, model, layer):
    page = opened(tab, model, layer=layer)
    atlas, result = atlas_of(server, model), summary(server, TROPHY, model=model)
    notes = page.evaluate("""() => [...document.querySelectorAll('#grid .thumb-note')].map((note) =>
      ({ text: note.textContent, differs: note.classList.contains('differs'), title: note.title }))""")
    assert len(notes) == 12
    for index, note in enumerate(notes):
        head, here = atlas["heads"][layer][index], result["heads"][layer][index]["label"]
        assert note["text"] == usual_job(head)
        assert note["differs"] == (head["usual"] and head["consensus"] != here)
        assert note["title"] == usually_here(head, here, result["can_show"], atlas["why_not_here"])
    if model == "demo" and layer == 5:
        assert any(note["differs"] for note in notes), "the trophy sentence repeats nothing for layer 5's induction heads"
    if model == "wide":
        assert any(not atlas["heads"][layer][index]["usual"] for index in range(12)), "a random model's heads"


def test_the_focused_head_shows_its_usual_job_beside_this_sentence_and_the_evidence(tab, server):
    atlas, result = atlas_of(server, "demo"), summary(server, TROPHY, model="demo")
    assert not result["can_show"]["induction"], "the trophy sentence repeats nothing"
    layer, index = next((layer, index) for layer, heads in enumerate(atlas["heads"]) for index, head in enumerate(heads)
                        if head["consensus"] == "induction" and result["heads"][layer][index]["label"] != "induction")
    page = opened(tab, "demo", layer=layer, head=index)
    head, here = atlas["heads"][layer][index], result["heads"][layer][index]["label"]
    assert page.text_content("#focus-usually") == (
        f"usually induction ({share_of(head)}%); here: {here} — {atlas['why_not_here']['induction']}")
    assert "differs" in page.get_attribute("#focus-usually", "class")
    assert page.text_content(".atlas-usually") == f"Usually: {head['usually']}."
    shown = page.evaluate("""() => [...document.querySelectorAll('.profile-list li')].map((item) =>
      [item.dataset.label, item.textContent])""")
    profile = sorted(((label, share) for label, share in head["profile"].items() if share > 0),
                     key=lambda entry: (-entry[1], entry[0]))
    assert [label for label, _ in shown] == [label for label, _ in profile]
    assert shown[0][1].startswith(f"{profile[0][0]} {round(profile[0][1] * 100)}%")
    detector = page.evaluate("""() => [...document.querySelectorAll('.atlas-scores tbody tr')].slice(0, 3)
      .map((row) => [...row.children].map((cell) => cell.textContent))""")
    scores = head["detector"]
    assert detector == [[name, f"{scores[key]['corpus']:.2f}", f"{scores[key]['probe']:.2f}"] for name, key in
                        [("previous-token", "previous_token"), ("duplicate-token", "duplicate_token"),
                         ("induction", "induction")]]
    assert page.text_content(".atlas-scores tfoot td:last-child") == f"{head['induction_score']:.2f}"
    assert head["induction_score"] >= 0.8
    assert page.text_content(".atlas-counted") == (
        f"How it was counted: induction is counted only where it could show: on {head['consensus_of']} of the "
        f"{atlas['items']} items ({atlas['rules']['induction']}).")
    assert page.is_hidden(".atlas-literature"), "the demo is not GPT-2 small"


def test_without_the_servers_reasons_the_focused_head_still_says_the_sentence_gives_it_nothing_to_do(tab, server):
    """An atlas response without why_not_here (a server from before it): the real response, that field taken out
    on its way to the page."""
    atlas, result = atlas_of(server, "demo"), summary(server, TROPHY, model="demo")
    layer, index = next((layer, index) for layer, heads in enumerate(atlas["heads"]) for index, head in enumerate(heads)
                        if head["consensus"] == "induction" and result["heads"][layer][index]["label"] != "induction")

    def without_reasons(route):
        response = route.fetch()
        body = response.json()
        del body["why_not_here"]
        route.fulfill(status=response.status, json=body)

    tab.page.route("**/api/atlas?*", without_reasons)
    page = opened(tab, "demo", layer=layer, head=index)
    fallback = page.evaluate("async () => (await import('/static/atlas.js')).NO_REASON_SENT")
    here = result["heads"][layer][index]["label"]
    assert page.text_content("#focus-usually") == (
        f"usually induction ({share_of(atlas['heads'][layer][index])}%); here: {here} — {fallback}")


def test_the_focused_head_on_a_repeated_phrase_says_here_too(tab, server):
    atlas, result = atlas_of(server, "demo"), summary(server, REPEATED, model="demo")
    layer, index = next((layer, index) for layer, heads in enumerate(atlas["heads"]) for index, head in enumerate(heads)
                        if head["consensus"] == "induction" and result["heads"][layer][index]["label"] == "induction")
    page = opened(tab, "demo", text=REPEATED, layer=layer, head=index)
    assert page.text_content("#focus-usually") == f"usually induction ({share_of(atlas['heads'][layer][index])}%); here too"
    assert "differs" not in page.get_attribute("#focus-usually", "class")


def test_the_broadcasters_lesson_gives_this_sentences_count_and_the_corpus_range(tab, server):
    page = opened(tab, "demo")
    atlas, result = atlas_of(server, "demo"), summary(server, TROPHY, model="demo")
    counts = [layer["counts"]["broadcaster"] for layer in result["layers"]]
    last = len(counts) - 1
    card = "[data-experiment='broadcasters']"
    page.select_option("#predict-broadcasters-count", "0")
    page.select_option("#predict-broadcasters-most", "0")
    assert page.is_hidden(f"{card} .corpus-range")
    page.click(f"{card} .reveal")
    tab.ready()
    corpus = atlas["layers"][last]["broadcasters"]
    spread = str(corpus["min"]) if corpus["min"] == corpus["max"] else f"{corpus['min']}–{corpus['max']}"
    plural = "" if counts[last] == 1 else "s"
    assert page.text_content(f"{card} .corpus-range") == (
        f"This sentence: {counts[last]} broadcaster{plural} in layer {last}; over the {atlas['corpus_items']} corpus "
        f"sentences: {spread} (mean {corpus['mean']:.1f}).")
    rows = page.evaluate(f"""() => [...document.querySelectorAll("{card} .corpus-table tbody tr")].map((row) =>
      [...row.children].map((cell) => cell.textContent))""")
    assert len(rows) == len(counts)
    for layer, (number, here, shown) in enumerate(rows):
        broadcasters = atlas["layers"][layer]["broadcasters"]
        assert (number, here) == (str(layer), str(counts[layer]))
        assert shown.startswith(f"{broadcasters['mean']:.1f} (")
        outside = not broadcasters["min"] <= counts[layer] <= broadcasters["max"]
        assert shown.endswith(" · outside it") == outside


def test_gpt2_small_lists_the_published_roles_and_whether_the_atlas_agrees(tab, server):
    atlas = atlas_of(server, "gpt2")
    entries = atlas["literature"]["heads"][4][11]
    assert entries, "the literature names head 4.11"
    page = opened(tab, "gpt2", layer=4, head=11)
    shown = page.evaluate("""() => [...document.querySelectorAll('.literature-list li')].map((item) => ({
      role: item.dataset.role, verdict: item.dataset.verdict, citation: item.querySelector('a').textContent,
      url: item.querySelector('a').href, title: item.querySelector('a').title,
      line: item.querySelector('.verdict-line').textContent }))""")
    sign = {"agrees": "✓", "disagrees": "✗", "not-checked": "—"}
    assert shown == [{"role": entry["role"], "verdict": entry["atlas"], "citation": entry["citation"],
                      "url": entry["url"], "title": f"{entry['title']}. Checked {entry['checked']}.",
                      "line": f"{sign[entry['atlas']]} {entry['comparison']}"} for entry in entries]
    assert page.is_visible(".literature-bos"), "the works measured with <|endoftext|> first, and the view is without"
    page.check("#prepend-bos")
    tab.ready()
    with_bos = atlas_of(server, "gpt2", prepend_bos=True)["literature"]["heads"][4][11]
    assert page.locator(".literature-list .verdict-line").all_text_contents() == [
        f"{sign[entry['atlas']]} {entry['comparison']}" for entry in with_bos]
    assert page.is_hidden(".literature-bos")
    page.keyboard.press("Escape")
    tab.ready()
    corpus_mode(tab)
    verdicts = atlas["literature"]["verdicts"]
    assert page.text_content(".atlas-literature-count").startswith(
        f"Published roles: the atlas agrees with {verdicts['agrees']}, disagrees with {verdicts['disagrees']}; ")


def test_a_head_the_literature_does_not_name_says_so_and_other_models_get_no_literature(tab, server):
    atlas = atlas_of(server, "gpt2")
    assert atlas["literature"]["heads"][0][0] == []
    page = opened(tab, "gpt2", layer=0, head=0)
    assert page.text_content(".literature-none") == \
        "The published work this page lists gives this head no role."
    tab.page.goto("about:blank")  # a new document, not a change of the hash
    opened(tab, "wide", layer=4, head=11)
    assert atlas_of(server, "wide")["literature"] is None
    assert tab.page.is_hidden(".atlas-literature") and tab.page.is_visible(".atlas-usually")


def test_a_model_without_an_atlas_still_serves_and_says_how_to_make_one(tab, server):
    tab.allowed.append("status of 404")  # the browser logs the atlas's 404 itself
    status, body = get_atlas(server, "bare")
    assert status == 404 and "twelve-heads atlas" in body["error"]
    page = opened(tab, "bare")
    assert page.locator("#grid .thumb .chip").first.text_content() not in ("", "…"), "the heads are labelled"
    assert page.locator("#grid .thumb-note").all_text_contents() == [""] * 4
    corpus_mode(tab)
    assert page.text_content("#map-readout") == body["error"]
    assert page.is_hidden("#map")
    page.locator(".thumb[data-head='1'] .thumb-open").click()
    tab.ready()
    assert page.text_content(".atlas-message") == body["error"]
    assert page.is_hidden(".atlas-evidence") and page.text_content("#focus-usually") == ""


def test_the_atlas_follows_the_prepend_bos_and_sink_aware_toggles(tab, server):
    views = {settings: atlas_of(server, "wide", prepend_bos=settings[0], sink_aware=settings[1])
             for settings in [(False, False), (True, False), (True, True)]}
    page = opened(tab, "wide")
    corpus_mode(tab)
    bounds = page.locator("#map").bounding_box()
    for settings, toggle in [((True, False), "#prepend-bos"), ((True, True), "#sink-aware")]:
        page.check(toggle)
        tab.ready()
        result = summary(server, TROPHY, model="wide", prepend_bos=settings[0], sink_aware=settings[1])
        changed = [(layer, head) for layer in range(12) for head in range(12)
                   if views[settings]["heads"][layer][head]["usually"] != views[(False, False)]["heads"][layer][head]["usually"]]
        assert changed, f"the {settings} view differs somewhere from the plain one"
        for layer, head in changed[:3]:
            page.mouse.move(bounds["x"] + 1 + head * 13 + 6, bounds["y"] + 1 + (11 - layer) * 13 + 6)
            tab.ready()
            assert page.text_content("#map-readout") == readout(views[settings], result, layer, head)


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone-360", "desktop-1280"])
def test_nothing_overflows_on_a_phone_or_a_desktop(browser, server, viewport):  # noqa: F811
    context = browser.new_context(viewport=viewport)
    tab = Tab(context.new_page(), server.url)
    name = f"{viewport['width']}x{viewport['height']}"
    try:
        page = opened(tab, "demo", text=REPEATED, layer=5)
        corpus_mode(tab)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
        shot(page, f"atlas-map-{name}.png", full_page=True)
        page.locator(".thumb[data-head='5'] .thumb-open").click()
        tab.ready()
        page.locator(".atlas-spread summary").click()
        tab.ready()
        assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
        section = page.locator("#focus-atlas").bounding_box()
        assert section["x"] >= 0 and section["x"] + section["width"] <= viewport["width"]
        shot(page, f"atlas-focus-{name}.png", full_page=True)
    finally:
        context.close()
    check_quiet(tab)
