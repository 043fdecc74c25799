"""Graph variants against sentence length: the evidence for which rewrites export/optimize.py applies.

    python benchmarks/bench_sweep.py [--lengths 1-64,96,128,256,512,1024] [--rounds 5] [--quick]

Builds (once, cached in .cache/bench/variants/) GPT-2 small's attention graph as optimum writes it, then each
rewrite of export/optimize.py on top of it, and times one `session.run` of each at every T, the variants
taking turns round after round (common.interleaved), each ratio taken within a round. Every variant's
attention is checked against optimum's graph before it is timed. Prints, per T, each variant's median ms and
its ratio to the fastest, and the issue's two targets for the graph the export writes: within 3% of the
fastest variant at every T, and no rise of more than 10% from one length to the next below 64.
"""

import argparse
import json
import os
import statistics
import sys

import numpy as np
import onnxruntime as ort
from onnx import helper, numpy_helper

from twelve_heads.export.optimize import add_initializer, constant_tensors, drop_dead_nodes

from common import CACHE, QUIET, attention_outputs, export_source, exported, feed, gpt2_small_checkpoint, interleaved, sgemm_gflops

VARIANTS = CACHE / "variants"
WITHIN_FASTEST = 1.03  # the target: the export's graph within 3% of the fastest variant at every T
MAX_RISE = 1.10  # ... and never more than 10% slower than at the length before, below 64 tokens
RISE_BELOW = 64


def build_variants() -> dict[str, str]:
    """{variant: path}: optimum's graph, then each of the export's rewrites added in turn."""
    import onnx

    from twelve_heads.export.optimize import drop_identity_casts, drop_repeated_causal_masks, fold_shape_arithmetic

    paths = {"optimum's graph": VARIANTS / "optimum.onnx", "shapes folded, identity casts dropped": VARIANTS / "folded.onnx",
             "shapes folded + projections transposed": VARIANTS / "transposed.onnx",
             "shapes folded + causal mask once": VARIANTS / "masked_once.onnx"}
    stamp = VARIANTS / "source"
    if all(path.is_file() for path in paths.values()) and stamp.is_file() and stamp.read_text() == export_source():
        return {name: str(path) for name, path in paths.items()}
    from transformers import GPT2Model

    from twelve_heads.export.graph import export_onnx
    VARIANTS.mkdir(parents=True, exist_ok=True)
    export_onnx(GPT2Model.from_pretrained(gpt2_small_checkpoint(), attn_implementation="eager").eval(),
                paths["optimum's graph"])
    graph = onnx.load(str(paths["optimum's graph"]))
    fold_shape_arithmetic(graph)
    drop_identity_casts(graph)
    onnx.save(graph, str(paths["shapes folded, identity casts dropped"]))
    drop_repeated_causal_masks(graph)
    onnx.save(graph, str(paths["shapes folded + causal mask once"]))
    graph = onnx.load(str(paths["shapes folded, identity casts dropped"]))
    transpose_projections(graph)
    onnx.save(graph, str(paths["shapes folded + projections transposed"]))
    stamp.write_text(export_source())
    return {name: str(path) for name, path in paths.items()}


# The export's former rewrite, kept here as a contender: see export/optimize.py for why it left the export.
def transpose_projections(model) -> int:
    """Rewrite Gemm(X, W, b) with constant W, b as Transpose(Gemm(Wᵀ, X, b as a column, transB=1)); return how many."""
    initializers = constant_tensors(model)
    nodes, rewritten = [], 0
    for node in model.graph.node:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (node.op_type == "Gemm" and not attributes.get("transA", 0) and not attributes.get("transB", 0)
                 and attributes.get("alpha", 1.0) == 1.0 and attributes.get("beta", 1.0) == 1.0)
        if not plain or node.input[1] not in initializers or (len(node.input) > 2 and node.input[2] not in initializers):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])  # (K, N)
        inputs = [add_initializer(model, f"{node.input[1]}_t", np.ascontiguousarray(weight.T)), node.input[0]]
        if len(node.input) > 2:
            bias = numpy_helper.to_array(initializers[node.input[2]])
            inputs.append(add_initializer(model, f"{node.input[2]}_column", bias.reshape(-1, 1)))  # (N, 1)
        product = f"{node.output[0]}_transposed"
        nodes.append(helper.make_node("Gemm", inputs, [product], name=f"{node.name}_transposed", transB=1))
        nodes.append(helper.make_node("Transpose", [product], [node.output[0]], name=f"{node.name}_back", perm=[1, 0]))
        rewritten += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    drop_dead_nodes(model)  # the Identity aliases of the untransposed weights, and those weights
    return rewritten



def session(path: str, threads: int) -> ort.InferenceSession:
    """Every variant gets the engine's session settings, so only the graph differs."""
    from pathlib import Path

    from twelve_heads.server.engine import open_session
    return open_session(Path(path), threads)


def parse_lengths(text: str) -> list[int]:
    lengths = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        lengths.extend(range(int(first), int(last or first) + 1))
    return lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="1-64,96,128,256,512,1024")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per length")
    parser.add_argument("--per-round", type=int, default=4, help="timed calls of each variant per round")
    parser.add_argument("--long-rounds", type=int, default=3, help="rounds for T > 128")
    parser.add_argument("--quick", action="store_true", help="lengths 1,8,16,17,24,32,33,64,128,256; 3 rounds")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", help="also write the medians here")
    args = parser.parse_args()
    if args.quick:
        args.lengths, args.rounds, args.long_rounds = "1,8,16,17,24,32,33,64,128,256", 3, 2
    lengths = parse_lengths(args.lengths)
    sessions = {name: session(path, args.threads) for name, path in build_variants().items()}
    engine_graph = str(exported() / "model.onnx")
    sessions = {"the export's graph (engine)": session(engine_graph, args.threads), **sessions}
    print(f"machine: {os.cpu_count()} cores, sgemm {sgemm_gflops():.0f} GFLOP/s; onnxruntime {ort.__version__}; "
          f"threads {args.threads}; one session.run of GPT-2 small's shape (12 × 12 heads); "
          f"{args.rounds} rounds × {args.per_round} calls per length ({args.long_rounds} rounds above 128)")
    names = list(sessions)
    print()
    print("|    T | " + " | ".join(names) + " | engine / fastest |")
    print("|-----:|" + "---:|" * (len(names) + 1))
    rows = []
    for n_tokens in lengths:
        ids = np.random.default_rng(n_tokens).integers(0, 50257, (1, n_tokens), dtype=np.int64)
        feeds = {name: feed(current, ids) for name, current in sessions.items()}
        reference = np.stack(sessions["optimum's graph"].run(None, feeds["optimum's graph"]))
        for name, current in sessions.items():
            ours = np.stack(current.run(attention_outputs(current), feeds[name]))
            assert np.abs(ours - reference).max() < 1e-4, (name, n_tokens)
        del reference
        rounds = args.rounds if n_tokens <= 128 else args.long_rounds
        times = interleaved({name: (lambda s=s, f=feeds[name]: s.run(None, f)) for name, s in sessions.items()},
                            rounds, args.per_round if n_tokens <= 128 else 2)
        medians = {name: [statistics.median(samples) for samples in times[name]] for name in names}
        # Within each round: every variant against the fastest of that round; then the median over rounds.
        over_fastest = {name: statistics.median(m / min(ms) for m, ms in zip(medians[name], zip(*medians.values())))
                        for name in names}
        row = {"T": n_tokens, **{name: statistics.median(medians[name]) for name in names},
               "engine_over_fastest": over_fastest[names[0]]}
        rows.append(row)
        print(f"| {n_tokens:4d} | " + " | ".join(f"{row[name]:.2f} ({over_fastest[name]:.2f}×)" for name in names)
              + f" | {row['engine_over_fastest']:.3f}× |", flush=True)
    print("\n(ms: median over rounds of each round's median; in brackets, the median over rounds of the ratio to "
          "that round's fastest variant)")
    print(QUIET.report())
    print()
    worst = max(rows, key=lambda row: row["engine_over_fastest"])
    print(f"target: the export's graph within {WITHIN_FASTEST:.2f}× of the fastest variant at every T — worst "
          f"{worst['engine_over_fastest']:.3f}× at T = {worst['T']}: "
          f"{'met' if worst['engine_over_fastest'] <= WITHIN_FASTEST else 'NOT met'}")
    for name in names:
        rises = [(b["T"], b[name] / a[name]) for a, b in zip(rows, rows[1:])
                 if b["T"] == a["T"] + 1 and b["T"] <= RISE_BELOW]
        if rises:
            length, rise = max(rises, key=lambda pair: pair[1])
            verdict = "" if name != names[0] else f" (target ≤ {MAX_RISE:.2f}×: {'met' if rise <= MAX_RISE else 'NOT met'})"
            print(f"largest rise from T-1 to T below {RISE_BELOW + 1}, {name}: {rise:.3f}× at T = {length}{verdict}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    sys.exit(main())
