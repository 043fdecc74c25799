/* How the page writes numbers and lists in sentences. Pure: no DOM, no state (tests/js/format.test.mjs). */

/** 0.876 → "88%". */
export function percent(value) {
  return `${Math.round(value * 100)}%`;
}

/** 1024 → "1,024": the same grouping as the server's messages. */
export function count(value) {
  return value.toLocaleString("en-US");
}

/** (1, "token") → "1 token"; (3, "token") → "3 tokens". */
export function plural(value, word, many = `${word}s`) {
  return `${count(value)} ${value === 1 ? word : many}`;
}

/** [1, 5, 7] → "1, 5 and 7". */
export function listed(items) {
  if (items.length <= 1) return items.map(String).join("");
  return `${items.slice(0, -1).join(", ")} and ${items[items.length - 1]}`;
}

/** An attention probability as the tooltip and the top-keys list show it. */
export function probability(value) {
  return value.toFixed(4);
}

/** The first `limit` characters of `text` (whole code points, so an emoji is never cut in half), with "…". */
export function clip(text, limit) {
  const characters = Array.from(text);
  return characters.length > limit ? `${characters.slice(0, limit - 1).join("")}…` : text;
}

/** `text` ending in one full stop, whether or not it had one ("…them." and "…them" both give "…them."). */
export function closed(text) {
  return /[.!?…]$/.test(text) ? text : `${text}.`;
}
