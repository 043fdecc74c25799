/* The layer view: one thumbnail per head (heatmap, label chip, confidence, head number) and the layer's label
   counts. buildGrid makes the thumbnails once per model shape; drawGrid and drawCounts only read state.
   Each thumbnail keeps two empty places for feature modules: `tools` (a small control over the heatmap's empty
   corner, outside the button, since a control inside a button is not allowed) and `note` (a second line under
   the label, such as the head's usual job across a corpus). */

import { Heatmap } from "./heatmap.js";
import { confidenceText, headTag, meaningOf, paintChip, paintHeadChip, tagMeanings } from "./labels.js";
import { element } from "./dom.js";

export const THUMB_MAX_CELLS = 96;  // thumbnails of longer sentences are max-pooled down to this many cells a side
export const gridStats = { repainted: 0, ms: 0 };  // the last drawGrid: heatmaps repainted and its time (timing.js)

/** One thumbnail per head in `container`; `onPick(head)` when its button is clicked (Enter and Space too). */
export function buildGrid(container, nHead, onPick) {
  container.replaceChildren();
  return Array.from({ length: nHead }, (_, head) => {
    const thumb = element("div", "thumb");
    thumb.dataset.head = String(head);
    const button = element("button", "thumb-open");
    button.type = "button";
    const canvas = element("canvas", "thumb-map");
    const number = element("span", "head-number", `H${head}`);
    const confidence = element("span", "confidence");
    const wait = element("span", "thumb-wait", "loading…");
    // The head number and confidence sit in the masked upper triangle, always empty, so the chip below keeps the
    // whole width for labels as long as "previous-token".
    const frame = element("span", "thumb-frame", canvas, number, confidence, wait);
    const chip = element("span", "chip");
    const note = element("span", "thumb-note");
    note.dataset.slot = "thumb-note";
    button.append(frame, element("span", "thumb-caption", chip), note);
    button.addEventListener("click", () => onPick(head));
    const tools = element("span", "thumb-tools");
    tools.dataset.slot = "thumb-tools";
    thumb.append(button, tools);
    container.append(thumb);
    return { thumb, button, canvas, chip, confidence, note, tools, heatmap: new Heatmap(canvas), painted: "" };
  });
}

/** Thumbnails, chips and labels of the layer. */
export function drawGrid(thumbs, state) {
  const started = performance.now();
  const { result, attention, layer, head: selected, sinkAware, glossary } = state;
  const hide = state.lesson.hideLabels;
  const ready = Boolean(attention && attention.has(layer));
  const n = result ? Math.min(result.n_tokens, THUMB_MAX_CELLS) : 0;
  let repainted = 0;
  thumbs.forEach((thumb, head) => {
    const info = result && result.heads[layer] ? result.heads[layer][head] : null;
    thumb.button.tabIndex = head === selected ? 0 : -1;
    thumb.thumb.classList.toggle("selected", head === selected);
    thumb.thumb.classList.toggle("pending", !ready);
    const key = ready ? `${state.resultId}/${layer}/${head}/${sinkAware}/${n}` : "";
    if (ready && thumb.painted !== key) {
      thumb.heatmap.data(attention.pooled(layer, head, sinkAware, n), n).max(1).draw();
      thumb.painted = key;
      repainted++;
    }
    if (!info) {
      paintChip(thumb.chip, "hidden", "…");
      thumb.confidence.textContent = "";
      thumb.button.setAttribute("aria-label", `head ${head}`);
      return;
    }
    const tag = headTag(info, result, glossary);
    paintHeadChip(thumb.chip, tag, hide);
    thumb.thumb.dataset.tag = hide ? "" : tag.tag ? tag.name : "";
    thumb.confidence.textContent = hide ? "" : confidenceText(tag);
    const described = tag.confidence === null ? tag.name : `${tag.name}, confidence ${confidenceText(tag)}`;
    thumb.button.setAttribute("aria-label", hide ? `layer ${layer} head ${head}; label hidden`
      : `layer ${layer} head ${head}: ${described}.${ready ? "" : " Its attention is loading."} Enter to study it`);
  });
  gridStats.repainted = repainted;
  gridStats.ms = performance.now() - started;
}

/** One chip per label (the server's, in its order, and the page's tags), made once per glossary. */
export function buildCounts(container, glossary) {
  const names = [...glossary.labels.map(({ name }) => name), ...Object.keys(tagMeanings(glossary))];
  const lead = element("span", "muted");
  const chips = Object.fromEntries(names.map((name) => {
    const chip = element("span", "chip");
    chip.dataset.label = name;
    return [name, chip];
  }));
  container.replaceChildren(lead, ...Object.values(chips));
  return { lead, chips };
}

/** "Layer 3: 3 broadcaster · 2 previous-token · …", every label with at least one head. */
export function drawCounts(counts, state) {
  const { result, layer, glossary } = state;
  const hide = state.lesson.hideLabels;
  counts.lead.textContent = !result ? "" : hide ? "Labels hidden while you predict." : `Layer ${layer}:`;
  const tally = {};
  if (result && !hide) {
    for (const info of result.heads[layer]) {
      const tag = headTag(info, result, glossary);
      tally[tag.name] = (tally[tag.name] || 0) + 1;
    }
  }
  for (const [name, chip] of Object.entries(counts.chips)) {
    chip.hidden = !tally[name];
    if (!tally[name]) {
      chip.textContent = "";
      continue;
    }
    paintChip(chip, name, `${tally[name]} ${name}`, meaningOf(glossary, name));
  }
}
