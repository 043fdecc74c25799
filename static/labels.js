/* How a head's label looks: chip colours keyed by the server's label names (the names and their meanings come
   from /api/models, state.glossary), and the two tags the page shows where the server's label says nothing.
   Colours are Okabe–Ito (distinguishable with every common colour-vision deficiency), each with the ink that
   gives at least 4.5:1 contrast; every chip also carries the label as text, so colour is never the only cue. */

import { percent } from "./format.js";

export const PURE_SINK = "pure sink";  // sink-aware: every scored row has nothing off the first token
export const TOO_SHORT = "too short";  // the sentence has no row to score

export const CHIP_STYLE = {
  broadcaster: { colour: "#E69F00", ink: "#000" },
  diagonal: { colour: "#56B4E9", ink: "#000" },
  "previous-token": { colour: "#009E73", ink: "#000" },
  local: { colour: "#F0E442", ink: "#000" },
  "long-range": { colour: "#0072B2", ink: "#fff" },
  "duplicate-token": { colour: "#D55E00", ink: "#000" },
  induction: { colour: "#CC79A7", ink: "#000" },
  diffuse: { colour: "#8C8C8C", ink: "#000" },
  mixed: { colour: "#E8E8E8", ink: "#000" },
  [PURE_SINK]: { colour: "#FDF0E0", ink: "#000", dashed: true },  // the pure-sink rows' colour
  [TOO_SHORT]: { colour: "#FFFFFF", ink: "#000", dashed: true },
  hidden: { colour: "#CCCCCC", ink: "#000" },  // while the student predicts
};
const UNKNOWN_STYLE = { colour: "#FFFFFF", ink: "#000" };
export const NEAR_LABELS = ["diagonal", "previous-token", "local"];  // heads that look at the current or nearby tokens
const HIDDEN_TEXT = "?";

/** Why a head needs a sentence of some length: the fewest tokens is the server's, the glossary's
 *  scored_from_tokens (server/scores.py, FIRST_SCORED_ROW). */
export function tokensNeeded(glossary) {
  return `a head needs ${glossary.scored_from_tokens} tokens before the first, the previous and the current token ` +
    "are three different tokens";
}

/** What the page's two tags mean (the server's labels come with their meanings in the glossary). */
export function tagMeanings(glossary) {
  return {
    [PURE_SINK]: "all of its attention is on the first token: with that column set aside, nothing is left to label " +
      "(turn “hide the first column” off to see it as a broadcaster)",
    [TOO_SHORT]: `the sentence is too short to tell where attention goes: ${tokensNeeded(glossary)}`,
  };
}

/** What the page says a head is: the server's label, or a tag where no row could be scored (a pure sink if the
 *  sentence was long enough to score, else too short).
 *  {name (the chip's text and style key), meaning, confidence (null for a tag), tag (true for a tag)} */
export function headTag(info, result, glossary) {
  if (isScored(info)) return { name: info.label, meaning: meaningOf(glossary, info.label), confidence: info.confidence, tag: false };
  const name = result.sink_aware && result.n_tokens >= glossary.scored_from_tokens ? PURE_SINK : TOO_SHORT;
  return { name, meaning: tagMeanings(glossary)[name], confidence: null, tag: true };
}

/** Whether any of the head's rows were scored. A scored row's attention splits exactly into first + self +
 *  local + long_range (server/heads.py), so their average is 1 when any row was scored and 0 when none was. */
export function isScored(info) {
  const { first, self, local, long_range: longRange } = info.scores;
  return first + self + local + longRange > 0.5;
}

/** A label's or a tag's meaning. */
export function meaningOf(glossary, name) {
  const tags = tagMeanings(glossary);
  if (tags[name]) return tags[name];
  const entry = glossary.labels.find((label) => label.name === name);
  return entry ? entry.meaning : "";
}

/** A chip's text, colours and tooltip for a head (or, with `hide`, the placeholder while the student predicts). */
export function paintHeadChip(chip, tag, hide) {
  if (hide) return paintChip(chip, "hidden", HIDDEN_TEXT, "label hidden while you predict");
  return paintChip(chip, tag.name, tag.name, tag.meaning);
}

export function paintChip(chip, styleName, text, meaning = "") {
  const style = CHIP_STYLE[styleName] || UNKNOWN_STYLE;
  chip.className = style.dashed ? "chip dashed" : "chip";
  chip.textContent = text;
  chip.style.backgroundColor = style.colour;
  chip.style.color = style.ink;
  chip.title = meaning;
}

/** "88%", or "" for a tag (a pure sink has no confidence to speak of). */
export function confidenceText(tag) {
  return tag.confidence === null ? "" : percent(tag.confidence);
}

