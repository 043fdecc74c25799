// How the page writes numbers and lists.
import { test } from "node:test";
import assert from "node:assert/strict";

import { clip, closed, count, listed, percent, plural, probability } from "../../static/format.js";

test("numbers", () => {
  assert.equal(percent(0.876), "88%");
  assert.equal(count(30000), "30,000");
  assert.equal(plural(1, "token"), "1 token");
  assert.equal(plural(1024, "token"), "1,024 tokens");
  assert.equal(probability(1 / 3), "0.3333");
});

test("lists and sentences", () => {
  assert.equal(listed([1, 5, 7]), "1, 5 and 7");
  assert.equal(listed([3]), "3");
  assert.equal(closed("of them."), "of them.");
  assert.equal(closed("of them"), "of them.");
  assert.equal(clip("🎉🎉🎉", 2), "🎉…");
});
