/* THE diff component: how two attention patterns of one head differ. Compare (sentence A against sentence B)
   and Intervene (clean run against the run with heads knocked out) both draw their differences with it.

   Vocabulary. A "row" is one query's attention over its keys (a Float32Array of length query + 1, as
   AttentionStore.row returns). An "alignment" says which positions of A and B are the same token slot:
     makeAlignment(pairs, nA, nB, firstDifference)  pairs: [[a, b], …], strictly increasing in both; from the
                                                     server (/api/compare's "alignment") or built here
     identityAlignment(n)                             the same n tokens on both sides (Intervene)
   The aligned index i names pairs[i]; the difference matrix is indexed by it. An alignment also holds bOf / aOf
   (a position's partner on the other side) and indexOfA / indexOfB (a position's aligned index), -1 for none.

   Numbers (pure, no DOM; tests/js/diff.test.mjs):
     rowDistance(rowA, rowB, keys)          total variation: half the L1 distance, a key without a partner
                                            counting its whole mass (the server's definition, server/compare.py)
     alignedKeys(alignment, i)              the keys of aligned query i: [{a, b}], a or b null when unmatched
     headChange(rowOfA, rowOfB, alignment)  mean rowDistance over aligned queries from firstDifference on: the
                                            per-head change number (0 when no such query exists)
     differenceMatrix(rowOfA, rowOfB, alignment)  (m × m) Float32Array of A − B, NaN above the diagonal
     poolDifference(matrix, m, n)           shrink to n × n keeping each block's value of largest magnitude
     alignedLabels(tokensA, tokensB, alignment)   one axis label per aligned index: " it", or " big→ small"
     niceLimit(largest)                     the colour scale's end: the first of SCALE_LIMITS ≥ largest
     divergingIndex(value, limit)           index into DIVERGING_LUT: 0 = −limit, centre = 0, end = +limit
   rowOfA / rowOfB are functions query → row, so callers hand in AttentionStore rows without copying a head.

   Drawing (canvas and DOM; only what its arguments say):
     new DiffHeatmap(canvas).data(values, n).max(limit).draw()   one pixel per cell, like heatmap.js
     paintDifference(context, geometry, {difference, n, labels, limit, probe})
                                            the full panel as focus.js paints an attention matrix: `geometry`
                                            comes from MatrixPainter.geometry (matrix.js), so cellAt() works on it too
     drawDivergingBar(canvas)               the colour bar, −limit on the left
     drawRowBars(table, rows, {names, labelA, labelB})   the two aligned bar charts of one query row
     rowBarEntries(rowA, rowB, keys, tokensA, tokensB)   their data: [{keyA, keyB, label, a, b}]
     divergingColour(value, limit)          CSS colour of one value
   Colours: ColorBrewer RdBu, reversed so that red is "more in A", blue "more in B" and white no change; RdBu
   is among ColorBrewer's colour-blind-safe diverging schemes, and its lightness is symmetric around 0. */

import { MASKED_RGB, buildLut, rgbaPixels } from "./heatmap.js";
import { shortToken, visibleToken } from "./attention.js";

// ColorBrewer RdBu (11 classes), from −limit (blue) to +limit (red); the middle stop is the zero.
const RDBU_STOPS = ["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
                    "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"];
export const LUT_SIZE = 255;  // odd, so that one entry, the middle, is exactly zero
export const ZERO_INDEX = (LUT_SIZE - 1) / 2;
export const DIVERGING_LUT = buildLut(RDBU_STOPS, LUT_SIZE);  // Uint8ClampedArray(LUT_SIZE × 3)
export const SCALE_LIMITS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1];  // ends a colour bar can have: easy to read
export const A_COLOUR = "#b2182b";  // the scale's own ends, so a bar and a cell of the same side agree
export const B_COLOUR = "#2166ac";
const LUT_PIXELS = rgbaPixels(DIVERGING_LUT);
const MASKED_PIXEL = rgbaPixels(MASKED_RGB)[0];
const LABEL_CHARS = 14;  // as focus.js
const MIN_BAR_SHARE = 0.005;  // a bar this small is still drawn one pixel wide, so "0.00" and nothing differ

// ---- numbers ----

/** An alignment of A's nA positions with B's nB: `pairs` strictly increasing in both; positions in no pair are
 *  unmatched. `firstDifference` is where the two token sequences first differ (the length of their common
 *  prefix): every row before it is the same in A and B by causality. */
export function makeAlignment(pairs, nA, nB, firstDifference) {
  const bOf = new Int32Array(nA).fill(-1);  // A's position → its partner in B, -1 for none
  const aOf = new Int32Array(nB).fill(-1);
  const indexOfA = new Int32Array(nA).fill(-1);  // A's position → its aligned index, -1 for none
  const indexOfB = new Int32Array(nB).fill(-1);
  pairs.forEach(([a, b], index) => {
    console.assert(index === 0 || (a > pairs[index - 1][0] && b > pairs[index - 1][1]), "alignment: not increasing");
    bOf[a] = b;
    aOf[b] = a;
    indexOfA[a] = indexOfB[b] = index;
  });
  return { pairs, nA, nB, firstDifference, bOf, aOf, indexOfA, indexOfB,
    same: nA === nB && pairs.length === nA };  // every position has its partner at the same index
}

export function identityAlignment(n, firstDifference = 0) {
  return makeAlignment(Array.from({ length: n }, (_, index) => [index, index]), n, n, firstDifference);
}

/** The keys aligned query `index` can see, in order: [{a, b}] with a (or b) null for a key only one side has. */
export function alignedKeys(alignment, index) {
  const [queryA, queryB] = alignment.pairs[index];
  const keys = [];
  let a = 0;
  let b = 0;
  while (a <= queryA || b <= queryB) {
    if (a <= queryA && alignment.bOf[a] === b) keys.push({ a: a++, b: b++ });
    else if (a <= queryA && alignment.bOf[a] === -1) keys.push({ a: a++, b: null });
    else keys.push({ a: null, b: b++ });
  }
  return keys;
}

/** Total variation between two rows over `keys`: ½ Σ |a − b|, a missing side counting as 0. In [0, 1]. */
export function rowDistance(rowA, rowB, keys) {
  let sum = 0;
  for (const { a, b } of keys) sum += Math.abs((a === null ? 0 : rowA[a]) - (b === null ? 0 : rowB[b]));
  return sum / 2;
}

/** The per-head change number: mean rowDistance over the aligned queries at or after firstDifference. */
export function headChange(rowOfA, rowOfB, alignment) {
  let total = 0;
  let rows = 0;
  alignment.pairs.forEach(([queryA, queryB], index) => {
    if (queryA < alignment.firstDifference) return;
    total += rowDistance(rowOfA(queryA), rowOfB(queryB), alignedKeys(alignment, index));
    rows++;
  });
  return rows ? total / rows : 0;
}

/** A − B over the aligned positions: an (m × m) Float32Array, row-major (query, key), NaN above the diagonal. */
export function differenceMatrix(rowOfA, rowOfB, alignment) {
  const { pairs } = alignment;
  const m = pairs.length;
  const matrix = new Float32Array(m * m).fill(NaN);
  for (let query = 0; query < m; query++) {
    const rowA = rowOfA(pairs[query][0]);
    const rowB = rowOfB(pairs[query][1]);
    for (let key = 0; key <= query; key++) matrix[query * m + key] = rowA[pairs[key][0]] - rowB[pairs[key][1]];
  }
  return matrix;
}

/** (m × m) → (n × n), n ≤ m: each cell the value of largest magnitude in its block (sign kept), so one strong
 *  change survives the shrinking, as the attention thumbnails keep a thin diagonal; NaN where all is masked. */
export function poolDifference(matrix, m, n) {
  if (n >= m) return matrix;
  const pooled = new Float32Array(n * n).fill(NaN);
  const bin = Int32Array.from({ length: m }, (_, index) => Math.floor((index * n) / m));
  for (let query = 0; query < m; query++) {
    for (let key = 0; key <= query; key++) {
      const value = matrix[query * m + key];
      if (Number.isNaN(value)) continue;
      const at = bin[query] * n + bin[key];
      if (!(Math.abs(pooled[at]) >= Math.abs(value))) pooled[at] = value;  // NaN compares false: replaced
    }
  }
  return pooled;
}

/** One label per aligned position: the token, or "A's→B's" where the two differ. */
export function alignedLabels(tokensA, tokensB, alignment) {
  return alignment.pairs.map(([a, b]) => (tokensA[a] === tokensB[b] ? tokensA[a] : `${tokensA[a]}→${tokensB[b]}`));
}

/** The bar charts' data for one aligned query: every key either side sees, with both values (null: absent). */
export function rowBarEntries(rowA, rowB, keys, tokensA, tokensB) {
  return keys.map(({ a, b }) => {
    const tokenA = a === null ? null : tokensA[a];
    const tokenB = b === null ? null : tokensB[b];
    const label = tokenA === null ? tokenB : tokenB === null || tokenB === tokenA ? tokenA : `${tokenA}→${tokenB}`;
    return { keyA: a, keyB: b, label, a: a === null ? null : rowA[a], b: b === null ? null : rowB[b] };
  });
}

/** The end of a colour scale that shows differences up to `largest`: a round number, at most 1. */
export function niceLimit(largest) {
  return SCALE_LIMITS.find((limit) => limit >= largest) ?? 1;
}

export function divergingIndex(value, limit) {
  // Rounded away from zero on both sides alike (Math.round alone would not: −63.5 → −63 but 63.5 → 64).
  const steps = Math.min(ZERO_INDEX, Math.round((Math.abs(value) / limit) * ZERO_INDEX));
  return value < 0 ? ZERO_INDEX - steps : ZERO_INDEX + steps;
}

export function divergingColour(value, limit = 1) {
  if (Number.isNaN(value)) return `rgb(${MASKED_RGB.join(",")})`;
  const at = divergingIndex(value, limit) * 3;
  return `rgb(${DIVERGING_LUT[at]},${DIVERGING_LUT[at + 1]},${DIVERGING_LUT[at + 2]})`;
}

// ---- drawing ----

export class DiffHeatmap {
  /** An n × n difference matrix at one pixel per cell (callers scale it up with smoothing off); NaN is masked. */
  constructor(canvas) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.values = null;
    this.n = 0;
    this.limit = 1;
    this.image = null;
    this.pixels = null;
  }

  data(values, n) {
    console.assert(values.length === n * n, "diff heatmap: values must be n * n");
    this.values = values;
    this.n = n;
    return this;
  }

  max(limit) {
    this.limit = limit;
    return this;
  }

  draw() {
    const { n, values, limit } = this;
    if (this.canvas.width !== n) this.canvas.width = n;
    if (this.canvas.height !== n) this.canvas.height = n;
    if (n === 0) return this;
    if (!this.image || this.image.width !== n) {
      this.image = this.context.createImageData(n, n);
      this.pixels = new Uint32Array(this.image.data.buffer);
    }
    for (let cell = 0; cell < n * n; cell++) {
      const value = values[cell];
      this.pixels[cell] = Number.isNaN(value) ? MASKED_PIXEL : LUT_PIXELS[divergingIndex(value, limit)];
    }
    this.context.putImageData(this.image, 0, 0);
    return this;
  }
}

const panelCanvas = typeof document === "undefined" ? null : document.createElement("canvas");
const panelHeatmap = panelCanvas && new DiffHeatmap(panelCanvas);

/** Paint the difference matrix at (0, 0) of `context`, laid out as focus.js paintMatrix lays out a head:
 *  `geometry` is MatrixPainter.geometry(context, labels, cell); labels on both axes; `probe` {query, key} outlined. */
export function paintDifference(context, geometry, { difference, n, labels, limit, probe }) {
  const { cell, margin, step, font } = geometry;
  panelHeatmap.data(difference, n).max(limit).draw();
  context.fillStyle = "#fff";
  context.fillRect(0, 0, geometry.width, geometry.height);
  context.imageSmoothingEnabled = false;
  context.drawImage(panelCanvas, margin, margin, n * cell, n * cell);
  context.font = font;
  context.textBaseline = "middle";
  for (let index = 0; index < n; index++) {
    const queryProbed = probe && index === probe.query;
    const keyProbed = probe && index === probe.key;
    if (index % step !== 0 && !queryProbed && !keyProbed) continue;
    const name = `${shortToken(labels[index], LABEL_CHARS)} ${index}`;
    const centre = margin + index * cell + cell / 2;
    context.fillStyle = queryProbed ? "#b00020" : "#222";
    context.textAlign = "right";
    context.fillText(name, margin - 4, centre, margin - 6);
    context.save();
    context.translate(centre, margin - 4);
    context.rotate(-Math.PI / 2);
    context.fillStyle = keyProbed ? "#b00020" : "#222";
    context.textAlign = "left";
    context.fillText(name, 0, 0, margin - 6);
    context.restore();
  }
  context.fillStyle = "#555";
  context.textAlign = "left";
  context.fillText("query ↓  key →", 4, 10);
  if (probe) {
    context.lineWidth = 2;
    context.strokeStyle = "#111";
    context.strokeRect(margin + probe.key * cell, margin + probe.query * cell, cell, cell);
    context.lineWidth = 1;
    context.strokeStyle = "rgba(0,0,0,0.45)";
    context.strokeRect(margin + 0.5, margin + probe.query * cell + 0.5, n * cell - 1, cell - 1);
  }
}

/** The diverging scale as a horizontal bar, −limit on the left, 0 in the middle, +limit on the right. */
export function drawDivergingBar(canvas, width = LUT_SIZE, height = 1) {
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  for (let x = 0; x < width; x++) {
    const at = divergingIndex((2 * x) / (width - 1) - 1, 1) * 3;
    for (let y = 0; y < height; y++) {
      image.data.set([DIVERGING_LUT[at], DIVERGING_LUT[at + 1], DIVERGING_LUT[at + 2], 255], (y * width + x) * 4);
    }
  }
  context.putImageData(image, 0, 0);
  return canvas;
}

/** The two aligned bar charts of one query row, as a table: a row per key with its value in A and in B side by
 *  side, then A − B on the diverging scale. `names` = ["A", "B"] (or ["clean", "knocked out"]). */
export function drawRowBars(table, entries, { names = ["A", "B"], caption = "" } = {}) {
  const largest = Math.max(MIN_BAR_SHARE, ...entries.flatMap(({ a, b }) => [a ?? 0, b ?? 0]));
  const head = document.createElement("thead");
  head.append(row("th", ["key", `in ${names[0]}`, `in ${names[1]}`, `${names[0]} − ${names[1]}`]));
  const body = document.createElement("tbody");
  for (const entry of entries) {
    const line = document.createElement("tr");
    line.dataset.keyA = entry.keyA ?? "";
    line.dataset.keyB = entry.keyB ?? "";
    const key = document.createElement("th");
    key.scope = "row";
    key.className = "token-cell";
    key.textContent = visibleToken(entry.label);
    key.title = `key ${entry.keyA ?? "–"} in ${names[0]}, ${entry.keyB ?? "–"} in ${names[1]}`;
    line.append(key, barCell(entry.a, largest, "side-a"), barCell(entry.b, largest, "side-b"), changeCell(entry));
    body.append(line);
  }
  const title = document.createElement("caption");
  title.textContent = caption;
  table.replaceChildren(title, head, body);
}

// ---- pure helpers ----

function barCell(value, largest, side) {
  const cell = document.createElement("td");
  cell.className = `bar-cell ${side}`;
  if (value === null) {
    cell.textContent = "—";
    cell.title = "this key is not in this sentence";
    return cell;
  }
  const track = document.createElement("span");
  track.className = "bar-track";
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.style.width = `${Math.max(1, Math.round((value / largest) * 100))}%`;
  bar.style.backgroundColor = side === "side-a" ? A_COLOUR : B_COLOUR;
  track.append(bar);
  const number = document.createElement("span");
  number.className = "amount";
  number.textContent = value.toFixed(2);
  number.title = value.toFixed(4);
  cell.append(track, number);
  return cell;
}

function changeCell({ a, b }) {
  const cell = document.createElement("td");
  cell.className = "change-cell";
  const difference = (a ?? 0) - (b ?? 0);
  const shown = Math.abs(difference).toFixed(2);
  const sign = shown === "0.00" ? "" : difference > 0 ? "+" : "−";  // no "−0.00"
  cell.textContent = `${sign}${shown}`;
  cell.title = difference.toFixed(4);
  cell.style.backgroundColor = divergingColour(difference, 1);
  cell.style.color = Math.abs(difference) > 0.6 ? "#fff" : "#111";
  return cell;
}

function row(tag, texts) {
  const line = document.createElement("tr");
  line.append(...texts.map((text) => {
    const cell = document.createElement(tag);
    cell.textContent = text;
    return cell;
  }));
  return line;
}
