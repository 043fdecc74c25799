/* The compare lesson: "Which layer holds the heads that change most when 'big' becomes 'small'? Predict before
   you reveal." One card in the lesson panel, built like lesson.js's (same classes, same predict → reveal flow,
   the predictions in state.lesson), checked against the ranking /api/compare computed for the trophy pair. */

import { LESSON_ID, LESSON_PAIR, comparisonOf, lessonSolution, showsLessonPair } from "./compare.js";
import { buildChart, drawChart } from "./lesson.js";
import { element } from "./dom.js";

/** Append the card to `container` (after buildLesson's cards); handlers: onPredict, onReveal, onShowMe, onLoadPair. */
export function buildCompareLesson(container, { nLayer }, handlers) {
  const card = element("section", "experiment");
  card.dataset.experiment = LESSON_ID;
  const number = container.querySelectorAll(".experiment").length + 1;
  const heading = element("h3", "", `${number}. Which layer reacts to one word?`);
  const question = element("p", "question", "In “…because it is too big”, change “big” to “small”: the sentence " +
    "now means the suitcase. Which layer holds the heads whose attention changes most?");
  const select = element("select");
  select.id = `predict-${LESSON_ID}-layer`;
  select.append(new Option("— your prediction —", ""));
  for (let layer = 0; layer < nLayer; layer++) select.append(new Option(`layer ${layer}`, String(layer)));
  select.addEventListener("change", () => handlers.onPredict(LESSON_ID, "layer", select.value));
  const label = element("label", "", "The layer that changes most");
  label.htmlFor = select.id;
  const load = element("button", "load-pair", "Compare big / small");
  load.type = "button";
  load.addEventListener("click", handlers.onLoadPair);
  const reveal = element("button", "reveal", "Reveal");
  reveal.type = "button";
  reveal.addEventListener("click", () => handlers.onReveal(LESSON_ID));
  const hint = element("span", "hint", "Predict first");
  const showMe = element("button", "show-me", "Show me");
  showMe.type = "button";
  showMe.addEventListener("click", () => handlers.onShowMe(LESSON_ID));
  const verdict = element("p", "verdict");
  const answer = element("p", "answer");
  const why = element("p", "why", "Why: a head's change is how far its attention rows move from A to B, from the " +
    "first word that differs on; the heads that move most are the ones whose attention depends on that word.");
  const chart = buildChart(nLayer);
  const outcome = element("div", "outcome", verdict, answer, why, chart.root, showMe);
  outcome.setAttribute("aria-live", "polite");
  card.append(heading, question, element("div", "predictions", element("div", "field", label, select)),
    element("div", "actions", load, reveal, hint), outcome);
  container.append(card);
  return { select, load, reveal, hint, outcome, verdict, answer, chart };
}

export function drawCompareLesson(card, state) {
  const predicted = state.lesson.predictions[LESSON_ID]?.layer || "";
  if (card.select.value !== predicted) card.select.value = predicted;
  const ready = showsLessonPair(state) && state.status === "ready";
  const revealed = ready && Boolean(state.lesson.revealed[LESSON_ID]);
  card.load.hidden = ready;
  card.select.disabled = revealed;  // locked once revealed, as the other experiments' predictions
  card.reveal.disabled = !predicted || !ready;
  card.reveal.hidden = revealed;
  card.hint.hidden = Boolean(predicted) || revealed;
  card.outcome.hidden = !revealed;
  if (!revealed) return;
  const solution = compareLessonSolution(state);
  const right = solution.answers.layer.includes(predicted);
  card.verdict.textContent = right ? "✓ Right." : "✗ Not this time.";
  card.verdict.className = `verdict ${right ? "right" : "wrong"}`;
  card.answer.textContent = solution.text;
  drawChart(card.chart, solution.counts, { title: (count, layer) => `layer ${layer}: ${count} of the heads that change most`,
    label: "heads among those that change most, per layer" });
}

/** The answer for the comparison on show: of the n_head heads that change most, which layer holds the most. */
export function compareLessonSolution(state) {
  return lessonSolution(comparisonOf(state).heads, state.result.n_head);
}

export { LESSON_PAIR };
