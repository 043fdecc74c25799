/* Drawing the page around the heads: the model picker and synthetic banner, the sentence box with its live
   token count, the presets, the token chips, the status and error lines, the layer bar, the legend and the
   label key. build* functions make structure when its shape changes; draw* functions only read state. */

import { visibleToken } from "./attention.js";
import { count, plural } from "./format.js";
import { TOO_SHORT, headTag, paintChip, tagMeanings, tokensNeeded } from "./labels.js";
import { THUMB_MAX_CELLS } from "./grid.js";
import { currentModel, isStale } from "./state.js";
import { bytesOf, characterPieces } from "./tokens.js";

const LONG_TOKENS = 256;  // from here a sentence takes seconds, and the status says so

/** One option per model, made once the models are known. */
export function buildModels(select, models) {
  select.replaceChildren(...models.map((model) => {
    const option = new Option(model.error ? `${model.name} (unavailable)` : modelTitle(model), model.name);
    option.disabled = Boolean(model.error);
    if (model.error) option.title = model.error;
    return option;
  }));
}

export function drawModels(elements, state) {
  if (state.model && elements.model.value !== state.model) elements.model.value = state.model;
  elements.modelPicker.hidden = state.models.length < 2;
  const current = currentModel(state);
  elements.modelName.hidden = state.models.length >= 2 || !current;
  elements.modelName.textContent = current ? `Model: ${modelTitle(current)}` : "";
  const synthetic = (state.result && state.result.synthetic) || (current && current.synthetic);
  elements.banner.hidden = !synthetic;
  elements.banner.textContent = synthetic ? `Synthetic model: “${state.model}” is not GPT-2. It is a synthetic model ` +
    "with planted heads: its weights were set by hand so that some heads have known jobs. What it shows says " +
    "nothing about the real GPT-2." : "";
}

export function drawSentence(elements, state) {
  if (elements.text.value !== state.draft) elements.text.value = state.draft;
  elements.prependBos.checked = state.prependBos;
  elements.sinkAware.checked = state.sinkAware;
  elements.look.disabled = state.status === "starting";
  const stale = isStale(state) && state.status !== "loading";
  elements.text.classList.toggle("edited", stale);
  elements.status.textContent = statusText(state, stale);
  elements.status.classList.toggle("stale", stale && !busyText(state));
  elements.error.hidden = state.status !== "error";
  elements.error.textContent = state.status === "error" ? state.error : "";
  elements.linkNote.hidden = !state.linkNote;
  elements.linkNote.textContent = state.linkNote;
  document.body.dataset.status = state.status;
  document.body.classList.toggle("stale", stale);
  drawCount(elements.draftCount, state.count, state.status === "error" ? state.error : null);
  const shown = state.result ? state.result.request.text : null;
  for (const button of elements.presets.children) {
    const active = button.dataset.text === shown;
    button.setAttribute("aria-pressed", String(active));
  }
}

/** The chips of the sentence shown, made once per result: special tokens and the pieces of split characters
 *  look different and say what they are. */
export function buildTokens(elements, result, glossary) {
  const pieces = characterPieces(result.tokens, result.offsets, result.request.text);
  elements.tokens.replaceChildren(...result.tokens.map((token, index) =>
    tokenChip(token, index, result.ids[index], pieces[index], glossary.bos_token)));
  elements.fragmentNote.hidden = !pieces.some(Boolean);
}

export function drawTokens(elements, state) {
  const { result } = state;
  elements.tokens.hidden = !result;
  elements.tokens.classList.toggle("stale", isStale(state));
  elements.tokenCount.textContent = result ? `${plural(result.n_tokens, "token")}:` : "";
  if (!result) elements.fragmentNote.hidden = true;
}

export function drawLayerBar(elements, state, nLayer) {
  const slider = elements.layer;
  slider.max = String(Math.max(0, nLayer - 1));
  if (slider.value !== String(state.layer)) slider.value = String(state.layer);
  slider.disabled = nLayer <= 1 || !state.result;
  elements.layerValue.textContent = `${state.layer} / ${nLayer - 1}`;
  slider.setAttribute("aria-valuetext", `layer ${state.layer} of ${nLayer - 1}`);
  const long = state.result && state.result.n_tokens > THUMB_MAX_CELLS;
  const sinkAware = Boolean(state.result && state.result.sink_aware);
  elements.poolNote.textContent = long ? `· ${state.result.n_tokens} tokens: each thumbnail pixel shows the largest ` +
    "value of a block of cells; study a head to see every cell" : "";
  elements.setAsideKey.hidden = !sinkAware;
  elements.emptyRowKey.hidden = !sinkAware;
}

/** Above the grid: why a sentence's heads carry no label at all. */
export function drawGridNote(element, state) {
  const { result, glossary } = state;
  const tooShort = Boolean(result) && result.heads.every((layer) => layer.every((info) =>
    headTag(info, result, glossary).name === TOO_SHORT));
  element.hidden = !tooShort;
  if (!tooShort) {
    element.textContent = "";
    return;
  }
  const needed = tokensNeeded(glossary);
  element.textContent = `No head can be labelled yet: ${result.heads[0][0].reason}. ` +
    `${needed[0].toUpperCase()}${needed.slice(1)}; type a longer sentence.`;
}

export function drawEmpty(elements, state) {
  const empty = state.status === "empty" || (!state.result && state.status === "error");
  elements.empty.hidden = !empty;
  elements.empty.textContent = state.status === "empty" ? state.error
    : "Nothing to show yet: fix the problem above and press Look.";
}

/** The glossary under the map: every label (the server's, then the page's tags) as its chip, with its meaning. */
export function buildLabelKey(list, glossary) {
  const entries = [...glossary.labels, ...Object.entries(tagMeanings(glossary)).map(([name, meaning]) => ({ name, meaning }))];
  list.replaceChildren(...entries.map(({ name, meaning }) => {
    const item = document.createElement("li");
    const chip = document.createElement("span");
    paintChip(chip, name, name, meaning);
    item.append(chip);
    item.title = meaning;
    return item;
  }));
}

// ---- pure helpers ----

function statusText(state, stale) {
  const busy = busyText(state);
  if (busy) return busy;
  return stale ? "Edited: the heads below still show the sentence before. Press Look (or Enter) to see yours." : "";
}

function busyText({ status, result, attention, layer, count: draftCount }) {
  if (status === "starting") return "Loading the models…";
  if (status === "relabelling") return "Labelling the heads again…";
  if (status === "loading") {
    const n = draftCount.nTokens;
    if (!n) return "Computing every head's attention…";
    return `Computing every head's attention for ${plural(n, "token")}…${n > LONG_TOKENS ? " A sentence this long " +
      "takes a few seconds." : ""}`;
  }
  if (status === "ready" && result && attention && !attention.has(layer)) {
    return `Fetching layer ${layer}'s attention: a sentence of ${count(result.n_tokens)} tokens comes one layer at a time…`;
  }
  return "";
}

/** The draft's count under the box; its error once only: not when the alert below already says the same. */
export function drawCount(element, { nTokens, maxTokens, error, pending }, alerted = null) {
  const over = nTokens !== null && maxTokens !== null && nTokens > maxTokens;
  element.classList.toggle("over", over || Boolean(error));
  element.classList.toggle("pending", pending);
  if (error) element.textContent = error === alerted ? "" : error;
  else if (nTokens === null) element.textContent = "";
  else if (over) element.textContent = `${count(nTokens)} tokens: this model reads at most ${count(maxTokens)}`;
  else element.textContent = `${count(nTokens)} of ${count(maxTokens)} tokens`;
}

/** One token's chip (compare_view.js makes B's with it too). */
export function tokenChip(token, index, id, piece, bosToken) {
  const item = document.createElement("li");
  item.className = token === bosToken ? "token special" : piece ? "token fragment" : "token";
  const leading = token.match(/^ */)[0].length;
  if (leading) {
    const mark = document.createElement("span");
    mark.className = "space-mark";
    mark.textContent = "␣".repeat(leading);
    mark.setAttribute("aria-label", leading === 1 ? "space" : `${leading} spaces`);
    item.append(mark);
  }
  item.append(visibleToken(token.slice(leading)));
  item.title = `token ${index} · id ${id}`;
  if (token === bosToken) item.title += " · the document-boundary token, prepended";
  if (piece) {
    const bytes = bytesOf(token);
    item.title += ` · piece ${piece.piece} of ${piece.pieces} of “${piece.character}”` +
      (bytes ? ` (its bytes ${bytes})` : "");
  }
  return item;
}

function modelTitle(model) {
  const shape = model.n_layer ? ` · ${model.n_layer} layers × ${model.n_head} heads` : "";
  return `${model.name}${model.synthetic ? " (synthetic)" : ""}${shape}`;
}
