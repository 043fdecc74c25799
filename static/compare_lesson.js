/* The compare lesson: "Which layer holds the heads that change most when 'big' becomes 'small'? Predict before
   you reveal." One card in the lesson panel, built like lesson.js's (its classes, its predict → reveal flow with
   the predictions in state.lesson, locked once revealed), checked against the ranking /api/compare computed for
   the trophy pair. */

import { LESSON_ID, comparisonOf, lessonSolution, showsLessonPair } from "./compare.js";
import { plural } from "./format.js";

/** Append the card to `container`, after lesson.js's cards. handlers: onPredict(id, field, value), onReveal(id)
 *  (the page's own), onLoadPair(), onShowMe(layer, head). */
export function buildCompareLesson(container, nLayer, handlers) {
  const number = container.querySelectorAll(".experiment").length + 1;
  const heading = element("h3", "", `${number}. Which layer reacts to one word?`);
  const question = element("p", "question", "In “…because it is too big”, change “big” to “small”: “it” now " +
    "means the suitcase, not the trophy. Which layer holds the heads whose attention changes most?");
  const select = element("select");
  select.id = `predict-${LESSON_ID}-layer`;
  select.append(new Option("— your prediction —", ""));
  for (let layer = 0; layer < nLayer; layer++) select.append(new Option(`layer ${layer}`, String(layer)));
  select.addEventListener("change", () => handlers.onPredict(LESSON_ID, "layer", select.value));
  const label = element("label", "", "The layer that changes most");
  label.htmlFor = select.id;
  const load = button("load-pair", "Compare big / small", handlers.onLoadPair);
  const reveal = button("reveal", "Reveal", () => handlers.onReveal(LESSON_ID));
  const hint = element("span", "hint", "Predict first");
  const verdict = element("p", "verdict");
  const answer = element("p", "answer");
  const why = element("p", "why");
  const plot = element("div", "plot");
  const axis = element("div", "axis");
  const bars = Array.from({ length: nLayer }, (_, layer) => {
    const bar = element("span", "bar");
    plot.append(element("span", "slot", bar));
    axis.append(element("span", "", String(layer)));
    return bar;
  });
  const chart = element("div", "bars", plot, axis);
  chart.setAttribute("role", "img");
  const showMe = button("show-me", "Show me", () => handlers.onShowMe(...card.showMe));
  const outcome = element("div", "outcome", verdict, answer, why, chart, showMe);
  outcome.setAttribute("aria-live", "polite");
  const root = element("section", "experiment", heading, question,
    element("div", "predictions", element("div", "field", label, select)),
    element("div", "actions", load, reveal, hint), outcome);
  root.dataset.experiment = LESSON_ID;
  container.append(root);
  const card = { card: root, select, load, reveal, hint, outcome, verdict, answer, why, chart, bars, showMe: [0, 0] };
  return card;
}

export function drawCompareLesson(card, shown) {
  const predicted = shown.lesson.predictions[LESSON_ID]?.layer || "";
  if (card.select.value !== predicted) card.select.value = predicted;
  const ready = showsLessonPair(shown) && shown.status === "ready";
  const revealed = ready && Boolean(shown.lesson.revealed[LESSON_ID]);
  card.select.disabled = revealed;
  card.load.hidden = ready;
  card.reveal.disabled = !predicted || !ready;
  card.reveal.hidden = revealed;
  card.hint.hidden = Boolean(predicted) || revealed;
  card.outcome.hidden = !revealed;
  if (!revealed) return;
  const solution = lessonSolution(comparisonOf(shown).heads, shown.result.n_head);
  const right = solution.answers.layer.includes(predicted);
  card.verdict.textContent = right ? "✓ Right." : "✗ Not this time.";
  card.verdict.className = `verdict ${right ? "right" : "wrong"}`;
  card.answer.textContent = solution.text;
  card.why.textContent = solution.why;
  card.showMe = [solution.showMe.layer, solution.showMe.head];
  const most = Math.max(1, ...solution.counts);
  card.bars.forEach((bar, layer) => {
    const count = solution.counts[layer] ?? 0;
    bar.style.height = `${(count / most) * 100}%`;
    bar.parentElement.title = `layer ${layer}: ${plural(count, "head")} among those that change most`;
    bar.dataset.count = String(count);
  });
  card.chart.setAttribute("aria-label", `heads among the ${shown.result.n_head} that change most, per layer: ` +
    solution.counts.join(", "));
}

// ---- pure helpers ----

function button(className, text, onClick) {
  const node = element("button", className, text);
  node.type = "button";
  node.addEventListener("click", onClick);
  return node;
}

function element(tag, className = "", ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}
