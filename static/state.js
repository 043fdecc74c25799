/* The page's one `state` object and its frame. Handlers change state and call schedule(); once per animation
   frame the layout functions build whatever structure the state's shape needs (a thumbnail per head, a card per
   experiment), then the draw functions update the page from state and only read it. Feature modules add their
   own with onLayout/onDraw. The test flag `data-ready` is written here and nowhere else. */

export const state = {
  glossary: null,  // from /api/models: labels and scores with their meanings, bos_token, empty_row_mass, scored_from_tokens
  models: [],  // /api/models entries
  model: null,  // the chosen model's name
  draft: "",  // what the sentence box holds
  prependBos: false,
  sinkAware: false,
  layer: 0,
  head: 0,  // the selected head; studied when `focused`
  focused: false,
  probe: null,  // {query, key}: the cell under the pointer or the keyboard cursor in the focused view
  mapHover: null,  // {layer, head} under the pointer on the all-layers map
  mapMode: "sentence",  // which of the map's modes draws it (map.js)
  atlas: { key: null, status: "none", data: null, message: "", controller: null },  // the head atlas (atlas.js)
  status: "starting",  // starting | loading | relabelling | ready | error | empty
  error: "",
  linkNote: "",  // what the page did with a link's values it could not take (a layer it does not have, say)
  result: null,  // the /api/attention answer (tokens, labels), without its packed numbers; + request
  resultId: 0,  // changes whenever `attention` does
  attention: null,  // AttentionStore of the layers fetched so far
  count: { key: "", nTokens: null, maxTokens: null, error: "", pending: false },  // the draft's live token count
  lesson: { predictions: {}, revealed: {}, hideLabels: false },
  compare: {  // compare mode (compare.js): sentence B beside A; `result` and `attention` above stay A's
    open: false,  // the second box is shown, and Look compares
    draftB: "",  // what B's box holds
    textB: "",  // B as shown (or being computed)
    view: "side",  // the grid: "side" (A and B in each thumbnail) or "diff" (A − B)
    result: null,  // {b, attentionB, heads, alignment}: /api/compare's answer beyond A's part
    query: null,  // the aligned query whose rows the bar charts show; null: the focused head's peak row
    probe: null,  // {query, key} aligned: the cell under the pointer in the focused compare view
  },
  knockout: {  // knocked-out heads (knockout.js): `result` and `attention` above are then the run without them
    heads: [],  // [[layer, head], …] sorted: what the next request knocks out (result.request.ablate: the shown)
    view: "ablated",  // the focused view: "ablated" (knocked out), "clean" or "diff" (knocked out − clean)
    clean: null,  // {result, attention}: the same sentence with every head, fetched beside a knocked-out one
    note: "",  // why heads of a link were not knocked out
    probe: null,  // the position of the log-probability strip under the pointer or the keyboard
  },
};

const layouts = [];
const drawers = [];
const readyChecks = [];  // functions that say whether their part of the page has settled
const afterFrame = [];  // one-off callbacks for the end of the next frame (moving keyboard focus, say)
let framePending = false;

export function onLayout(layout) {
  layouts.push(layout);
}

export function onDraw(draw) {
  drawers.push(draw);
}

export function onReadyCheck(check) {
  readyChecks.push(check);
}

/** Say what the page did with a value it could not take (shown under the sentence until the next Look). */
export function noteLink(text) {
  state.linkNote = state.linkNote ? `${state.linkNote} ${text}` : text;
}

/** Ask for a frame; `then` runs after it has drawn (the DOM then matches the state). */
export function schedule(then) {
  if (then) afterFrame.push(then);
  writeReady(false);
  if (framePending) return;
  framePending = true;
  requestAnimationFrame(frame);
}

/** Re-check whether the page has settled, after something outside a frame finished (a URL written). */
export function updateReady() {
  if (!framePending) writeReady(readyChecks.every((check) => check(state)));
}

function frame() {
  framePending = false;
  for (const layout of layouts) layout(state);
  for (const draw of drawers) draw(state);
  for (const callback of afterFrame.splice(0)) callback();
  updateReady();
}

/** `data-ready` is "true" once the view matches the state and nothing is on its way: what tests wait for. */
function writeReady(ready) {
  const value = String(ready);
  if (document.body.dataset.ready !== value) document.body.dataset.ready = value;
}

// ---- pure helpers ----

export function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

/** The model entry of `state.model`, or null. */
export function currentModel({ models, model }) {
  return models.find((entry) => entry.name === model) || null;
}

/** Whether a sentence box holds something other than the sentence shown (B's box, while comparing). */
export function isStale({ result, draft, compare }) {
  if (!result) return false;
  return draft !== result.request.text || (compare.open && compare.draftB !== (compare.result ? compare.textB : ""));
}
