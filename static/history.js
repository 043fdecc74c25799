/* The URL follows the view shown. After each frame the view's permalink is written in a task of its own
   (history.replaceState can take milliseconds, and no pixel waits on it). Opening a head pushes a history
   entry, so the browser's Back returns to the grid; Esc and "All heads" go back through that same entry when
   nothing was pushed after it, and push the grid as a new entry when something was. Knocking heads out or
   restoring them pushes an entry too, so Back undoes it (and Back never leaves the page for that).
   Only a sentence the server answered is ever written: a text that failed stays in the box, not in the URL. */

import { permalinkHash, readPermalink } from "./permalink.js";
import { onDraw, onReadyCheck, state, updateReady } from "./state.js";

const FOCUS_ENTRY = "twelve-heads:focus";  // history.state of the entry a focused head pushed
const STEP_ENTRY = "twelve-heads:step";  // ... of the entry any other step pushed (knocking heads out)

let pushNext = null;  // the next write makes a new entry, with this history.state
let writeQueued = false;
let awaitingBack = false;  // history.back() was called to leave a focused head; its popstate is ours

onDraw(queueWrite);  // reads state only; the write itself happens after the frame
onReadyCheck(() => !writeQueued && !awaitingBack);

/** The next URL written (by the frame this handler schedules) gets an entry of its own: a focused head's. */
export function pushView() {
  pushNext = FOCUS_ENTRY;
}

/** The next URL written gets an entry of its own, which Back undoes (heads knocked out or restored: the URL changes
 *  when the server has answered). */
export function pushStep() {
  pushNext = STEP_ENTRY;
}

/** The step's request failed: its entry is not pushed, nor is the next unrelated change's. */
export function dropPush() {
  pushNext = null;
}

/** Leave a focused head through the history entry it pushed, if nothing was pushed after it; else the grid gets an
 *  entry of its own (Back then returns to the head, as it was left). The state has already changed; the popstate
 *  that follows only rewrites the grid's entry with what is shown now. */
export function backOutOfFocus() {
  if (history.state !== FOCUS_ENTRY) {
    pushNext = STEP_ENTRY;
    return false;
  }
  awaitingBack = true;
  history.back();
  return true;
}

/** Back, Forward or an edited hash: `onView(view)` gets what the URL now says. */
export function listenHistory(onView) {
  window.addEventListener("popstate", () => {
    pushNext = null;  // a step still waiting for its answer is overtaken by the entry the user went to
    if (awaitingBack) {
      awaitingBack = false;
      queueWrite();
      updateReady();
      return;
    }
    onView(readPermalink(location.hash));
  });
}

/** The view to write: the sentence the server answered (with the toggles it was answered with), never the draft. */
export function shownView({ result, layer, head, focused, compare, mapMode }) {
  if (!result) return null;
  const { request } = result;
  const compared = compare.open && compare.result ? { open: true, textB: compare.textB, view: compare.view } : undefined;
  return { text: request.text, model: request.model, prependBos: request.prepend_bos, sinkAware: result.sink_aware,
    layer, head, focused, compare: compared, knockedOut: request.ablate || [], mapMode };
}

// ---- helpers ----

function queueWrite() {
  if (writeQueued || awaitingBack || wantedUrl() === currentUrl()) return;
  writeQueued = true;
  setTimeout(write);
}

function write() {
  writeQueued = false;
  const wanted = wantedUrl();
  if (wanted !== currentUrl()) {
    if (pushNext) history.pushState(pushNext, "", wanted);
    else history.replaceState(history.state, "", wanted);
  }
  pushNext = null;
  updateReady();
}

function wantedUrl() {
  const view = shownView(state);
  if (view) return permalinkHash(view);
  // Nothing shown: if the URL holds a text the server refused, take it out, so a permalink never repeats it.
  return state.status === "error" && location.hash ? location.pathname : currentUrl();
}

function currentUrl() {
  return location.hash || location.pathname;
}
