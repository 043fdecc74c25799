/* Download the layer's grid or the focused head as a PNG with a title block (model, sentence, layer/head,
   toggles) and the colour scale, so a picture pasted into notes still says what it shows, and a file name that
   says it too, so two downloads never overwrite each other. */

import { Heatmap, drawColourBar } from "./heatmap.js";
import { MatrixPainter } from "./matrix.js";
import { CHIP_STYLE, confidenceText, headTag } from "./labels.js";
import { THUMB_MAX_CELLS } from "./grid.js";
import { percent } from "./format.js";

const PAD = 24;  // px around everything
const THUMB = 168;  // px per thumbnail in the grid picture
const GRID_COLUMNS = 6;
const CAPTION = 26;  // px under each thumbnail
const TITLE_FONT = "bold 18px system-ui, sans-serif";
const TEXT_FONT = "14px system-ui, sans-serif";
const LINE = 20;  // px per title line
const MAX_SENTENCE_LINES = 4;
const FOCUS_MAX_PX = 1400;  // the focused matrix is scaled to fit this
const FOCUS_MIN_WIDTH = 640;
const SCALE = 2;  // pixels per CSS px: crisp when printed or zoomed
const SCALE_BLOCK = 84;  // px under the picture: the colour bar and, below it, what the other colours mean
const NAME_WORDS = 6;  // of the sentence, in the file name
const NAME_CHARS = 40;

export function gridPicture(state) {
  const { result, attention, layer, sinkAware, glossary } = state;
  const columns = Math.min(GRID_COLUMNS, result.n_head);
  const rows = Math.ceil(result.n_head / columns);
  const width = PAD * 2 + columns * THUMB + (columns - 1) * 12;
  const title = titleLines(state, `layer ${layer} of ${result.n_layer - 1}, all ${result.n_head} heads`, width);
  const top = PAD + title.height;
  const height = top + rows * (THUMB + CAPTION + 12) + SCALE_BLOCK;
  const { canvas, context } = surface(width, height);
  drawTitle(context, title);
  const n = Math.min(result.n_tokens, THUMB_MAX_CELLS);
  const scratch = new Heatmap(document.createElement("canvas"));
  result.heads[layer].forEach((info, head) => {
    const tag = headTag(info, result, glossary);
    const x = PAD + (head % columns) * (THUMB + 12);
    const y = top + Math.floor(head / columns) * (THUMB + CAPTION + 12);
    scratch.data(attention.pooled(layer, head, sinkAware, n), n).max(1).draw();
    context.imageSmoothingEnabled = false;
    context.drawImage(scratch.canvas, x, y, THUMB, THUMB);
    context.fillStyle = CHIP_STYLE[tag.name]?.colour ?? "#fff";
    context.fillRect(x, y + THUMB + 4, 10, 14);
    context.strokeStyle = "#999";
    context.strokeRect(x + 0.5, y + THUMB + 4.5, 9, 13);
    context.fillStyle = "#111";
    context.font = TEXT_FONT;
    context.textBaseline = "top";
    context.fillText(fitted(context, `H${head} ${tag.name} ${confidenceText(tag)}`, THUMB - 14), x + 14, y + THUMB + 4);
  });
  drawScale(context, PAD, height - SCALE_BLOCK + 12, width, sinkAware);
  return canvas;
}

export function focusPicture(state) {
  const { result, attention, layer, head, sinkAware, glossary } = state;
  const info = result.heads[layer][head];
  const tag = headTag(info, result, glossary);
  const painter = new MatrixPainter();  // its own heatmap: the focused view's stays as it is
  const measure = document.createElement("canvas").getContext("2d");
  const cell = Math.max(2, Math.min(28, Math.floor(FOCUS_MAX_PX / result.n_tokens)));
  const geometry = painter.geometry(measure, result.tokens, cell);
  const width = Math.max(FOCUS_MIN_WIDTH, geometry.width + PAD * 2);
  const heading = `layer ${layer} head ${head}: ${tag.name}${tag.confidence === null ? "" : ` (${percent(tag.confidence)})`}`;
  const title = titleLines(state, heading, width, info.reason);
  const top = PAD + title.height;
  const height = top + geometry.height + SCALE_BLOCK;
  const { canvas, context } = surface(width, height);
  drawTitle(context, title);
  context.save();
  context.translate(PAD, top);
  painter.paint(context, geometry, { matrix: attention.pooled(layer, head, sinkAware, result.n_tokens),
    key: "png", tokens: result.tokens, probe: null });
  context.restore();
  drawScale(context, PAD, height - SCALE_BLOCK + 12, width, sinkAware);
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

/** twelve-heads_MODEL_L3[-H5]_first-words-of-the-sentence[_bos][_sink].png: what the picture shows, in its name.
 *  Pure (tests/js/png.test.mjs). */
export function pictureName({ model, layer, head, focused, text, prependBos, sinkAware, knockedOut = [] }) {
  const words = text.toLowerCase().normalize("NFKC").replace(/['’]/g, "").split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  const sentence = words.slice(0, NAME_WORDS).join("-").slice(0, NAME_CHARS).replace(/-$/, "") || "text";
  const parts = ["twelve-heads", model.replace(/[^\w.-]+/g, "_"), `L${layer}${focused ? `-H${head}` : ""}`, sentence];
  if (prependBos) parts.push("bos");
  if (sinkAware) parts.push("sink");
  if (knockedOut.length) parts.push(`without-${knockedOut.map((pair) => pair.join(".")).join("-")}`);
  return `${parts.join("_")}.png`;
}

// ---- pure helpers ----

function titleLines(state, heading, width, extra = "") {
  const { result } = state;
  const measure = document.createElement("canvas").getContext("2d");
  const name = result.request.model;
  const model = result.synthetic ? `${name} (synthetic model with planted heads, not GPT-2)` : name;
  const notes = [result.request.prepend_bos && "<|endoftext|> prepended",
    result.sink_aware && "first column set aside, rows renormalised",
    result.request.ablate?.length && `heads knocked out: ${result.request.ablate.map((pair) => pair.join(".")).join(", ")}`,
  ].filter(Boolean).join("; ");
  const room = width - PAD * 2;
  const lines = [];
  const add = (font, text, limit = Infinity) => {
    measure.font = font;
    for (const line of wrap(measure, text, room, limit)) lines.push({ font, text: line });
  };
  add(TITLE_FONT, `Twelve Heads · ${model} · ${heading}`);
  add(TEXT_FONT, `“${result.request.text}”`, MAX_SENTENCE_LINES);
  if (extra) add(TEXT_FONT, extra);
  if (notes) add(TEXT_FONT, notes);
  return { lines, height: lines.length * LINE + 12, width };
}

function drawTitle(context, title) {
  context.fillStyle = "#111";
  context.textBaseline = "top";
  title.lines.forEach(({ font, text }, index) => {
    context.font = font;
    context.fillText(text, PAD, PAD + index * LINE);  // no maxWidth: wrapped to fit, never squashed
  });
}

function drawScale(context, x, y, width, sinkAware) {
  const bar = drawColourBar(document.createElement("canvas"));
  context.imageSmoothingEnabled = true;
  context.drawImage(bar, x + 40, y, 240, 14);
  context.fillStyle = "#111";
  context.font = TEXT_FONT;
  context.textBaseline = "top";
  context.fillText("0", x + 26, y);
  context.fillText("1   attention, one scale for every head", x + 288, y);
  const key = sinkAware ? "light grey: a later token, masked · tan: the first column, set aside · cream: a pure-sink " +
    "row, nothing left off the first token" : "light grey: a later token, masked";
  wrap(context, key, width - 2 * x, 2).forEach((line, index) => context.fillText(line, x, y + (index + 1) * LINE + 2));
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

function wrap(context, text, width, limit) {
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
  if (lines.length > limit) {
    lines.length = limit;
    lines[limit - 1] = fitted(context, `${lines[limit - 1]} …`, width);
  }
  return lines.map((entry) => fitted(context, entry, width));
}

function fitted(context, text, width) {  // cut (not squashed) to `width`, for a single word longer than a line
  if (context.measureText(text).width <= width) return text;
  let characters = Array.from(text);
  while (characters.length > 1 && context.measureText(`${characters.join("")}…`).width > width) characters = characters.slice(0, -1);
  return `${characters.join("")}…`;
}
