/* Drawing knock-outs (knockout.js holds the state and handlers): a toggle on every thumbnail, the strip of
   knocked-out heads with restore, the layer's note, and each later head's change from its clean pattern (a number
   and a bar). The prediction under the tokens is prediction.js's, the focused view's knockout_focus.js's.
   build* make structure once; draw* only read state. */

import { comparisonOf } from "./compare.js";
import { hasHead, headName, headsKey } from "./knockout_heads.js";
import { knockoutBlocked, oneSentenceAgain, restoreAll, shownHeads, toggleHead, toggleHeadOfLayer } from "./knockout.js";
import { buildKnockoutFocus, drawFocusBar } from "./knockout_focus.js";
import { buildPrediction, drawPredictionPanel } from "./prediction.js";
import { button, element } from "./dom.js";

const OUT_GLYPH = "⊘";
const BAR_MIN_CHANGE = 0.0005;  // a change below this rounds to 0.000: no bar
const HINT = `${OUT_GLYPH} on a head (or K) knocks it out`;

// ---- build ----

/** The panel under the tokens, the layer's note, the legend's hint; the focused view's parts (`focus`). */
export function buildKnockout(dom) {
  const list = element("ul", "ko-list");
  list.setAttribute("aria-label", "Knocked-out heads");
  const restore = button("ko-restore-all", "Restore all", restoreAll);
  const bar = element("div", "ko-bar", element("span", "ko-title", "Knocked out"), list, restore);
  const note = element("p", "ko-note");
  note.setAttribute("role", "status");

  const prediction = buildPrediction();
  const panel = element("section", "ko-panel", bar, note, prediction.root);
  panel.setAttribute("aria-label", "Knocked-out heads and what the model loses");
  dom.tokenStrips.append(panel);

  const layerNote = element("p", "ko-layer-note");
  dom.gridNote.after(layerNote);
  const hint = element("span", "ko-hint muted", HINT);
  dom.legend.append(hint);
  dom.compareClose.addEventListener("click", oneSentenceAgain);  // runs after compare.js's own, registered first
  return { panel, list, restore, note, prediction, layerNote, hint, focus: buildKnockoutFocus(dom), listKey: null };
}

/** A knock-out toggle in every thumbnail's tools, a "knocked out" tag and a change mark (number and bar). */
export function buildKnockoutThumbs(thumbs) {
  for (const [head, thumb] of thumbs.entries()) {
    const toggle = button("ko-toggle", OUT_GLYPH, () => toggleHeadOfLayer(head));
    toggle.setAttribute("aria-pressed", "false");
    thumb.tools.append(toggle);
    const tag = element("span", "ko-tag", "knocked out");
    const change = element("span", "ko-change");
    thumb.chip.parentElement.append(tag, change);
    const fill = element("span", "ko-change-fill");
    const changeBar = element("span", "ko-change-bar", fill);
    thumb.canvas.parentElement.append(changeBar);
    thumb.knockout = { toggle, tag, change, changeBar, fill };
  }
}

// ---- draw ----

/** Every thumbnail's toggle, tag and change mark. */
export function drawKnockoutGrid(thumbs, state) {
  const { result, layer } = state;
  const blocked = knockoutBlocked(state);
  const shown = shownHeads(state);
  const changes = changesOf(state);
  const largest = changes ? Math.max(BAR_MIN_CHANGE, ...result.heads.flat().map(({ change }) => change)) : 1;
  for (const [head, thumb] of thumbs.entries()) {
    const { toggle, tag, change, changeBar, fill } = thumb.knockout;
    const name = headName(layer, head);
    const out = hasHead(state.knockout.heads, layer, head);
    toggle.setAttribute("aria-pressed", String(out));
    toggle.setAttribute("aria-label", `Knock out head ${name}`);
    toggle.title = blocked || (out ? `Head ${name} is knocked out: press to restore it (K)`
      : `Knock out head ${name} (K): its output becomes zero, and the page shows what the model loses`);
    toggle.disabled = Boolean(blocked) || !result;
    toggle.tabIndex = head === state.head ? 0 : -1;  // as the thumbnails: one stop, the selected head's
    const knocked = hasHead(shown, layer, head);
    thumb.thumb.classList.toggle("knocked-out", knocked);
    tag.hidden = !knocked;
    const value = changes ? result.heads[layer]?.[head]?.change : undefined;
    const marked = value !== undefined && layer > shown[0][0];
    change.hidden = !marked;
    changeBar.hidden = !marked || value < BAR_MIN_CHANGE;
    if (marked) {
      change.textContent = `Δ${value.toFixed(2)}`;
      change.classList.toggle("zero", value < BAR_MIN_CHANGE);
      change.dataset.change = String(value);
      change.title = `change ${value.toFixed(4)}: the mean total-variation distance of this head's rows from its ` +
        "pattern with every head";
      fill.style.width = `${Math.min(100, (value / largest) * 100)}%`;
    }
    const label = thumb.button.getAttribute("aria-label") || "";
    const extra = `${knocked ? "; knocked out" : ""}${marked ? `; changed ${value.toFixed(2)} by the knock-out` : ""}`;
    if (extra && !label.includes("knock")) thumb.button.setAttribute("aria-label", `${label}${extra}`);
  }
}

/** The strip of knocked-out heads, the prediction under the tokens, the layer's note, the legend's hint. */
export function drawKnockout(parts, state) {
  const heads = state.knockout.heads;
  const shown = shownHeads(state);
  const blocked = knockoutBlocked(state);
  const comparing = Boolean(comparisonOf(state));
  parts.panel.hidden = !heads.length && !state.knockout.note;
  parts.hint.hidden = !state.result || heads.length > 0;
  parts.hint.textContent = blocked || HINT;  // a model that cannot knock heads out says so where the hint would be
  drawList(parts, heads);
  parts.note.hidden = !state.knockout.note && !(heads.length && blocked) && !comparing;
  parts.note.textContent = [state.knockout.note, heads.length ? blocked : "",
    comparing && heads.length ? "Comparing: both sentences run without these heads; the prediction and each " +
      "head's change show with one sentence." : ""].filter(Boolean).join(" ");
  const { prediction } = parts;
  prediction.root.hidden = !state.result?.prediction || !shown.length || comparing;
  if (!prediction.root.hidden) drawPredictionPanel(prediction, state, shown);
  drawLayerNote(parts.layerNote, state, shown, comparing);
  drawFocusBar(parts.focus, state);
}

// ---- the parts ----

function drawList(parts, heads) {
  const key = headsKey(heads);
  parts.restore.hidden = heads.length < 1;
  if (parts.listKey === key) return;
  parts.listKey = key;
  parts.list.replaceChildren(...heads.map(([layer, head]) => {
    const name = headName(layer, head);
    const restore = button("ko-restore", "", () => toggleHead(layer, head));
    restore.append(`${name} `, element("span", "ko-restore-mark", "↺"));
    restore.setAttribute("aria-label", `Restore head ${name}`);
    restore.title = `Restore head ${name} (layer ${layer}, head ${head})`;
    restore.dataset.head = name;
    return element("li", "", restore);
  }));
}

function drawLayerNote(note, state, shown, comparing) {
  const { result, layer } = state;
  const first = shown.length ? shown[0][0] : null;
  note.hidden = first === null || comparing || !result;
  if (note.hidden) return;
  note.textContent = layer < first
    ? `Nothing in layer ${layer} changed: a layer's attention depends only on the layers before it, and the first ` +
      `knocked-out head is in layer ${first}.`
    : layer === first
      ? `Layer ${layer}: the knocked-out heads still compute their patterns (shown, marked); only later layers read ` +
        "what they no longer write."
      : `Layer ${layer} is recomputed without the knocked-out heads: each thumbnail shows its new pattern and Δ, its ` +
        "mean total-variation distance from the pattern with every head.";
}

// ---- numbers ----

/** Whether the shown answer carries each head's change (a knock-out on one sentence). */
function changesOf(state) {
  const { result } = state;
  return Boolean(result && shownHeads(state).length && !comparisonOf(state) && result.heads[0]?.[0]?.change !== undefined);
}
