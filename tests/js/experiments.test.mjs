// The lesson's experiments: each refuses a sentence too short for its question and says why, and grades a
// prediction against the solution for the sentence it is given.
import { test } from "node:test";
import assert from "node:assert/strict";

import { EXPERIMENTS, blockedBecause, experimentOf, gradeOf, lessonDims } from "../../static/experiments.js";

const GLOSSARY = { labels: [], scored_from_tokens: 3 };  // what /api/models sends, as far as the lesson reads it
const LABELS = ["broadcaster", "diagonal", "previous-token", "local", "long-range", "duplicate-token", "induction",
  "diffuse", "mixed"];

function result(nTokens, broadcasters) {  // a 3-layer, 2-head answer with the given broadcasters per layer
  const head = (label) => ({ label, confidence: 0.8, reason: `80% as ${label}`, runner_up: null,
    scores: { first: label === "broadcaster" ? 0.8 : 0.1, self: 0.1, local: 0.1, long_range: label === "long-range" ? 0.7 : 0 } });
  return {
    n_tokens: nTokens, n_layer: 3, n_head: 2, sink_aware: false,
    heads: broadcasters.map((count) => [0, 1].map((h) => head(h < count ? "broadcaster" : "long-range"))),
    layers: broadcasters.map((count) => ({ counts: Object.fromEntries(LABELS.map((name) =>
      [name, name === "broadcaster" ? count : name === "long-range" ? 2 - count : 0])) })),
  };
}

test("a 1-token sentence answers no question, and each says what it needs and why", () => {
  for (const experiment of EXPERIMENTS) {
    const why = blockedBecause(experiment, result(1, [0, 0, 0]), GLOSSARY);
    const needed = experiment.minTokens(GLOSSARY);
    assert.match(why, new RegExp(`^This needs a sentence of at least ${needed} tokens, and this one has 1 token: `));
    assert.ok(why.includes(experiment.whyShort));
  }
});

test("the reach question needs room for 5 tokens back beyond the first token; the others only 3 tokens", () => {
  assert.equal(experimentOf("reach").minTokens(GLOSSARY), 7);
  assert.equal(blockedBecause(experimentOf("reach"), result(7, [0, 0, 0]), GLOSSARY), "");
  assert.notEqual(blockedBecause(experimentOf("reach"), result(6, [0, 0, 0]), GLOSSARY), "");
  assert.equal(blockedBecause(experimentOf("shapes"), result(3, [0, 0, 0]), GLOSSARY), "");
  assert.notEqual(blockedBecause(experimentOf("shapes"), result(2, [0, 0, 0]), GLOSSARY), "");
});

test("a question about labels needs as many tokens as the glossary's scored_from_tokens", () => {
  const glossary = { ...GLOSSARY, scored_from_tokens: 4 };
  for (const id of ["shapes", "pair", "broadcasters"]) {
    assert.equal(experimentOf(id).minTokens(glossary), 4);
    assert.match(blockedBecause(experimentOf(id), result(3, [0, 0, 0]), glossary),
      /^This needs a sentence of at least 4 tokens, and this one has 3 tokens: /);
    assert.equal(blockedBecause(experimentOf(id), result(4, [0, 0, 0]), glossary), "");
  }
  assert.equal(experimentOf("reach").minTokens(glossary), 7, "the reach question's own need is its own");
});

test("broadcasters: any layer of a tie is right, and the answer says why", () => {
  const experiment = experimentOf("broadcasters");
  const solution = experiment.solve(result(9, [2, 0, 2]), lessonDims(3, 2, LABELS));
  assert.deepEqual(solution.answers, { count: "2", most: ["0", "2"] });
  assert.equal(solution.text, "Layer 2 has 2 broadcasters. Most: layers 0 and 2 (2 each).");
  assert.match(solution.why, /^Why: /);
  assert.deepEqual(gradeOf(experiment, solution, { count: "2", most: "2" }), { right: 2, of: 2 });
  assert.deepEqual(gradeOf(experiment, solution, { count: "1", most: "1" }), { right: 0, of: 2 });
});

test("every experiment's solution carries one sentence of why", () => {
  for (const experiment of EXPERIMENTS) {
    const solution = experiment.solve(result(9, [1, 2, 0]), lessonDims(3, 2, LABELS), GLOSSARY);
    assert.match(solution.why, /^Why: [^.]+(\.|\.$)/);
    assert.ok(solution.why.endsWith("."));
  }
});
