// How a head's label looks: every chip's ink reaches WCAG's 4.5:1 on its colour, and a head with no scored row
// is a "pure sink" or "too short", never "mixed 0%".
import { test } from "node:test";
import assert from "node:assert/strict";

import { CHIP_STYLE, PURE_SINK, TOO_SHORT, headTag, isScored, meaningOf, tagMeanings, tokensNeeded } from "../../static/labels.js";
import { drawGridNote } from "../../static/view.js";

const GLOSSARY = { labels: [{ name: "local", meaning: "most attention lands 1 to 4 tokens back." }],
  scored_from_tokens: 3 };  // what /api/models sends
const SCORED = { label: "local", confidence: 0.7, scores: { first: 0.1, self: 0.2, local: 0.7, long_range: 0 } };
const UNSCORED = { label: "mixed", confidence: 0, scores: { first: 0, self: 0, local: 0, long_range: 0 } };

function luminance(hex) {
  const channels = hex.length === 4 ? [...hex.slice(1)].map((c) => c + c) : [1, 3, 5].map((at) => hex.slice(at, at + 2));
  const [r, g, b] = channels.map((c) => parseInt(c, 16) / 255)
    .map((c) => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

test("every chip's ink has at least 4.5:1 contrast on its colour", () => {
  for (const [name, { colour, ink }] of Object.entries(CHIP_STYLE)) {
    const [light, dark] = [luminance(colour), luminance(ink)].sort((a, b) => b - a);
    const ratio = (light + 0.05) / (dark + 0.05);
    assert.ok(ratio >= 4.5, `${name}: ${ratio.toFixed(2)}:1`);
  }
});

test("a scored head keeps the server's label, its meaning and confidence", () => {
  assert.ok(isScored(SCORED));
  assert.deepEqual(headTag(SCORED, { sink_aware: false, n_tokens: 9 }, GLOSSARY),
    { name: "local", meaning: "most attention lands 1 to 4 tokens back.", confidence: 0.7, tag: false });
});

test("a head with no scored row is a pure sink when the first column is aside, else the sentence is too short", () => {
  assert.ok(!isScored(UNSCORED));
  assert.equal(headTag(UNSCORED, { sink_aware: true, n_tokens: 9 }, GLOSSARY).name, PURE_SINK);
  assert.equal(headTag(UNSCORED, { sink_aware: true, n_tokens: 2 }, GLOSSARY).name, TOO_SHORT);
  assert.equal(headTag(UNSCORED, { sink_aware: false, n_tokens: 1 }, GLOSSARY).name, TOO_SHORT);
  assert.equal(headTag(UNSCORED, { sink_aware: true, n_tokens: 9 }, GLOSSARY).confidence, null);
});

test("how short is too short is the glossary's: with scored_from_tokens 4, 3 tokens are too short", () => {
  const glossary = { ...GLOSSARY, scored_from_tokens: 4 };
  assert.equal(headTag(UNSCORED, { sink_aware: true, n_tokens: 3 }, GLOSSARY).name, PURE_SINK);
  assert.equal(headTag(UNSCORED, { sink_aware: true, n_tokens: 3 }, glossary).name, TOO_SHORT);
  assert.equal(headTag(UNSCORED, { sink_aware: true, n_tokens: 4 }, glossary).name, PURE_SINK);
  const meaning = headTag(UNSCORED, { sink_aware: true, n_tokens: 3 }, glossary).meaning;
  assert.match(meaning, /a head needs 4 tokens before /);
  assert.equal(meaning, tagMeanings(glossary)[TOO_SHORT]);
  assert.equal(meaningOf(glossary, TOO_SHORT), meaning);
});

test("the grid's note and the too-short tag give the same need, both from the glossary", () => {
  const glossary = { ...GLOSSARY, scored_from_tokens: 4 };
  const note = {};
  const result = { sink_aware: false, n_tokens: 2, heads: [[{ ...UNSCORED, reason: "two tokens give nothing to score" }]] };
  drawGridNote(note, { result, glossary });
  assert.equal(note.hidden, false);
  assert.equal(note.textContent, "No head can be labelled yet: two tokens give nothing to score. A head needs 4 " +
    "tokens before the first, the previous and the current token are three different tokens; type a longer sentence.");
  assert.ok(tagMeanings(glossary)[TOO_SHORT].endsWith(tokensNeeded(glossary)));
  assert.ok(note.textContent.includes(`A${tokensNeeded(glossary).slice(1)}`));
  drawGridNote(note, { result: { ...result, heads: [[SCORED]] }, glossary });
  assert.equal(note.hidden, true);
  assert.equal(note.textContent, "");
});

test("the grid's note draws before /api/models has answered (no glossary yet) and says nothing", () => {
  const note = { textContent: "stale" };
  drawGridNote(note, { result: null, glossary: null });
  assert.equal(note.hidden, true);
  assert.equal(note.textContent, "");
});
