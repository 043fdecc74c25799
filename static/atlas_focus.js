/* The focused head across the corpus: its usual job beside this sentence's label (and why they differ, where
   the sentence gives the job nothing to do), and the evidence — its label profile, TransformerLens's detector
   scores and ARENA's induction score, how the atlas counted, its scores' mean and spread over the corpus and,
   for GPT-2 small, what published work says it does and whether the atlas agrees. buildAtlasFocus makes the
   structure once; drawAtlasFocus only reads state. */

import { atlasHead, countedLine, detectorRows, differsHere, literatureOf, profileOf, usuallyHere, verdictSign }
  from "./atlas.js";
import { percent } from "./format.js";
import { CHIP_STYLE, headTag, paintChip } from "./labels.js";
import { element } from "./dom.js";

const LOADING = "Loading the atlas…";
const NO_LITERATURE = "The published work this page lists gives this head no role.";
// TransformerLens (and so the detector demo and ARENA) puts <|endoftext|> first by default: like for like needs it.
const WITHOUT_BOS = "These works measured GPT-2 with <|endoftext|> first; turn “prepend <|endoftext|>” on to " +
  "compare like for like.";

const parts = {};

/** `usuallyLine`: the line under the head's reason; `section`: the evidence, at the end of the head's details. */
export function buildAtlasFocus(usuallyLine, section) {
  parts.usuallyLine = usuallyLine;
  parts.section = section;
  const title = element("h3", "small-heading", "Across the corpus");
  title.id = "focus-atlas-title";
  parts.message = element("p", "atlas-message");
  parts.usually = element("p", "atlas-usually");
  parts.profileBar = element("div", "profile-bar");
  parts.profileBar.setAttribute("role", "img");
  parts.profileList = element("ul", "profile-list");
  parts.detectorBody = element("tbody");
  parts.inductionScore = element("td");
  const detector = element("table", "atlas-scores",
    element("caption", "", "TransformerLens scores"),
    element("thead", "", element("tr", "", element("th"), element("th", "", "corpus"),
      element("th", "", "random tokens"))),
    parts.detectorBody,
    element("tfoot", "", element("tr", "", element("th", "", "induction score (ARENA)"), element("td", "", "—"),
      parts.inductionScore)));
  parts.counted = element("p", "muted atlas-counted");
  parts.spreadBody = element("tbody");
  const spread = element("details", "atlas-spread", element("summary", "", "Its scores over the corpus (mean ± sd)"),
    element("table", "atlas-scores", parts.spreadBody));
  parts.literatureList = element("ul", "literature-list");
  parts.literatureNone = element("p", "muted literature-none");
  parts.literatureBos = element("p", "muted literature-bos", WITHOUT_BOS);
  parts.literature = element("div", "atlas-literature", element("h4", "small-heading", "What published work says"),
    parts.literatureList, parts.literatureNone, parts.literatureBos);
  parts.evidence = element("div", "atlas-evidence", parts.usually, parts.profileBar, parts.profileList, detector,
    parts.counted, spread, parts.literature);
  section.setAttribute("aria-labelledby", title.id);
  section.replaceChildren(title, parts.message, parts.evidence);
}

/** The focused head's atlas section from state. */
export function drawAtlasFocus(state) {
  const { atlas, result, layer, head: index, glossary } = state;
  const hide = state.lesson.hideLabels;
  const head = atlas.status === "ready" ? atlasHead(atlas.data, layer, index) : null;
  const info = result.heads[layer][index];
  const here = headTag(info, result, glossary).name;
  parts.usuallyLine.textContent = head && !hide ? usuallyHere(head, here, result.can_show, atlas.data.why_not_here)
    : "";
  parts.usuallyLine.classList.toggle("differs", !hide && differsHere(head, here));
  parts.message.hidden = Boolean(head) && !hide;
  parts.message.textContent = hide ? "Hidden while you predict." : atlas.status === "missing" ? atlas.message
    : atlas.status === "ready" ? "This head is not in the model's atlas." : LOADING;
  parts.evidence.hidden = !head || hide;
  if (!head || hide) return;
  parts.usually.textContent = `Usually: ${head.usually}.`;
  drawProfile(head);
  drawDetector(head);
  parts.counted.textContent = `How it was counted: ${countedLine(atlas.data, head)}`;
  drawSpread(head, atlas.data.score_names);
  drawLiterature(atlas.data, layer, index);
}

// ---- helpers ----

function drawProfile(head) {
  const profile = profileOf(head);
  parts.profileBar.replaceChildren(...profile.map(([label, share]) => {
    const segment = element("span");
    segment.style.width = `${share * 100}%`;
    segment.style.backgroundColor = CHIP_STYLE[label]?.colour ?? "#fff";
    return segment;
  }));
  const words = profile.map(([label, share]) => `${label} ${percent(share)}`).join(", ");
  parts.profileBar.setAttribute("aria-label", `label profile over every item: ${words}`);
  parts.profileList.replaceChildren(...profile.map(([label, share]) => {
    const chip = element("span");
    paintChip(chip, label, label);
    const where = percent(head.shares[label]) !== percent(share) ? ` (${percent(head.shares[label])} where it could show)` : "";
    const item = element("li", "", chip, ` ${percent(share)}${where}`);
    item.dataset.label = label;
    return item;
  }));
}

function drawDetector(head) {
  parts.detectorBody.replaceChildren(...detectorRows(head).map(([name, corpus, probe]) =>
    element("tr", "", element("th", "", name), element("td", "", corpus.toFixed(2)), element("td", "", probe.toFixed(2)))));
  parts.inductionScore.textContent = head.induction_score.toFixed(2);
}

function drawSpread(head, scoreNames) {
  parts.spreadBody.replaceChildren(...scoreNames.filter((name) => head.scores[name]).map((name) => {
    const [mean, spread] = head.scores[name];
    return element("tr", "", element("th", "", name.replace(/_/g, " ")),
      element("td", "", `${mean.toFixed(2)} ± ${spread.toFixed(2)}`));
  }));
}

function drawLiterature(atlas, layer, index) {
  parts.literature.hidden = !atlas.literature;
  if (!atlas.literature) return;
  const entries = literatureOf(atlas, layer, index);
  parts.literatureNone.hidden = entries.length > 0;
  parts.literatureNone.textContent = entries.length ? "" : NO_LITERATURE;
  parts.literatureBos.hidden = atlas.prepend_bos || !entries.length;
  parts.literatureList.replaceChildren(...entries.map((entry) => {
    const link = element("a", "", entry.citation);
    Object.assign(link, { href: entry.url, title: `${entry.title}. Checked ${entry.checked}.`, target: "_blank",
      rel: "noopener" });
    const verdict = element("p", `verdict-line ${entry.atlas}`, `${verdictSign(entry.atlas)} ${entry.comparison}`);
    const item = element("li", "", element("p", "", element("strong", "", entry.role), " — ", link),
      element("p", "muted", entry.note), verdict);
    item.dataset.role = entry.role;
    item.dataset.verdict = entry.atlas;
    return item;
  }));
}
