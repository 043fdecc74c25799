/* Knocked-out heads as data: a sorted list of [layer, head] pairs (as POST /api/attention's "ablate" takes them),
   their short names ("4.11" is layer 4, head 11), the permalink's form "ablate=4.11,5.1", and the check against
   a model's shape. Pure: no DOM, no state (tests/js/knockout.test.mjs). */

export const PERMALINK_PARAM = "ablate";
const HEAD_NAME = /^(\d{1,4})\.(\d{1,4})$/;  // layer.head, as the page writes it
const SHOWN_CHARS = 16;  // of a value the link held that is not a head, quoted back in the note

/** "4.11": layer 4, head 11. */
export function headName(layer, head) {
  return `${layer}.${head}`;
}

/** The pairs sorted by layer, then head, each once. */
export function sortedHeads(pairs) {
  const seen = new Set();
  const unique = pairs.filter(([layer, head]) => {
    const name = headName(layer, head);
    if (seen.has(name)) return false;
    seen.add(name);
    return true;
  });
  return unique.map(([layer, head]) => [layer, head]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

export function hasHead(heads, layer, head) {
  return heads.some(([l, h]) => l === layer && h === head);
}

/** `heads` with (layer, head) knocked out if it was not, restored if it was. */
export function toggledHeads(heads, layer, head) {
  return hasHead(heads, layer, head) ? heads.filter(([l, h]) => l !== layer || h !== head)
    : sortedHeads([...heads, [layer, head]]);
}

export function sameHeads(a, b) {
  return headsKey(a) === headsKey(b);
}

/** One string per set of heads ("4.11,5.1"; "" for none): a key for caches and the lesson's reveal. */
export function headsKey(heads) {
  return sortedHeads(heads).map(([layer, head]) => headName(layer, head)).join(",");
}

/** "4.11, 5.1 and 5.5". */
export function headList(heads) {
  const names = heads.map(([layer, head]) => headName(layer, head));
  return names.length <= 1 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/** The permalink's value → {heads, ignored}: `ignored` holds each item that is not layer.head, as it was written. */
export function parseHeads(value) {
  const heads = [];
  const ignored = [];
  for (const item of (value ?? "").split(",").map((text) => text.trim()).filter(Boolean)) {
    const match = HEAD_NAME.exec(item);
    if (match) heads.push([Number(match[1]), Number(match[2])]);
    else ignored.push(item.length > SHOWN_CHARS ? `${item.slice(0, SHOWN_CHARS - 1)}…` : item);
  }
  return { heads: sortedHeads(heads), ignored };
}

/** The permalink's value for `heads`, or null for none (the URL then has no `ablate`). */
export function formatHeads(heads) {
  return heads && heads.length ? headsKey(heads) : null;
}

/** The heads a model of nLayer × nHead has, and the names of those it has not. */
export function fitHeads(heads, nLayer, nHead) {
  const inside = heads.filter(([layer, head]) => layer < nLayer && head < nHead);
  const outside = heads.filter(([layer, head]) => layer >= nLayer || head >= nHead);
  return { heads: inside, outside: outside.map(([layer, head]) => headName(layer, head)) };
}

/** What the page says about the heads of a link it could not knock out. */
export function ignoredNote({ ignored = [], outside = [], model = null, nLayer = 0, nHead = 0 }) {
  const quoted = (items) => items.map((item) => `“${item}”`).join(", ");
  const notes = [];
  if (ignored.length) {
    notes.push(`The link's ${quoted(ignored)} ${ignored.length === 1 ? "is not a head and was" : "are not heads and were"} ` +
      "ignored: write each knocked-out head as layer.head, like 4.11.");
  }
  if (outside.length) {
    notes.push(`Head${outside.length === 1 ? "" : "s"} ${quoted(outside)} ${outside.length === 1 ? "is" : "are"} not ` +
      `in model “${model}” (layers 0–${nLayer - 1}, heads 0–${nHead - 1}) and ${outside.length === 1 ? "was" : "were"} ignored.`);
  }
  return notes.join(" ");
}
