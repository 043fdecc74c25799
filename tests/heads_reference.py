"""THE OLD IMPLEMENTATION of server/heads.py, frozen as it was at e907791, kept only to prove that the rewrite
gives identical results (tests/test_heads_equality.py) and to time both (benchmarks/bench_heads.py).

Do not import it from product code and do not change it: it is the oracle. Its rules are documented in
server/heads.py, which is the one home of the labelling.
"""

from functools import lru_cache
from typing import NamedTuple, Sequence

import numpy as np

LABELS = ("broadcaster", "diagonal", "previous-token", "local", "long-range",
          "duplicate-token", "induction", "diffuse", "mixed")
SCORE_NAMES = ("first", "self", "previous", "local", "long_range", "distance", "entropy",
               "duplicate_token", "induction")

LOCAL_WINDOW = 4  # tokens: "local" is a distance of 1..4 behind the query
LONG_RANGE_MIN_DISTANCE = LOCAL_WINDOW + 1  # tokens; adjacent to the window, so the four shares partition a row
FIRST_SCORED_ROW = 2  # see the module docstring: the first row where first/previous/self are distinct keys

DOMINANT = 0.5  # a majority: first, self, local and long_range partition each row, so only one can hold it
DIFFUSE_ENTROPY = 0.8  # a uniform spread over half of 32 keys scores 0.80; past that no focus can be named
MIN_REPEAT_ROWS = 3  # one repeated word can match a token pattern by accident; three rows that match cannot
RUNNER_UP_MARGIN = 0.15  # a second label within 15 points of the winner is worth showing
EMPTY_ROW_MASS = 1e-6  # sink-aware: a row with less mass than this off the first token says nothing
STOCHASTIC_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; 1e-3 only catches real mistakes
# TransformerLens's own defaults for compute_head_attention_similarity_score, used for the public scores.
TL_EXCLUDE_BOS = False
TL_EXCLUDE_CURRENT_TOKEN = False

WHOLE_ARRAY_BYTES = 32 * 2**20  # above this (about T = 240 for 144 heads) score layer by layer, see _analyse_by_layers
FOCUSED = ("broadcaster", "diagonal", "previous-token", "duplicate-token", "induction")  # tie order: LABELS
RANGES = ("local", "long-range")
GROUPS = (FOCUSED, ("diffuse",), RANGES)  # tried in this order: the first group with a label that holds decides
# A label the winner contains is no rival: every previous-token head is also local, and a spread-out head
# lands mostly "far back" only because most keys are far back.
CONTAINED = {"previous-token": ("local",), "diffuse": RANGES}
# What each label but mixed is measured by. All heads are labelled at once (_decide), with labels as indices:
# the label at index i is measured by strength column i, and of equal strengths the lowest index wins.
STRENGTH_OF = {"broadcaster": "first", "diagonal": "self", "previous-token": "previous", "local": "local",
               "long-range": "long_range", "duplicate-token": "duplicate_focus", "induction": "induction_focus",
               "diffuse": "entropy"}
assert LABELS == (*STRENGTH_OF, "mixed")
MIXED, DIFFUSE = LABELS.index("mixed"), LABELS.index("diffuse")
NO_RUNNER_UP = len(LABELS)
LABEL_NAMES = np.array([*LABELS, None], dtype=object)  # index -> name, or None; object, so .tolist() gives str
THRESHOLDS = np.array([DIFFUSE_ENTROPY if label == "diffuse" else DOMINANT for label in STRENGTH_OF])  # (8,)
GROUP = np.array([[label in group for group in GROUPS] for label in STRENGTH_OF]).argmax(axis=1)  # (8,): its group
NOT_RIVAL = np.array([[other == label or other in CONTAINED.get(label, ()) for other in STRENGTH_OF]
                      for label in LABELS])  # (9, 8): [winner, other]
# Why a head got its label. {0}: the share quoted (the label's strength; for a token label, the share of
# attention on its targets; for mixed, the largest pattern's); {1}: rows with an earlier copy; {2}: that pattern.
REASONS = {
    "broadcaster": "{0:.0%} of attention lands on the first token",
    "diagonal": "{0:.0%} of attention stays on the token itself",
    "previous-token": "{0:.0%} of attention lands on the token just before",
    "local": f"{{0:.0%}} of attention lands 1 to {LOCAL_WINDOW} tokens back (first token aside)",
    "long-range": f"{{0:.0%}} of attention lands {LONG_RANGE_MIN_DISTANCE} or more tokens back (first token aside)",
    "duplicate-token": "in the {1:.0f} rows whose token appeared before, {0:.0%} of attention goes to "
                       "an earlier copy of it",
    "induction": "in the {1:.0f} rows whose token appeared before, {0:.0%} of attention goes to "
                 "the token that followed an earlier copy",
    "diffuse": "attention is spread almost evenly (entropy at {0:.0%} of its maximum)",
    "mixed": "no single pattern takes a majority; the largest is {2} at {0:.0%}",
}
SINK_AWARE_NOTE = " (of the attention not on the first token)"
FIRST_ASIDE = " (first token aside)"  # the one wording change since it was frozen: said once
# Why a head has no scored row: the sentence is too short (by its length), or else (sink-aware) a pure sink.
NOTHING_SCORED = {1: "one token gives nothing to choose from",
                  2: "two tokens give nothing to tell apart: the previous token is also the first"}
NOTHING_LEFT = "all attention sits on the first token; nothing is left once it is set aside"


def duplicate_token_pattern(ids: Sequence[int]) -> np.ndarray:  # (T, T)
    """TransformerLens's duplicate-token detection pattern: key j is a target of query i when j < i holds
    the same token. (transformer_lens/head_detector.py, get_duplicate_token_head_detection_pattern.)"""
    ids = np.asarray(ids)
    return np.tril(ids[:, None] == ids[None, :], k=-1).astype(np.float64)


def induction_pattern(ids: Sequence[int]) -> np.ndarray:  # (T, T)
    """TransformerLens's induction detection pattern: the duplicate pattern shifted one key right, with
    nothing in key 0. So key j (1 <= j <= i) is a target when token j-1 equals token i; note it includes
    the query itself when the previous token repeats it. (head_detector.py, get_induction_head_detection_pattern.)"""
    duplicate = duplicate_token_pattern(ids)
    pattern = np.zeros_like(duplicate)
    pattern[:, 1:] = duplicate[:, :-1]  # already lower-triangular: duplicate[i, j-1] needs j-1 < i
    return pattern


def tl_similarity_score(attention: np.ndarray, pattern: np.ndarray, *, exclude_bos: bool = TL_EXCLUDE_BOS,
                        exclude_current_token: bool = TL_EXCLUDE_CURRENT_TOKEN) -> np.ndarray:
    """TransformerLens's compute_head_attention_similarity_score with error_measure="mul": the share of
    all attention (summed over every row, row 0 included) that falls on the pattern's query-key pairs.
    (..., T, T) x (T, T) -> (...). Where no attention is left to compare (TransformerLens would divide
    by zero) the score is 0; a pattern with no targets (no repeated token) scores 0, as it does there."""
    attention = np.asarray(attention)
    if exclude_bos or exclude_current_token:
        attention = attention.copy()
        if exclude_bos:
            attention[..., 0] = 0.0
        if exclude_current_token:
            rows = np.arange(attention.shape[-1])
            attention[..., rows, rows] = 0.0
    # [0, ...], not [0]: a single (T, T) attention still gives a 0-d array, not a numpy scalar.
    return _tl_scores(attention, np.asarray(pattern, dtype=attention.dtype)[None])[0, ...]


def _tl_scores(attention: np.ndarray, patterns: np.ndarray) -> np.ndarray:  # (..., T, T) x (K, T, T) -> (K, ...)
    """tl_similarity_score for K patterns at once: one einsum and one total."""
    total = attention.sum(axis=(-2, -1))
    matched = np.einsum("...ij,kij->k...", attention, patterns)
    return np.divide(matched, total, out=np.zeros_like(matched), where=total > 0)


def head_scores(attention: np.ndarray, ids: Sequence[int], sink_aware: bool = False) -> dict[str, np.ndarray]:
    """Every score in SCORE_NAMES, each in [0, 1], plus "mean_distance_tokens"; each an (L, H) array."""
    return _analyse_by_layers(_validated(attention, ids), ids, sink_aware)[0]


def label_heads(attention: np.ndarray, ids: Sequence[int], sink_aware: bool = False) -> list[list[dict]]:
    """[layer][head] -> {"label", "confidence", "runner_up", "scores", "mean_distance_tokens", "reason"}.
    Decides on the exact scores; reports them rounded to 4 decimals."""
    attention = _validated(attention, ids)
    scores, evidence = _analyse_by_layers(attention, ids, sink_aware)
    flat = {name: np.ravel(values) for name, values in (scores | evidence).items()}  # (N,) each, N = L * H heads
    strength = np.stack([flat[name] for name in STRENGTH_OF.values()], axis=-1, dtype=np.float64)  # (N, 8)
    label, confidence, runner_up, largest = _decide(strength, flat["scored_rows"] == 0)
    reasons = _reasons(label, largest, strength, flat, attention.shape[-1], sink_aware)
    # Plain Python values, converted once per array: per-element float() and round() cost more than the scoring.
    # And "scores" spelled out, SCORE_NAMES in order: a dict literal builds in half the time of dict(zip()).
    shown = np.round(np.stack([flat[name] for name in (*SCORE_NAMES, "mean_distance_tokens")]), 4).tolist()
    heads = [{"label": name, "confidence": value, "runner_up": second,
              "scores": {"first": first, "self": self_, "previous": previous, "local": local,
                         "long_range": long_range, "distance": distance, "entropy": entropy,
                         "duplicate_token": duplicate_token, "induction": induction},
              "mean_distance_tokens": distance_tokens, "reason": reason}
             for (name, value, second, reason, first, self_, previous, local, long_range, distance, entropy,
                  duplicate_token, induction, distance_tokens) in zip(
                 LABEL_NAMES[label].tolist(), [round(value, 4) for value in confidence.tolist()],
                 LABEL_NAMES[runner_up].tolist(), reasons,
                 *shown)]
    n_heads = attention.shape[1]
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


def _validated(attention, ids) -> np.ndarray:
    attention = np.asarray(attention)
    if not np.issubdtype(attention.dtype, np.number) or np.iscomplexobj(attention):
        raise ValueError(f"attention must hold real numbers; got dtype {attention.dtype}")
    # float32 stays float32: a float64 copy of 144 heads costs more than all the scoring (and 4 decimals need no more).
    attention = attention.astype(np.result_type(attention.dtype, np.float32), copy=False)
    if attention.ndim != 4:
        raise ValueError("attention must have 4 dimensions (layers, heads, queries, keys); "
                         f"got shape {attention.shape}")
    if attention.shape[-1] != attention.shape[-2]:
        raise ValueError(f"attention must be square over queries and keys; got shape {attention.shape}")
    n_tokens = attention.shape[-1]
    if n_tokens == 0:
        raise ValueError("attention covers no tokens; pass a sentence of at least one token")
    if len(ids) != n_tokens:
        raise ValueError(f"ids has {len(ids)} tokens but attention covers {n_tokens}; "
                         "pass the ids of the same sentence")
    if not np.isfinite(attention).all():
        raise ValueError("attention contains NaN or infinite values")
    if attention.min(initial=0.0) < -STOCHASTIC_TOLERANCE:
        raise ValueError("attention holds negative weights; pass softmax output, not raw scores")
    above_diagonal = _positions(n_tokens, attention.dtype).above_diagonal
    if np.einsum("lhij,ij->lh", attention, above_diagonal).max(initial=0.0) > STOCHASTIC_TOLERANCE:
        raise ValueError("attention is not causal (a query attends to a later key); pass GPT-2's masked pattern")
    # einsum, not .sum(axis=-1): 4x faster on rows this short, and a check within 1e-3 cares not in which order.
    worst_row = np.abs(np.einsum("lhij->lhi", attention) - 1.0).max(initial=0.0)
    if worst_row > STOCHASTIC_TOLERANCE:
        raise ValueError("attention rows must be probabilities summing to 1; pass softmax output, not raw scores")
    return attention


class _Positions(NamedTuple):
    """What depends on the sentence length alone; the arrays summed against attention are in its dtype."""
    masks: np.ndarray  # (3, T, T) key weights: local, long-range (key 0 in neither), distance i - j
    live: list  # for each mask, the rows its sum is computed on (see _live_rows)
    scored: np.ndarray  # (T,) 1.0 for a scored row (see the module docstring), else 0.0
    above_diagonal: np.ndarray  # (T, T)
    key_tokens: np.ndarray  # (2, T) index: key j's own token, and the token before it (for key 0: any, unused)
    token_keys: np.ndarray  # (2, 2, T, T) bool: where a match may count, for the TL patterns then the targets


@lru_cache(maxsize=8)
def _positions(n_tokens: int, dtype: np.dtype) -> _Positions:
    """Built once per length and dtype (and read-only, as every call shares it)."""
    query, key = np.arange(n_tokens)[:, None], np.arange(n_tokens)[None, :]
    behind = np.maximum(query - key, 0)
    local = (behind >= 1) & (behind <= LOCAL_WINDOW) & (key >= 1)
    long_range = (behind >= LONG_RANGE_MIN_DISTANCE) & (key >= 1)
    masks = np.stack([local, long_range, behind]).astype(dtype)
    # TL's duplicate pattern matches earlier keys j < i, its induction pattern keys 1 <= j <= i (after an earlier
    # copy). The labelling targets leave out key 0 and the query itself (TransformerLens's exclude_bos and
    # exclude_current_token, applied to the targets): a sink or diagonal head must not pass for either.
    earlier, earlier_not_first = key < query, (key < query) & (key >= 1)
    token_keys = np.array([[earlier, (key <= query) & (key >= 1)], [earlier_not_first, earlier_not_first]])
    positions = _Positions(masks, _live_rows(masks.any(axis=-1)), (query[:, 0] >= FIRST_SCORED_ROW).astype(np.float64),
                           np.triu(np.ones_like(masks[0]), k=1), np.stack([key[0], key[0] - 1]), token_keys)
    for array in positions:
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return positions


@lru_cache(maxsize=8)
def _row_constants(n_tokens: int, sink_aware: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T,) each: the keys a row can choose from (at least 1), and the divisors that turn a row's distance
    (at least 1: 1 = everything on the earliest key left) and entropy (log of at least 2 keys) into shares."""
    rows = np.arange(n_tokens)  # query position i
    first_key = 1 if sink_aware else 0  # the earliest key a row may still attend to
    n_keys = rows + 1 - first_key
    constants = np.maximum(n_keys, 1), np.maximum(rows - first_key, 1).astype(np.float64), np.log(np.maximum(n_keys, 2))
    for array in constants:
        array.flags.writeable = False
    return constants


def _live_rows(row_has_weight: np.ndarray) -> list[slice]:
    """(K, T) -> for each of K masks, the rows from FIRST_SCORED_ROW to its last nonzero row. A row of zero
    weights sums to exactly +0.0, and rows before FIRST_SCORED_ROW count for nothing: both are left at 0."""
    slices = []
    for has_weight in row_has_weight.tolist():  # plain Python: a few short rows, faster than numpy calls
        live = [row for row, has in enumerate(has_weight) if has and row >= FIRST_SCORED_ROW]
        slices.append(slice(live[0], live[-1] + 1) if live else slice(0, 0))
    return slices


# The per-row values _analyse averages, in the order it stacks them; the first READ are read off the attention
# (in its dtype), MASKED of them as sums against a (T, T) key mask. Shares and chances are averaged over the scored
# rows with an earlier copy of their token, the rest over all scored rows.
PER_ROW = ("first", "self", "previous", "local", "long_range", "distance_tokens", "duplicate_share",
           "induction_share", "distance", "entropy", "duplicate_chance", "induction_chance")
COLUMN = {name: column for column, name in enumerate(PER_ROW)}
READ = COLUMN["distance"]
MASKED = ("local", "long_range", "distance_tokens", "duplicate_share", "induction_share")  # _Positions.masks, targets
SHARES = [COLUMN["duplicate_share"], COLUMN["induction_share"]]
CHANCES = [COLUMN["duplicate_chance"], COLUMN["induction_chance"]]
AVERAGED_OVER = np.array([2 if "induction" in name else 1 if "duplicate" in name else 0 for name in PER_ROW])
SCORE_COLUMNS = [COLUMN[name] for name in SCORE_NAMES[:7]]  # first ... entropy


class _Tokens(NamedTuple):
    """What depends on the sentence's ids: computed once per sentence, also when scored layer by layer."""
    patterns: np.ndarray  # (2, T, T) TransformerLens duplicate and induction patterns, in the attention's dtype
    targets: np.ndarray  # (2, T, T) the same, as labelling targets (no key 0, no query)
    live: list  # rows with a target (see _live_rows)
    counts: np.ndarray  # (2, T) targets per row
    weights: np.ndarray  # (len(PER_ROW), T) which rows each of PER_ROW is averaged over, 1.0 or 0.0


def _tokens(ids, positions: _Positions, dtype: np.dtype) -> _Tokens:
    """duplicate_token_pattern and induction_pattern, and their targets, from one comparison."""
    ids = np.asarray(ids)
    same = ids[:, None] == ids[positions.key_tokens][:, None, :]  # [k, i, j]: token i is token j (k = 0), j - 1 (k = 1)
    matches = same & positions.token_keys  # (2, 2, T, T)
    counts = np.count_nonzero(matches[1], axis=-1)
    patterns, targets = matches.astype(dtype)
    covered = positions.scored * (counts > 0)  # rows whose token appeared before
    weights = np.vstack([positions.scored, covered])[AVERAGED_OVER]
    return _Tokens(patterns, targets, _live_rows(counts > 0), counts, weights)


def _analyse_by_layers(attention: np.ndarray, ids, sink_aware: bool) -> tuple[dict, dict]:
    """_analyse, one layer at a time once the array is large: its temporaries (log, sink-aware copy) are
    each as big as the input, 600 MB at T = 1,024 for all layers, but 50 MB for one."""
    positions = _positions(attention.shape[-1], attention.dtype)
    tokens = _tokens(ids, positions, attention.dtype)
    if attention.nbytes <= WHOLE_ARRAY_BYTES:
        return _analyse(attention, positions, tokens, sink_aware)
    parts = [_analyse(attention[layer:layer + 1], positions, tokens, sink_aware)
             for layer in range(attention.shape[0])]
    return tuple({name: np.concatenate([part[which][name] for part in parts]) for name in parts[0][which]}
                 for which in (0, 1))


def _analyse(attention: np.ndarray, positions: _Positions, tokens: _Tokens, sink_aware: bool) -> tuple[dict, dict]:
    """(public scores, labelling evidence): dicts of (L, H) arrays.

    Labels are decided on exact values at thresholds, so every sum keeps the order it has always had: einsum's
    over a row's keys, .sum()'s over a head's rows (a matmul would reorder float32 sums). Speed comes from doing
    less: no sums over rows a mask leaves empty, and one float64 stack for all the averages."""
    n_layers, n_heads, n_tokens = attention.shape[:3]
    n_keys, distance_divisor, entropy_divisor = _row_constants(n_tokens, sink_aware)
    read, row_entropy, tl, has_mass = _read(attention, positions, tokens, sink_aware)

    per_row = np.empty((len(read), len(PER_ROW), n_tokens))  # (N, 12, T)
    per_row[:, :READ] = read
    np.divide(per_row[:, COLUMN["distance_tokens"]], distance_divisor, out=per_row[:, COLUMN["distance"]])
    np.divide(row_entropy, entropy_divisor, out=per_row[:, COLUMN["entropy"]])
    per_row[:, CHANCES] = tokens.counts / n_keys  # what an evenly spread head puts on the targets
    per_row *= tokens.weights
    if sink_aware:
        per_row *= has_mass  # an empty row says nothing
        totals = (has_mass @ tokens.weights.T)[:, 0]  # (N, 12): counts of rows, exact in any order
    else:
        totals = tokens.weights.sum(axis=-1)  # (12,)
    sums = per_row.sum(axis=-1)
    means = np.divide(sums, totals, out=np.zeros_like(sums), where=totals > 0).T.reshape(-1, n_layers, n_heads)
    totals = np.broadcast_to(totals, sums.shape).T.reshape(-1, n_layers, n_heads)

    # The clip only absorbs float rounding (an entropy of 1 + 1e-16); the tests check the row partition unclipped.
    scores = dict(zip(SCORE_NAMES, np.clip(means[SCORE_COLUMNS], 0.0, 1.0)))
    tl = np.clip(tl, 0.0, 1.0).astype(np.float64)
    scores["duplicate_token"], scores["induction"] = tl.reshape(2, n_layers, n_heads)
    scores["mean_distance_tokens"] = means[COLUMN["distance_tokens"]]

    share, chance, n_covered = means[SHARES], means[CHANCES], totals[SHARES]  # n_covered: rows with an earlier copy
    # Lift over a uniform head, which would score `chance`: 0 = no better than spreading evenly, 1 = all on targets.
    lift = np.clip((share - chance) / (1.0 - chance), 0.0, 1.0)
    focus = np.where(n_covered >= MIN_REPEAT_ROWS, lift, 0.0)
    evidence = {"scored_rows": totals[0]}
    for name, *values in zip(("duplicate", "induction"), focus, share, n_covered):
        evidence[f"{name}_focus"], evidence[f"{name}_share"], evidence[f"{name}_rows"] = values
    return scores, evidence


def _read(attention: np.ndarray, positions: _Positions, tokens: _Tokens, sink_aware: bool) -> tuple:
    """What _analyse needs from the attention itself, N = L * H heads: (N, READ, T) PER_ROW[:READ], the (N, T) row
    entropy, the (2, N) TransformerLens scores, and (sink-aware; else None) the (N, 1, T) rows with mass left.
    A function of its own so that its temporaries, each as big as the attention, are gone before _analyse's."""
    n_layers, n_heads, n_tokens = attention.shape[:3]
    n = n_layers * n_heads
    has_mass = None
    if sink_aware:
        attention = attention.copy()  # (L, H, T, T)
        attention[..., 0] = 0.0
        remaining = attention.sum(axis=-1)  # (L, H, T)
        has_mass = remaining > EMPTY_ROW_MASS
        attention /= np.where(has_mass, remaining, 1.0)[..., None]  # an all-sink row stays ~0, never NaN
        has_mass = has_mass.reshape(n, 1, n_tokens).astype(np.float64)
    flat = attention.reshape(n, n_tokens, n_tokens)

    read = np.zeros((n, READ, n_tokens), attention.dtype)  # zeros: previous has no row 0; see _live_rows
    read[:, COLUMN["first"]] = flat[:, :, 0]
    read[:, COLUMN["self"]] = np.diagonal(flat, axis1=1, axis2=2)
    read[:, COLUMN["previous"], 1:] = np.diagonal(flat, offset=-1, axis1=1, axis2=2)
    for name, mask, rows in zip(MASKED, [*positions.masks, *tokens.targets], positions.live + tokens.live):
        if rows.stop > rows.start:  # one einsum per mask: a stack of masks in one call runs slower
            np.einsum("nij,ij->ni", flat[:, rows], mask[rows], out=read[:, COLUMN[name], rows])
    # log p where p > 0, else log 1 = 0: so 0 log 0 = 0, and a slightly negative weight (within the tolerance)
    # adds nothing. Adding 1 to the zeros costs a third of a masked log; negative weights are rare.
    log_attention = (flat <= 0).astype(flat.dtype)
    log_attention += flat
    if flat.min() < 0:
        log_attention[flat < 0] = 1.0
    np.log(log_attention, out=log_attention)
    row_entropy = np.einsum("nij,nij->ni", flat, log_attention)
    np.negative(row_entropy, out=row_entropy)
    return read, row_entropy, _tl_scores(flat, tokens.patterns), has_mass


def _decide(strength: np.ndarray, empty: np.ndarray) -> tuple[np.ndarray, ...]:
    """The rules of the module docstring for all heads at once. (N, 8) strengths and the (N,) heads without a
    scored row -> (N,) label, confidence, runner-up (NO_RUNNER_UP for none) and largest pattern but diffuse."""
    heads = np.arange(len(strength))
    holds = (strength >= THRESHOLDS) & ~empty[:, None]
    group = np.where(holds, GROUP, len(GROUPS)).min(axis=-1, keepdims=True)  # the first group that holds
    label = _strongest(strength, holds & (GROUP == group))
    label[group[:, 0] == len(GROUPS)] = MIXED
    mixed = label == MIXED
    largest = _strongest(strength, np.arange(MIXED) != DIFFUSE)
    # Mixed: the attention no single pattern claims. Else: the winner's strength.
    confidence = np.column_stack([strength, 1.0 - strength[heads, largest]])[heads, label]

    # Mixed: the pattern nearest its threshold, if near. Else: the strongest rival, if close to the winner.
    short = THRESHOLDS - strength
    nearest = np.argmin(short, axis=-1)
    best = _strongest(strength, ~NOT_RIVAL[label])
    best_strength = strength[heads, best]
    close = np.where(mixed, short[heads, nearest] <= RUNNER_UP_MARGIN,
                     (best_strength > 0) & (best_strength >= confidence - RUNNER_UP_MARGIN))
    runner_up = np.where(close & ~empty, np.where(mixed, nearest, best), NO_RUNNER_UP)
    return label, np.where(empty, 0.0, confidence), runner_up, largest


def _strongest(strength: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """(N, 8) strengths -> (N,) the index of the strongest allowed one; of equals the first, as max() picks."""
    return np.argmax(np.where(allowed, strength, -np.inf), axis=-1)


def _reasons(label: np.ndarray, largest: np.ndarray, strength: np.ndarray, flat: dict, n_tokens: int,
             sink_aware: bool) -> list[str]:
    """Each head's reason, from _decide's label and largest pattern and label_heads's flat (N,) scores."""
    heads = np.arange(len(label))
    quoted = np.column_stack([strength, strength[heads, largest]])  # (N, 9): the share quoted, by label
    quoted[:, LABELS.index("duplicate-token")] = flat["duplicate_share"]
    quoted[:, LABELS.index("induction")] = flat["induction_share"]
    rows = np.where(label == LABELS.index("induction"), flat["induction_rows"], flat["duplicate_rows"])
    note = SINK_AWARE_NOTE if sink_aware else ""
    templates = np.array([(REASONS[name].replace(FIRST_ASIDE, "") if note else REASONS[name]) + note
                          for name in LABELS] + [NOTHING_SCORED.get(n_tokens, NOTHING_LEFT)],
                         dtype=object)  # the last: a head without a scored row
    template = templates[np.where(flat["scored_rows"] == 0, len(LABELS), label)]
    return list(map(str.format, template.tolist(), quoted[heads, label].tolist(), rows.tolist(),
                    LABEL_NAMES[largest].tolist()))

