"""Engine (fp32 and int8) vs transformers eager, and the machine's floor, for GPT-2 small's shape.

    python benchmarks/bench_engine.py [--rounds 12] [--lengths 8,16,32,64,128] [--growth 256,512,1024]

Times `engine.attend(text)` (tokenization included) against transformers `GPT2Model` (eager attention,
`output_attentions=True`, already-tokenized ids: the competitor gets the easier job) on the same random
GPT-2-small-shaped checkpoint, with the same number of threads. Prints median milliseconds, their ratios,
and the floor: max(FLOPs / measured sgemm rate, weight bytes / measured read bandwidth). The engines,
transformers and the read-bandwidth probe take turns, round after round (common.interleaved), and each ratio
is taken within a round: this VM's bandwidth drifts with its neighbours' load. Then, for long
sentences, time and peak memory of attend + labelling in a fresh process per length, and a plot of latency
against T in benchmarks/out/latency.png.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

from common import (REPO, ReadProbe, attention_work, exported, floor_ms, gpt2_small_checkpoint, interleaved,
                    sentence_of, sgemm_gflops)

OUT = REPO / "benchmarks" / "out"

GROWTH_PROBE = r"""
import json, sys, time
sys.path.insert(0, {repo!r})
from twelve_heads.server.engine import Engine
from twelve_heads.server.heads import label_heads
engine = Engine.load({model!r})
text = "the" + " the" * ({n} - 1)
engine.attend("warm up")
def status(field):  # VmHWM is this process's peak; ru_maxrss would carry the parent's across exec
    return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) / 1024
before = status("VmRSS")
started = time.perf_counter(); result = engine.attend(text); attend = time.perf_counter() - started
started = time.perf_counter(); label_heads(result.attention, result.ids); label = time.perf_counter() - started
print(json.dumps({{"attend_ms": attend * 1000, "label_ms": label * 1000, "rss_before_mb": before,
                  "peak_mb": status("VmHWM"),
                  "attention_mb": result.attention.nbytes / 2**20}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="rounds of the interleaved timing, per length")
    parser.add_argument("--per-round", type=int, default=5, help="timed calls of each contender per round")
    parser.add_argument("--lengths", default="8,16,32,64,128")
    parser.add_argument("--growth", default="256,512,1024", help="long lengths for time and peak memory ('' skips)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]

    import torch
    from transformers import GPT2Model

    from twelve_heads.server.engine import Engine

    torch.set_num_threads(args.threads)
    fp32 = Engine.load(exported(), threads=args.threads)
    int8 = Engine.load(exported("gpt2-small-random-int8", int8=True), threads=args.threads)
    reference = GPT2Model.from_pretrained(gpt2_small_checkpoint(), attn_implementation="eager").eval()
    gflops = sgemm_gflops()
    probe = ReadProbe()
    print(f"machine: {os.cpu_count()} cores, sgemm {gflops:.0f} GFLOP/s; threads {args.threads}; "
          f"torch {torch.__version__}; {args.rounds} interleaved rounds × {args.per_round} calls per length")
    print()
    print("|    T | transformers ms | engine fp32 ms | speed-up | read GB/s | floor ms | fp32 / floor | "
          "engine int8 ms | int8 / fp32 | GFLOP |")
    print("|-----:|----------------:|---------------:|---------:|----------:|---------:|-------------:|"
          "---------------:|------------:|------:|")
    rows = []
    for n_tokens in lengths:
        text = sentence_of(n_tokens)
        ids = torch.tensor([fp32.tokenize(text)[0]])
        assert ids.shape[1] == n_tokens
        with torch.inference_mode():
            times = interleaved({"fp32": lambda: fp32.attend(text), "int8": lambda: int8.attend(text),
                                 "transformers": lambda: reference(ids, output_attentions=True),
                                 "read": probe.read}, args.rounds, args.per_round)
        # Per round: medians for the contenders, the best read for the floor (what the machine could do then).
        ours, quantized, theirs = ([statistics.median(samples) for samples in times[name]]
                                   for name in ("fp32", "int8", "transformers"))
        read_gbs = [probe.nbytes / (min(samples) / 1000) / 1e9 for samples in times["read"]]
        floors = [floor_ms(n_tokens, gflops, gbs) for gbs in read_gbs]
        row = {"T": n_tokens, "theirs": statistics.median(theirs), "fp32": statistics.median(ours),
               "int8": statistics.median(quantized), "floor": statistics.median(floors),
               "read_gbs": statistics.median(read_gbs),
               # ratios of the same round, then their median: the drift between rounds cancels
               "speed_up": statistics.median(t / o for t, o in zip(theirs, ours)),
               "over_floor": statistics.median(o / f for o, f in zip(ours, floors)),
               "int8_share": statistics.median(q / o for q, o in zip(quantized, ours))}
        rows.append(row)
        print(f"| {n_tokens:4d} | {row['theirs']:15.2f} | {row['fp32']:14.2f} | {row['speed_up']:7.2f}× | "
              f"{row['read_gbs']:9.1f} | {row['floor']:8.2f} | {row['over_floor']:11.2f}× | {row['int8']:14.2f} | "
              f"{row['int8_share']:10.2f}× | {attention_work(n_tokens)[0] / 1e9:5.2f} |")
    print("\n(each ms is the median over rounds of a round's median; each ratio the median of the rounds' ratios)")

    growth = [int(n) for n in args.growth.split(",") if n]
    if growth:
        print()
        print("| model | T | attend ms | label ms | attention MB | process RSS before MB | peak RSS MB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
    for name, int8_flag in (("gpt2-small-random", False), ("gpt2-small-random-int8", True)):
        for n_tokens in growth:
            probe = GROWTH_PROBE.format(repo=str(REPO), model=str(exported(name, int8=int8_flag)), n=n_tokens)
            result = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                               check=True).stdout)
            print(f"| {name} | {n_tokens} | {result['attend_ms']:.0f} | {result['label_ms']:.0f} | "
                  f"{result['attention_mb']:.0f} | {result['rss_before_mb']:.0f} | {result['peak_mb']:.0f} |")
    plot(rows)


def plot(rows) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(no plot: pip install matplotlib)")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    lengths = [row["T"] for row in rows]
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    for key, label, style in (("theirs", "transformers eager", "o-"), ("fp32", "engine fp32", "s-"),
                              ("int8", "engine int8", "^-"), ("floor", "machine floor (fp32)", "k--")):
        axes.plot(lengths, [row[key] for row in rows], style, label=label)
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")
    axes.set_xticks(lengths, [str(n) for n in lengths])
    axes.set_xlabel("tokens (T)")
    axes.set_ylabel("milliseconds per sentence (median)")
    axes.set_title("All 144 heads of GPT-2 small's shape, 2-core CPU")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(OUT / "latency.png")
    print(f"\nplot: {OUT / 'latency.png'}")


if __name__ == "__main__":
    main()
