/* The knock-out lesson: "Which heads does the model need to continue a repeated phrase? Knock them out and
   predict what happens to its guess for the second half." One card in the lesson panel, built like lesson.js's
   (same classes, predict → reveal), checked against the measured change in log-probability over the repeat
   (surprise.js guessEffect). A reveal holds for the heads knocked out when it was made: knock out others and
   the card asks again. */

import { comparisonOf } from "./compare.js";
import { headList, headsKey } from "./knockout_heads.js";
import { knockoutBlocked, shownHeads } from "./knockout.js";
import { EFFECT_NATS, guessEffect, repeatPositions, signedText } from "./surprise.js";
import { plural } from "./format.js";
import { schedule, state } from "./state.js";
import { element } from "./dom.js";

export const LESSON_ID = "knockout-repeat";
const MIN_REPEAT = 2;  // positions a repeat must give before a mean over them says anything
const EFFECT_TEXT = {
  worse: "much worse: the repeated tokens become much less expected",
  same: "about the same",
  better: "better: the repeated tokens become more expected",
};

/** Append the card to `container`; `page` has the page's setLayer, openFocus and lookAt, and the preset's text. */
export function buildKnockoutLesson(container, page) {
  const card = element("section", "experiment");
  card.dataset.experiment = LESSON_ID;
  const number = container.querySelectorAll(".experiment").length + 1;
  const heading = element("h3", "", `${number}. Which heads continue a repeat?`);
  const question = element("p", "question", "Which heads does the model need to continue a repeated phrase? " +
    "Knock them out and predict what happens to its guess for the second half.");
  const blocked = element("p", "blocked");
  const select = element("select");
  select.id = `predict-${LESSON_ID}-effect`;
  select.append(new Option("— your prediction —", ""));
  for (const [value, text] of Object.entries(EFFECT_TEXT)) select.append(new Option(text, value));
  select.addEventListener("change", () => predict(select.value));
  const label = element("label", "", "Its guess for the second half gets");
  label.htmlFor = select.id;
  const heads = element("p", "ko-lesson-heads");
  const load = element("button", "load-pair", "Load the repeat");
  load.type = "button";
  load.addEventListener("click", () => page.lookAt(page.repeatedPhrase));
  const reveal = element("button", "reveal", "Reveal");
  reveal.type = "button";
  reveal.addEventListener("click", revealAnswer);
  const hint = element("span", "hint");
  const showMe = element("button", "show-me", "Show me");
  showMe.type = "button";
  showMe.addEventListener("click", () => {
    const { showMe: where } = lessonSolution(state);
    page.setLayer(where.layer);
    page.openFocus(where.head);
  });
  const verdict = element("p", "verdict");
  const answer = element("p", "answer");
  const why = element("p", "why");
  const outcome = element("div", "outcome", verdict, answer, why, showMe);
  outcome.setAttribute("aria-live", "polite");
  card.append(heading, question, blocked, element("div", "predictions", element("div", "field", label, select)), heads,
    element("div", "actions", load, reveal, hint), outcome);
  container.append(card);
  return { select, blocked, heads, load, reveal, hint, outcome, verdict, answer, why };
}

export function drawKnockoutLesson(card, state) {
  const predicted = state.lesson.predictions[LESSON_ID]?.effect || "";
  if (card.select.value !== predicted) card.select.value = predicted;
  const { result } = state;
  const shown = shownHeads(state);
  const blocked = blockedBecause(state);
  const settled = state.status === "ready" && Boolean(result);
  const measured = settled && !blocked && shown.length > 0 && Boolean(result.prediction);
  const revealed = measured && state.lesson.revealed[LESSON_ID] === headsKey(shown);
  card.blocked.hidden = !blocked;
  card.blocked.textContent = blocked;
  card.load.hidden = !settled || repeatPositions(result.ids).length >= MIN_REPEAT;
  card.select.disabled = revealed || Boolean(knockoutBlocked(state));
  card.heads.textContent = !settled || blocked ? "" : shown.length ? `Knocked out now: ${headList(shown)}.`
    : "Knock out one or more heads first: ⊘ on a thumbnail, or K on the selected head.";
  card.reveal.disabled = !predicted || !measured;
  card.reveal.hidden = revealed;
  card.hint.hidden = Boolean(predicted) || revealed;
  card.hint.textContent = "Predict first";
  card.outcome.hidden = !revealed;
  if (!revealed) return;
  const solution = lessonSolution(state);
  const right = solution.answer === predicted;
  card.verdict.textContent = right ? "✓ Right." : "✗ Not this time.";
  card.verdict.className = `verdict ${right ? "right" : "wrong"}`;
  card.answer.textContent = solution.text;
  card.why.textContent = solution.why;
}

/** The answer for the knock-out on show: the effect on the repeat's guesses, in words, and where to look. */
export function lessonSolution(state) {
  const { result } = state;
  const shown = shownHeads(state);
  const effect = guessEffect(result.prediction, repeatPositions(result.ids));
  const n = effect.positions.length;
  const text = `Without ${headList(shown)}, over the ${plural(n, "token")} of the repeat the log-probability of ` +
    `the right next token changed by ${signedText(effect.meanChange)} on average (a change of ${EFFECT_NATS} or ` +
    `more either way counts as much). The model gave the right token p ≥ 0.5 at ${effect.rightClean} of ${n} ` +
    `with every head, and at ${effect.rightAblated} of ${n} without. Answer: ${EFFECT_TEXT[effect.effect]}.`;
  const why = effect.effect === "worse"
    ? "Why: continuing a repeat is an induction circuit's job: a previous-token head writes each token's " +
      "predecessor into it, and an induction head in a later layer finds the earlier copy of the current token " +
      "and copies what came after it. The heads you knocked out are on that path: each later head's Δ shows " +
      "which patterns fell apart."
    : "Why: the repeat is carried by an induction circuit — a previous-token head feeding induction heads in a " +
      "later layer. The heads you knocked out are not on that path, or other heads do the same job. Look for " +
      "heads labelled induction, and for a previous-token head in an earlier layer.";
  return { answer: effect.effect, text, why, showMe: mostChanged(result, shown) };
}

// ---- helpers ----

function predict(value) {
  const shown = shownHeads(state);
  if (state.lesson.revealed[LESSON_ID] === headsKey(shown) && shown.length) return;  // locked once revealed
  state.lesson.predictions[LESSON_ID] = { effect: value };
  schedule();
}

function revealAnswer() {
  state.lesson.revealed[LESSON_ID] = headsKey(shownHeads(state));
  schedule();
}

function blockedBecause(state) {
  const { result } = state;
  if (!result) return "";
  const cannot = knockoutBlocked(state);
  if (cannot) return cannot;
  if (comparisonOf(state)) return "This works on one sentence: close the comparison first.";
  if (repeatPositions(result.ids).length < MIN_REPEAT) {
    return "This sentence repeats no phrase: load the repeated phrase (or type a phrase twice).";
  }
  return "";
}

/** The head whose pattern changed most (a later one reading the knocked-out heads), else the first knocked out. */
function mostChanged(result, shown) {
  let best = { layer: shown[0][0], head: shown[0][1], change: 0 };
  result.heads.forEach((heads, layer) => heads.forEach(({ change = 0 }, head) => {
    if (change > best.change) best = { layer, head, change };
  }));
  return best;
}
