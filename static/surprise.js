/* The numbers of a run with heads knocked out, from POST /api/attention's "prediction": for every position, the
   change in the log-probability of the actual next token (knocked out − clean; position i predicts token i + 1),
   its colour scale's end, the positions where a repeat makes the next token predictable, and what knocking the
   heads out did to the model's guess there (the lesson's check). Pure (tests/js/knockout.test.mjs). */

export const LOGPROB_LIMITS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20];  // nats: the ends a colour bar can have
// A guess "changes much" when the right token's log-probability moves by a nat or more on average over the repeat:
// e ≈ 2.7 times less (or more) likely. Smaller moves are within what knocking out an unrelated head does.
export const EFFECT_NATS = 1;
export const CONFIDENT_P = 0.5;  // p ≥ 0.5: the model's top guess is the right token, and it says so
export const EFFECTS = ["worse", "same", "better"];

/** (T − 1) changes in log-probability, knocked out − clean: negative where the token became less expected. */
export function logprobChanges({ logprob, logprob_ablated: ablated }) {
  return logprob.map((clean, position) => ablated[position] - clean);
}

/** The colour scale's end for these changes: the first of LOGPROB_LIMITS that holds the largest, else the last. */
export function logprobLimit(changes) {
  const largest = Math.max(0, ...changes.map(Math.abs));
  return LOGPROB_LIMITS.find((limit) => limit >= largest) ?? LOGPROB_LIMITS[LOGPROB_LIMITS.length - 1];
}

/** The positions i (predicting token i + 1) where an earlier j has the same token and the same next token: there
 *  a model that copies "what came next last time" can know the next token. On "A B C A B C" these are 3 and 4. */
export function repeatPositions(ids) {
  const positions = [];
  for (let position = 1; position < ids.length - 1; position++) {
    for (let earlier = 0; earlier < position; earlier++) {
      if (ids[earlier] === ids[position] && ids[earlier + 1] === ids[position + 1]) {
        positions.push(position);
        break;
      }
    }
  }
  return positions;
}

/** What knocking the heads out did to the guesses at `positions`: the mean change in log-probability, how many
 *  the model got right (p ≥ CONFIDENT_P) with every head and without, and the effect that makes. */
export function guessEffect(prediction, positions) {
  const changes = logprobChanges(prediction);
  const right = (logprobs) => positions.filter((position) => Math.exp(logprobs[position]) >= CONFIDENT_P).length;
  const meanChange = positions.length ? positions.reduce((sum, position) => sum + changes[position], 0) /
    positions.length : 0;
  const effect = meanChange <= -EFFECT_NATS ? "worse" : meanChange >= EFFECT_NATS ? "better" : "same";
  return { positions, meanChange, effect, rightClean: right(prediction.logprob),
    rightAblated: right(prediction.logprob_ablated) };
}

/** A probability as the prediction panel prints it: "99.9%", "0.04%", "<0.001%". */
export function probabilityText(p) {
  if (p >= 0.001) return `${(p * 100).toFixed(1)}%`;
  if (p >= 0.00001) return `${(p * 100).toFixed(3)}%`;
  return "<0.001%";
}

/** A top token's probability and rank in the other pass: "now …" (without the heads) under a token of the clean
 *  column, "was …" (with every head) under one of the knocked-out column; "" when the answer gives none (nothing
 *  knocked out, or a model exported without every token's log-probability). With the line's longer `title`. */
export function otherPass(entry) {
  const other = OTHER_RUNS.find(({ run }) => entry[`p_${run}`] !== undefined);
  if (!other) return { text: "", title: "" };
  const p = probabilityText(entry[`p_${other.run}`]);
  const rank = entry[`rank_${other.run}`];
  return { text: `${other.word} ${p} · #${rank}`, title: `${other.who}: ${p}, the model's guess #${rank}` };
}

// The run a top token is looked up in (the API's p_<run> and rank_<run>), and how its line says so.
const OTHER_RUNS = [
  { run: "ablated", word: "now", who: "without the knocked-out heads" },
  { run: "clean", word: "was", who: "with every head" },
];

/** A number with a true minus sign: −15.2124, not -15.2124. */
export function numberText(value, digits = 4) {
  return value.toFixed(digits).replace("-", "−");
}

/** −11.80 as "−11.80", 0.25 as "+0.25", and no "−0.00". */
export function signedText(value, digits = 2) {
  const shown = Math.abs(value).toFixed(digits);
  if (Number(shown) === 0) return shown;
  return `${value < 0 ? "−" : "+"}${shown}`;
}
