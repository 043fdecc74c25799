/* The requests that fill the state: the sentence's labels and attention (look; with sentence B, the comparison),
   its labels again when the sink toggle changes (relabel), one layer at a time for long sentences (showLayer),
   and the draft's live token count (countDraft). Each changes state, then schedule(). A request that is no
   longer wanted is aborted. */

import { AttentionStore } from "./attention.js";
import { ApiError, countTokens, getAttention, getComparison } from "./api.js";
import { makeAlignment } from "./diff.js";
import { dropPush } from "./history.js";
import { clamp, noteLink, onReadyCheck, schedule, state } from "./state.js";
import { cleanRun, fitKnockout, knockoutFields, predictField, relabelClean } from "./knockout.js";

const LAYER_SETTLE_MS = 200;  // a long sentence's layer is fetched once the student stops on it, not on the way past
const COUNT_SETTLE_MS = 150;  // the live count waits for a pause in typing

let inflight = null;  // AbortController of the request that will replace `result`
const layerFetches = new Map();  // "a/layer" ("b/layer" for B) -> AbortController: long sentences, layer by layer
let layerTimer = 0;
let countTimer = 0;
let countController = null;

onReadyCheck(({ status, result, attention, layer, count }) => {
  if (count.pending) return false;
  if (status === "error" || status === "empty") return true;
  const b = state.compare.open ? state.compare.result?.attentionB : null;
  return status === "ready" && Boolean(result) && attention.has(layer) && (!b || b.has(layer));
});

/** The options every request for the shown sentence repeats. Feature modules that add request fields (knocked-out
 *  heads, say) add them here, so the per-layer and relabelling requests carry them too. */
export function sentenceRequest() {
  return { text: state.draft, model: state.model, prepend_bos: state.prependBos, ...knockoutFields(state) };
}

export async function look() {
  inflight?.abort();
  const controller = (inflight = new AbortController());
  fitKnockout(state);  // heads the model cannot knock out are dropped, with a note
  const request = sentenceRequest();
  const sameSentence = state.result && state.result.request.text === request.text &&
    state.result.request.model === request.model;
  const comparing = state.compare.open;
  const textB = comparing ? state.compare.draftB : "";
  Object.assign(state, { status: "loading", probe: null });
  Object.assign(state.compare, { probe: null, query: null });
  schedule();
  try {
    let answer, comparison = null, clean = null;
    if (comparing) {
      const { text, ...shared } = request;  // the sentence request's other fields (knocked-out heads, say) apply to both
      const both = await getComparison({ a: text, b: textB, ...shared }, controller.signal);
      answer = both.a;
      comparison = adoptComparison(both, { ...request, text: textB });
    } else {
      [answer, clean] = await Promise.all([  // with heads knocked out, the clean run comes beside (knockout.js)
        getAttention({ ...request, ...predictField(request), sink_aware: state.sinkAware, format: "packed" },
          controller.signal),
        cleanRun(request, state.sinkAware, controller.signal)]);
    }
    const attention = storeOf(answer, request);
    abortLayers(() => true);
    Object.assign(state, { result: answer, attention, resultId: state.resultId + 1, status: "ready", error: "" });
    Object.assign(state.compare, { result: comparison, textB });
    state.knockout.clean = clean;
    if (!sameSentence) state.lesson.revealed = {};
    fitView(answer);
    fetchLayer(state.layer);
  } catch (error) {
    if (error.name === "AbortError") return;
    // The last sentence shown stays (marked stale, since the box now differs): the error says what to fix.
    Object.assign(state, { status: "error", error: messageOf(error) });
    dropPush();  // the URL still shows the last answer: no history entry for a step that did not happen
  } finally {
    if (inflight === controller) inflight = null;
  }
  schedule();
}

/** The layer and head within the model answered, saying so where they were not (a link's layer 99, or a layer the
 *  model switched from had and this one has not). */
function fitView(answer) {
  for (const [what, key, count] of [["Layer", "layer", answer.n_layer], ["Head", "head", answer.n_head]]) {
    const fitted = clamp(state[key], 0, count - 1);
    if (fitted !== state[key]) {
      noteLink(`${what} ${state[key]} is not in model “${answer.model}” (${key}s 0–${count - 1}): showing ${key} ${fitted}.`);
    }
    state[key] = fitted;
  }
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
    const [answer, clean] = await Promise.all([
      getAttention({ ...request, sink_aware: state.sinkAware, format: "summary" }, controller.signal),
      relabelClean(state.knockout.clean, request, state.sinkAware, controller.signal)]);
    state.result = { ...state.result, heads: answer.heads, layers: answer.layers, sink_aware: answer.sink_aware };
    state.knockout.clean = clean;
    state.status = "ready";
  } catch (error) {
    if (error.name === "AbortError") return;
    Object.assign(state, { status: "error", error: messageOf(error) });
  } finally {
    if (inflight === controller) inflight = null;
  }
  schedule();
}

/** After the shown layer changed: a long sentence's other layers in flight are aborted, and this one is fetched
 *  once the student has stayed on it for LAYER_SETTLE_MS. */
export function showLayer() {
  const { result, attention, layer } = state;
  if (!result || !result.attention_per_layer) return;
  abortLayers((fetched) => fetched !== layer);
  clearTimeout(layerTimer);
  const b = state.compare.result?.attentionB;
  if (attention.has(layer) && (!b || b.has(layer))) return;
  layerTimer = setTimeout(() => fetchLayer(state.layer), LAYER_SETTLE_MS);
}

/** The live count of the draft's tokens, asked for after a pause in typing (or now, with `now`). */
export function countDraft({ now = false } = {}) {
  const { text, model, prepend_bos } = sentenceRequest();  // what decides how the text tokenizes
  const request = { text, model, prepend_bos };
  const key = JSON.stringify(request);
  if (key === state.count.key) return;
  clearTimeout(countTimer);
  countController?.abort();
  if (!request.text.trim()) {
    state.count = { key, nTokens: null, maxTokens: state.count.maxTokens, error: "", pending: false };
    return schedule();
  }
  state.count = { ...state.count, pending: true };
  countTimer = setTimeout(() => fetchCount(request, key), now ? 0 : COUNT_SETTLE_MS);
}

// ---- helpers ----

/** /api/compare's answer beyond A's part: B (an /api/attention answer of its own), the alignment, the changes. */
function adoptComparison({ b, alignment, heads }, requestB) {
  const [nA, nB] = alignment.n_tokens;
  return { b, attentionB: storeOf(b, requestB), heads, raw: alignment,
    alignment: makeAlignment(alignment.pairs, nA, nB, alignment.first_difference) };
}

/** An /api/attention answer's packed numbers moved into an AttentionStore; the answer keeps its request. */
function storeOf(answer, request) {
  const attention = new AttentionStore(answer.n_head, answer.n_tokens, state.glossary.empty_row_mass);
  if (answer.attention_packed) attention.add(answer.attention_packed, answer.attention_layers);
  delete answer.attention_packed;
  answer.request = request;  // what later per-layer and relabelling requests must repeat (answer.model is the
  // manifest's name, which need not be the folder name the server knows the model by)
  return attention;
}

/** A long sentence's layer, fetched once (B's too while comparing). */
function fetchLayer(layer) {
  fetchLayerOf("a", state.result, state.attention, layer);
  const comparison = state.compare.result;
  if (comparison) fetchLayerOf("b", comparison.b, comparison.attentionB, layer);
}

function fetchLayerOf(side, result, attention, layer) {
  const key = `${side}/${layer}`;
  if (!result || !result.attention_per_layer || attention.has(layer) || layerFetches.has(key)) return;
  const controller = new AbortController();
  layerFetches.set(key, controller);
  schedule();
  const current = () => state.attention === attention || state.compare.result?.attentionB === attention;
  getAttention({ ...result.request, sink_aware: side === "a" && state.sinkAware, format: "packed", layer },
    controller.signal)
    .then((answer) => {
      if (current()) attention.add(answer.attention_packed, answer.attention_layers);
    })
    .catch((error) => {
      if (error.name === "AbortError") return;
      if (current()) Object.assign(state, { status: "error", error: messageOf(error) });
    })
    .finally(() => {
      if (layerFetches.get(key) === controller) layerFetches.delete(key);
      schedule();
    });
}

function abortLayers(unwanted) {
  for (const [key, controller] of layerFetches) {
    if (!unwanted(Number(key.split("/")[1]))) continue;
    controller.abort();
    layerFetches.delete(key);
  }
}

async function fetchCount(request, key) {
  const controller = (countController = new AbortController());
  try {
    const answer = await countTokens(request, controller.signal);
    state.count = { key, nTokens: answer.n_tokens, maxTokens: answer.max_tokens, error: "", pending: false };
  } catch (error) {
    if (error.name === "AbortError") return;
    state.count = { key, nTokens: null, maxTokens: state.count.maxTokens, error: messageOf(error), pending: false };
  }
  schedule();
}

export function messageOf(error) {
  if (error instanceof ApiError) return error.message;
  console.error(error);  // a bug in the page, not the user's doing: keep the details for whoever debugs it
  return "something went wrong in the page; reload and try again";
}
