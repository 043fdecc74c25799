"""Head scoring: server/heads.py against the implementation it replaced (tests/heads_reference.py), same input.

    .venv/bin/python benchmarks/bench_heads.py            # prints a table; results/bench_heads.txt is one run

GPT-2 small's layout (12 layers × 12 heads) at T = 16, 64, 256 and 1,024, float32 as the engine returns it,
plain and sink-aware. The attention is synthetic but shaped like a trained model's: each head leans on the first
token, itself, the previous token, an earlier copy of its token or the token after that copy, or nothing in
particular, with noise of its own; the sentence's second half repeats its first. So every label and both code
paths (the whole array, and layer by layer past WHOLE_ARRAY_BYTES) are timed.

This machine is shared (2 cores, often several times that many jobs), so: old and new take turns call by call,
each round in the other order; each call is timed in CPU time of this process (time.process_time: waiting for a
core is not counted, memory contention still is); the ratio is taken per round; the table shows medians.
"""

import statistics
import sys
import time

import numpy as np

from common import REPO

sys.path.insert(0, str(REPO / "tests"))
import heads_reference  # noqa: E402  (the old implementation, kept in tests/ as the oracle)

from twelve_heads.server import heads  # noqa: E402

N_LAYERS = N_HEADS = 12
LENGTHS = tuple(int(arg) for arg in sys.argv[1:]) or (16, 64, 256, 1024)  # tokens
ROUNDS = {16: 400, 64: 100, 256: 15, 1024: 5}  # rounds of one timed call each


def attention_like_gpt2(n_tokens: int, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    """(L, H, T, T) float32 causal softmax attention and ids whose second half repeats the first."""
    rng = np.random.default_rng(seed)
    query, key = np.arange(n_tokens)[:, None], np.arange(n_tokens)[None, :]
    half = (n_tokens + 1) // 2  # the second half repeats the first: an earlier copy is `half` tokens back
    leanings = np.stack(np.broadcast_arrays(key == 0, key == query, key == query - 1, key == query - half,
                                            key == query - half + 1, key < 0))  # (6, T, T): the last, none
    attention = np.empty((N_LAYERS, N_HEADS, n_tokens, n_tokens), np.float32)
    for layer in range(N_LAYERS):  # one layer at a time: at T = 1,024 all of them in float64 would be 1.2 GB
        noise = rng.uniform(0.5, 4.0, (N_HEADS, 1, 1))
        logits = rng.normal(0.0, noise, (N_HEADS, n_tokens, n_tokens))
        logits += 6.0 * leanings[rng.integers(0, len(leanings), N_HEADS)]
        logits[:, key > query] = -np.inf
        weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
        attention[layer] = weights / weights.sum(axis=-1, keepdims=True)
    first_half = rng.choice(50257, half, replace=False).tolist()
    return attention, (first_half + first_half)[:n_tokens]


def alternated(contenders: dict, rounds: int) -> dict[str, list[float]]:
    """{name: CPU ms of each round's call}; the contenders take turns, in the other order every other round."""
    times = {name: [] for name in contenders}
    for round_ in range(rounds):
        for name in (list(contenders) if round_ % 2 else list(contenders)[::-1]):
            started = time.process_time()
            contenders[name]()
            times[name].append((time.process_time() - started) * 1000)
    return times


def main() -> None:
    print(f"label_heads on {N_LAYERS} × {N_HEADS} heads, float32: median CPU ms, old and new taking turns")
    print(f"{'T':>6} {'view':>11} {'old ms':>9} {'new ms':>9} {'new / old':>10}")
    for n_tokens in LENGTHS:
        attention, ids = attention_like_gpt2(n_tokens)
        for sink_aware in (False, True):
            assert heads.label_heads(attention, ids, sink_aware) == heads_reference.label_heads(attention, ids, sink_aware)
            times = alternated({"old": lambda: heads_reference.label_heads(attention, ids, sink_aware),
                                "new": lambda: heads.label_heads(attention, ids, sink_aware)}, ROUNDS[n_tokens])
            ratio = statistics.median(new / old for new, old in zip(times["new"], times["old"]))
            print(f"{n_tokens:>6} {'sink-aware' if sink_aware else 'plain':>11} {statistics.median(times['old']):>9.3f} "
                  f"{statistics.median(times['new']):>9.3f} {ratio:>9.2f}×", flush=True)


if __name__ == "__main__":
    main()
