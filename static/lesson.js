/* "Try this — predict before you click": the experiments of experiments.js as cards. The student picks a
   prediction, then Reveal checks it against what the server computed for THIS sentence; once revealed, the
   predictions are locked until the sentence changes. buildLesson makes the cards once per model shape;
   drawLesson only reads state. */

import { EXPERIMENTS, blockedBecause, gradeOf } from "./experiments.js";
import { plural } from "./format.js";
import { button, element } from "./dom.js";

/** Build the experiment cards for a model shape; returns the elements drawLesson updates. */
export function buildLesson(container, dims, handlers) {
  container.replaceChildren();
  const cards = {};
  EXPERIMENTS.forEach((experiment, number) => {
    const card = element("section", "experiment");
    card.dataset.experiment = experiment.id;
    const heading = element("h3", "", `${number + 1}. ${experiment.title(dims)}`);
    const question = element("p", "question", experiment.question(dims));
    const blocked = element("p", "blocked");
    const selects = {};
    const form = element("div", "predictions");
    for (const field of experiment.fields(dims)) {
      const id = `predict-${experiment.id}-${field.name}`;
      const label = element("label", "", field.label);
      label.htmlFor = id;
      const select = element("select");
      select.id = id;
      select.append(new Option("— your prediction —", ""));
      for (const [value, text] of field.options) select.append(new Option(text, value));
      select.addEventListener("change", () => handlers.onPredict(experiment.id, field.name, select.value));
      selects[field.name] = select;
      form.append(element("div", "field", label, select));
    }
    const reveal = button("reveal", "Reveal", () => handlers.onReveal(experiment.id));
    const hint = element("span", "hint", "Predict first");
    const showMe = button("show-me", "Show me", () => handlers.onShowMe(experiment.id));
    const outcome = element("div", "outcome");
    outcome.setAttribute("aria-live", "polite");
    const verdict = element("p", "verdict");
    const answer = element("p", "answer");
    const why = element("p", "why");
    const chart = buildChart(dims.nLayer);
    outcome.append(verdict, answer, why, chart.root, showMe);
    card.append(heading, question, blocked, form, element("div", "actions", reveal, hint), outcome);
    container.append(card);
    cards[experiment.id] = { selects, blocked, reveal, hint, outcome, verdict, answer, why, chart };
  });
  return cards;
}

/** Update the cards from state.lesson and the shown result (null while loading). */
export function drawLesson(cards, dims, lesson, result, glossary) {
  for (const experiment of EXPERIMENTS) {
    const card = cards[experiment.id];
    const predictions = lesson.predictions[experiment.id] || {};
    const fields = Object.keys(card.selects);
    const blocked = result ? blockedBecause(experiment, result, glossary) : "";
    const revealed = Boolean(lesson.revealed[experiment.id]) && Boolean(result) && !blocked;
    for (const name of fields) {
      const wanted = predictions[name] || "";
      if (card.selects[name].value !== wanted) card.selects[name].value = wanted;
      card.selects[name].disabled = revealed || Boolean(blocked);
    }
    const complete = fields.every((name) => predictions[name]);
    card.blocked.hidden = !blocked;
    card.blocked.textContent = blocked;
    card.reveal.disabled = !complete || !result || Boolean(blocked);
    card.reveal.hidden = revealed;
    card.hint.hidden = complete || revealed || Boolean(blocked);
    card.outcome.hidden = !revealed;
    if (!revealed) continue;
    const solution = experiment.solve(result, dims, glossary);
    const { right, of } = gradeOf(experiment, solution, predictions);
    card.verdict.textContent = right === of ? `✓ Right${of > 1 ? ": both" : ""}.`
      : of > 1 ? `${right} of ${of} right.` : "✗ Not this time.";
    card.verdict.className = `verdict ${right === of ? "right" : "wrong"}`;
    card.answer.textContent = solution.text;
    card.why.textContent = solution.why;
    drawChart(card.chart, solution.counts);
  }
}

// ---- pure helpers ----

/** A per-layer bar chart (broadcasters per layer; compare_lesson.js's heads that change most): a plot of fixed
 *  height with one bar per layer, and its axis below it, so a bar's height is its share of the plot alone. */
export function buildChart(nLayer) {
  const plot = element("div", "plot");
  const axis = element("div", "axis");
  const bars = Array.from({ length: nLayer }, (_, layer) => {
    const bar = element("span", "bar");
    plot.append(element("span", "slot", bar));
    axis.append(element("span", "", String(layer)));
    return bar;
  });
  const root = element("div", "bars", plot, axis);
  root.setAttribute("role", "img");
  return { root, bars };
}

export function drawChart(chart, counts, { title = (count, layer) => `layer ${layer}: ${plural(count, "broadcaster")}`,
  label = "broadcasters per layer" } = {}) {
  chart.root.hidden = !counts;
  if (!counts) return;
  const most = Math.max(1, ...counts);
  chart.bars.forEach((bar, layer) => {
    bar.style.height = `${(counts[layer] / most) * 100}%`;
    bar.parentElement.title = title(counts[layer], layer);
    bar.dataset.count = String(counts[layer]);
  });
  chart.root.setAttribute("aria-label", `${label}: ${counts.join(", ")}`);
}
