/* What each token of a sentence stands for, beyond its text: the pieces of a character GPT-2 splits into several
   tokens. Pure (tests/js/tokens.test.mjs). */

/** For each token, null or {character, piece, pieces}: the token is piece `piece` (1-based) of the `pieces`
 *  tokens that together spell `character`. GPT-2 reads bytes, so an emoji's four bytes may become three tokens;
 *  the tokenizer gives each of them the span of that character, so tokens whose spans overlap share one.
 *  `offsets` are the server's [start, end) spans in code points of `text` (a prepended token has [0, 0]). */
export function characterPieces(tokens, offsets, text) {
  const characters = Array.from(text);  // code points, as the server counts
  const groups = [];  // runs of neighbouring tokens whose spans overlap
  for (let index = 0; index < tokens.length; index++) {
    const previous = groups.at(-1);
    const joined = previous && overlaps(offsets[previous.at(-1)], offsets[index]);
    if (joined) previous.push(index);
    else groups.push([index]);
  }
  const pieces = tokens.map(() => null);
  for (const group of groups) {
    if (group.length < 2) continue;
    const start = Math.max(...group.slice(1).map((index) => offsets[index][0]));  // the shared character(s)
    const end = Math.min(...group.slice(0, -1).map((index) => offsets[index][1]));
    const character = characters.slice(Math.min(start, end), Math.max(start, end)).join("");
    group.forEach((index, at) => { pieces[index] = { character, piece: at + 1, pieces: group.length }; });
  }
  return pieces;
}

/** The bytes a token's display shows as \xNN, as "f0 9f" (empty when it shows none). */
export function bytesOf(token) {
  return Array.from(token.matchAll(/\\x([0-9a-f]{2})/g), (match) => match[1]).join(" ");
}

// ---- pure helpers ----

function overlaps([start, end], [otherStart, otherEnd]) {
  return start < end && otherStart < otherEnd && start < otherEnd && otherStart < end;
}
