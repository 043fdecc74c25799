/* Compare mode on the page (compare.js holds its state changes): installCompare adds B's box, the pair presets,
   B's tokens with the note on how the two line up, the A and B / A − B switch, B and A − B in every thumbnail
   with the head's change, the focused view's three matrices with one query's two aligned bar charts (a panel
   of its own in compare_focus.js), "Which heads care about this word?", the lesson's experiment, and the
   diverging colour bar, each in the place index.html keeps for it. Draw functions only read state; the
   differences come from diff.js, the one diff component. */

import { Heatmap } from "./heatmap.js";
import { THUMB_MAX_CELLS } from "./grid.js";
import { visibleToken } from "./attention.js";
import { plural } from "./format.js";
import { onDraw, onLayout, schedule, state } from "./state.js";
import {
  PAIRS, choosePair, closeCompare, comparisonOf, editDraftB, openCompare, rankHeads, setCompareView,
  toggleCompareView, tokenizationNote,
} from "./compare.js";
import { buildCompareFocus, drawCompareFocus, layerDifferences, layerLimit } from "./compare_focus.js";
import { buildCompareLesson, drawCompareLesson } from "./compare_lesson.js";
import { DiffHeatmap, drawDivergingBar, poolDifference } from "./diff.js";

const RANKING_SIZE = 12;  // heads in "Which heads care about this word?"

/** Build compare mode's elements into the page and register its layout and draw. `page` has the page's own
 *  handlers the compare controls reuse: lookAt, setLayer, openFocus, cellAt, lessonHandlers. */
export function installCompare(dom, page) {
  const parts = { ...buildSentence(dom), ...buildHeads(dom), focus: buildCompareFocus(dom, page), thumbs: [],
    lesson: null, page };
  listen(parts, dom, page);
  onLayout(() => layoutCompare(parts, dom));
  onDraw((shown) => drawCompare(parts, dom, shown));
  return parts;
}

// ---- structure ----

function buildSentence(dom) {
  const open = button("quiet", "Compare with…");
  open.id = "compare-open";
  dom.look.after(open);
  const sideA = element("span", "side-label", "A");
  sideA.setAttribute("aria-hidden", "true");
  const rowA = element("div", "side-row", sideA);
  dom.text.before(rowA);
  rowA.append(dom.text);
  const sideB = element("span", "side-label", "B");
  sideB.setAttribute("aria-hidden", "true");
  const textB = element("textarea");
  Object.assign(textB, { id: "text-b", rows: 2, spellcheck: false, placeholder: "The same sentence with one word changed" });
  const labelB = element("label", "visually-hidden", "Sentence B, compared with the first");
  labelB.htmlFor = textB.id;
  const close = button("quiet", "× one sentence");
  close.id = "compare-close";
  const box = element("div", "side-row compare-box", sideB, labelB, textB, close);
  box.id = "compare-box";
  rowA.after(box);
  const pairs = element("div", "presets");
  pairs.id = "pair-presets";
  pairs.setAttribute("role", "group");
  pairs.setAttribute("aria-label", "Sentence pairs to compare");
  pairs.append(...PAIRS.map((pair) => {
    const preset = button("", pair.name);
    preset.title = `A: ${pair.a}\nB: ${pair.b}`;
    preset.addEventListener("click", () => choosePair(pair));
    return preset;
  }));
  const pairsLabel = element("span", "muted", "Pairs:");
  dom.presets.after(pairsLabel, pairs);
  const countB = element("span", "muted");
  const tokensB = element("ol", "tokens");
  tokensB.id = "tokens-b";
  tokensB.setAttribute("aria-label", "Tokens of sentence B");
  const tokenRowB = element("div", "token-row", countB, tokensB);
  const note = element("p", "compare-note");
  note.id = "compare-note";
  dom.tokens.parentElement.after(tokenRowB, note);
  return { open, box, textB, close, pairs, tokenRowB, countB, tokensB, note };
}

function buildHeads(dom) {
  const radios = ["side", "diff"].map((value) => {
    const radio = element("input");
    Object.assign(radio, { type: "radio", name: "compare-view", value, id: `view-${value}` });
    return radio;
  });
  const views = element("fieldset", "view-switch", element("legend", "visually-hidden", "Each thumbnail shows"),
    element("label", "", radios[0], " A and B"), element("label", "", radios[1], " A − B"));
  views.id = "view-switch";
  dom.gridPng.before(views);
  const min = element("span");
  const max = element("span");
  min.id = "diff-min";
  max.id = "diff-max";
  const bar = drawDivergingBar(element("canvas", "colour-bar"));
  bar.setAttribute("aria-hidden", "true");
  const legend = element("span", "diff-legend", min, bar, max,
    element("span", "muted", "A − B: red more in A, blue more in B, white no change"));
  legend.id = "diff-legend";
  dom.legend.append(legend);
  const list = element("ol");
  list.id = "ranking-list";
  const title = element("h2", "small-heading", "Which heads care about this word?");
  title.id = "ranking-title";
  const ranking = element("section", "ranking", title, element("p", "muted", "The heads whose attention changes " +
    "most from A to B, across all layers (the mean total-variation distance of their rows from the first " +
    "difference on). Open one to see where it changed."), list);
  ranking.id = "ranking";
  ranking.setAttribute("aria-labelledby", title.id);
  dom.heads.after(ranking);
  dom.keyList.append(element("dt", "", "D"), element("dd", "", "comparing: A and B, or A − B in each thumbnail"),
    element("dt", "", "Enter on A − B"), element("dd", "", "show the probed query's two rows"));
  return { radios, views, legend, min, max, ranking, list };
}

/** Every thumbnail gets a B map, an A − B map and a change badge beside its A map (buildGrid made the rest). */
function addToThumb(thumb, head) {
  const frameA = thumb.querySelector(".thumb-frame");
  const frames = element("span", "thumb-frames");
  frameA.replaceWith(frames);
  frameA.classList.add("side-a");
  frameA.append(element("span", "side-tag", "A"));
  const canvasB = element("canvas", "thumb-map");
  const canvasDiff = element("canvas", "thumb-map");
  const frameB = element("span", "thumb-frame side-b", canvasB, element("span", "side-tag", "B"));
  const frameDiff = element("span", "thumb-frame side-diff", canvasDiff, element("span", "head-number", `H${head}`),
    element("span", "side-tag", "A − B"));
  frames.append(frameA, frameB, frameDiff);
  const badge = element("span", "change");
  thumb.querySelector(".thumb-caption").append(badge);
  return { thumb, button: thumb.querySelector(".thumb-open"), badge, heatmapB: new Heatmap(canvasB),
    heatmapDiff: new DiffHeatmap(canvasDiff), paintedB: "", paintedDiff: "" };
}

function layoutCompare(parts, dom) {
  const thumbs = [...dom.grid.querySelectorAll(".thumb")];
  if (thumbs.length !== parts.thumbs.length || thumbs.some((thumb, head) => parts.thumbs[head].thumb !== thumb)) {
    parts.thumbs = thumbs.map(addToThumb);  // buildGrid made new thumbnails
  }
  if (!parts.lesson || !parts.lesson.card.isConnected) {  // buildLesson replaces the cards when the shape changes
    parts.lesson = buildCompareLesson(dom.experiments, state.result?.n_layer ?? 12, {
      ...parts.page.lessonHandlers,
      onLoadPair: () => choosePair(PAIRS[0]),
      onShowMe: (layer, head) => { parts.page.setLayer(layer); parts.page.openFocus(head); },
    });
  }
}

// ---- drawing ----

function drawCompare(parts, dom, shown) {
  const comparison = comparisonOf(shown);
  const { compare } = shown;
  document.body.classList.toggle("comparing", Boolean(comparison));
  document.body.classList.toggle("diff-view", Boolean(comparison) && compare.view === "diff");
  drawSentence(parts, dom, shown, comparison);
  parts.views.hidden = !comparison;
  parts.radios[0].checked = compare.view !== "diff";
  parts.radios[1].checked = compare.view === "diff";
  drawGrid(parts.thumbs, shown, comparison);
  drawLegend(parts, shown, comparison);
  const focused = shown.focused && Boolean(shown.result);
  dom.focusBody.hidden = Boolean(comparison);
  parts.focus.root.hidden = !(comparison && focused);
  if (comparison && focused) drawCompareFocus(parts.focus, shown);
  drawRanking(parts, shown, comparison);
  drawCompareLesson(parts.lesson, shown);
}

function drawSentence(parts, dom, shown, comparison) {
  const { compare } = shown;
  parts.box.hidden = !compare.open;
  parts.open.hidden = compare.open;
  document.body.classList.toggle("compare-open", compare.open);
  if (parts.textB.value !== compare.draftB) parts.textB.value = compare.draftB;
  parts.textB.classList.toggle("edited", Boolean(comparison) && compare.draftB !== compare.textB);
  dom.sinkAware.disabled = compare.open;
  dom.sinkAware.title = compare.open ? "Compare mode compares the raw attention of A and B" : "";
  for (const preset of parts.pairs.children) {
    const pair = PAIRS.find(({ name }) => name === preset.textContent);
    const active = Boolean(comparison) && shown.result.request.text === pair.a && compare.textB === pair.b;
    preset.setAttribute("aria-pressed", String(active));
  }
  if (comparison) {  // a pair is not also the one-sentence preset its A happens to be
    for (const preset of dom.presets.children) preset.setAttribute("aria-pressed", "false");
  }
  const key = comparison ? String(shown.resultId) : "";
  if (parts.tokensB.dataset.key !== key) {
    const unmatchedB = new Set(comparison?.raw.unmatched_b);
    parts.tokensB.replaceChildren(...(comparison ? comparison.b.tokens.map((token, index) => {
      const chip = element("li", unmatchedB.has(index) ? "token unmatched" : "token", visibleToken(token));
      chip.title = `token ${index} · id ${comparison.b.ids[index]}${unmatchedB.has(index) ? " · no partner in A" : ""}`;
      return chip;
    }) : []));
    parts.tokensB.dataset.key = key;
  }
  const unmatchedA = new Set(comparison?.raw.unmatched_a);
  [...dom.tokens.children].forEach((chip, index) => chip.classList.toggle("unmatched", unmatchedA.has(index)));
  parts.tokenRowB.hidden = !comparison;
  parts.countB.textContent = comparison ? `B: ${plural(comparison.b.n_tokens, "token")}:` : "";
  if (comparison) dom.tokenCount.textContent = `A: ${plural(shown.result.n_tokens, "token")}:`;
  parts.note.hidden = !comparison;
  parts.note.textContent = comparison ? tokenizationNote(comparison, shown.result.tokens, comparison.b.tokens) : "";
}

function drawGrid(thumbs, shown, comparison) {
  const { layer } = shown;
  const ready = Boolean(comparison) && bothReady(shown, layer);
  const ranks = comparison ? rankOf(comparison) : null;
  const diffView = shown.compare.view === "diff";
  thumbs.forEach((entry, head) => {
    if (!comparison) {
      entry.badge.textContent = "";
      return;
    }
    const { change } = comparison.heads[layer][head];
    const rank = ranks.get(`${layer}/${head}`);
    entry.badge.textContent = `Δ${change.toFixed(2)}`;
    entry.badge.title = `change ${change.toFixed(4)}: the mean total-variation distance between A's and B's rows; ` +
      `rank ${rank} of ${ranks.size}`;
    const label = entry.button.getAttribute("aria-label") || "";
    if (!label.includes("; change ")) entry.button.setAttribute("aria-label", `${label}; change ${change.toFixed(2)}, ` +
      `rank ${rank} of ${ranks.size}`);
    entry.thumb.classList.toggle("pending", !ready);
    if (!ready) return;
    const nB = Math.min(comparison.b.n_tokens, THUMB_MAX_CELLS);
    const keyB = `${shown.resultId}/${layer}/${head}/${nB}`;
    if (!diffView && entry.paintedB !== keyB) {
      entry.heatmapB.data(comparison.attentionB.pooled(layer, head, false, nB), nB).max(1).draw();
      entry.paintedB = keyB;
    }
    const m = comparison.alignment.pairs.length;
    const nDiff = Math.min(m, THUMB_MAX_CELLS);
    const limit = layerLimit(shown, layer);
    const keyDiff = `${shown.resultId}/${layer}/${head}/${nDiff}/${limit}`;
    if (diffView && entry.paintedDiff !== keyDiff) {
      entry.heatmapDiff.data(poolDifference(layerDifferences(shown, layer)[head], m, nDiff), nDiff).max(limit).draw();
      entry.paintedDiff = keyDiff;
    }
  });
}

function drawLegend(parts, shown, comparison) {
  parts.legend.hidden = !comparison || !bothReady(shown, shown.layer);
  if (parts.legend.hidden) return;
  const limit = layerLimit(shown, shown.layer);
  parts.min.textContent = `−${limit}`;
  parts.max.textContent = `+${limit}`;
}

/** The heads that change most across all layers, each a link to its focused view. */
function drawRanking(parts, shown, comparison) {
  parts.ranking.hidden = !comparison;
  if (!comparison) return;
  const key = String(shown.resultId);
  if (parts.list.dataset.key !== key) {
    const ranking = rankHeads(comparison.heads).slice(0, RANKING_SIZE);
    const largest = Math.max(ranking[0].change, 1e-9);
    parts.list.replaceChildren(...ranking.map(({ layer, head, change, peak }) => {
      const link = element("a", "", `Layer ${layer} · head ${head}`);
      link.href = parts.page.hrefOf(layer, head);
      Object.assign(link.dataset, { layer, head });
      const bar = element("span", "bar");
      bar.style.width = `${Math.round((change / largest) * 100)}%`;
      const where = peak ? `most at “${visibleToken(shown.result.tokens[peak.query_a])}”` : "";
      return element("li", "", link, element("span", "amount", change.toFixed(3)), element("span", "track", bar),
        element("span", "muted", where));
    }));
    parts.list.dataset.key = key;
  }
  for (const link of parts.list.querySelectorAll("a")) {
    const current = shown.focused && Number(link.dataset.layer) === shown.layer && Number(link.dataset.head) === shown.head;
    if (current) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
}

// ---- the controls ----

function listen(parts, dom, page) {
  parts.open.addEventListener("click", () => { openCompare(); schedule(() => parts.textB.focus()); });
  parts.close.addEventListener("click", () => { closeCompare(); schedule(() => dom.text.focus()); });
  parts.textB.addEventListener("input", () => editDraftB(parts.textB.value));
  parts.textB.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    editDraftB(parts.textB.value);
    page.lookAt(dom.text.value);
  });
  for (const radio of parts.radios) radio.addEventListener("change", () => setCompareView(radio.value));
  parts.list.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-layer]");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;  // a new tab: the href
    event.preventDefault();
    page.setLayer(Number(link.dataset.layer));
    page.openFocus(Number(link.dataset.head));
  });
  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || (event.key !== "d" && event.key !== "D")) return;
    if (event.target.closest("textarea, select, input, summary, .lesson")) return;
    event.preventDefault();
    toggleCompareView();
  });
}

// ---- pure helpers ----

export function bothReady(shown, layer) {
  const comparison = comparisonOf(shown);
  return Boolean(comparison && shown.attention?.has(layer) && comparison.attentionB.has(layer));
}

function rankOf(comparison) {
  const ranks = new Map();
  rankHeads(comparison.heads).forEach(({ layer, head }, index) => ranks.set(`${layer}/${head}`, index + 1));
  return ranks;
}

function button(className, text) {
  const node = element("button", className, text);
  node.type = "button";
  return node;
}

function element(tag, className = "", ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}
