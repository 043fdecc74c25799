/* Drawing the page around the heads: model picker and synthetic banner, the sentence box and its token
   chips, status and error lines, the layer bar and legend. Every function here only reads state. */

import { visibleToken } from "./attention.js";
import { LABELS } from "./labels.js";
import { THUMB_MAX_CELLS } from "./grid.js";

const BOS_TOKEN = "<|endoftext|>";
const STATUS_TEXT = {
  starting: "Loading the models…",
  loading: "Computing every head's attention…",
  relabelling: "Labelling the heads again…",
  layer: "Fetching this layer's attention…",
};

export function drawModels(elements, state) {
  const names = state.models.map((model) => model.name).join("\n");
  if (elements.model.dataset.names !== names) {
    elements.model.replaceChildren(...state.models.map((model) => {
      const option = new Option(model.error ? `${model.name} (unavailable)` : modelTitle(model), model.name);
      option.disabled = Boolean(model.error);
      if (model.error) option.title = model.error;
      return option;
    }));
    elements.model.dataset.names = names;
  }
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
  const layerPending = state.result && state.attention && !state.attention.has(state.layer);
  const busy = STATUS_TEXT[state.status] || (layerPending && state.status === "ready" ? STATUS_TEXT.layer : "");
  elements.status.textContent = busy;
  elements.error.hidden = state.status !== "error";
  elements.error.textContent = state.status === "error" ? state.error : "";
  document.body.dataset.status = state.status;

  const tokens = state.result ? state.result.tokens : [];
  const key = state.result ? String(state.resultId) : "";
  if (elements.tokens.dataset.key !== key) {
    elements.tokens.replaceChildren(...tokens.map((token, index) => tokenChip(token, index, state.result.ids[index])));
    elements.tokens.dataset.key = key;
  }
  elements.tokenCount.textContent = state.result ? `${tokens.length} token${tokens.length === 1 ? "" : "s"}:` : "";
}

export function drawLayerBar(elements, state, nLayer) {
  const slider = elements.layer;
  slider.max = String(Math.max(0, nLayer - 1));
  if (slider.value !== String(state.layer)) slider.value = String(state.layer);
  slider.disabled = nLayer <= 1 || !state.result;
  elements.layerValue.textContent = `${state.layer} / ${nLayer - 1}`;
  slider.setAttribute("aria-valuetext", `layer ${state.layer} of ${nLayer - 1}`);
  const long = state.result && state.result.n_tokens > THUMB_MAX_CELLS;
  const notes = [
    state.sinkAware && "first column hidden, each row renormalised over the rest",
    long && `${state.result.n_tokens} tokens: each thumbnail pixel shows the largest value of a block of cells; ` +
      "study a head to see every cell",
  ].filter(Boolean);
  elements.poolNote.textContent = notes.map((note) => `· ${note}`).join(" ");
}

export function drawEmpty(elements, state) {
  const empty = state.status === "empty" || (!state.result && state.status === "error");
  elements.empty.hidden = !empty;
  elements.empty.textContent = state.status === "empty" ? state.error
    : "Nothing to show yet: fix the problem above and press Look.";
}

/** The glossary under the map: every label, its colour and one sentence. Built once. */
export function buildLabelKey(list) {
  list.replaceChildren(...LABELS.map(({ name, colour, meaning }) => {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.backgroundColor = colour;
    const term = document.createElement("strong");
    term.textContent = name;
    item.append(swatch, term);
    item.title = meaning;
    return item;
  }));
}

export function currentModel(state) {
  return state.models.find((model) => model.name === state.model) || null;
}

// ---- pure helpers ----

export function tokenChip(token, index, id) {
  const item = document.createElement("li");
  item.className = token === BOS_TOKEN ? "token special" : "token";
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
  return item;
}

function modelTitle(model) {
  const shape = model.n_layer ? ` · ${model.n_layer} layers × ${model.n_head} heads` : "";
  return `${model.name}${model.synthetic ? " (synthetic)" : ""}${shape}`;
}
