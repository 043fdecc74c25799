/* The page's one `state` object, the scheduling of draws, and the requests that fill `state.result` and
   `state.attention`. Handlers change state and call schedule(); the draw registered with onDraw runs once
   per animation frame and only reads state. */

import { AttentionStore } from "./attention.js";
import { ApiError, getAttention, getComparison } from "./api.js";
import { makeAlignment } from "./diff.js";

export const state = {
  models: [],  // /api/models entries
  model: null,  // the chosen model's name
  draft: "",  // what the sentence box holds
  text: "",  // the sentence shown (or being computed)
  prependBos: false,
  sinkAware: false,
  layer: 0,
  head: 0,  // the selected head; studied when `focused`
  focused: false,
  probe: null,  // {query, key}: the cell under the pointer or the keyboard cursor in the focused view
  status: "starting",  // starting | loading | relabelling | ready | error | empty
  error: "",
  result: null,  // the /api/attention answer (tokens, labels), without its packed numbers
  resultId: 0,  // changes whenever `attention` does
  attention: null,  // AttentionStore of the layers fetched so far
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
};

let drawPending = false;
let drawFunction = () => {};
let inflight = null;  // AbortController of the request that will replace `result`
// "a/layer" (and "b/layer" when comparing) -> promise, for long sentences fetched one layer at a time
const layerRequests = new Map();

export function onDraw(draw) {
  drawFunction = draw;
}

export function schedule() {
  document.body.dataset.ready = "false";  // until the draw this asks for has painted (tests wait on it)
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    drawFunction(state);
  });
}

// ---- requests: change state, then schedule() ----

export async function look() {
  inflight?.abort();
  const controller = (inflight = new AbortController());
  const request = { text: state.draft, model: state.model, prepend_bos: state.prependBos };
  const sameSentence = state.result && state.result.request.text === request.text &&
    state.result.request.model === request.model;
  const comparing = state.compare.open;
  state.text = request.text;
  state.compare.textB = comparing ? state.compare.draftB : "";
  state.status = "loading";
  state.probe = null;
  Object.assign(state.compare, { probe: null, query: null });
  schedule();
  try {
    let answer, comparison = null;
    if (comparing) {
      const both = await getComparison({ a: request.text, b: state.compare.textB, model: request.model,
        prepend_bos: request.prepend_bos }, controller.signal);
      answer = both.a;
      comparison = adoptComparison(both, { ...request, text: state.compare.textB });
    } else {
      answer = await getAttention({ ...request, sink_aware: state.sinkAware, format: "packed" }, controller.signal);
    }
    const attention = storeOf(answer, request);
    Object.assign(state, { result: answer, attention, resultId: state.resultId + 1, status: "ready" });
    state.compare.result = comparison;
    layerRequests.clear();
    if (!sameSentence) state.lesson.revealed = {};
    state.layer = clamp(state.layer, 0, answer.n_layer - 1);
    state.head = clamp(state.head, 0, answer.n_head - 1);
    fetchLayer(state.layer);
  } catch (error) {
    if (error.name === "AbortError") return;
    Object.assign(state, { status: "error", error: messageOf(error), result: null, attention: null, focused: false });
    state.compare.result = null;
  } finally {
    if (inflight === controller) inflight = null;
  }
  schedule();
}

/** /api/compare's answer beyond A's part: B (an /api/attention answer of its own), the alignment, the changes. */
function adoptComparison({ b, alignment, heads }, requestB) {
  const [nA, nB] = alignment.n_tokens;
  return { b, attentionB: storeOf(b, requestB), heads, raw: alignment,
    alignment: makeAlignment(alignment.pairs, nA, nB, alignment.first_difference) };
}

/** An /api/attention answer's packed numbers moved into an AttentionStore; the answer keeps its request. */
function storeOf(answer, request) {
  const attention = new AttentionStore(answer.n_head, answer.n_tokens);
  if (answer.attention_packed) attention.add(answer.attention_packed, answer.attention_layers);
  delete answer.attention_packed;
  answer.request = request;  // what later per-layer and relabelling requests must repeat (answer.model is the
  // manifest's name, which need not be the folder name the server knows the model by)
  return attention;
}

/** The sink toggle changes only the labels; the matrices are renormalised here, so fetch the summary. */
export async function relabel() {
  const request = state.result && state.result.request;
  const unchanged = request && request.text === state.draft && request.model === state.model &&
    request.prepend_bos === state.prependBos;
  if (!unchanged || inflight) return look();
  const controller = (inflight = new AbortController());
  state.status = "relabelling";
  schedule();
  try {
    const answer = await getAttention({ ...request, sink_aware: state.sinkAware, format: "summary" },
      controller.signal);
    state.result = { ...state.result, heads: answer.heads, layers: answer.layers, sink_aware: answer.sink_aware };
    state.status = "ready";
  } catch (error) {
    if (error.name === "AbortError") return;
    Object.assign(state, { status: "error", error: messageOf(error) });
  } finally {
    if (inflight === controller) inflight = null;
  }
  schedule();
}

/** Long sentences come without attention; fetch the layer on show, once (B's too when comparing). */
export function fetchLayer(layer) {
  fetchLayerOf("a", state.result, state.attention, layer);
  if (state.compare.result) fetchLayerOf("b", state.compare.result.b, state.compare.result.attentionB, layer);
}

function fetchLayerOf(side, result, attention, layer) {
  const key = `${side}/${layer}`;
  if (!result || !result.attention_per_layer || attention.has(layer) || layerRequests.has(key)) return;
  const request = getAttention({ ...result.request, sink_aware: state.sinkAware, format: "packed", layer });
  layerRequests.set(key, request);
  const current = () => state.attention === attention || state.compare.result?.attentionB === attention;
  request.then((answer) => {
    if (current()) attention.add(answer.attention_packed, answer.attention_layers);
  }).catch((error) => {
    layerRequests.delete(key);
    if (current()) Object.assign(state, { status: "error", error: messageOf(error) });
  }).finally(schedule);
}

// ---- pure helpers ----

export function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

export function messageOf(error) {
  if (error instanceof ApiError) return error.message;
  console.error(error);  // a bug in the page, not the user's doing: keep the details for whoever debugs it
  return "something went wrong in the page; reload and try again";
}
