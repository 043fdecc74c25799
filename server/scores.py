"""Per-head scores from (L, H, T, T) attention: sums over each row's keys, averaged over the rows that count.

The sums over keys are vectorised over all heads (they are what long sentences pay for); `measure` returns
(L, H) arrays that server/heads.py turns into labels. Numpy only.

Which rows count. Row 0 has one key, so no choice. Row 1 is skipped too: its only earlier key is the first
token, which is also the previous token and inside the local window, so its mass cannot be attributed.
From row 2 on, first, previous and current token are three different keys, and every row's mass splits
exactly into first + self + local + long_range (key 0 counts only as `first`, never as local or long-range).
So a sentence needs three tokens before anything can be told apart. The two TransformerLens scores are the
exception: they keep TransformerLens's definition, which sums over every row.

Labels are decided on exact values at thresholds, so every sum keeps one order: einsum's over a row's keys,
.sum()'s over a head's rows along one contiguous float64 axis (tests/test_heads_equality.py holds it to the
implementation it replaced, bit for bit).
"""

from __future__ import annotations  # the helpers, named in signatures, follow the functions that use them

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from .detector import duplicate_token_pattern, induction_pattern, similarity_scores

LOCAL_WINDOW = 4  # tokens: "local" is a distance of 1..4 behind the query
LONG_RANGE_MIN_DISTANCE = LOCAL_WINDOW + 1  # tokens; adjacent to the window, so the four shares partition a row
FIRST_SCORED_ROW = 2  # see the module docstring: the first row where first/previous/self are distinct keys
MIN_REPEAT_ROWS = 3  # one repeated word can match a token pattern by accident; three rows that match cannot
EMPTY_ROW_MASS = 1e-6  # sink-aware: a row with less mass than this off the first token says nothing
STOCHASTIC_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6; 1e-3 only catches real mistakes
# Above this (about T = 240 for 144 heads) heads are scored one layer at a time: the temporaries of scoring
# (the log, the sink-aware copy) are each as large as the attention, 600 MB for all layers at T = 1,024.
WHOLE_ARRAY_BYTES = 32 * 2**20
ROW_SCORES = ("first", "self", "previous", "local", "long_range", "distance", "entropy")  # averages of per-row values

def measure(attention: np.ndarray, ids, sink_aware: bool,
            set_aside: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every head's scores and labelling evidence, (L, H) each: ROW_SCORES, duplicate_token and induction (the
    TransformerLens scores), mean_distance_tokens, scored_rows, and for duplicate and induction the lift over
    chance (`_focus`), the share on the targets (`_share`) and the rows it was measured on (`_rows`). Once the
    array is over WHOLE_ARRAY_BYTES, one layer at a time. `set_aside`, sink-aware only: what
    without_first_token(attention) returns, when the caller has it already (the atlas needs it besides)."""
    sentence = _sentence(ids, attention.shape[-1], attention.dtype, sink_aware)
    if attention.nbytes <= WHOLE_ARRAY_BYTES:
        return _measure(attention, sentence, sink_aware, set_aside)
    parts = [_measure(attention[layer:layer + 1], sentence, sink_aware,
                      None if set_aside is None else tuple(part[layer:layer + 1] for part in set_aside))
             for layer in range(attention.shape[0])]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _measure(attention: np.ndarray, sentence: _Sentence, sink_aware: bool,
             set_aside: tuple[np.ndarray, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Scores and labelling evidence, (L, H) each."""
    n_layers, n_heads = attention.shape[:2]
    rows, tl_scores, has_mass = _per_row(attention, sentence, sink_aware, set_aside)
    means, counted = _averages(rows | sentence.chance, sentence.over, has_mass)

    def heads(values):  # (N,) -> (L, H)
        return values.reshape(n_layers, n_heads)

    # The clip only absorbs float rounding (an entropy of 1 + 1e-16); the tests check the row partition unclipped.
    measured = {name: heads(np.clip(means[name], 0.0, 1.0)) for name in ROW_SCORES}
    measured["duplicate_token"], measured["induction"] = np.clip(tl_scores, 0.0, 1.0).astype(np.float64).reshape(
        2, n_layers, n_heads)
    measured["mean_distance_tokens"] = heads(means["distance_tokens"])
    measured["scored_rows"] = heads(counted["first"])
    for kind in ("duplicate", "induction"):
        share, chance, n_covered = means[f"{kind}_share"], means[f"{kind}_chance"], counted[f"{kind}_share"]
        # Lift over an evenly spread head, which scores `chance`: 0 = no better than that, 1 = all on the targets.
        lift = np.clip((share - chance) / (1.0 - chance), 0.0, 1.0)
        measured[f"{kind}_focus"] = heads(np.where(n_covered >= MIN_REPEAT_ROWS, lift, 0.0))
        measured[f"{kind}_share"], measured[f"{kind}_rows"] = heads(share), heads(n_covered)
    return measured


def _per_row(attention: np.ndarray, sentence: _Sentence, sink_aware: bool,
             set_aside: tuple[np.ndarray, np.ndarray] | None) -> tuple[dict, np.ndarray, np.ndarray]:
    """{name: (N, T)} each row's value for N = L * H heads, the (2, N) TransformerLens scores, and (sink-aware;
    else None) the (N, T) rows with mass left. A function of its own so that its temporaries, each as big as the
    attention, are gone before the averages are taken."""
    n_layers, n_heads, n_tokens = attention.shape[:3]
    has_mass = None
    if sink_aware:
        attention, has_mass = without_first_token(attention) if set_aside is None else set_aside
        has_mass = has_mass.reshape(-1, n_tokens).astype(np.float64)
    flat = attention.reshape(n_layers * n_heads, n_tokens, n_tokens)  # (N, T, T)

    previous = np.zeros(flat.shape[:2], flat.dtype)  # row 0 has no previous token
    previous[:, 1:] = np.diagonal(flat, offset=-1, axis1=1, axis2=2)
    rows = {"first": flat[:, :, 0], "self": np.diagonal(flat, axis1=1, axis2=2), "previous": previous}
    for name, mask in sentence.key_masks.items():  # a sum over each row's keys: what long sentences pay for
        rows[name] = np.zeros(flat.shape[:2], flat.dtype)
        live = sentence.live[name]
        if live.stop > live.start:  # one einsum per mask: a stack of masks in one call runs slower
            np.einsum("nij,ij->ni", flat[:, live], mask[live], out=rows[name][:, live])
    rows["distance"] = rows["distance_tokens"] / sentence.distance_divisor  # 1 = all on the earliest key left
    rows["entropy"] = _row_entropy(flat) / sentence.entropy_divisor  # 1 = spread evenly over every key
    return rows, similarity_scores(flat, sentence.patterns), has_mass


def _averages(rows: dict, over: np.ndarray, has_mass: np.ndarray | None) -> tuple[dict, dict]:
    """Each of AVERAGED_OVER's per-row values, (N, T) or (T,), -> (N,) its mean over the rows it is averaged over,
    and how many rows that was; sink-aware, only rows with mass left count (has_mass, (N, T)). Labels are decided
    on exact values at thresholds, so the sums over rows are .sum()'s over one contiguous float64 axis."""
    n_heads, n_tokens = rows["first"].shape
    per_row = np.empty((n_heads, len(AVERAGED_OVER), n_tokens))  # (N, K, T)
    for column, name in enumerate(AVERAGED_OVER):
        per_row[:, column] = rows[name]
    per_row *= over
    if has_mass is None:
        counted = over.sum(axis=-1)  # (K,)
    else:
        per_row *= has_mass[:, None]  # an empty row says nothing
        counted = has_mass @ over.T  # (N, K) counts of rows, exact in any order
    totals = per_row.sum(axis=-1)  # (N, K)
    means = np.divide(totals, counted, out=np.zeros_like(totals), where=counted > 0)
    counted = np.broadcast_to(counted, totals.shape)
    return dict(zip(AVERAGED_OVER, means.T)), dict(zip(AVERAGED_OVER, counted.T))


# Each per-row value and the rows it is averaged over: the scored rows, or those of them with an earlier copy of
# their token (for the token labels: the rows they can be judged on).
AVERAGED_OVER = {**dict.fromkeys(("first", "self", "previous", "local", "long_range", "distance_tokens", "distance",
                                  "entropy"), "scored"),
                 "duplicate_share": "duplicate", "duplicate_chance": "duplicate",
                 "induction_share": "induction", "induction_chance": "induction"}


class _Sentence(NamedTuple):
    """What depends on the sentence alone (its length and ids), computed once also when scored layer by layer.
    The (T, T) key weights are in the attention's dtype, the per-row weights in float64."""
    key_masks: dict  # local, long_range, distance_tokens (weight i - j), duplicate_share, induction_share -> (T, T)
    live: dict  # the same names -> the rows each mask's sum is computed on (see _live_rows)
    patterns: np.ndarray  # (2, T, T) TransformerLens's duplicate and induction patterns
    chance: dict  # duplicate_chance, induction_chance -> (T,) the share an evenly spread head puts on the targets
    over: np.ndarray  # (len(AVERAGED_OVER), T) 1.0 for the rows each value is averaged over, else 0.0
    distance_divisor: np.ndarray  # (T,) the farthest a row can look back (at least 1)
    entropy_divisor: np.ndarray  # (T,) log of the keys a row can choose from (at least 2)


def _sentence(ids, n_tokens: int, dtype: np.dtype, sink_aware: bool) -> _Sentence:
    positions = _positions(n_tokens, dtype)
    first_key = 1 if sink_aware else 0  # the earliest key a row may still attend to
    n_keys = np.maximum(np.arange(n_tokens) + 1 - first_key, 1)  # (T,)
    patterns = np.stack([duplicate_token_pattern(ids), induction_pattern(ids)]).astype(dtype)  # (2, T, T)
    # The labelling targets leave out key 0 and the query itself (TransformerLens's exclude_bos and
    # exclude_current_token, applied to the targets): a sink or diagonal head must not pass for either.
    targets = patterns * positions.earlier_not_first  # (2, T, T)
    counts = np.count_nonzero(targets, axis=-1)  # (2, T) targets per row
    duplicate_rows, induction_rows = positions.scored * (counts > 0)  # (T,) each: scored rows with an earlier copy
    rows = {"scored": positions.scored, "duplicate": duplicate_rows, "induction": induction_rows}
    shares = ("duplicate_share", "induction_share")
    return _Sentence(key_masks=positions.masks | dict(zip(shares, targets)),
                     live=positions.live | dict(zip(shares, _live_rows(counts > 0))),
                     patterns=patterns,
                     chance=dict(zip(("duplicate_chance", "induction_chance"), counts / n_keys)),
                     over=np.stack([rows[kind] for kind in AVERAGED_OVER.values()]),
                     distance_divisor=np.maximum(np.arange(n_tokens) - first_key, 1).astype(np.float64),
                     entropy_divisor=np.log(np.maximum(n_keys, 2)))


class _Positions(NamedTuple):
    """What depends on the sentence length alone (read-only: every call of that length shares it)."""
    masks: dict  # local, long_range, distance_tokens -> (T, T) key weights; key 0 in neither range
    live: dict  # the same names -> the rows each mask's sum is computed on
    scored: np.ndarray  # (T,) 1.0 for a scored row (see the module docstring), else 0.0
    earlier_not_first: np.ndarray  # (T, T) 1.0 for keys 1 <= j < i
    above_diagonal: np.ndarray  # (T, T) 1.0 for keys j > i


@lru_cache(maxsize=8)
def _positions(n_tokens: int, dtype: np.dtype) -> _Positions:
    query, key = np.arange(n_tokens)[:, None], np.arange(n_tokens)[None, :]
    behind = np.maximum(query - key, 0)  # (T, T) tokens from query back to key
    masks = {"local": (behind >= 1) & (behind <= LOCAL_WINDOW) & (key >= 1),
             "long_range": (behind >= LONG_RANGE_MIN_DISTANCE) & (key >= 1), "distance_tokens": behind}
    masks = {name: mask.astype(dtype) for name, mask in masks.items()}
    live = dict(zip(masks, _live_rows(np.stack([mask.any(axis=-1) for mask in masks.values()]))))
    positions = _Positions(masks, live, (query[:, 0] >= FIRST_SCORED_ROW).astype(np.float64),
                           ((key < query) & (key >= 1)).astype(dtype), (key > query).astype(dtype))
    for array in (*masks.values(), *positions[2:]):
        array.flags.writeable = False
    return positions


def _live_rows(row_has_weight: np.ndarray) -> list[slice]:
    """(K, T) -> for each of K masks, the rows from FIRST_SCORED_ROW to its last nonzero row. A row of zero
    weights sums to exactly +0.0, and rows before FIRST_SCORED_ROW count for nothing: both are left at 0."""
    slices = []
    for has_weight in row_has_weight.tolist():  # plain Python: a few short rows
        live = [row for row, has in enumerate(has_weight) if has and row >= FIRST_SCORED_ROW]
        slices.append(slice(live[0], live[-1] + 1) if live else slice(0, 0))
    return slices


def without_first_token(attention: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sink-aware view: key 0 set aside and each row renormalised over the rest; and (L, H, T) whether a row
    had any mass left to renormalise (an all-sink row stays ~0, never NaN)."""
    attention = attention.copy()  # (L, H, T, T)
    attention[..., 0] = 0.0
    remaining = attention.sum(axis=-1)  # (L, H, T)
    has_mass = remaining > EMPTY_ROW_MASS
    attention /= np.where(has_mass, remaining, 1.0)[..., None]
    return attention, has_mass


def _row_entropy(flat: np.ndarray) -> np.ndarray:  # (N, T, T) -> (N, T)
    """-sum p log p over each row's keys, with 0 log 0 = 0; a slightly negative weight (within the tolerance)
    adds nothing either. Adding 1 where p <= 0 (log 1 = 0) is cheaper than a masked log."""
    log_attention = (flat <= 0).astype(flat.dtype)
    log_attention += flat
    if flat.min() < 0:
        log_attention[flat < 0] = 1.0
    np.log(log_attention, out=log_attention)
    return -np.einsum("nij,nij->ni", flat, log_attention)


def validated(attention, ids) -> np.ndarray:
    attention = np.asarray(attention)
    if not np.issubdtype(attention.dtype, np.number) or np.iscomplexobj(attention):
        raise ValueError(f"attention must hold real numbers; got dtype {attention.dtype}")
    # float32 stays float32: 4 decimals need no more, and a float64 copy of 144 heads would cost more than scoring.
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
    # einsum, not .sum(axis=-1): faster on rows this short, and a check within 1e-3 cares not in which order.
    worst_row = np.abs(np.einsum("lhij->lhi", attention) - 1.0).max(initial=0.0)
    if worst_row > STOCHASTIC_TOLERANCE:
        raise ValueError("attention rows must be probabilities summing to 1; pass softmax output, not raw scores")
    return attention
