// The diff component's pure helpers: the diverging scale, the alignment, total variation and the change number.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  DIVERGING_LUT, LUT_SIZE, SCALE_LIMITS, ZERO_INDEX, alignedKeys, alignedLabels, differenceMatrix, divergingColour,
  divergingIndex, headChange, identityAlignment, makeAlignment, niceLimit, poolDifference, rowBarEntries, rowDistance,
} from "../../static/diff.js";

const rgbAt = (index) => Array.from(DIVERGING_LUT.subarray(index * 3, index * 3 + 3));
const lightness = ([r, g, b]) => 0.2126 * r + 0.7152 * g + 0.0722 * b;

// Causal rows of a head as a function query → row, from a lower-triangular list of lists.
const rowsOf = (matrix) => (query) => Float32Array.from(matrix[query]);

test("zero is the exact middle of the scale, and equal and opposite values are mirror images", () => {
  assert.equal(LUT_SIZE % 2, 1);
  assert.equal(divergingIndex(0, 1), ZERO_INDEX);
  assert.deepEqual(rgbAt(ZERO_INDEX), [0xf7, 0xf7, 0xf7]);
  for (const value of [0.01, 0.1, 0.37, 0.5, 0.99, 1]) {
    assert.equal(divergingIndex(-value, 1), LUT_SIZE - 1 - divergingIndex(value, 1), `±${value}`);
  }
  assert.equal(divergingIndex(1, 1), LUT_SIZE - 1);
  assert.equal(divergingIndex(-1, 1), 0);
});

test("the scale clamps beyond its limit and stretches with it", () => {
  assert.equal(divergingIndex(5, 1), LUT_SIZE - 1);
  assert.equal(divergingIndex(-5, 1), 0);
  assert.equal(divergingIndex(0.1, 0.1), LUT_SIZE - 1);
  assert.equal(divergingIndex(0.05, 0.1), divergingIndex(0.5, 1));
});

test("lightness falls steadily away from zero on both sides, so no two values look alike", () => {
  for (let index = ZERO_INDEX; index < LUT_SIZE - 1; index++) {
    assert.ok(lightness(rgbAt(index + 1)) < lightness(rgbAt(index)), `step ${index}`);
  }
  for (let index = ZERO_INDEX; index > 0; index--) {
    assert.ok(lightness(rgbAt(index - 1)) < lightness(rgbAt(index)), `step ${index}`);
  }
  const [redA, , blueA] = rgbAt(LUT_SIZE - 1);
  const [redB, , blueB] = rgbAt(0);
  assert.ok(redA > blueA && blueB > redB, "positive is red (more in A), negative blue (more in B)");
});

test("a masked cell has the page's masked grey, not a colour of the scale", () => {
  assert.equal(divergingColour(NaN), "rgb(224,224,224)");
  assert.equal(divergingColour(0), "rgb(247,247,247)");
});

test("niceLimit picks the first round end at or above the largest difference", () => {
  assert.equal(niceLimit(0), SCALE_LIMITS[0]);
  assert.equal(niceLimit(0.13), 0.2);
  assert.equal(niceLimit(0.2), 0.2);
  assert.equal(niceLimit(0.7), 1);
  assert.equal(niceLimit(3), 1);
});

test("total variation is half the L1 distance: 0 for equal rows, 1 for rows with no key in common", () => {
  const keys = [{ a: 0, b: 0 }, { a: 1, b: 1 }, { a: 2, b: 2 }];
  assert.equal(rowDistance([0.2, 0.3, 0.5], [0.2, 0.3, 0.5], keys), 0);
  assert.equal(rowDistance([1, 0, 0], [0, 0, 1], keys), 1);
  assert.ok(Math.abs(rowDistance([0.5, 0.5, 0], [0.5, 0.25, 0.25], keys) - 0.25) < 1e-12);
});

test("a key only one sentence has counts its whole mass in the distance", () => {
  const keys = [{ a: 0, b: 0 }, { a: 1, b: null }, { a: null, b: 1 }];
  assert.equal(rowDistance([0.5, 0.5], [0.5, 0.5], keys), 0.5);
  assert.equal(rowDistance([1, 0], [1, 0], keys), 0);
});

test("an identity alignment pairs every position with itself and sees every earlier key", () => {
  const alignment = identityAlignment(4);
  assert.equal(alignment.same, true);
  assert.deepEqual(alignedKeys(alignment, 2), [{ a: 0, b: 0 }, { a: 1, b: 1 }, { a: 2, b: 2 }]);
});

test("with an inserted token the keys interleave in order and the extra one has no partner", () => {
  // A: The big cat sat   B: The very big cat sat   ("very" inserted at B's 1)
  const alignment = makeAlignment([[0, 0], [1, 2], [2, 3], [3, 4]], 4, 5, 1);
  assert.equal(alignment.same, false);
  assert.deepEqual(Array.from(alignment.aOf), [0, -1, 1, 2, 3]);
  assert.deepEqual(Array.from(alignment.indexOfB), [0, -1, 1, 2, 3]);
  assert.deepEqual(Array.from(alignment.indexOfA), [0, 1, 2, 3]);
  assert.deepEqual(alignedKeys(alignment, 3),
    [{ a: 0, b: 0 }, { a: null, b: 1 }, { a: 1, b: 2 }, { a: 2, b: 3 }, { a: 3, b: 4 }]);
  // A one-token word replaced by two: A's 1 and B's 1, 2 are unmatched, the rest pair up shifted.
  const replaced = makeAlignment([[0, 0], [2, 3]], 3, 4, 1);
  assert.deepEqual(alignedKeys(replaced, 1), [{ a: 0, b: 0 }, { a: 1, b: null }, { a: null, b: 1 },
    { a: null, b: 2 }, { a: 2, b: 3 }]);
});

test("the change number averages only the rows from the first difference on", () => {
  const a = [[1], [0.5, 0.5], [0.2, 0.3, 0.5]];
  const b = [[1], [0.5, 0.5], [0.2, 0.1, 0.7]];
  assert.ok(Math.abs(headChange(rowsOf(a), rowsOf(b), identityAlignment(3, 2)) - 0.2) < 1e-6);
  // From row 0 on, the two identical rows dilute the same distance three ways.
  assert.ok(Math.abs(headChange(rowsOf(a), rowsOf(b), identityAlignment(3, 0)) - 0.2 / 3) < 1e-6);
  // No aligned row at or after the first difference: nothing differs that can be compared.
  assert.equal(headChange(rowsOf(a), rowsOf(b), identityAlignment(3, 3)), 0);
});

test("the difference matrix is A − B over aligned positions, masked above the diagonal", () => {
  const a = [[1], [0.25, 0.75], [0.5, 0.25, 0.25]];
  const b = [[1], [0.5, 0.5], [0.5, 0, 0.5]];
  const matrix = Array.from(differenceMatrix(rowsOf(a), rowsOf(b), identityAlignment(3)));
  assert.deepEqual(matrix.map((value) => (Number.isNaN(value) ? "masked" : value)),
    [0, "masked", "masked", -0.25, 0.25, "masked", 0, 0.25, -0.25]);
});

test("the difference matrix of unequal tokenizations has one row and column per aligned pair", () => {
  const a = [[1], [0.5, 0.5], [0.2, 0.3, 0.5]];  // A: x y z
  const b = [[1], [0.4, 0.6], [0.2, 0.2, 0.6], [0.1, 0.1, 0.1, 0.7]];  // B: x w y z
  const alignment = makeAlignment([[0, 0], [1, 2], [2, 3]], 3, 4, 1);
  const matrix = differenceMatrix(rowsOf(a), rowsOf(b), alignment);
  assert.equal(matrix.length, 9);
  assert.ok(Math.abs(matrix[1 * 3 + 0] - (0.5 - 0.2)) < 1e-6);  // A's y→x against B's y→x
  assert.ok(Math.abs(matrix[2 * 3 + 2] - (0.5 - 0.7)) < 1e-6);  // A's z→z against B's z→z
});

test("pooling a difference keeps the sign of the largest change in each block", () => {
  const m = 4;
  const matrix = new Float32Array(m * m).fill(NaN);
  for (let q = 0; q < m; q++) for (let k = 0; k <= q; k++) matrix[q * m + k] = 0.01;
  matrix[3 * m + 2] = -0.6;
  matrix[2 * m + 0] = 0.3;
  const pooled = Array.from(poolDifference(matrix, m, 2)).map((value) => Math.round(value * 100) / 100);
  assert.deepEqual(pooled.map((value) => (Number.isNaN(value) ? "masked" : value)), [0.01, "masked", 0.3, -0.6]);
});

test("axis labels and bar entries name a replaced word as A's → B's", () => {
  const alignment = identityAlignment(3, 2);
  assert.deepEqual(alignedLabels(["it", " is", " big"], ["it", " is", " small"], alignment), ["it", " is", " big→ small"]);
  const entries = rowBarEntries([0.1, 0.9], [0.4, 0.6], [{ a: 0, b: 0 }, { a: 1, b: null }, { a: null, b: 1 }],
    [" it", " big"], [" it", " small"]);
  assert.deepEqual(entries, [
    { keyA: 0, keyB: 0, label: " it", a: 0.1, b: 0.4 },
    { keyA: 1, keyB: null, label: " big", a: 0.9, b: null },
    { keyA: null, keyB: 1, label: " small", a: null, b: 0.6 },
  ]);
});
