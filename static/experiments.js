/* The seed lesson's four experiments as data: each has its question, the fields the student predicts, the
   shortest sentence it can be answered on (`minTokens(glossary)`) and why, and a pure `solve(result)` that
   gives the answers, the numbers and one sentence of why. lesson.js draws them. Models with fewer layers or
   heads use their last layer and clamp head 7. Pure (tests/js/experiments.test.mjs). */

import { listed, percent, plural } from "./format.js";
import { NEAR_LABELS, PURE_SINK, headTag } from "./labels.js";

const PROBE_HEAD = 7;  // the seed lesson's "layer 11 head 7"
// The reach question counts attention this many tokens back or more, the first token aside (server/heads.py's
// long-range share): the nearest such pair is key 1 and query 1 + REACH, so the sentence needs REACH + 2 tokens.
const REACH = 5;
const TOO_SHORT_TO_TELL = "with fewer, the first token is also the previous one, so no head's pattern can be told apart";
// A question about heads' labels needs a sentence long enough for a head to be scored: the server says how long.
const scoredFromTokens = (glossary) => glossary.scored_from_tokens;

export const EXPERIMENTS = [
  {
    id: "shapes",
    title: ({ last }) => `Layer 0 vs layer ${last}`,
    question: ({ last }) => `Which layer has more heads looking at the current or nearby tokens (diagonal, ` +
      `previous-token, local) rather than resting on the first token: layer 0 or layer ${last}?`,
    minTokens: scoredFromTokens,
    whyShort: TOO_SHORT_TO_TELL,
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
        why: "Why: a label names where most of a head's attention lands, so a near-token head mostly reads itself " +
          "or the few tokens before it; in trained GPT-2 such heads are typical of the first layers, which build " +
          "each word up from its neighbours.",
        showMe: { layer: answer === "last" ? last : 0, focused: false },
      };
    },
  },
  {
    id: "reach",
    title: ({ last }) => `The head that reaches far at layer ${last}`,
    question: ({ last }) => `Which head of layer ${last} sends the most attention ${REACH} or more tokens back ` +
      `(not counting the first token)?`,
    minTokens: () => REACH + 2,
    whyShort: `nothing can be ${REACH} or more tokens back, the first token aside, in a shorter sentence`,
    fields: ({ nHead, last }) => [{ name: "head", label: `Head of layer ${last}`,
      options: range(nHead).map((head) => [String(head), `head ${head}`]) }],
    solve(result, { last }, glossary) {
      const order = result.heads[last].map((head, index) => ({ index, share: head.scores.long_range }))
        .sort((a, b) => b.share - a.share || a.index - b.index);
      const [best, next] = order;
      const tag = headTag(result.heads[last][best.index], result, glossary);
      const nextText = next ? ` (next: head ${next.index}, ${percent(next.share)})` : "";
      return {
        answers: { head: String(best.index) },
        text: `Head ${best.index} reaches farthest at layer ${last}: ${percent(best.share)} of its attention goes ` +
          `${REACH} or more tokens back${nextText}. It is labelled ${tag.name}.`,
        why: "Why: the ranking counts only attention that reaches far and leaves out the first token, because a " +
          "head resting on the first token is far away by distance alone yet reads nothing there.",
        showMe: { layer: last, head: best.index, focused: true },
      };
    },
  },
  {
    id: "pair",
    title: ({ last, probe }) => `Layer 0 head 0 vs layer ${last} head ${probe}`,
    question: () => "What label will each head get? One is near the input, one near the output.",
    minTokens: scoredFromTokens,
    whyShort: TOO_SHORT_TO_TELL,
    fields: ({ last, probe, labels, sinkAware }) => {
      const options = [...labels, ...(sinkAware ? [PURE_SINK] : [])].map((name) => [name, name]);
      return [{ name: "early", label: "Layer 0 head 0", options },
        { name: "late", label: `Layer ${last} head ${probe}`, options }];
    },
    solve(result, { last, probe }, glossary) {
      const early = headTag(result.heads[0][0], result, glossary);
      const late = headTag(result.heads[last][probe], result, glossary);
      const shown = (tag) => (tag.confidence === null ? tag.name : `${tag.name} (${percent(tag.confidence)})`);
      return {
        answers: { early: early.name, late: late.name },
        text: `Layer 0 head 0 is ${shown(early)}. Layer ${last} head ${probe} is ${shown(late)}.`,
        why: `Why: layer 0 head 0: ${result.heads[0][0].reason}; layer ${last} head ${probe}: ` +
          `${result.heads[last][probe].reason}.`,
        showMe: { layer: last, head: probe, focused: true },
      };
    },
  },
  {
    id: "broadcasters",
    title: () => "Broadcasters per layer",
    question: ({ last }) => `Broadcasters park their attention on the first token. How many does layer ${last} ` +
      "have, and which layer has the most?",
    minTokens: scoredFromTokens,
    whyShort: TOO_SHORT_TO_TELL,
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
        text: `Layer ${last} has ${plural(counts[last], "broadcaster")}. Most: ` +
          `${mostLayers.length > 1 ? "layers" : "layer"} ${listed(mostLayers)} (${most}${mostLayers.length > 1 ? " each" : ""}).`,
        why: "Why: the first token is the resting place heads use when nothing in the sentence is useful to them, " +
          "so a layer's broadcasters are its heads with little to do on this sentence.",
        counts,
        showMe: { layer: mostLayers[0], focused: false },
      };
    },
  },
];

/** The shape the experiments are asked in: layers, heads, the last layer, the probed head, the label names. */
export function lessonDims(nLayer, nHead, labels = [], sinkAware = false) {
  return { nLayer, nHead, last: nLayer - 1, probe: Math.min(PROBE_HEAD, nHead - 1), labels, sinkAware };
}

/** Why `experiment` cannot be answered on `result` yet, or "" when it can. */
export function blockedBecause(experiment, result, glossary) {
  const needed = experiment.minTokens(glossary);
  if (result.n_tokens >= needed) return "";
  return `This needs a sentence of at least ${needed} tokens, and this one has ` +
    `${plural(result.n_tokens, "token")}: ${experiment.whyShort}. Try a longer sentence or an example.`;
}

/** How many of the experiment's fields the predictions got right, against its solution. */
export function gradeOf(experiment, solution, predictions) {
  const fields = Object.keys(solution.answers);
  const right = fields.filter((name) => [].concat(solution.answers[name]).includes(predictions[name])).length;
  return { right, of: fields.length };
}

export function experimentOf(id) {
  return EXPERIMENTS.find((experiment) => experiment.id === id);
}

// ---- pure helpers ----

function range(n) {
  return Array.from({ length: n }, (_, index) => index);
}
