/* The focused head with heads knocked out: its toggle, its change from the pattern with every head, and a switch
   between the knocked-out run, the run with every head (the clean run knockout.js fetches beside it) and their
   difference on diff.js's diverging scale (knocked out − every head), with its colour bar in the legend. */

import { visibleToken } from "./attention.js";
import { comparisonOf } from "./compare.js";
import { differenceMatrix, drawDivergingBar, identityAlignment, niceLimit, paintDifference } from "./diff.js";
import { MatrixPainter } from "./matrix.js";
import { hasHead, headName } from "./knockout_heads.js";
import { knockoutBlocked, setKnockoutView, shownHeads, toggleSelectedHead } from "./knockout.js";
import { signedText } from "./surprise.js";
import { button, element } from "./dom.js";

const OUT_GLYPH = "⊘";
const KEPT_LAYERS = 3;  // layers of difference matrices kept, so stepping between heads does not recompute
const VIEW_NAMES = { ablated: "knocked out", clean: "every head", diff: "difference" };

const differences = { key: "", layers: new Map() };  // shown answer → layer → [(T × T) knocked out − clean per head]
const geometryPainter = new MatrixPainter();  // only for the focused matrix's geometry, which drawFocus laid out

/** The toggle and change into the focus bar's tools, the view switch into its modes, the colour bar into the legend. */
export function buildKnockoutFocus(dom) {
  const focusToggle = button("ko-toggle ko-focus-toggle", "", toggleSelectedHead);
  focusToggle.append(element("span", "ko-glyph", OUT_GLYPH), element("span", "ko-focus-label"));
  const focusChange = element("span", "ko-focus-change muted");
  dom.focusTools.append(focusToggle, focusChange);
  const radios = Object.fromEntries(Object.entries(VIEW_NAMES).map(([view, name]) => {
    const input = element("input");
    Object.assign(input, { type: "radio", name: "knockout-view", value: view, id: `ko-view-${view}` });
    input.addEventListener("change", () => setKnockoutView(view));
    return [view, { input, label: element("label", "", input, ` ${name}`) }];
  }));
  const modes = element("span", "ko-modes", ...Object.values(radios).map(({ label }) => label));
  modes.setAttribute("role", "radiogroup");
  modes.setAttribute("aria-label", "The focused head shows");
  dom.focusModes.append(modes);
  const diffMin = element("span");
  const diffMax = element("span");
  const diffBar = drawDivergingBar(element("canvas", "colour-bar"));
  diffBar.setAttribute("aria-hidden", "true");
  const diffLegend = element("span", "ko-diff-legend", diffMin, diffBar, diffMax,
    element("span", "muted", "knocked out − every head: red more without the heads, blue less, white no change"));
  dom.legend.append(diffLegend);
  return { focusToggle, focusChange, modes, radios, diffLegend, diffMin, diffMax };
}

/** The view the focused head is drawn in: the chosen one when it can be shown, else the knocked-out run. */
export function focusedView(state) {
  const ready = state.knockout.clean && shownHeads(state).length && !comparisonOf(state) &&
    state.knockout.clean.attention.has(state.layer) && state.attention?.has(state.layer);
  return ready ? state.knockout.view : "ablated";
}

/** What drawFocus draws from: in the clean view, the run with every head (its attention and its labels). */
export function focusedRun(state) {
  if (focusedView(state) !== "clean") return state;
  const { clean } = state.knockout;
  return { ...state, result: clean.result, attention: clean.attention, resultId: `${state.resultId}clean` };
}

/** The focus bar's toggle, view switch and change, in every focused view (compare's too), and the legend's bar. */
export function drawFocusBar(parts, state) {
  const { layer, head, result } = state;
  if (!result) return;
  const name = headName(layer, head);
  const out = hasHead(state.knockout.heads, layer, head);
  const blocked = knockoutBlocked(state);
  parts.focusToggle.setAttribute("aria-pressed", String(out));
  parts.focusToggle.setAttribute("aria-label", `Knock out head ${name}`);
  parts.focusToggle.querySelector(".ko-focus-label").textContent = out ? "Knocked out" : "Knock out";
  parts.focusToggle.title = blocked || (out ? `Head ${name} is knocked out: press to restore it (K)`
    : `Knock out head ${name} (K)`);
  parts.focusToggle.disabled = Boolean(blocked);
  const view = focusedView(state);
  const canSwitch = Boolean(state.knockout.clean) && shownHeads(state).length > 0 && !comparisonOf(state);
  parts.modes.hidden = !canSwitch;
  for (const [key, { input }] of Object.entries(parts.radios)) input.checked = key === view;
  const change = result.heads[layer][head].change;
  parts.focusChange.textContent = change === undefined ? "" : `Δ${change.toFixed(3)} from every head`;
  parts.focusChange.dataset.change = change === undefined ? "" : String(change);
  parts.diffLegend.hidden = !state.focused || view !== "diff";
  if (parts.diffLegend.hidden) return;
  const limit = layerLimit(state, layer);
  parts.diffMin.textContent = `−${limit}`;
  parts.diffMax.textContent = `+${limit}`;
}

/** In the difference view, the difference painted over the matrix drawFocus laid out (same geometry, so hovering,
 *  the arrow keys and cellAt work on it unchanged), and the tooltip's numbers of both runs. */
export function drawKnockoutFocus(elements, state) {
  const { layer, head, result } = state;
  const view = focusedView(state);
  const { canvas, tooltip } = elements;
  tooltip.classList.toggle("ko-wide", view === "diff");
  if (view !== "diff" || !state.attention.has(layer)) return;
  const tokens = result.tokens;
  const n = tokens.length;
  const context = canvas.getContext("2d");
  const geometry = geometryPainter.geometry(context, tokens, Number(canvas.dataset.cell));
  const probe = state.probe && state.probe.query < n && state.probe.key < n ? state.probe : null;
  const limit = layerLimit(state, layer);
  paintDifference(context, geometry, { difference: layerDifferences(state, layer)[head], n, labels: tokens, limit,
    probe });
  canvas.setAttribute("aria-label", `Layer ${layer} head ${head}, knocked out minus every head, on a scale from ` +
    `−${limit} (blue, less without the heads) to +${limit} (red, more). Arrow keys move the probed cell.`);
  if (!probe) return;
  const { query, key } = probe;
  const lines = key > query ? [["change", "masked: a token cannot see later tokens"]] : (() => {
    const ablated = state.attention.value(layer, head, query, key);
    const clean = state.knockout.clean.attention.value(layer, head, query, key);
    return [["every head", clean.toFixed(4)], ["knocked out", ablated.toFixed(4)],
      ["change", signedText(ablated - clean, 4)]];
  })();
  tooltip.replaceChildren(...[["query", `${query} “${visibleToken(tokens[query])}”`],
    ["key", `${key} “${visibleToken(tokens[key])}”`], ...lines].map(([label, value]) =>
    element("div", "", element("span", "key-name", label), element("span", "key-value", value))));
}

/** Every head's knocked out − clean of `layer`, computed once per shown answer and layer. */
function layerDifferences(state, layer) {
  const key = `${state.resultId}`;
  if (differences.key !== key) Object.assign(differences, { key, layers: new Map() });
  let matrices = differences.layers.get(layer);
  if (!matrices) {
    const { attention } = state;
    const clean = state.knockout.clean.attention;
    const alignment = identityAlignment(state.result.n_tokens);
    matrices = Array.from({ length: state.result.n_head }, (_, head) => differenceMatrix(
      (query) => attention.row(layer, head, query, false), (query) => clean.row(layer, head, query, false), alignment));
    differences.layers.set(layer, matrices);
    if (differences.layers.size > KEPT_LAYERS) differences.layers.delete(differences.layers.keys().next().value);
  }
  return matrices;
}

/** One round end for a layer's difference scale, so its heads' colours compare. */
function layerLimit(state, layer) {
  let largest = 0;
  for (const matrix of layerDifferences(state, layer)) {
    for (const value of matrix) if (Math.abs(value) > largest) largest = Math.abs(value);  // NaN compares false
  }
  return niceLimit(largest);
}
