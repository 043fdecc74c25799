"""predict.onnx's LM head in windows of rows: the memory its arena keeps and its speed, by window size.

    python benchmarks/bench_lm_head.py [--rows 16,32,64,1024] [--rounds 5]

On the GPT-2-small-shaped export (common.exported), predict.onnx is rebuilt with each LM_HEAD_ROWS
(export/predict.attach_lm_head on the export's own block graph), and each variant is measured in a fresh
process of its own, as the server opens it (engine.open_session, the embedding table shared):
- the RSS its session adds over the page's runs (a clean and an ablated pass at T = 16 and 64, B = 1 and 2),
  which onnxruntime's arena then keeps for good;
- the time of each run, the best of its repeats in that process.
The variants take turns round after round, each round starting with the next. The largest window is one pass
over every row: the Loop with one window, the nearest to the head as it was before windows (bench_intervene's
--compare-with measures an export from before against this one). Where two variants cut a shape into the same
windows they run the same computation: their difference there is this run's noise.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from common import QUIET, REPO, exported

SHAPES = [(1, 16), (2, 16), (1, 64), (2, 64)]  # (B, T): what the page's knock-out requests run

PROBE = r"""
import json, sys, tempfile, time
import numpy as np, onnx
sys.path.insert(0, {repo!r})
from twelve_heads.export import predict
from twelve_heads.modeldir import HEAD_MASK, INPUT_IDS, INTERVENTION, PREDICT_GRAPH, RESIDUAL
from twelve_heads.server.engine import open_session
from twelve_heads.server.intervene import shared_initializers

directory = {directory!r}
manifest = json.load(open(directory + "/manifest.json"))
model = onnx.load(directory + "/" + PREDICT_GRAPH, load_external_data=False)
table_name = manifest[INTERVENTION]["embedding"]["initializer"]
model, table = predict.without_lm_head(model, table_name)
predict.attach_lm_head(model, table, None, rows={rows!r})
n_embd = manifest["n_embd"]
shared = shared_initializers(directory, manifest)  # must outlive the session, which reads its memory
with tempfile.NamedTemporaryFile(suffix=".onnx", dir=directory) as graph:
    onnx.save(model, graph.name)
    session = open_session(graph.name, None, shared, memory_pattern=False)
rss = lambda: int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024
before = rss()
rng = np.random.default_rng(0)
best = {{}}
for _ in range({repeats!r}):
    for batch, length in {shapes!r}:
        feeds = {{RESIDUAL: rng.standard_normal((batch, length, n_embd)).astype(np.float32),
                 HEAD_MASK: np.ones((batch, manifest["n_layer"], manifest["n_head"]), np.float32),
                 INPUT_IDS: rng.integers(0, manifest["vocab_size"], (batch, length))}}
        started = time.perf_counter()
        session.run(None, feeds)
        key = f"{{batch}}x{{length}}"
        best[key] = min(best.get(key, 1e9), (time.perf_counter() - started) * 1000)
print(json.dumps({{"kept_mb": rss() - before, "ms": best}}))
"""


def measure(directory: Path, rows: int, repeats: int) -> dict:
    probe = PROBE.format(repo=str(REPO), directory=str(directory), rows=rows, repeats=repeats, shapes=SHAPES)
    return json.loads(subprocess.run([sys.executable, "-"], input=probe, capture_output=True, text=True,
                                     check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="16,32,64,1024", help="window sizes; the largest is the baseline")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each shape per process")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.rows.split(","))
    directory = exported()
    from twelve_heads.export.predict import LM_HEAD_ROWS
    print(f"machine: {os.uname().nodename}, {os.cpu_count()} cores; model {directory.name}; the export's "
          f"LM_HEAD_ROWS {LM_HEAD_ROWS}; {args.rounds} rounds, each variant a fresh process per round running "
          f"every (B, T) of {SHAPES} {args.repeats} times")
    results = {rows: [] for rows in sizes}
    for round_ in range(args.rounds):
        for rows in sizes[round_ % len(sizes):] + sizes[:round_ % len(sizes)]:  # each round starts elsewhere
            QUIET.wait()
            results[rows].append(measure(directory, rows, args.repeats))
    baseline = sizes[-1]
    keys = [f"{b}x{t}" for b, t in SHAPES]
    print()
    print("| rows per window | arena kept MB (median) | " + " | ".join(f"B×T {key} ms" for key in keys)
          + " | " + " | ".join(f"{key} / one pass" for key in keys) + " |")
    print("|---:|---:|" + "---:|" * (2 * len(keys)))
    for rows in sizes:
        kept = statistics.median(result["kept_mb"] for result in results[rows])
        ms = [statistics.median(result["ms"][key] for result in results[rows]) for key in keys]
        ratios = [statistics.median(mine["ms"][key] / base["ms"][key]
                                    for mine, base in zip(results[rows], results[baseline])) for key in keys]
        label = f"{rows} (one pass)" if rows == baseline else str(rows)
        print(f"| {label} | {kept:.0f} | " + " | ".join(f"{value:.1f}" for value in ms) + " | "
              + " | ".join(f"{ratio:.2f}×" for ratio in ratios) + " |")
    print("\n(ms: the median over rounds of each process's best run; ratios: the median of the rounds' ratios to "
          f"the one-pass head in the same round); {QUIET.report()}")


if __name__ == "__main__":
    main()
