"""Knocking heads out through the exported graphs equals transformers eager with the same head_mask.

Zero-ablation: a knocked-out head's z is 0 and its output projection's bias stays (transformers' eager
head_mask). Its own attention is the pattern it computes in that run, which transformers does not return (it
returns the masked zeros): that head is compared with a transformers run where its layer's mask row is all
ones, since the pattern at layer l depends only on layers < l. Random GPT-2 configs are built in the run.
"""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from onnx import helper
from transformers import GPT2Model

from conftest import GPT2_TOKENIZER, run_export, save_random_gpt2
from twelve_heads.errors import ModelError
from twelve_heads.export.predict import FINAL, attach_lm_head, without_lm_head
from twelve_heads.modeldir import (BATCHABLE, EMBEDDING, HEAD_MASK, INPUT_IDS, LAST_LOGPROB, NEXT_TOKEN_LOGPROB,
                                   PREDICT_GRAPH, RESIDUAL, TOP_IDS, TOP_LOGPROB)
from twelve_heads.server.engine import Engine, open_session
from twelve_heads.server.intervene import downstream_change, head_mask, intervene, shared_initializers

BOS = 50256
ATTENTION_ATOL = 1e-5
LOGPROB_ATOL = 1e-4
CONFIGS = {  # name -> GPT2Config settings beside conftest's defaults (2 layers, 4 heads, 64 wide, 40 positions)
    "tiny": {},
    "three layers, erf gelu, inverse-layer scaling": dict(n_layer=3, n_head=2, n_embd=32, n_positions=33,
                                                          activation_function="gelu",
                                                          scale_attn_by_inverse_layer_idx=True),
}


@pytest.fixture(scope="module", params=list(CONFIGS))
def exported(request, tmp_path_factory):
    """(checkpoint, model directory) for each config, exported through `twelve-heads export`."""
    root = tmp_path_factory.mktemp("intervene")
    checkpoint = save_random_gpt2(root / "checkpoint", seed=3, **CONFIGS[request.param])
    run_export(checkpoint, "--name", "model", "--models-dir", root / "models", "--tokenizer", GPT2_TOKENIZER)
    return checkpoint, root / "models" / "model"


@pytest.fixture(scope="module")
def reference(exported):
    return GPT2Model.from_pretrained(exported[0], attn_implementation="eager").eval()


@pytest.fixture(scope="module")
def engine(exported):
    return Engine.load(exported[1])


def masks(n_layer: int, n_head: int) -> dict[str, np.ndarray]:
    one, layer = head_mask(n_layer, n_head, [(n_layer - 1, 1)]), head_mask(n_layer, n_head)
    layer[0] = 0
    random = (np.random.default_rng(11).random((n_layer, n_head)) < 0.5).astype(np.float32)
    return {"none": head_mask(n_layer, n_head), "one head": one, "layer 0": layer, "random": random}


def sentence(n_tokens: int, prepend_bos: bool) -> list[int]:
    ids = np.random.default_rng(n_tokens).integers(0, BOS, n_tokens).tolist()
    return [BOS, *ids[1:]] if prepend_bos else ids


def transformers_run(model, ids: list[int], mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(attention (L, H, T, T) with each knocked-out head's computed pattern, log-probabilities (T, V))."""
    with torch.no_grad():
        output = model(torch.tensor([ids]), head_mask=torch.from_numpy(mask), output_attentions=True)
        attention = torch.cat(output.attentions).numpy()
        for layer in range(mask.shape[0]):
            knocked = mask[layer] == 0
            if knocked.any():
                # transformers returns zeros for a masked head; its pattern is that of the run with its layer kept
                assert not attention[layer, knocked].any()
                kept = mask.copy()
                kept[layer] = 1
                rerun = model(torch.tensor([ids]), head_mask=torch.from_numpy(kept), output_attentions=True)
                attention[layer, knocked] = rerun.attentions[layer][0].numpy()[knocked]
        logprobs = torch.log_softmax(output.last_hidden_state[0] @ model.wte.weight.T, dim=-1).numpy()
    return attention, logprobs


LENGTHS = [(1, False), (2, False), (17, False), ("max", False), (1, True), (2, True), (17, True), ("max", True)]


@pytest.mark.parametrize("mask_name", ["none", "one head", "layer 0", "random"])
@pytest.mark.parametrize("n_tokens, prepend_bos", LENGTHS, ids=[f"T={n}{'+bos' if b else ''}" for n, b in LENGTHS])
def test_knocked_out_heads_match_transformers_head_mask(engine, reference, mask_name, n_tokens, prepend_bos):
    n_tokens = engine.n_positions if n_tokens == "max" else n_tokens
    ids = sentence(n_tokens, prepend_bos)
    mask = masks(engine.n_layer, engine.n_head)[mask_name]
    knocked_out = [tuple(pair) for pair in np.argwhere(mask == 0).tolist()]
    result = intervene(engine, ids, knocked_out, predict=True)
    attention, logprobs = transformers_run(reference, ids, mask)

    np.testing.assert_allclose(result.attention, attention, atol=ATTENTION_ATOL, rtol=0)
    # A knocked-out head never goes blank: every row of its pattern is a distribution.
    np.testing.assert_allclose(result.attention.sum(axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(result.prediction.next_logprob, logprobs[np.arange(n_tokens - 1), ids[1:]],
                               atol=LOGPROB_ATOL, rtol=0)
    expected_top = torch.topk(torch.from_numpy(logprobs[-1]), 5)
    assert result.prediction.top_ids.tolist() == expected_top.indices.tolist()
    np.testing.assert_allclose(result.prediction.top_logprob, expected_top.values.numpy(), atol=LOGPROB_ATOL, rtol=0)
    np.testing.assert_allclose(result.prediction.last_logprob, logprobs[-1], atol=LOGPROB_ATOL, rtol=0)
    # The clean pass beside it is transformers without a mask.
    clean_attention, clean_logprobs = transformers_run(reference, ids, head_mask(engine.n_layer, engine.n_head))
    np.testing.assert_allclose(result.clean.attention, clean_attention, atol=ATTENTION_ATOL, rtol=0)
    assert result.clean.prediction.top_ids.tolist() == torch.topk(torch.from_numpy(clean_logprobs[-1]), 5).indices.tolist()
    np.testing.assert_allclose(result.clean.prediction.last_logprob, clean_logprobs[-1], atol=LOGPROB_ATOL, rtol=0)
    if mask_name != "none":  # not a vacuous match: knocking heads out moves the prediction
        assert np.abs(result.prediction.top_logprob - result.clean.prediction.top_logprob).max() > 1e-3


@pytest.mark.parametrize("rows", [1, 3, 8, 10_000])
def test_the_lm_head_in_windows_of_any_size_is_the_log_softmax_of_the_tied_embedding(tmp_path, exported, rows):
    """predict.onnx's LM head (export/predict.attach_lm_head) attached again with `rows` rows a window, beside the
    hidden states it reads: windows of one position, windows with zero rows before position 0, one window for
    all, at every kind of length, for one sentence and for two with different tokens."""
    directory = exported[1]
    manifest = json.loads((directory / "manifest.json").read_text())
    name = manifest["intervention"]["embedding"]["initializer"]
    graph = onnx.load(str(directory / PREDICT_GRAPH), load_external_data=False)
    model, table_tensor = without_lm_head(graph, name)
    attach_lm_head(model, table_tensor, None, rows=rows)
    model.graph.output.extend([helper.make_tensor_value_info(FINAL, onnx.TensorProto.FLOAT, None)])
    onnx.save(model, str(tmp_path / PREDICT_GRAPH))
    shutil.copy(directory / EMBEDDING, tmp_path)  # onnxruntime checks that the graph's external data is beside it
    shared = shared_initializers(directory, manifest)  # the table as the server gives it (outlives the session)
    session = open_session(tmp_path / PREDICT_GRAPH, None, shared, memory_pattern=False)
    table = next(iter(shared.values())).numpy()
    rng = np.random.default_rng(rows)
    for batch in (1, 2):
        for n_tokens in sorted({1, 2, 3, 5, 17, manifest["n_positions"] - 1, manifest["n_positions"]}):
            ids = rng.integers(0, manifest["vocab_size"], (batch, n_tokens))
            feeds = {RESIDUAL: rng.standard_normal((batch, n_tokens, manifest["n_embd"])).astype(np.float32),
                     HEAD_MASK: np.ones((batch, manifest["n_layer"], manifest["n_head"]), np.float32), INPUT_IDS: ids}
            next_logprob, top_logprob, top_ids, last_logprob, final = session.run(
                [NEXT_TOKEN_LOGPROB, TOP_LOGPROB, TOP_IDS, LAST_LOGPROB, FINAL], feeds)
            logprobs = torch.log_softmax(torch.from_numpy(final @ table.T), dim=-1).numpy()  # (B, T, V)
            expected = np.take_along_axis(logprobs[:, :-1], ids[:, 1:, None], axis=-1)[..., 0]
            np.testing.assert_allclose(next_logprob, expected, atol=LOGPROB_ATOL, rtol=0)
            best = torch.topk(torch.from_numpy(logprobs[:, -1]), top_ids.shape[1])
            assert top_ids.tolist() == best.indices.tolist(), (batch, n_tokens)
            np.testing.assert_allclose(top_logprob, best.values.numpy(), atol=LOGPROB_ATOL, rtol=0)
            np.testing.assert_allclose(last_logprob, logprobs[:, -1], atol=LOGPROB_ATOL, rtol=0)


def test_predict_refuses_token_ids_that_are_not_one_per_hidden_state(exported, engine):
    """The head's windows are cut from the hidden states' shape: ids of another length must fail, not misalign."""
    ids = sentence(9, False)
    residual = engine.run_with_residual(ids)[1]
    with pytest.raises(ModelError, match="failed on a 8-token sentence"):
        engine.predictor.predict(ids[:8], residual[None], head_mask(engine.n_layer, engine.n_head)[None])


def test_only_layers_after_the_first_knocked_out_head_change(engine):
    ids = sentence(17, True)
    result = intervene(engine, ids, [(0, 1)], predict=False)
    assert not result.change[0].any()  # layer 0's patterns are computed before anything is knocked out
    assert (result.change[1:] > 1e-4).all()
    np.testing.assert_allclose(result.change, downstream_change(engine.run(ids), result.attention), rtol=1e-6)


@pytest.mark.parametrize("n_tokens", [1, 9, "max"])
def test_passes_under_several_masks_in_one_batch_equal_the_passes_one_at_a_time(engine, n_tokens):
    assert engine.manifest[BATCHABLE] is True and not engine.is_long(engine.n_positions, 2)  # the batched path
    n_tokens = engine.n_positions if n_tokens == "max" else n_tokens
    ids = sentence(n_tokens, False)
    masks_ = np.stack([head_mask(engine.n_layer, engine.n_head), masks(engine.n_layer, engine.n_head)["random"]])
    for (attention, residual), mask in zip(engine.run_under_masks(ids, masks_), masks_, strict=True):
        alone_attention, alone_residual = engine.run_with_residual(ids, mask)
        np.testing.assert_allclose(attention, alone_attention, atol=1e-6, rtol=0)
        np.testing.assert_allclose(residual, alone_residual, atol=1e-5, rtol=0)


def test_change_is_the_mean_total_variation_distance():
    clean = np.array([[[[1.0, 0.0], [0.5, 0.5]]]])
    ablated = np.array([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert downstream_change(clean, ablated).tolist() == [[0.25]]  # rows: 0 and 0.5, mean 0.25


def test_the_embedding_table_is_one_file_both_graphs_read(exported, engine):
    import onnx
    directory = exported[1]
    manifest = json.loads((directory / "manifest.json").read_text())
    embedding = manifest["intervention"]["embedding"]
    for graph in ("model.onnx", "predict.onnx"):
        tables = [init for init in onnx.load(str(directory / graph), load_external_data=False).graph.initializer
                  if init.name == embedding["initializer"]]
        assert len(tables) == 1 and tables[0].data_location == onnx.TensorProto.EXTERNAL
        assert {entry.key: entry.value for entry in tables[0].external_data}["location"] == "embedding.bin"
    weights = GPT2Model.from_pretrained(exported[0]).wte.weight.detach().numpy()
    assert np.array_equal(np.fromfile(directory / "embedding.bin", dtype=np.float32).reshape(weights.shape), weights)
    assert list(engine.shared) == [embedding["initializer"]]


def test_a_damaged_embedding_table_is_refused(tmp_path, exported):
    copy = shutil.copytree(exported[1], tmp_path / "model")
    with open(copy / "embedding.bin", "r+b") as handle:
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelError, match="embedding.bin does not match the checksum in its manifest"):
        Engine.load(copy)


def test_an_export_without_intervention_still_serves_attention(tmp_path, exported, engine):
    """A model directory from before head masks (manifest version 1): model.onnx takes input_ids only."""
    import onnx
    from onnx import numpy_helper
    from twelve_heads.modeldir import write_manifest
    copy = shutil.copytree(exported[1], tmp_path / "old")
    graph = onnx.load(str(copy / "model.onnx"))  # the external embedding is read back in
    graph.graph.initializer.append(numpy_helper.from_array(head_mask(engine.n_layer, engine.n_head)[None], "head_mask"))
    del graph.graph.input[1]
    kept = [output for output in graph.graph.output if output.name != "residual"]
    del graph.graph.output[:]
    graph.graph.output.extend(kept)
    onnx.save(graph, str(copy / "model.onnx"))
    for name in ("predict.onnx", "embedding.bin"):
        (copy / name).unlink()
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["intervention"], manifest["files"]
    manifest.pop("manifest_version")
    write_manifest(copy, manifest)
    old = Engine.load(copy)
    ids = sentence(9, True)
    assert not old.can_intervene and engine.can_intervene
    np.testing.assert_allclose(old.run(ids), engine.run(ids), atol=1e-6)


def test_int8_predicts_too_and_reports_its_error_against_fp32(tmp_path, exported, engine):
    run_export(exported[0], "--name", "int8", "--models-dir", tmp_path, "--tokenizer", GPT2_TOKENIZER, "--int8")
    validation = json.loads((tmp_path / "int8" / "manifest.json").read_text())["intervention"]["validation"]
    int8 = Engine.load(tmp_path / "int8")
    ids = sentence(17, True)
    knocked_out = [(0, 0)]
    quantized, exact = (intervene(e, ids, knocked_out, predict=True) for e in (int8, engine))
    error = np.abs(quantized.prediction.next_logprob - exact.prediction.next_logprob).max()
    # int8 weights move log-probabilities by tenths on these peaked random models: measured, reported, not zero.
    assert 0 < error < 1.0 and 0 < validation["logprob_max_abs"] < 1.0
    assert np.abs(quantized.attention - exact.attention).max() < 0.1
    assert validation["positions"] > 0 and validation["reference"].startswith("transformers eager fp32")
