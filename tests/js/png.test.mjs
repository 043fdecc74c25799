// The downloaded pictures' file names say model, layer, head, sentence and toggles, so none overwrites another.
import { test } from "node:test";
import assert from "node:assert/strict";

import { pictureName } from "../../static/png.js";

const view = { model: "gpt2", layer: 3, head: 5, focused: false, text: "The trophy doesn't fit in the suitcase.",
  prependBos: false, sinkAware: false };

test("a layer's picture names the model, the layer and the sentence's first words", () => {
  assert.equal(pictureName(view), "twelve-heads_gpt2_L3_the-trophy-doesnt-fit-in-the.png");
});

test("a focused head and both toggles are in the name", () => {
  assert.equal(pictureName({ ...view, focused: true, prependBos: true, sinkAware: true }),
    "twelve-heads_gpt2_L3-H5_the-trophy-doesnt-fit-in-the_bos_sink.png");
});

test("two sentences give two names; odd characters never reach the file system", () => {
  assert.notEqual(pictureName(view), pictureName({ ...view, text: "The cat sat on the mat." }));
  assert.equal(pictureName({ ...view, model: "../x y", text: "🎉 ??? /etc/passwd" }),
    "twelve-heads_.._x_y_L3_etc-passwd.png");
  assert.equal(pictureName({ ...view, text: "🎉" }), "twelve-heads_gpt2_L3_text.png");
});
