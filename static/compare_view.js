/* Drawing compare mode (compare.js holds its handlers): B's box and tokens, the note on how the two sentences
   line up, B and A − B in every thumbnail with the head's change, the focused view's three matrices and the
   two aligned bar charts of one query, and "Which heads care about this word?". Every function only reads
   state; differences come from diff.js, the one diff component. */

import { Heatmap } from "./heatmap.js";
import { MatrixPainter } from "./matrix.js";
import { headTag, paintChip } from "./labels.js";
import { THUMB_MAX_CELLS } from "./grid.js";
import { tokenChip } from "./view.js";
import { visibleToken } from "./attention.js";
import { PAIRS, comparisonOf, rankHeads, shownQuery, tokenizationNote } from "./compare.js";
import {
  DiffHeatmap, alignedKeys, alignedLabels, differenceMatrix, niceLimit, paintDifference, poolDifference,
  rowBarEntries, drawRowBars,
} from "./diff.js";
import { element } from "./dom.js";

const RANKING_SIZE = 12;  // heads in "Which heads care about this word?"
const PANEL_GAP = 12;  // px between the focused view's three matrices
const MAX_CELL = 28;  // px
const MIN_CELL = 3;  // px: beyond this the panels scroll
const LEGIBLE_CELL = 9;  // px: below this three panels side by side lose their token labels
const KEPT_LAYERS = 3;  // layers of difference matrices kept, so sliding back and forth does not recompute

const differences = { id: null, layers: new Map() };  // resultId → layer → [Float32Array (m × m) per head]
const painters = { a: new MatrixPainter(), b: new MatrixPainter() };  // the focused view's A and B, each its own
let rankingKey = "";
let queryKey = "";

// ---- numbers the views share ----

/** Every head's A − B of `layer` over the aligned positions, computed once per comparison and layer. */
export function layerDifferences(state, layer) {
  const comparison = comparisonOf(state);
  if (differences.id !== state.resultId) Object.assign(differences, { id: state.resultId, layers: new Map() });
  let matrices = differences.layers.get(layer);
  if (!matrices) {
    const { attentionB, alignment } = comparison;
    matrices = Array.from({ length: state.result.n_head }, (_, head) => differenceMatrix(
      (query) => state.attention.row(layer, head, query, false), (query) => attentionB.row(layer, head, query, false),
      alignment));
    differences.layers.set(layer, matrices);
    if (differences.layers.size > KEPT_LAYERS) differences.layers.delete(differences.layers.keys().next().value);
  }
  return matrices;
}

/** The colour scale's end for a layer: one round number for all its heads, so their colours compare. */
export function layerLimit(state, layer) {
  let largest = 0;
  for (const matrix of layerDifferences(state, layer)) {
    for (const value of matrix) if (Math.abs(value) > largest) largest = Math.abs(value);  // NaN compares false
  }
  return niceLimit(largest);
}

export function bothReady(state, layer) {
  const comparison = comparisonOf(state);
  return Boolean(comparison && state.attention?.has(layer) && comparison.attentionB.has(layer));
}

// ---- the sentence area ----

export function buildPairPresets(container, onPick) {
  container.replaceChildren(...PAIRS.map((pair) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = pair.name;
    button.title = `A: ${pair.a}\nB: ${pair.b}`;
    button.addEventListener("click", () => onPick(pair));
    return button;
  }));
}

export function drawCompareSentence(elements, state) {
  const { compare } = state;
  const comparison = comparisonOf(state);
  document.body.classList.toggle("comparing", compare.open);
  document.body.classList.toggle("diff-view", compare.open && compare.view === "diff");
  elements.compareBox.hidden = !compare.open;
  elements.compareOpen.hidden = compare.open;
  if (elements.textB.value !== compare.draftB) elements.textB.value = compare.draftB;
  elements.sinkAware.disabled = compare.open;
  elements.sinkAware.title = compare.open ? "Compare mode shows the raw attention of A and B" : "";
  for (const button of elements.pairPresets.children) {
    const pair = PAIRS.find(({ name }) => name === button.textContent);
    button.setAttribute("aria-pressed", String(Boolean(comparison) && state.result.request.text === pair.a &&
      compare.textB === pair.b));
  }
  if (comparison) {  // a pair is not also the one-sentence preset its A happens to be
    for (const button of elements.presets.children) button.setAttribute("aria-pressed", "false");
    elements.tokenCount.textContent = `A: ${elements.tokenCount.textContent}`;  // drawTokens wrote "14 tokens:"
  }
  const key = comparison ? String(state.resultId) : "";
  if (elements.tokensB.dataset.key !== key) {
    const { b } = comparison || {};
    const unmatched = new Set(comparison ? comparison.raw.unmatched_b : []);
    elements.tokensB.replaceChildren(...(b ? b.tokens.map((token, index) => {
      const chip = tokenChip(token, index, b.ids[index], null, state.glossary.bos_token);
      if (unmatched.has(index)) chip.classList.add("unmatched");
      return chip;
    }) : []));
    elements.tokensB.dataset.key = key;
    for (const [index, chip] of [...elements.tokensA.children].entries()) {
      chip.classList.toggle("unmatched", Boolean(comparison) && comparison.raw.unmatched_a.includes(index));
    }
  }
  elements.tokenRowB.hidden = !comparison;
  elements.tokenCountB.textContent = comparison ? `B: ${comparison.b.tokens.length} tokens:` : "";
  elements.compareNote.hidden = !comparison;
  elements.compareNote.textContent = comparison
    ? tokenizationNote(comparison, state.result.tokens, comparison.b.tokens) : "";
  elements.viewSide.checked = compare.view !== "diff";
  elements.viewDiff.checked = compare.view === "diff";
  elements.viewSwitch.hidden = !comparison;
}

// ---- the grid ----

/** Give every thumbnail a B map, an A − B map and a change badge beside its A map (buildGrid made the rest). */
export function buildCompareThumbs(thumbs) {
  thumbs.forEach((thumb, head) => {
    const frameA = thumb.canvas.parentElement;
    const frames = element("span", "thumb-frames");
    frameA.replaceWith(frames);
    frameA.classList.add("side-a");
    const frameB = element("span", "thumb-frame side-b");
    const canvasB = element("canvas", "thumb-map");
    const frameDiff = element("span", "thumb-frame side-diff");
    const canvasDiff = element("canvas", "thumb-map");
    frameB.append(canvasB, element("span", "side-tag", "B"));
    frameDiff.append(canvasDiff, element("span", "head-number", `H${head}`), element("span", "side-tag", "A − B"));
    frameA.append(element("span", "side-tag", "A"));
    frames.append(frameA, frameB, frameDiff);
    const badge = element("span", "change");
    thumb.chip.parentElement.append(badge);
    thumb.compare = { heatmapB: new Heatmap(canvasB), heatmapDiff: new DiffHeatmap(canvasDiff), badge,
      paintedB: "", paintedDiff: "" };
  });
}

/** B's maps, the A − B maps and each head's change and rank; returns how many maps were repainted. */
export function drawCompareGrid(thumbs, state) {
  const comparison = comparisonOf(state);
  const { layer } = state;
  if (!comparison) {
    for (const thumb of thumbs) thumb.compare.badge.textContent = "";
    return 0;
  }
  const ready = bothReady(state, layer);
  const ranks = rankOf(state);
  const diffView = state.compare.view === "diff";
  const nB = Math.min(comparison.b.n_tokens, THUMB_MAX_CELLS);
  const m = comparison.alignment.pairs.length;
  const nDiff = Math.min(m, THUMB_MAX_CELLS);
  const limit = ready ? layerLimit(state, layer) : 1;
  let repainted = 0;
  thumbs.forEach((thumb, head) => {
    const { compare } = thumb;
    const change = comparison.heads[layer][head].change;
    compare.badge.textContent = `Δ${change.toFixed(2)}`;
    compare.badge.title = `change ${change.toFixed(4)}: mean total-variation distance between A's and B's rows; ` +
      `rank ${ranks.get(`${layer}/${head}`)} of ${ranks.size}`;
    const label = thumb.button.getAttribute("aria-label");
    if (!label.includes("change")) thumb.button.setAttribute("aria-label", `${label}; change ${change.toFixed(2)}`);
    thumb.thumb.classList.toggle("pending", !ready);
    if (!ready) return;
    const keyB = `${state.resultId}/${layer}/${head}/${nB}`;
    if (!diffView && compare.paintedB !== keyB) {
      compare.heatmapB.data(comparison.attentionB.pooled(layer, head, false, nB), nB).max(1).draw();
      compare.paintedB = keyB;
      repainted++;
    }
    const keyDiff = `${state.resultId}/${layer}/${head}/${nDiff}/${limit}`;
    if (diffView && compare.paintedDiff !== keyDiff) {
      const matrix = poolDifference(layerDifferences(state, layer)[head], m, nDiff);
      compare.heatmapDiff.data(matrix, nDiff).max(limit).draw();
      compare.paintedDiff = keyDiff;
      repainted++;
    }
  });
  return repainted;
}

/** The diverging colour bar's labels (the bar itself is drawn once, by diff.js). */
export function drawDiffLegend(elements, state) {
  const comparison = comparisonOf(state);
  elements.diffLegend.hidden = !comparison;
  if (!comparison || !bothReady(state, state.layer)) return;
  const limit = layerLimit(state, state.layer);
  elements.diffMin.textContent = `−${limit}`;
  elements.diffMax.textContent = `+${limit}`;
}

// ---- the focused view ----

/** A, B and A − B of the focused head, and the bar charts of one query; false until both layers are in. */
export function drawCompareFocus(elements, state) {
  const comparison = comparisonOf(state);
  const { layer, head, result } = state;
  const infoA = result.heads[layer][head];
  const infoB = comparison.b.heads[layer][head];
  const change = comparison.heads[layer][head];
  elements.title.textContent = `Layer ${layer} · head ${head}`;
  const [tagA, tagB] = [headTag(infoA, result, state.glossary), headTag(infoB, comparison.b, state.glossary)];
  paintChip(elements.chip, tagA.name, `${tagA.name} (A) · B: ${tagB.name}`, tagA.meaning);
  elements.confidence.textContent = `change ${change.change.toFixed(3)}`;
  if (!bothReady(state, layer)) return false;

  const { alignment, attentionB, b } = comparison;
  const labels = alignedLabels(result.tokens, b.tokens, alignment);
  const m = alignment.pairs.length;
  const query = Math.min(shownQuery(state.compare, change), m - 1);
  const rowA = state.attention.row(layer, head, alignment.pairs[query][0], false);
  const rowB = attentionB.row(layer, head, alignment.pairs[query][1], false);
  const entries = rowBarEntries(rowA, rowB, alignedKeys(alignment, query), result.tokens, b.tokens);
  const biggest = entries.reduce((best, entry) => (Math.abs((entry.a ?? 0) - (entry.b ?? 0)) >
    Math.abs((best.a ?? 0) - (best.b ?? 0)) ? entry : best), entries[0]);
  const keyOfBiggest = biggest.keyA !== null ? alignment.indexOfA[biggest.keyA] : alignment.indexOfB[biggest.keyB];
  const probe = state.compare.probe || (keyOfBiggest >= 0 ? { query, key: keyOfBiggest } : { query, key: query });

  const n = Math.max(result.n_tokens, b.n_tokens, m);
  const context = elements.canvasA.getContext("2d");
  const guess = painters.a.geometry(context, labels, 11);
  const width = Math.max(300, elements.panels.clientWidth);
  const fit = (inRow) => Math.floor((width - inRow * (guess.margin + 2) - (inRow - 1) * PANEL_GAP) / (inRow * n));
  // Three in a row while their labels stay legible; else one a row (the panels wrap), each as wide as the view.
  const cell = Math.max(MIN_CELL, Math.min(MAX_CELL, fit(3) >= LEGIBLE_CELL ? fit(3) : fit(1)));
  const side = (canvas, tokens, paint) => {
    const geometry = painters.a.geometry(canvas.getContext("2d"), tokens, cell);
    const surface = sized(canvas, geometry);
    paint(surface, geometry);
    Object.assign(canvas.dataset, { left: geometry.margin, top: geometry.margin, cell, tokens: tokens.length });
  };
  const [queryA, queryB] = alignment.pairs[probe.query];
  const keyA = alignment.pairs[probe.key][0];
  const keyB = alignment.pairs[probe.key][1];
  const key = `${state.resultId}/${layer}/${head}`;
  side(elements.canvasA, result.tokens, (surface, geometry) => painters.a.paint(surface, geometry, {
    matrix: state.attention.pooled(layer, head, false, result.n_tokens), key, tokens: result.tokens,
    probe: { query: queryA, key: keyA } }));
  side(elements.canvasB, b.tokens, (surface, geometry) => painters.b.paint(surface, geometry, {
    matrix: attentionB.pooled(layer, head, false, b.n_tokens), key, tokens: b.tokens,
    probe: { query: queryB, key: keyB } }));
  const limit = layerLimit(state, layer);
  side(elements.canvasDiff, labels, (surface, geometry) => paintDifference(surface, geometry, {
    difference: layerDifferences(state, layer)[head], n: m, labels, limit, probe }));
  elements.canvasDiff.setAttribute("aria-label", `A minus B for layer ${layer} head ${head}, on a scale from ` +
    `−${limit} (blue, more in B) to +${limit} (red, more in A). Arrow keys move the probed cell; Enter picks ` +
    "its query.");
  elements.diffLimit.textContent = `±${limit}`;

  drawQueryPicker(elements.query, state, labels, query);
  elements.probe.textContent = probeLine(state, labels, probe, limit);
  const name = (entry) => `“${visibleToken(entry.label)}”`;
  elements.summary.textContent = `${name({ label: labels[query] })} → ${name(biggest)}: ` +
    `${amount(biggest.a)} in A, ${amount(biggest.b)} in B — the key whose attention changed most in this row.`;
  drawRowBars(elements.bars, entries, { names: ["A", "B"],
    caption: `Where query ${query} “${visibleToken(labels[query])}” attends, in A and in B, key by key` });
  return true;
}

// ---- which heads care ----

/** The heads that change most across all layers, each a link to its focused view (`hrefOf(layer, head)`). */
export function drawRanking(elements, state, hrefOf) {
  const comparison = comparisonOf(state);
  elements.section.hidden = !comparison;
  if (!comparison) return;
  const key = `${state.resultId}`;
  if (rankingKey !== key) {
    const ranking = rankHeads(comparison.heads).slice(0, RANKING_SIZE);
    const largest = Math.max(ranking[0].change, 1e-9);
    elements.list.replaceChildren(...ranking.map(({ layer, head, change, peak }) => {
      const link = element("a", "", `Layer ${layer} · head ${head}`);
      link.href = hrefOf(layer, head);
      Object.assign(link.dataset, { layer, head });
      const bar = element("span", "bar");
      bar.style.width = `${Math.round((change / largest) * 100)}%`;
      const where = peak ? `most at “${visibleToken(state.result.tokens[peak.query_a])}”` : "";
      return element("li", "", link, element("span", "amount", change.toFixed(3)), element("span", "track", bar),
        element("span", "muted", where));
    }));
    rankingKey = key;
  }
  for (const link of elements.list.querySelectorAll("a")) {
    const current = state.focused && Number(link.dataset.layer) === state.layer && Number(link.dataset.head) === state.head;
    if (current) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
}

// ---- pure helpers ----

function rankOf(state) {
  const ranks = new Map();
  rankHeads(comparisonOf(state).heads).forEach(({ layer, head }, index) => ranks.set(`${layer}/${head}`, index + 1));
  return ranks;
}

function drawQueryPicker(select, state, labels, query) {
  const key = `${state.resultId}`;
  if (queryKey !== key) {
    const first = comparisonOf(state).alignment.firstDifference;
    select.replaceChildren(...labels.map((label, index) => new Option(
      `${index} “${visibleToken(label)}”${index < first ? " (the same in A and B)" : ""}`, String(index))));
    queryKey = key;
  }
  if (select.value !== String(query)) select.value = String(query);
}

function probeLine(state, labels, probe, limit) {
  const { query, key } = probe;
  const words = `query ${query} “${visibleToken(labels[query])}” → key ${key} “${visibleToken(labels[key])}”`;
  if (key > query) return `${words}: masked, a token cannot see later tokens`;
  const { alignment, attentionB } = comparisonOf(state);
  const [queryA, queryB] = alignment.pairs[query];
  const a = state.attention.value(state.layer, state.head, queryA, alignment.pairs[key][0]);
  const b = attentionB.value(state.layer, state.head, queryB, alignment.pairs[key][1]);
  return `${words}: ${a.toFixed(4)} in A, ${b.toFixed(4)} in B, A − B ${signed(a - b)} (scale ±${limit})`;
}

function sized(canvas, geometry) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(geometry.width * dpr);
  canvas.height = Math.round(geometry.height * dpr);
  canvas.style.width = `${geometry.width}px`;
  canvas.style.height = `${geometry.height}px`;
  const context = canvas.getContext("2d");
  context.setTransform(dpr, 0, 0, dpr, 0, 0);
  return context;
}

function amount(value) {
  return value === null ? "nothing (not in this sentence)" : value.toFixed(2);
}

function signed(value) {
  return `${value > 0 ? "+" : value < 0 ? "−" : ""}${Math.abs(value).toFixed(4)}`;
}
