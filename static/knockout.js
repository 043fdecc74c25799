/* Knocking heads out (issue 14): which heads are out (state.knockout), the handlers that change them, the fields
   every request for the sentence then carries ("ablate"; "predict" for one sentence), the clean run fetched
   beside the knocked-out one (the focused view's clean and difference views), and the permalink's
   "ablate=4.11,5.1". The server does the work; knockout_view.js draws it. */

import { getAttention } from "./api.js";
import { AttentionStore } from "./attention.js";
import { pushStep } from "./history.js";
import { addPermalinkField } from "./permalink.js";
import { look } from "./requests.js";
import { currentModel, schedule, state } from "./state.js";
import { PERMALINK_PARAM, fitHeads, formatHeads, headsKey, ignoredNote, parseHeads, sameHeads,
  toggledHeads } from "./knockout_heads.js";

export const VIEWS = ["ablated", "clean", "diff"];  // the focused view: knocked out, clean, knocked out − clean

addPermalinkField({ param: PERMALINK_PARAM, read(value, view) {
  if (value === null) return;  // no field: nothing knocked out (restoreKnockout)
  const { heads, ignored } = parseHeads(value);
  view.knockedOut = heads;
  if (ignored.length) view.knockoutIgnored = ignored;
}, write: (view) => formatHeads(view.knockedOut) });

// ---- reading state ----

/** Why no head can be knocked out now, or "" when they can. */
export function knockoutBlocked(state) {
  const model = currentModel(state);
  if (!model) return "No model is loaded.";
  if (!model.can_intervene) {
    return `Model “${model.name}” was exported before heads could be knocked out: re-export it with ` +
      "`twelve-heads export` to knock heads out.";
  }
  if (state.result?.attention_per_layer) {
    return "This sentence is too long to knock heads out: it comes one layer at a time, and a knock-out runs the " +
      "whole sentence twice. Shorten it.";
  }
  return "";
}

/** The heads the shown answer was computed without ([] for none): what the grid, the panel and the URL show. */
export function shownHeads(state) {
  return state.result?.request.ablate || [];
}

/** The fields a request for the sentence adds: the knocked-out heads, if any (requests.js sentenceRequest). */
export function knockoutFields(state) {
  return state.knockout.heads.length ? { ablate: state.knockout.heads.map((pair) => [...pair]) } : {};
}

/** For one sentence with heads knocked out, ask for the prediction too (POST /api/compare has none). */
export function predictField(request) {
  return request.ablate ? { predict: true } : {};
}

/** Whether the URL's (or history's) heads differ from those of the answer shown: then it must be asked again. */
export function knockoutChanged(shownRequest) {
  return !sameHeads(shownRequest.ablate || [], state.knockout.heads);
}

// ---- requests ----

/** The same sentence with every head, beside a knocked-out request (null without one): the focused view's clean
 *  pattern and the difference. The server keeps a sentence's clean pass, so this costs it little. */
export async function cleanRun(request, sinkAware, signal) {
  if (!request.ablate) return null;
  const { ablate, ...clean } = request;
  const answer = await getAttention({ ...clean, sink_aware: sinkAware, format: "packed" }, signal);
  const attention = new AttentionStore(answer.n_head, answer.n_tokens, state.glossary.empty_row_mass);
  attention.add(answer.attention_packed, answer.attention_layers);
  delete answer.attention_packed;
  return { result: answer, attention };
}

/** The clean run's labels under the sink toggle's new setting (relabel): its matrices are renormalised on the
 *  page, but its labels are the server's. Resolves to the clean run with them, or null without one. */
export async function relabelClean(clean, request, sinkAware, signal) {
  if (!clean) return null;
  const { ablate, ...every } = request;
  const answer = await getAttention({ ...every, sink_aware: sinkAware, format: "summary" }, signal);
  return { ...clean, result: { ...clean.result, heads: answer.heads, layers: answer.layers,
    sink_aware: answer.sink_aware } };
}

/** Before a request: drop the heads the model cannot knock out (out of its range, or none at all), saying so. */
export function fitKnockout(state) {
  const model = currentModel(state);
  const { knockout } = state;
  if (!model || !knockout.heads.length) return;
  if (!model.can_intervene) {
    knockout.note = `${knockoutBlocked(state)} The heads ${headsKey(knockout.heads).replace(/,/g, ", ")} are not knocked out.`;
    knockout.heads = [];
    return;
  }
  const { heads, outside } = fitHeads(knockout.heads, model.n_layer, model.n_head);
  if (!outside.length) return;
  knockout.heads = heads;
  knockout.note = [knockout.note, ignoredNote({ outside, model: model.name, nLayer: model.n_layer,
    nHead: model.n_head })].filter(Boolean).join(" ");
}

/** A permalink's heads into state (handlers.js restoreView); its values that are not heads become the note. */
export function restoreKnockout(view) {
  state.knockout.heads = view.knockedOut || [];
  state.knockout.note = ignoredNote({ ignored: view.knockoutIgnored || [] });
}

// ---- handlers: change state, then look() or schedule() ----

export function toggleHead(layer, head) {
  if (knockoutBlocked(state) || !state.result) return;
  state.knockout.heads = toggledHeads(state.knockout.heads, layer, head);
  state.knockout.note = "";
  pushStep();  // Back undoes it
  look();
}

/** A thumbnail's toggle: head `head` of the layer shown, which it also selects (so that K then acts on it). */
export function toggleHeadOfLayer(head) {
  if (knockoutBlocked(state) || !state.result) return;
  state.head = head;
  toggleHead(state.layer, head);
}

/** The K key and the focused view's toggle: the selected (or studied) head. */
export function toggleSelectedHead() {
  toggleHead(state.layer, state.head);
}

export function restoreAll() {
  if (!state.knockout.heads.length) return;
  Object.assign(state.knockout, { heads: [], note: "" });
  pushStep();
  look();
}

/** Back to one sentence: compare.js keeps A's answer, which has no prediction; with heads out, ask for it. */
export function oneSentenceAgain() {
  if (shownHeads(state).length && !state.compare.open && !state.result?.prediction) look();
}

export function setKnockoutView(view) {
  if (!VIEWS.includes(view)) return;
  state.knockout.view = view;
  schedule();
}

/** The position of the log-probability strip under the pointer or the keyboard (null: none). */
export function probeStrip(position) {
  if (state.knockout.probe === position) return;
  state.knockout.probe = position;
  schedule();
}
