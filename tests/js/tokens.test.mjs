// Which tokens are pieces of one character: GPT-2 splits rare characters (emoji, CJK) into byte tokens.
import { test } from "node:test";
import assert from "node:assert/strict";

import { bytesOf, characterPieces } from "../../static/tokens.js";
import { drawCount } from "../../static/view.js";

test("the three tokens of one emoji are pieces 1, 2 and 3 of it", () => {
  // "I love 🎉 parties" as GPT-2's tokenizer splits it, with its code-point offsets
  const tokens = ["I", " love", " \\xf0\\x9f", "\\x8e", "\\x89", " parties"];
  const offsets = [[0, 1], [1, 6], [6, 8], [7, 8], [7, 8], [8, 16]];
  const pieces = characterPieces(tokens, offsets, "I love 🎉 parties");
  assert.deepEqual(pieces, [null, null, { character: "🎉", piece: 1, pieces: 3 },
    { character: "🎉", piece: 2, pieces: 3 }, { character: "🎉", piece: 3, pieces: 3 }, null]);
});

test("two split characters side by side stay two groups", () => {
  const tokens = ["a", " \\xf0\\x9f\\x91", "\\x8d", "\\xf0\\x9f", "\\x8f", "\\xbd", " b"];
  const offsets = [[0, 1], [1, 3], [2, 3], [3, 4], [3, 4], [3, 4], [4, 6]];
  const characters = characterPieces(tokens, offsets, "a 👍🏽 b").map((piece) => piece && piece.character);
  assert.deepEqual(characters, [null, "👍", "👍", "🏽", "🏽", "🏽", null]);
});

test("a prepended token, with its empty span, is no piece of anything", () => {
  const pieces = characterPieces(["<|endoftext|>", "Hi"], [[0, 0], [0, 2]], "Hi");
  assert.deepEqual(pieces, [null, null]);
});

test("bytesOf lists the bytes a token shows as \\xNN", () => {
  assert.equal(bytesOf(" \\xf0\\x9f"), "f0 9f");
  assert.equal(bytesOf(" world"), "");
});

test("the draft's count says its error once: not when the alert below already says the same", () => {
  const classes = new Set();
  const line = { classList: { toggle: (name, on) => (on ? classes.add(name) : classes.delete(name)) } };
  const count = { nTokens: null, maxTokens: 1024, error: "the text has 30,000 characters", pending: false };
  drawCount(line, count, null);
  assert.equal(line.textContent, "the text has 30,000 characters");
  assert.ok(classes.has("over"));
  drawCount(line, count, "the text has 30,000 characters");
  assert.equal(line.textContent, "");
  drawCount(line, count, "another problem");
  assert.equal(line.textContent, "the text has 30,000 characters");
  drawCount(line, { ...count, error: null, nTokens: 14 }, "another problem");
  assert.equal(line.textContent, "14 of 1,024 tokens");
  assert.ok(!classes.has("over"));
});
