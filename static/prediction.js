/* What the model loses with heads knocked out, under the tokens (knockout_view.js places it): the 5 likeliest next
   tokens after the last one with every head and without, side by side, each with where it stands in the other run,
   and every token coloured by the change in its log-probability (knocked out − clean, on diff.js's diverging
   scale), exact on hover and keyboard focus. The numbers are the server's ("prediction" of POST /api/attention),
   read through surprise.js. */

import { visibleToken } from "./attention.js";
import { divergingColour, drawDivergingBar } from "./diff.js";
import { headList } from "./knockout_heads.js";
import { probeStrip } from "./knockout.js";
import { logprobChanges, logprobLimit, numberText, otherPass, probabilityText, signedText } from "./surprise.js";
import { element } from "./dom.js";

const DARK_INK_SHARE = 0.6;  // beyond this share of the scale a coloured chip's text turns white

/** The prediction table and the per-token strip, in one element (`root`). */
export function buildPrediction() {
  const summary = element("p", "ko-summary");
  const strip = element("ol", "ko-strip");
  strip.setAttribute("aria-label", "Change in log-probability of each token without the knocked-out heads; arrow " +
    "keys move");
  strip.addEventListener("keydown", (event) => moveInStrip(event, strip));
  strip.addEventListener("mouseleave", () => {
    if (!strip.contains(document.activeElement)) probeStrip(null);
  });
  strip.addEventListener("focusout", (event) => {
    if (!strip.contains(event.relatedTarget)) probeStrip(null);
  });
  const scaleBar = drawDivergingBar(element("canvas", "colour-bar"));
  scaleBar.setAttribute("aria-hidden", "true");
  const scaleMin = element("span", "ko-scale-end");
  const scaleMax = element("span", "ko-scale-end");
  const scale = element("div", "ko-scale", scaleMin, scaleBar, scaleMax,
    element("span", "muted", "change in log-probability of each token without the heads: blue less expected, red " +
      "more, white no change"));
  const readout = element("p", "ko-readout");
  readout.setAttribute("aria-live", "polite");
  const surprise = element("div", "ko-surprise", element("h3", "small-heading", "Where it mattered"), summary, strip,
    scale, readout);

  const predictionTitle = element("h3", "small-heading");
  const cleanHeading = element("th", "", "With every head");
  const ablatedHeading = element("th", "");
  const rows = Array.from({ length: 5 }, (_, rank) => {
    const clean = predictionCell();
    const ablated = predictionCell();
    const line = element("tr", "", element("th", "ko-rank", String(rank + 1)), clean.cell, ablated.cell);
    return { line, clean, ablated };
  });
  const table = element("table", "ko-table",
    element("thead", "", element("tr", "", element("th", "ko-rank", "#"), cleanHeading, ablatedHeading)),
    element("tbody", "", ...rows.map(({ line }) => line)));
  const prediction = element("div", "ko-prediction", predictionTitle, table);
  const root = element("div", "ko-results", prediction, surprise);
  return { root, predictionTitle, ablatedHeading, rows, summary, strip, scaleMin, scaleMax, readout, stripKey: null };
}

/** Both, for the shown answer knocked out without `shown`. */
export function drawPredictionPanel(parts, state, shown) {
  drawPrediction(parts, state.result, shown);
  drawSurprise(parts, state);
}

// ---- the parts ----

function drawPrediction(parts, result, shown) {
  const { top, top_ablated: topAblated } = result.prediction;
  const last = result.tokens[result.n_tokens - 1];
  parts.predictionTitle.textContent = `Next token after “${visibleToken(last)}”`;
  parts.ablatedHeading.textContent = shown.length > 3 ? `Without ${shown.length} heads` : `Without ${headList(shown)}`;
  const cleanBest = top[0]?.id;
  parts.rows.forEach(({ clean, ablated }, rank) => {
    fillPrediction(clean, top[rank], cleanBest);
    fillPrediction(ablated, topAblated[rank], cleanBest);
  });
}

function drawSurprise(parts, state) {
  const { result } = state;
  const changes = logprobChanges(result.prediction);
  const limit = logprobLimit(changes);
  const stripKey = `${state.resultId}`;
  if (parts.stripKey !== stripKey) {
    parts.stripKey = stripKey;
    parts.strip.replaceChildren(...result.tokens.map((token, index) => stripChip(token, index, result, changes, limit)));
    parts.scaleMin.textContent = `−${limit}`;
    parts.scaleMax.textContent = `+${limit}`;
    parts.summary.textContent = surpriseSummary(result, changes);
  }
  const { probe: wanted } = state.knockout;
  const probe = wanted !== null && wanted < result.n_tokens ? wanted : null;  // a shorter sentence since
  const stop = probe ?? Math.min(1, result.n_tokens - 1);  // the strip's one tab stop: the first predicted token
  for (const chip of parts.strip.children) {
    chip.tabIndex = Number(chip.dataset.index) === stop ? 0 : -1;
    chip.classList.toggle("probed", Number(chip.dataset.index) === probe);
  }
  parts.readout.textContent = probe === null ? "Hover or focus a token for its numbers."
    : stripReadout(result, probe, changes);
}

function surpriseSummary(result, changes) {
  if (!changes.length) return "One token: nothing to predict.";
  let worst = 0;
  changes.forEach((value, position) => { if (Math.abs(value) > Math.abs(changes[worst])) worst = position; });
  const mean = changes.reduce((sum, value) => sum + value, 0) / changes.length;
  const token = result.tokens[worst + 1];
  return `Each token is coloured by how its log-probability (given the tokens before it) changed without the ` +
    `heads: ${signedText(mean)} on average over ${changes.length}; most at “${visibleToken(token)}” (token ` +
    `${worst + 1}): ${signedText(changes[worst])}.`;
}

function stripReadout(result, index, changes) {
  const token = `“${visibleToken(result.tokens[index])}” (token ${index})`;
  if (index === 0) return `${token}: the first token; nothing comes before it to predict it.`;
  const { logprob, logprob_ablated: ablated } = result.prediction;
  const position = index - 1;
  return `${token}, after “${visibleToken(result.tokens[position])}”: log-probability ${numberText(logprob[position])} ` +
    `with every head, ${numberText(ablated[position])} without; change ${signedText(changes[position], 4)} ` +
    `(p ${probabilityText(Math.exp(logprob[position]))} → ${probabilityText(Math.exp(ablated[position]))}).`;
}

// ---- pure helpers ----

function stripChip(token, index, result, changes, limit) {
  const chip = element("li", "token ko-chip", visibleToken(token));
  chip.dataset.index = String(index);
  chip.addEventListener("mouseenter", () => probeStrip(index));
  chip.addEventListener("focus", () => probeStrip(index));
  if (index === 0) {
    chip.classList.add("ko-first");
    chip.title = "the first token: nothing predicts it";
    return chip;
  }
  const change = changes[index - 1];
  chip.style.backgroundColor = divergingColour(change, limit);
  chip.style.color = Math.abs(change) / limit > DARK_INK_SHARE ? "#fff" : "#111";
  Object.assign(chip.dataset, { change: String(change), clean: String(result.prediction.logprob[index - 1]),
    ablated: String(result.prediction.logprob_ablated[index - 1]) });
  chip.title = `token ${index}: change in log-probability ${signedText(change, 4)}`;
  return chip;
}

function moveInStrip(event, strip) {
  const chips = [...strip.children];
  const at = chips.indexOf(document.activeElement);
  const next = { ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: chips.length - 1 }[event.key];
  if (next === undefined || at < 0) return;
  event.preventDefault();
  event.stopPropagation();  // the page's arrows move between heads; here they move along the tokens
  chips[Math.max(0, Math.min(chips.length - 1, next))].focus();
}

function predictionCell() {
  const token = element("span", "token");
  const fill = element("span", "bar");
  const amount = element("span", "amount");
  const other = element("span", "ko-other muted");
  const cell = element("td", "ko-cell", token, element("span", "track", fill), amount, other);
  return { cell, token, fill, amount, other };
}

function fillPrediction(parts, entry, cleanBest) {
  parts.cell.hidden = false;
  if (!entry) {
    parts.token.textContent = "";
    parts.amount.textContent = "";
    parts.fill.style.width = "0";
    parts.other.hidden = true;
    return;
  }
  parts.token.textContent = visibleToken(entry.token);
  parts.token.title = `token id ${entry.id}`;
  parts.amount.textContent = probabilityText(entry.p);
  parts.fill.style.width = `${Math.max(1, Math.round(entry.p * 100))}%`;
  parts.cell.classList.toggle("ko-best", entry.id === cleanBest);
  const other = otherPass(entry);
  Object.assign(parts.other, { textContent: other.text, title: other.title, hidden: !other.text });
  Object.assign(parts.cell.dataset, { id: String(entry.id), p: String(entry.p) });
}
