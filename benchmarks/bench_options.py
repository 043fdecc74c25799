"""What onnxruntime's knobs buy on GPT-2 small's shape: the evidence behind the engine's session settings.

    python benchmarks/bench_options.py [--lengths 8,16,64] [--rounds 10]

Times one `session.run` of the exported attention graph, at each length, under: the engine's settings
(ORT_ENABLE_ALL, one thread per core, spinning on, memory arena on); each graph optimisation level; 1 intra-op
thread; spinning off; the arena off; prepacking off; and onnxruntime's transformer optimizer (LayerNorm, GELU
and bias fusions; attention fusion disabled, since a fused Attention op would not output the probabilities).
Every variant's attention is checked against the engine's before it is timed, and the variants take turns
round after round (common.interleaved), each ratio taken within a round. The graph rewrites themselves are
compared at every length by bench_sweep.py.
"""

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from common import QUIET, attention_outputs, exported, feed, interleaved, sgemm_gflops, table_vs_first

LEVELS = {"disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session(path, level="all", threads=None, arena=True, **entries):
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = arena
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=5)
    parser.add_argument("--lengths", default="8,16,64")
    args = parser.parse_args()
    path = exported() / "model.onnx"
    scratch = Path(tempfile.mkdtemp(prefix="bench-options-"))
    variants = {
        "engine settings (all, threads = cores, spinning, arena)": session(path),
        "optimisation level: disabled": session(path, "disabled"),
        "optimisation level: basic": session(path, "basic"),
        "optimisation level: extended": session(path, "extended"),
        "1 intra-op thread": session(path, threads=1),
        f"{os.cpu_count()} intra-op threads, spinning off": session(
            path, threads=os.cpu_count(), session__intra_op__allow_spinning="0"),
        "memory arena off": session(path, arena=False),
        "prepacking off": session(path, session__disable_prepacking="1"),
        "transformer optimizer (no attention fusion)": session(transformer_optimized(path, scratch / "optimized.onnx")),
    }
    print(f"machine: {os.cpu_count()} cores, sgemm {sgemm_gflops():.0f} GFLOP/s; onnxruntime {ort.__version__}")
    for n_tokens in (int(n) for n in args.lengths.split(",")):
        print()
        print(report(variants, np.full((1, n_tokens), 262, dtype=np.int64), args,
                     f"variant, T = {n_tokens} (GPT-2 small's shape)"))
    print()
    print(QUIET.report())


def report(sessions: dict, ids, args, title: str) -> str:
    """A table of each session's median ms and its ratio to the first, all checked against the first."""
    feeds = {name: feed(current, ids) for name, current in sessions.items()}
    first = next(iter(sessions.values()))
    reference = np.stack(first.run(attention_outputs(first), next(iter(feeds.values()))))
    for name, current in sessions.items():
        ours = np.stack(current.run(attention_outputs(current), feeds[name]))
        assert np.abs(ours - reference).max() < 1e-4, name
    times = interleaved({name: (lambda current=current, f=feeds[name]: current.run(None, f))
                         for name, current in sessions.items()},
                        args.rounds, args.per_round)
    medians = {name: [statistics.median(samples) for samples in rounds] for name, rounds in times.items()}
    return table_vs_first(medians, title, "median ms", 2)


if __name__ == "__main__":
    main()
