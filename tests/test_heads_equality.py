"""server/heads.py gives exactly what the implementation it replaced gave (tests/heads_reference.py, frozen).

Identical, not close: the same labels, confidences, runner-ups and reasons, and bit-identical scores, on random
attention and on attention built to land exactly on the thresholds and to tie, plain and sink-aware, scored
as one array and layer by layer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import heads_reference as reference
from twelve_heads.server import heads, scores

EQUALITY = settings(max_examples=250, deadline=None)


def assert_identical(attention, ids, sink_aware, layer_by_layer):
    with pytest.MonkeyPatch.context() as patch:
        if layer_by_layer:  # the new code only: the old one, scored whole, is the oracle
            patch.setattr(scores, "WHOLE_ARRAY_BYTES", 0)
        assert_same_as_before(attention, ids, sink_aware)


def assert_same_as_before(attention, ids, sink_aware):
    assert heads.label_heads(attention, ids, sink_aware) == reference.label_heads(attention, ids, sink_aware)
    new, old = heads.head_scores(attention, ids, sink_aware), reference.head_scores(attention, ids, sink_aware)
    assert list(new) == list(old)
    for name in old:
        np.testing.assert_array_equal(new[name], old[name], err_msg=name, strict=True)


BOTH_PATHS = pytest.mark.parametrize("layer_by_layer", [False, True], ids=["whole", "layer-by-layer"])


@st.composite
def random_attention(draw):
    """Causal row-stochastic attention from random log-weights (near-uniform to near one-hot rows, so sink-aware
    rows go empty too), float32 or float64, and ids from a 4-token vocabulary (many repeats)."""
    n_layers, n_heads, n_tokens = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 24))
    log_weights = draw(hnp.arrays(np.float64, (n_layers, n_heads, n_tokens, n_tokens),
                                  elements=st.floats(-30, 30, allow_nan=False)))
    weights = np.exp(log_weights) * np.tril(np.ones((n_tokens, n_tokens)))
    attention = (weights / weights.sum(axis=-1, keepdims=True)).astype(draw(st.sampled_from([np.float32,
                                                                                            np.float64])))
    return attention, draw(st.lists(st.integers(0, 3), min_size=n_tokens, max_size=n_tokens))


# Where a row puts its mass: key(i, ids) -> the key index (clipped to 0..i).
def earlier_copy(i, ids):
    return max((j for j in range(1, i) if ids[j] == ids[i]), default=0)


def after_earlier_copy(i, ids):
    return max((j + 1 for j in range(1, i) if ids[j] == ids[i] and j + 1 < i), default=0)


TARGETS = {"first": lambda i, ids: 0, "self": lambda i, ids: i, "previous": lambda i, ids: i - 1,
           "two back": lambda i, ids: i - 2, "five back": lambda i, ids: i - 5, "copy": earlier_copy,
           "after copy": after_earlier_copy}
SHARES = [0.0, 0.25, 0.35, 0.5, 0.65, 0.75, 0.8, 1.0]  # at and around DOMINANT, DIFFUSE_ENTROPY, RUNNER_UP_MARGIN


@st.composite
def attention_on_the_thresholds(draw):
    """Every head puts the same shares on the same kinds of key in every row, the rest spread evenly, so its
    scores land exactly on 0.5, on 0.35 and 0.65 (a runner-up exactly at the margin), and tie exactly."""
    n_layers, n_heads, n_tokens = draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, 20))
    ids = draw(st.lists(st.integers(0, 3), min_size=n_tokens, max_size=n_tokens))
    attention = np.zeros((n_layers, n_heads, n_tokens, n_tokens))
    for layer in range(n_layers):
        for head in range(n_heads):
            shares = draw(st.dictionaries(st.sampled_from(sorted(TARGETS)), st.sampled_from(SHARES), max_size=3))
            for i in range(n_tokens):
                rest = 1.0
                for target, share in shares.items():
                    share = min(share, rest)
                    attention[layer, head, i, min(max(TARGETS[target](i, ids), 0), i)] += share
                    rest -= share
                attention[layer, head, i, :i + 1] += rest / (i + 1)
    return attention.astype(draw(st.sampled_from([np.float32, np.float64]))), ids


@BOTH_PATHS
@pytest.mark.parametrize("sink_aware", [False, True], ids=["plain", "sink-aware"])
@EQUALITY
@given(case=random_attention())
def test_random_attention_gets_identical_results(case, sink_aware, layer_by_layer):
    assert_identical(*case, sink_aware, layer_by_layer)


@BOTH_PATHS
@pytest.mark.parametrize("sink_aware", [False, True], ids=["plain", "sink-aware"])
@EQUALITY
@given(case=attention_on_the_thresholds())
def test_attention_on_the_thresholds_gets_identical_results(case, sink_aware, layer_by_layer):
    assert_identical(*case, sink_aware, layer_by_layer)


# The decision alone, on strengths drawn from the thresholds themselves: each of them exactly, each runner-up
# margin exactly (0.35 = 0.5 - 0.15, 0.65 = 0.8 - 0.15), and every tie.
STRENGTHS = st.lists(st.sampled_from([0.0, 0.1, 0.35, 0.349, 0.5, 0.499, 0.65, 0.8, 0.799, 0.95, 1.0]),
                     min_size=len(heads.STRENGTH_OF), max_size=len(heads.STRENGTH_OF))


@settings(max_examples=2000, deadline=None)
@given(strengths=STRENGTHS)
def test_the_rule_decides_as_before_at_every_threshold_and_tie(strengths):
    old_label, old_confidence, old_runner_up, _ = reference._decide(np.array([strengths]), np.array([False]))
    label, confidence, runner_up = heads.decide(dict(zip(heads.STRENGTH_OF, strengths)))
    assert (label, confidence, runner_up) == (reference.LABEL_NAMES[old_label[0]], old_confidence[0],
                                              reference.LABEL_NAMES[old_runner_up[0]])


@BOTH_PATHS
@pytest.mark.parametrize("sink_aware", [False, True], ids=["plain", "sink-aware"])
@pytest.mark.parametrize("n_tokens", [1, 2, 3, 40])
def test_short_and_all_sink_sentences_get_identical_results(n_tokens, sink_aware, layer_by_layer):
    sink = np.zeros((2, 3, n_tokens, n_tokens), np.float32)
    sink[..., 0] = 1.0
    uniform = np.tril(np.ones((n_tokens, n_tokens), np.float32)) / np.arange(1, n_tokens + 1, dtype=np.float32)[:, None]
    attention = np.concatenate([sink, np.broadcast_to(uniform, sink.shape)], axis=1)
    assert_identical(attention, [5] * n_tokens, sink_aware, layer_by_layer)
