"""Dynamic int8 quantization of the attention graph, with the error it costs reported, not hidden.

GPT-2's Conv1D projections export as Gemm, which onnxruntime's dynamic quantizer leaves in float; each
Gemm with a constant weight is first rewritten as MatMul + Add so that the large matmuls really are
quantized. The token embeddings (Gather) are stored as int8 too: they are a third of GPT-2
small's weights (the position table stays float, see position_lookups). The attention matmuls themselves (Q·Kᵀ, A·V) have no constant side and stay float, so softmax
sees float scores.
"""

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from .optimize import constant_tensors, drop_dead_nodes

QUANTIZED_OPS = ("MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul")
ERROR_CHECK_LENGTHS = (8, 32)  # sentences compared between fp32 and int8 for the reported error
ERROR_CHECK_SEED = 0


def gemm_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite Gemm(A, W, b) with constant W (alpha = beta = 1) as MatMul(A, W) + b; return how many."""
    initializers = constant_tensors(model)
    rewritten, nodes = 0, []
    for node in model.graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if (node.op_type != "Gemm" or node.input[1] not in initializers or attributes.get("transA", 0)
                or attributes.get("alpha", 1.0) != 1.0 or attributes.get("beta", 1.0) != 1.0):
            nodes.append(node)
            continue
        weight_name = initializers[node.input[1]].name  # the initializer itself: the quantizer skips an alias
        if attributes.get("transB", 0):
            weight = numpy_helper.to_array(initializers[weight_name]).T
            weight_name = f"{weight_name}_transposed"
            model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight), weight_name))
        product = f"{node.output[0]}_matmul"
        nodes.append(helper.make_node("MatMul", [node.input[0], weight_name],
                                      [product if len(node.input) > 2 else node.output[0]], name=f"{node.name}_matmul"))
        if len(node.input) > 2:
            nodes.append(helper.make_node("Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_add"))
        rewritten += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    drop_dead_nodes(model)  # the Identity aliases now read by nothing
    return rewritten


def position_lookups(model: onnx.ModelProto) -> list[str]:
    """The Gather nodes reading the position embeddings (wpe): kept in float. They are small (3 MB), and one
    scale for a whole table flattens positions whose norms differ a lot, such as a first-position sink."""
    return [node.name for node in model.graph.node if node.op_type == "Gather" and "wpe" in node.input[0]]


def quantize_int8(onnx_path: Path) -> dict:
    """Quantize `onnx_path` in place; return what was done and what it cost against the fp32 graph."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    onnx_path = Path(onnx_path)
    float_path = onnx_path.with_name("float.onnx")
    prepared_path = onnx_path.with_name("prepared.onnx")
    onnx_path.rename(float_path)
    model = onnx.load(str(float_path))
    ops_before = Counter(node.op_type for node in model.graph.node)
    rewritten = gemm_to_matmul(model)
    onnx.save(model, str(prepared_path))
    logging.disable(logging.WARNING)  # its advice to pre-process is for convolutional nets, not this graph
    try:
        quantize_dynamic(str(prepared_path), str(onnx_path), op_types_to_quantize=["MatMul", "Gather"],
                         weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=position_lookups(model))
    finally:
        logging.disable(logging.NOTSET)
    ops_after = Counter(node.op_type for node in onnx.load(str(onnx_path)).graph.node)
    error = attention_error(float_path, onnx_path, model)
    prepared_path.unlink()
    float_path.unlink()
    return {
        "method": "onnxruntime dynamic quantization: int8 weights per channel for MatMul, int8 token embeddings (Gather)",
        "gemm_rewritten_as_matmul": rewritten,
        "nodes_before": {op: ops_before[op] for op in ("Gemm", "MatMul")},
        "nodes_after": {op: ops_after[op] for op in ("Gemm", "MatMul", *QUANTIZED_OPS, "DequantizeLinear")
                        if ops_after[op]},
        "attention_error_vs_fp32": error,
    }


def attention_error(float_path: Path, int8_path: Path, model: onnx.ModelProto) -> dict:
    vocab_size = next(numpy_helper.to_array(init).shape[0] for init in model.graph.initializer
                      if "wte" in init.name)
    sessions = [ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]) for path in (float_path, int8_path)]
    generator = np.random.default_rng(ERROR_CHECK_SEED)
    differences = []
    for length in ERROR_CHECK_LENGTHS:
        ids = generator.integers(0, vocab_size, size=(1, length), dtype=np.int64)
        reference, quantized = (np.stack(session.run(None, {"input_ids": ids})) for session in sessions)
        differences.append(np.abs(reference - quantized).ravel())
    difference = np.concatenate(differences)
    return {"max_abs": float(difference.max()), "mean_abs": float(difference.mean()),
            "lengths": list(ERROR_CHECK_LENGTHS)}
