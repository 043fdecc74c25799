// The all-layers map's cells: as large as the map's width allows, within bounds a mouse and a finger can use.
import { test } from "node:test";
import assert from "node:assert/strict";

import { cellSize } from "../../static/map.js";

test("a desktop's 160 px map keeps 12 px cells; a phone's whole row gets cells a finger can pick", () => {
  assert.equal(cellSize(160, 12), 12);
  assert.equal(cellSize(330, 12), 24);  // 12 cells of 24 px and 13 gaps: 301 px
  assert.equal(cellSize(290, 12), 23);
  assert.ok(12 * (cellSize(290, 12) + 1) + 1 <= 290);
});

test("a map too narrow for 12 px cells, or not laid out yet, still draws them at 12 px", () => {
  assert.equal(cellSize(100, 12), 12);
  assert.equal(cellSize(0, 12), 12);
});
