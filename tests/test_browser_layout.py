"""The page's layouts in real chromium, at a phone's size (390×844), a tablet's (768×1024) and desktops'
(1280×720, 1440×900): thumbnails per row, the focused head on a narrow screen, what fits above the fold, the
token strip, the focus ring, the chips' contrast and a status line that never pushes the heads down.
Screenshots of the grid and the focused head at each width go to tests/artifacts/.

    python -m pytest tests/test_browser_layout.py -q
"""

import json

import pytest

from browser_fixtures import (DESKTOP, PHONE, SMALL_LAPTOP, TABLET, box, browser, check_quiet, new_tab, server,
                              shot, tab)  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

ROWS = "() => { const tops = [...document.querySelectorAll('.thumb')].map((t) => Math.round(t.getBoundingClientRect().top)); " \
       "return [...new Set(tops)].map((top) => tops.filter((t) => t === top).length); }"


@pytest.fixture
def sized(browser, server, request):
    """A tab at the viewport the test is parametrized with."""
    context, tab = new_tab(browser, server, viewport=request.param)
    yield tab
    context.close()
    check_quiet(tab)


def contrast(page, selector):
    """WCAG contrast of each element's computed text colour on its computed background: [(text, ratio)]."""
    return page.evaluate("""(selector) => {
      const luminance = (css) => {
        const [r, g, b] = css.match(/[\\d.]+/g).slice(0, 3).map(Number).map((c) => c / 255)
          .map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
      };
      return [...document.querySelectorAll(selector)].filter((chip) => chip.offsetParent).map((chip) => {
        const style = getComputedStyle(chip);
        const [light, dark] = [luminance(style.color), luminance(style.backgroundColor)].sort((a, b) => b - a);
        return [chip.textContent, (light + 0.05) / (dark + 0.05)];
      });
    }""", selector)


@pytest.mark.parametrize("sized", [PHONE], indirect=True)
def test_a_phone_shows_three_thumbnails_a_row_and_a_focused_head_as_wide_as_the_screen(sized):
    page = sized.open()
    assert page.evaluate(ROWS) == [3, 3, 3, 3]
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"], "nothing sticks out sideways"
    shot(page, "grid-390.png", full_page=True)
    page.locator(".thumb[data-head='2']").click()
    sized.ready()
    matrix, info = box(page, "#matrix"), box(page, ".focus-info")
    assert matrix["width"] >= 300 and matrix["x"] >= 0 and matrix["x"] + matrix["width"] <= PHONE["width"]
    assert info["y"] >= matrix["y"] + matrix["height"], "the head's scores stack below its matrix"
    assert info["width"] >= 300
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    shot(page, "focus-390.png", full_page=True)


@pytest.mark.parametrize("sized", [PHONE, DESKTOP], indirect=True)
def test_the_all_layers_map_has_cells_a_finger_can_pick_on_a_phone_and_a_tap_picks_the_cell_tapped(sized):
    page = sized.open()
    cell = int(page.get_attribute("#map", "data-cell"))
    phone = page.viewport_size["width"] == PHONE["width"]
    assert cell == 24 if phone else cell == 12, cell  # a phone's map has the whole row; a desktop's, 160 px
    map_box = box(page, "#map")
    assert map_box["x"] >= 0 and map_box["x"] + map_box["width"] <= page.viewport_size["width"]
    step = cell + int(page.get_attribute("#map", "data-gap"))
    page.click("#map", position={"x": 1 + 5 * step + cell / 2, "y": 1 + 2 * step + cell / 2})  # head 5, third row
    sized.ready()
    n_layer = int(page.get_attribute("#layer", "max")) + 1
    assert page.input_value("#layer") == str(n_layer - 1 - 2)
    assert page.text_content("#map-readout").startswith(f"Layer {n_layer - 3} · head 5: ")


@pytest.mark.parametrize("sized", [TABLET], indirect=True)
def test_a_tablet_shows_the_heads_in_rows_that_divide_twelve(sized):
    page = sized.open()
    assert page.evaluate(ROWS) in ([4, 4, 4], [6, 6])
    shot(page, "grid-768.png", full_page=True)
    page.locator(".thumb[data-head='2']").click()
    sized.ready()
    assert box(page, "#matrix")["width"] >= 300
    shot(page, "focus-768.png", full_page=True)


@pytest.mark.parametrize("sized", [SMALL_LAPTOP], indirect=True)
def test_a_1280_by_720_laptop_shows_all_twelve_heads_in_two_rows_above_the_fold(sized):
    page = sized.open()
    assert page.evaluate(ROWS) == [6, 6], "two rows of six, never 5 + 5 + 2"
    last = box(page, ".thumb[data-head='11']")
    assert last["y"] + last["height"] <= SMALL_LAPTOP["height"], "heads 10 and 11 are above the fold"
    shot(page, "grid-1280x720.png")


@pytest.mark.parametrize("sized", [DESKTOP], indirect=True)
def test_a_desktop_shows_the_focused_head_beside_its_scores(sized):
    page = sized.open()
    assert page.evaluate(ROWS) == [6, 6]
    shot(page, "grid-1440.png", full_page=True)
    page.locator(".thumb[data-head='2']").click()
    sized.ready()
    matrix, info = box(page, "#matrix"), box(page, ".focus-info")
    assert info["x"] >= matrix["x"] + matrix["width"] and info["y"] < matrix["y"] + matrix["height"]
    shot(page, "focus-1440.png", full_page=True)


def test_every_label_chip_has_at_least_4_5_to_1_contrast(tab):
    page = tab.open()
    measured = contrast(page, ".chip")
    key = [text for text, _ in contrast(page, "#label-key .chip")]
    assert len(key) == 11, "the label key shows the nine labels and the two tags"
    low = [(text, round(ratio, 2)) for text, ratio in measured if ratio < 4.5]
    assert not low, f"chips below 4.5:1: {low}"


def test_the_token_strip_shows_three_whole_rows_and_scrolls_for_the_rest(tab):
    page = tab.open()
    page.get_by_role("button", name="Long paragraph").click()
    tab.ready()
    strip = page.evaluate("""() => {
      const strip = document.getElementById("tokens");
      const chips = [...strip.children];
      const tops = [...new Set(chips.map((chip) => chip.offsetTop))].sort((a, b) => a - b);
      return { client: strip.clientHeight, scroll: strip.scrollHeight, chip: chips[0].offsetHeight, tops };
    }""")
    assert strip["scroll"] > strip["client"], "the long paragraph's tokens need more than three rows"
    third_row_bottom = strip["tops"][2] - strip["tops"][0] + strip["chip"]
    assert strip["client"] == third_row_bottom, "the third row is whole, and no fourth row peeks in"


def test_the_matrix_focus_ring_is_drawn_inside_the_visible_canvas(tab):
    page = tab.open()
    page.locator(".thumb[data-head='1']").click()
    tab.ready()
    for _ in range(12):  # by keyboard, as a student reaches it: :focus-visible then shows the ring
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "matrix":
            break
    assert page.evaluate("document.activeElement.id") == "matrix"
    ring = page.evaluate("""() => { const style = getComputedStyle(document.getElementById("matrix"));
      return { style: style.outlineStyle, width: parseFloat(style.outlineWidth), offset: parseFloat(style.outlineOffset) }; }""")
    assert ring["style"] != "none" and ring["width"] >= 2
    assert ring["offset"] + ring["width"] <= 0, "the ring lies inside the canvas's own box"
    matrix, wrap = box(page, "#matrix"), box(page, "#matrix-wrap")
    assert matrix["x"] >= wrap["x"] and matrix["x"] + matrix["width"] <= wrap["x"] + wrap["width"] + 0.5, \
        "the scrolling wrap shows the canvas's whole width, so the ring's right side is not cut off"


def test_the_status_line_has_its_place_so_the_heads_do_not_jump_while_computing(tab):
    page = tab.open()
    top = box(page, "#heads")["y"]
    held, released = [], []

    def hold_the_new_sentence(route):
        new = json.loads(route.request.post_data)["text"] == "A new sentence to look at."
        held.append(route) if new and not released else route.continue_()

    page.route("**/api/attention", hold_the_new_sentence)
    page.fill("#text", "A new sentence to look at.")
    page.click("#look")
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Computing')")
    assert box(page, "#heads")["y"] == top
    released.append(True)  # a request not yet routed goes straight on; one already held is let go here
    for route in held:
        route.continue_()
    tab.ready()
    assert box(page, "#heads")["y"] == top and page.text_content("#status") == ""
    page.unroute("**/api/attention")
