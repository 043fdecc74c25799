"""POST /api/compare: the same heads on two sentences (a minimal pair), and how much each head's attention changed.

    {"a": "The trophy doesn't fit in the suitcase because it is too big.",
     "b": "The trophy doesn't fit in the suitcase because it is too small.", "prepend_bos": true}

The answer holds both sentences as /api/attention answers them with format=packed ("a", "b"), the alignment
of their tokens, and for every head heads[layer][head] = {"change", "peak"}:

- change: the mean total-variation distance between the head's attention rows in A and B (half their L1
  distance), over the aligned query rows from the first token where the sentences differ onwards. The rows
  before it are the same in both by causality: a query sees only the tokens up to itself, and those are equal.
- peak: the aligned row that changed most, {"query_a", "query_b", "distance"}; null when no row is compared.

When the sentences tokenize differently the tokens are aligned (`align`): the common prefix position by
position, then difflib over the rest of the ids, a replaced run of equal length pairing up one to one. Rows are
compared where both queries are aligned; over keys, an aligned key is one outcome of both distributions and a
key without a partner is an outcome of its own, so its whole mass counts towards the distance.
"""

from dataclasses import replace
from difflib import SequenceMatcher

import numpy as np
from flask import Blueprint, current_app

from twelve_heads.errors import InputError
from twelve_heads.modeldir import BOS_TOKEN

from .api import ATTENTION_FIELDS, cached_json, respond
from .memory import release_freed_memory
from .fields import Field, Fields, boolean, heads_of_model, knocked_out_heads, model_name, sentence
from .intervene import head_mask

bp = Blueprint("compare", __name__)

CHANGE_DIGITS = 6  # a distance in [0, 1]; the packed attention it comes from is exact to 7.6e-6


def compared_sentence(field: Field, value) -> str:
    text = sentence(field, value)
    if not text.strip():  # the engine would say "the text is empty" without saying which
        raise InputError(f'"{field.name}" is empty; type {field.help}')
    return text


# /api/compare's fields, in the order they are checked; the README's table lists each.
COMPARE_FIELDS = Fields(
    Field("a", compared_sentence, None, "the first sentence"),
    Field("b", compared_sentence, None, "the sentence to compare it with"),
    Field("model", model_name, None, "a name from /api/models; DEFAULT_MODEL when absent"),
    Field("prepend_bos", boolean, False, f"put {BOS_TOKEN} first in both"),
    Field("ablate", knocked_out_heads, [], "heads to knock out in both runs, [[layer, head], …], as /api/attention's",
          check=heads_of_model),
    example='{"a": "The trophy is too big.", "b": "The trophy is too small."}',
)
SENTENCES = ("a", "b")


@bp.post("/api/compare")
def compare():
    options = COMPARE_FIELDS.parse()
    engine = current_app.extensions["heads.models"].get(options.model)
    key = replace(options, model=engine.name)  # its own class: never equal to an /api/attention key
    return cached_json(key, lambda: compute(engine, options))


def compute(engine, options) -> dict:
    tokenized = {name: tokenize(engine, name, options) for name in SENTENCES}
    COMPARE_FIELDS.check(options, engine)
    if max(len(ids) for ids, _ in tokenized.values()) <= current_app.config["LONG_SENTENCE_TOKENS"]:
        return describe(engine, options, tokenized)
    with current_app.extensions["heads.long_sentences"]:  # as /api/attention; here two (L, H, T, T) arrays
        try:
            return describe(engine, options, tokenized)
        finally:
            release_freed_memory()


def describe(engine, options, tokenized) -> dict:
    mask = head_mask(engine.n_layer, engine.n_head, options.ablate) if options.ablate else None
    results = {name: engine.attend_ids(ids, offsets, mask) for name, (ids, offsets) in tokenized.items()}
    alignment = align(results["a"].ids, results["b"].ids)
    # Each sentence as /api/attention answers it with format=packed: the page's format, and its per-layer
    # fetching for long sentences.
    as_attention = {name: ATTENTION_FIELDS.options_type(text=getattr(options, name), model=options.model,
                                                        prepend_bos=options.prepend_bos, sink_aware=False,
                                                        format="packed", layer=None, ablate=options.ablate,
                                                        predict=False) for name in SENTENCES}
    n_layer, n_head = engine.n_layer, engine.n_head
    return {
        "model": engine.name,
        "synthetic": engine.synthetic,
        "n_layer": n_layer,
        "n_head": n_head,
        "prepend_bos": options.prepend_bos,
        "alignment": alignment,
        "heads": head_changes(results["a"].attention, results["b"].attention, alignment),
        **{name: respond(engine, as_attention[name], result) for name, result in results.items()},
    }


def align(ids_a: list[int], ids_b: list[int]) -> dict:
    """Which positions of A and B are the same token slot. The common prefix pairs up position by position (so
    the rows that causality makes identical are compared with their twins); difflib aligns the rest."""
    first_difference = 0
    while first_difference < min(len(ids_a), len(ids_b)) and ids_a[first_difference] == ids_b[first_difference]:
        first_difference += 1
    pairs = [[index, index] for index in range(first_difference)]
    rest_a, rest_b = ids_a[first_difference:], ids_b[first_difference:]
    for tag, a0, a1, b0, b1 in SequenceMatcher(a=rest_a, b=rest_b, autojunk=False).get_opcodes():
        if tag == "equal" or (tag == "replace" and a1 - a0 == b1 - b0):  # " big" → " small": the same slot
            pairs += [[first_difference + a, first_difference + b] for a, b in zip(range(a0, a1), range(b0, b1))]
    matched_a, matched_b = {a for a, _ in pairs}, {b for _, b in pairs}
    return {
        "same_positions": len(ids_a) == len(ids_b) == len(pairs),  # every token pairs with the one at its index
        "n_tokens": [len(ids_a), len(ids_b)],
        "first_difference": first_difference,
        "compared_rows": len(pairs) - first_difference,
        "pairs": pairs,
        "unmatched_a": [index for index in range(len(ids_a)) if index not in matched_a],
        "unmatched_b": [index for index in range(len(ids_b)) if index not in matched_b],
    }


def row_distances(attention_a: np.ndarray, attention_b: np.ndarray, alignment: dict) -> np.ndarray:
    """(H, T_a, T_a) and (H, T_b, T_b) of one layer → (H, m): the total-variation distance of each aligned row."""
    pairs = np.asarray(alignment["pairs"], dtype=np.intp).reshape(-1, 2)
    rows_a, rows_b = attention_a[:, pairs[:, 0]], attention_b[:, pairs[:, 1]]  # (H, m, T_a), (H, m, T_b)
    matched = np.abs(rows_a[..., pairs[:, 0]] - rows_b[..., pairs[:, 1]]).sum(-1, dtype=np.float64)
    alone_a = rows_a[..., alignment["unmatched_a"]].sum(-1, dtype=np.float64)  # mass on keys B does not have
    alone_b = rows_b[..., alignment["unmatched_b"]].sum(-1, dtype=np.float64)
    return (matched + alone_a + alone_b) / 2


def head_changes(attention_a: np.ndarray, attention_b: np.ndarray, alignment: dict) -> list[list[dict]]:
    """heads[layer][head] = {"change", "peak"} (see the module docstring). Layer by layer: the aligned rows of a
    whole 1,024-token sentence would be another copy of its attention."""
    pairs, first = alignment["pairs"], alignment["first_difference"]
    heads = []
    for layer in range(attention_a.shape[0]):
        compared = row_distances(attention_a[layer], attention_b[layer], alignment)[:, first:]  # (H, rows)
        heads.append([describe_change(distances, pairs[first:]) for distances in compared])
    return heads


def describe_change(distances: np.ndarray, pairs: list[list[int]]) -> dict:
    if distances.size == 0:  # A ends before it differs from B (or they are equal): no row of A can change
        return {"change": 0.0, "peak": None}
    peak = int(distances.argmax())
    return {"change": round(float(distances.mean()), CHANGE_DIGITS),
            "peak": {"query_a": pairs[peak][0], "query_b": pairs[peak][1],
                     "distance": round(float(distances[peak]), CHANGE_DIGITS)}}


def tokenize(engine, name: str, options) -> tuple[list[int], list[tuple[int, int]]]:
    try:
        return engine.tokenize(getattr(options, name), prepend_bos=options.prepend_bos)
    except InputError as err:  # which of the two sentences it is about
        raise InputError(f"sentence {name}: {err}", status=err.status) from None
