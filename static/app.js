/* Twelve Heads' page: finds its elements, registers the layout and draw functions that paint the page from
   `state` (state.js), wires every control to its handler (handlers.js), and starts. Served by the Flask app at /
   (index.html loads this module; there is no build step). */

import { getModels } from "./api.js";
import { drawColourBar } from "./heatmap.js";
import { buildCounts, buildGrid, drawCounts, drawGrid } from "./grid.js";
import { drawMap } from "./map.js";
import { buildFocus, drawFocus } from "./focus.js";
import { buildLesson, drawLesson } from "./lesson.js";
import { lessonDims } from "./experiments.js";
import { listenHistory, shownView } from "./history.js";
import { readPermalink } from "./permalink.js";
import { downloadPicture, focusPicture, gridPicture, pictureName } from "./png.js";
import { countDraft, look, messageOf } from "./requests.js";
import { currentModel, noteLink, onDraw, onLayout, schedule, state } from "./state.js";
import { beginFrame, endFrame } from "./timing.js";
import { buildLabelKey, buildModels, buildTokens, drawEmpty, drawGridNote, drawLayerBar, drawModels, drawSentence,
  drawTokens } from "./view.js";
import * as on from "./handlers.js";
import { choosePair, comparisonOf, listenCompare } from "./compare.js";
import { bothReady, buildCompareThumbs, buildPairPresets, drawCompareFocus, drawCompareGrid, drawCompareSentence,
  drawDiffLegend, drawRanking } from "./compare_view.js";
import { buildCompareLesson, drawCompareLesson } from "./compare_lesson.js";
import { compareFocusPicture, compareGridPicture, comparePictureName } from "./compare_png.js";
import { drawDivergingBar } from "./diff.js";
import { cellAt } from "./focus.js";
import { permalinkHash } from "./permalink.js";
import { buildKnockout, buildKnockoutThumbs, drawKnockout, drawKnockoutGrid } from "./knockout_view.js";
import { drawKnockoutFocus, focusedRun } from "./knockout_focus.js";
import { buildKnockoutLesson, drawKnockoutLesson } from "./knockout_lesson.js";
import { drawAtlasLesson, drawAtlasSummary, drawAtlasThumbs, installAtlas } from "./atlas_view.js";
import { drawAtlasFocus } from "./atlas_focus.js";

const PRESETS = [
  { name: "Coreference", text: "The trophy doesn't fit in the suitcase because it is too big." },
  { name: "Pronoun", text: "Alice gave Bob the book because she had finished reading it." },
  { name: "Repeated phrase", text: "The cat sat on the mat. The cat sat on the mat." },
  { name: "List", text: "apples, pears, plums, cherries, grapes, lemons, limes" },
  { name: "Long paragraph", text: "The old lighthouse stood at the edge of the cliff for more than two hundred " +
    "years. Every night the keeper climbed the narrow stairs, trimmed the wick and wound the heavy clockwork that " +
    "turned the lens. Ships far out at sea saw the beam sweep across the water and knew where the rocks were. When " +
    "the keeper grew old, his daughter took over the work. She kept a logbook of every storm, every wreck and every " +
    "ship that passed safely, and the logbook still sits in the museum in the town below, open at the page she " +
    "wrote on her last night." },
];
const NO_MODELS = "No model is exported yet. Run `twelve-heads export --demo` (offline) or `twelve-heads export gpt2`, " +
  "then reload this page.";
const ELEMENT_IDS = ["model", "model-picker", "model-name", "synthetic-banner", "sentence-form", "text", "look",
  "draft-count", "presets", "prepend-bos", "sink-aware", "tokens", "token-count", "fragment-note", "status", "error",
  "link-note", "layer", "layer-value", "counts", "grid-png", "grid-note", "grid-area", "grid", "map", "map-caption", "map-readout",
  "label-key", "focus", "back", "prev-head", "next-head", "focus-title", "focus-chip", "focus-confidence",
  "focus-runner-up", "focus-reason", "focus-meaning", "focus-png", "matrix", "matrix-wrap", "tooltip", "top-title",
  "top-keys", "top-empty", "scores", "scores-note", "score-meanings", "colour-bar", "pool-note", "set-aside-key",
  "empty-row-key", "legend", "empty", "hide-labels", "experiments",
  // compare mode (compare_view.js)
  "compare-box", "compare-open", "compare-close", "text-b", "pair-presets", "token-row-b", "token-count-b", "tokens-b",
  "compare-note", "view-switch", "view-side", "view-diff", "focus-body", "compare-focus", "compare-panels", "matrix-a",
  "matrix-b", "matrix-diff", "diff-limit", "compare-query", "compare-probe", "compare-summary", "row-bars",
  "diff-legend", "diff-bar", "diff-min", "diff-max", "ranking", "ranking-list",
  // knocking heads out (knockout_view.js)
  "token-strips", "focus-tools", "focus-modes"];

const dom = {};
const built = {};  // what the layout functions made, and for which shape: {grid, counts, focus, lesson, tokens}

// ---- layout: structure for the state's shape, made only when that shape changes ----

function layout() {
  const { result, glossary } = state;
  rebuild("models", state.models.map(({ name }) => name).join("\n"), () => buildModels(dom.model, state.models));
  if (!glossary) return;
  rebuild("counts", "1", () => buildCounts(dom.counts, glossary));
  rebuild("labelKey", "1", () => buildLabelKey(dom.labelKey, glossary));
  rebuild("focus", "1", () => buildFocus(focusElements(), glossary));
  rebuild("knockout", "1", () => buildKnockout(dom));
  const dims = shape();
  rebuild("lesson", `${dims.nLayer}x${dims.nHead}/${dims.sinkAware}`, () => ({
    cards: buildLesson(dom.experiments, dims, on.lessonHandlers),
    compareCard: buildCompareLesson(dom.experiments, dims, on.lessonHandlers),
    knockoutCard: buildKnockoutLesson(dom.experiments, { setLayer: on.setLayer, openFocus: on.openFocus,
      lookAt: on.lookAt, repeatedPhrase: PRESETS.find(({ name }) => name === "Repeated phrase").text }) }));
  if (!result) return;
  rebuild("grid", String(result.n_head), () => {
    const thumbs = buildGrid(dom.grid, result.n_head, on.openFocus);
    buildCompareThumbs(thumbs);
    buildKnockoutThumbs(thumbs);
    return thumbs;
  });
  rebuild("tokens", String(state.resultId), () => buildTokens(dom, result, glossary));
}

function rebuild(name, key, build) {
  if (built[name]?.key === key) return;
  built[name] = { key, parts: build() };
}

// ---- draw: the page from state; reads it, never changes it ----

function draw() {
  const { result } = state;
  const focused = state.focused && Boolean(result);
  const comparing = Boolean(comparisonOf(state));
  drawModels(dom, state);
  drawSentence(dom, state);
  drawTokens(dom, state);
  drawLayerBar(dom, state, shape().nLayer);
  drawGridNote(dom.gridNote, state);
  drawEmpty(dom, state);
  dom.gridArea.hidden = focused || !result;
  dom.legend.hidden = !result;
  dom.focus.hidden = !focused;
  dom.gridPng.hidden = focused || !result;
  if (!state.glossary) return;
  drawCompareSentence(dom, state);
  drawCounts(built.counts.parts, state);
  if (built.grid) {
    drawGrid(built.grid.parts, state);
    drawCompareGrid(built.grid.parts, state);
    drawKnockoutGrid(built.grid.parts, state);
    drawAtlasThumbs(built.grid.parts, state);
  }
  drawMap({ canvas: dom.map, caption: dom.mapCaption, readout: dom.mapReadout }, state);
  drawAtlasSummary(state);
  dom.focusBody.hidden = comparing;
  dom.compareFocus.hidden = !comparing;
  if (focused && comparing) drawCompareFocus(compareElements(), state);
  else if (focused) {
    drawFocus(focusElements(), built.focus.parts, focusedRun(state));  // the clean run in its view
    drawKnockoutFocus(focusElements(), state);
  }
  drawKnockout(built.knockout.parts, state);
  if (focused && !comparing) drawAtlasFocus(focusedRun(state));  // beside the labels of the run the view shows
  drawDiffLegend(dom, state);
  drawRanking({ section: dom.ranking, list: dom.rankingList }, state, (layer, head) =>
    permalinkHash({ ...shownView(state), layer, head, focused: true }));
  dom.hideLabels.checked = state.lesson.hideLabels;
  drawLesson(built.lesson.parts.cards, shape(), state.lesson, state.status === "ready" || state.status === "error"
    ? result : null, state.glossary);
  drawCompareLesson(built.lesson.parts.compareCard, state);
  drawKnockoutLesson(built.lesson.parts.knockoutCard, state);
  drawAtlasLesson(built.lesson.parts.cards, shape(), state);
}

function shape() {
  const model = state.result || currentModel(state) || {};
  const labels = state.glossary ? state.glossary.labels.map(({ name }) => name) : [];
  return lessonDims(model.n_layer || 12, model.n_head || 12, labels, Boolean(state.result?.sink_aware));
}

function focusElements() {
  return { title: dom.focusTitle, chip: dom.focusChip, confidence: dom.focusConfidence, runnerUp: dom.focusRunnerUp,
    reason: dom.focusReason, meaning: dom.focusMeaning, scores: dom.scores, scoresNote: dom.scoresNote,
    scoreMeanings: dom.scoreMeanings, topTitle: dom.topTitle, topList: dom.topKeys, topEmpty: dom.topEmpty,
    canvas: dom.matrix, wrap: dom.matrixWrap, tooltip: dom.tooltip };
}

function compareElements() {
  return { title: dom.focusTitle, chip: dom.focusChip, confidence: dom.focusConfidence, canvasA: dom.matrixA,
    canvasB: dom.matrixB, canvasDiff: dom.matrixDiff, panels: dom.comparePanels, diffLimit: dom.diffLimit,
    query: dom.compareQuery, probe: dom.compareProbe, summary: dom.compareSummary, bars: dom.rowBars };
}

function download(focused) {
  if (!state.result || !state.attention?.has(state.layer)) return;
  if (comparisonOf(state)) {
    if (!bothReady(state, state.layer)) return;
    const picture = focused ? compareFocusPicture(state) : compareGridPicture(state);
    return downloadPicture(picture, comparePictureName(state, focused));
  }
  const picture = focused ? focusPicture(state) : gridPicture(state);
  downloadPicture(picture, pictureName({ ...shownView(state), focused }));
}

// ---- start ----

async function start() {
  for (const id of ELEMENT_IDS) dom[id.replace(/-(\w)/g, (_, letter) => letter.toUpperCase())] = document.getElementById(id);
  dom.banner = dom.syntheticBanner;
  dom.tokensA = dom.tokens;  // compare_view.js marks A's tokens without a partner
  on.bindHandlers(dom);
  drawColourBar(dom.colourBar);
  drawDivergingBar(dom.diffBar);
  buildPairPresets(dom.pairPresets, choosePair);
  installAtlas();
  dom.presets.append(...PRESETS.map((preset) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = preset.name;
    button.title = preset.text;
    button.dataset.text = preset.text;
    button.addEventListener("click", () => on.lookAt(preset.text));
    return button;
  }));
  onLayout(beginFrame);
  onLayout(layout);
  onDraw(draw);
  onDraw(endFrame);
  listen();
  on.restoreView(readPermalink(location.hash), PRESETS[0].text);
  try {
    const answer = await getModels();
    Object.assign(state, { models: answer.models, glossary: glossaryOf(answer) });
    if (!state.models.some((model) => model.name === state.model)) {
      if (state.model) noteLink(`The link's model “${state.model}” is not served here: showing “${answer.default}”.`);
      state.model = answer.default;
    }
  } catch (error) {
    Object.assign(state, { status: "error", error: messageOf(error) });
  }
  if (state.status !== "error" && !state.model) Object.assign(state, { status: "empty", error: NO_MODELS });
  if (state.status === "starting") {
    look();
    countDraft({ now: true });
  }
  schedule();
}

function listen() {
  dom.sentenceForm.addEventListener("submit", (event) => { event.preventDefault(); on.lookAt(dom.text.value); });
  dom.text.addEventListener("input", () => on.editDraft(dom.text.value));
  dom.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      on.lookAt(dom.text.value);
    }
  });
  dom.model.addEventListener("change", () => on.setModel(dom.model.value));
  dom.prependBos.addEventListener("change", () => on.setPrependBos(dom.prependBos.checked));
  dom.sinkAware.addEventListener("change", () => on.setSinkAware(dom.sinkAware.checked));
  dom.layer.addEventListener("input", (event) => on.setLayer(Number(dom.layer.value), event.timeStamp));
  dom.back.addEventListener("click", on.closeFocus);
  dom.prevHead.addEventListener("click", () => on.selectHead(state.head - 1));
  dom.nextHead.addEventListener("click", () => on.selectHead(state.head + 1));
  dom.gridPng.addEventListener("click", () => download(false));
  dom.focusPng.addEventListener("click", () => download(true));
  dom.hideLabels.addEventListener("change", () => on.setHideLabels(dom.hideLabels.checked));
  dom.map.addEventListener("click", on.pickOnMap);
  dom.map.addEventListener("mousemove", on.hoverMap);
  dom.map.addEventListener("mouseleave", () => on.hoverMap(null));
  dom.matrix.addEventListener("mousemove", on.probeAt);
  dom.matrix.addEventListener("mouseleave", on.clearProbe);
  listenCompare(dom, { openFocus: on.openFocus, setLayer: on.setLayer, cellAt });
  document.addEventListener("keydown", on.onKey);
  listenHistory(on.showView);
  window.addEventListener("resize", () => schedule());
}

// ---- pure helpers ----

/** What /api/models says beside the models: label and score meanings, the BOS token, the empty-row mass, the
 *  fewest tokens that get a head scored. */
function glossaryOf({ labels, scores, bos_token: bosToken, empty_row_mass: emptyRowMass,
  scored_from_tokens: scoredFromTokens }) {
  return { labels, scores, bos_token: bosToken, empty_row_mass: emptyRowMass, scored_from_tokens: scoredFromTokens };
}

start();
