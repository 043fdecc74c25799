"""predict.onnx: from the residual stream entering GPT-2's last block to the next-token log-probabilities.

Built by hand from the checkpoint's weights (no tracing, so nothing depends on transformers' head_mask
argument, which transformers v5 removes): the last block with its row of the head mask, the final LayerNorm,
and the LM head tied to the token embedding. Inputs: `residual` (B, T, n_embd) from model.onnx, `head_mask`
(B, L, H) and `input_ids` (B, T). Outputs (modeldir.PREDICT_OUTPUTS): `next_token_logprob` (B, T - 1), the
log-probability of each actual next token (position i predicts token i + 1), `top_logprob` / `top_ids`
(B, TOP_K), the likeliest tokens after the last position, and `last_logprob` (B, V), every token's there. Every
sentence of a batch has the same length (a clean and an ablated pass).

The LM head is the whole cost at short lengths (50,257 × 768 per position), which is why it lives here and not
in model.onnx. Its weight is the embedding table itself, read by name from embedding.bin; it is the A side of
the product (logitsᵀ = E · hᵀ), which onnxruntime streams once and never prepacks into a second copy.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from twelve_heads.errors import HeadsError
from twelve_heads.modeldir import (HEAD_MASK, INPUT_IDS, LAST_LOGPROB, NEXT_TOKEN_LOGPROB, PREDICT_OUTPUTS, RESIDUAL,
                                   TOP_IDS, TOP_K, TOP_LOGPROB)

OPSET = 17  # LayerNormalization; the same opset as model.onnx
LM_HEAD_ROWS = 32  # rows per window of the LM head: its arena and its speed, benchmarks/bench_lm_head.py
FINAL = "final_hidden_state"  # ln_f's output: what the block graph emits before the LM head is attached
# transformers' activations, written with ONNX ops (opset 17 has no Gelu).
ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu", "relu")


class Builder:
    """Nodes and initializers of one graph; every op returns its output's name."""

    def __init__(self, prefix: str):
        self.prefix, self.nodes, self.initializers, self.count = prefix, [], [], 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"/{self.prefix}/{hint}_{self.count}"

    def const(self, value, dtype=np.int64, hint: str = "const") -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attributes):
        names = [self.name(op_type) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=names[0], **attributes))
        return names[0] if outputs == 1 else names


def block_graph(weights: dict[str, np.ndarray], config) -> onnx.ModelProto:
    """The last block with its head-mask row, then ln_f: residual, head_mask, input_ids → FINAL (B, T, D).
    `weights` is GPT2Model's state dict as float32 numpy arrays."""
    if config.activation_function not in ACTIVATIONS:
        raise HeadsError(f"this checkpoint's activation {config.activation_function!r} is not supported for "
                         f"prediction (supported: {', '.join(ACTIVATIONS)})")
    n_layer, n_head, n_embd = config.n_layer, config.n_head, config.n_embd
    head_dim, last = n_embd // n_head, n_layer - 1
    g = Builder("predict")

    def weight(name: str) -> str:
        return g.const(weights[f"h.{last}.{name}"], np.float32, hint=name)

    def linear(x: str, module: str) -> str:  # GPT-2's Conv1D: x · W + b, W stored (in, out)
        return g.op("Add", g.op("MatMul", x, weight(f"{module}.weight")), weight(f"{module}.bias"))

    epsilon = float(config.layer_norm_epsilon)
    batch_time = g.op("Slice", g.op("Shape", RESIDUAL), g.const([0]), g.const([2]))  # (B, T)
    per_head = g.op("Concat", batch_time, g.const([n_head, head_dim]), axis=0)
    x = RESIDUAL
    h = g.op("LayerNormalization", x, weight("ln_1.weight"), weight("ln_1.bias"), epsilon=epsilon, axis=-1)
    q, k, v = g.op("Split", linear(h, "attn.c_attn"), g.const([n_embd] * 3), outputs=3, axis=-1)
    q = g.op("Transpose", g.op("Reshape", q, per_head), perm=[0, 2, 1, 3])  # (B, H, T, Dh)
    k = g.op("Transpose", g.op("Reshape", k, per_head), perm=[0, 2, 3, 1])  # (B, H, Dh, T)
    v = g.op("Transpose", g.op("Reshape", v, per_head), perm=[0, 2, 1, 3])
    scores = g.op("MatMul", q, k)  # (B, H, T, T)
    divisor = (head_dim ** 0.5 if config.scale_attn_weights else 1.0) * (
        n_layer if config.scale_attn_by_inverse_layer_idx else 1.0)
    if divisor != 1.0:
        scores = g.op("Div", scores, g.const(divisor, np.float32))
    n_tokens = g.op("Slice", batch_time, g.const([1]), g.const([2]))
    ones = g.op("ConstantOfShape", g.op("Concat", n_tokens, n_tokens, axis=0),
                value=numpy_helper.from_array(np.array([1], dtype=np.int64)))
    causal = g.op("Cast", g.op("Trilu", ones, upper=0), to=TensorProto.BOOL)  # (T, T): key j <= query i
    scores = g.op("Where", causal, scores, g.const(np.finfo(np.float32).min, np.float32))
    z = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)  # (B, H, T, Dh)
    row = g.op("Unsqueeze", g.op("Gather", HEAD_MASK, g.const(last), axis=1), g.const([2, 3]))  # (B, H, 1, 1)
    z = g.op("Mul", z, row)  # zero-ablation: a knocked-out head adds nothing; c_proj's bias stays
    merged = g.op("Reshape", g.op("Transpose", z, perm=[0, 2, 1, 3]), g.op("Concat", batch_time, g.const([n_embd]), axis=0))
    x = g.op("Add", x, linear(merged, "attn.c_proj"))
    h = g.op("LayerNormalization", x, weight("ln_2.weight"), weight("ln_2.bias"), epsilon=epsilon, axis=-1)
    x = g.op("Add", x, linear(activation(g, linear(h, "mlp.c_fc"), config.activation_function), "mlp.c_proj"))
    final = g.op("LayerNormalization", x, g.const(weights["ln_f.weight"], np.float32, "ln_f.weight"),
                 g.const(weights["ln_f.bias"], np.float32, "ln_f.bias"), epsilon=epsilon, axis=-1)
    g.nodes.append(helper.make_node("Identity", [final], [FINAL], name="/predict/final"))
    batch, length = "batch_size", "sequence_length"
    graph = helper.make_graph(g.nodes, "predict", [
        helper.make_tensor_value_info(RESIDUAL, TensorProto.FLOAT, [batch, length, n_embd]),
        helper.make_tensor_value_info(HEAD_MASK, TensorProto.FLOAT, [batch, n_layer, n_head]),
        helper.make_tensor_value_info(INPUT_IDS, TensorProto.INT64, [batch, length]),
    ], [helper.make_tensor_value_info(FINAL, TensorProto.FLOAT, [batch, length, n_embd])], g.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def activation(g: Builder, x: str, kind: str) -> str:
    if kind == "relu":
        return g.op("Relu", x)
    if kind == "gelu":  # 0.5 x (1 + erf(x / √2))
        inner = g.op("Add", g.op("Erf", g.op("Div", x, g.const(2 ** 0.5, np.float32))), g.const(1.0, np.float32))
        return g.op("Mul", g.op("Mul", x, g.const(0.5, np.float32)), inner)
    # gelu_new: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))), as transformers' NewGELUActivation
    cubic = g.op("Add", x, g.op("Mul", g.op("Pow", x, g.const(3.0, np.float32)), g.const(0.044715, np.float32)))
    inner = g.op("Add", g.op("Tanh", g.op("Mul", cubic, g.const((2 / np.pi) ** 0.5, np.float32))),
                 g.const(1.0, np.float32))
    return g.op("Mul", g.op("Mul", x, g.const(0.5, np.float32)), inner)


def attach_lm_head(model: onnx.ModelProto, embedding: onnx.TensorProto, quantized: dict | None,
                   rows: int = LM_HEAD_ROWS) -> None:
    """Append the tied LM head to a block graph (fp32 or already quantized): FINAL → the four outputs.

    `embedding` is the table's initializer as model.onnx has it (the external reference to embedding.bin).
    `quantized` is None for an fp32 table, else {"scale", "zero_point"}: the uint8 table of the int8 export,
    whose product with the dynamically quantized hidden states is an integer MatMul.

    The head runs in a Loop over windows of positions, each window at most `rows` rows of the batch (every
    sentence's same positions; a batch of more than `rows` sentences takes one position a window). A logits
    table is vocabulary × rows, and onnxruntime's arena keeps the largest it was ever asked for: one pass over
    every row would keep a whole prediction's two tables for good (benchmarks/results/bench_intervene.txt). A
    window's tables are freed for the next. Windows are cut evenly, with zero rows before position 0 where T
    does not divide (their results are dropped), so that every sentence's last position is the last column of
    the last window: its top tokens are read there, carried out of the loop. In the int8 head zero rows cannot
    move a window's quantization scale: DynamicQuantizeLinear's range always includes 0."""
    g = Builder("lm_head")
    vocab_size, n_embd = embedding.dims
    one, last_axis = g.const([1]), g.const([2])
    batch_time = g.op("Slice", g.op("Shape", FINAL), g.const([0]), g.const([2]))  # (B, T) of the hidden states
    batch, length = (g.op("Slice", batch_time, g.const([i]), g.const([i + 1])) for i in (0, 1))
    ids = g.op("Reshape", INPUT_IDS, batch_time)  # fails, as it should, when the ids are not one per hidden state
    # positions per window at most p = max(rows // B, 1); windows n = ceil(T / p), width c = ceil(T / n) ≤ p,
    # and padding n·c - T
    per_window = g.op("Max", g.op("Div", g.const([rows]), batch), one)
    windows = g.op("Div", g.op("Add", length, g.op("Sub", per_window, one)), per_window)
    width = g.op("Div", g.op("Add", length, g.op("Sub", windows, one)), windows)
    padding = g.op("Sub", g.op("Mul", windows, width), length)
    zero = g.const([0])
    hidden = g.op("Pad", FINAL, g.op("Concat", zero, padding, zero, zero, zero, zero, axis=0))  # (B, n·c, D)
    # The token each position must predict: the next one; the last position has none (0 stands in, cut below).
    following = g.op("Pad", g.op("Slice", ids, one, g.const([np.iinfo(np.int64).max]), one), g.const([0, 0, 0, 1]))
    following = g.op("Pad", following, g.op("Concat", zero, padding, zero, zero, axis=0))  # (B, n·c)

    body = Builder("lm_head/window")
    step, condition, unread = "window_index", "window_condition", "previous_window_last_column"
    begin = body.op("Mul", body.op("Unsqueeze", step, body.const([0])), width)
    end = body.op("Add", begin, width)
    window_rows = body.op("Reshape", body.op("Slice", hidden, begin, end, one), body.const([-1, n_embd]))  # (B·c, D)
    if quantized is None:
        logits = body.op("Gemm", embedding.name, window_rows, transB=1)  # (V, B·c)
    else:
        codes, codes_scale, codes_zero = body.op(
            "DynamicQuantizeLinear", body.op("Transpose", window_rows, perm=[1, 0]), outputs=3)
        product = body.op("MatMulInteger", embedding.name, codes, body.const(quantized["zero_point"], np.uint8),
                          codes_zero)
        scale = body.op("Mul", body.const(quantized["scale"], np.float32), codes_scale)
        logits = body.op("Mul", body.op("Cast", product, to=TensorProto.FLOAT), scale)
    # log p = logit - logsumexp over the vocabulary. The logsumexp is spelled out (max, shift, exp, sum, log)
    # because onnxruntime's ReduceLogSumExp over the vocabulary axis was most of a knock-out request's time at
    # 64 tokens (bench_intervene.txt). Everything else reads the shifted logits,
    # log p = (logit - max) - log Σ exp(logit - max), so the shift is the logits' last reader and is written in
    # place; Exp is not (onnxruntime's cannot be): a window's peak is two tables.
    shifted = body.op("Sub", logits, body.op("ReduceMax", logits, axes=[0], keepdims=1))  # (V, B·c), at most 0
    normalizer = body.op("Log", body.op("ReduceSum", body.op("Exp", shifted), body.const([0]), keepdims=1))
    targets = body.op("Reshape", body.op("Slice", following, begin, end, one), body.const([1, -1]))  # (1, B·c)
    picked = body.op("Sub", body.op("GatherElements", shifted, targets, axis=0), normalizer)
    window_shape = body.op("Concat", batch, width, axis=0)
    window_logprob = body.op("Reshape", picked, window_shape)  # (B, c): the loop stacks them (n, B, c)
    by_column = body.op("Concat", body.const([vocab_size]), window_shape, axis=0)  # (V, B, c)
    final_column = body.op("Sub", width, one)
    last_column = body.op("Sub", body.op("Slice", body.op("Reshape", shifted, by_column), final_column, width, last_axis),
                  body.op("Slice", body.op("Reshape", normalizer, body.op("Concat", one, window_shape, axis=0)),
                          final_column, width, last_axis))  # (V, B, 1): the last window's is the one read
    body.nodes.append(helper.make_node("Identity", [condition], [condition + "_out"], name="/lm_head/window/go_on"))
    window = helper.make_graph(
        body.nodes, "lm_head_window",
        [helper.make_tensor_value_info(step, TensorProto.INT64, []),
         helper.make_tensor_value_info(condition, TensorProto.BOOL, []),
         helper.make_tensor_value_info(unread, TensorProto.FLOAT, [vocab_size, None, 1])],
        [helper.make_tensor_value_info(condition + "_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info(last_column, TensorProto.FLOAT, [vocab_size, None, 1]),
         helper.make_tensor_value_info(window_logprob, TensorProto.FLOAT, [None, None])],
        body.initializers)

    start_top = g.op("ConstantOfShape", g.op("Concat", g.const([vocab_size]), batch, one, axis=0),
                     value=numpy_helper.from_array(np.array([0], dtype=np.float32)))
    last, stacked = g.op("Loop", g.op("Squeeze", windows, zero), "", start_top, outputs=2, body=window)
    by_sentence = g.op("Reshape", g.op("Transpose", stacked, perm=[1, 0, 2]), g.op("Concat", batch, g.const([-1]), axis=0))
    g.nodes.append(helper.make_node("Slice", [by_sentence, padding, g.const([-1]), one], [NEXT_TOKEN_LOGPROB],
                                    name="/lm_head/next"))  # (B, T - 1)
    g.nodes.append(helper.make_node("Transpose", [g.op("Squeeze", last, last_axis)], [LAST_LOGPROB],
                                    name="/lm_head/last", perm=[1, 0]))  # (B, V)
    g.nodes.append(helper.make_node("TopK", [LAST_LOGPROB, g.const([min(TOP_K, vocab_size)])],
                                    [TOP_LOGPROB, TOP_IDS], name="/lm_head/top", axis=-1, largest=1, sorted=1))
    model.graph.node.extend(g.nodes)
    model.graph.initializer.extend([*g.initializers, embedding])
    batch, length = (model.graph.input[0].type.tensor_type.shape.dim[i].dim_param for i in (0, 1))
    del model.graph.output[:]
    top = min(TOP_K, vocab_size)
    shapes = {NEXT_TOKEN_LOGPROB: (TensorProto.FLOAT, [batch, None]), TOP_LOGPROB: (TensorProto.FLOAT, [batch, top]),
              TOP_IDS: (TensorProto.INT64, [batch, top]), LAST_LOGPROB: (TensorProto.FLOAT, [batch, vocab_size])}
    model.graph.output.extend(helper.make_tensor_value_info(name, *shapes[name]) for name in PREDICT_OUTPUTS)


def without_lm_head(model: onnx.ModelProto, embedding_name: str) -> tuple[onnx.ModelProto, onnx.TensorProto]:
    """A copy of predict.onnx as block_graph built it, before attach_lm_head (FINAL its one output), and the
    embedding table's initializer it held: what attach_lm_head takes to attach the head again with other `rows`
    (tests/test_intervene.py, benchmarks/bench_lm_head.py)."""
    table = next(tensor for tensor in model.graph.initializer if tensor.name == embedding_name)
    block = onnx.ModelProto()
    block.CopyFrom(model)
    added = lambda name: name.startswith("/lm_head/")  # noqa: E731 (every name attach_lm_head's Builder made)
    nodes = [node for node in block.graph.node if not added(node.name)]
    initializers = [tensor for tensor in block.graph.initializer if not added(tensor.name) and tensor.name != embedding_name]
    del block.graph.node[:], block.graph.initializer[:], block.graph.output[:]
    block.graph.node.extend(nodes)
    block.graph.initializer.extend(initializers)
    n_embd = next(value for value in block.graph.input if value.name == RESIDUAL).type.tensor_type.shape.dim[2]
    block.graph.output.extend([helper.make_tensor_value_info(FINAL, TensorProto.FLOAT, ["batch", "length", n_embd.dim_value])])
    return block, table
