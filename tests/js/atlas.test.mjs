// The atlas lines the page shows: what a head usually does, beside what it does on this sentence.
import { test } from "node:test";
import assert from "node:assert/strict";

import { atlasKey, broadcastersLine, mapCellText, percent, usualJob, usuallyHere } from "../../static/atlas.js";

const induction = { consensus: "induction", consensus_share: 0.8797, consensus_count: 152, consensus_of: 173,
                    usual: true, usually: "induction on 88% of 173 items where it could show" };
const mixed = { consensus: "mixed", consensus_share: 0.41, consensus_count: 98, consensus_of: 239, usual: false,
                usually: "no usual job: most often mixed, on 41% of 239 items" };

test("a head whose usual job cannot show on this sentence says why", () => {
  const canShow = { "long-range": true, "duplicate-token": false, "induction": false };
  assert.equal(usuallyHere(induction, "broadcaster", canShow),
               "usually induction (88%); here: broadcaster — this sentence repeats too few of its tokens");
});

test("a head doing something else where its job could show gives no excuse", () => {
  const canShow = { "long-range": true, "duplicate-token": true, "induction": true };
  assert.equal(usuallyHere(induction, "broadcaster", canShow), "usually induction (88%); here: broadcaster");
  assert.equal(usuallyHere(induction, "induction", canShow), "usually induction (88%); here too");
});

test("a long-range head on a short sentence is excused by its length", () => {
  const head = { ...induction, consensus: "long-range" };
  assert.equal(usuallyHere(head, "local", { "long-range": false }),
               "usually long-range (88%); here: local — this sentence is too short for it");
});

test("a head with no usual job says so, and nothing is excused", () => {
  assert.equal(usualJob(mixed), "no usual job (most often mixed, 41%)");
  assert.equal(usuallyHere(mixed, "diagonal", { "induction": false }), "no usual job (most often mixed, 41%); here: diagonal");
});

test("no atlas, no line", () => {
  assert.equal(usuallyHere(null, "diagonal", {}), "");
});

test("a share rounds to 100% only when the head got its label on every item", () => {
  assert.equal(percent({ consensus_share: 0.9958, consensus_count: 238, consensus_of: 239 }), "99%");
  assert.equal(percent({ consensus_share: 1, consensus_count: 239, consensus_of: 239 }), "100%");
});

test("the map's hover text is the server's sentence with the head's place", () => {
  assert.equal(mapCellText(induction, 5, 5), "layer 5, head 5: induction on 88% of 173 items where it could show");
});

test("the broadcasters lesson gives this sentence's count and the corpus range", () => {
  const atlas = { corpus_items: 229, layers: [{ broadcasters: { mean: 2.04, min: 1, max: 4 } },
                                              { broadcasters: { mean: 1, min: 1, max: 1 } }] };
  assert.equal(broadcastersLine(atlas, 0, 3),
               "this sentence: 3 broadcasters in layer 0; over the 229 corpus sentences: 1–4 (mean 2.0)");
  assert.equal(broadcastersLine(atlas, 1, 1),
               "this sentence: 1 broadcaster in layer 1; over the 229 corpus sentences: 1 (mean 1.0)");
  assert.equal(broadcastersLine(null, 1, 0), "this sentence: 0 broadcasters in layer 1");
});

test("the request key names the model and both toggles", () => {
  assert.equal(atlasKey("gpt2 small&x", true, false), "model=gpt2+small%26x&prepend_bos=1&sink_aware=0");
});
