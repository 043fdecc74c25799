// The permalink round trip: every view the page can be in reads back as itself.
import { test } from "node:test";
import assert from "node:assert/strict";

import { addPermalinkField, permalinkHash, readPermalink } from "../../static/permalink.js";

test("a focused view with both toggles reads back as itself", () => {
  const view = { text: "The trophy & the suitcase #1 = it?", model: "demo", layer: 11, head: 7, focused: true,
                 prependBos: true, sinkAware: true };
  assert.deepEqual(readPermalink(permalinkHash(view)), view);
});

test("the grid view carries no head", () => {
  const view = { text: "Hi", model: "gpt2", layer: 0, head: 3, focused: false, prependBos: false, sinkAware: false };
  const back = readPermalink(permalinkHash(view));
  assert.equal(back.focused, false);
  assert.equal("head" in back, false);
});

test("a hostile hash gives no layer or head rather than a wrong one", () => {
  const view = readPermalink("#text=x&layer=-1&head=1e9&bos=yes");
  assert.equal("layer" in view, false);
  assert.equal("head" in view, false);
  assert.equal(view.prependBos, false);
});

test("a value that is not a number is named, not dropped silently; a good link names nothing", () => {
  const view = readPermalink("#text=x&layer=3.7&head=%3Cb%3E");
  assert.deepEqual(view.linkIgnored, ["layer “3.7” is not a layer number", "head “<b>” is not a head number"]);
  assert.equal("linkIgnored" in readPermalink("#text=x&layer=3&head=1"), false);
  assert.equal("linkIgnored" in readPermalink("#text=x"), false);
});

test("a field a feature module adds rides along and reads back", () => {
  addPermalinkField({ param: "ablate", read: (value, view) => { view.ablate = value ? value.split(",") : []; },
    write: (view) => (view.ablate && view.ablate.length ? view.ablate.join(",") : null) });
  const view = { text: "Hi", model: "gpt2", layer: 2, head: 4, focused: true, prependBos: false, sinkAware: false,
                 ablate: ["1.3", "2.0"] };
  assert.deepEqual(readPermalink(permalinkHash(view)), view);
  assert.deepEqual(readPermalink(permalinkHash({ ...view, ablate: [] })).ablate, []);
});
