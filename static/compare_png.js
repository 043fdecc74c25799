/* Download PNG in compare mode: the layer's heads for A and B (or A − B), or the focused head's three matrices,
   under a title block with the model, both sentences and the layer, and the colour scales used. */

import { Heatmap, drawColourBar } from "./heatmap.js";
import { MatrixPainter } from "./matrix.js";
import { pictureName } from "./png.js";
import { shownView } from "./history.js";
import { THUMB_MAX_CELLS } from "./grid.js";
import { DiffHeatmap, alignedLabels, drawDivergingBar, paintDifference, poolDifference } from "./diff.js";
import { comparisonOf } from "./compare.js";
import { layerDifferences, layerLimit } from "./compare_view.js";

const PAD = 24;  // px around everything
const SIDE_THUMB = 110;  // px per map when A and B stand side by side
const DIFF_THUMB = 168;  // px per A − B map
const GRID_COLUMNS = 6;
const CAPTION = 26;  // px under each thumbnail
const GAP = 12;
const TITLE_FONT = "bold 18px system-ui, sans-serif";
const TEXT_FONT = "14px system-ui, sans-serif";
const LINE = 20;
const FOCUS_PANEL_PX = 700;  // each focused matrix is scaled to fit this
const SCALE = 2;  // pixels per CSS px

export function compareGridPicture(state) {
  const { result, layer } = state;
  const comparison = comparisonOf(state);
  const diffView = state.compare.view === "diff";
  const thumb = diffView ? DIFF_THUMB : SIDE_THUMB * 2 + 4;
  const columns = Math.min(GRID_COLUMNS, result.n_head);
  const rows = Math.ceil(result.n_head / columns);
  const width = PAD * 2 + columns * thumb + (columns - 1) * GAP;
  const shown = diffView ? "A − B" : "A and B";
  const title = titleLines(state, `layer ${layer} of ${result.n_layer - 1}, all ${result.n_head} heads: ${shown}`);
  const mapHeight = diffView ? DIFF_THUMB : SIDE_THUMB;
  const height = PAD + title.length * LINE + 12 + rows * (mapHeight + CAPTION + GAP) + 60;
  const { canvas, context } = surface(width, height);
  drawTitle(context, title, width);
  const top = PAD + title.length * LINE + 12;
  const nA = Math.min(result.n_tokens, THUMB_MAX_CELLS);
  const nB = Math.min(comparison.b.n_tokens, THUMB_MAX_CELLS);
  const m = comparison.alignment.pairs.length;
  const nDiff = Math.min(m, THUMB_MAX_CELLS);
  const limit = layerLimit(state, layer);
  const scratch = new Heatmap(document.createElement("canvas"));
  const scratchDiff = new DiffHeatmap(document.createElement("canvas"));
  context.imageSmoothingEnabled = false;
  for (let head = 0; head < result.n_head; head++) {
    const x = PAD + (head % columns) * (thumb + GAP);
    const y = top + Math.floor(head / columns) * (mapHeight + CAPTION + GAP);
    if (diffView) {
      scratchDiff.data(poolDifference(layerDifferences(state, layer)[head], m, nDiff), nDiff).max(limit).draw();
      context.drawImage(scratchDiff.canvas, x, y, DIFF_THUMB, DIFF_THUMB);
    } else {
      scratch.data(state.attention.pooled(layer, head, false, nA), nA).max(1).draw();
      context.drawImage(scratch.canvas, x, y, SIDE_THUMB, SIDE_THUMB);
      scratch.data(comparison.attentionB.pooled(layer, head, false, nB), nB).max(1).draw();
      context.drawImage(scratch.canvas, x + SIDE_THUMB + 4, y, SIDE_THUMB, SIDE_THUMB);
    }
    context.fillStyle = "#111";
    context.font = TEXT_FONT;
    context.textBaseline = "top";
    const change = comparison.heads[layer][head].change;
    const sides = diffView ? "" : " (A | B)";
    context.fillText(`H${head}${sides} change ${change.toFixed(3)}`, x, y + mapHeight + 4, thumb);
  }
  drawScales(context, PAD, height - 40, diffView ? limit : null);
  return canvas;
}

export function compareFocusPicture(state) {
  const { result, layer, head } = state;
  const comparison = comparisonOf(state);
  const { alignment, attentionB, b } = comparison;
  const labels = alignedLabels(result.tokens, b.tokens, alignment);
  const n = Math.max(result.n_tokens, b.n_tokens, labels.length);
  const cell = Math.max(2, Math.min(24, Math.floor(FOCUS_PANEL_PX / n)));
  const measure = document.createElement("canvas").getContext("2d");
  const painters = [new MatrixPainter(), new MatrixPainter()];  // a picture's own: the focused view's stay as they are
  const geometries = [result.tokens, b.tokens, labels].map((tokens) => painters[0].geometry(measure, tokens, cell));
  const width = PAD * 2 + geometries.reduce((sum, geometry) => sum + geometry.width, 0) + 2 * GAP;
  const change = comparison.heads[layer][head].change;
  const title = titleLines(state, `layer ${layer} head ${head}: A, B and A − B (change ${change.toFixed(3)})`);
  const top = PAD + title.length * LINE + 12 + LINE;
  const height = top + Math.max(...geometries.map((geometry) => geometry.height)) + 60;
  const { canvas, context } = surface(width, height);
  drawTitle(context, title, width);
  const limit = layerLimit(state, layer);
  let x = PAD;
  ["A", "B", `A − B (±${limit})`].forEach((name, index) => {
    context.fillStyle = "#111";
    context.font = TITLE_FONT;
    context.textBaseline = "top";
    context.fillText(name, x, top - LINE);
    context.save();
    context.translate(x, top);
    const geometry = geometries[index];
    if (index === 2) {
      paintDifference(context, geometry, { difference: layerDifferences(state, layer)[head], n: labels.length, labels,
        limit, probe: null });
    } else {
      const [store, tokens] = index === 0 ? [state.attention, result.tokens] : [attentionB, b.tokens];
      painters[index].paint(context, geometry, { matrix: store.pooled(layer, head, false, tokens.length), key: "png",
        tokens, probe: null });
    }
    context.restore();
    x += geometry.width + GAP;
  });
  drawScales(context, PAD, height - 40, limit);
  return canvas;
}

/** pictureName's name (model, layer, head, A's first words, toggles) with what the picture compares. */
export function comparePictureName(state, focused) {
  const view = !focused && state.compare.view === "diff" ? "diff" : "compare";
  return pictureName({ ...shownView(state), focused }).replace(/\.png$/, `_${view}.png`);
}

// ---- pure helpers ----

function titleLines(state, heading) {
  const { result } = state;
  const model = result.synthetic ? `${result.request.model} (synthetic model with planted heads, not GPT-2)`
    : result.request.model;
  return [
    { font: TITLE_FONT, text: `Twelve Heads · ${model} · ${heading}` },
    { font: TEXT_FONT, text: `A: “${result.request.text}”` },
    { font: TEXT_FONT, text: `B: “${state.compare.textB}”` },
    ...(result.request.prepend_bos ? [{ font: TEXT_FONT, text: "<|endoftext|> prepended to both" }] : []),
  ];
}

function drawTitle(context, lines, width) {
  context.fillStyle = "#111";
  context.textBaseline = "top";
  lines.forEach(({ font, text }, index) => {
    context.font = font;
    context.fillText(text, PAD, PAD + index * LINE, width - PAD * 2);
  });
}

function drawScales(context, x, y, limit) {
  context.imageSmoothingEnabled = true;
  context.fillStyle = "#111";
  context.font = TEXT_FONT;
  context.textBaseline = "top";
  context.drawImage(drawColourBar(document.createElement("canvas")), x + 40, y, 200, 14);
  context.fillText("0", x + 26, y);
  context.fillText("1   attention", x + 248, y);
  if (limit === null) return;
  const left = x + 400;
  context.drawImage(drawDivergingBar(document.createElement("canvas")), left + 50, y, 200, 14);
  context.fillText(`−${limit}`, left, y);
  context.fillText(`+${limit}   A − B: red more in A, blue more in B`, left + 258, y);
}

function surface(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width * SCALE;
  canvas.height = height * SCALE;
  const context = canvas.getContext("2d");
  context.scale(SCALE, SCALE);
  context.fillStyle = "#fff";
  context.fillRect(0, 0, width, height);
  return { canvas, context };
}
