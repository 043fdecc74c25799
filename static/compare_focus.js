/* The focused head in compare mode: A, B and A − B side by side (A − B on diff.js's diverging scale, one round
   end for the whole layer), the probed cell's two values, and for one query token its two aligned rows as bar
   charts over the same keys ("it → trophy 0.41 in A, 0.12 in B"). The query is the row where the head changed
   most until the student picks one (the list, a click on a row, or Enter on A − B). Draw functions only read
   state; layerDifferences and layerLimit are shared with the grid and the PNGs. */

import { visibleToken } from "./attention.js";
import { confidenceText, headTag } from "./labels.js";
import { MatrixPainter } from "./matrix.js";
import { state } from "./state.js";
import { comparisonOf, pickQuery, probeCompare, rankHeads, shownQuery } from "./compare.js";
import {
  alignedKeys, alignedLabels, differenceMatrix, drawRowBars, niceLimit, paintDifference, rowBarEntries,
} from "./diff.js";

const PANEL_GAP = 12;  // px between the three matrices
const MAX_CELL = 28;  // px
const MIN_CELL = 3;  // px: beyond this the panels scroll
const GUESS_CELL = 11;  // px: the label margin is measured at this size before the cell is chosen
const KEPT_LAYERS = 3;
const STACKED_MEDIA = "(max-width: 700px)";  // as style.css: the panels stand one above the other  // layers of difference matrices kept, so sliding back and forth does not recompute

const painters = { a: new MatrixPainter(), b: new MatrixPainter(), diff: new MatrixPainter() };  // diff: geometry
const differences = { id: null, layers: new Map() };  // for one resultId: layer → [Float32Array (m × m) per head]

// ---- numbers the compare views share ----

/** Every head's A − B of `layer` over the aligned positions, computed once per comparison and layer. */
export function layerDifferences(shown, layer) {
  const { attentionB, alignment } = comparisonOf(shown);
  if (differences.id !== shown.resultId) Object.assign(differences, { id: shown.resultId, layers: new Map() });
  let matrices = differences.layers.get(layer);
  if (!matrices) {
    matrices = Array.from({ length: shown.result.n_head }, (_, head) => differenceMatrix(
      (query) => shown.attention.row(layer, head, query, false), (query) => attentionB.row(layer, head, query, false),
      alignment));
    differences.layers.set(layer, matrices);
    if (differences.layers.size > KEPT_LAYERS) differences.layers.delete(differences.layers.keys().next().value);
  }
  return matrices;
}

/** The colour scale's end for a layer: one round number for all its heads, so their colours compare. */
export function layerLimit(shown, layer) {
  let largest = 0;
  for (const matrix of layerDifferences(shown, layer)) {
    for (const value of matrix) if (Math.abs(value) > largest) largest = Math.abs(value);  // NaN compares false
  }
  return niceLimit(largest);
}

// ---- structure ----

export function buildCompareFocus(dom, page) {
  const figure = (name, id, caption) => {
    const canvas = element("canvas", "matrix");
    canvas.id = id;
    canvas.setAttribute("role", "img");
    return { canvas, root: element("figure", "", element("figcaption", "", caption), canvas), name };
  };
  const limit = element("span", "muted");
  const panels = [figure("a", "matrix-a", "A"), figure("b", "matrix-b", "B"), figure("diff", "matrix-diff", "A − B ")];
  panels[2].root.querySelector("figcaption").append(limit);
  panels[2].canvas.tabIndex = 0;
  const heads = element("p", "compare-heads");
  heads.id = "compare-heads";
  const probe = element("p", "probe-line");
  probe.id = "compare-probe";
  probe.setAttribute("role", "status");
  probe.setAttribute("aria-live", "polite");
  const query = element("select");
  query.id = "compare-query";
  const label = element("label", "", "Query token");
  label.htmlFor = query.id;
  const summary = element("p", "reason");
  summary.id = "compare-summary";
  const bars = element("table", "row-bars");
  bars.id = "row-bars";
  const root = element("div", "compare-focus", heads, element("div", "panels", ...panels.map(({ root: r }) => r)),
    probe, element("div", "row-pick", label, query, element("span", "muted", "or click a row")), summary, bars);
  root.id = "compare-focus";
  root.hidden = true;
  dom.focusBody.after(root);
  const parts = { root, heads, panels, limit, probe, query, summary, bars, queryKey: "" };
  listen(parts, page);
  return parts;
}

// ---- drawing ----

/** A, B and A − B of the focused head, and the bar charts of one query; false until both layers are in. */
export function drawCompareFocus(parts, shown) {
  const comparison = comparisonOf(shown);
  const { layer, head, result, glossary } = shown;
  const { alignment, attentionB, b } = comparison;
  const change = comparison.heads[layer][head];
  const rank = rankHeads(comparison.heads).findIndex((entry) => entry.layer === layer && entry.head === head) + 1;
  const tagOf = (answer) => headTag(answer.heads[layer][head], answer, glossary);
  const described = (tag) => `${tag.name}${tag.confidence === null ? "" : ` (${confidenceText(tag)})`}`;
  parts.heads.textContent = `A: ${described(tagOf(result))} · B: ${described(tagOf(b))} · change ` +
    `${change.change.toFixed(3)}, rank ${rank} of ${comparison.heads.length * comparison.heads[0].length}`;
  if (!shown.attention.has(layer) || !attentionB.has(layer)) return false;

  const labels = alignedLabels(result.tokens, b.tokens, alignment);
  const m = alignment.pairs.length;
  const query = Math.min(shownQuery(shown.compare, change), m - 1);
  const rowA = shown.attention.row(layer, head, alignment.pairs[query][0], false);
  const rowB = attentionB.row(layer, head, alignment.pairs[query][1], false);
  const entries = rowBarEntries(rowA, rowB, alignedKeys(alignment, query), result.tokens, b.tokens);
  const gap = (entry) => Math.abs((entry.a ?? 0) - (entry.b ?? 0));
  const biggest = entries.reduce((best, entry) => (gap(entry) > gap(best) ? entry : best), entries[0]);
  const keyOfBiggest = biggest.keyA !== null ? alignment.indexOfA[biggest.keyA] : alignment.indexOfB[biggest.keyB];
  const probe = shown.compare.probe || { query, key: keyOfBiggest >= 0 ? keyOfBiggest : query };
  const limit = layerLimit(shown, layer);
  paintPanels(parts, shown, { labels, probe, limit });

  drawQueryPicker(parts, shown, labels, query);
  parts.probe.textContent = probeLine(shown, labels, probe, limit);
  parts.summary.textContent = `“${visibleToken(labels[query])}” → “${visibleToken(biggest.label)}”: ` +
    `${amount(biggest.a)} in A, ${amount(biggest.b)} in B — the key whose attention changed most in this row.`;
  drawRowBars(parts.bars, entries, { names: ["A", "B"],
    caption: `Where query ${query} “${visibleToken(labels[query])}” attends, in A and in B, key by key` });
  return true;
}

function paintPanels(parts, shown, { labels, probe, limit }) {
  const { layer, head, result, resultId } = shown;
  const { alignment, attentionB, b } = comparisonOf(shown);
  const [a, diff] = [parts.panels[0], parts.panels[2]];
  const n = Math.max(result.n_tokens, b.n_tokens, labels.length);
  const guess = painters.diff.geometry(a.canvas.getContext("2d"), labels, GUESS_CELL);
  const width = Math.max(300, parts.root.clientWidth);
  const inRow = window.matchMedia(STACKED_MEDIA).matches ? 1 : 3;  // a phone stacks them (style.css)
  const fit = Math.floor((width - inRow * (guess.margin + 2) - (inRow - 1) * PANEL_GAP) / (inRow * n));
  const cell = Math.max(MIN_CELL, Math.min(MAX_CELL, fit));
  const [queryA, queryB] = alignment.pairs[probe.query];
  const [keyA, keyB] = alignment.pairs[probe.key];
  const sides = {
    a: { tokens: result.tokens, attention: shown.attention, probe: { query: queryA, key: keyA } },
    b: { tokens: b.tokens, attention: attentionB, probe: { query: queryB, key: keyB } },
  };
  for (const panel of parts.panels) {
    const tokens = panel.name === "diff" ? labels : sides[panel.name].tokens;
    const context = panel.canvas.getContext("2d");
    const geometry = painters[panel.name].geometry(context, tokens, cell);
    sized(panel.canvas, context, geometry);
    if (panel.name === "diff") {
      paintDifference(context, geometry, { difference: layerDifferences(shown, layer)[head], n: labels.length, labels,
        limit, probe });
    } else {
      const side = sides[panel.name];
      painters[panel.name].paint(context, geometry, { matrix: side.attention.pooled(layer, head, false, tokens.length),
        key: `${panel.name}/${resultId}/${layer}/${head}`, tokens, probe: side.probe });
    }
    Object.assign(panel.canvas.dataset, { left: geometry.margin, top: geometry.margin, cell, tokens: tokens.length });
  }
  a.canvas.setAttribute("aria-label", `Sentence A, layer ${layer} head ${head}`);
  parts.panels[1].canvas.setAttribute("aria-label", `Sentence B, layer ${layer} head ${head}`);
  diff.canvas.setAttribute("aria-label", `A minus B for layer ${layer} head ${head}, on a scale from −${limit} ` +
    `(blue, more in B) to +${limit} (red, more in A). Arrow keys move the probed cell; Enter picks its query.`);
  parts.limit.textContent = `±${limit}`;
}

function drawQueryPicker(parts, shown, labels, query) {
  const key = String(shown.resultId);
  if (parts.queryKey !== key) {
    const first = comparisonOf(shown).alignment.firstDifference;
    parts.query.replaceChildren(...labels.map((label, index) => new Option(
      `${index} “${visibleToken(label)}”${index < first ? " (the same in A and B)" : ""}`, String(index))));
    parts.queryKey = key;
  }
  if (parts.query.value !== String(query)) parts.query.value = String(query);
}

function probeLine(shown, labels, { query, key }, limit) {
  const words = `query ${query} “${visibleToken(labels[query])}” → key ${key} “${visibleToken(labels[key])}”`;
  if (key > query) return `${words}: masked, a token cannot see later tokens`;
  const { alignment, attentionB } = comparisonOf(shown);
  const a = shown.attention.value(shown.layer, shown.head, alignment.pairs[query][0], alignment.pairs[key][0]);
  const b = attentionB.value(shown.layer, shown.head, alignment.pairs[query][1], alignment.pairs[key][1]);
  return `${words}: ${a.toFixed(4)} in A, ${b.toFixed(4)} in B, A − B ${signed(a - b)} (scale ±${limit})`;
}

// ---- the controls ----

function listen(parts, page) {
  const alignedCell = (panel, event) => {
    const cell = page.cellAt(panel.canvas, event.offsetX, event.offsetY);
    const alignment = comparisonOf(state)?.alignment;
    if (!cell || !alignment) return null;
    const index = { a: alignment.indexOfA, b: alignment.indexOfB }[panel.name];
    const query = index ? index[cell.query] : cell.query;
    const key = index ? index[cell.key] : cell.key;
    return query >= 0 && key >= 0 ? { query, key } : null;  // a position without a partner has no A − B
  };
  for (const panel of parts.panels) {
    panel.canvas.addEventListener("mousemove", (event) => probeCompare(alignedCell(panel, event)));
    panel.canvas.addEventListener("mouseleave", () => probeCompare(null));
    panel.canvas.addEventListener("click", (event) => {
      const cell = alignedCell(panel, event);
      if (cell) pickQuery(cell.query);
    });
  }
  parts.query.addEventListener("change", () => pickQuery(Number(parts.query.value)));
  parts.panels[2].canvas.addEventListener("keydown", (event) => {
    const { compare } = state;
    const pairs = compare.result?.alignment.pairs;
    const step = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[event.key];
    if (!pairs || (!step && event.key !== "Enter")) return;
    event.preventDefault();
    event.stopPropagation();  // the page's arrows move between heads and layers; here they move the probed cell
    const last = pairs.length - 1;
    const probe = compare.probe || { query: parts.query.value === "" ? last : Number(parts.query.value), key: 0 };
    if (event.key === "Enter") return pickQuery(probe.query);
    const clamp = (value) => Math.max(0, Math.min(last, value));
    probeCompare({ query: clamp(probe.query + step[0]), key: clamp(probe.key + step[1]) });
  });
}

// ---- pure helpers ----

function sized(canvas, context, geometry) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(geometry.width * dpr);
  canvas.height = Math.round(geometry.height * dpr);
  canvas.style.width = `${geometry.width}px`;
  canvas.style.height = `${geometry.height}px`;
  context.setTransform(dpr, 0, 0, dpr, 0, 0);
}

function amount(value) {
  return value === null ? "nothing (not in this sentence)" : value.toFixed(2);
}

function signed(value) {
  return `${value > 0 ? "+" : value < 0 ? "−" : ""}${Math.abs(value).toFixed(4)}`;
}

function element(tag, className = "", ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}
