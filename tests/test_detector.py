"""server/detector.py: TransformerLens's detection patterns and similarity score, checked by hand, and the
scores head_scores reports with them."""

import numpy as np
import pytest

from twelve_heads.server.detector import duplicate_token_pattern, induction_pattern, tl_similarity_score
from twelve_heads.server.heads import head_scores

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
