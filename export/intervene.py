"""Knocking heads out, and what the model then predicts: the passes export/build.py applies to every export.

Zero-ablation. Each head's weighted values z = attention · V, (B, H, T, Dh), are multiplied by its entry of
the float input `head_mask` (B, L, H): 1 keeps the head, 0 knocks it out; the output projection's bias stays.
That is transformers' eager `head_mask`, and TransformerLens's `hook_z` set to zero. The `attentions.i`
outputs stay the probabilities each head computes in that run (TransformerLens's `hook_pattern`), not
transformers' returned zeros: the mask acts after them. Masking z and not the (T, T) probabilities keeps the
cost at T·Dh per head, at every length.

onnxruntime runs the whole graph whatever outputs are fetched, so the plain attention graph must not carry
the LM head. model.onnx gains the mask and one output it computes anyway, `residual`: the stream entering
the last block. predict.onnx (export/predict.py) goes on from there. Both graphs read the token embedding
table from one file, embedding.bin, as external data under the same initializer name; the server gives both
sessions the same copy in memory (onnxruntime's SessionOptions.add_initializer).

    add_intervention(model, directory, int8)  # after the attention graph is validated (and quantized)
"""

import logging
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from twelve_heads.errors import HeadsError
from twelve_heads.modeldir import (EMBEDDING, GRAPH, HEAD_MASK, INPUT_IDS, LAST_LOGPROB, NEXT_TOKEN_LOGPROB,
                                   PREDICT_GRAPH, PREDICT_OUTPUTS, RESIDUAL, TOP_IDS, TOP_K, TOP_LOGPROB,
                                   attention_output)

from .predict import attach_lm_head, block_graph

ATTENTION_ATOL = 1e-4  # the attention graph's own validation bound (export/graph.py)
LOGPROB_ATOL = 1e-4  # max |ONNX - PyTorch| over the next-token log-probabilities
VALIDATION_SEED = 1
PASS_THROUGH = ("Reshape", "Unsqueeze", "Flatten", "Cast", "Identity")  # from input_ids to the embedding lookup

log = logging.getLogger("export")


def add_intervention(model: torch.nn.Module, directory: Path, int8: bool, lengths: list[int]) -> dict:
    """Add the head mask and the residual output to directory/model.onnx, move its embedding table into
    embedding.bin, write predict.onnx beside it, and check both against `model` (GPT2Model, eager) under head
    masks. Returns manifest["intervention"]. Raises HeadsError (nothing is installed) when fp32 disagrees."""
    config = model.config
    graph_path, predict_path = directory / GRAPH, directory / PREDICT_GRAPH
    graph = onnx.load(str(graph_path))
    masked = add_head_mask(graph, config.n_layer, config.n_head)
    expose_residual(graph, config.n_layer, config.n_embd)
    table, quantized = embedding_table(graph)
    embedding = externalize(table, directory, EMBEDDING)
    onnx.save(graph, str(graph_path))
    del graph
    weights = {name: tensor.detach().numpy() for name, tensor in model.state_dict().items()}
    block = block_graph(weights, config)
    if int8:
        block = quantize_block(block, directory)
    attach_lm_head(block, table, quantized)
    onnx.save(block, str(predict_path))
    report = validate(model, directory, lengths, int8)
    return {"embedding": embedding, "heads_masked_per_layer": masked, "top_k": TOP_K, "validation": report}


def add_head_mask(model: onnx.ModelProto, n_layer: int, n_head: int) -> list[int]:
    """The head_mask input, and z = attention · V times its row in every layer that has a z in this graph (the
    last layer's is in predict.onnx); returns those layers."""
    ids = next(value for value in model.graph.input if value.name == INPUT_IDS)
    batch = ids.type.tensor_type.shape.dim[0].dim_param or "batch_size"
    model.graph.input.append(helper.make_tensor_value_info(HEAD_MASK, TensorProto.FLOAT, [batch, n_layer, n_head]))
    readers = {attention_output(layer): layer for layer in range(n_layer)}
    nodes, masked = [], []
    for node in model.graph.node:
        nodes.append(node)
        layer = readers.get(node.input[0]) if node.op_type == "MatMul" else None
        if layer is None:
            continue
        z, unmasked = node.output[0], f"{node.output[0]}_unmasked"
        node.output[0] = unmasked
        index = f"/h.{layer}/head_mask/layer"
        model.graph.initializer.append(numpy_helper.from_array(np.array(layer, dtype=np.int64), index))
        axes = f"/h.{layer}/head_mask/axes"
        model.graph.initializer.append(numpy_helper.from_array(np.array([2, 3], dtype=np.int64), axes))
        row, column = f"/h.{layer}/head_mask/row", f"/h.{layer}/head_mask/column"
        nodes.append(helper.make_node("Gather", [HEAD_MASK, index], [row], name=row, axis=1))  # (B, H)
        nodes.append(helper.make_node("Unsqueeze", [row, axes], [column], name=column))  # (B, H, 1, 1)
        nodes.append(helper.make_node("Mul", [unmasked, column], [z], name=f"/h.{layer}/head_mask/Mul"))
        masked.append(layer)
    if masked != list(range(n_layer - 1)):
        raise HeadsError(f"the graph's weighted values were found in layers {masked}, expected 0 … {n_layer - 2}; "
                         "this export cannot knock heads out")
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return masked


def expose_residual(model: onnx.ModelProto, n_layer: int, n_embd: int) -> None:
    """Name the residual stream entering the last block `residual` and make it an output: the input of the last
    LayerNormalization the last layer's attention depends on (that block's ln_1)."""
    producers = {output: node for node in model.graph.node for output in node.output}
    needed, stack = set(), [attention_output(n_layer - 1)]  # nodes, by their first output's name
    while stack:
        node = producers.get(stack.pop())
        if node is not None and node.output[0] not in needed:
            needed.add(node.output[0])
            stack.extend(node.input)
    ln_1 = [node for node in model.graph.node
            if node.output[0] in needed and node.op_type == "LayerNormalization"][-1]
    old = ln_1.input[0]
    for node in model.graph.node:
        node.input[:] = [RESIDUAL if name == old else name for name in node.input]
        node.output[:] = [RESIDUAL if name == old else name for name in node.output]
    dims = next(value for value in model.graph.input if value.name == INPUT_IDS).type.tensor_type.shape.dim
    model.graph.output.append(helper.make_tensor_value_info(
        RESIDUAL, TensorProto.FLOAT, [dims[0].dim_param or "batch_size", dims[1].dim_param or "sequence_length", n_embd]))


def embedding_table(model: onnx.ModelProto) -> tuple[onnx.TensorProto, dict | None]:
    """The token embedding's initializer (the table the lookup of input_ids reads) and, for an int8 export, its
    uint8 quantization parameters {"scale", "zero_point"} (None for fp32)."""
    initializers = {init.name: init for init in model.graph.initializer}
    producers = {output: node for node in model.graph.node for output in node.output}

    def from_input_ids(name: str) -> bool:
        while name != INPUT_IDS:
            node = producers.get(name)
            if node is None or node.op_type not in PASS_THROUGH:
                return False
            name = node.input[0]
        return True

    lookup = next((node for node in model.graph.node if node.op_type == "Gather" and node.input[0] in initializers
                   and from_input_ids(node.input[1])), None)
    if lookup is None:
        raise HeadsError("the graph has no token embedding lookup of input_ids; this export cannot predict")
    table = initializers[lookup.input[0]]
    if table.data_type == TensorProto.FLOAT:
        return table, None
    dequantize = next(node for node in model.graph.node if node.input and node.input[0] == lookup.output[0])
    if dequantize.op_type != "DequantizeLinear" or table.data_type != TensorProto.UINT8:
        raise HeadsError(f"the token embedding is stored as ONNX type {table.data_type} and read by "
                         f"{dequantize.op_type}; only float32 and uint8 (DequantizeLinear) tables can predict")
    scale, zero_point = (numpy_helper.to_array(initializers[name]) for name in dequantize.input[1:3])
    if scale.size != 1 or zero_point.size != 1:
        raise HeadsError("the int8 token embedding has one scale per row; the LM head expects one for the table")
    return table, {"scale": float(scale), "zero_point": int(zero_point)}


def externalize(table: onnx.TensorProto, directory: Path, filename: str) -> dict:
    """Write the table's bytes to directory/filename and leave in the graph a reference to them (ONNX external
    data: raw little-endian, C order); return what the manifest records of it."""
    array = numpy_helper.to_array(table)
    array.astype(array.dtype.newbyteorder("<"), copy=False).tofile(directory / filename)
    table.ClearField("raw_data")
    table.data_location = TensorProto.EXTERNAL
    del table.external_data[:]
    for key, value in (("location", filename), ("offset", "0"), ("length", str(array.nbytes))):
        entry = table.external_data.add()
        entry.key, entry.value = key, value
    return {"file": filename, "initializer": table.name, "dtype": array.dtype.name, "shape": list(array.shape)}


def quantize_block(block: onnx.ModelProto, directory: Path) -> onnx.ModelProto:
    """The int8 export's last block: its projections quantized as model.onnx's are (dynamic, per channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path, int8_path = directory / "predict-float.onnx", directory / "predict-int8.onnx"
    onnx.save(block, str(float_path))
    logging.disable(logging.WARNING)  # its advice to pre-process is for convolutional nets, not this graph
    try:
        quantize_dynamic(str(float_path), str(int8_path), op_types_to_quantize=["MatMul"],
                         weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)
    quantized = onnx.load(str(int8_path))
    float_path.unlink()
    int8_path.unlink()
    return quantized


# --- validation against transformers ---------------------------------------------------------------------

def validation_masks(n_layer: int, n_head: int, generator: np.random.Generator) -> dict[str, np.ndarray]:
    """Head masks to compare under: none, one head, a whole layer, and a random half of the heads of two layers
    (each layer with a knocked-out head costs the reference one more run; tests/test_intervene.py goes further)."""
    one, layer, random = (np.ones((n_layer, n_head), np.float32) for _ in range(3))
    one[n_layer // 2, n_head - 1] = 0
    layer[0] = 0
    for chosen in generator.choice(n_layer, size=min(2, n_layer), replace=False):
        random[chosen] = generator.random(n_head) < 0.5
    return {"none": np.ones((n_layer, n_head), np.float32), "one head": one, "layer 0": layer, "random": random}


def reference(model: torch.nn.Module, ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """transformers eager under `mask`: every layer's attention (L, H, T, T), with each knocked-out head's pattern
    from a run where its layer's row is all ones (the pattern at layer l depends only on layers < l), and the
    log-probabilities (T, V) from ln_f's output times the tied embedding."""
    with torch.no_grad():
        output = model(torch.from_numpy(ids[None]), head_mask=torch.from_numpy(mask), output_attentions=True)
        attention = torch.cat(output.attentions).numpy()
        for layer in np.flatnonzero((mask == 0).any(axis=1)):
            computed = mask.copy()
            computed[layer] = 1
            rerun = model(torch.from_numpy(ids[None]), head_mask=torch.from_numpy(computed), output_attentions=True)
            knocked = mask[layer] == 0
            attention[layer, knocked] = rerun.attentions[layer][0, torch.from_numpy(knocked)].numpy()
        logits = output.last_hidden_state[0] @ model.wte.weight.T
        return attention, torch.log_softmax(logits, dim=-1).numpy()


def validate(model: torch.nn.Module, directory: Path, lengths: list[int], int8: bool) -> dict:
    """Both graphs under head masks against transformers. fp32 must agree (attention within ATTENTION_ATOL,
    log-probabilities within LOGPROB_ATOL, the same top tokens) or nothing is written; int8's error is
    measured and reported."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    attend, predict = (ort.InferenceSession(str(directory / name), options, providers=["CPUExecutionProvider"])
                       for name in (GRAPH, PREDICT_GRAPH))
    config = model.config
    generator = np.random.default_rng(VALIDATION_SEED)
    masks = validation_masks(config.n_layer, config.n_head, generator)
    worst = {"attention_max_abs": 0.0, "logprob_max_abs": 0.0, "last_logprob_max_abs": 0.0, "top_1_agree": 0,
             "positions": 0, "paired_logprob_max_abs": 0.0, "paired_top_ids_agree": True}
    for length in lengths:
        started = time.perf_counter()
        ids = generator.integers(0, config.vocab_size, size=length, dtype=np.int64)
        alone = {}  # mask name -> (residual, predict.onnx's outputs for that sentence alone)
        for name, mask in masks.items():
            outputs = attend.run([attention_output(layer) for layer in range(config.n_layer)] + [RESIDUAL],
                                 {INPUT_IDS: ids[None], HEAD_MASK: mask[None]})
            predicted = dict(zip(PREDICT_OUTPUTS, predict.run(
                PREDICT_OUTPUTS, {RESIDUAL: outputs[-1], HEAD_MASK: mask[None], INPUT_IDS: ids[None]})))
            next_logprob, top_logprob, top_ids = (predicted[name] for name in (NEXT_TOKEN_LOGPROB, TOP_LOGPROB,
                                                                                TOP_IDS))
            alone[name] = (outputs[-1], predicted)
            attention, logprobs = reference(model, ids, mask)
            attention_error = float(np.abs(np.concatenate(outputs[:-1]) - attention).max())
            expected_next = logprobs[np.arange(length - 1), ids[1:]]
            logprob_error = max(float(np.abs(next_logprob[0] - expected_next).max(initial=0)),
                                float(np.abs(top_logprob[0] - logprobs[-1, top_ids[0]]).max()))
            # Every token's, recorded but not held to LOGPROB_ATOL: the page reads it for the other run's top
            # tokens, and the rarest of 50,257 carry the largest rounding.
            worst["last_logprob_max_abs"] = max(worst["last_logprob_max_abs"],
                                                float(np.abs(predicted[LAST_LOGPROB][0] - logprobs[-1]).max()))
            expected_top = np.argsort(-logprobs[-1], kind="stable")[:TOP_K]
            worst["attention_max_abs"] = max(worst["attention_max_abs"], attention_error)
            worst["logprob_max_abs"] = max(worst["logprob_max_abs"], logprob_error)
            worst["top_1_agree"] += int(top_ids[0, 0] == expected_top[0])
            worst["positions"] += 1
            disagrees = not (attention_error <= ATTENTION_ATOL and logprob_error <= LOGPROB_ATOL
                             and set(top_ids[0].tolist()) == set(expected_top.tolist()))
            if disagrees and not int8:
                raise HeadsError(f"validation failed: at T={length} with head mask {name!r} the graphs differ from "
                                 f"PyTorch (attention by {attention_error:.2e}, log-probabilities by "
                                 f"{logprob_error:.2e}, top tokens {top_ids[0].tolist()} against "
                                 f"{expected_top.tolist()}); nothing was written")
        paired, tops_agree = paired_prediction_error(predict, ids, masks, alone)
        worst["paired_logprob_max_abs"] = max(worst["paired_logprob_max_abs"], paired)
        worst["paired_top_ids_agree"] &= tops_agree
        if not (paired <= LOGPROB_ATOL and tops_agree) and not int8:
            raise HeadsError(f"validation failed: at T={length} predict.onnx gives a clean and an ablated pass run "
                             f"together other predictions than each alone (log-probabilities by {paired:.2e}, top "
                             f"tokens {'the same' if tops_agree else 'not the same'}); nothing was written")
        log.info("  validated head masks and prediction at T=%d (%.1fs)", length, time.perf_counter() - started)
    return {**worst, "lengths": lengths, "masks": list(masks), "atol": {"attention": ATTENTION_ATOL,
                                                                         "logprob": LOGPROB_ATOL},
            "reference": "transformers eager, head_mask" if not int8 else "transformers eager fp32 (int8 is compared, not held to the bounds)"}


def paired_prediction_error(predict, ids: np.ndarray, masks: dict, alone: dict) -> tuple[float, bool]:
    """The server predicts a sentence's clean and ablated passes as one batch of two, which cuts the LM head's
    windows otherwise than one sentence does (export/predict.attach_lm_head): the largest difference of that
    batch's log-probabilities from each sentence's alone, and whether their top tokens are the same."""
    names = ["none", "random"]
    residuals = np.concatenate([alone[name][0] for name in names])
    feeds = {RESIDUAL: residuals, HEAD_MASK: np.stack([masks[name] for name in names]),
             INPUT_IDS: np.stack([ids, ids])}
    together = dict(zip(PREDICT_OUTPUTS, predict.run(PREDICT_OUTPUTS, feeds)))
    worst, agree = 0.0, True
    for row, name in enumerate(names):
        single = alone[name][1]  # that sentence's predictions run alone
        agree &= together[TOP_IDS][row].tolist() == single[TOP_IDS][0].tolist()
        worst = max(worst, *(float(np.abs(together[key][row] - single[key][0]).max(initial=0))
                             for key in (NEXT_TOKEN_LOGPROB, TOP_LOGPROB)))
    return worst, agree
