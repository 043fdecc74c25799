/* User Timing measures of the page's frames (zero cost unread): DevTools shows them, benchmarks/bench_page.py
   reads them. Only the latest of each is kept, so an hour of hovering does not grow the timeline; a
   PerformanceObserver sees all. */

import { gridStats } from "./grid.js";

const DRAW_MEASURE = "twelve-heads:draw";  // one frame's drawing; detail: layer, focused, tokens, thumbnails, gridMs
const SWITCH_MEASURE = "twelve-heads:layer-switch";  // the input that changed the layer → the frame showing it

let frameStart = 0;
let layerSwitch = null;  // {from, since}: the first layer change not yet painted; since is a performance.now() time

/** A handler changed the layer at `since` (an event's timeStamp); the switch ends with the frame that paints it. */
export function startLayerSwitch(from, since) {
  if (!layerSwitch) layerSwitch = { from, since };
}

export function beginFrame() {
  frameStart = performance.now();
}

/** The frame's last draw: record it, and the layer switch once the new layer is painted. */
export function endFrame(state) {
  const end = performance.now();
  const painted = Boolean(state.attention && state.attention.has(state.layer));
  const detail = { layer: state.layer, focused: state.focused && Boolean(state.result),
    tokens: state.result ? state.result.n_tokens : 0, thumbnails: gridStats.repainted, gridMs: gridStats.ms };
  performance.clearMeasures(DRAW_MEASURE);
  performance.measure(DRAW_MEASURE, { start: frameStart, end, detail });
  if (!layerSwitch || !painted) return;  // a long sentence's layer is still on its way: the switch goes on
  performance.clearMeasures(SWITCH_MEASURE);
  const { from, since } = layerSwitch;
  performance.measure(SWITCH_MEASURE, { start: since, end, detail: { from, to: state.layer } });
  layerSwitch = null;
}
