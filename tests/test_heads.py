"""server/heads.py: scores stay in [0, 1] for any causal attention, planted heads get their label, and the
TransformerLens scores match hand-computed values."""

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from twelve_heads.server.heads import (LABELS, SCORE_NAMES, duplicate_token_pattern, head_scores, induction_pattern,
                          label_heads, layer_counts, tl_similarity_score)

NEAR_ONE = 0.8  # "confidence near 1" for a planted head
SCORE_ATOL = 1e-9


# ---- building attention -------------------------------------------------------------------------------

def normalised(weights: np.ndarray) -> np.ndarray:  # (..., T, T) non-negative -> causal, row-stochastic
    causal = weights * np.tril(np.ones(weights.shape[-2:]))
    return causal / causal.sum(axis=-1, keepdims=True)


def planted(n_tokens: int, keys_of_row) -> np.ndarray:
    """(1, 1, T, T): row i spreads its mass evenly over keys_of_row(i) (clipped to the keys 0..i it may see)."""
    attention = np.zeros((1, 1, n_tokens, n_tokens))
    for row in range(n_tokens):
        keys = [key for key in keys_of_row(row) if 0 <= key <= row] or [0]
        attention[0, 0, row, keys] = 1.0 / len(keys)
    return attention


def mixture(n_tokens: int, shares: dict) -> np.ndarray:
    """(1, 1, T, T): each row puts shares[name] on one key, name in {"first", "self", "previous"}."""
    attention = np.zeros((1, 1, n_tokens, n_tokens))
    for row in range(n_tokens):
        for name, share in shares.items():
            attention[0, 0, row, {"first": 0, "self": row, "previous": max(row - 1, 0)}[name]] += share
    return attention


def only_head(attention, ids, sink_aware=False) -> dict:
    return label_heads(attention, ids, sink_aware)[0][0]


def repeated_random_sequence(half: int, seed: int = 0) -> list[int]:
    """`half` distinct random tokens, then the same tokens again: every second-half token has one earlier copy."""
    first_half = np.random.default_rng(seed).choice(50257, size=half, replace=False).tolist()
    return first_half + first_half


@st.composite
def attention_and_ids(draw):
    """Causal row-stochastic (L, H, T, T) attention from random log-weights, so rows range from near-uniform to
    near one-hot (which empties rows in the sink-aware view), and ids from a 4-token vocabulary (many repeats)."""
    n_layers, n_heads, n_tokens = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 24))
    log_weights = draw(hnp.arrays(np.float64, (n_layers, n_heads, n_tokens, n_tokens),
                                  elements=st.floats(-30, 30, allow_nan=False)))
    ids = draw(st.lists(st.integers(0, 3), min_size=n_tokens, max_size=n_tokens))
    return normalised(np.exp(log_weights)), ids


# ---- properties for any attention --------------------------------------------------------------------

@pytest.mark.parametrize("sink_aware", [False, True])
@settings(max_examples=150, deadline=None)
@given(case=attention_and_ids())
def test_every_score_is_a_finite_number_in_the_unit_interval(case, sink_aware):
    attention, ids = case
    scores = head_scores(attention, ids, sink_aware)
    assert set(scores) == {*SCORE_NAMES, "mean_distance_tokens"}
    for name in SCORE_NAMES:
        assert scores[name].shape == attention.shape[:2]
        assert np.isfinite(scores[name]).all() and (scores[name] >= 0).all() and (scores[name] <= 1).all(), name
    assert ((scores["mean_distance_tokens"] >= 0) & (scores["mean_distance_tokens"] <= len(ids) - 1)).all()


@pytest.mark.parametrize("sink_aware", [False, True])
@settings(max_examples=150, deadline=None)
@given(case=attention_and_ids())
def test_every_head_gets_a_known_label_and_every_layer_counts_all_its_heads(case, sink_aware):
    attention, ids = case
    labels = label_heads(attention, ids, sink_aware)
    json.dumps(labels)  # plain Python values only
    for layer in labels:
        assert len(layer) == attention.shape[1]
        for head in layer:
            assert list(head) == ["label", "confidence", "runner_up", "scores", "mean_distance_tokens", "reason"]
            assert list(head["scores"]) == list(SCORE_NAMES)
            assert head["label"] in LABELS
            assert 0 <= head["confidence"] <= 1
            assert head["runner_up"] is None or head["runner_up"] in set(LABELS) - {head["label"]}
            assert all(0 <= value <= 1 for value in head["scores"].values())
            assert head["reason"]
    for counts in layer_counts(labels):
        assert list(counts) == list(LABELS)
        assert sum(counts.values()) == attention.shape[1]


@settings(max_examples=150, deadline=None)
@given(case=attention_and_ids())
def test_first_self_local_and_long_range_split_each_row_and_previous_is_part_of_local(case):
    attention, ids = case
    scores = head_scores(attention, ids)
    total = scores["first"] + scores["self"] + scores["local"] + scores["long_range"]
    np.testing.assert_allclose(total, 1.0 if len(ids) >= 3 else 0.0, atol=1e-9)
    assert (scores["previous"] <= scores["local"] + 1e-12).all()


@settings(max_examples=150, deadline=None)
@given(case=attention_and_ids())
def test_sink_aware_scores_give_the_first_token_nothing_and_split_what_is_left(case):
    attention, ids = case
    scores = head_scores(attention, ids, sink_aware=True)
    assert (scores["first"] == 0).all()
    total = scores["self"] + scores["local"] + scores["long_range"]  # 1 per head, or 0 when nothing is left
    assert np.all(np.isclose(total, 1.0, atol=1e-9) | np.isclose(total, 0.0, atol=1e-9))


@pytest.mark.parametrize("sink_aware", [False, True])
@settings(max_examples=100, deadline=None)
@given(case=attention_and_ids())
def test_the_tl_scores_are_tl_similarity_score_with_the_public_patterns(case, sink_aware):
    # The scorer builds both patterns in one comparison; they must stay the ones documented and exported.
    attention, ids = case
    scores = head_scores(attention, ids, sink_aware)
    if sink_aware:  # the same view of the attention the scorer takes: first column out, rows renormalised
        attention = attention.copy()
        attention[..., 0] = 0.0
        remaining = attention.sum(axis=-1, keepdims=True)
        attention /= np.where(remaining > 1e-6, remaining, 1.0)
    for name, pattern in (("duplicate_token", duplicate_token_pattern(ids)), ("induction", induction_pattern(ids))):
        np.testing.assert_allclose(scores[name], np.clip(tl_similarity_score(attention, pattern), 0, 1), atol=1e-12)


def test_a_slightly_negative_weight_adds_nothing_to_the_entropy():
    # Validation lets float noise below zero through; there, as for a zero weight, p log p must count as 0.
    zeroed = planted(T, lambda i: range(i + 1))
    zeroed[0, 0, 5] = [0.25] * 4 + [0.0] * (T - 4)
    nudged = zeroed.copy()
    nudged[0, 0, 5, 4] = -1e-5  # the row now sums to 1 - 1e-5, within the tolerance
    assert head_scores(nudged, DISTINCT)["entropy"][0, 0] == head_scores(zeroed, DISTINCT)["entropy"][0, 0]


# ---- planted heads -----------------------------------------------------------------------------------

T = 32
DISTINCT = list(range(100, 100 + T))  # no repeats, so no token label can apply


@pytest.mark.parametrize("keys_of_row, expected", [
    (lambda i: [i], "diagonal"),
    (lambda i: [i - 1], "previous-token"),
    (lambda i: [0], "broadcaster"),
    (lambda i: range(i + 1), "diffuse"),
    # Key i-6, falling back to key 1 while i-6 < 1. Rows 2..5 land 1-4 tokens back (local); rows 6..31 land
    # 5 or more back: long_range = 26 / 30 scored rows = 0.867.
    (lambda i: [i - 6] if i - 6 >= 1 else [1], "long-range"),
], ids=["diagonal", "previous-token", "broadcaster", "diffuse", "long-range"])
def test_a_planted_positional_head_gets_its_label_with_confidence_near_one(keys_of_row, expected):
    head = only_head(planted(T, keys_of_row), DISTINCT)
    assert head["label"] == expected
    assert head["confidence"] >= NEAR_ONE


@pytest.mark.parametrize("sink_aware", [False, True])
def test_entropy_is_one_for_an_even_spread_and_zero_for_a_single_key(sink_aware):
    # Sink-aware, the even spread over keys 0..i becomes an even spread over the i keys 1..i: still the maximum.
    assert head_scores(planted(T, lambda i: range(i + 1)), DISTINCT, sink_aware)["entropy"][0, 0] == pytest.approx(1.0)
    assert head_scores(planted(T, lambda i: [i - 1]), DISTINCT, sink_aware)["entropy"][0, 0] == 0.0


@pytest.mark.parametrize("keys_of_row, distance, tokens", [
    (lambda i: [i - 1], np.mean([1 / i for i in range(2, T)]), 1.0),  # one token back, out of i possible
    (lambda i: [0], 1.0, np.mean(range(2, T))),  # the farthest key: i tokens back, averaged over rows 2..31 = 16.5
    (lambda i: [i], 0.0, 0.0),
], ids=["previous", "first", "self"])
def test_distance_is_the_share_of_the_way_back_to_the_first_token(keys_of_row, distance, tokens):
    scores = head_scores(planted(T, keys_of_row), DISTINCT)
    assert scores["distance"][0, 0] == pytest.approx(distance)
    assert scores["mean_distance_tokens"][0, 0] == pytest.approx(tokens)


def test_a_head_spread_evenly_over_the_three_previous_tokens_is_local_not_previous_token():
    # Rows 2 and 3 can reach key 0, which counts as first: local = (28 + 1/2 + 2/3) / 30 = 0.972.
    head = only_head(planted(T, lambda i: [i - 1, i - 2, i - 3]), DISTINCT)
    assert head["label"] == "local"
    assert head["confidence"] == pytest.approx(0.9722, abs=1e-4)
    assert head["scores"]["previous"] < 0.5


def test_a_head_on_earlier_copies_of_the_current_token_is_duplicate_token():
    ids = repeated_random_sequence(16)
    # First half: nothing repeated yet, so the head rests on the first token (as GPT-2 heads do).
    head = only_head(planted(T, lambda i: [i - 16] if i >= 16 else [0]), ids)
    assert head["label"] == "duplicate-token"
    assert head["confidence"] >= NEAR_ONE
    # Row 16 repeats token 0, the first token, which token evidence leaves out: 15 rows, not 16.
    assert head["reason"] == ("in the 15 rows whose token appeared before, "
                              "100% of attention goes to an earlier copy of it")


def test_a_head_on_the_token_after_an_earlier_copy_is_induction():
    ids = repeated_random_sequence(16)
    head = only_head(planted(T, lambda i: [i - 15] if i >= 16 else [0]), ids)
    assert head["label"] == "induction"
    assert head["confidence"] >= NEAR_ONE
    assert head["runner_up"] is None


@pytest.mark.parametrize("repeats, expected", [(2, "mixed"), (3, "duplicate-token")])
def test_token_labels_need_three_rows_with_an_earlier_copy(repeats, expected):
    # Eight distinct tokens, then copies of tokens 3, 4, 5...; the head finds each copy and spreads evenly elsewhere.
    ids = list(range(100, 108)) + [103, 104, 105][:repeats]
    head = only_head(planted(len(ids), lambda i: [i - 5] if i >= 8 else range(i + 1)), ids)
    assert head["label"] == expected


def test_a_uniform_head_on_a_sentence_of_one_repeated_token_is_diffuse_not_duplicate_token():
    # Every earlier key is a duplicate here, so spreading evenly is no evidence of looking for duplicates.
    head = only_head(planted(12, lambda i: range(i + 1)), [7] * 12)
    assert head["label"] == "diffuse"


def test_staying_on_the_current_token_is_not_induction_even_where_tl_counts_it():
    # In "a a b b c c ..." the second of each pair follows a copy of itself, so TransformerLens's induction
    # pattern targets the query itself there. A head on itself in those rows (first token elsewhere) is no
    # induction head: its TL induction score is high, its label is not induction.
    ids = [token for token in range(100, 116) for _ in range(2)]
    attention = planted(T, lambda i: [i] if i % 2 else [0])
    assert head_scores(attention, ids)["induction"][0, 0] == pytest.approx(0.5)  # 16 of 32 rows, all on target
    assert only_head(attention, ids)["label"] != "induction"


def test_a_tie_between_a_positional_and_a_token_pattern_goes_to_the_positional_label():
    # On "a a a a" the previous token is also an earlier copy: both explain all the attention.
    head = only_head(planted(12, lambda i: [i - 1]), [7] * 12)
    assert (head["label"], head["runner_up"]) == ("previous-token", "duplicate-token")


@pytest.mark.parametrize("shares, label, runner_up", [
    ({"first": 0.5, "self": 0.5}, "broadcaster", "diagonal"),
    ({"self": 0.5, "previous": 0.5}, "diagonal", "previous-token"),
])
def test_an_exact_tie_between_positional_labels_goes_to_the_one_listed_first(shares, label, runner_up):
    # Exactly half each: a majority (it is "at least" 50%) for both, so the tie order of LABELS decides.
    head = only_head(mixture(T, shares), DISTINCT)
    assert (head["label"], head["confidence"], head["runner_up"]) == (label, 0.5, runner_up)


def test_confidence_is_the_exact_strength_rounded_as_python_rounds_it():
    # 0.50015 is stored as 0.500149999...: round() gives 0.5001, where rint(0.50015 * 1e4) / 1e4 gives 0.5002
    # (the product rounds to exactly 5001.5, then to even).
    head = only_head(mixture(T, {"first": 0.50015, "self": 0.49985}), DISTINCT)
    assert (head["label"], head["confidence"]) == ("broadcaster", 0.5001)


def test_the_reason_states_the_share_in_plain_words():
    head = only_head(mixture(T, {"first": 0.71, "self": 0.29}), DISTINCT)
    assert (head["label"], head["reason"]) == ("broadcaster", "71% of attention lands on the first token")


def test_a_close_second_pattern_is_the_runner_up_but_a_contained_one_is_not():
    close = only_head(mixture(T, {"first": 0.55, "previous": 0.45}), DISTINCT)
    assert (close["label"], close["runner_up"]) == ("broadcaster", "previous-token")
    previous = only_head(planted(T, lambda i: [i - 1]), DISTINCT)  # local = 1.0 too, but contains it
    assert previous["runner_up"] is None


def test_a_head_with_no_majority_is_mixed_and_names_its_largest_pattern():
    head = only_head(mixture(T, {"first": 0.4, "self": 0.3, "previous": 0.3}), DISTINCT)
    assert head["label"] == "mixed"
    assert head["confidence"] == pytest.approx(0.6)  # the attention no single pattern claims
    assert head["runner_up"] == "broadcaster"  # 10 points short of a majority
    assert head["reason"] == "no single pattern takes a majority; the largest is broadcaster at 40%"


def test_layer_counts_tally_every_label_per_layer():
    heads = [planted(T, keys)[0, 0] for keys in (lambda i: [i], lambda i: [i - 1], lambda i: [0], lambda i: [0])]
    attention = np.stack([np.stack(heads), np.stack(heads[::-1])])  # (2, 4, T, T)
    counts = layer_counts(label_heads(attention, DISTINCT))
    expected = {**dict.fromkeys(LABELS, 0), "diagonal": 1, "previous-token": 1, "broadcaster": 2}
    assert counts == [expected, expected]


# ---- sentences too short to judge -------------------------------------------------------------------

@pytest.mark.parametrize("n_tokens, reason", [
    (1, "one token gives nothing to choose from"),
    (2, "two tokens give nothing to tell apart: the previous token is also the first"),
])
def test_a_sentence_too_short_to_choose_is_mixed_with_zero_confidence(n_tokens, reason):
    head = only_head(planted(n_tokens, lambda i: range(i + 1)), list(range(n_tokens)))
    assert (head["label"], head["confidence"], head["runner_up"], head["reason"]) == ("mixed", 0.0, None, reason)
    assert set(head["scores"].values()) == {0.0}


# ---- sink-aware view ----------------------------------------------------------------------------------

def test_a_previous_token_head_behind_a_sink_shows_once_the_sink_is_set_aside():
    attention = mixture(T, {"first": 0.6, "previous": 0.4})
    plain = only_head(attention, DISTINCT)
    assert (plain["label"], plain["confidence"]) == ("broadcaster", 0.6)
    sink_aware = only_head(attention, DISTINCT, sink_aware=True)
    assert (sink_aware["label"], sink_aware["confidence"]) == ("previous-token", 1.0)
    assert sink_aware["scores"]["first"] == 0.0


def test_a_pure_sink_has_nothing_left_in_the_sink_aware_view():
    head = only_head(planted(T, lambda i: [0]), DISTINCT, sink_aware=True)
    assert (head["label"], head["confidence"]) == ("mixed", 0.0)
    assert head["reason"] == "all attention sits on the first token; nothing is left once it is set aside"
    assert set(head["scores"].values()) == {0.0}


def test_sink_aware_distance_is_normalised_by_the_farthest_key_left():
    # Row i on key 1, the farthest key once key 0 is gone: distance 1 sink-aware; plain it is (i-1)/i < 1.
    attention = planted(8, lambda i: [1])
    assert head_scores(attention, list(range(8)), sink_aware=True)["distance"][0, 0] == pytest.approx(1.0)
    assert head_scores(attention, list(range(8)))["distance"][0, 0] < 1.0


# ---- TransformerLens scores, by hand ------------------------------------------------------------------

# Four tokens; each row spreads its mass as written (rows sum to 1, total 4).
SMALL = np.array([[1.0, 0.0, 0.0, 0.0],
                  [0.5, 0.5, 0.0, 0.0],
                  [0.2, 0.3, 0.5, 0.0],
                  [0.1, 0.2, 0.3, 0.4]])


def test_tl_patterns_on_a_repeated_pair():
    # ids 5 7 5 7: token 2 copies token 0, token 3 copies token 1; induction looks one key later.
    assert np.argwhere(duplicate_token_pattern([5, 7, 5, 7])).tolist() == [[2, 0], [3, 1]]
    assert np.argwhere(induction_pattern([5, 7, 5, 7])).tolist() == [[2, 1], [3, 2]]


def test_tl_induction_pattern_includes_the_query_when_the_previous_token_repeats_it():
    # ids 3 3 3: row 1's previous token (0) equals token 1, so key 1, the query itself, is a target.
    assert np.argwhere(induction_pattern([3, 3, 3])).tolist() == [[1, 1], [2, 1], [2, 2]]


def test_tl_scores_match_hand_computed_values_with_tl_defaults():
    scores = head_scores(SMALL[None, None], [5, 7, 5, 7])
    # duplicate: (A[2,0] + A[3,1]) / 4 = (0.2 + 0.2) / 4 = 0.1; induction: (A[2,1] + A[3,2]) / 4 = 0.6 / 4 = 0.15
    assert scores["duplicate_token"][0, 0] == pytest.approx(0.1)
    assert scores["induction"][0, 0] == pytest.approx(0.15)


def test_tl_scores_on_a_run_of_one_token_count_the_diagonal_for_induction():
    attention = np.array([[[[1.0, 0.0, 0.0], [0.6, 0.4, 0.0], [0.2, 0.3, 0.5]]]])
    scores = head_scores(attention, [3, 3, 3])
    # duplicate targets (1,0) (2,0) (2,1): (0.6 + 0.2 + 0.3) / 3 = 0.3667
    # induction targets (1,1) (2,1) (2,2): (0.4 + 0.3 + 0.5) / 3 = 0.4
    assert scores["duplicate_token"][0, 0] == pytest.approx(1.1 / 3)
    assert scores["induction"][0, 0] == pytest.approx(0.4)


@pytest.mark.parametrize("exclude_bos, exclude_current_token, duplicate, induction", [
    (False, False, 0.4 / 4, 0.6 / 4),
    # column 0 zeroed: total 4 - 1.8 = 2.2; duplicate keeps only A[3,1] = 0.2
    (True, False, 0.2 / 2.2, 0.6 / 2.2),
    # diagonal zeroed: total 4 - 2.4 = 1.6
    (False, True, 0.4 / 1.6, 0.6 / 1.6),
])
def test_tl_exclude_options_remove_mass_from_both_sides_of_the_ratio(exclude_bos, exclude_current_token,
                                                                      duplicate, induction):
    options = dict(exclude_bos=exclude_bos, exclude_current_token=exclude_current_token)
    assert tl_similarity_score(SMALL, duplicate_token_pattern([5, 7, 5, 7]), **options) == pytest.approx(duplicate)
    assert tl_similarity_score(SMALL, induction_pattern([5, 7, 5, 7]), **options) == pytest.approx(induction)


def test_tl_scores_are_zero_not_nan_without_a_repeated_token_or_without_attention_left():
    scores = head_scores(SMALL[None, None], [1, 2, 3, 4])
    assert scores["duplicate_token"][0, 0] == 0.0 and scores["induction"][0, 0] == 0.0
    # One token, first column excluded: nothing left to divide by (TransformerLens would give NaN).
    assert tl_similarity_score(np.ones((1, 1)), duplicate_token_pattern([1]), exclude_bos=True) == 0.0


# ---- bad input ------------------------------------------------------------------------------------------

GOOD = SMALL[None, None]
NOT_CAUSAL = GOOD.copy()
NOT_CAUSAL[0, 0, 0] = [0.5, 0.5, 0.0, 0.0]
NEGATIVE = GOOD.copy()
NEGATIVE[0, 0, 1] = [1.5, -0.5, 0.0, 0.0]


@pytest.mark.parametrize("function", [head_scores, label_heads])
@pytest.mark.parametrize("attention, ids, message", [
    (SMALL, [1, 2, 3, 4], "attention must have 4 dimensions (layers, heads, queries, keys); got shape (4, 4)"),
    (np.ones((1, 1, 2, 3)) / 3, [1, 2], "attention must be square over queries and keys; got shape (1, 1, 2, 3)"),
    (np.ones((1, 1, 0, 0)), [], "attention covers no tokens; pass a sentence of at least one token"),
    (GOOD, [1, 2, 3], "ids has 3 tokens but attention covers 4; pass the ids of the same sentence"),
    (np.where(GOOD == 1.0, np.nan, GOOD), [1, 2, 3, 4], "attention contains NaN or infinite values"),
    (NOT_CAUSAL, [1, 2, 3, 4], "attention is not causal (a query attends to a later key); pass GPT-2's masked pattern"),
    (GOOD * 2, [1, 2, 3, 4], "attention rows must be probabilities summing to 1; pass softmax output, not raw scores"),
    (NEGATIVE, [1, 2, 3, 4], "attention holds negative weights; pass softmax output, not raw scores"),
    (np.full((1, 1, 1, 1), "x"), [1], "attention must hold real numbers; got dtype <U1"),
], ids=["3-dims", "not-square", "no-tokens", "ids-length", "nan", "not-causal", "not-stochastic", "negative",
        "strings"])
def test_bad_input_raises_a_value_error_that_says_what_to_pass(function, attention, ids, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        function(attention, ids)


def test_scoring_layer_by_layer_gives_the_same_labels(monkeypatch):
    """Large arrays are scored one layer at a time to bound memory; the result must not change."""
    import twelve_heads.server.scores as scores_module

    rng = np.random.default_rng(7)
    attention = np.tril(rng.random((3, 4, 40, 40))).astype(np.float32)
    attention /= attention.sum(-1, keepdims=True)
    ids = list(rng.integers(0, 12, 40))
    whole = [label_heads(attention, ids, sink_aware=aware) for aware in (False, True)]
    monkeypatch.setattr(scores_module, "WHOLE_ARRAY_BYTES", 0)
    assert [label_heads(attention, ids, sink_aware=aware) for aware in (False, True)] == whole
