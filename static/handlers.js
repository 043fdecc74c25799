/* What every control, key and history step does: each handler changes state and asks for a frame (schedule);
   where keyboard focus must move, it moves once that frame has drawn. */

import { LESSON_ID, LESSON_PAIR, choosePair, toggleCompareView } from "./compare.js";
import { compareLessonSolution } from "./compare_lesson.js";
import { EXPERIMENTS, blockedBecause, experimentOf, lessonDims } from "./experiments.js";
import { backOutOfFocus, pushView } from "./history.js";
import { mapCellAt } from "./map.js";
import { cellAt } from "./focus.js";
import { countDraft, look, relabel, showLayer } from "./requests.js";
import { clamp, noteLink, schedule, state } from "./state.js";
import { startLayerSwitch } from "./timing.js";
import { knockoutChanged, restoreKnockout, toggleSelectedHead } from "./knockout.js";

let dom = null;  // the elements keyboard focus moves to

export function bindHandlers(elements) {
  dom = elements;
}

// ---- the view ----

export function setLayer(layer, since = performance.now()) {
  if (!state.result) return;
  const from = state.layer;
  state.layer = clamp(layer, 0, state.result.n_layer - 1);
  if (state.layer !== from) startLayerSwitch(from, since);
  state.probe = null;
  showLayer();
  schedule();
}

export function selectHead(head, { moveFocus = true } = {}) {
  if (!state.result) return;
  state.head = clamp(head, 0, state.result.n_head - 1);
  state.probe = null;
  schedule(moveFocus && !state.focused ? () => thumbButton(state.head)?.focus() : undefined);
}

export function openFocus(head) {
  if (!state.result) return;
  state.head = clamp(head, 0, state.result.n_head - 1);
  state.probe = null;
  if (!state.focused) pushView();  // Back then returns to the grid
  state.focused = true;
  schedule(() => dom.focusTitle.focus());
}

export function closeFocus() {
  if (!state.focused) return;
  state.focused = false;
  state.probe = null;
  backOutOfFocus();
  schedule(() => thumbButton(state.head)?.focus());
}

export function moveProbe(key) {
  const n = state.result.n_tokens;
  const probe = state.probe || { query: n - 1, key: 0 };
  const [down, right] = ARROWS[key];
  state.probe = { query: clamp(probe.query + down, 0, n - 1), key: clamp(probe.key + right, 0, n - 1) };
  schedule();
}

export function probeAt(event) {
  const cell = cellAt(dom.matrix, event.offsetX, event.offsetY);
  if (cell && (!state.probe || cell.query !== state.probe.query || cell.key !== state.probe.key)) {
    state.probe = cell;
    schedule();
  }
}

export function clearProbe() {
  state.probe = null;
  schedule();
}

export function hoverMap(event) {
  const cell = event ? mapCellAt(state.result, event.offsetX, event.offsetY) : null;
  if (cell?.layer === state.mapHover?.layer && cell?.head === state.mapHover?.head) return;
  state.mapHover = cell;
  schedule();
}

export function pickOnMap(event) {
  const cell = mapCellAt(state.result, event.offsetX, event.offsetY);
  if (!cell) return;
  setLayer(cell.layer);
  selectHead(cell.head, { moveFocus: false });
}

/** The page's keys (the Keyboard panel in index.html lists them). */
export function onKey(event) {
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  const keyPanel = document.querySelector("details.keys[open]");
  if (event.key === "Escape" && keyPanel) {  // Esc closes what opened last: the Keyboard panel, then the head
    event.preventDefault();
    keyPanel.open = false;
    return;
  }
  if (event.key === "Escape" && state.focused) {
    event.preventDefault();
    return closeFocus();
  }
  if (target.closest("textarea, select, input, summary, .lesson") || !state.result) return;
  const arrow = ARROWS[event.key];
  if (arrow && target === dom.matrix) {
    event.preventDefault();
    return moveProbe(event.key);
  }
  const move = moveFor(event.key, target === dom.map);
  if (move) {
    event.preventDefault();
    move();
  } else if (event.key === "d" || event.key === "D") {
    event.preventDefault();
    toggleCompareView();
  } else if (event.key === "k" || event.key === "K") {
    event.preventDefault();
    toggleSelectedHead();
  } else if (event.key === "Enter" && !state.focused && !target.closest("button, a")) {
    event.preventDefault();
    openFocus(state.head);
  }
}

/** Back, Forward or an edited URL: show the view it names, asking the server only for what changed. */
export function showView(view) {
  if (view.text === undefined) return;
  const shown = state.result?.request;
  const shownB = state.compare.result ? state.compare.textB : null;
  restoreView(view);
  const wantedB = state.compare.open ? state.compare.draftB : null;
  const sentenceChanged = !shown || shown.text !== state.draft || shown.model !== state.model ||
    shown.prepend_bos !== state.prependBos || shownB !== wantedB || knockoutChanged(shown);
  // A request still in flight asked for the entry the user just left: ask again, for this one (look aborts it).
  if (sentenceChanged || state.status === "loading") look();
  else if (state.result.sink_aware !== state.sinkAware) relabel();
  else showLayer();
  countDraft({ now: true });
  schedule();
}

/** Put a permalink's view into state (the draft falls back to `fallbackText`, the first preset). */
export function restoreView(view, fallbackText = state.draft) {
  Object.assign(state, { prependBos: view.prependBos, sinkAware: view.sinkAware, focused: view.focused,
    mapMode: view.mapMode || "sentence" });
  if (view.layer !== undefined) state.layer = view.layer;
  if (view.head !== undefined) state.head = view.head;
  if (view.model) state.model = view.model;  // checked against /api/models once they are known
  state.draft = view.text !== undefined ? view.text : fallbackText;
  state.compare.open = Boolean(view.compare);
  if (view.compare) Object.assign(state.compare, { draftB: view.compare.textB, view: view.compare.view });
  restoreKnockout(view);
  state.linkNote = "";
  for (const why of view.linkIgnored || []) noteLink(`The link's ${why}: it was left out.`);
}

// ---- the sentence ----

export function editDraft(text) {
  state.draft = text;
  countDraft();
  schedule();  // the stale marker
}

export function lookAt(text = state.draft) {
  state.draft = text;
  state.linkNote = "";
  countDraft({ now: true });
  look();
}

export function setModel(name) {
  state.model = name;
  lookAt();
}

export function setPrependBos(on) {
  state.prependBos = on;
  lookAt();
}

export function setSinkAware(on) {
  state.sinkAware = on;
  relabel();
}

// ---- the lesson ----

export function setHideLabels(on) {
  state.lesson.hideLabels = on;
  schedule();
}

export const lessonHandlers = {
  onPredict(id, field, value) {
    if (state.lesson.revealed[id]) return;  // locked once revealed: a revealed answer is not re-graded
    state.lesson.predictions[id] = { ...state.lesson.predictions[id], [field]: value };
    schedule();
  },
  onReveal(id) {
    state.lesson.revealed[id] = true;
    // The labels were hidden so the student could predict; with every answer out, there is nothing left to guess.
    const open = EXPERIMENTS.filter((experiment) => !blockedBecause(experiment, state.result, state.glossary));
    if (open.every((experiment) => state.lesson.revealed[experiment.id])) state.lesson.hideLabels = false;
    schedule();
  },
  onShowMe(id) {
    const { showMe } = id === LESSON_ID ? compareLessonSolution(state)
      : experimentOf(id).solve(state.result, lessonDims(state.result.n_layer, state.result.n_head), state.glossary);
    setLayer(showMe.layer);
    if (showMe.focused) openFocus(showMe.head);
    else closeFocus();
  },
  onLoadPair() {
    choosePair(LESSON_PAIR);
  },
};

// ---- helpers ----

const ARROWS = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };

/** What a key does where it is pressed: the grid moves by rows (its columns), a studied head and the map (last
 *  layer on top) by layers; PageUp/PageDown change the layer anywhere. */
function moveFor(key, onMap) {
  const { layer, head, focused } = state;
  const byLayer = focused || onMap;
  const columns = byLayer ? 1 : gridColumns();
  return {
    ArrowLeft: () => selectHead(head - 1, { moveFocus: !onMap }),
    ArrowRight: () => selectHead(head + 1, { moveFocus: !onMap }),
    ArrowUp: () => (byLayer ? setLayer(layer + 1) : selectHead(head - columns >= 0 ? head - columns : head)),
    ArrowDown: () => (byLayer ? setLayer(layer - 1)
      : selectHead(head + columns < state.result.n_head ? head + columns : head)),
    PageUp: () => setLayer(layer + 1),
    PageDown: () => setLayer(layer - 1),
    Home: () => selectHead(0, { moveFocus: !onMap }),
    End: () => selectHead(state.result.n_head - 1, { moveFocus: !onMap }),
  }[key];
}

function gridColumns() {
  return getComputedStyle(dom.grid).gridTemplateColumns.split(" ").filter(Boolean).length || 1;
}

function thumbButton(head) {
  return dom.grid.querySelector(`.thumb[data-head="${head}"] .thumb-open`);
}
