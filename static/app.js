/* Twelve Heads' page: presets, the handlers behind every control and key, and the draw that paints the page
   from `state` (state.js). Handlers change state and call schedule(); draw() runs once per animation frame
   and only reads state. Served by the Flask app at / (index.html loads this module; there is no build step). */

import { getModels } from "./api.js";
import { clamp, fetchLayer, look, messageOf, onDraw, relabel, schedule, state } from "./state.js";
import { drawColourBar } from "./heatmap.js";
import { buildGrid, drawCounts, drawGrid, drawMap, mapCellAt } from "./grid.js";
import { cellAt, drawFocus } from "./focus.js";
import { buildLesson, drawLesson, lessonDims, solutionOf } from "./lesson.js";
import { permalinkHash, readPermalink } from "./permalink.js";
import { downloadPicture, focusPicture, gridPicture, pictureName } from "./png.js";
import { buildLabelKey, currentModel, drawEmpty, drawLayerBar, drawModels, drawSentence } from "./view.js";
import { LESSON_ID, LESSON_PAIR, choosePair, comparisonOf, listenCompare, toggleCompareView } from "./compare.js";
import { bothReady, buildCompareThumbs, buildPairPresets, drawCompareFocus, drawCompareGrid, drawCompareSentence,
  drawDiffLegend, drawRanking } from "./compare_view.js";
import { buildCompareLesson, compareLessonSolution, drawCompareLesson } from "./compare_lesson.js";
import { compareFocusPicture, compareGridPicture, comparePictureName } from "./compare_png.js";
import { drawDivergingBar } from "./diff.js";

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
// User Timing entries (zero cost unread): DevTools shows them, benchmarks/bench_page.py reads them.
const DRAW_MEASURE = "twelve-heads:draw";  // one draw(); detail: layer, focused, tokens, thumbnails (repainted), gridMs
const SWITCH_MEASURE = "twelve-heads:layer-switch";  // the input that changed the layer → the draw showing it
const NO_MODELS = "No model is exported yet. Run `twelve-heads export --demo` (offline) or `twelve-heads export gpt2`, " +
  "then reload this page.";

const dom = {};
let thumbs = [];
let gridShape = "";
let lessonCards = null;
let compareCard = null;
let lessonShape = "";
let layerSwitch = null;  // {from, since}: the first layer change not yet painted; since is a performance.now() time
let pendingHash = null;  // the permalink to write once the frame that shows its view is done (writePermalink)

// ---- handlers: change state, then schedule() ----

function setLayer(layer, since = performance.now()) {
  if (!state.result) return;
  const from = state.layer;
  state.layer = clamp(layer, 0, state.result.n_layer - 1);
  if (state.layer !== from && !layerSwitch) layerSwitch = { from, since };
  state.probe = null;
  fetchLayer(state.layer);
  schedule();
}

function selectHead(head, { moveFocus = true } = {}) {
  if (!state.result) return;
  state.head = clamp(head, 0, state.result.n_head - 1);
  state.probe = null;
  schedule();
  if (moveFocus && !state.focused && thumbs[state.head]) thumbs[state.head].button.focus();
}

function openFocus(head) {
  if (!state.result) return;
  selectHead(head, { moveFocus: false });
  state.focused = true;
  schedule();
  dom.focus.hidden = false;  // so the heading can take keyboard focus now; draw agrees
  dom.focusTitle.focus();
}

function closeFocus() {
  state.focused = false;
  state.probe = null;
  schedule();
  dom.gridArea.hidden = false;
  thumbs[state.head]?.button.focus();
}

function moveProbe(key) {
  const n = state.result.n_tokens;
  const probe = state.probe || { query: n - 1, key: 0 };
  const step = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[key];
  state.probe = { query: clamp(probe.query + step[0], 0, n - 1), key: clamp(probe.key + step[1], 0, n - 1) };
  schedule();
}

function onKey(event) {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  if (event.key === "Escape" && state.focused) {
    event.preventDefault();
    return closeFocus();
  }
  if (target.closest("textarea, select, input[type=range], input[type=text], .lesson") || !state.result) return;
  const arrow = event.key.startsWith("Arrow");
  if (arrow && target === dom.matrix) {
    event.preventDefault();
    return moveProbe(event.key);
  }
  const { layer, head } = state;
  const moves = { ArrowLeft: () => selectHead(head - 1), ArrowRight: () => selectHead(head + 1),
    ArrowUp: () => setLayer(layer + 1), ArrowDown: () => setLayer(layer - 1), PageUp: () => setLayer(layer + 1),
    PageDown: () => setLayer(layer - 1), Home: () => selectHead(0), End: () => selectHead(state.result.n_head - 1) };
  if (moves[event.key]) {
    event.preventDefault();
    moves[event.key]();
  } else if (event.key === "d" || event.key === "D") {
    event.preventDefault();
    toggleCompareView();
  } else if (event.key === "Enter" && !state.focused && !target.closest("button, a, summary, input")) {
    event.preventDefault();
    openFocus(head);
  }
}

function restore(view) {
  Object.assign(state, { prependBos: view.prependBos, sinkAware: view.sinkAware, focused: view.focused });
  if (view.layer !== undefined) state.layer = view.layer;
  if (view.head !== undefined) state.head = view.head;
  if (view.model) state.model = view.model;  // checked against /api/models once they are known
  state.draft = view.text !== undefined ? view.text : PRESETS[0].text;
  state.compare.open = Boolean(view.compare);
  if (view.compare) Object.assign(state.compare, { draftB: view.compare.textB, view: view.compare.view });
}

function onHashChange() {
  const view = readPermalink(location.hash);
  if (view.text === undefined) return;
  const before = [state.text, state.model, state.prependBos, state.sinkAware, state.compare.textB].join("\n");
  restore(view);
  const textB = state.compare.open ? state.compare.draftB : "";
  if ([view.text, state.model, state.prependBos, state.sinkAware, textB].join("\n") !== before) look();
  schedule();
}

function download(focused) {
  if (!state.result || !state.attention?.has(state.layer)) return;
  if (comparisonOf(state)) {
    if (!bothReady(state, state.layer)) return;
    const picture = focused ? compareFocusPicture(state) : compareGridPicture(state);
    return downloadPicture(picture, comparePictureName(state, focused));
  }
  downloadPicture(focused ? focusPicture(state) : gridPicture(state), pictureName(state, focused));
}

const lessonHandlers = {
  onPredict(id, field, value) {
    state.lesson.predictions[id] = { ...state.lesson.predictions[id], [field]: value };
    schedule();
  },
  onReveal(id) {
    state.lesson.revealed[id] = true;
    schedule();
  },
  onShowMe(id) {
    const { showMe } = id === LESSON_ID ? compareLessonSolution(state) : solutionOf(id, state.result, dims());
    setLayer(showMe.layer);
    if (showMe.focused) openFocus(showMe.head);
    else if (state.focused) closeFocus();
  },
  onLoadPair() {
    choosePair(LESSON_PAIR);
  },
};

// ---- drawing ----

function draw() {
  const started = performance.now();
  const { result } = state;
  const shape = dims();
  drawModels(dom, state);
  drawSentence(dom, state);
  drawCompareSentence(dom, state);
  drawLayerBar(dom, state, shape.nLayer);
  drawEmpty(dom, state);
  if (result && gridShape !== `${result.n_head}`) {
    thumbs = buildGrid(dom.grid, result.n_head, openFocus);
    buildCompareThumbs(thumbs);
    gridShape = `${result.n_head}`;
  }
  const focused = state.focused && Boolean(result);
  dom.gridArea.hidden = focused || !result;
  dom.legend.hidden = !result;
  dom.focus.hidden = !focused;
  dom.gridPng.hidden = focused || !result;
  drawCounts(dom.counts, result, state.layer, state.lesson.hideLabels);
  const gridStarted = performance.now();
  const comparing = Boolean(comparisonOf(state));
  const repainted = drawGrid(thumbs, state) + drawCompareGrid(thumbs, state);
  const gridMs = performance.now() - gridStarted;
  drawMap(dom.map, dom.mapCaption, result, state.layer, state.head, state.lesson.hideLabels);
  dom.focusBody.hidden = comparing;
  dom.compareFocus.hidden = !comparing;
  const painted = focused ? (comparing ? drawCompareFocus(dom.compareParts, state) : drawFocus(dom.focusParts, state))
    : comparing ? bothReady(state, state.layer) : Boolean(state.attention?.has(state.layer));
  drawDiffLegend(dom, state);
  drawRanking(dom.rankingParts, state, (layer, head) => permalinkHash({ ...state, layer, head, focused: true }));
  if (lessonShape !== `${shape.nLayer}x${shape.nHead}`) {
    lessonCards = buildLesson(dom.experiments, shape, lessonHandlers);
    compareCard = buildCompareLesson(dom.experiments, shape, lessonHandlers);
    lessonShape = `${shape.nLayer}x${shape.nHead}`;
  }
  dom.hideLabels.checked = state.lesson.hideLabels;
  drawLesson(lessonCards, shape, state.lesson, state.status === "ready" ? result : null);
  drawCompareLesson(compareCard, state);
  if (result && state.status !== "error") {
    const hash = permalinkHash(state);
    if (hash !== (pendingHash ?? location.hash)) {
      if (pendingHash === null) setTimeout(writePermalink);
      pendingHash = hash;
    }
  }
  const ready = state.status === "ready" && painted;
  document.body.dataset.ready = ready && pendingHash !== null ? "url" : String(ready);
  const tokens = result ? result.n_tokens : 0;
  measureDraw(started, { layer: state.layer, focused, tokens, thumbnails: repainted, gridMs }, painted);
}

/** The permalink is written in a task after the frame, not inside draw(): history.replaceState takes from 0.3
 *  to 10 ms (the most with DevTools attached, as under Playwright), and no pixel of the switch waits on it.
 *  `data-ready` reads "url" until then, so whoever waits for "true" finds the URL matching the view. */
function writePermalink() {
  if (pendingHash !== location.hash) history.replaceState(null, "", pendingHash);
  pendingHash = null;
  if (document.body.dataset.ready === "url") document.body.dataset.ready = "true";  // no draw scheduled since
}

/** Record this draw (and, once the new layer is painted, the layer switch) as User Timing measures. Only the
 *  latest of each is kept, so an hour of hovering does not grow the timeline; a PerformanceObserver sees all. */
function measureDraw(start, detail, painted) {
  const end = performance.now();
  performance.clearMeasures(DRAW_MEASURE);
  performance.measure(DRAW_MEASURE, { start, end, detail });
  if (!layerSwitch || !painted) return;  // a long sentence's layer is still on its way: the switch goes on
  performance.clearMeasures(SWITCH_MEASURE);
  const { from, since } = layerSwitch;
  performance.measure(SWITCH_MEASURE, { start: since, end, detail: { from, to: state.layer } });
  layerSwitch = null;
}

function dims() {
  const model = state.result || currentModel(state) || {};
  return lessonDims(model.n_layer || 12, model.n_head || 12);
}

// ---- start ----

async function start() {
  for (const id of ["model", "model-picker", "model-name", "synthetic-banner", "sentence-form", "text", "look",
    "presets", "prepend-bos", "sink-aware", "tokens", "token-count", "status", "error", "layer", "layer-value",
    "counts", "grid-png", "grid-area", "grid", "map", "map-caption", "label-key", "focus", "back", "prev-head",
    "next-head", "focus-title", "focus-png", "matrix", "matrix-wrap", "colour-bar", "pool-note", "legend", "empty",
    "hide-labels", "experiments", "compare-box", "compare-open", "compare-close", "text-b", "pair-presets",
    "token-row-b", "token-count-b", "tokens-b", "compare-note", "view-switch", "view-side", "view-diff", "compare-focus",
    "matrix-a", "matrix-b", "matrix-diff", "compare-query", "diff-legend", "diff-bar", "diff-min", "diff-max",
    "ranking", "ranking-list"]) {
    dom[id.replace(/-(\w)/g, (_, letter) => letter.toUpperCase())] = document.getElementById(id);
  }
  dom.banner = dom.syntheticBanner;
  dom.focusParts = { title: dom.focusTitle, chip: byId("focus-chip"), confidence: byId("focus-confidence"),
    runnerUp: byId("focus-runner-up"), reason: byId("focus-reason"), meaning: byId("focus-meaning"),
    scores: byId("scores"), topTitle: byId("top-title"), topList: byId("top-keys"), canvas: dom.matrix,
    wrap: dom.matrixWrap, tooltip: byId("tooltip") };
  dom.focusTitle.tabIndex = -1;
  dom.tokensA = dom.tokens;
  dom.focusBody = document.querySelector(".focus-body");
  dom.compareParts = { title: dom.focusTitle, chip: byId("focus-chip"), confidence: byId("focus-confidence"),
    canvasA: dom.matrixA, canvasB: dom.matrixB, canvasDiff: dom.matrixDiff, panels: byId("compare-panels"),
    diffLimit: byId("diff-limit"), query: dom.compareQuery, probe: byId("compare-probe"),
    summary: byId("compare-summary"), bars: byId("row-bars") };
  dom.rankingParts = { section: dom.ranking, list: dom.rankingList };
  drawDivergingBar(dom.diffBar);
  buildPairPresets(dom.pairPresets, choosePair);
  drawColourBar(dom.colourBar);
  buildLabelKey(dom.labelKey);
  dom.presets.append(...PRESETS.map((preset) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = preset.name;
    button.title = preset.text;
    button.addEventListener("click", () => { state.draft = preset.text; look(); });
    return button;
  }));
  onDraw(draw);
  listen();
  restore(readPermalink(location.hash));
  try {
    const models = await getModels();
    state.models = models.models;
    if (!state.models.some((model) => model.name === state.model)) state.model = models.default;
  } catch (error) {
    Object.assign(state, { status: "error", error: messageOf(error) });
  }
  if (state.status !== "error" && !state.model) Object.assign(state, { status: "empty", error: NO_MODELS });
  if (state.status === "starting") look();
  schedule();
}

function listen() {
  dom.sentenceForm.addEventListener("submit", (event) => { event.preventDefault(); look(); });
  dom.text.addEventListener("input", () => { state.draft = dom.text.value; });
  dom.text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); state.draft = dom.text.value; look(); }
  });
  dom.model.addEventListener("change", () => { state.model = dom.model.value; look(); });
  dom.prependBos.addEventListener("change", () => { state.prependBos = dom.prependBos.checked; look(); });
  dom.sinkAware.addEventListener("change", () => { state.sinkAware = dom.sinkAware.checked; relabel(); });
  dom.layer.addEventListener("input", (event) => setLayer(Number(dom.layer.value), event.timeStamp));
  dom.back.addEventListener("click", closeFocus);
  dom.prevHead.addEventListener("click", () => selectHead(state.head - 1));
  dom.nextHead.addEventListener("click", () => selectHead(state.head + 1));
  dom.gridPng.addEventListener("click", () => download(false));
  dom.focusPng.addEventListener("click", () => download(true));
  dom.hideLabels.addEventListener("change", () => { state.lesson.hideLabels = dom.hideLabels.checked; schedule(); });
  dom.map.addEventListener("click", (event) => {
    const cell = mapCellAt(dom.map, state.result, event.offsetX, event.offsetY);
    if (!cell) return;
    setLayer(cell.layer);
    selectHead(cell.head, { moveFocus: false });
  });
  dom.matrix.addEventListener("mousemove", (event) => {
    const cell = cellAt(dom.matrix, event.offsetX, event.offsetY);
    if (cell && (!state.probe || cell.query !== state.probe.query || cell.key !== state.probe.key)) {
      state.probe = cell;
      schedule();
    }
  });
  dom.matrix.addEventListener("mouseleave", () => { state.probe = null; schedule(); });
  listenCompare(dom, { openFocus, setLayer, cellAt });
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", onHashChange);
  window.addEventListener("resize", schedule);
}

// ---- pure helpers ----

function byId(id) {
  return document.getElementById(id);
}

start();
