/* "Try this — predict before you click": the seed lesson's four experiments. The student picks a
   prediction, then Reveal checks it against what the server computed for THIS sentence. Each experiment
   is data plus a pure `solve(result)`; buildLesson makes the DOM once per model shape, drawLesson only
   reads state. Models with fewer layers or heads use their last layer and clamp head 7. */

import { LABELS, NEAR_LABELS } from "./labels.js";

const PROBE_HEAD = 7;  // the seed lesson's "layer 11 head 7"

export const EXPERIMENTS = [
  {
    id: "shapes",
    title: ({ last }) => `Layer 0 vs layer ${last}`,
    question: ({ last }) => `Which layer has more heads looking at the current or nearby tokens (diagonal, ` +
      `previous-token, local) rather than resting on the first token: layer 0 or layer ${last}?`,
    fields: ({ last }) => [{ name: "layer", label: "More near-token heads in",
      options: [["first", "layer 0"], ["last", `layer ${last}`], ["same", "the same number"]] }],
    solve(result, { last }) {
      const near = (layer) => NEAR_LABELS.reduce((sum, name) => sum + result.layers[layer].counts[name], 0);
      const broadcasters = (layer) => result.layers[layer].counts.broadcaster;
      const [nearFirst, nearLast] = [near(0), near(last)];
      const answer = nearFirst > nearLast ? "first" : nearFirst < nearLast ? "last" : "same";
      const answerText = { first: "layer 0", last: `layer ${last}`, same: "the same number" }[answer];
      return {
        answers: { layer: answer },
        text: `Near-token heads: layer 0 has ${nearFirst}, layer ${last} has ${nearLast}. Broadcasters: layer 0 ` +
          `has ${broadcasters(0)}, layer ${last} has ${broadcasters(last)}. Answer: ${answerText}.`,
        showMe: { layer: answer === "last" ? last : 0, focused: false },
      };
    },
  },
  {
    id: "reach",
    title: ({ last }) => `The head that reaches far at layer ${last}`,
    // Ranked by long-range share, not mean distance: a head resting on the first token is "far" by distance
    // alone, yet it reaches nothing. The sink is the broadcasters' story (experiment 4).
    question: ({ last }) => `Which head of layer ${last} sends the most attention 5 or more tokens back ` +
      `(not counting the first token)?`,
    fields: ({ nHead }) => [{ name: "head", label: "Head", options: range(nHead).map((h) => [String(h), `head ${h}`]) }],
    solve(result, { last }) {
      const order = result.heads[last].map((head, index) => ({ index, share: head.scores.long_range }))
        .sort((a, b) => b.share - a.share || a.index - b.index);
      const [best, next] = order;
      const label = result.heads[last][best.index].label;
      const percent = (share) => `${Math.round(share * 100)}%`;
      const nextText = next ? ` (next: head ${next.index}, ${percent(next.share)})` : "";
      return {
        answers: { head: String(best.index) },
        text: `Head ${best.index} reaches farthest at layer ${last}: ${percent(best.share)} of its attention goes ` +
          `5 or more tokens back${nextText}. It is labelled ${label}.`,
        showMe: { layer: last, head: best.index, focused: true },
      };
    },
  },
  {
    id: "pair",
    title: ({ last, probe }) => `Layer 0 head 0 vs layer ${last} head ${probe}`,
    question: ({ last, probe }) => `What label will each head get? One is near the input, one near the output.`,
    fields: ({ last, probe }) => [
      { name: "early", label: "Layer 0 head 0", options: LABELS.map(({ name }) => [name, name]) },
      { name: "late", label: `Layer ${last} head ${probe}`, options: LABELS.map(({ name }) => [name, name]) },
    ],
    solve(result, { last, probe }) {
      const early = result.heads[0][0];
      const late = result.heads[last][probe];
      return {
        answers: { early: early.label, late: late.label },
        text: `Layer 0 head 0 is ${early.label} (${percent(early.confidence)}). Layer ${last} head ${probe} is ` +
          `${late.label} (${percent(late.confidence)}).`,
        showMe: { layer: last, head: probe, focused: true },
      };
    },
  },
  {
    id: "broadcasters",
    title: () => "Broadcasters per layer",
    question: ({ last }) => `Broadcasters park their attention on the first token. How many does layer ${last} ` +
      `have, and which layer has the most?`,
    fields: ({ nLayer, nHead, last }) => [
      { name: "count", label: `Broadcasters in layer ${last}`, options: range(nHead + 1).map((n) => [String(n), String(n)]) },
      { name: "most", label: "Layer with the most", options: range(nLayer).map((l) => [String(l), `layer ${l}`]) },
    ],
    solve(result, { last }) {
      const counts = result.layers.map((layer) => layer.counts.broadcaster);
      const most = Math.max(...counts);
      const mostLayers = range(counts.length).filter((layer) => counts[layer] === most);
      return {
        answers: { count: String(counts[last]), most: mostLayers.map(String) },  // a tie: any of them is right
        text: `Layer ${last} has ${counts[last]} broadcaster${counts[last] === 1 ? "" : "s"}. Most: ` +
          `${mostLayers.length > 1 ? "layers" : "layer"} ${listed(mostLayers)} (${most}${mostLayers.length > 1 ? " each" : ""}).`,
        counts,
        showMe: { layer: mostLayers[0], focused: false },
      };
    },
  },
];

export function lessonDims(nLayer, nHead) {
  return { nLayer, nHead, last: nLayer - 1, probe: Math.min(PROBE_HEAD, nHead - 1) };
}

/** Build the experiment cards for a model shape; returns the elements drawLesson updates. */
export function buildLesson(container, dims, handlers) {
  container.replaceChildren();
  const cards = {};
  EXPERIMENTS.forEach((experiment, number) => {
    const card = element("section", "experiment");
    card.dataset.experiment = experiment.id;
    const heading = element("h3", "", `${number + 1}. ${experiment.title(dims)}`);
    const question = element("p", "question", experiment.question(dims));
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
    const reveal = element("button", "reveal", "Reveal");
    reveal.type = "button";
    reveal.addEventListener("click", () => handlers.onReveal(experiment.id));
    const hint = element("span", "hint", "Predict first");
    const showMe = element("button", "show-me", "Show me");
    showMe.type = "button";
    showMe.addEventListener("click", () => handlers.onShowMe(experiment.id));
    const outcome = element("div", "outcome");
    outcome.setAttribute("aria-live", "polite");
    const verdict = element("p", "verdict");
    const answer = element("p", "answer");
    const bars = element("div", "bars");
    outcome.append(verdict, answer, bars, showMe);
    card.append(heading, question, form, element("div", "actions", reveal, hint), outcome);
    container.append(card);
    cards[experiment.id] = { selects, reveal, hint, outcome, verdict, answer, bars };
  });
  return cards;
}

/** Update the cards from state.lesson and the current result (null while loading). */
export function drawLesson(cards, dims, lesson, result) {
  for (const experiment of EXPERIMENTS) {
    const card = cards[experiment.id];
    const predictions = lesson.predictions[experiment.id] || {};
    const fields = Object.keys(card.selects);
    for (const name of fields) {
      const wanted = predictions[name] || "";
      if (card.selects[name].value !== wanted) card.selects[name].value = wanted;
    }
    const complete = fields.every((name) => predictions[name]);
    const revealed = Boolean(lesson.revealed[experiment.id]) && Boolean(result);
    card.reveal.disabled = !complete || !result;
    card.reveal.hidden = revealed;
    card.hint.hidden = complete || revealed;
    card.outcome.hidden = !revealed;
    if (!revealed) continue;
    const solution = experiment.solve(result, dims);
    const right = fields.filter((name) => [].concat(solution.answers[name]).includes(predictions[name])).length;
    card.verdict.textContent = right === fields.length ? `✓ Right${fields.length > 1 ? ": both" : ""}.`
      : fields.length > 1 ? `${right} of ${fields.length} right.` : "✗ Not this time.";
    card.verdict.className = `verdict ${right === fields.length ? "right" : "wrong"}`;
    card.answer.textContent = solution.text;
    drawBars(card.bars, solution.counts);
  }
}

export function solutionOf(id, result, dims) {
  return EXPERIMENTS.find((experiment) => experiment.id === id).solve(result, dims);
}

// ---- pure helpers ----

function drawBars(container, counts) {
  container.hidden = !counts;
  if (!counts) return;
  const most = Math.max(1, ...counts);
  container.replaceChildren(...counts.map((count, layer) => {
    const bar = element("span", "bar");
    bar.style.height = `${Math.round((count / most) * 100)}%`;
    const column = element("span", "column", bar, element("span", "axis", String(layer)));
    column.title = `layer ${layer}: ${count} broadcaster${count === 1 ? "" : "s"}`;
    return column;
  }));
  container.setAttribute("aria-label", `broadcasters per layer: ${counts.join(", ")}`);
  container.setAttribute("role", "img");
}

function element(tag, className = "", ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

function listed(items) {  // [1, 5, 7] -> "1, 5 and 7"
  return items.length > 1 ? `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}` : String(items[0]);
}

function range(n) {
  return Array.from({ length: n }, (_, index) => index);
}

function percent(value) {
  return `${Math.round(value * 100)}%`;
}
