// The atlas lines the page shows: what a head usually does, beside what it does on this sentence.
import { test } from "node:test";
import assert from "node:assert/strict";

import { atlasHead, atlasKey, broadcastersLine, corpusSummary, countedLine, detectorRows, differsHere, literatureOf,
  mapCell, mapCellText, NO_REASON_SENT, outsideRange, percent, profileOf, rangeText, usualJob, usuallyHere, verdictSign }
  from "../../static/atlas.js";

const induction = { consensus: "induction", consensus_share: 0.8797, consensus_count: 152, consensus_of: 173,
                    usual: true, usually: "induction on 88% of 173 items where it could show" };
const mixed = { consensus: "mixed", consensus_share: 0.41, consensus_count: 98, consensus_of: 239, usual: false,
                usually: "no usual job: most often mixed, on 41% of 239 items" };

// As /api/atlas serves them (why_not_here); the words are the server's, the page only places them.
const whyNotHere = { "duplicate-token": "it repeats nothing", "induction": "it repeats nothing",
                     "long-range": "it is short" };

test("a head whose usual job cannot show on this sentence says why, in the server's words", () => {
  const canShow = { "long-range": true, "duplicate-token": false, "induction": false };
  assert.equal(usuallyHere(induction, "broadcaster", canShow, whyNotHere),
               "usually induction (88%); here: broadcaster — it repeats nothing");
});

test("an atlas without the server's reasons still says that the sentence gives the job nothing to do", () => {
  const canShow = { "long-range": true, "duplicate-token": false, "induction": false };
  for (const reasons of [undefined, {}]) {
    assert.equal(usuallyHere(induction, "broadcaster", canShow, reasons),
                 `usually induction (88%); here: broadcaster — ${NO_REASON_SENT}`);
  }
});

test("a head doing something else where its job could show gives no excuse", () => {
  const canShow = { "long-range": true, "duplicate-token": true, "induction": true };
  assert.equal(usuallyHere(induction, "broadcaster", canShow, whyNotHere), "usually induction (88%); here: broadcaster");
  assert.equal(usuallyHere(induction, "induction", canShow, whyNotHere), "usually induction (88%); here too");
});

test("a long-range head on a short sentence is excused by its length", () => {
  const head = { ...induction, consensus: "long-range" };
  assert.equal(usuallyHere(head, "local", { "long-range": false }, whyNotHere),
               "usually long-range (88%); here: local — it is short");
});

test("a head with no usual job says so, and nothing is excused", () => {
  assert.equal(usualJob(mixed), "no usual job (most often mixed, 41%)");
  assert.equal(usuallyHere(mixed, "diagonal", { "induction": false }, whyNotHere), "no usual job (most often mixed, 41%); here: diagonal");
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
               "This sentence: 3 broadcasters in layer 0; over the 229 corpus sentences: 1–4 (mean 2.0)");
  assert.equal(broadcastersLine(atlas, 1, 1),
               "This sentence: 1 broadcaster in layer 1; over the 229 corpus sentences: 1 (mean 1.0)");
  assert.equal(broadcastersLine(null, 1, 0), "This sentence: 0 broadcasters in layer 1");
});

test("the request key names the model and both toggles", () => {
  assert.equal(atlasKey("gpt2 small&x", true, false), "model=gpt2+small%26x&prepend_bos=1&sink_aware=0");
});

// ---- the evidence the focused head shows ----

const atlasOf = (extra = {}) => ({
  items: 239, sink_aware: false,
  rules: { induction: "items where at least 3 tokens repeat an earlier one, and the probe", "long-range":
    "items of at least 16 tokens", "duplicate-token": "items where at least 3 tokens repeat an earlier one, and the probe",
  sink_aware: "an item on which a head leaves nothing off the first token counts as broadcaster for it" },
  ...extra,
});

test("a role that needs repeats says it was counted only where it could show", () => {
  assert.equal(countedLine(atlasOf(), induction),
    "induction is counted only where it could show: on 173 of the 239 items (items where at least 3 tokens repeat " +
    "an earlier one, and the probe).");
});

test("a role every item can show is counted on every item, and the sink-aware rule is said when it applies", () => {
  assert.equal(countedLine(atlasOf(), mixed), "mixed is counted on every item (239).");
  assert.equal(countedLine(atlasOf({ sink_aware: true }), mixed), "mixed is counted on every item (239); first " +
    "column set aside: an item on which a head leaves nothing off the first token counts as broadcaster for it.");
});

test("the label profile lists only labels the head got, largest first, ties by name", () => {
  const head = { profile: { broadcaster: 0.25, diagonal: 0.5, local: 0, induction: 0.25 } };
  assert.deepEqual(profileOf(head), [["diagonal", 0.5], ["broadcaster", 0.25], ["induction", 0.25]]);
});

test("the detector rows are TransformerLens's three scores over the corpus and on the probe", () => {
  const head = { detector: { previous_token: { corpus: 0.9, probe: 0.8 }, duplicate_token: { corpus: 0.1, probe: 0 },
                             induction: { corpus: 0.2, probe: 0.95 } } };
  assert.deepEqual(detectorRows(head), [["previous-token", 0.9, 0.8], ["duplicate-token", 0.1, 0],
                                        ["induction", 0.2, 0.95]]);
});

test("a thumbnail marks a head only where this sentence labels it otherwise", () => {
  assert.equal(differsHere(induction, "broadcaster"), true);
  assert.equal(differsHere(induction, "induction"), false);
  assert.equal(differsHere(null, "induction"), false);
  assert.equal(differsHere(induction, null), false);
  assert.equal(differsHere(mixed, "diagonal"), false, "no usual job, nothing to differ from");
});

test("the map fills a cell by its consistency", () => {
  assert.deepEqual(mapCell(induction), { label: "induction", fill: 0.8797, usual: true });
});

test("a layer's corpus range reads as mean and range, and a count outside it is found", () => {
  assert.equal(rangeText({ mean: 2.04, min: 1, max: 4 }), "2.0 (1–4)");
  assert.equal(rangeText({ mean: 1, min: 1, max: 1 }), "1.0 (1)");
  assert.equal(outsideRange({ min: 1, max: 4 }, 5), true);
  assert.equal(outsideRange({ min: 1, max: 4 }, 0), true);
  assert.equal(outsideRange({ min: 1, max: 4 }, 4), false);
});

test("a literature verdict has a sign, not only a colour", () => {
  assert.deepEqual(["agrees", "disagrees", "not-checked", "odd"].map(verdictSign), ["✓", "✗", "—", "?"]);
});

test("the literature of a head is empty unless the atlas has it", () => {
  const atlas = { literature: { heads: [[[], [{ role: "induction" }]]] } };
  assert.deepEqual(literatureOf(atlas, 0, 1), [{ role: "induction" }]);
  assert.deepEqual(literatureOf(atlas, 0, 0), []);
  assert.deepEqual(literatureOf({ literature: null }, 0, 1), []);
  assert.equal(atlasHead(null, 0, 0), null);
});

test("the corpus summary says how many heads have a usual job and how each label was counted", () => {
  const atlas = atlasOf({ summary: { usual_heads: 140, heads: 144 }, corpus_items: 229, probe_items: 10 });
  assert.equal(corpusSummary(atlas), "140 of 144 heads have a usual job over 239 items (229 sentences and 10 " +
    "repeated random-token sequences). Each label is counted where it could show — duplicate-token: items where at " +
    "least 3 tokens repeat an earlier one, and the probe; induction likewise; long-range: items of at least 16 tokens; every other label: every item.");
});
