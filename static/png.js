/* Download the layer's grid or the focused head as a PNG with a title block (model, sentence, layer/head)
   and the colour scale, so a picture pasted into notes still says what it shows. */

import { Heatmap, drawColourBar } from "./heatmap.js";
import { matrixGeometry, paintMatrix } from "./focus.js";
import { LABEL } from "./labels.js";
import { THUMB_MAX_CELLS } from "./grid.js";

const PAD = 24;  // px around everything
const THUMB = 168;  // px per thumbnail in the grid picture
const GRID_COLUMNS = 6;
const CAPTION = 26;  // px under each thumbnail
const TITLE_FONT = "bold 18px system-ui, sans-serif";
const TEXT_FONT = "14px system-ui, sans-serif";
const LINE = 20;  // px per title line
const MAX_SENTENCE_LINES = 4;
const FOCUS_MAX_PX = 1400;  // the focused matrix is scaled to fit this
const SCALE = 2;  // pixels per CSS px: crisp when printed or zoomed

export function gridPicture(state) {
  const { result, attention, layer, sinkAware } = state;
  const columns = Math.min(GRID_COLUMNS, result.n_head);
  const rows = Math.ceil(result.n_head / columns);
  const width = PAD * 2 + columns * THUMB + (columns - 1) * 12;
  const title = titleLines(state, `layer ${layer} of ${result.n_layer - 1}, all ${result.n_head} heads`, width);
  const top = PAD + title.height;
  const height = top + rows * (THUMB + CAPTION + 12) + 60;
  const { canvas, context } = surface(width, height);
  drawTitle(context, title);
  const n = Math.min(result.n_tokens, THUMB_MAX_CELLS);
  const scratch = new Heatmap(document.createElement("canvas"));
  result.heads[layer].forEach((info, head) => {
    const x = PAD + (head % columns) * (THUMB + 12);
    const y = top + Math.floor(head / columns) * (THUMB + CAPTION + 12);
    scratch.data(attention.pooled(layer, head, sinkAware, n), n).max(1).draw();
    context.imageSmoothingEnabled = false;
    context.drawImage(scratch.canvas, x, y, THUMB, THUMB);
    context.fillStyle = LABEL[info.label].colour;
    context.fillRect(x, y + THUMB + 4, 10, 14);
    context.strokeStyle = "#999";
    context.strokeRect(x + 0.5, y + THUMB + 4.5, 9, 13);
    context.fillStyle = "#111";
    context.font = TEXT_FONT;
    context.textBaseline = "top";
    context.fillText(`H${head} ${info.label} ${Math.round(info.confidence * 100)}%`, x + 14, y + THUMB + 4, THUMB - 14);
  });
  drawScale(context, PAD, height - 40);
  return canvas;
}

export function focusPicture(state) {
  const { result, attention, layer, head, sinkAware } = state;
  const info = result.heads[layer][head];
  const measure = document.createElement("canvas").getContext("2d");
  const cell = Math.max(2, Math.min(28, Math.floor(FOCUS_MAX_PX / result.n_tokens)));
  const geometry = matrixGeometry(measure, result.tokens, cell);
  const width = Math.max(640, geometry.width + PAD * 2);
  const heading = `layer ${layer} head ${head}: ${info.label} (${Math.round(info.confidence * 100)}%)`;
  const title = titleLines(state, heading, width, info.reason);
  const top = PAD + title.height;
  const height = top + geometry.height + 60;
  const { canvas, context } = surface(width, height);
  drawTitle(context, title);
  context.save();
  context.translate(PAD, top);
  paintMatrix(context, geometry, { attention, layer, head, sinkAware, tokens: result.tokens, probe: null,
    cacheKey: `png/${state.resultId}` });
  context.restore();
  drawScale(context, PAD, height - 40);
  return canvas;
}

export function downloadPicture(canvas, filename) {
  canvas.toBlob((blob) => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  }, "image/png");
}

export function pictureName(state, focused) {
  const model = state.result.request.model.replace(/[^\w.-]+/g, "_");
  return `twelve-heads_${model}_L${state.layer}${focused ? `H${state.head}` : ""}.png`;
}

// ---- pure helpers ----

function titleLines(state, heading, width, extra = "") {
  const { result, sinkAware, prependBos } = state;
  const measure = document.createElement("canvas").getContext("2d");
  measure.font = TEXT_FONT;
  const name = result.request.model;
  const model = result.synthetic ? `${name} (synthetic model with planted heads, not GPT-2)` : name;
  const notes = [prependBos && "<|endoftext|> prepended", sinkAware && "first column hidden, rows renormalised"]
    .filter(Boolean).join("; ");
  const lines = [{ font: TITLE_FONT, text: `Twelve Heads · ${model} · ${heading}` }];
  for (const text of wrap(measure, `“${state.text}”`, width - PAD * 2).slice(0, MAX_SENTENCE_LINES)) {
    lines.push({ font: TEXT_FONT, text });
  }
  if (extra) lines.push({ font: TEXT_FONT, text: extra });
  if (notes) lines.push({ font: TEXT_FONT, text: notes });
  return { lines, height: lines.length * LINE + 12, width };
}

function drawTitle(context, title) {
  context.fillStyle = "#111";
  context.textBaseline = "top";
  title.lines.forEach(({ font, text }, index) => {
    context.font = font;
    context.fillText(text, PAD, PAD + index * LINE, title.width - PAD * 2);
  });
}

function drawScale(context, x, y) {
  const bar = drawColourBar(document.createElement("canvas"));
  context.imageSmoothingEnabled = true;
  context.drawImage(bar, x + 40, y, 240, 14);
  context.fillStyle = "#111";
  context.font = TEXT_FONT;
  context.textBaseline = "top";
  context.fillText("0", x + 26, y);
  context.fillText("1   attention (grey: masked future tokens)", x + 288, y);
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

function wrap(context, text, width) {
  const lines = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    const candidate = line ? `${line} ${word}` : word;
    if (context.measureText(candidate).width > width && line) {
      lines.push(line);
      line = word;
    } else {
      line = candidate;
    }
  }
  if (line) lines.push(line);
  if (lines.length > MAX_SENTENCE_LINES) lines[MAX_SENTENCE_LINES - 1] += " …";
  return lines;
}
