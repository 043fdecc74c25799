"""`twelve-heads export`: what it writes, that it matches PyTorch, and that failures leave nothing behind."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, GPT2Model

from conftest import (GPT2_TOKENIZER, REPO, TINY_POSITIONS, TROPHY, TROPHY_IDS, offline_hub_env, run_export,
                      save_random_gpt2)
from twelve_heads.modeldir import file_sha256
from twelve_heads.server.engine import Engine

PARITY_ATOL = 1e-5
MODEL_FILES = ["atlas.json", "embedding.bin", "manifest.json", "model.onnx", "predict.onnx", "tokenizer.json"]


def text_of_length(engine: Engine, n_tokens: int) -> str:
    """A sentence of exactly n_tokens GPT-2 tokens, built from words that are one token each."""
    words = "The trophy will not fit in the suitcase because it is too big".split(" ")
    text = "".join((" " if i else "") + words[i % len(words)] for i in range(n_tokens))
    assert len(engine.tokenize(text)[0]) == n_tokens
    return text


def reference_attention(checkpoint: Path, ids: list[int]) -> np.ndarray:
    model = GPT2Model.from_pretrained(checkpoint, attn_implementation="eager").eval()
    with torch.no_grad():
        attentions = model(torch.tensor([ids]), output_attentions=True).attentions
    return torch.cat(attentions).numpy()  # (L, H, T, T)


# T counts the prepended BOS; T = 1 with BOS would be BOS alone, and the text must hold at least one token.
@pytest.mark.parametrize("n_tokens, prepend_bos", [(1, False), (2, False), (17, False), (TINY_POSITIONS, False),
                                                   (2, True), (17, True), (TINY_POSITIONS, True)])
def test_engine_attention_equals_transformers_eager(tiny_model, tiny_checkpoint, n_tokens, prepend_bos):
    engine = Engine.load(tiny_model)
    text = text_of_length(engine, n_tokens - prepend_bos)
    result = engine.attend(text, prepend_bos=prepend_bos)
    assert result.attention.shape == (2, 4, n_tokens, n_tokens)
    assert result.attention.dtype == np.float32
    assert (result.ids[0] == 50256) == prepend_bos
    expected = reference_attention(tiny_checkpoint, result.ids)
    np.testing.assert_allclose(result.attention, expected, atol=PARITY_ATOL, rtol=0)
    # Not a vacuous match: random weights at this init give peaked, varied heads.
    if n_tokens >= 17:
        assert expected.max(axis=-1).mean() > 0.3


def test_tokens_are_gpt2s(tiny_model):
    engine = Engine.load(tiny_model)
    assert engine.attend("Hello world").ids == [15496, 995]
    result = engine.attend(TROPHY)
    assert result.ids == TROPHY_IDS
    assert result.tokens[:4] == ["The", " trophy", " doesn", "'t"]
    assert [TROPHY[start:end] for start, end in result.offsets] == result.tokens


def test_manifest_describes_the_model(tiny_model):
    manifest = json.loads((tiny_model / "manifest.json").read_text())
    assert {k: manifest[k] for k in ("name", "n_layer", "n_head", "n_positions", "vocab_size", "synthetic")} == {
        "name": "tiny", "n_layer": 2, "n_head": 4, "n_positions": TINY_POSITIONS, "vocab_size": 50257,
        "synthetic": False}
    assert manifest["files"]["model.onnx"] == file_sha256(tiny_model / "model.onnx")
    assert manifest["files"]["tokenizer.json"] == file_sha256(tiny_model / "tokenizer.json")
    assert manifest["files"]["atlas.json"] == file_sha256(tiny_model / "atlas.json")
    assert manifest["bos_token_id"] == 50256
    assert {"torch", "transformers", "optimum-onnx", "onnxruntime"} <= set(manifest["versions"])
    assert manifest["validation"]["max_abs_diff"] <= 1e-4
    assert sorted(p.name for p in tiny_model.iterdir()) == MODEL_FILES


def test_graph_has_nothing_after_the_last_attention(tiny_model):
    """The last MLP and final LayerNorm cannot change any attention probability: the graph omits them (they are
    in predict.onnx, which starts from the residual stream entering the last block)."""
    import onnx
    graph = onnx.load(str(tiny_model / "model.onnx")).graph
    assert [output.name for output in graph.output] == ["attentions.0", "attentions.1", "residual"]
    ops = [node.op_type for node in graph.node]
    # 2 layers: ln_1 ×2 + ln_2 of layer 0 only (no ln_2 in layer 1, no ln_f); one GELU (tanh) for layer 0's MLP.
    assert ops.count("LayerNormalization") == 3
    assert ops.count("Tanh") == 1


def test_validation_failure_writes_nothing_and_keeps_the_existing_model(tmp_path, tiny_model):
    """Inject a failure midway: NaN weights in layer 1 pass the export but fail validation."""
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "tiny")
    before = {p.name: p.read_bytes() for p in (models / "tiny").iterdir()}
    broken = save_random_gpt2(tmp_path / "broken")
    model = GPT2Model.from_pretrained(broken)
    with torch.no_grad():
        model.h[1].attn.c_attn.weight.fill_(float("nan"))
    model.save_pretrained(broken)

    result = run_export(broken, "--name", "tiny", "--models-dir", models, "--tokenizer", GPT2_TOKENIZER, check=False)

    assert result.returncode == 2
    assert "validation failed: at T=1, layer 1's attention differs from PyTorch by inf" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in models.iterdir()) == ["tiny"]
    assert {p.name: p.read_bytes() for p in (models / "tiny").iterdir()} == before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["term", "kill"])
def test_killed_export_leaves_no_model(tmp_path, tiny_checkpoint, sig):
    models = tmp_path / "models"
    env = {**os.environ, **offline_hub_env()}
    process = subprocess.Popen([sys.executable, "-m", "twelve_heads.export", str(tiny_checkpoint), "--name", "tiny",
                                "--models-dir", str(models), "--tokenizer", str(GPT2_TOKENIZER)],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # Wait until the build directory exists, i.e. the export is midway, then kill it.
    deadline = time.monotonic() + 60
    while not any(models.glob(".building-*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(models.glob(".building-*")), process.communicate()[0]
    process.send_signal(sig)
    process.wait(timeout=60)
    assert not (models / "tiny").exists()
    if sig == signal.SIGTERM:
        assert list(models.iterdir()) == []  # it cleaned up after itself
    # Whatever a SIGKILL left is hidden from the server and removed by the next export.
    run_export(tiny_checkpoint, "--name", "tiny", "--models-dir", models, "--tokenizer", GPT2_TOKENIZER)
    assert [p.name for p in models.iterdir()] == ["tiny"]


def test_reexport_replaces_a_model_with_a_complete_one(tmp_path, tiny_model, tiny_checkpoint):
    models = tmp_path / "models"
    shutil.copytree(tiny_model, models / "tiny")
    (models / "tiny" / "stale-file").write_text("from the old export")
    run_export(tiny_checkpoint, "--name", "tiny", "--models-dir", models, "--tokenizer", GPT2_TOKENIZER)
    assert sorted(p.name for p in (models / "tiny").iterdir()) == MODEL_FILES
    assert [p.name for p in models.iterdir()] == ["tiny"]


def bert_checkpoint(path: Path) -> Path:
    path.mkdir()
    BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2, intermediate_size=37).save_pretrained(path)
    return path


@pytest.mark.parametrize("make_source, message", [
    (lambda tmp: tmp / "nowhere", "no such directory: {tmp}/nowhere"),
    (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty",
     "{tmp}/empty has no config.json: pass a checkpoint directory (config.json + weights)"),
    (lambda tmp: (tmp / "file.bin").write_bytes(b"x") and tmp / "file.bin",
     "{tmp}/file.bin is a file: pass a checkpoint directory (config.json + weights) or a Hub id"),
    (lambda tmp: bert_checkpoint(tmp / "bert"), "is a 'bert' checkpoint; Twelve Heads exports GPT-2-family models"),
    (lambda tmp: "gpt2", "could not reach the Hugging Face Hub to fetch 'gpt2'; pass a local checkpoint directory instead"),
], ids=["missing", "no-config", "a-file", "not-gpt2", "hub-unreachable"])
def test_export_errors_say_what_to_do(tmp_path, make_source, message):
    source = make_source(tmp_path)
    result = run_export(source, "--models-dir", tmp_path / "models", check=False,
                        env={"HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 2
    assert message.format(tmp=tmp_path) in result.stderr
    assert "Traceback" not in result.stderr
    assert list((tmp_path / "models").iterdir()) == []  # no model, and no build directory (hidden ones too)


def test_checkpoint_without_tokenizer_asks_for_one(tmp_path, tiny_checkpoint):
    result = run_export(tiny_checkpoint, "--models-dir", tmp_path / "models", check=False)
    assert result.returncode == 2
    assert "has no tokenizer files; pass --tokenizer DIR" in result.stderr


def test_tokenizer_larger_than_the_vocabulary_is_refused(tmp_path):
    small_vocab = save_random_gpt2(tmp_path / "small-vocab", vocab_size=1000)
    result = run_export(small_vocab, "--models-dir", tmp_path / "models", "--tokenizer", GPT2_TOKENIZER, check=False)
    assert result.returncode == 2
    assert "the tokenizer has 50,257 tokens but the model only 1,000 embeddings" in result.stderr


@pytest.mark.parametrize("name", [".hidden", "a/b", "../up"])
def test_export_refuses_names_that_leave_the_models_dir(tmp_path, tiny_checkpoint, name):
    result = run_export(tiny_checkpoint, "--name", name, "--models-dir", tmp_path / "models", check=False)
    assert result.returncode == 2
    assert f"invalid model name {name!r}" in result.stderr


def test_int8_export_quantizes_every_projection_and_reports_its_error(tmp_path, tiny_checkpoint, tiny_model):
    run_export(tiny_checkpoint, "--name", "tiny8", "--models-dir", tmp_path, "--tokenizer", GPT2_TOKENIZER, "--int8")
    manifest = json.loads((tmp_path / "tiny8" / "manifest.json").read_text())
    quantization = manifest["quantization"]
    assert manifest["precision"] == "int8"
    # 2 layers: QKV, output and two MLP projections in layer 0, QKV only in layer 1 (nothing after it).
    assert quantization["nodes_before"]["Gemm"] == quantization["gemm_rewritten_as_matmul"] == 5
    assert quantization["nodes_after"]["MatMulInteger"] == 5 and "Gemm" not in quantization["nodes_after"]
    assert quantization["nodes_after"]["DequantizeLinear"] >= 1  # the token embedding lookup, stored as int8
    int8 = Engine.load(tmp_path / "tiny8").attend(TROPHY).attention
    fp32 = Engine.load(tiny_model).attend(TROPHY).attention
    # int8 weights move probabilities by a few hundredths at most on this peaked random model, on average far less.
    difference = np.abs(int8 - fp32)
    assert 0 < difference.max() < 0.05 and difference.mean() < 0.005
    assert 0 < quantization["attention_error_vs_fp32"]["max_abs"] < 0.05
    assert sorted(p.name for p in (tmp_path / "tiny8").iterdir()) == MODEL_FILES


def test_an_export_killed_between_its_two_renames_gives_the_old_model_back(tmp_path, tiny_model, tiny_checkpoint):
    """install() moves the old model aside, then the new one in; a SIGKILL between the two leaves only the old one
    aside. The next export, even one that fails, puts it back first."""
    models = tmp_path / "models"
    (models / ".replaced-tiny-killed").mkdir(parents=True)
    shutil.copytree(tiny_model, models / ".replaced-tiny-killed" / "old")
    before = {p.name: p.read_bytes() for p in tiny_model.iterdir()}
    result = run_export(tmp_path / "nowhere-else", "--name", "tiny", "--models-dir", models, check=False)
    assert result.returncode == 2  # this export fails (no such source) ...
    assert [p.name for p in models.iterdir()] == ["tiny"]  # ... but the model it found set aside is back
    assert {p.name: p.read_bytes() for p in (models / "tiny").iterdir()} == before


def test_projections_stay_as_optimum_writes_them(tiny_model):
    """Gemm(X, W, b) with X the flattened (B·T, K) activations: the transposed form lost on the sweep and broke
    bit-for-bit batching (export/optimize.py); only the rewrites the manifest lists were made."""
    import onnx
    manifest = json.loads((tiny_model / "manifest.json").read_text())
    assert set(manifest["graph_rewrites"]) == {"shape_arithmetic", "identity_casts_dropped",
                                               "repeated_causal_masks_dropped"}
    graph = onnx.load(str(tiny_model / "model.onnx")).graph
    gemms = [node for node in graph.node if node.op_type == "Gemm"]
    assert len(gemms) == 5 and not any(node.op_type == "Transpose" and "_back" in node.name for node in graph.node)
    assert all({a.name: a.i for a in gemm.attribute}.get("transB", 0) == 0 for gemm in gemms)


def test_shape_arithmetic_is_folded_once_per_graph_not_per_layer(tiny_model, wide_model):
    """The traced graph re-derives every view's shape at run time in each layer; after folding, what still
    depends on the batch and the length (the causal mask, positions, the (B, T, N) that undoes each projection's
    flattening) is computed once per graph: a 12-layer graph has exactly as many Shape nodes, and as many
    computed Reshape targets, as a 2-layer one. Parity (test_engine, test_batch) covers the values."""
    import onnx
    counts = {}
    for model in (tiny_model, wide_model):
        graph = onnx.load(str(model / "model.onnx")).graph
        initializers = {init.name for init in graph.initializer}
        computed_targets = {node.input[1] for node in graph.node
                            if node.op_type == "Reshape" and node.input[1] not in initializers}
        counts[model.name] = (sum(node.op_type == "Shape" for node in graph.node), len(computed_targets))
        folded = json.loads((model / "manifest.json").read_text())["graph_rewrites"]["shape_arithmetic"]
        assert folded["reshape_targets"] > 0 and folded["nodes_removed"] > 0
    assert counts[tiny_model.name] == counts[wide_model.name]
    assert counts[tiny_model.name][1] <= 3 + 2  # one (B, T, N) per projection width, the mask's two views


def test_each_attention_output_is_written_by_its_softmax_not_copied_by_a_cast(tiny_model):
    """The trace casts each softmax float to float; export/optimize.drop_identity_casts removes those copies."""
    import onnx
    graph = onnx.load(str(tiny_model / "model.onnx")).graph
    producers = {output: node.op_type for node in graph.node for output in node.output}
    attentions = [output.name for output in graph.output if output.name.startswith("attentions.")]
    assert [producers[name] for name in attentions] == ["Softmax"] * 2
    assert json.loads((tiny_model / "manifest.json").read_text())["graph_rewrites"]["identity_casts_dropped"] > 0


def test_each_layer_masks_its_scores_once(tiny_model):
    """The trace masks each layer's scores with a Where and then with the additive causal mask;
    export/optimize.drop_repeated_causal_masks keeps the Add alone: every softmax reads Add(scores, mask)."""
    import onnx
    graph = onnx.load(str(tiny_model / "model.onnx")).graph
    producers = {output: node for node in graph.node for output in node.output}
    softmax_inputs = [producers[producers[output.name].input[0]] for output in graph.output
                      if output.name.startswith("attentions.")]
    assert [node.op_type for node in softmax_inputs] == ["Add"] * 2
    assert not any(producers.get(name) is not None and producers[name].op_type == "Where"
                   for node in softmax_inputs for name in node.input)
    assert json.loads((tiny_model / "manifest.json").read_text())["graph_rewrites"]["repeated_causal_masks_dropped"] == 2


def masked_scores_graph(additive: str):
    """input_ids (B, T) → scores (B, 1, T, T) masked by Where(causal, scores, min), then Add(·, additive mask):
    the traced attention's two masks, with the additive one either causal too or all zeros."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    minimum = numpy_helper.from_array(np.array(np.finfo(np.float32).min, np.float32), "minimum")
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    axes = numpy_helper.from_array(np.array([1, 2], np.int64), "axes")
    one = helper.make_tensor("one", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("Shape", ["input_ids"], ["shape"], start=1, end=2),
        helper.make_node("Concat", ["shape", "shape"], ["square"], axis=0),
        helper.make_node("ConstantOfShape", ["square"], ["ones"], value=one),
        helper.make_node("Trilu", ["ones"], ["lower"], upper=0),
        helper.make_node("Cast", ["lower"], ["causal"], to=TensorProto.BOOL),
        helper.make_node("Where", ["causal", "zero", "minimum"], ["causal_additive"]),
        helper.make_node("Mul", ["causal_additive", "zero"], ["zeros_additive"]),
        helper.make_node("Cast", ["input_ids"], ["values"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["values", "axes"], ["scores"]),  # (B, 1, 1, T): each key's score
        helper.make_node("Where", ["causal", "scores", "minimum"], ["hidden"]),
        helper.make_node("Add", ["hidden", additive], ["masked"]),
    ]
    graph = helper.make_graph(nodes, "masks", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "T"])],
                              [helper.make_tensor_value_info("masked", TensorProto.FLOAT, None)], [minimum, zero, axes])
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("additive, dropped", [("causal_additive", 1), ("zeros_additive", 0)])
def test_the_where_goes_only_where_the_additive_mask_hides_the_same_keys(additive, dropped):
    import onnxruntime as ort

    from twelve_heads.export.optimize import drop_repeated_causal_masks

    def softmax(scores):
        weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return weights / weights.sum(axis=-1, keepdims=True)
    model = masked_scores_graph(additive)
    before = model.SerializeToString()
    assert drop_repeated_causal_masks(model) == dropped
    assert sum(node.op_type == "Where" for node in model.graph.node) == 2 - dropped
    ids = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]], dtype=np.int64)
    run = [ort.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(None, {"input_ids": ids})[0]
           for graph in (before, model.SerializeToString())]
    np.testing.assert_array_equal(softmax(run[0]), softmax(run[1]))


B_T = [(1, 1), (2, 3), (3, 17)]  # (batch, length) at three probes


@pytest.mark.parametrize("inputs, outputs, target", [
    # (B, T, 768) → (B, T, 12, 64): B and T are the input's own first two dimensions, kept with 0
    ([(b, t, 768) for b, t in B_T], [(b, t, 12, 64) for b, t in B_T], [0, 0, 12, 64]),
    ([(b, t, 12, 64) for b, t in B_T], [(b, t, 768) for b, t in B_T], [0, 0, 768]),
    ([(b, t, 768) for b, t in B_T], [(b * t, 768) for b, t in B_T], [-1, 768]),  # the one free entry inferred
    ([(1, t) for _, t in B_T], [(1, 1, t, 1) for _, t in B_T], [1, 1, -1, 1]),
    ([(3, 5), (3, 5)], [(15,), (15,)], [15]),  # nothing varies: the shape itself
    # (B·T, 2304) → (B, T, 2304): two entries vary and neither is the input's own: no constant can say it
    ([(b * t, 2304) for b, t in B_T], [(b, t, 2304) for b, t in B_T], None),
    ([(1, 4), (1, 4)], [(1, 4), (1, 4, 1)], None),  # the rank changes
    ([(2, 0), (3, 0)], [(0, 2), (0, 3)], None),  # an empty dimension would read as "copy"
])
def test_reshape_target_keeps_or_infers_the_varying_entries(inputs, outputs, target):
    from twelve_heads.export.optimize import reshape_target
    result = reshape_target(inputs, outputs)
    assert (result is None) if target is None else result.tolist() == target
