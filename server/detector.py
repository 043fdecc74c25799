"""TransformerLens's head detector, as it defines it: the duplicate-token and induction detection patterns and
the similarity score (transformer_lens/head_detector.py), in numpy, so that the `duplicate_token` and
`induction` scores Twelve Heads reports can be compared with TransformerLens's directly.
"""

from typing import Sequence

import numpy as np

# TransformerLens's own defaults for compute_head_attention_similarity_score, used for the public scores.
TL_EXCLUDE_BOS = False
TL_EXCLUDE_CURRENT_TOKEN = False


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
    return similarity_scores(attention, np.asarray(pattern, dtype=attention.dtype)[None])[0, ...]


def similarity_scores(attention: np.ndarray, patterns: np.ndarray) -> np.ndarray:  # (..., T, T) x (K, T, T) -> (K, ...)
    """tl_similarity_score for K patterns at once, without its options."""
    total = attention.sum(axis=(-2, -1))
    matched = np.einsum("...ij,kij->k...", attention, patterns)
    return np.divide(matched, total, out=np.zeros_like(matched), where=total > 0)
