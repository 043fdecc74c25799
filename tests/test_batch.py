"""Batches: the graph takes (B, T) right-padded sentences, and every sentence's attention from a batch is its
attention alone (the causal mask keeps the padding out of its rows); Engine.run_batch and attend_many."""

import json
import shutil

import numpy as np
import onnx
import pytest

from conftest import TINY_POSITIONS, TROPHY
from test_export import reference_attention
from twelve_heads.errors import InputError
from twelve_heads.modeldir import HEAD_MASK, INPUT_IDS
from twelve_heads.server import engine as engine_module
from twelve_heads.server.engine import Engine

BATCH_ATOL = 1e-6  # the bound: batched against unbatched, the same graph


def random_sentences(rng: np.random.Generator, lengths, vocab_size: int = 50257) -> list[list[int]]:
    return [rng.integers(0, vocab_size, size=n).tolist() for n in lengths]


@pytest.mark.parametrize("model_fixture", ["tiny_model", "wide_model"])
def test_each_sentence_of_a_batch_gets_its_own_attention(request, model_fixture):
    engine = Engine.load(request.getfixturevalue(model_fixture))
    lengths = [1, 7, 2, engine.max_tokens, 17, 3, 17, 30]  # mixed, the model's limit and a tie among them
    batch = random_sentences(np.random.default_rng(0), lengths)
    results = engine.run_batch(batch)
    assert [result.shape for result in results] == [(engine.n_layer, engine.n_head, n, n) for n in lengths]
    for ids, result in zip(batch, results):
        alone = engine.run(ids)
        assert np.abs(result - alone).max() <= BATCH_ATOL
        assert result.flags.c_contiguous


def test_padding_never_reaches_a_sentences_rows(tiny_model):
    """The same sentence padded with different tokens, straight through the graph: its rows do not move."""
    engine = Engine.load(tiny_model)
    rng = np.random.default_rng(1)
    sentence = rng.integers(0, 50257, size=9)
    padded = rng.integers(0, 50257, size=(3, 25))
    padded[:, :9] = sentence
    outputs = np.stack(engine.session.run(engine.output_names, feeds(engine, padded)))  # (L, B, H, T, T)
    alone = engine.run(sentence.tolist())
    for row in range(3):
        assert np.abs(outputs[:, row, :, :9, :9] - alone).max() <= BATCH_ATOL
    assert np.abs(outputs[:, 0, :, 9:] - outputs[:, 1, :, 9:]).max() > 1e-3  # the padding's own rows do differ


def test_batched_attention_equals_transformers_eager(tiny_model, tiny_checkpoint):
    engine = Engine.load(tiny_model)
    batch = random_sentences(np.random.default_rng(2), [5, TINY_POSITIONS, 1, 12])
    for ids, result in zip(batch, engine.run_batch(batch)):
        np.testing.assert_allclose(result, reference_attention(tiny_checkpoint, ids), atol=1e-5, rtol=0)


def test_int8_runs_a_batch_one_sentence_at_a_time(demo_int8_model):
    """int8 quantizes each run's activations with one scale, so batch-mates would move a sentence's numbers (the
    graph itself does take a batch): its manifest says it is not batchable, and run_batch equals run exactly."""
    engine = Engine.load(demo_int8_model)
    assert engine.manifest["batchable"] is False
    batch = random_sentences(np.random.default_rng(3), [4, 19, 11])
    assert engine.groups(sorted(map(len, batch))) == [[0], [1], [2]]
    for ids, result in zip(batch, engine.run_batch(batch)):
        np.testing.assert_array_equal(result, engine.run(ids))
    padded = np.stack(engine.session.run(engine.output_names, feeds(engine, np.array([batch[0] + batch[2][4:], batch[2]]))))
    assert padded.shape == (engine.n_layer, 2, engine.n_head, 11, 11)


def test_a_model_exported_before_batching_runs_one_sentence_at_a_time(tiny_model, tmp_path):
    """An older manifest has no "batchable" key (its graph fixed the batch at 1): run_batch must not batch."""
    old = shutil.copytree(tiny_model, tmp_path / "old")
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["batchable"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    engine = Engine.load(old)
    assert engine.groups([3, 5, 9]) == [[0], [1], [2]]
    assert Engine.load(tiny_model).groups([3, 5, 9]) == [[0, 1, 2]]


def test_graph_keeps_batch_and_length_symbolic(tiny_model):
    graph = onnx.load(str(tiny_model / "model.onnx")).graph
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    inputs = {value.name: dims(value) for value in graph.input}
    assert inputs[INPUT_IDS] == ["batch_size", "sequence_length"] and inputs[HEAD_MASK][0] == "batch_size"
    attentions = {tuple(dims(value)) for value in graph.output if value.name.startswith("attentions.")}
    assert attentions == {("batch_size", 4, "sequence_length", "sequence_length")}


def test_run_batch_keeps_the_callers_order_across_groups(tiny_model, monkeypatch):
    """More sentences than one batch holds, and a byte budget that cuts groups early: the order is the caller's."""
    engine = Engine.load(tiny_model)
    monkeypatch.setattr(engine_module, "BATCH_SENTENCES", 4)
    monkeypatch.setattr(engine_module, "BATCH_ATTENTION_BYTES", 3 * 30 ** 2 * 4 * engine.n_layer * engine.n_head)
    lengths = np.random.default_rng(4).integers(1, TINY_POSITIONS + 1, size=23).tolist()
    batch = random_sentences(np.random.default_rng(5), lengths)
    ascending = sorted(lengths)
    groups = engine.groups(ascending)
    assert [i for group in groups for i in group] == list(range(23))
    assert max(len(group) for group in groups) == 4
    padded_bytes = lambda group: len(group) * ascending[group[-1]] ** 2 * 4 * engine.n_layer * engine.n_head
    assert all(len(group) == 1 or padded_bytes(group) <= engine_module.BATCH_ATTENTION_BYTES for group in groups)
    assert any(len(group) < 4 for group in groups[:-1])  # the budget did cut some group early
    for ids, result in zip(batch, engine.run_batch(batch)):
        assert np.abs(result - engine.run(ids)).max() <= BATCH_ATOL


def test_attend_many_equals_attend_for_each_text(tiny_model):
    engine = Engine.load(tiny_model)
    texts = [TROPHY, "Hello world", "a", "Alice met Bob and she smiled at him"]
    for prepend_bos in (False, True):
        many = engine.attend_many(texts, prepend_bos=prepend_bos)
        for text, result in zip(texts, many):
            alone = engine.attend(text, prepend_bos=prepend_bos)
            assert (result.ids, result.tokens, result.offsets) == (alone.ids, alone.tokens, alone.offsets)
            assert np.abs(result.attention - alone.attention).max() <= BATCH_ATOL


def test_an_empty_batch_gives_nothing(tiny_model):
    assert Engine.load(tiny_model).run_batch([]) == []


@pytest.mark.parametrize("batch, message", [
    ("1 2 3", '"batch" must be a list of sentences (lists of token ids), not a string'),
    ({"ids": [1]}, '"batch" must be a list of sentences (lists of token ids), not an object'),
    ([[1, 2], (3, 4)], '"batch[1]" must be a list of token ids, not tuple'),
    ([[1], []], "batch[1] has no tokens; every sentence needs at least one"),
    ([[1, 50257]], "batch[0] holds 50257, not a token id of this model (a whole number from 0 to 50,256)"),
    ([[-1]], "batch[0] holds -1, not a token id of this model (a whole number from 0 to 50,256)"),
    ([[1, True]], "batch[0] holds True, not a token id of this model (a whole number from 0 to 50,256)"),
    ([[2.0]], "batch[0] holds 2.0, not a token id of this model (a whole number from 0 to 50,256)"),
    ([["7"]], "batch[0] holds '7', not a token id of this model (a whole number from 0 to 50,256)"),
    ([[1], [5] * (TINY_POSITIONS + 1)], f"batch[1] has {TINY_POSITIONS + 1} tokens; this model reads at most "
                                        f"{TINY_POSITIONS}. Shorten it"),
], ids=["string", "object", "tuple-sentence", "empty-sentence", "id-too-large", "negative", "bool", "float",
        "string-id", "too-long"])
def test_run_batch_rejects_bad_input_before_any_work(tiny_model, batch, message):
    with pytest.raises(InputError) as raised:
        Engine.load(tiny_model).run_batch(batch)
    assert str(raised.value) == message


def test_attend_many_rejects_bad_texts_with_attends_messages(tiny_model):
    engine = Engine.load(tiny_model)
    with pytest.raises(InputError, match='"texts" must be a list of strings, not a string'):
        engine.attend_many("one text")
    with pytest.raises(InputError, match="the text is empty; type a sentence to look at"):
        engine.attend_many(["fine", "  "])


def feeds(engine, ids: np.ndarray) -> dict:
    """The graph's inputs for a (B, T) batch of ids with every head kept."""
    return {INPUT_IDS: ids, HEAD_MASK: np.ones((len(ids), engine.n_layer, engine.n_head), dtype=np.float32)}
