// Knocking heads out, the pure parts: the heads' permalink form and its hostile values, the fit to a model's shape,
// the per-token change in log-probability and its scale, the repeat's positions and the lesson's verdict.
import { test } from "node:test";
import assert from "node:assert/strict";

import { fitHeads, formatHeads, headList, headsKey, ignoredNote, parseHeads, sameHeads, sortedHeads,
  toggledHeads } from "../../static/knockout_heads.js";
import { EFFECT_NATS, LOGPROB_LIMITS, guessEffect, logprobChanges, logprobLimit, numberText, otherPass,
  probabilityText, repeatPositions, signedText } from "../../static/surprise.js";
import { permalinkHash, readPermalink } from "../../static/permalink.js";
import "../../static/knockout.js";  // adds the permalink's "ablate" field
import { divergingIndex, ZERO_INDEX } from "../../static/diff.js";

test("heads read back from their permalink form, sorted and each once", () => {
  const heads = [[5, 1], [4, 11], [11, 5]];
  assert.equal(formatHeads(heads), "4.11,5.1,11.5");
  assert.deepEqual(parseHeads(formatHeads(heads)), { heads: sortedHeads(heads), ignored: [] });
  assert.deepEqual(parseHeads("4.11,4.11, 5.1 ").heads, [[4, 11], [5, 1]]);
  assert.equal(formatHeads([]), null);
  assert.deepEqual(parseHeads(null), { heads: [], ignored: [] });
});

test("values that are not layer.head are set aside as written, never guessed at", () => {
  const hostile = ["4", "4.", ".4", "-1.2", "4.11.2", "1e3.1", "4.1x", "<script>", "99999.1", "a".repeat(40), "4,11"];
  const { heads, ignored } = parseHeads(hostile.join(","));
  assert.deepEqual(heads, [], "no item of the hostile list is a head (\"4,11\" is two items, neither a head)");
  assert.ok(ignored.includes("<script>") && ignored.includes("99999.1") && ignored.includes("-1.2"));
  assert.ok(ignored.every((item) => item.length <= 16), "a long value is shortened in the note");
  const note = ignoredNote({ ignored: ["x"] });
  assert.equal(note, "The link's “x” is not a head and was ignored: write each knocked-out head as layer.head, like 4.11.");
});

test("the permalink carries the knocked-out heads and reads them back (knockout.js's field)", () => {
  const view = { text: "Hi", model: "demo", layer: 5, head: 1, focused: true, prependBos: true, sinkAware: false,
    knockedOut: [[4, 11], [5, 1]] };
  const hash = permalinkHash(view);
  assert.equal(new URLSearchParams(hash.slice(1)).get("ablate"), "4.11,5.1");
  assert.deepEqual(readPermalink(hash), view);
  assert.equal(new URLSearchParams(permalinkHash({ ...view, knockedOut: [] }).slice(1)).has("ablate"), false);
  const hostile = readPermalink("#text=Hi&ablate=4.11,oops,5.1.1");
  assert.deepEqual([hostile.knockedOut, hostile.knockoutIgnored], [[[4, 11]], ["oops", "5.1.1"]]);
  assert.equal(readPermalink("#text=Hi").knockedOut, undefined, "a link without the field knocks nothing out");
});

test("heads outside the model are named, the others kept", () => {
  assert.deepEqual(fitHeads([[1, 3], [2, 0], [0, 4]], 2, 4), { heads: [[1, 3]], outside: ["2.0", "0.4"] });
  assert.equal(ignoredNote({ outside: ["2.0"], model: "tiny", nLayer: 2, nHead: 4 }),
    "Head “2.0” is not in model “tiny” (layers 0–1, heads 0–3) and was ignored.");
});

test("toggling knocks a head out and back; sets compare whatever their order", () => {
  let heads = toggledHeads([], 5, 1);
  heads = toggledHeads(heads, 4, 11);
  assert.deepEqual(heads, [[4, 11], [5, 1]]);
  assert.deepEqual(toggledHeads(heads, 4, 11), [[5, 1]]);
  assert.ok(sameHeads([[5, 1], [4, 11]], [[4, 11], [5, 1]]));
  assert.equal(headsKey([[5, 1], [4, 11]]), "4.11,5.1");
  assert.equal(headList([[4, 11], [5, 1], [5, 5]]), "4.11, 5.1 and 5.5");
});

test("the change in log-probability is knocked out − clean, position by position", () => {
  const prediction = { logprob: [-1, -0.5, -2], logprob_ablated: [-1, -3.5, -1] };
  assert.deepEqual(logprobChanges(prediction), [0, -3, 1]);
});

test("the strip's scale ends on a round number that holds the largest change", () => {
  assert.equal(logprobLimit([0, -3, 1]), 5);
  assert.equal(logprobLimit([0.05]), 0.1);
  assert.equal(logprobLimit([-15.2]), 20);
  assert.equal(logprobLimit([-400]), LOGPROB_LIMITS.at(-1), "beyond the last end the colours saturate");
  assert.equal(logprobLimit([]), LOGPROB_LIMITS[0]);
  // diverging: less expected is blue (below the middle), more expected red, no change white
  assert.ok(divergingIndex(-3, 5) < ZERO_INDEX && divergingIndex(1, 5) > ZERO_INDEX);
  assert.equal(divergingIndex(0, 5), ZERO_INDEX);
});

test("the repeat's positions are where an earlier copy of the token has the same next token", () => {
  assert.deepEqual(repeatPositions([1, 2, 3, 1, 2, 3]), [3, 4]);
  assert.deepEqual(repeatPositions([9, 1, 2, 3, 7, 1, 2, 3, 4]), [5, 6]);
  assert.deepEqual(repeatPositions([1, 2, 3, 4]), []);
  assert.deepEqual(repeatPositions([5, 5, 5]), [1]);
});

test("the lesson's verdict follows the mean change over the repeat", () => {
  const positions = [2, 3];
  const clean = [-5, -5, -0.01, -0.02];
  const lost = guessEffect({ logprob: clean, logprob_ablated: [-5, -5, -9, -12] }, positions);
  assert.equal(lost.effect, "worse");
  assert.ok(Math.abs(lost.meanChange - (-20.97 / 2)) < 1e-9);
  assert.deepEqual([lost.rightClean, lost.rightAblated], [2, 0]);
  const kept = guessEffect({ logprob: clean, logprob_ablated: [-5, -5, -0.5, -0.02] }, positions);
  assert.equal(kept.effect, "same");
  const edge = guessEffect({ logprob: [0, 0, -EFFECT_NATS - 1], logprob_ablated: [0, 0, -1] }, [2]);
  assert.equal(edge.effect, "better");
  assert.equal(guessEffect({ logprob: [0], logprob_ablated: [0] }, []).effect, "same");
});

test("numbers print as the panel shows them", () => {
  assert.equal(probabilityText(0.999945), "100.0%");
  assert.equal(probabilityText(0.852762), "85.3%");
  assert.equal(probabilityText(0.0004), "0.040%");
  assert.equal(probabilityText(1e-9), "<0.001%");
  assert.equal(signedText(-11.8), "−11.80");
  assert.equal(signedText(0.25), "+0.25");
  assert.equal(signedText(-0.001), "0.00");
  assert.equal(numberText(-15.21244), "−15.2124");
});

test("a PNG of a knocked-out run is named for the heads it runs without", async () => {
  const { pictureName } = await import("../../static/png.js");
  const view = { model: "demo", layer: 5, head: 1, focused: true, text: "The cat", prependBos: false, sinkAware: false };
  assert.equal(pictureName({ ...view, knockedOut: [[4, 11], [5, 1]] }), "twelve-heads_demo_L5-H1_the-cat_without-4.11-5.1.png");
  assert.equal(pictureName(view), "twelve-heads_demo_L5-H1_the-cat.png");
});

test("a top token says where it stands in the other run, and nothing when the answer has no other run", () => {
  const clean = { id: 25979, token: " delta", p: 0.999945, p_ablated: 0.0004, rank_ablated: 41 };
  assert.deepEqual(otherPass(clean), { text: "now 0.040% · #41",
    title: "without the knocked-out heads: 0.040%, the model's guess #41" });
  const ablated = { id: 34236, token: " gamma", p: 0.852762, p_clean: 0.000001, rank_clean: 812 };
  assert.deepEqual(otherPass(ablated), { text: "was <0.001% · #812",
    title: "with every head: <0.001%, the model's guess #812" });
  assert.deepEqual(otherPass({ id: 1, token: "a", p: 0.5 }), { text: "", title: "" });  // nothing knocked out
});
