/* The focused view of one head: its full matrix with the tokens along both axes (matrix.js), a tooltip for the
   probed cell, the head's label, reason and scores, and the keys the probed query attends to most. The score
   names and meanings are the server's (state.glossary). buildFocus makes the lists once per glossary;
   drawFocus only reads state. */

import { EMPTY_ROW, SET_ASIDE, visibleToken } from "./attention.js";
import { closed, probability } from "./format.js";
import { confidenceText, headTag, paintHeadChip } from "./labels.js";
import { MatrixPainter } from "./matrix.js";
import { element } from "./dom.js";

const MAX_CELL = 40;  // px: a 5-token sentence should not fill the screen
const LEGIBLE_TOKENS = 64;  // up to this many tokens every label stays readable (the view scrolls if needed)
const MIN_LEGIBLE_CELL = 11;  // px per cell that holds a 10 px label
const MIN_CELL = 2;  // px: beyond this a very long sentence scrolls
const MIN_MATRIX_PX = 200;
const TOP_KEYS = 5;
const TOOLTIP_FLIP_PX = 160;  // a tooltip this close to the right edge opens to the left of the cell

const painter = new MatrixPainter();

/** The score rows and their meanings (from the glossary), and the top-keys list; returns what drawFocus fills. */
export function buildFocus(elements, glossary) {
  const scoreRows = glossary.scores.map(({ name, meaning }) => {
    const heading = element("th", "", scoreHeading(name));
    heading.scope = "row";
    heading.title = meaning;
    const number = element("td");
    const bar = element("span", "bar");
    const row = element("tr", "", heading, number, element("td", "", element("span", "track", bar)));
    return { name, row, number, bar };
  });
  const distanceValue = element("td");
  distanceValue.colSpan = 2;
  const distanceHeading = element("th", "", "mean distance");
  distanceHeading.scope = "row";
  elements.scores.replaceChildren(...scoreRows.map(({ row }) => row), element("tr", "", distanceHeading, distanceValue));
  elements.scoreMeanings.replaceChildren(...glossary.scores.flatMap(({ name, meaning }) =>
    [element("dt", "", scoreHeading(name)), element("dd", "", meaning)]));
  const topItems = Array.from({ length: TOP_KEYS }, () => {
    const token = element("span", "token");
    const amount = element("span", "amount");
    const bar = element("span", "bar");
    const item = element("li", "", token, amount, element("span", "track", bar));
    return { item, token, amount, bar };
  });
  elements.topList.replaceChildren(...topItems.map(({ item }) => item));
  return { scoreRows, distanceValue, topItems };
}

/** Draw the focused view from state; false while the layer's attention is still on its way. */
export function drawFocus(elements, parts, state) {
  const { result, attention, layer, head, sinkAware, glossary } = state;
  const info = result.heads[layer][head];
  const tag = headTag(info, result, glossary);
  const tokens = result.tokens;
  const hide = state.lesson.hideLabels;
  elements.title.textContent = `Layer ${layer} · head ${head}`;
  paintHeadChip(elements.chip, tag, hide);
  elements.confidence.textContent = hide || tag.tag ? "" : `confidence ${confidenceText(tag)}`;
  elements.runnerUp.textContent = !hide && info.runner_up ? `runner-up: ${info.runner_up}` : "";
  elements.reason.textContent = hide ? "Label hidden while you predict." : tag.tag ? closed(`${tag.name}: ${info.reason}`)
    : info.reason;
  elements.meaning.textContent = hide ? "" : closed(`${tag.name}: ${tag.meaning}`);
  drawScores(elements, parts, info, tag, hide);
  if (!attention || !attention.has(layer)) return false;

  const probe = state.probe && state.probe.query < tokens.length && state.probe.key < tokens.length ? state.probe : null;
  const canvas = elements.canvas;
  const context = canvas.getContext("2d");
  const geometry = painter.geometry(context, tokens, fitCell(context, tokens, elements.wrap));
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(geometry.width * dpr);
  canvas.height = Math.round(geometry.height * dpr);
  canvas.style.width = `${geometry.width}px`;
  canvas.style.height = `${geometry.height}px`;
  context.setTransform(dpr, 0, 0, dpr, 0, 0);
  painter.paint(context, geometry, { matrix: attention.pooled(layer, head, sinkAware, tokens.length), tokens, probe,
    key: `${state.resultId}/${layer}/${head}/${sinkAware}` });
  Object.assign(canvas.dataset, { left: geometry.margin, top: geometry.margin, cell: geometry.cell, tokens: tokens.length });
  canvas.setAttribute("aria-label", `Attention of layer ${layer} head ${head}: ${tokens.length} query rows by ` +
    `${tokens.length} key columns. Arrow keys move the probed cell.`);

  drawTooltip(elements.tooltip, geometry, probe, tokens, attention, state);
  const query = probe ? probe.query : tokens.length - 1;
  elements.topTitle.textContent = `Query ${query} “${visibleToken(tokens[query])}” attends most to`;
  const top = attention.topKeys(layer, head, query, sinkAware, TOP_KEYS);
  parts.topItems.forEach((entry, rank) => {
    entry.item.hidden = rank >= top.length;
    if (rank >= top.length) return;
    const { key, value } = top[rank];
    entry.token.textContent = visibleToken(tokens[key]);
    entry.token.title = `token ${key}`;
    entry.amount.textContent = probability(value);
    entry.bar.style.width = `${Math.round(value * 100)}%`;
  });
  elements.topEmpty.hidden = top.length > 0;
  elements.topEmpty.textContent = top.length ? "" : "Nothing: all of this row's attention is on the first token, set aside.";
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

function drawScores(elements, parts, info, tag, hide) {
  // A head with no scored row has no averages: its zeros would contradict the cells (a 1-token sentence's only
  // cell is 1.0, yet "self" would read 0.00), so they are left out and the reason is said instead.
  const note = hide ? "Scores hidden while you predict: they give the label away." : tag.tag ? closed(`Not measured: ${info.reason}`) : "";
  elements.scoresNote.hidden = !note;
  elements.scoresNote.textContent = note;
  elements.scores.hidden = Boolean(note);
  if (note) return;
  for (const { name, number, bar } of parts.scoreRows) {
    const value = info.scores[name];
    number.textContent = value.toFixed(2);
    bar.style.width = `${Math.round(value * 100)}%`;
  }
  parts.distanceValue.textContent = `${info.mean_distance_tokens.toFixed(1)} tokens back`;
}

function drawTooltip(tooltip, geometry, probe, tokens, attention, state) {
  tooltip.hidden = !probe;
  if (!probe) return;
  const { layer, head, sinkAware } = state;
  const { query, key } = probe;
  const shown = key > query ? NaN : attention.shownRow(layer, head, query, sinkAware)[key];
  const raw = key > query ? 0 : attention.value(layer, head, query, key);
  let value;
  if (key > query) value = "masked: a token cannot see later tokens";
  else if (shown === SET_ASIDE) value = `set aside: the first column (raw ${probability(raw)})`;
  else if (shown === EMPTY_ROW) value = `pure sink: nothing left off the first token (raw ${probability(raw)})`;
  else value = sinkAware ? `${probability(shown)} (raw ${probability(raw)})` : probability(shown);
  tooltip.replaceChildren(
    line("query", `${query} “${visibleToken(tokens[query])}”`),
    line("key", `${key} “${visibleToken(tokens[key])}”`),
    line("attention", value));
  const { margin, cell } = geometry;
  const x = margin + (key + 1) * cell + 10;
  const y = margin + query * cell;
  tooltip.style.left = `${x}px`;
  tooltip.style.top = `${y}px`;
  tooltip.classList.toggle("flip", x > geometry.width - TOOLTIP_FLIP_PX);
}

function fitCell(context, tokens, wrap) {
  const guess = painter.geometry(context, tokens, MIN_LEGIBLE_CELL);
  const width = Math.max(MIN_MATRIX_PX, wrap.clientWidth - guess.margin - 8);
  const height = Math.max(240, window.innerHeight - wrap.getBoundingClientRect().top - guess.margin - 48);
  // A narrow screen stacks the view: there the width decides, and the page scrolls down to the rest.
  const room = window.innerWidth < window.innerHeight ? width : Math.min(width, height);
  const fit = Math.floor(room / tokens.length);
  const floor = tokens.length <= LEGIBLE_TOKENS ? MIN_LEGIBLE_CELL : MIN_CELL;
  return Math.max(floor, Math.min(MAX_CELL, fit));
}

function scoreHeading(name) {
  return name.replace(/_/g, " ");
}

function line(name, value) {
  return element("div", "", element("span", "key-name", name), element("span", "key-value", value));
}
