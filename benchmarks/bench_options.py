"""What onnxruntime's knobs buy at T = 16 on GPT-2 small's shape: the evidence behind the engine's settings.

    python benchmarks/bench_options.py [--repeat 40]

Times one `session.run` of the exported attention graph under: the engine's settings (ORT_ENABLE_ALL, one
thread per core, spinning on); each graph optimisation level; 1 and 2 intra-op threads; spinning off;
prepacking off; onnxruntime's transformer optimizer (LayerNorm, GELU and bias fusions; attention fusion
disabled, since a fused Attention op would not output the probabilities); and the graph as optimum writes it,
before export/optimize.py puts each projection's weight on the streamed side of the product.
Every variant's attention is checked against the engine's before it is timed.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from common import exported, median_ms

LEVELS = {"disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session(path, level="all", threads=None, **entries):
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    for key, value in entries.items():
        options.add_session_config_entry(key.replace("__", "."), value)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def transformer_optimized(path, out):
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model
    fusion = FusionOptions("gpt2")
    fusion.enable_attention = False  # a fused Attention op has no probabilities output
    optimize_model(str(path), model_type="gpt2", num_heads=12, hidden_size=768, optimization_options=fusion,
                   opt_level=0).save_model_to_file(str(out))
    return out


def plain_export(out):
    """The graph as optimum writes it, before export/optimize.py transposes the projections."""
    from transformers import GPT2Model

    from common import gpt2_small_checkpoint
    sys.path.insert(0, str(exported().parents[3]))
    from export.graph import export_onnx
    export_onnx(GPT2Model.from_pretrained(gpt2_small_checkpoint(), attn_implementation="eager").eval(), out)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--lengths", default="1,8,16,64", help="T values for the plain-vs-transposed comparison")
    args = parser.parse_args()
    path = exported() / "model.onnx"
    ids = {"input_ids": np.full((1, 16), 262, dtype=np.int64)}
    scratch = tempfile.mkdtemp(prefix="bench-options-")
    variants = {
        "engine settings (all, threads = cores, spinning)": lambda: session(path),
        "optimisation level: disabled": lambda: session(path, "disabled"),
        "optimisation level: basic": lambda: session(path, "basic"),
        "optimisation level: extended": lambda: session(path, "extended"),
        "1 intra-op thread": lambda: session(path, threads=1),
        f"{os.cpu_count()} intra-op threads, spinning off": lambda: session(
            path, threads=os.cpu_count(), session__intra_op__allow_spinning="0"),
        "prepacking off": lambda: session(path, session__disable_prepacking="1"),
        "transformer optimizer (no attention fusion)": lambda: session(
            transformer_optimized(path, os.path.join(scratch, "optimized.onnx"))),
        "projections not transposed (optimum's plain Gemm)": lambda: session(
            plain_export(Path(scratch) / "plain.onnx")),
    }
    reference = None
    print("| variant (T = 16, GPT-2 small shape) | median ms | vs engine |")
    print("|---|---:|---:|")
    for name, make in variants.items():
        current = make()
        attention = np.stack(current.run(None, ids))
        if reference is None:
            reference, base = attention, None
        assert np.abs(attention - reference).max() < 1e-4, name
        ms = median_ms(lambda: current.run(None, ids), args.repeat)
        base = base or ms
        print(f"| {name} | {ms:.2f} | {ms / base:.2f}× |")
        del current

    # The one rewrite that pays, across sentence lengths: it loses at T = 1 and wins from about T = 8 on.
    transposed, plain = session(path), session(Path(scratch) / "plain.onnx")
    print()
    print("| T | transposed projections ms (the engine) | plain Gemm ms | plain / transposed |")
    print("|---:|---:|---:|---:|")
    for n_tokens in (int(n) for n in args.lengths.split(",")):
        feed = {"input_ids": np.full((1, n_tokens), 262, dtype=np.int64)}
        ours = median_ms(lambda: transposed.run(None, feed), args.repeat)
        theirs = median_ms(lambda: plain.run(None, feed), args.repeat)
        print(f"| {n_tokens} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.2f}× |")


if __name__ == "__main__":
    main()
