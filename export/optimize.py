"""Rewrites of the exported graph that make it faster on a CPU without changing what it computes. The export
validates the rewritten graph against PyTorch like any other; benchmarks/bench_sweep.py times each rewrite at
every sentence length from 1 to 64 and at 96 … 1,024, and only rewrites that never lose are kept.

- fold_shape_arithmetic: the traced graph recomputes every view's shape at run time, about 2,000 tiny nodes
  for GPT-2 small; the shapes depend on the batch and the sentence length alone, so most become constants.
- drop_identity_casts: Casts to the type their input already has, one of which copied every probability.
- drop_repeated_causal_masks: each layer masks its scores twice (Where, then Add); the Add alone is kept.

The projections stay as optimum writes them, Gemm(X, W, b) with X the (B·T, K) activations. Their transposed
form Gemm(Wᵀ, X) (benchmarks/bench_sweep.py keeps it as a contender) puts B·T on onnxruntime's sgemm column
side, which it computes in blocks of 16: wherever the machine is bound by compute rather than by reading
weights, every T costs what the next multiple of 16 costs (the cliff from 16 to 17 tokens), and a sentence in a
batch no longer gets bit-for-bit its attention alone.

The graph keeps both dimensions of input_ids dynamic: a batch of B right-padded sentences of T tokens.
"""

import numpy as np
import onnx
from onnx import helper, numpy_helper

from twelve_heads.modeldir import INPUT_IDS


def constant_tensors(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    """{name: initializer} for every name that holds one: the exporter shares identical tensors (GPT-2's zero
    biases at initialisation, the demo model's zero weights) through Identity nodes, so those names count too."""
    initializers = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            initializers[node.output[0]] = initializers[node.input[0]]
    return initializers


def readers_of(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """{tensor name: the nodes that read it}, in graph order."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def add_initializer(model: onnx.ModelProto, name: str, value: np.ndarray) -> str:
    model.graph.initializer.append(numpy_helper.from_array(value, name))
    return name


def element_types(model: onnx.ModelProto) -> dict[str, int]:
    """{tensor name: its ONNX element type}: the graph's inputs and outputs, and every tensor between them whose
    type shape inference can tell."""
    inferred = onnx.shape_inference.infer_shapes(model)
    return {info.name: info.type.tensor_type.elem_type
            for info in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}


def drop_identity_casts(model: onnx.ModelProto) -> int:
    """Remove Casts to the type their input already has; return how many.

    The traced attention casts the softmax to the value's dtype (float to float), and that Cast is what
    produces each `attentions.i` output, so onnxruntime cannot remove it: every probability is copied once
    more, 50 MB a layer at T = 1,024. Where a Cast's output is a graph output, its input takes that name."""
    types = element_types(model)
    graph_outputs = {output.name for output in model.graph.output}
    dropped = 0
    for cast in [node for node in model.graph.node if node.op_type == "Cast"]:
        target = next(helper.get_attribute_value(a) for a in cast.attribute if a.name == "to")
        source, result = cast.input[0], cast.output[0]
        producer = next((node for node in model.graph.node if source in node.output), None)
        if types.get(source) != target or producer is None or source in graph_outputs:
            continue
        old, new = (source, result) if result in graph_outputs else (result, source)
        model.graph.node.remove(cast)
        for node in model.graph.node:  # one rename at a time, so chained Casts stay consistent
            node.input[:] = [new if name == old else name for name in node.input]
            node.output[:] = [new if name == old else name for name in node.output]
        dropped += 1
    return dropped


# --- shape arithmetic ---------------------------------------------------------------------------------------

# (batch, sentence length) pairs at which the shape arithmetic is evaluated: both vary, independently, so a
# dimension that follows one of them is not mistaken for a constant or for the other.
SHAPE_PROBES = ((1, 1), (1, 2), (2, 3), (3, 17), (1, 5))
FOLDABLE_ELEMENTS = 4096  # a shape-derived tensor larger than this is data (a mask, a position table), not folded


def fold_shape_arithmetic(model: onnx.ModelProto) -> dict:
    """Replace the exporter's shape arithmetic with constants; return what was replaced.

    The traced graph recomputes every view's shape at run time (Shape → Gather → Unsqueeze → Concat → Reshape,
    about 1,000 tiny nodes for GPT-2 small), and onnxruntime pays a few microseconds for each. Only the batch B
    and the sentence length T vary, so every tensor that depends on shapes alone is evaluated at several (B, T):
    - the same at every probe (the attention scale √d, a view's (-1, 768)): it becomes a constant;
    - a Reshape's target whose varying entries are each the input's own dimension at that index (0 in a
      Reshape target: keep it), except at most one (-1: inferred from the element count) is constant too.
    What is left depends on B or T for real and stays: the causal mask, the position range, and the target
    (B, T, N) that undoes each projection's flattening to (B·T, K) — one per width N, shared by every layer.
    The rewritten graph is then validated against PyTorch like any other.
    """
    shape_only = shape_only_tensors(model)
    producers = {output: node for node in model.graph.node for output in node.output}
    consumers = readers_of(model)
    graph_outputs = {output.name for output in model.graph.output}
    frontier = [name for name, node in producers.items()
                if name in shape_only and node.op_type not in ("Constant", "Identity")
                and (name in graph_outputs or any(not set(c.output) <= shape_only for c in consumers.get(name, [])))]
    initializers = {init.name for init in model.graph.initializer}
    reshapes = [node for node in model.graph.node if node.op_type == "Reshape" and node.input[1] not in initializers
                and not any(a.name == "allowzero" and a.i for a in node.attribute)]  # there, 0 means 0, not "keep"
    values, shapes = evaluate(model, frontier, {name for node in reshapes for name in (node.input[0], node.output[0])},
                              SHAPE_PROBES)
    constants = 0
    for name in frontier:
        probes = values.get(name)
        if probes is None or probes[0].size > FOLDABLE_ELEMENTS:
            continue
        if all(np.array_equal(probes[0], probe) and probe.dtype == probes[0].dtype for probe in probes):
            folded = add_initializer(model, f"{name}_folded", probes[0])
            for consumer in consumers.get(name, []):
                consumer.input[:] = [folded if i == name else i for i in consumer.input]
            constants += 1
    # The same function of (B, T) computed again (each layer re-derives the causal mask and its views' shapes
    # from its own tensors): every copy is read from the first one, and the rest becomes dead.
    first_of: dict[tuple, str] = {}
    shared = 0
    for name in frontier:  # in topological order, so the first copy is computed before any reader of a later one
        probes = values.get(name)
        if probes is None or name in graph_outputs:
            continue
        key = tuple((probe.dtype.str, probe.shape, probe.tobytes()) for probe in probes)
        if first_of.setdefault(key, name) != name:
            for consumer in consumers.get(name, []):
                consumer.input[:] = [first_of[key] if i == name else i for i in consumer.input]
            shared += 1
    reshape_targets = 0
    for node in reshapes:
        target = reshape_target(shapes[node.input[0]], shapes[node.output[0]])
        if target is not None:
            node.input[1] = add_initializer(model, f"{node.output[0]}_target", target)
            reshape_targets += 1
    removed = drop_dead_nodes(model)
    return {"constants": constants, "shared": shared, "reshape_targets": reshape_targets, "nodes_removed": removed}


def shape_only_tensors(model: onnx.ModelProto) -> set[str]:
    """Tensors computed from tensor shapes and constants alone, never from the token ids' values."""
    known = {init.name for init in model.graph.initializer}
    for node in model.graph.node:  # nodes are in topological order
        if node.op_type in ("Shape", "Size") or all(name in known for name in node.input if name):
            known.update(node.output)
    return known - {init.name for init in model.graph.initializer}


def reshape_target(inputs: list[tuple[int, ...]], outputs: list[tuple[int, ...]]) -> np.ndarray | None:
    """The constant Reshape target that turns each input shape into its output shape, one pair per probe: an
    entry the same at every probe as it is; one that is always the input's dimension at that index as 0 (copy
    it); one more that varies as -1 (infer it); None if that cannot say it (two free entries, rank changes)."""
    if len({len(shape) for shape in outputs}) != 1:
        return None
    table = np.array(outputs, dtype=np.int64)
    varying = (table != table[0]).any(axis=0)
    if (table[0][~varying] <= 0).any():  # a literal 0 or -1 would be read as "copy" or "infer"
        return None
    target, free = table[0].copy(), []
    for index in np.flatnonzero(varying):
        if all(index < len(shape) and shape[index] == out[index] for shape, out in zip(inputs, outputs)):
            target[index] = 0
        else:
            free.append(index)
    if len(free) > 1:
        return None
    target[free] = -1
    return target


def evaluate(model: onnx.ModelProto, names: list[str], shapes_of: set[str], probes
             ) -> tuple[dict[str, list[np.ndarray]], dict[str, list[tuple[int, ...]]]]:
    """Run the graph at each (batch, length) with intermediate tensors as outputs: {name: [value at each
    probe]} for `names`, {name: [shape at each probe]} for `shapes_of`."""
    import onnxruntime as ort

    types = element_types(model)
    names = [name for name in names if types.get(name)]
    shapes_of = sorted(shapes_of)
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_tensor_value_info(name, types[name], None) for name in names)
    shape_outputs = [f"{name}_probed_shape" for name in shapes_of]
    probe.graph.node.extend(helper.make_node("Shape", [name], [output]) for name, output in zip(shapes_of, shape_outputs))
    probe.graph.output.extend(helper.make_tensor_value_info(output, onnx.TensorProto.INT64, None) for output in shape_outputs)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    del probe
    values: dict[str, list[np.ndarray]] = {name: [] for name in names}
    shapes: dict[str, list[tuple[int, ...]]] = {name: [] for name in shapes_of}
    for batch, length in probes:
        results = session.run(names + shape_outputs, {INPUT_IDS: np.zeros((batch, length), dtype=np.int64)})
        for name, value in zip(names, results[:len(names)], strict=True):
            values[name].append(np.asarray(value))
        for name, value in zip(shapes_of, results[len(names):], strict=True):
            shapes[name].append(tuple(int(d) for d in value))
    return values, shapes


# --- the causal mask, applied once ----------------------------------------------------------------------------

MASKED = float(np.finfo(np.float32).min)  # what the traced attention writes where a key is masked


def drop_repeated_causal_masks(model: onnx.ModelProto) -> int:
    """Apply the causal mask once per layer instead of twice; return how many layers were rewritten.

    The traced attention masks the scores twice: Where(causal, scores, min) with its own (T, T) slice of the
    causal buffer, then Add(·, mask) with transformers' additive mask (0 where a key is visible, min where it is
    not), which is causal too. Each is a pass over every (head, query, key) of every layer. Where the additive
    mask is min at every key the Where hides (checked by evaluating both at SHAPE_PROBES), the Where changes
    nothing the softmax can see: a hidden key's score becomes min either way, up to rounding at 3.4e38 (|score|
    is far below its spacing there, 2e31), and exp(min - max) is 0, as exp(-inf) is. So the Add reads the
    scores directly. Both masks must depend on shapes alone: then no token id can change what they hide."""
    constants = {name: numpy_helper.to_array(init) for name, init in constant_tensors(model).items()}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    consumers = readers_of(model)
    shape_only = shape_only_tensors(model)
    graph_outputs = {output.name for output in model.graph.output}
    candidates = []  # (Where, Add, the additive mask's name)
    for where in (node for node in model.graph.node if node.op_type == "Where"):
        condition, _, fill = where.input
        readers = consumers.get(where.output[0], [])
        fill_value = constants.get(fill)
        if (fill_value is None or fill_value.size != 1 or float(fill_value.reshape(())) != MASKED
                or condition not in shape_only or len(readers) != 1 or readers[0].op_type != "Add"
                or where.output[0] in graph_outputs):
            continue
        add = readers[0]
        mask = add.input[1] if add.input[0] == where.output[0] else add.input[0]
        softmax_reads_it = [node.op_type for node in consumers.get(add.output[0], [])] == ["Softmax"]
        if (mask in shape_only and mask != where.output[0] and softmax_reads_it
                and add.output[0] not in graph_outputs):
            candidates.append((where, add, mask))
    if not candidates:
        return 0
    values, shapes = evaluate(model, sorted({name for where, _, mask in candidates for name in (where.input[0], mask)}),
                              {name for where, _, _ in candidates for name in (where.input[1], where.output[0])},
                              SHAPE_PROBES)
    rewritten = 0
    for where, add, mask in candidates:
        hides = [np.broadcast_arrays(~condition, additive) for condition, additive
                 in zip(values[where.input[0]], values[mask])]
        # The additive mask hides every key the Where hides, leaves every row a key to attend to (else the Where's
        # -inf would have decided that row), and the scores already have the Where's shape.
        if (all(additive.dtype == np.float32 and (additive[hidden] == MASKED).all()
                and (additive != MASKED).any(axis=-1).all() for hidden, additive in hides)
                and shapes[where.input[1]] == shapes[where.output[0]]):
            add.input[:] = [where.input[1] if name == where.output[0] else name for name in add.input]
            rewritten += 1
    drop_dead_nodes(model)
    return rewritten


def drop_dead_nodes(model: onnx.ModelProto) -> int:
    """Remove nodes none of whose outputs is read, repeatedly, then unread initializers; return nodes removed."""
    outputs = {output.name for output in model.graph.output}
    before = len(model.graph.node)
    while True:
        used = {name for node in model.graph.node for name in node.input} | outputs
        live = [node for node in model.graph.node if any(output in used for output in node.output)]
        if len(live) == len(model.graph.node):
            break
        del model.graph.node[:]
        model.graph.node.extend(live)
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return before - len(model.graph.node)
