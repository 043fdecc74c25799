"""Engine vs transformers eager, and the machine's floor, for GPT-2 small's shape.

    python benchmarks/bench_engine.py [--repeat 30] [--lengths 8,16,32,64,128]

Times `engine.attend(text)` (tokenization included) against transformers `GPT2Model` (eager attention,
`output_attentions=True`, already-tokenized ids: the competitor gets the easier job) on the same random
GPT-2-small-shaped checkpoint, with the same number of threads. Prints median milliseconds, their ratio, and
the floor: max(FLOPs / measured sgemm rate, weight bytes / measured read bandwidth).
"""

import argparse
import os

from common import (attention_work, exported, floor_ms, gpt2_small_checkpoint, machine_rates, median_ms,
                    sentence_of)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--lengths", default="8,16,32,64,128")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]

    import torch
    from transformers import GPT2Model

    from server.engine import Engine

    torch.set_num_threads(args.threads)
    engine = Engine.load(exported(), threads=args.threads)
    reference = GPT2Model.from_pretrained(gpt2_small_checkpoint(), attn_implementation="eager").eval()
    gflops, read_gbs = machine_rates()
    print(f"machine: {os.cpu_count()} cores, sgemm {gflops:.0f} GFLOP/s, read {read_gbs:.1f} GB/s; "
          f"threads {args.threads}; torch {torch.__version__}")
    print()
    print("|    T | engine ms | transformers ms | speed-up | floor ms | engine / floor | GFLOP |")
    print("|-----:|----------:|----------------:|---------:|---------:|---------------:|------:|")
    for n_tokens in lengths:
        text = sentence_of(n_tokens)
        ids = torch.tensor([engine.tokenize(text)[0]])
        assert ids.shape[1] == n_tokens
        ours = median_ms(lambda: engine.attend(text), args.repeat)
        with torch.inference_mode():
            theirs = median_ms(lambda: reference(ids, output_attentions=True), args.repeat)
        floor = floor_ms(n_tokens, gflops, read_gbs)
        print(f"| {n_tokens:4d} | {ours:9.2f} | {theirs:15.2f} | {theirs / ours:7.2f}× | {floor:8.2f} | "
              f"{ours / floor:13.2f}× | {attention_work(n_tokens)[0] / 1e9:5.2f} |")


if __name__ == "__main__":
    main()
