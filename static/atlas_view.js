/* The head atlas on the page (atlas.js fetches it and words it): the map's second mode, "across the corpus",
   with its toggle and the atlas's summary under it; each thumbnail's usual job under this sentence's label; the
   broadcasters lesson's corpus range. The focused head's evidence is atlas_focus.js. The atlas follows the
   page's model and toggles whichever handler changed them; a model without one shows the server's message (how
   to make it) where the atlas would be. Every draw function only reads state. */

import { atlasHead, broadcastersLine, countingRules, differsHere, loadAtlas, outsideRange, rangeText, usualJob,
  usuallyHere } from "./atlas.js";
import { buildAtlasFocus } from "./atlas_focus.js";
import { CHIP_STYLE, headTag } from "./labels.js";
import { addMapMode } from "./map.js";
import { addPermalinkField } from "./permalink.js";
import { currentModel, onLayout, onReadyCheck, schedule, state } from "./state.js";
import { element } from "./dom.js";

const MAP_MODES = [["sentence", "This sentence"], ["corpus", "Across the corpus"]];
const LOADING = "Loading the atlas (what each head usually does over the reference corpus)…";
const NOT_IN_ATLAS = { colour: "#ffffff", fill: 0, text: "not in this model's atlas" };

const parts = {};  // what installAtlas made: {modeInputs, summary, summaryCount, summaryRules, literatureCount}
const lessonParts = new WeakMap();  // the broadcasters card → its corpus line and table

/** Put the atlas into the page: the map's mode switch and summary, the focused view's section, the loading. */
export function installAtlas() {
  onLayout(followSettings);
  onReadyCheck(({ atlas }) => atlas.status !== "loading");
  addMapMode("corpus", {
    caption: (result) => `each head's usual label across the corpus; the solid part of a cell is how often it ` +
      `holds (full: on every item); a dot: this sentence labels it otherwise; layer ${result.n_layer - 1} on top; ` +
      "click a head",
    unavailable: ({ atlas }) => (atlas.status === "ready" ? "" : atlas.status === "missing" ? atlas.message : LOADING),
    cell({ atlas, result, glossary }, layer, head) {
      const entry = atlasHead(atlas.data, layer, head);
      if (!entry) return NOT_IN_ATLAS;
      const info = result.heads[layer]?.[head];
      const here = info ? headTag(info, result, glossary).name : null;
      const mark = differsHere(entry, here);
      return { colour: CHIP_STYLE[entry.consensus]?.colour ?? "#fff", fill: entry.consensus_share, mark,
        text: mark ? `${entry.usually}; this sentence: ${here}` : entry.usually };
    },
  });
  buildModeSwitch(document.getElementById("map-modes"));
  buildSummary(document.getElementById("map-readout"));
  buildAtlasFocus(document.getElementById("focus-usually"), document.getElementById("focus-atlas"));
}

// The map's mode rides in the permalink as map=corpus; the sentence's own map is the default and writes nothing.
addPermalinkField({ param: "map", read(value, view) { if (value === "corpus") view.mapMode = "corpus"; },
  write: (view) => (view.mapMode === "corpus" ? "corpus" : null) });

export function setMapMode(mode) {
  state.mapMode = mode;
  schedule();
}

/** Under the map in corpus mode: how many heads have a usual job, and how the atlas counted. */
export function drawAtlasSummary(state) {
  const { atlas, mapMode, result } = state;
  for (const input of parts.modeInputs) input.checked = input.value === (mapMode === "corpus" ? "corpus" : "sentence");
  const shown = mapMode === "corpus" && atlas.status === "ready" && Boolean(result);
  parts.summary.hidden = !shown;
  if (!shown) return;
  const { usual_heads: usual, heads } = atlas.data.summary;
  const { items, corpus_items: sentences, probe_items: probes } = atlas.data;
  parts.summaryCount.textContent = `${usual} of ${heads} heads have a usual job over ${items} items ` +
    `(${sentences} sentences, ${probes} repeated random-token sequences).`;
  parts.summaryRules.textContent = countingRules(atlas.data);
  const verdicts = atlas.data.literature?.verdicts;
  parts.literatureCount.hidden = !verdicts;
  parts.literatureCount.textContent = verdicts ? `Published roles: the atlas agrees with ${verdicts.agrees}, ` +
    `disagrees with ${verdicts.disagrees}; ${verdicts["not-checked"]} are circuit roles attention cannot check ` +
    "(study a head to see its own)." : "";
}

/** Under each thumbnail's label: the head's usual job, marked where this sentence gives it another label. */
export function drawAtlasThumbs(thumbs, state) {
  const { atlas, result, layer, glossary } = state;
  const hide = state.lesson.hideLabels;
  thumbs.forEach((thumb, index) => {
    const head = atlas.status === "ready" && !hide ? atlasHead(atlas.data, layer, index) : null;
    const info = result?.heads[layer]?.[index];
    const here = info ? headTag(info, result, glossary).name : null;
    thumb.note.textContent = head ? usualJob(head) : "";
    thumb.note.classList.toggle("differs", differsHere(head, here));
    const line = head ? usuallyHere(head, here, result?.can_show, atlas.data.why_not_here) : "";
    thumb.note.title = line;
    if (head) thumb.button.setAttribute("aria-label", `${thumb.button.getAttribute("aria-label")}. ` +
      `Across the corpus: ${line}`);
  });
}

/** The broadcasters experiment, once revealed: this sentence's count beside the corpus's range, every layer. */
export function drawAtlasLesson(cards, dims, state) {
  const card = cards.broadcasters;
  if (!card) return;
  const corpus = lessonPartsOf(card);
  const { atlas, result } = state;
  const shown = !card.outcome.hidden && Boolean(result);
  corpus.line.hidden = !shown;
  corpus.table.hidden = !shown || atlas.status !== "ready";
  if (!shown) return;
  const counts = result.layers.map((layer) => layer.counts.broadcaster);
  if (atlas.status !== "ready") {
    corpus.line.textContent = atlas.status === "missing" ? `No corpus range to compare with: ${atlas.message}` : LOADING;
    return;
  }
  corpus.line.textContent = `${broadcastersLine(atlas.data, dims.last, counts[dims.last])}.`;
  corpus.rows.forEach(({ row, here, range }, layer) => {
    const broadcasters = atlas.data.layers[layer]?.broadcasters;
    row.hidden = !broadcasters || layer >= counts.length;
    if (row.hidden) return;
    here.textContent = String(counts[layer]);
    const outside = outsideRange(broadcasters, counts[layer]);
    range.textContent = `${rangeText(broadcasters)}${outside ? " · outside it" : ""}`;
    row.classList.toggle("outside", outside);
  });
}

// ---- helpers ----

/** The atlas for the page's model and toggles (fetched once per choice). A layout step, not a draw: it may start
 *  a request, and every handler that changes the model or a toggle ends in the frame that runs it. */
function followSettings(state) {
  if (!currentModel(state)) return;
  loadAtlas(state.atlas, state.model, state.prependBos, state.sinkAware, () => schedule());
}

function buildModeSwitch(container) {
  const group = element("fieldset", "map-mode-switch");
  group.append(element("legend", "visually-hidden", "The map shows"));
  parts.modeInputs = MAP_MODES.map(([value, text]) => {
    const input = element("input");
    Object.assign(input, { type: "radio", name: "map-mode", value, id: `map-mode-${value}` });
    input.addEventListener("change", () => input.checked && setMapMode(value));
    const label = element("label", "", input, ` ${text}`);
    group.append(label);
    return input;
  });
  container.append(group);
}

function buildSummary(readout) {
  parts.summaryCount = element("p", "atlas-count");
  parts.literatureCount = element("p", "atlas-literature-count muted");
  parts.summaryRules = element("p", "muted");
  const rules = element("details", "atlas-rules", element("summary", "", "How it was counted"), parts.summaryRules);
  parts.summary = element("div", "atlas-summary", parts.summaryCount, parts.literatureCount, rules);
  parts.summary.id = "atlas-summary";
  parts.summary.hidden = true;
  readout.after(parts.summary);
}

function lessonPartsOf(card) {
  if (!lessonParts.has(card)) {
    const line = element("p", "corpus-range");
    const body = element("tbody");
    const rows = card.chart.bars.map((_, layer) => {
      const here = element("td");
      const range = element("td");
      const row = element("tr", "", element("th", "", String(layer)), here, range);
      body.append(row);
      return { row, here, range };
    });
    const head = element("tr", "", element("th", "", "layer"), element("th", "", "this sentence"),
      element("th", "", "corpus: mean (min–max)"));
    const table = element("table", "corpus-table", element("thead", "", head), body);
    const details = element("details", "corpus-layers", element("summary", "", "Every layer beside the corpus"), table);
    card.answer.after(line);
    line.after(details);
    lessonParts.set(card, { line, table: details, rows });
  }
  return lessonParts.get(card);
}
