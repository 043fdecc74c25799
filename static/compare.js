/* Compare mode: sentence B beside sentence A, the same heads on a minimal pair, and how much each one changed.
   state.result and state.attention stay A's, so everything built for one sentence keeps working;
   state.compare (state.js) adds B, the alignment and each head's change from POST /api/compare.
   Here are the pairs offered as presets, the handlers of the compare controls, and the pure helpers the compare
   views draw from: the ranking of heads, the lesson's answer and the words of the tokenization note. */

import { addPermalinkField } from "./permalink.js";
import { countDraft, look, relabel } from "./requests.js";
import { schedule, state } from "./state.js";

export const PAIRS = [
  { name: "Trophy big / small", a: "The trophy doesn't fit in the suitcase because it is too big.",
    b: "The trophy doesn't fit in the suitcase because it is too small." },
  { name: "Pronoun she / he", a: "Alice gave Bob the book because she had finished reading it.",
    b: "Alice gave Bob the book because he had finished reading it." },
  { name: "Agreement key / keys", a: "The key to the old cabinets is on the table.",
    b: "The keys to the old cabinets are on the table." },
  { name: "Broken repeat", a: "The cat sat on the mat. The cat sat on the mat.",
    b: "The cat sat on the mat. The dog sat on the mat." },
  { name: "Negation (one token more)", a: "The film was good, and we stayed until the end.",
    b: "The film was not good, and we stayed until the end." },
];
export const LESSON_PAIR = PAIRS[0];  // "Which layer holds the heads that change most when 'big' becomes 'small'?"
export const LESSON_ID = "compare-layer";

// The permalink carries B while comparing: &b=…, and &diff=1 for the A − B grid.
addPermalinkField({ param: "b", read(value, view) {
  if (value !== null) view.compare = { open: true, textB: value, view: "side" };
}, write: ({ compare }) => (compare?.open && compare.textB ? compare.textB : null) });
addPermalinkField({ param: "diff", read(value, view) {
  if (view.compare && value === "1") view.compare.view = "diff";
}, write: ({ compare }) => (compare?.open && compare.textB && compare.view === "diff" ? "1" : null) });

// ---- handlers: change state, then schedule() (or look()) ----

/** "Compare with…": open B's box, filled with A so that the student changes one word. */
export function openCompare() {
  const { compare } = state;
  compare.open = true;
  if (!compare.draftB) compare.draftB = state.draft;
  if (state.sinkAware) {  // differences are of the raw attention; the sink view would hide a column of them
    state.sinkAware = false;
    relabel();
  }
  schedule();
}

/** Back to one sentence: A's part of the comparison is exactly what /api/attention answers, so it stays. */
export function closeCompare() {
  Object.assign(state.compare, { open: false, result: null, textB: "", query: null, probe: null });
  schedule();
}

export function choosePair(pair) {
  state.draft = pair.a;
  state.compare.open = true;
  state.compare.draftB = pair.b;
  if (state.sinkAware) state.sinkAware = false;
  countDraft({ now: true });
  look();
}

export function setCompareView(view) {
  state.compare.view = view;
  schedule();
}

/** The aligned query whose two rows the bar charts show. */
export function pickQuery(index) {
  const pairs = state.compare.result?.alignment.pairs;
  if (!pairs) return;
  state.compare.query = Math.max(0, Math.min(pairs.length - 1, index));
  schedule();
}

export function probeCompare(probe) {
  const before = state.compare.probe;
  if (before === probe || (before && probe && before.query === probe.query && before.key === probe.key)) return;
  state.compare.probe = probe;
  schedule();
}

// ---- reading the comparison (pure) ----

/** The comparison on show, or null: compare mode with its answer in. */
export function comparisonOf(state) {
  return state.compare.open && state.compare.result && state.result ? state.compare.result : null;
}

/** Every head, largest change first (ties: lower layer, then lower head): [{layer, head, change, peak}]. */
export function rankHeads(heads) {
  return heads.flatMap((layer, l) => layer.map(({ change, peak }, h) => ({ layer: l, head: h, change, peak })))
    .sort((x, y) => y.change - x.change || x.layer - y.layer || x.head - y.head);
}

/** The aligned query the bar charts show for a head: the picked one, else the row where the head changed most,
 *  else (nothing compared) the last row. */
export function shownQuery(compare, headChange) {
  const { alignment } = compare.result;
  if (compare.query !== null) return compare.query;
  if (headChange.peak) return alignment.indexOfA[headChange.peak.query_a];
  return alignment.pairs.length - 1;
}

/** The lesson's answer: how many of the `top` heads that change most sit in each layer; the layer(s) with the
 *  most of them hold "the heads that change most". */
export function lessonSolution(heads, top) {
  const ranking = rankHeads(heads).slice(0, top);
  const counts = heads.map(() => 0);
  for (const { layer } of ranking) counts[layer]++;
  const most = Math.max(...counts);
  const layers = counts.flatMap((count, layer) => (count === most ? [layer] : []));
  const [first] = ranking;
  const spread = counts.map((count, layer) => ({ count, layer })).filter(({ count }) => count)
    .sort((x, y) => y.count - x.count || x.layer - y.layer).slice(0, 3)
    .map(({ count, layer }) => `${count} ${count === 1 ? "is" : "are"} in layer ${layer}`).join(", ");
  const text = first.change === 0 ? "No head changes: the sentences do not differ where a head could see it."
    : `Of the ${top} heads that change most, ${spread}. The most: layer ${first.layer} head ${first.head} ` +
      `(change ${first.change.toFixed(3)}). Answer: layer ${layers.join(" or ")}.`;
  const showMe = { layer: first.layer, head: first.head, focused: true };
  return { answers: { layer: layers.map(String) }, text, counts, showMe };
}

/** Whether the comparison on show is the lesson's pair (the experiment checks only that one). */
export function showsLessonPair(state) {
  return Boolean(comparisonOf(state)) && state.result.request.text === LESSON_PAIR.a &&
    state.compare.textB === LESSON_PAIR.b;
}

/** One or two sentences saying how A and B line up and which rows the change number averages. */
export function tokenizationNote(comparison, tokensA, tokensB) {
  const { raw, alignment } = comparison;
  const [nA, nB] = raw.n_tokens;
  const first = raw.first_difference;
  if (raw.compared_rows === 0) {
    return nA === nB ? "A and B are the same sentence: change a word in B to see which heads react."
      : "One sentence only continues the other: every row they share is the same in both (a token sees only " +
        "what comes before it), so no head changes.";
  }
  const where = `They first differ at token ${first} (“${tokensA[first]}” in A, “${tokensB[first]}” in B). Each ` +
    `head's change is its mean total-variation distance over the ${raw.compared_rows} aligned row` +
    `${raw.compared_rows === 1 ? "" : "s"} from there on; the rows before are the same in both, because a token ` +
    "sees only what comes before it.";
  if (raw.same_positions) return where;
  const alone = (side, positions, tokens) => (positions.length
    ? `${positions.map((position) => `“${tokens[position]}”`).join(" ")} in ${side}` : "");
  const unmatched = [alone("A", raw.unmatched_a, tokensA), alone("B", raw.unmatched_b, tokensB)].filter(Boolean);
  return `A and B tokenize differently (${nA} and ${nB} tokens): ${alignment.pairs.length} positions are aligned ` +
    `by their token ids; ${unmatched.join(" and ")} ${unmatched.length > 1 ? "have" : "has"} no partner. Rows are ` +
    `compared where both queries are aligned, and attention to a key without a partner counts as changed. ${where}`;
}

// ---- the controls ----

/** Wire the compare controls in `dom` (app.js's element map). `page` has the page's own openFocus and setLayer,
 *  which links in the ranking and the lesson's "Show me" use. */
export function listenCompare(dom, page) {
  dom.compareOpen.addEventListener("click", () => { openCompare(); dom.textB.focus(); });
  dom.compareClose.addEventListener("click", () => { closeCompare(); dom.text.focus(); });
  dom.textB.addEventListener("input", () => { state.compare.draftB = dom.textB.value; });
  dom.textB.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); state.compare.draftB = dom.textB.value; look(); }
  });
  for (const radio of [dom.viewSide, dom.viewDiff]) radio.addEventListener("change", () => setCompareView(radio.value));
  dom.compareQuery.addEventListener("change", () => pickQuery(Number(dom.compareQuery.value)));
  dom.rankingList.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-layer]");
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;  // new tab: the href
    event.preventDefault();
    page.setLayer(Number(link.dataset.layer));
    page.openFocus(Number(link.dataset.head));
  });
  const alignedCell = (canvas, side, event) => {
    const cell = page.cellAt(canvas, event.offsetX, event.offsetY);
    const alignment = state.compare.result?.alignment;
    if (!cell || !alignment) return null;
    const index = side === "a" ? alignment.indexOfA : side === "b" ? alignment.indexOfB : null;
    const query = index ? index[cell.query] : cell.query;
    const key = index ? index[cell.key] : cell.key;
    return query >= 0 && key >= 0 ? { query, key } : null;  // a position without a partner has no A − B
  };
  for (const [canvas, side] of [[dom.matrixA, "a"], [dom.matrixB, "b"], [dom.matrixDiff, "diff"]]) {
    canvas.addEventListener("mousemove", (event) => probeCompare(alignedCell(canvas, side, event)));
    canvas.addEventListener("mouseleave", () => probeCompare(null));
    canvas.addEventListener("click", (event) => {
      const cell = alignedCell(canvas, side, event);
      if (cell) pickQuery(cell.query);
    });
  }
  dom.matrixDiff.addEventListener("keydown", (event) => {
    const pairs = state.compare.result?.alignment.pairs;
    const step = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[event.key];
    if (!pairs || (!step && event.key !== "Enter")) return;
    event.preventDefault();
    event.stopPropagation();  // the page's arrows move between heads; here they move the probed cell
    const last = pairs.length - 1;
    const probe = state.compare.probe || { query: state.compare.query ?? last, key: 0 };
    if (event.key === "Enter") return pickQuery(probe.query);
    const clamp = (value) => Math.max(0, Math.min(last, value));
    probeCompare({ query: clamp(probe.query + step[0]), key: clamp(probe.key + step[1]) });
  });
}

/** The D key: A and B side by side, or A − B. */
export function toggleCompareView() {
  if (comparisonOf(state)) setCompareView(state.compare.view === "diff" ? "side" : "diff");
}
