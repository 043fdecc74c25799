"""Sentences per second, one at a time against right-padded batches: the evidence for engine.BATCH_SENTENCES,
and for leaving micro-batching out of the server (or not).

    python benchmarks/bench_batch.py [--rounds 5] [--sentences 64] [--quick]

1. Bulk scoring (what the head atlas does): N sentences of 8–32 tokens (random single-token words, a fixed
   seed), through `engine.run` one at a time and through `engine.run_batch` with each batch size, fp32 and
   int8, taking turns round after round (common.interleaved), each ratio taken within a round.
2. The most micro-batching could buy a server: C concurrent 16-token requests (C = 8 and 32) answered by C
   threads each calling `engine.run` (what the server does today) against one `run_batch` of all C — a
   micro-batcher's best case, with no waiting for the batch to fill. If even this is under 1.3×, a real one
   cannot reach the issue's target.
"""

import argparse
import os
import random
import statistics
from concurrent.futures import ThreadPoolExecutor

from common import QUIET, WORDS, exported, interleaved, sgemm_gflops, table_vs_first



def sentences(engine, count: int, shortest: int, longest: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    batch = []
    for _ in range(count):
        n_tokens = rng.randint(shortest, longest)
        ids = engine.tokenize(" ".join(rng.choice(WORDS) for _ in range(n_tokens)))[0]
        assert len(ids) == n_tokens
        batch.append(ids)
    return batch


def with_batch_size(engine_module, engine, size: int):
    def run(batch):
        saved, engine_module.BATCH_SENTENCES = engine_module.BATCH_SENTENCES, size
        try:
            return engine.run_batch(batch)
        finally:
            engine_module.BATCH_SENTENCES = saved
    return run


def report(times: dict, per_call: int, title: str) -> str:
    """sentences/s of each contender (median over rounds) and its ratio to the first, within each round."""
    rates = {name: [per_call / (statistics.median(samples) / 1000) for samples in rounds]
             for name, rounds in times.items()}
    return table_vs_first(rates, title, "sentences/s", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=64)
    parser.add_argument("--sizes", default="2,4,8,16,32,64", help="batch sizes for bulk scoring")
    parser.add_argument("--clients", default="8,32", help="concurrent requests for the micro-batching bound")
    parser.add_argument("--quick", action="store_true", help="3 rounds, batch sizes 4,16,64, fp32 only")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.sizes = 3, "4,16,64"
    from twelve_heads.server import engine as engine_module
    from twelve_heads.server.engine import Engine

    models = {"fp32": exported()}
    if not args.quick:
        models["int8"] = exported("gpt2-small-random-int8", int8=True)
    print(f"machine: {os.cpu_count()} cores, sgemm {sgemm_gflops():.0f} GFLOP/s; GPT-2 small's shape; "
          f"{args.rounds} interleaved rounds; run_batch's default batch: {engine_module.BATCH_SENTENCES}")
    for precision, model_dir in models.items():
        engine = Engine.load(model_dir)
        bulk = sentences(engine, args.sentences, 8, 32, seed=0)
        contenders = {"one at a time (engine.run)": lambda: [engine.run(ids) for ids in bulk]}
        for size in (int(s) for s in args.sizes.split(",")):
            contenders[f"run_batch, batches of {size}"] = (lambda run=with_batch_size(engine_module, engine, size):
                                                            run(bulk))
        print()
        print(report(interleaved(contenders, args.rounds, 1), len(bulk),
                     f"{precision}: {len(bulk)} sentences of 8–32 tokens ({sum(map(len, bulk))} tokens)"))
        for clients in (int(c) for c in args.clients.split(",")):
            requests = sentences(engine, clients, 16, 16, seed=clients)
            pool = ThreadPoolExecutor(max_workers=clients)
            batched = with_batch_size(engine_module, engine, clients)
            bound = {f"{clients} threads, engine.run each (today's server)": lambda: list(pool.map(engine.run, requests)),
                     f"one run_batch of {clients} (a micro-batcher's best case)": lambda: batched(requests)}
            print()
            print(report(interleaved(bound, args.rounds, 2), clients,
                         f"{precision}: {clients} concurrent 16-token requests"))
            pool.shutdown()
    print()
    print(QUIET.report())


if __name__ == "__main__":
    main()
