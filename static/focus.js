/* The focused view of one head: its full matrix with the tokens along both axes, a tooltip for the probed
   cell, the head's label, scores and reason, and the keys the probed query attends to most.
   paintMatrix also draws the matrix into the downloadable PNG. */

import { Heatmap } from "./heatmap.js";
import { LABEL, paintChip } from "./labels.js";
import { shortToken, visibleToken } from "./attention.js";

const MAX_CELL = 40;  // px: a 5-token sentence should not fill the screen
const LEGIBLE_TOKENS = 64;  // up to this many tokens every label stays readable (the view scrolls if needed)
const MIN_LEGIBLE_CELL = 11;  // px per cell that holds a 10 px label
const MIN_CELL = 2;  // px: beyond this a very long sentence scrolls
const LABEL_MAX_PX = 120;  // token labels are cut to this width
const LABEL_CHARS = 14;
const TOP_KEYS = 5;
const SCORE_NAMES = [  // the server's scores, in words a student can read
  ["first", "on the first token"], ["self", "on itself"], ["previous", "on the previous token"],
  ["local", "1–4 tokens back"], ["long_range", "5 or more back"], ["distance", "distance (0 near, 1 far)"],
  ["entropy", "spread (entropy)"], ["duplicate_token", "duplicate-token score"], ["induction", "induction score"],
];

const heatmapCanvas = document.createElement("canvas");  // the head at one pixel per cell, scaled up when painted
const heatmap = new Heatmap(heatmapCanvas);
let heatmapKey = "";

/** Sizes for a matrix of `tokens` at `cell` px: label margins (left = top) and the whole drawing. */
export function matrixGeometry(context, tokens, cell) {
  const fontSize = Math.max(9, Math.min(12, cell - 1));
  const font = `${fontSize}px system-ui, sans-serif`;
  context.font = font;
  const widest = Math.max(0, ...tokens.map((token) => context.measureText(shortToken(token, LABEL_CHARS)).width));
  const margin = Math.ceil(Math.min(LABEL_MAX_PX, widest)) + 40;  // room for the index beside the token
  const step = Math.max(1, Math.ceil((fontSize + 1) / cell));  // label every step-th token so labels never overlap
  const size = margin + tokens.length * cell + 2;
  return { cell, margin, step, font, fontSize, width: size, height: size };
}

/** Paint one head's matrix at (0, 0) of `context` (already scaled for the device), labels on both axes. */
export function paintMatrix(context, geometry, { attention, layer, head, sinkAware, tokens, probe, cacheKey }) {
  const { cell, margin, step, font } = geometry;
  const n = tokens.length;
  const key = `${cacheKey}/${layer}/${head}/${sinkAware}`;
  if (heatmapKey !== key) {
    heatmap.data(attention.pooled(layer, head, sinkAware, n), n).max(1).draw();
    heatmapKey = key;
  }
  context.fillStyle = "#fff";
  context.fillRect(0, 0, geometry.width, geometry.height);
  context.imageSmoothingEnabled = false;
  context.drawImage(heatmapCanvas, margin, margin, n * cell, n * cell);
  context.font = font;
  context.textBaseline = "middle";
  for (let index = 0; index < n; index++) {
    const probed = probe && (index === probe.query || index === probe.key);
    if (index % step !== 0 && !probed) continue;
    const name = `${shortToken(tokens[index], LABEL_CHARS)} ${index}`;
    const centre = margin + index * cell + cell / 2;
    const queryProbed = probe && index === probe.query;
    const keyProbed = probe && index === probe.key;
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
    context.lineWidth = 1;
    context.strokeStyle = "rgba(255,255,255,0.9)";
    context.strokeRect(margin + 0.5, margin + probe.query * cell + 0.5, n * cell - 1, cell - 1);
    context.strokeRect(margin + probe.key * cell + 0.5, margin + 0.5, cell - 1, n * cell - 1);
    context.lineWidth = 2;
    context.strokeStyle = "#ff2d55";
    context.strokeRect(margin + probe.key * cell, margin + probe.query * cell, cell, cell);
  }
}

/** Draw the focused view from state (the section is shown or hidden by the caller). */
export function drawFocus(elements, state) {
  const { result, attention, layer, head, sinkAware } = state;
  const info = result.heads[layer][head];
  const tokens = result.tokens;
  const hide = state.lesson.hideLabels;
  elements.title.textContent = `Layer ${layer} · head ${head}`;
  paintChip(elements.chip, hide ? "?" : info.label);
  elements.confidence.textContent = hide ? "" : `confidence ${percent(info.confidence)}`;
  elements.runnerUp.textContent = !hide && info.runner_up ? `runner-up: ${info.runner_up}` : "";
  elements.reason.textContent = hide ? "Label hidden while you predict." : info.reason;
  elements.meaning.textContent = hide ? "" : `${info.label}: ${LABEL[info.label].meaning}.`;
  drawScores(elements.scores, info);
  if (!attention || !attention.has(layer)) return false;

  const probe = state.probe && state.probe.query < tokens.length && state.probe.key < tokens.length ? state.probe : null;
  const canvas = elements.canvas;
  const context = canvas.getContext("2d");
  const cell = fitCell(context, tokens, elements.wrap);
  const geometry = matrixGeometry(context, tokens, cell);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(geometry.width * dpr);
  canvas.height = Math.round(geometry.height * dpr);
  canvas.style.width = `${geometry.width}px`;
  canvas.style.height = `${geometry.height}px`;
  context.setTransform(dpr, 0, 0, dpr, 0, 0);
  paintMatrix(context, geometry, { attention, layer, head, sinkAware, tokens, probe, cacheKey: state.resultId });
  Object.assign(canvas.dataset, { left: geometry.margin, top: geometry.margin, cell, tokens: tokens.length });
  canvas.setAttribute("aria-label", `Attention of layer ${layer} head ${head}: ${tokens.length} query rows by ` +
    `${tokens.length} key columns. Arrow keys move the probed cell.`);

  drawTooltip(elements.tooltip, geometry, probe, tokens, attention, state);
  const query = probe ? probe.query : tokens.length - 1;
  elements.topTitle.textContent = `Query ${query} “${visibleToken(tokens[query])}” attends most to`;
  elements.topList.replaceChildren(...attention.topKeys(layer, head, query, sinkAware, TOP_KEYS).map(({ key, value }) => {
    const item = document.createElement("li");
    const token = span("token", visibleToken(tokens[key]));
    const where = span("muted", ` #${key}`);
    const amount = span("amount", value.toFixed(4));
    const bar = span("bar", "");
    bar.style.width = `${Math.round(value * 100)}%`;
    item.append(token, where, amount, span("track", bar));
    return item;
  }));
  return true;
}

/** The cell under a point of the matrix canvas (CSS px), or null outside the matrix. */
export function cellAt(canvas, x, y) {
  const { left, top, cell, tokens } = canvas.dataset;
  if (!cell) return null;
  const query = Math.floor((y - Number(top)) / Number(cell));
  const key = Math.floor((x - Number(left)) / Number(cell));
  if (query < 0 || key < 0 || query >= Number(tokens) || key >= Number(tokens)) return null;
  return { query, key };
}

// ---- pure helpers ----

function drawTooltip(tooltip, geometry, probe, tokens, attention, state) {
  tooltip.hidden = !probe;
  if (!probe) return;
  const { layer, head, sinkAware } = state;
  const { query, key } = probe;
  let value;
  if (key > query) value = "masked: a token cannot see later tokens";
  else if (sinkAware && key === 0) value = "hidden: the first column is set aside";
  else {
    const shown = attention.row(layer, head, query, sinkAware)[key];
    value = shown.toFixed(4);
    if (sinkAware) value += ` (raw ${attention.value(layer, head, query, key).toFixed(4)})`;
  }
  tooltip.replaceChildren(
    line("query", `${query} “${visibleToken(tokens[query])}”`),
    line("key", `${key} “${visibleToken(tokens[key])}”`),
    line("attention", value));
  const { margin, cell } = geometry;
  const x = margin + (key + 1) * cell + 10;
  const y = margin + query * cell;
  tooltip.style.left = `${x}px`;
  tooltip.style.top = `${y}px`;
  tooltip.classList.toggle("flip", x > geometry.width - 160);
}

function fitCell(context, tokens, wrap) {
  const guess = matrixGeometry(context, tokens, MIN_LEGIBLE_CELL);
  const width = Math.max(200, wrap.clientWidth - guess.margin - 8);
  const height = Math.max(240, window.innerHeight - wrap.getBoundingClientRect().top - guess.margin - 48);
  const fit = Math.floor(Math.min(width, height) / tokens.length);
  const floor = tokens.length <= LEGIBLE_TOKENS ? MIN_LEGIBLE_CELL : MIN_CELL;
  return Math.max(floor, Math.min(MAX_CELL, fit));
}

function drawScores(tbody, info) {
  tbody.replaceChildren(...SCORE_NAMES.map(([name, words]) => {
    const row = document.createElement("tr");
    const value = info.scores[name];
    const bar = span("bar", "");
    bar.style.width = `${Math.round(value * 100)}%`;
    const label = document.createElement("th");
    label.scope = "row";
    label.textContent = words;
    const number = document.createElement("td");
    number.textContent = value.toFixed(2);
    const track = document.createElement("td");
    track.append(span("track", bar));
    row.append(label, number, track);
    return row;
  }), distanceRow(info));
}

function distanceRow(info) {
  const row = document.createElement("tr");
  const label = document.createElement("th");
  label.scope = "row";
  label.textContent = "mean distance";
  const value = document.createElement("td");
  value.colSpan = 2;
  value.textContent = `${info.mean_distance_tokens.toFixed(1)} tokens back`;
  row.append(label, value);
  return row;
}

function line(name, value) {
  const row = document.createElement("div");
  row.append(span("key-name", name), span("key-value", value));
  return row;
}

function span(className, content) {
  const node = document.createElement("span");
  node.className = className;
  node.append(content);
  return node;
}

function percent(value) {
  return `${Math.round(value * 100)}%`;
}
