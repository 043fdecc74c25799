/* The all-layers map: every head of every layer as a cell, the whole model at a glance, with the last layer on
   top as a transformer is drawn (input at the bottom), so ↑ is the next layer here as on the keyboard. A
   readout under it names the head under the pointer, or else the selected one. What a cell shows is a mode:
   "sentence" colours each head by this sentence's label; a feature module adds its own (the atlas: each head's
   usual label across a corpus) with addMapMode, and state.mapMode picks one. A mode's cell may be only partly
   filled (`fill` in [0, 1], from the bottom, the rest a pale tint of its colour): how much of the cell is solid
   says a number, such as how consistently a head does its job, without relying on colour; a `mark`ed cell gets a
   black dot in its top right corner (the atlas: this sentence labels the head otherwise). */

import { CHIP_STYLE, confidenceText, headTag } from "./labels.js";

const MAP_CELL = 12;  // px per head, at least: where the map has the width (a phone's whole row), up to ...
const MAP_CELL_MOST = 24;  // ... this, so that a finger can pick a cell
const MAP_GAP = 1;  // px between cells
const GAP_COLOUR = "#b8b8c0";  // the gaps: a pale "mixed" cell still has an edge
const HIDDEN_COLOUR = "#cccccc";
const TINT = 0.3;  // the unfilled part of a partly filled cell: its colour at this opacity over white
const MARK = 3;  // px: a marked cell's dot, in a white ring of 1 px

const MODES = {
  sentence: {
    caption: (result) => `this sentence's labels; layer ${result.n_layer - 1} (output) on top, 0 (input) at the ` +
      "bottom; click a head",
    cell(state, layer, head) {
      const tag = headTag(state.result.heads[layer][head], state.result, state.glossary);
      const confidence = confidenceText(tag);
      return { colour: CHIP_STYLE[tag.name]?.colour ?? "#fff", text: confidence ? `${tag.name} ${confidence}` : tag.name };
    },
  },
};

let cell = MAP_CELL;  // px per head as last drawn: mapCellAt reads the map as it is on screen

/** mode: {caption(result) → text, cell(state, layer, head) → {colour, text, fill (optional, in [0, 1]), mark},
 *  unavailable(state) (optional) → "" or why the mode cannot draw (the map then shows that instead)}. */
export function addMapMode(id, mode) {
  MODES[id] = mode;
}

export function drawMap({ canvas, caption, readout }, state) {
  const { result, layer, head } = state;
  const mode = MODES[state.mapMode] || MODES.sentence;
  const hide = state.lesson.hideLabels;
  const unavailable = result && mode.unavailable ? mode.unavailable(state) : "";
  caption.textContent = result && !unavailable ? mode.caption(result) : "";
  canvas.hidden = Boolean(unavailable);
  if (!result || unavailable) {
    canvas.width = canvas.height = 0;
    readout.textContent = unavailable;
    return;
  }
  const { n_layer: nLayer, n_head: nHead } = result;
  cell = cellSize(canvas.parentElement?.clientWidth ?? 0, nHead);
  const step = cell + MAP_GAP;
  const dpr = window.devicePixelRatio || 1;
  const [width, height] = [nHead * step + MAP_GAP, nLayer * step + MAP_GAP];
  if (canvas.width !== Math.round(width * dpr)) canvas.width = Math.round(width * dpr);
  if (canvas.height !== Math.round(height * dpr)) canvas.height = Math.round(height * dpr);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  Object.assign(canvas.dataset, { cell, gap: MAP_GAP });  // the geometry, for tests that read pixels
  const context = canvas.getContext("2d");
  context.setTransform(dpr, 0, 0, dpr, 0, 0);
  context.fillStyle = GAP_COLOUR;
  context.fillRect(0, 0, width, height);
  for (let l = 0; l < nLayer; l++) {
    for (let h = 0; h < nHead; h++) {
      paintCell(context, hide ? { colour: HIDDEN_COLOUR } : mode.cell(state, l, h), MAP_GAP + h * step, rowTop(l, nLayer));
    }
  }
  context.strokeStyle = "#000";
  context.lineWidth = 2;
  context.strokeRect(1, rowTop(layer, nLayer) - 0.5 * MAP_GAP, nHead * step - 1, step);
  context.strokeStyle = "#d00";
  context.strokeRect(MAP_GAP + head * step - 1, rowTop(layer, nLayer) - 1, cell + 2, cell + 2);
  const hover = state.mapHover && state.mapHover.layer < nLayer && state.mapHover.head < nHead ? state.mapHover : null;
  const shown = hover || { layer, head };
  const what = hide ? "label hidden while you predict" : mode.cell(state, shown.layer, shown.head).text;
  readout.textContent = `Layer ${shown.layer} · head ${shown.head}: ${what}${hover ? "" : " (selected)"}`;
  canvas.setAttribute("aria-label", `All layers: one row per layer, the last on top. ${readout.textContent}. ` +
    "Arrow keys move, Enter studies the head.");
}

/** The head under a point of the map (CSS px), or null. */
export function mapCellAt(result, offsetX, offsetY) {
  if (!result) return null;
  const step = cell + MAP_GAP;
  const row = Math.floor((offsetY - MAP_GAP) / step);
  const head = Math.floor((offsetX - MAP_GAP) / step);
  const layer = result.n_layer - 1 - row;
  if (row < 0 || head < 0 || layer < 0 || head >= result.n_head) return null;
  return { layer, head };
}

// ---- pure helpers ----

/** One cell: solid, or solid up to `fill` of its height from the bottom over a pale tint of the same colour. */
function paintCell(context, { colour, fill = 1, mark = false }, left, top) {
  const solid = Math.round(Math.min(1, Math.max(0, fill)) * cell);
  if (solid < cell) {
    context.fillStyle = "#fff";
    context.fillRect(left, top, cell, cell);
    context.globalAlpha = TINT;
    context.fillStyle = colour;
    context.fillRect(left, top, cell, cell);
    context.globalAlpha = 1;
  }
  context.fillStyle = colour;
  context.fillRect(left, top + cell - solid, cell, solid);
  if (!mark) return;
  context.fillStyle = "#fff";
  context.fillRect(left + cell - MARK - 2, top, MARK + 2, MARK + 2);
  context.fillStyle = "#000";
  context.fillRect(left + cell - MARK - 1, top + 1, MARK, MARK);
}

function rowTop(layer, nLayer) {  // the last layer's row is the top one
  return MAP_GAP + (nLayer - 1 - layer) * (cell + MAP_GAP);
}

/** px per head for a map `width` px wide: as large as fits, from MAP_CELL to MAP_CELL_MOST. */
export function cellSize(width, nHead) {
  const fits = Math.floor((width - MAP_GAP) / nHead) - MAP_GAP;
  return Math.min(MAP_CELL_MOST, Math.max(MAP_CELL, fits));
}
