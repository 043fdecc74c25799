/* The layer view: one thumbnail button per head (heatmap, label chip, confidence, head number), the layer's
   label counts, and the map of every head's label across all layers. Build once per model shape; the draw
   functions only read state. */

import { Heatmap } from "./heatmap.js";
import { LABEL, LABELS, paintChip } from "./labels.js";

export const THUMB_MAX_CELLS = 96;  // thumbnails of longer sentences are max-pooled down to this many cells a side
const MAP_CELL = 12;  // px per head in the all-layers map
const MAP_GAP = 1;  // px between cells
const HIDDEN_LABEL = "?";  // the chip text while the student predicts

/** One button per head in `container`; `onPick(head)` when clicked (Enter and Space click a button too). */
export function buildGrid(container, nHead, onPick) {
  container.replaceChildren();
  return Array.from({ length: nHead }, (_, head) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "thumb";
    button.dataset.head = String(head);
    const canvas = document.createElement("canvas");
    canvas.className = "thumb-map";
    const caption = document.createElement("span");
    caption.className = "thumb-caption";
    const number = document.createElement("span");
    number.className = "head-number";
    number.textContent = `H${head}`;
    const chip = document.createElement("span");
    const confidence = document.createElement("span");
    confidence.className = "confidence";
    caption.append(chip);
    const frame = document.createElement("span");
    // The head number and confidence sit in the masked upper triangle, always empty, so the chip below
    // keeps the whole width for labels as long as "previous-token".
    frame.className = "thumb-frame";
    frame.append(canvas, number, confidence);
    button.append(frame, caption);
    button.addEventListener("click", () => onPick(head));
    container.append(button);
    return { button, canvas, chip, confidence, heatmap: new Heatmap(canvas), painted: "" };
  });
}

/** Thumbnails, chips and labels of the layer; returns how many heatmaps were repainted (0 when cached). */
export function drawGrid(thumbs, state) {
  const { result, attention, layer, head: selected, sinkAware } = state;
  const hide = state.lesson.hideLabels;
  const ready = attention && attention.has(layer);
  const n = result ? Math.min(result.n_tokens, THUMB_MAX_CELLS) : 0;
  let repainted = 0;
  thumbs.forEach((thumb, head) => {
    const info = result && result.heads[layer] ? result.heads[layer][head] : null;
    thumb.button.tabIndex = head === selected ? 0 : -1;
    thumb.button.classList.toggle("selected", head === selected);
    thumb.button.classList.toggle("pending", !ready);
    const key = ready ? `${state.resultId}/${layer}/${head}/${sinkAware}/${n}` : "";
    if (ready && thumb.painted !== key) {
      thumb.heatmap.data(attention.pooled(layer, head, sinkAware, n), n).max(1).draw();
      thumb.painted = key;
      repainted++;
    }
    if (!info) {
      paintChip(thumb.chip, "…");
      thumb.confidence.textContent = "";
      thumb.button.setAttribute("aria-label", `head ${head}`);
      return;
    }
    paintChip(thumb.chip, hide ? HIDDEN_LABEL : info.label);
    thumb.confidence.textContent = hide ? "" : percent(info.confidence);
    thumb.button.setAttribute("aria-label", hide ? `layer ${layer} head ${head}; label hidden`
      : `layer ${layer} head ${head}: ${info.label}, confidence ${percent(info.confidence)}. Enter to study it`);
  });
  return repainted;
}

/** "3 broadcaster · 2 previous-token · …" for the layer, every label with at least one head. */
export function drawCounts(container, result, layer, hide) {
  if (!result) {
    container.replaceChildren();
    return;
  }
  if (hide) {
    container.replaceChildren(text("span", "muted", "Labels hidden while you predict."));
    return;
  }
  const counts = result.layers[layer].counts;
  const chips = LABELS.filter(({ name }) => counts[name] > 0).map(({ name }) => {
    const chip = document.createElement("span");
    paintChip(chip, name);
    chip.textContent = `${counts[name]} ${name}`;
    return chip;
  });
  container.replaceChildren(text("span", "muted", `Layer ${layer}:`), ...chips);
}

/** Every head of every layer as a cell coloured by its label: the whole model at a glance. */
export function drawMap(canvas, caption, result, layer, head, hide) {
  caption.textContent = result ? `one row per layer, 0 at the top to ${result.n_layer - 1}; click a head` : "";
  if (!result) {
    canvas.width = canvas.height = 0;
    return;
  }
  const { n_layer: nLayer, n_head: nHead } = result;
  const step = MAP_CELL + MAP_GAP;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round((nHead * step + MAP_GAP) * dpr);
  canvas.height = Math.round((nLayer * step + MAP_GAP) * dpr);
  canvas.style.width = `${nHead * step + MAP_GAP}px`;
  canvas.style.height = `${nLayer * step + MAP_GAP}px`;
  const context = canvas.getContext("2d");
  context.setTransform(dpr, 0, 0, dpr, 0, 0);
  context.fillStyle = "#b8b8c0";  // the gaps: a pale "mixed" cell still has an edge
  context.fillRect(0, 0, canvas.width, canvas.height);
  for (let l = 0; l < nLayer; l++) {
    for (let h = 0; h < nHead; h++) {
      context.fillStyle = hide ? "#ccc" : LABEL[result.heads[l][h].label].colour;
      context.fillRect(MAP_GAP + h * step, MAP_GAP + l * step, MAP_CELL, MAP_CELL);
    }
  }
  context.strokeStyle = "#000";
  context.lineWidth = 2;
  context.strokeRect(1, MAP_GAP + layer * step - 0.5 * MAP_GAP, nHead * step - 1, step);
  context.strokeStyle = "#d00";
  context.strokeRect(MAP_GAP + head * step - 1, MAP_GAP + layer * step - 1, MAP_CELL + 2, MAP_CELL + 2);
  const summary = hide ? "labels hidden while you predict" : result.layers
    .map((entry, l) => `layer ${l}: ${LABELS.filter(({ name }) => entry.counts[name]).map(({ name }) =>
      `${entry.counts[name]} ${name}`).join(", ")}`).join("; ");
  canvas.setAttribute("aria-label", `Labels of all heads, one row per layer. ${summary}`);
}

/** The head under a click on the map, or null. */
export function mapCellAt(canvas, result, offsetX, offsetY) {
  if (!result) return null;
  const step = MAP_CELL + MAP_GAP;
  const layer = Math.floor((offsetY - MAP_GAP) / step);
  const head = Math.floor((offsetX - MAP_GAP) / step);
  if (layer < 0 || head < 0 || layer >= result.n_layer || head >= result.n_head) return null;
  return { layer, head };
}

// ---- pure helpers ----

function percent(value) {
  return `${Math.round(value * 100)}%`;
}

function text(tag, className, content) {
  const node = document.createElement(tag);
  node.className = className;
  node.textContent = content;
  return node;
}
