"""Micro-batching against today's server, with real clients: the evidence for the MICRO_BATCH setting.

    python benchmarks/bench_microbatch.py [--rounds 3] [--seconds 5] [--clients 8,32]

Starts real gunicorn servers on loopback with the GPT-2-small-shaped fp32 model (common.exported), each in one
configuration: today's deployment (as many single-threaded workers as cores, 4 request threads each), and
micro-batching (server/batcher.py) in one worker with onnxruntime on every core, or in one worker per core,
each with threads enough to hold every client's request, beside the same configurations without it. Each
round runs, for every configuration in turn, C concurrent keep-alive clients for --seconds (C = 8 and 32); then a
lone client sends --lone requests to each configuration in turn, one after another, so that every configuration's
latency is taken beside the others' at the same moment. Every request is a new random 16-token sentence
(uncached). Ratios and differences are taken within a round, then their median over rounds. The issue's rule: micro-batch if, and only if,
it gives at least 1.3× today's throughput at 8 and at 32 clients with a lone user's p50 at most 1 ms worse.
"""

import argparse
import os
import random
import statistics
import tempfile
from pathlib import Path

from bench_server import Server, sentence, throughput, timed
from common import QUIET, exported, sgemm_gflops
from twelve_heads.server.engine import BATCH_SENTENCES

MICRO_BATCH = BATCH_SENTENCES  # the batch bench_batch.py found best for bulk scoring
THROUGHPUT_TARGET, LONE_P50_SLACK_MS = 1.3, 1.0


def configurations(cores: int, clients: int) -> dict[str, dict]:
    batched = {"HEADS_MICRO_BATCH": str(MICRO_BATCH)}
    return {
        f"today: {cores} workers × 4 threads, ORT 1 thread": dict(workers=cores, threads=4, ort_threads=1),
        f"{cores} workers × {clients} threads, ORT 1 thread": dict(workers=cores, threads=clients, ort_threads=1),
        f"{cores} workers × {clients} threads, ORT 1 thread, micro-batch {MICRO_BATCH}":
            dict(workers=cores, threads=clients, ort_threads=1, settings=batched),
        f"1 worker × {clients} threads, ORT {cores} threads": dict(workers=1, threads=clients, ort_threads=cores),
        f"1 worker × {clients} threads, ORT {cores} threads, micro-batch {MICRO_BATCH}":
            dict(workers=1, threads=clients, ort_threads=cores, settings=batched),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5, help="length of each load and lone-client run")
    parser.add_argument("--clients", default="8,32")
    parser.add_argument("--lone", type=int, default=40, help="a lone client's requests to each configuration per round")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    cores = os.cpu_count()
    model_dir = exported()
    alone = Path(tempfile.mkdtemp(prefix="bench-models-"))  # the server loads every model it finds
    (alone / model_dir.name).symlink_to(model_dir)
    configs = configurations(cores, max(clients))
    print(f"machine: {cores} cores, sgemm {sgemm_gflops():.0f} GFLOP/s; model {model_dir.name} (fp32), T = 16; "
          f"{args.rounds} rounds; each run {args.seconds:.0f} s")
    servers = {name: Server(alone, model_dir.name, **options) for name, options in configs.items()}
    loads = [f"{c} clients" for c in clients]
    results = {name: {load: [] for load in loads} for name in configs}
    lone_p50 = {name: [] for name in configs}
    rng = random.Random(0)
    try:
        for round_number in range(args.rounds):
            for name, server in servers.items():
                QUIET.wait()
                for c in clients:
                    results[name][f"{c} clients"].append(throughput(server, c, args.seconds, seed=round_number))
            QUIET.wait()
            latencies = {name: [] for name in configs}
            for _ in range(args.lone):
                for name, server in servers.items():
                    latencies[name].append(timed(server, {"text": sentence(rng)}))
            for name in configs:
                lone_p50[name].append(statistics.median(latencies[name]))
    finally:
        for server in servers.values():
            server.stop()
    today = next(iter(configs))
    print()
    print("| configuration | " + " | ".join(f"{c} clients req/s | vs today" for c in clients)
          + " | lone user p50 ms | vs today ms | vs the same without micro-batching ms | errors |")
    print("|---|" + "---:|---:|" * len(clients) + "---:|---:|---:|---:|")
    verdicts = {}
    for name in configs:
        cells, ratios = [], []
        for c in clients:
            rates = [run["rate"] for run in results[name][f"{c} clients"]]
            base = [run["rate"] for run in results[today][f"{c} clients"]]
            ratio = statistics.median(ours / theirs for ours, theirs in zip(rates, base))
            ratios.append(ratio)
            cells.append(f"{statistics.median(rates):.1f} | {ratio:.2f}×")
        lone, lone_today = lone_p50[name], lone_p50[today]
        worse_ms = statistics.median(ours - theirs for ours, theirs in zip(lone, lone_today))
        twin = name.replace(f", micro-batch {MICRO_BATCH}", "")
        twin_ms = statistics.median(ours - theirs for ours, theirs in zip(lone, lone_p50[twin]))
        errors = sum(run["errors"] for load in loads for run in results[name][load])
        verdicts[name] = (min(ratios), worse_ms, twin_ms, errors)
        print(f"| {name} | " + " | ".join(cells) + f" | {statistics.median(lone):.1f} | {worse_ms:+.1f} | "
              f"{f'{twin_ms:+.1f}' if twin != name else ''} | {errors} |")
    print("\n(req/s and p50: median over rounds; ratios and differences: within each round, then their median)")
    print(QUIET.report())
    print()
    for name, (least, worse_ms, twin_ms, errors) in verdicts.items():
        if "micro-batch" in name:
            # A lone user is compared with today's deployment and with the same server without micro-batching:
            # another thread count alone must not hide what the batcher costs.
            meets = (least >= THROUGHPUT_TARGET and max(worse_ms, twin_ms) <= LONE_P50_SLACK_MS and errors == 0)
            print(f"rule for {name}: ≥ {THROUGHPUT_TARGET}× today's throughput at {' and '.join(map(str, clients))} "
                  f"clients (least {least:.2f}×) with a lone user's p50 at most {LONE_P50_SLACK_MS:.0f} ms worse "
                  f"({worse_ms:+.1f} ms against today, {twin_ms:+.1f} without it), no errors ({errors}): "
                  f"{'met' if meets else 'NOT met'}")


if __name__ == "__main__":
    main()
