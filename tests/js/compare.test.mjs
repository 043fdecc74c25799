// Compare mode's pure parts: the permalink with both sentences, the ranking and the lesson's answer.
import { test } from "node:test";
import assert from "node:assert/strict";

import { permalinkHash, readPermalink } from "../../static/permalink.js";

// compare.js imports state.js, which touches `document` only when a draw is scheduled: importable in node.
const { lessonSolution, rankHeads, tokenizationNote } = await import("../../static/compare.js");
const { makeAlignment } = await import("../../static/diff.js");

const heads = (changes) => changes.map((layer) => layer.map((change) => ({ change, peak: null })));

test("a compared view with the difference grid reads back as itself", () => {
  const view = { text: "The trophy is too big.", model: "demo", layer: 11, head: 3, focused: true, prependBos: false,
                 sinkAware: false, compare: { open: true, textB: "The trophy is too small & #2?", view: "diff" } };
  assert.deepEqual(readPermalink(permalinkHash(view)), view);
});

test("a view that is not comparing carries no second sentence", () => {
  const closed = { text: "x", model: "m", layer: 0, head: 0, focused: false, prependBos: false, sinkAware: false,
                   compare: { open: false, textB: "y", view: "side" } };
  assert.equal("compare" in readPermalink(permalinkHash(closed)), false);
  const notYetLooked = { ...closed, compare: { open: true, textB: "", view: "side" } };
  assert.equal(permalinkHash(notYetLooked).includes("b="), false);
});

test("heads rank by change, largest first, ties by layer then head", () => {
  const ranking = rankHeads(heads([[0.1, 0.3], [0.3, 0.05]]));
  assert.deepEqual(ranking.map(({ layer, head }) => [layer, head]), [[0, 1], [1, 0], [0, 0], [1, 1]]);
});

test("the lesson's layer is the one holding most of the top heads, and a tie accepts either", () => {
  const clear = lessonSolution(heads([[0.01, 0.02], [0.5, 0.4], [0.45, 0.03]]), 3);
  assert.deepEqual(clear.answers.layer, ["1"]);
  assert.deepEqual(clear.counts, [0, 2, 1]);
  assert.deepEqual(clear.showMe, { layer: 1, head: 0, focused: true });
  assert.match(clear.text, /^Of the 3 heads that change most, 2 are in layer 1, 1 is in layer 2\./);
  const tie = lessonSolution(heads([[0.5, 0.01], [0.4, 0.02]]), 2);
  assert.deepEqual(tie.answers.layer, ["0", "1"]);
});

test("the note says when the sentences tokenize differently and which tokens have no partner", () => {
  const raw = { n_tokens: [4, 5], first_difference: 2, compared_rows: 2, same_positions: false,
                pairs: [[0, 0], [1, 1], [2, 3], [3, 4]], unmatched_a: [], unmatched_b: [2] };
  const comparison = { raw, alignment: makeAlignment(raw.pairs, 4, 5, 2) };
  const note = tokenizationNote(comparison, ["The", " film", " good", "."], ["The", " film", " not", " good", "."]);
  assert.ok(note.startsWith("A and B tokenize differently (4 and 5 tokens): 4 positions are aligned by their " +
    "token ids; “ not” in B has no partner."), note);
  assert.match(note, /first differ at token 2 \(“ good” in A, “ not” in B\)/);
  const same = { raw: { ...raw, n_tokens: [4, 4], compared_rows: 0 }, alignment: comparison.alignment };
  assert.match(tokenizationNote(same, [], []), /^A and B are the same sentence/);
});
