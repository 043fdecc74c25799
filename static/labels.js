/* The nine head labels the server gives, in its order, with what each means and the colour of its chip.
   Colours are Okabe–Ito (distinguishable with every common colour-vision deficiency); every chip also
   carries the label as text, so colour is never the only cue. */

export const LABELS = [
  { name: "broadcaster", colour: "#E69F00", ink: "#000",
    meaning: "most attention lands on the first token, the resting place (“attention sink”) heads use when nothing else fits" },
  { name: "diagonal", colour: "#56B4E9", ink: "#000", meaning: "most attention stays on the current token itself" },
  { name: "previous-token", colour: "#009E73", ink: "#fff", meaning: "most attention lands on the token just before" },
  { name: "local", colour: "#F0E442", ink: "#000",
    meaning: "most attention lands 1 to 4 tokens back, spread over them rather than on one" },
  { name: "long-range", colour: "#0072B2", ink: "#fff", meaning: "most attention lands 5 or more tokens back" },
  { name: "duplicate-token", colour: "#D55E00", ink: "#fff",
    meaning: "with repeats, most attention goes to an earlier copy of the current token" },
  { name: "induction", colour: "#CC79A7", ink: "#000",
    meaning: "with repeats, most attention goes to the token that followed an earlier copy of the current token (“what came next last time”)" },
  { name: "diffuse", colour: "#8C8C8C", ink: "#fff", meaning: "attention is spread almost evenly over the sentence" },
  { name: "mixed", colour: "#E8E8E8", ink: "#000", meaning: "no single pattern takes a majority of the attention" },
];

export const LABEL = Object.fromEntries(LABELS.map((label) => [label.name, label]));

export const NEAR_LABELS = ["diagonal", "previous-token", "local"];  // heads that look at the current or nearby tokens

/** A label chip: a <span> with the label as text, coloured, with its meaning as a tooltip. */
export function labelChip(name, extraText = "") {
  const chip = document.createElement("span");
  paintChip(chip, name, extraText);
  return chip;
}

export function paintChip(chip, name, extraText = "") {
  const label = LABEL[name] || { colour: "#fff", ink: "#000", meaning: "" };
  chip.className = "chip";
  chip.textContent = extraText ? `${name} ${extraText}` : name;
  chip.style.backgroundColor = label.colour;
  chip.style.color = label.ink;
  chip.title = label.meaning;
}
