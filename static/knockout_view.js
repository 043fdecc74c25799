/* Drawing knock-outs (knockout.js holds the state and handlers): a toggle on every thumbnail and in the focused
   view, the strip of knocked-out heads, the next-token prediction with every head and without, the per-token
   change in log-probability, each later head's change from its clean pattern, and the focused view's clean and
   difference views (differences from diff.js, the one diff component). build* make structure once; draw* only
   read state. */

import { visibleToken } from "./attention.js";
import { comparisonOf } from "./compare.js";
import { differenceMatrix, divergingColour, drawDivergingBar, identityAlignment, niceLimit,
  paintDifference } from "./diff.js";
import { MatrixPainter } from "./matrix.js";
import { hasHead, headList, headName, headsKey } from "./knockout_heads.js";
import { knockoutBlocked, oneSentenceAgain, probeStrip, restoreAll, setKnockoutView, shownHeads, toggleHead, toggleHeadOfLayer,
  toggleSelectedHead } from "./knockout.js";
import { logprobChanges, logprobLimit, numberText, probabilityText, signedText } from "./surprise.js";

const OUT_GLYPH = "⊘";
const BAR_MIN_CHANGE = 0.0005;  // a change below this rounds to 0.000: no bar
const DARK_INK_SHARE = 0.6;  // beyond this share of the scale a coloured chip's text turns white
const KEPT_LAYERS = 3;  // layers of difference matrices kept
const VIEW_NAMES = { ablated: "knocked out", clean: "every head", diff: "difference" };

const differences = { key: "", layers: new Map() };  // shown answer → layer → [(T × T) knocked out − clean per head]
const geometryPainter = new MatrixPainter();  // only for the focused matrix's geometry, which drawFocus laid out

// ---- build ----

/** The panel under the tokens, the focused view's toggle and view switch, the legend's notes. */
export function buildKnockout(dom) {
  const list = element("ul", "ko-list");
  list.setAttribute("aria-label", "Knocked-out heads");
  const restore = button("ko-restore-all", "Restore all", restoreAll);
  const bar = element("div", "ko-bar", element("span", "ko-title", "Knocked out"), list, restore);
  const note = element("p", "ko-note");
  note.setAttribute("role", "status");

  const summary = element("p", "ko-summary");
  const strip = element("ol", "ko-strip");
  strip.setAttribute("aria-label", "Change in log-probability of each token without the knocked-out heads; arrow " +
    "keys move");
  strip.addEventListener("keydown", (event) => moveInStrip(event, strip));
  strip.addEventListener("mouseleave", () => {
    if (!strip.contains(document.activeElement)) probeStrip(null);
  });
  strip.addEventListener("focusout", (event) => {
    if (!strip.contains(event.relatedTarget)) probeStrip(null);
  });
  const scaleBar = drawDivergingBar(element("canvas", "colour-bar"));
  scaleBar.setAttribute("aria-hidden", "true");
  const scaleMin = element("span", "ko-scale-end");
  const scaleMax = element("span", "ko-scale-end");
  const scale = element("div", "ko-scale", scaleMin, scaleBar, scaleMax,
    element("span", "muted", "change in log-probability of each token without the heads: blue less expected, red " +
      "more, white no change"));
  const readout = element("p", "ko-readout");
  readout.setAttribute("aria-live", "polite");
  const surprise = element("div", "ko-surprise", element("h3", "small-heading", "Where it mattered"), summary, strip,
    scale, readout);

  const predictionTitle = element("h3", "small-heading");
  const cleanHeading = element("th", "", "With every head");
  const ablatedHeading = element("th", "");
  const rows = Array.from({ length: 5 }, (_, rank) => {
    const clean = predictionCell();
    const ablated = predictionCell();
    const line = element("tr", "", element("th", "ko-rank", String(rank + 1)), clean.cell, ablated.cell);
    return { line, clean, ablated };
  });
  const table = element("table", "ko-table",
    element("thead", "", element("tr", "", element("th", "ko-rank", "#"), cleanHeading, ablatedHeading)),
    element("tbody", "", ...rows.map(({ line }) => line)));
  const prediction = element("div", "ko-prediction", predictionTitle, table);
  const results = element("div", "ko-results", prediction, surprise);
  const panel = element("section", "ko-panel", bar, note, results);
  panel.setAttribute("aria-label", "Knocked-out heads and what the model loses");
  dom.tokenStrips.append(panel);

  const focusToggle = button("ko-toggle ko-focus-toggle", "", toggleSelectedHead);
  focusToggle.append(element("span", "ko-glyph", OUT_GLYPH), element("span", "ko-focus-label"));
  const focusChange = element("span", "ko-focus-change muted");
  dom.focusTools.append(focusToggle, focusChange);
  const radios = Object.fromEntries(Object.entries(VIEW_NAMES).map(([view, name]) => {
    const input = element("input");
    Object.assign(input, { type: "radio", name: "knockout-view", value: view, id: `ko-view-${view}` });
    input.addEventListener("change", () => setKnockoutView(view));
    return [view, { input, label: element("label", "", input, ` ${name}`) }];
  }));
  const modes = element("span", "ko-modes", ...Object.values(radios).map(({ label }) => label));
  modes.setAttribute("role", "radiogroup");
  modes.setAttribute("aria-label", "The focused head shows");
  dom.focusModes.append(modes);

  const layerNote = element("p", "ko-layer-note");
  dom.gridNote.after(layerNote);
  const diffMin = element("span");
  const diffMax = element("span");
  const diffBar = drawDivergingBar(element("canvas", "colour-bar"));
  diffBar.setAttribute("aria-hidden", "true");
  const diffLegend = element("span", "ko-diff-legend", diffMin, diffBar, diffMax,
    element("span", "muted", "knocked out − every head: red more without the heads, blue less, white no change"));
  const hint = element("span", "ko-hint muted", `${OUT_GLYPH} on a head (or K) knocks it out`);
  dom.legend.append(diffLegend, hint);
  dom.compareClose.addEventListener("click", oneSentenceAgain);  // runs after compare.js's own, registered first
  return { panel, list, restore, note, results, prediction, predictionTitle, ablatedHeading, rows, surprise, summary,
    strip, scaleMin, scaleMax, readout, focusToggle, focusChange, modes, radios, layerNote, diffLegend, diffMin,
    diffMax, hint, listKey: null, stripKey: null };
}

/** A knock-out toggle in every thumbnail's tools, a "knocked out" tag and a change mark (number and bar). */
export function buildKnockoutThumbs(thumbs) {
  for (const [head, thumb] of thumbs.entries()) {
    const toggle = button("ko-toggle", OUT_GLYPH, () => toggleHeadOfLayer(head));
    toggle.setAttribute("aria-pressed", "false");
    thumb.tools.append(toggle);
    const tag = element("span", "ko-tag", "knocked out");
    const change = element("span", "ko-change");
    thumb.chip.parentElement.append(tag, change);
    const fill = element("span", "ko-change-fill");
    const changeBar = element("span", "ko-change-bar", fill);
    thumb.canvas.parentElement.append(changeBar);
    thumb.knockout = { toggle, tag, change, changeBar, fill };
  }
}

// ---- draw ----

/** Every thumbnail's toggle, tag and change mark. */
export function drawKnockoutGrid(thumbs, state) {
  const { result, layer } = state;
  const blocked = knockoutBlocked(state);
  const shown = shownHeads(state);
  const changes = changesOf(state);
  const largest = changes ? Math.max(BAR_MIN_CHANGE, ...result.heads.flat().map(({ change }) => change)) : 1;
  for (const [head, thumb] of thumbs.entries()) {
    const { toggle, tag, change, changeBar, fill } = thumb.knockout;
    const name = headName(layer, head);
    const out = hasHead(state.knockout.heads, layer, head);
    toggle.setAttribute("aria-pressed", String(out));
    toggle.setAttribute("aria-label", `Knock out head ${name}`);
    toggle.title = blocked || (out ? `Head ${name} is knocked out: press to restore it (K)`
      : `Knock out head ${name} (K): its output becomes zero, and the page shows what the model loses`);
    toggle.disabled = Boolean(blocked) || !result;
    const knocked = hasHead(shown, layer, head);
    thumb.thumb.classList.toggle("knocked-out", knocked);
    tag.hidden = !knocked;
    const value = changes ? result.heads[layer]?.[head]?.change : undefined;
    const marked = value !== undefined && layer > shown[0][0];
    change.hidden = !marked;
    changeBar.hidden = !marked || value < BAR_MIN_CHANGE;
    if (marked) {
      change.textContent = `Δ${value.toFixed(2)}`;
      change.classList.toggle("zero", value < BAR_MIN_CHANGE);
      change.dataset.change = String(value);
      change.title = `change ${value.toFixed(4)}: the mean total-variation distance of this head's rows from its ` +
        "pattern with every head";
      fill.style.width = `${Math.min(100, (value / largest) * 100)}%`;
    }
    const label = thumb.button.getAttribute("aria-label") || "";
    const extra = `${knocked ? "; knocked out" : ""}${marked ? `; changed ${value.toFixed(2)} by the knock-out` : ""}`;
    if (extra && !label.includes("knock")) thumb.button.setAttribute("aria-label", `${label}${extra}`);
  }
}

/** The strip of knocked-out heads, the prediction, the per-token change, the layer's note, the legend's notes. */
export function drawKnockout(parts, state) {
  const heads = state.knockout.heads;
  const shown = shownHeads(state);
  const blocked = knockoutBlocked(state);
  const comparing = Boolean(comparisonOf(state));
  parts.panel.hidden = !heads.length && !state.knockout.note;
  parts.hint.hidden = Boolean(blocked) || !state.result || heads.length > 0;
  drawList(parts, heads);
  parts.note.hidden = !state.knockout.note && !(heads.length && blocked) && !comparing;
  parts.note.textContent = [state.knockout.note, heads.length ? blocked : "",
    comparing && heads.length ? "Comparing: both sentences run without these heads; the prediction and each " +
      "head's change show with one sentence." : ""].filter(Boolean).join(" ");
  const prediction = state.result?.prediction;
  parts.results.hidden = !prediction || !shown.length || comparing;
  if (!parts.results.hidden) {
    drawPrediction(parts, state.result, shown);
    drawSurprise(parts, state);
  }
  drawLayerNote(parts.layerNote, state, shown, comparing);
  const focusDiff = focusedView(state) === "diff";
  parts.diffLegend.hidden = !focusDiff || !state.focused;
  if (!parts.diffLegend.hidden) {
    const limit = layerLimit(state, state.layer);
    parts.diffMin.textContent = `−${limit}`;
    parts.diffMax.textContent = `+${limit}`;
  }
}

/** The view the focused head is drawn in: the chosen one when it can be shown, else the knocked-out run. */
export function focusedView(state) {
  const ready = state.knockout.clean && shownHeads(state).length && !comparisonOf(state) &&
    state.knockout.clean.attention.has(state.layer) && state.attention?.has(state.layer);
  return ready ? state.knockout.view : "ablated";
}

/** What drawFocus draws from: in the clean view, the run with every head (its attention and its labels). */
export function focusedRun(state) {
  if (focusedView(state) !== "clean") return state;
  const { clean } = state.knockout;
  return { ...state, result: clean.result, attention: clean.attention, resultId: `${state.resultId}clean` };
}

/** The focused view's toggle, view switch and change; in the difference view, the difference painted over the
 *  matrix drawFocus laid out (same geometry, so hovering, the arrow keys and cellAt work on it unchanged). */
export function drawKnockoutFocus(parts, elements, state) {
  const { layer, head, result } = state;
  const name = headName(layer, head);
  const out = hasHead(state.knockout.heads, layer, head);
  const blocked = knockoutBlocked(state);
  parts.focusToggle.setAttribute("aria-pressed", String(out));
  parts.focusToggle.setAttribute("aria-label", `Knock out head ${name}`);
  parts.focusToggle.querySelector(".ko-focus-label").textContent = out ? "Knocked out" : "Knock out";
  parts.focusToggle.title = blocked || (out ? `Head ${name} is knocked out: press to restore it (K)`
    : `Knock out head ${name} (K)`);
  parts.focusToggle.disabled = Boolean(blocked);
  const view = focusedView(state);
  const canSwitch = Boolean(state.knockout.clean) && shownHeads(state).length > 0 && !comparisonOf(state);
  parts.modes.hidden = !canSwitch;
  for (const [key, { input }] of Object.entries(parts.radios)) input.checked = key === view;
  const change = result.heads[layer][head].change;
  parts.focusChange.textContent = change === undefined ? "" : `Δ${change.toFixed(3)} from every head`;
  parts.focusChange.dataset.change = change === undefined ? "" : String(change);
  const { canvas, tooltip } = elements;
  tooltip.classList.toggle("ko-wide", view === "diff");
  if (view !== "diff" || !state.attention.has(layer)) return;
  const tokens = result.tokens;
  const n = tokens.length;
  const context = canvas.getContext("2d");
  const geometry = geometryPainter.geometry(context, tokens, Number(canvas.dataset.cell));
  const probe = state.probe && state.probe.query < n && state.probe.key < n ? state.probe : null;
  const limit = layerLimit(state, layer);
  paintDifference(context, geometry, { difference: layerDifferences(state, layer)[head], n, labels: tokens, limit,
    probe });
  canvas.setAttribute("aria-label", `Layer ${layer} head ${head}, knocked out minus every head, on a scale from ` +
    `−${limit} (blue, less without the heads) to +${limit} (red, more). Arrow keys move the probed cell.`);
  if (!probe) return;
  const { query, key } = probe;
  const lines = key > query ? [["change", "masked: a token cannot see later tokens"]] : (() => {
    const ablated = state.attention.value(layer, head, query, key);
    const clean = state.knockout.clean.attention.value(layer, head, query, key);
    return [["every head", clean.toFixed(4)], ["knocked out", ablated.toFixed(4)],
      ["change", signedText(ablated - clean, 4)]];
  })();
  tooltip.replaceChildren(...[["query", `${query} “${visibleToken(tokens[query])}”`],
    ["key", `${key} “${visibleToken(tokens[key])}”`], ...lines].map(([label, value]) =>
    element("div", "", element("span", "key-name", label), element("span", "key-value", value))));
}

// ---- the parts ----

function drawList(parts, heads) {
  const key = headsKey(heads);
  parts.restore.hidden = heads.length < 1;
  if (parts.listKey === key) return;
  parts.listKey = key;
  parts.list.replaceChildren(...heads.map(([layer, head]) => {
    const name = headName(layer, head);
    const restore = button("ko-restore", "", () => toggleHead(layer, head));
    restore.append(`${name} `, element("span", "ko-restore-mark", "↺"));
    restore.setAttribute("aria-label", `Restore head ${name}`);
    restore.title = `Restore head ${name} (layer ${layer}, head ${head})`;
    restore.dataset.head = name;
    return element("li", "", restore);
  }));
}

function drawPrediction(parts, result, shown) {
  const { top, top_ablated: topAblated } = result.prediction;
  const last = result.tokens[result.n_tokens - 1];
  parts.predictionTitle.textContent = `Next token after “${visibleToken(last)}”`;
  parts.ablatedHeading.textContent = shown.length > 3 ? `Without ${shown.length} heads` : `Without ${headList(shown)}`;
  const cleanBest = top[0]?.id;
  parts.rows.forEach(({ clean, ablated }, rank) => {
    fillPrediction(clean, top[rank], cleanBest);
    fillPrediction(ablated, topAblated[rank], cleanBest);
  });
}

function drawSurprise(parts, state) {
  const { result } = state;
  const changes = logprobChanges(result.prediction);
  const limit = logprobLimit(changes);
  const stripKey = `${state.resultId}`;
  if (parts.stripKey !== stripKey) {
    parts.stripKey = stripKey;
    parts.strip.replaceChildren(...result.tokens.map((token, index) => stripChip(token, index, result, changes, limit)));
    parts.scaleMin.textContent = `−${limit}`;
    parts.scaleMax.textContent = `+${limit}`;
    parts.summary.textContent = surpriseSummary(result, changes);
  }
  const probe = state.knockout.probe;
  for (const chip of parts.strip.children) {
    chip.tabIndex = Number(chip.dataset.index) === (probe ?? 1) ? 0 : -1;
    chip.classList.toggle("probed", Number(chip.dataset.index) === probe);
  }
  parts.readout.textContent = probe === null ? "Hover or focus a token for its numbers."
    : stripReadout(result, probe, changes);
}

function drawLayerNote(note, state, shown, comparing) {
  const { result, layer } = state;
  const first = shown.length ? shown[0][0] : null;
  note.hidden = first === null || comparing || !result;
  if (note.hidden) return;
  note.textContent = layer < first
    ? `Nothing in layer ${layer} changed: a layer's attention depends only on the layers before it, and the first ` +
      `knocked-out head is in layer ${first}.`
    : layer === first
      ? `Layer ${layer}: the knocked-out heads still compute their patterns (shown, marked); only later layers read ` +
        "what they no longer write."
      : `Layer ${layer} is recomputed without the knocked-out heads: each thumbnail shows its new pattern and Δ, its ` +
        "mean total-variation distance from the pattern with every head.";
}

// ---- numbers ----

/** Every head's knocked out − clean of `layer`, computed once per shown answer and layer. */
function layerDifferences(state, layer) {
  const key = `${state.resultId}`;
  if (differences.key !== key) Object.assign(differences, { key, layers: new Map() });
  let matrices = differences.layers.get(layer);
  if (!matrices) {
    const { attention } = state;
    const clean = state.knockout.clean.attention;
    const alignment = identityAlignment(state.result.n_tokens);
    matrices = Array.from({ length: state.result.n_head }, (_, head) => differenceMatrix(
      (query) => attention.row(layer, head, query, false), (query) => clean.row(layer, head, query, false), alignment));
    differences.layers.set(layer, matrices);
    if (differences.layers.size > KEPT_LAYERS) differences.layers.delete(differences.layers.keys().next().value);
  }
  return matrices;
}

/** One round end for a layer's difference scale, so its heads' colours compare. */
function layerLimit(state, layer) {
  let largest = 0;
  for (const matrix of layerDifferences(state, layer)) {
    for (const value of matrix) if (Math.abs(value) > largest) largest = Math.abs(value);  // NaN compares false
  }
  return niceLimit(largest);
}

/** Whether the shown answer carries each head's change (a knock-out on one sentence). */
function changesOf(state) {
  const { result } = state;
  return Boolean(result && shownHeads(state).length && !comparisonOf(state) && result.heads[0]?.[0]?.change !== undefined);
}

function surpriseSummary(result, changes) {
  if (!changes.length) return "One token: nothing to predict.";
  let worst = 0;
  changes.forEach((value, position) => { if (Math.abs(value) > Math.abs(changes[worst])) worst = position; });
  const mean = changes.reduce((sum, value) => sum + value, 0) / changes.length;
  const token = result.tokens[worst + 1];
  return `Each token is coloured by how its log-probability (given the tokens before it) changed without the ` +
    `heads: ${signedText(mean)} on average over ${changes.length}; most at “${visibleToken(token)}” (token ` +
    `${worst + 1}): ${signedText(changes[worst])}.`;
}

function stripReadout(result, index, changes) {
  const token = `“${visibleToken(result.tokens[index])}” (token ${index})`;
  if (index === 0) return `${token}: the first token; nothing comes before it to predict it.`;
  const { logprob, logprob_ablated: ablated } = result.prediction;
  const position = index - 1;
  return `${token}, after “${visibleToken(result.tokens[position])}”: log-probability ${numberText(logprob[position])} ` +
    `with every head, ${numberText(ablated[position])} without; change ${signedText(changes[position], 4)} ` +
    `(p ${probabilityText(Math.exp(logprob[position]))} → ${probabilityText(Math.exp(ablated[position]))}).`;
}

// ---- pure helpers ----

function stripChip(token, index, result, changes, limit) {
  const chip = element("li", "token ko-chip", visibleToken(token));
  chip.dataset.index = String(index);
  chip.addEventListener("mouseenter", () => probeStrip(index));
  chip.addEventListener("focus", () => probeStrip(index));
  if (index === 0) {
    chip.classList.add("ko-first");
    chip.title = "the first token: nothing predicts it";
    return chip;
  }
  const change = changes[index - 1];
  chip.style.backgroundColor = divergingColour(change, limit);
  chip.style.color = Math.abs(change) / limit > DARK_INK_SHARE ? "#fff" : "#111";
  Object.assign(chip.dataset, { change: String(change), clean: String(result.prediction.logprob[index - 1]),
    ablated: String(result.prediction.logprob_ablated[index - 1]) });
  chip.title = `token ${index}: change in log-probability ${signedText(change, 4)}`;
  return chip;
}

function moveInStrip(event, strip) {
  const chips = [...strip.children];
  const at = chips.indexOf(document.activeElement);
  const next = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: chips.length - 1 }[event.key];
  if (next === undefined || at < 0) return;
  event.preventDefault();
  event.stopPropagation();  // the page's arrows move between heads; here they move along the tokens
  chips[Math.max(0, Math.min(chips.length - 1, next))].focus();
}

function predictionCell() {
  const token = element("span", "token");
  const fill = element("span", "bar");
  const amount = element("span", "amount");
  const cell = element("td", "ko-cell", token, element("span", "track", fill), amount);
  return { cell, token, fill, amount };
}

function fillPrediction(parts, entry, cleanBest) {
  parts.cell.hidden = false;
  if (!entry) {
    parts.token.textContent = "";
    parts.amount.textContent = "";
    parts.fill.style.width = "0";
    return;
  }
  parts.token.textContent = visibleToken(entry.token);
  parts.token.title = `token id ${entry.id}`;
  parts.amount.textContent = probabilityText(entry.p);
  parts.fill.style.width = `${Math.max(1, Math.round(entry.p * 100))}%`;
  parts.cell.classList.toggle("ko-best", entry.id === cleanBest);
  Object.assign(parts.cell.dataset, { id: String(entry.id), p: String(entry.p) });
}

function button(className, text, onClick) {
  const node = element("button", className, text);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

function element(tag, className = "", ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}
