"""Score and label every attention head from its attention pattern (numpy only).

`head_scores(attention, ids)` turns an (L, H, T, T) causal, row-stochastic attention array into (L, H)
scores; `label_heads` names each head; `layer_counts` tallies the names per layer. `sink_aware=True`
scores the same heads with the first token's column removed and rows renormalised, to show a pattern
hiding behind an attention sink.

What each label means is LABEL_MEANINGS (the README and /api/models say the same); what each score measures
is SCORE_MEANINGS. "Most" means a majority (50%). The rules, in `decide`, are tried in LABEL_MEANINGS's order,
specific before general: of the first five, the one with the most evidence wins (on an exact tie the
positional one, which would hold on any sentence); only then diffuse; only then local or long-range; else
mixed. Duplicate-token and induction count only when at least 3 rows have an earlier copy of their token,
and are measured as lift over what an evenly spread head would score there, so a sentence like "a a a a"
cannot hand them to every head.

Which rows count, and how each score is measured over them: server/scores.py.
"""

from typing import NamedTuple, Sequence

import numpy as np

from .detector import duplicate_token_pattern, induction_pattern, tl_similarity_score  # noqa: F401 (public here too)
from .scores import LOCAL_WINDOW, LONG_RANGE_MIN_DISTANCE, ROW_SCORES, measure, validated

DOMINANT = 0.5  # a majority: first, self, local and long_range partition each row, so only one can hold it
DIFFUSE_ENTROPY = 0.8  # a uniform spread over half of 32 keys scores 0.80; past that no focus can be named
RUNNER_UP_MARGIN = 0.15  # a second label within 15 points of the winner is worth showing

# The labels, in the order the rules try them, each with its meaning (/api/models sends them to the page).
LABEL_MEANINGS = {
    "broadcaster": "most attention lands on the first token, the \"attention sink\" heads use as a resting place.",
    "diagonal": "most attention stays on the current token itself.",
    "previous-token": "most attention lands on the token just before.",
    "duplicate-token": "in a sentence with repeats, most attention goes to an earlier copy of the current token.",
    "induction": "in a sentence with repeats, most attention goes to the token that followed an earlier copy of "
                 "the current token (\"what came next last time\").",
    "diffuse": "attention is spread almost evenly over the sentence (normalised entropy of "
               f"{DIFFUSE_ENTROPY} or more).",
    "local": f"most attention lands 1 to {LOCAL_WINDOW} tokens back (the first token aside), but not mostly on "
             "one of them.",
    "long-range": f"most attention lands {LONG_RANGE_MIN_DISTANCE} or more tokens back, not on the first token.",
    "mixed": "no single pattern takes a majority of the attention.",
}
# Each head's scores, each in [0, 1], averaged over its scored rows (the two TransformerLens scores: over all rows).
SCORE_MEANINGS = {
    "first": "the share of attention on the first token.",
    "self": "the share of attention a token keeps on itself.",
    "previous": "the share of attention on the token just before.",
    "local": f"the share of attention 1 to {LOCAL_WINDOW} tokens back, the first token aside.",
    "long_range": f"the share of attention {LONG_RANGE_MIN_DISTANCE} or more tokens back, the first token aside.",
    "distance": "how far back attention reaches, as a fraction of the farthest it could: 0 on the token itself, "
                "1 all on the earliest token.",
    "entropy": "how evenly attention is spread: 0 all on one token, 1 evenly over every token it can see.",
    "duplicate_token": "TransformerLens's duplicate-token score: the share of all attention on earlier copies of "
                       "the current token.",
    "induction": "TransformerLens's induction score: the share of all attention on the token that followed an "
                 "earlier copy of the current token.",
}
LABELS = ("broadcaster", "diagonal", "previous-token", "local", "long-range",
          "duplicate-token", "induction", "diffuse", "mixed")  # the order of layer_counts and of the page's chips
SCORE_NAMES = tuple(SCORE_MEANINGS)
assert set(LABELS) == set(LABEL_MEANINGS) and SCORE_NAMES == (*ROW_SCORES, "duplicate_token", "induction")

# What each label but mixed is measured by, in LABELS order: of equal strengths, the label listed first wins.
STRENGTH_OF = {"broadcaster": "first", "diagonal": "self", "previous-token": "previous", "local": "local",
               "long-range": "long_range", "duplicate-token": "duplicate_focus", "induction": "induction_focus",
               "diffuse": "entropy"}
THRESHOLD = {label: DIFFUSE_ENTROPY if label == "diffuse" else DOMINANT for label in STRENGTH_OF}
FOCUSED = ("broadcaster", "diagonal", "previous-token", "duplicate-token", "induction")
RANGES = ("local", "long-range")
PATTERNS = tuple(label for label in STRENGTH_OF if label != "diffuse")  # what a mixed head is a mixture of
# A label the winner contains is no rival: every previous-token head is also local, and a spread-out head
# lands mostly "far back" only because most keys are far back.
CONTAINED = {"previous-token": ("local",), "diffuse": RANGES}
RIVALS = {label: tuple(other for other in STRENGTH_OF if other != label and other not in CONTAINED.get(label, ()))
          for label in STRENGTH_OF}  # the labels that may be runner-up to each winner
assert LABELS == (*STRENGTH_OF, "mixed")

# Why a head got its label: {share} is the share quoted (the label's strength; for a token label, the share of
# attention on its targets; for mixed, the largest pattern's), {rows} the rows with an earlier copy, {pattern}
# the largest pattern.
REASONS = {
    "broadcaster": "{share:.0%} of attention lands on the first token",
    "diagonal": "{share:.0%} of attention stays on the token itself",
    "previous-token": "{share:.0%} of attention lands on the token just before",
    "local": f"{{share:.0%}} of attention lands 1 to {LOCAL_WINDOW} tokens back (first token aside)",
    "long-range": f"{{share:.0%}} of attention lands {LONG_RANGE_MIN_DISTANCE} or more tokens back (first token aside)",
    "duplicate-token": "in the {rows:.0f} rows whose token appeared before, {share:.0%} of attention goes to "
                       "an earlier copy of it",
    "induction": "in the {rows:.0f} rows whose token appeared before, {share:.0%} of attention goes to "
                 "the token that followed an earlier copy",
    "diffuse": "attention is spread almost evenly (entropy at {share:.0%} of its maximum)",
    "mixed": "no single pattern takes a majority; the largest is {pattern} at {share:.0%}",
}
SINK_AWARE_NOTE = " (of the attention not on the first token)"
FIRST_ASIDE = " (first token aside)"  # in the local and long-range reasons; the sink-aware note says it already
# Why a head has no scored row: the sentence is too short (by its length), or else (sink-aware) a pure sink.
NOTHING_SCORED = {1: "one token gives nothing to choose from",
                  2: "two tokens give nothing to tell apart: the previous token is also the first"}
NOTHING_LEFT = "all attention sits on the first token; nothing is left once it is set aside"


# --- the rules: one head at a time (decide), and every head at once (label_indices) ------------------------

def decide(strength: dict[str, float]) -> tuple[str, float, str | None]:
    """One head with at least one scored row -> (label, confidence, runner-up or None). `strength` holds each
    label's measure (STRENGTH_OF), each in [0, 1]; max() and min() take the first of equals, in LABELS order."""
    focused = [label for label in FOCUSED if strength[label] >= DOMINANT]
    if focused:
        label = max(focused, key=strength.get)
    elif strength["diffuse"] >= DIFFUSE_ENTROPY:
        label = "diffuse"
    elif ranges := [label for label in RANGES if strength[label] >= DOMINANT]:
        label = max(ranges, key=strength.get)
    else:  # mixed: confident by the attention no single pattern claims; the runner-up is the nearest miss, if near
        short = {label: THRESHOLD[label] - strength[label] for label in STRENGTH_OF}
        nearest = min(short, key=short.get)
        runner_up = nearest if short[nearest] <= RUNNER_UP_MARGIN else None
        return "mixed", 1.0 - max(strength[pattern] for pattern in PATTERNS), runner_up
    rival = max(RIVALS[label], key=strength.get)
    close = strength[rival] > 0 and strength[rival] >= strength[label] - RUNNER_UP_MARGIN
    return label, strength[label], rival if close else None


def label_indices(measured: dict[str, np.ndarray]) -> np.ndarray:  # -> (L, H) indices into LABELS
    """The label `label_heads` gives each head, as an index into LABELS, for every head at once: `decide`'s rules
    on arrays, for the atlas, which labels every head of every item and needs no reasons (tests/test_atlas_fast.py
    holds the two to each other). `measured` is what scores.measure returns."""
    strength = np.stack([measured[name] for name in STRENGTH_OF.values()], axis=-1)  # (L, H, 8) in LABELS order
    focused, ranged = _largest_passing(strength, FOCUSED), _largest_passing(strength, RANGES)
    diffuse, mixed = LABELS.index("diffuse"), LABELS.index("mixed")
    nothing_scored = measured["scored_rows"] == 0
    return np.select([nothing_scored, focused >= 0, strength[..., diffuse] >= DIFFUSE_ENTROPY, ranged >= 0],
                     [mixed, focused, diffuse, ranged], default=mixed)


def _largest_passing(strength: np.ndarray, labels: tuple[str, ...]) -> np.ndarray:  # (..., 8) -> (...)
    """Of `labels` (in LABELS order), the index of the one with the largest strength among those at DOMINANT or
    more, the first of equals as decide's max() takes it; -1 where none is."""
    columns = np.array([LABELS.index(label) for label in labels])
    candidates = strength[..., columns]
    passing = candidates >= DOMINANT
    largest = np.where(passing, candidates, -np.inf).argmax(axis=-1)  # argmax: the first of equals
    return np.where(passing.any(axis=-1), columns[largest], -1)


def reason(label: str, strength: dict[str, float], evidence: "HeadEvidence") -> str:
    """Why a head with a scored row got its label, in the words of REASONS."""
    if label == "mixed":
        largest = max(PATTERNS, key=strength.get)
        return REASONS[label].format(share=strength[largest], pattern=largest)
    if label == "duplicate-token":
        return REASONS[label].format(share=evidence.duplicate_share, rows=evidence.duplicate_rows)
    if label == "induction":
        return REASONS[label].format(share=evidence.induction_share, rows=evidence.induction_rows)
    return REASONS[label].format(share=strength[label])


class HeadEvidence(NamedTuple):
    """What a head's reason quotes besides its strengths."""
    scored_rows: float  # rows its scores are averaged over (0: nothing to judge)
    duplicate_share: float  # share of attention on earlier copies, over the rows that have one
    duplicate_rows: float
    induction_share: float
    induction_rows: float


# --- the public functions ----------------------------------------------------------------------------------------

def head_scores(attention: np.ndarray, ids: Sequence[int], sink_aware: bool = False) -> dict[str, np.ndarray]:
    """Every score in SCORE_NAMES, each in [0, 1], plus "mean_distance_tokens"; each an (L, H) array."""
    measured = measure(validated(attention, ids), ids, sink_aware)
    return {name: measured[name] for name in (*SCORE_NAMES, "mean_distance_tokens")}


def label_heads(attention: np.ndarray, ids: Sequence[int], sink_aware: bool = False) -> list[list[dict]]:
    """[layer][head] -> {"label", "confidence", "runner_up", "scores", "mean_distance_tokens", "reason"}.
    Decides on the exact scores; reports them rounded to 4 decimals."""
    attention = validated(attention, ids)
    n_layers, n_heads, n_tokens = attention.shape[:3]
    measured = measure(attention, ids, sink_aware)

    def per_head(names) -> np.ndarray:  # (L * H, len(names)): one row per head, made plain Python once per array
        return np.stack([measured[name].ravel() for name in names], axis=-1)

    shown = np.round(per_head((*SCORE_NAMES, "mean_distance_tokens")), 4).tolist()
    strengths, evidences = per_head(STRENGTH_OF.values()).tolist(), per_head(HeadEvidence._fields).tolist()
    note, nothing = SINK_AWARE_NOTE if sink_aware else "", NOTHING_SCORED.get(n_tokens, NOTHING_LEFT)
    heads = []
    for strength, evidence, values in zip(strengths, evidences, shown):
        strength, evidence = dict(zip(STRENGTH_OF, strength)), HeadEvidence(*evidence)
        if evidence.scored_rows:
            label, confidence, runner_up = decide(strength)
            why = reason(label, strength, evidence)
            why = why.replace(FIRST_ASIDE, "") + note if note else why
        else:  # nothing to judge: the sentence is too short, or (sink-aware) the head is a pure sink
            label, confidence, runner_up, why = "mixed", 0.0, None, nothing
        heads.append({"label": label, "confidence": round(confidence, 4), "runner_up": runner_up,
                      "scores": dict(zip(SCORE_NAMES, values)), "mean_distance_tokens": values[-1], "reason": why})
    return [heads[start:start + n_heads] for start in range(0, len(heads), n_heads)]


def layer_counts(labels: list[list[dict]]) -> list[dict[str, int]]:
    """For each layer, how many heads carry each label (every label present, zeros included)."""
    counts = []
    for layer in labels:
        tally = dict.fromkeys(LABELS, 0)
        for head in layer:
            tally[head["label"]] += 1
        counts.append(tally)
    return counts
