"""The atlas's faster path gives exactly what the path it replaced gave (tests/atlas_reference.py, frozen).

Identical, not close: the same label and bit-identical scores for every head of every item of the reference corpus
and probe, through the engine, plain and sink-aware, on the planted-heads demo and on a random GPT-2, scored as
one array and layer by layer; and the same label as `decide` on strengths drawn from the thresholds themselves.
The engine's batches (atlas.batches) are the cheapest the engine runs whole, and every item is in one of them.
"""

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import atlas_reference as reference
from twelve_heads.server import engine as engine_module
from twelve_heads.server import scores
from twelve_heads.server.atlas import (CORPUS_PATH, PROBE_LENGTH, RUN_COST_TOKENS, Tally, add_item, attention_of,
                                       batches, probe_halves, reference_items)
from twelve_heads.server.engine import Engine
from twelve_heads.server.heads import LABELS, STRENGTH_OF, decide, label_indices

TALLIED = ("labels", "scores", "previous", "induction")
WHOLE_ARRAY_BYTES = scores.WHOLE_ARRAY_BYTES


def items_of(engine):
    texts = json.loads(CORPUS_PATH.read_text())["items"]
    bos = engine.manifest["bos_token_id"]
    halves = probe_halves(engine.manifest["vocab_size"], bos, min(PROBE_LENGTH, (engine.n_positions - 1) // 2))
    return {prepend_bos: reference_items(engine, texts, halves, prepend_bos)[0] for prepend_bos in (False, True)}, halves


@pytest.mark.parametrize("layer_by_layer", [False, True], ids=["whole", "layer-by-layer"])
@pytest.mark.parametrize("model_fixture", ["demo_model", "wide_model"], ids=["demo", "random"])
def test_every_item_gets_the_labels_and_scores_of_the_reference(request, model_fixture, layer_by_layer, monkeypatch):
    engine = Engine.load(request.getfixturevalue(model_fixture))
    prepared, halves = items_of(engine)
    if layer_by_layer:  # the new path only: the reference, scored whole, is the oracle
        monkeypatch.setattr(scores, "WHOLE_ARRAY_BYTES", 0)
    for prepend_bos, items in prepared.items():
        new, old = ({sink_aware: Tally(len(items), len(halves), engine.n_layer, engine.n_head)
                     for sink_aware in (False, True)} for _ in range(2))
        for batch in batches(engine, [len(item.ids) for item in items]):
            for index, attention in zip(batch, attention_of(engine, [items[index].ids for index in batch])):
                add_item(new, index, items[index], attention)
                with monkeypatch.context() as reference_setting:
                    reference_setting.setattr(scores, "WHOLE_ARRAY_BYTES", WHOLE_ARRAY_BYTES)
                    reference.add_item(old, index, items[index], attention)
        for sink_aware in (False, True):
            for field in TALLIED:
                np.testing.assert_array_equal(getattr(new[sink_aware], field), getattr(old[sink_aware], field),
                                              err_msg=f"prepend_bos={prepend_bos} sink_aware={sink_aware} {field}",
                                              strict=True)
        assert len(np.unique(new[False].labels)) > 3  # the items gave the heads several labels to agree on


# The decision alone, on strengths drawn from the thresholds themselves: each of them exactly, just under, and
# every tie; some heads with no scored row.
STRENGTHS = st.lists(st.sampled_from([0.0, 0.1, 0.35, 0.349, 0.5, 0.499, 0.65, 0.8, 0.799, 0.95, 1.0]),
                     min_size=len(STRENGTH_OF), max_size=len(STRENGTH_OF))


@settings(max_examples=300, deadline=None)
@given(heads=st.lists(st.tuples(STRENGTHS, st.booleans()), min_size=1, max_size=12))
def test_label_indices_decides_every_head_as_decide_does(heads):
    strength = np.array([values for values, _ in heads])  # (N, 8) in STRENGTH_OF's order
    measured = {name: strength[None, :, column] for column, name in enumerate(STRENGTH_OF.values())}
    measured["scored_rows"] = np.array([[14.0 if scored else 0.0 for _, scored in heads]])
    expected = [decide(dict(zip(STRENGTH_OF, values)))[0] if scored else "mixed" for values, scored in heads]
    assert [LABELS[index] for index in label_indices(measured)[0]] == expected


def padded_cost(cut, lengths):
    return sum(RUN_COST_TOKENS + len(batch) * max(lengths[position] for position in batch) for batch in cut)


def test_the_engine_runs_each_batch_whole_and_every_item_once(wide_model):
    engine = Engine.load(wide_model)
    prepared, _ = items_of(engine)
    lengths = [len(item.ids) for items in prepared.values() for item in items]
    cut = batches(engine, lengths)
    assert sorted(itertools.chain.from_iterable(cut)) == list(range(len(lengths)))
    for batch in cut:
        assert len(engine.groups(sorted(lengths[position] for position in batch))) == 1
    # Cheaper than the cut the atlas made before: 16 at a time, shortest first.
    order = sorted(range(len(lengths)), key=lambda position: lengths[position])
    sixteens = [order[start:start + 16] for start in range(0, len(order), 16)]
    assert padded_cost(cut, lengths) < padded_cost(sixteens, lengths)


@pytest.fixture(scope="module")
def wide_engine(wide_model):
    return Engine.load(wide_model)


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=9), most=st.integers(1, 4))
def test_the_batches_are_the_cheapest_cut_of_the_sorted_lengths(wide_engine, lengths, most):
    """Against every cut of the sorted lengths into consecutive batches that the engine runs whole, with the
    engine's largest batch made small enough to bind."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_module, "BATCH_SENTENCES", most)
        order = sorted(range(len(lengths)), key=lambda position: (lengths[position], position))
        best = min(padded_cost(cut, lengths) for cut in consecutive_cuts(order)
                   if all(len(wide_engine.groups(sorted(lengths[position] for position in batch))) == 1
                          for batch in cut))
        cut = batches(wide_engine, lengths)
        assert all(len(batch) <= most for batch in cut)
        assert padded_cost(cut, lengths) == best


def consecutive_cuts(order):
    for cuts in itertools.product([False, True], repeat=len(order) - 1):
        cut, start = [], 0
        for end, cut_here in enumerate(cuts, start=1):
            if cut_here:
                cut.append(order[start:end])
                start = end
        yield cut + [order[start:]]
