"""Soak: many clients on loopback against a real gunicorn process for a minute; what one small VM can take.

    .venv/bin/python benchmarks/soak.py                       # GPT-2-small-shaped model, 32 clients, 60 s
    .venv/bin/python benchmarks/soak.py --int8 --workers 2    # its int8 export
    .venv/bin/python benchmarks/soak.py --models-dir models --model gpt2 --clients 8 --seconds 20

Starts `gunicorn 'twelve_heads.server:create_app()'` itself on 127.0.0.1 (no --preload: each worker opens its own
onnxruntime session after fork, as in production) serving only the chosen model, then runs CLIENTS threads
that each POST /api/attention back to back on a keep-alive connection, accepting gzip, with format=packed as
the page asks: half the sentences repeat (cache hits), half are new (misses). Prints requests, errors, req/s,
latency percentiles, the workers' resident memory at start, after warm-up and at the end, and the cache's
share. Exit status 1 if any request failed or memory kept growing after warm-up.

The clients run on the same machine and take some of its CPU, so the rate is a floor for the VM.
tests/test_hardening.py runs a short version (8 clients, 8 s, the tiny model) in the suite.
"""

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

from common import REPO, exported

sys.path.insert(0, str(REPO / "tests"))
from server_process import ServerProcess, run_load  # noqa: E402  (tests/ holds the one server harness)

CLIENTS = 32
SECONDS = 60.0
WARMUP = 15.0  # seconds before memory counts: sessions' arenas, the cache filling
CACHE_BYTES = 16 * 1024 * 1024  # per worker; small enough to fill during warm-up, so a plateau is visible
RSS_TOLERANCE_MB = 16  # growth after warm-up, last third against first third, still counted as level

REPEATED = [  # sentences a class pastes again and again
    "The trophy doesn't fit in the suitcase because it is too big.",
    "When Mary and John went to the store, John gave a drink to Mary.",
    "The cat sat on the mat. The cat sat on the mat.",
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
    "In 1905, Albert Einstein published four papers that changed physics.",
    "The keys to the cabinet are on the table.",
    "I think, therefore I am.",
    "Harry Potter and the Philosopher's Stone. Harry Potter and the Chamber of Secrets.",
    "Colorless green ideas sleep furiously.",
    "The quick brown fox jumps over the lazy dog.",
    "She sells sea shells by the sea shore, and the shells she sells are sea shells for sure.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))",
]
WORDS = ("the a of and to in is was for on that with as it his her they at by from this had not be are "
         "student teacher class model head attention token layer sentence word cat dog house river city "
         "morning evening quickly slowly bright dark happy strange small large old new red blue green "
         "runs reads writes thinks looks finds makes takes gives sees knows wants").split()


def next_text(client: int, n: int) -> tuple[str, bool]:
    rng = random.Random(f"{client}-{n}")
    if rng.random() < 0.5:
        return rng.choice(REPEATED), True
    words = rng.choices(WORDS, k=rng.randint(6, 40))
    return f"{' '.join(words).capitalize()}, said student {client} for the {n}th time.", False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--warmup", type=float, default=WARMUP)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="gunicorn workers (default: cores)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--ort-threads", type=int, default=1, help="onnxruntime threads per worker (HEADS_ORT_THREADS)")
    parser.add_argument("--cache-bytes", type=int, default=CACHE_BYTES, help="HEADS_CACHE_BYTES per worker")
    parser.add_argument("--format", default="packed", choices=("summary", "json", "packed"))
    parser.add_argument("--int8", action="store_true", help="the int8 export of the benchmark model")
    parser.add_argument("--models-dir", type=Path, help="serve a model from here instead of the benchmark's")
    parser.add_argument("--model", help="with --models-dir: which model")
    args = parser.parse_args()

    if args.models_dir:
        model = args.models_dir / (args.model or sorted(p.name for p in args.models_dir.iterdir()
                                                          if (p / "manifest.json").is_file())[0])
    else:
        name = "gpt2-small-random-int8" if args.int8 else "gpt2-small-random"
        model = exported(name, int8=args.int8)
    with tempfile.TemporaryDirectory(prefix="soak-") as only:
        (Path(only) / model.name).symlink_to(model.resolve())  # serve this model alone: its memory, nobody else's
        env = {"HEADS_ORT_THREADS": str(args.ort_threads), "HEADS_CACHE_BYTES": str(args.cache_bytes),
               "HEADS_MODEL": model.name}
        print(f"soak: {model.name}, {args.workers} workers × {args.threads} threads × {args.ort_threads} ORT "
              f"threads, {args.clients} clients for {args.seconds:.0f} s on {os.cpu_count()} cores", flush=True)
        with ServerProcess(only, workers=args.workers, threads=args.threads, env=env) as server:
            rss_start = server.worker_rss_kb()
            result = run_load(server, args.clients, args.seconds, next_text, {"format": args.format})
            rss_end = server.worker_rss_kb()
            stopped_cleanly = server.stop() == 0 and "Traceback" not in server.stderr

    warmup, end = args.warmup, result.seconds
    third = (end - warmup) / 3
    after_warmup = result.rss_between(warmup, warmup + 1) or [rss_end]
    first, last = result.rss_between(warmup, warmup + third), result.rss_between(end - third, end)
    growth_mb = (max(last) - max(first)) / 1024 if first and last else float("nan")
    level = growth_mb <= RSS_TOLERANCE_MB
    distinct_mb = sum(result.response_bytes.values()) / 2**20
    repeats, fresh = result.repeat_latencies, result.new_latencies

    rows = [
        ("requests", f"{result.requests:,}"),
        ("errors", f"{len(result.errors):,}" + (f"  (first: {result.errors[0][:80]})" if result.errors else "")),
        ("requests / s", f"{result.requests / result.seconds:,.1f}"),
        ("latency p50 / p95 / p99", f"{result.percentile_ms(50):,.0f} / {result.percentile_ms(95):,.0f} / "
                                    f"{result.percentile_ms(99):,.0f} ms"),
        ("  repeated sentence p50 / p95", f"{result.percentile_ms(50, repeats):,.0f} / "
                                          f"{result.percentile_ms(95, repeats):,.0f} ms  ({len(repeats):,} requests)"),
        ("  new sentence p50 / p95", f"{result.percentile_ms(50, fresh):,.0f} / "
                                     f"{result.percentile_ms(95, fresh):,.0f} ms  ({len(fresh):,} requests)"),
        ("workers' RSS at start", f"{rss_start / 1024:,.0f} MB ({rss_start / 1024 / args.workers:,.0f} MB each)"),
        ("workers' RSS after warm-up", f"{max(after_warmup) / 1024:,.0f} MB (at {warmup:.0f} s)"),
        ("workers' RSS at end", f"{rss_end / 1024:,.0f} MB"),
        ("growth after warm-up", f"{growth_mb:+,.1f} MB (last third vs first third) — "
                                 + ("level" if level else "STILL GROWING")),
        ("cache", f"{args.cache_bytes / 2**20:,.0f} MB per worker; distinct answers sent: {distinct_mb:,.1f} MB "
                  f"gzipped ({len(result.response_bytes):,} sentences)"),
        ("SIGTERM", "clean exit (0), no traceback" if stopped_cleanly else "NOT CLEAN"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0 if not result.errors and level and stopped_cleanly else 1


if __name__ == "__main__":
    sys.exit(main())
