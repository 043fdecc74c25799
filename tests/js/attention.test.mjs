// The attention store: decoding the server's packed triangles, the one sink-aware renormalisation, and pooling.
import { test } from "node:test";
import assert from "node:assert/strict";

import { AttentionStore, EMPTY_ROW, SET_ASIDE, decodeUint16, poolRows, withoutFirst } from "../../static/attention.js";

const EMPTY_ROW_MASS = 1e-6;  // what /api/models sends as empty_row_mass

function packed(rows, scale = 65535) {  // one layer, one head: rows of the lower triangle, as the server packs them
  const values = new Uint16Array(rows.flat().map((p) => Math.round(p * scale)));
  const bytes = new Uint8Array(values.buffer);
  return { encoding: "uint16-tril-base64", scale, shape: [1, 1, rows.length, rows.length],
    data: Buffer.from(bytes).toString("base64") };
}

test("decodeUint16 reads little-endian uint16 from base64", () => {
  const bytes = Uint8Array.from([0x01, 0x00, 0xff, 0xff, 0x34, 0x12]);
  assert.deepEqual(Array.from(decodeUint16(Buffer.from(bytes).toString("base64"))), [1, 65535, 0x1234]);
});

test("a packed head reads back within the quantisation step, zero above the diagonal", () => {
  const rows = [[1], [0.25, 0.75], [0.5, 0.125, 0.375]];
  const store = new AttentionStore(1, 3, EMPTY_ROW_MASS);
  store.add(packed(rows), [4]);
  assert.ok(store.has(4) && !store.has(0));
  for (const [query, row] of rows.entries()) {
    row.forEach((p, key) => assert.ok(Math.abs(store.value(4, 0, query, key) - p) <= 0.5 / 65535));
  }
  assert.equal(store.value(4, 0, 0, 2), 0);
});

test("the sink-aware row sets the first key aside and rescales the rest to sum to one", () => {
  const shown = withoutFirst(Float32Array.from([0.6, 0.1, 0.3]), EMPTY_ROW_MASS);
  assert.deepEqual(Array.from(shown, (v) => Number(v.toFixed(6))), [0, 0.25, 0.75]);
});

test("a row with nothing off the first key is a pure sink: no numbers to rescale, marked when painted", () => {
  assert.equal(withoutFirst(Float32Array.from([1, 0, 5e-7]), EMPTY_ROW_MASS), null);
  const store = new AttentionStore(1, 3, EMPTY_ROW_MASS);
  store.add(packed([[1], [1, 0], [1, 0, 0]]), [0]);
  assert.deepEqual(Array.from(store.row(0, 0, 2, true)), [0, 0, 0]);
  assert.deepEqual(Array.from(store.shownRow(0, 0, 2, true)), [SET_ASIDE, EMPTY_ROW, EMPTY_ROW]);
  assert.deepEqual(Array.from(store.shownRow(0, 0, 2, false)), [1, 0, 0]);
  assert.deepEqual(store.topKeys(0, 0, 2, true, 5), [], "a pure sink row attends to nothing worth listing");
});

test("top keys leave out keys with nothing rather than pad the list with zeros", () => {
  const store = new AttentionStore(1, 4, EMPTY_ROW_MASS);
  store.add(packed([[1], [1, 0], [0.5, 0.5, 0], [0.7, 0, 0.3, 0]]), [0]);
  assert.deepEqual(store.topKeys(0, 0, 3, false, 5).map(({ key }) => key), [0, 2]);
});

test("pooling keeps each block's largest value, so a thin diagonal survives shrinking", () => {
  const rows = Array.from({ length: 4 }, (_, q) => Array.from({ length: q + 1 }, (_, k) => (k === q ? 1 : 0)));
  const pooled = Array.from(poolRows(rows, 2));
  assert.deepEqual(pooled.map((v) => (Number.isNaN(v) ? "masked" : v)), [1, "masked", 0, 1]);
});

test("pooling ranks the non-values below every probability: a block shows a probability if it has one", () => {
  const rows = [[SET_ASIDE], [SET_ASIDE, EMPTY_ROW], [SET_ASIDE, 0.2, 0.8], [SET_ASIDE, EMPTY_ROW, EMPTY_ROW, EMPTY_ROW]];
  const pooled = Array.from(poolRows(rows, 2));
  assert.equal(pooled[0], SET_ASIDE, "the first column's block with a pure-sink cell shows the set-aside column");
  assert.ok(Number.isNaN(pooled[1]), "above the diagonal stays masked");
  assert.equal(Math.fround(pooled[2]), Math.fround(0.2));
  assert.equal(Math.fround(pooled[3]), Math.fround(0.8));
});
