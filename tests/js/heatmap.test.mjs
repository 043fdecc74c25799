// The colour lookup: viridis from 0 to the maximum, and a colour of its own for each kind of non-value.
import { test } from "node:test";
import assert from "node:assert/strict";

import { EMPTY_ROW, MASKED, SET_ASIDE } from "../../static/attention.js";
import { EMPTY_ROW_RGB, MASKED_RGB, SET_ASIDE_RGB, VIRIDIS, colourOf, cssColour, lutIndex } from "../../static/heatmap.js";

const hex = (rgb) => `#${rgb.map((c) => c.toString(16).padStart(2, "0")).join("")}`;

test("the ends of the scale are viridis's ends", () => {
  assert.equal(hex(colourOf(0)), "#440154");
  assert.equal(hex(colourOf(1)), "#fde725");
  assert.equal(hex(colourOf(0.5)), "#21918c");
  assert.equal(VIRIDIS.length, 256 * 3);
});

test("values are scaled by the maximum and clamped to the table", () => {
  assert.equal(lutIndex(0.25, 0.5), lutIndex(0.5, 1));
  assert.equal(lutIndex(2, 1), 255);
  assert.equal(lutIndex(-0.5, 1), 0);
});

test("masked, set-aside and pure-sink cells each have their own colour, none of them on the scale", () => {
  assert.deepEqual(colourOf(MASKED), MASKED_RGB);
  assert.deepEqual(colourOf(SET_ASIDE), SET_ASIDE_RGB);
  assert.deepEqual(colourOf(EMPTY_ROW), EMPTY_ROW_RGB);
  const special = [MASKED_RGB, SET_ASIDE_RGB, EMPTY_ROW_RGB].map(hex);
  assert.equal(new Set(special).size, 3);
  for (let index = 0; index < 256; index++) {
    const rgb = [...VIRIDIS.slice(index * 3, index * 3 + 3)];
    for (const other of [MASKED_RGB, SET_ASIDE_RGB, EMPTY_ROW_RGB]) {
      const distance = Math.hypot(...rgb.map((c, at) => c - other[at]));
      assert.ok(distance > 40, `viridis step ${index} is close to ${hex(other)}`);
    }
  }
  assert.equal(cssColour(SET_ASIDE), `rgb(${SET_ASIDE_RGB.join(",")})`);
});
