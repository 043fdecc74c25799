/* The head atlas on the page: what each head usually does over the reference corpus (GET /api/atlas), beside
   what it does on this sentence. The server says everything in words ("previous-token on 96% of 239 items");
   this module fetches one view, keeps it, and composes the lines the page shows. Pure helpers at the bottom.

   state.atlas = { key, status: "none" | "loading" | "ready" | "missing", data, message } */

const ATLAS_URL = "/api/atlas";
const REPEAT_ROLES = ["duplicate-token", "induction"];

// Why a usual job cannot show on a sentence comes from the server (/api/atlas why_not_here, beside the rule that
// can_show applies); a server from before it sends none, and the page then says only this much.
export const NO_REASON_SENT = "this sentence gives it nothing to do";

/** The view of the atlas matching the page's model and toggles, fetched once per key; `onChange` is called
    (to schedule a draw) when it arrives or fails. A 404 is a model without an atlas: its message says how to
    make one, and the page shows that message where the atlas would be. */
export function loadAtlas(atlasState, model, prependBos, sinkAware, onChange) {
  const key = atlasKey(model, prependBos, sinkAware);
  if (!model || atlasState.key === key) return;
  atlasState.controller?.abort();
  const controller = new AbortController();
  Object.assign(atlasState, { key, status: "loading", data: null, message: "", controller });
  fetch(`${ATLAS_URL}?${key}`, { signal: controller.signal })
    .then(async (response) => {
      const body = await response.json().catch(() => null);
      if (atlasState.key !== key) return;
      if (response.ok && body) Object.assign(atlasState, { status: "ready", data: body });
      else Object.assign(atlasState, { status: "missing", message: body?.error || `the server answered ${response.status}` });
      onChange();
    })
    .catch((error) => {
      if (error.name === "AbortError" || atlasState.key !== key) return;
      Object.assign(atlasState, { status: "missing", message: "the atlas could not be fetched; try again" });
      onChange();
    });
}

export function newAtlasState() {
  return { key: null, status: "none", data: null, message: "", controller: null };
}

// ---- pure helpers ----

export function atlasKey(model, prependBos, sinkAware) {
  return new URLSearchParams({ model, prepend_bos: prependBos ? "1" : "0", sink_aware: sinkAware ? "1" : "0" })
    .toString();
}

/** The head's record in the atlas, or null (no atlas, or a layer/head it does not have). */
export function atlasHead(atlas, layer, head) {
  return atlas?.heads?.[layer]?.[head] || null;
}

/** "88%": the consensus share as the page prints it (never 100% unless every item). */
export function percent(head) {
  const value = Math.round(100 * head.consensus_share);
  return `${head.consensus_count < head.consensus_of ? Math.min(value, 99) : value}%`;
}

/** "usually induction (88%)" or "no usual job (most often mixed, 41%)". */
export function usualJob(head) {
  return head.usual ? `usually ${head.consensus} (${percent(head)})`
    : `no usual job (most often ${head.consensus}, ${percent(head)})`;
}

/** The line beside a thumbnail or the focused head: its usual job and this sentence's label, and, when they
    differ because this sentence gives the usual job nothing to do (`canShow`, from /api/attention), why, in the
    server's words (`whyNotHere`, the atlas's why_not_here).
    "usually induction (88%); here: broadcaster — this sentence has fewer than 3 tokens that repeat an earlier one" */
export function usuallyHere(head, hereLabel, canShow, whyNotHere) {
  if (!head) return "";
  const usual = usualJob(head);
  if (!hereLabel) return usual;
  if (head.consensus === hereLabel) return `${usual}; here too`;
  const excused = head.usual && canShow && canShow[head.consensus] === false;
  const why = excused ? ` — ${whyNotHere?.[head.consensus] || NO_REASON_SENT}` : "";
  return `${usual}; here: ${hereLabel}${why}`;
}

/** For the map in corpus mode: the label a cell is painted with, and how much of it is filled (its consistency). */
export function mapCell(head) {
  return { label: head.consensus, fill: head.consensus_share, usual: head.usual };
}

/** Whether this sentence gives the head a label other than its usual job (the thumbnail marks it); a head with
    no usual job has nothing to differ from. */
export function differsHere(head, hereLabel) {
  return Boolean(head && head.usual && hereLabel && head.consensus !== hereLabel);
}

/** The head's label profile: every label it got on some item, largest share first, as [label, share of all
    items]; the shares sum to 1. */
export function profileOf(head) {
  return Object.entries(head.profile).filter(([, share]) => share > 0)
    .sort(([labelA, a], [labelB, b]) => b - a || labelA.localeCompare(labelB));
}

/** How the head's consensus was counted: over the items where it could show, or over every item. */
export function countedLine(atlas, head) {
  const rule = atlas.rules[head.consensus];
  const of = `${head.consensus_of} of the ${atlas.items} items`;
  const counted = rule && head.consensus_of !== atlas.items
    ? `${head.consensus} is counted only where it could show: on ${of} (${rule})`
    : `${head.consensus} is counted on every item (${atlas.items})`;
  const sink = atlas.sink_aware ? `; first column set aside: ${atlas.rules.sink_aware}` : "";
  return `${counted}${sink}.`;
}

/** The TransformerLens detector scores of the head as table rows: [name, over the corpus, on the probe]. */
export function detectorRows(head) {
  const { previous_token: previous, duplicate_token: duplicate, induction } = head.detector;
  return [["previous-token", previous.corpus, previous.probe], ["duplicate-token", duplicate.corpus, duplicate.probe],
    ["induction", induction.corpus, induction.probe]];
}

/** One layer's broadcasters per corpus item as the lesson's table shows them: "2.0 (1–4)". */
export function rangeText({ mean, min, max }) {
  return `${mean.toFixed(1)} (${min === max ? min : `${min}–${max}`})`;
}

/** Whether this sentence's count lies outside the corpus's range for the layer. */
export function outsideRange({ min, max }, count) {
  return count < min || count > max;
}

/** A literature claim's verdict as a sign beside the server's words (which begin "the atlas agrees: …"), so that
    it is not told by colour alone. */
export function verdictSign(verdict) {
  return { agrees: "✓", disagrees: "✗", "not-checked": "—" }[verdict] || "?";
}

/** The hover / focus text of a map cell in corpus mode: "layer 4, head 11: previous-token on 96% of 239 items". */
export function mapCellText(head, layer, index) {
  return `layer ${layer}, head ${index}: ${head.usually}`;
}

/** What the corpus says about one layer's broadcasters, beside this sentence's count. */
export function broadcastersLine(atlas, layer, hereCount) {
  const corpus = atlas?.layers?.[layer]?.broadcasters;
  const here = `This sentence: ${hereCount} broadcaster${hereCount === 1 ? "" : "s"} in layer ${layer}`;
  if (!corpus) return here;
  const range = corpus.min === corpus.max ? `${corpus.min}` : `${corpus.min}–${corpus.max}`;
  return `${here}; over the ${atlas.corpus_items} corpus sentences: ${range} (mean ${corpus.mean.toFixed(1)})`;
}

/** The sentence under the map in corpus mode: how many heads have a usual job, and how the shares were counted. */
export function corpusSummary(atlas) {
  const { usual_heads: usual, heads } = atlas.summary;
  return `${usual} of ${heads} heads have a usual job over ${atlas.items} items (${atlas.corpus_items} sentences ` +
    `and ${atlas.probe_items} repeated random-token sequences). ${countingRules(atlas)}`;
}

/** How the atlas counts a label: only on the items where it could show. */
export function countingRules(atlas) {
  const conditional = REPEAT_ROLES.map((role) => `${role}: ${atlas.rules[role]}`);
  return `Each label is counted where it could show — ${conditional[0]}; induction likewise; long-range: ` +
    `${atlas.rules["long-range"]}; every other label: every item.`;
}

/** The literature entries of one head (GPT-2 small only), each { role, citation, url, note, atlas, comparison }. */
export function literatureOf(atlas, layer, head) {
  return atlas?.literature?.heads?.[layer]?.[head] || [];
}
