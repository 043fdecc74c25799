"""The whole head atlas for GPT-2 small's shape, fp32, and the time of each part (target: 20 s on 2 cores).

    python benchmarks/bench_atlas.py [--threads N] [--rounds 3] [--reference] [--out benchmarks/results/bench_atlas.txt]

Times `compute_atlas` end to end (the best of --rounds) as `twelve-heads atlas` runs it (atlas_engine: one
single-threaded onnxruntime session, a worker a core, each running and labelling its own batches) and, turn about
in the same rounds, as it ran before (one worker, one session on every core, one batch at a time), and prints their
ratio. Then each of its parts on its own in the same process, one batch at a time,
in the order compute_atlas runs them: tokenizing the corpus (without and with <|endoftext|> first), the engine
over both settings' items in the batches compute_atlas cuts, labelling and scoring each item plain and sink-aware,
the summaries, and writing atlas.json with its checksum. The model is common.py's random-initialised GPT-2 small
(random weights cost what trained ones do).

--reference times the path it replaced beside each part, in the same run and turn about (batch by batch, item by
item, the order swapped each time): the engine in the old batches (each setting on its own, 16 sentences of
similar length at a time) and the old labelling (tests/atlas_reference.py: label_heads on each item, plain and
sink-aware, each from the attention). Both labellings must give identical tallies; the script says whether.

The engine's floor: the FLOPs of the padded tokens of the batches (common.attention_work) at this machine's sgemm
rate. Prints the machine's load first: on a shared machine the numbers are only as good as the load is low.
"""

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import QUIET, REPO, attention_work, exported, sgemm_gflops

DEFAULT_OUT = None  # print only; --out also writes the table to a file
TARGET_S = 20.0  # the bar for the whole atlas on this 2-core machine
REFERENCE_BATCH = 16  # the old batches: this many items of one setting, of similar length


def main() -> None:
    from twelve_heads.server.atlas import usable_cores

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=usable_cores(), help="cores the atlas uses")
    parser.add_argument("--rounds", type=int, default=3, help="end-to-end runs of each path; the best is reported")
    parser.add_argument("--reference", action="store_true", help="time the replaced path beside each part")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="also write the report to this file")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "tests"))
    import atlas_reference  # the old labelling, kept in tests/ as the oracle

    from twelve_heads.server import atlas as atlas_module
    from twelve_heads.server.atlas import (Tally, add_item, atlas_engine, attention_of, batches, compute_atlas,
                                           probe_halves, reference_items, summarize)
    from twelve_heads.server.atlas_file import write_atlas
    from twelve_heads.server.engine import Engine

    model = exported()
    engine = Engine.load(model, threads=args.threads)  # the path before: one batch at a time on every core
    single, workers = atlas_engine(model, args.threads)
    gflops = sgemm_gflops()
    lines = [f"machine: {os.cpu_count()} cores, sgemm {gflops:.0f} GFLOP/s (numpy, all cores), load average "
             f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min); model {engine.name} "
             f"({engine.n_layer} layers x {engine.n_head} heads, fp32)"]
    contenders = {f"{workers} workers x 1 onnxruntime thread (twelve-heads atlas)": (single, workers),
                  f"1 worker x {args.threads} onnxruntime threads (before)": (engine, 1)}
    for session, count in contenders.values():
        session.run([464] * 16)  # a session's first run allocates; the atlas never pays for it twice
        compute_atlas(session, workers=count)  # ... and its arena grows to the atlas's batches once, as it runs them

    whole = {name: [] for name in contenders}
    atlases = {}
    for round_number in range(args.rounds):
        QUIET.wait()
        for name in list(contenders)[::(-1) ** round_number]:  # turn about: each goes first every other round
            session, count = contenders[name]
            started = time.perf_counter()
            atlases[name] = compute_atlas(session, workers=count)
            whole[name].append(time.perf_counter() - started)
    atlas = atlases[next(iter(contenders))]

    parts, reference = {}, {}

    def timed(name, function, *arguments, into=parts):
        started = time.perf_counter()
        value = function(*arguments)
        into[name] = into.get(name, 0.0) + time.perf_counter() - started
        return value

    QUIET.wait()
    texts = json.loads(atlas_module.CORPUS_PATH.read_text())["items"]
    bos = engine.manifest["bos_token_id"]
    half = min(atlas_module.PROBE_LENGTH, (engine.n_positions - 1) // 2)
    halves = probe_halves(engine.manifest["vocab_size"], bos, half)
    prepared = {prepend_bos: timed("tokenize the corpus", reference_items, engine, texts, halves, prepend_bos)[0]
                for prepend_bos in (False, True)}
    new_tallies, old_tallies = ({prepend_bos: {sink_aware: Tally(len(items), len(halves), engine.n_layer, engine.n_head)
                                               for sink_aware in (False, True)} for prepend_bos, items in prepared.items()}
                                for _ in range(2))
    work = [(prepend_bos, index, item) for prepend_bos, items in prepared.items() for index, item in enumerate(items)]
    new_batches = batches(engine, [len(item.ids) for _, _, item in work])
    old_batches = reference_batches(engine, work) if args.reference else []
    for turn, (new, old) in enumerate(itertools.zip_longest(new_batches, old_batches)):
        runs = [("engine", new, parts), ("engine", old, reference)]
        for name, batch, into in runs if turn % 2 else runs[::-1]:
            if batch is None:
                continue
            members = [work[position] for position in batch]
            attentions = timed(name, attention_of, engine, [item.ids for _, _, item in members], into=into)
            if into is reference:
                continue
            for number, ((prepend_bos, index, item), attention) in enumerate(zip(members, attentions)):
                labellings = [(add_item, new_tallies, parts)] + (
                    [(atlas_reference.add_item, old_tallies, reference)] if args.reference else [])
                for add, tallies, into_ in labellings if number % 2 else labellings[::-1]:
                    timed("label and score, plain and sink-aware", add, tallies[prepend_bos], index, item, attention,
                          into=into_)
    for prepend_bos, items in prepared.items():
        for sink_aware, tally in new_tallies[prepend_bos].items():
            timed("summarize the views", summarize, items, tally, prepend_bos, sink_aware)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / engine.name  # the manifest alone: writing the atlas hashes atlas.json, nothing else
        copy.mkdir()
        shutil.copy(engine.path / "manifest.json", copy / "manifest.json")
        timed("write atlas.json + manifest", write_atlas, copy, atlas)

    n_items = len(work)
    (new_name, new_times), (old_name, old_times) = whole.items()
    lines += ["", "| whole atlas | best s | all rounds s | / before |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {min(times):.1f} | {', '.join(f'{t:.1f}' for t in times)} | "
              f"{min(times) / min(old_times):.2f}× |" for name, times in whole.items()]
    agreement = ("identical" if atlases[new_name] == atlases[old_name] else
                 "NOT identical (their sessions use different thread counts, whose float sums may round apart)")
    lines += ["", f"the two paths' atlases are {agreement}",
              f"target {TARGET_S:.0f} s for the whole atlas: {'met' if min(new_times) <= TARGET_S else 'NOT met'} "
                  f"({new_name}: {min(new_times):.1f} s)",
              f"{len(prepared[False])} items per setting ({len(prepared[False]) - len(halves)} corpus + {len(halves)} "
              f"probe of 2 x {half} tokens), each run twice (without and with <|endoftext|>), each labelled twice "
              "(plain, sink-aware)", ""]
    real = sum(len(item.ids) for _, _, item in work)
    floor = [engine_floor(engine, work, cut, gflops) for cut in (new_batches, old_batches or None)]
    lines.append(f"engine: {len(new_batches)} runs, {floor[0][1]:,} padded tokens for {real:,} real; its floor "
                 f"(FLOPs at sgemm {gflops:.0f} GFLOP/s) {floor[0][0]:.1f} s")
    if args.reference:
        lines.append(f"reference batches: {len(old_batches)} runs, {floor[1][1]:,} padded tokens; floor "
                     f"{floor[1][0]:.1f} s")
    lines += ["", f"its parts, each timed on its own, one batch at a time on {args.threads} onnxruntime threads:",
              "", "| part | s | share of the parts | per item ms |" + (" reference s | new / reference |"
                                                                    if args.reference else ""),
              "|---|---:|---:|---:|" + ("---:|---:|" if args.reference else "")]
    total = sum(parts.values())
    for name, seconds in parts.items():
        per_item = f"{1000 * seconds / n_items:.1f}" if name in ("engine", "label and score, plain and sink-aware") else ""
        row = f"| {name} | {seconds:.2f} | {seconds / total:.0%} | {per_item} |"
        if args.reference:
            old = reference.get(name)
            row += f" {old:.2f} | {seconds / old:.2f}× |" if old else " | |"
        lines.append(row)
    lines.append(f"| sum of the parts | {total:.2f} | 100% | |" + (
        f" {total - sum(parts[name] for name in reference) + sum(reference.values()):.2f} | |" if args.reference else ""))
    if args.reference:
        same = all(np.array_equal(getattr(new_tallies[p][s], field), getattr(old_tallies[p][s], field))
                   for p in prepared for s in (False, True) for field in ("labels", "scores", "previous", "induction"))
        lines.append(f"\nthe new labelling and the reference gave {'identical' if same else 'DIFFERENT'} labels and "
                     "scores on every item (the reference's sum takes its engine and labelling, the other parts as new)")
    lines += ["", QUIET.report()]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


def reference_batches(engine, work: list[tuple]) -> list[list[int]]:
    """The batches the atlas ran before: each setting's items on their own, shortest first, REFERENCE_BATCH at a
    time (run_batch then cut those whose padded attention is too large)."""
    cut = []
    for prepend_bos in (False, True):
        positions = sorted((position for position, (setting, _, _) in enumerate(work) if setting == prepend_bos),
                           key=lambda position: (len(work[position][2].ids), work[position][1]))
        cut += [positions[start:start + REFERENCE_BATCH] for start in range(0, len(positions), REFERENCE_BATCH)]
    return cut


def engine_floor(engine, work: list[tuple], cut: list[list[int]] | None, gflops: float) -> tuple[float, int]:
    """(s, padded tokens) of `cut` as the engine runs it (Engine.groups within each batch) at `gflops`."""
    if not cut:
        return 0.0, 0
    seconds = padded = 0
    for batch in cut:
        lengths = sorted(len(work[position][2].ids) for position in batch)
        for group in engine.groups(lengths):
            n_tokens = lengths[group[-1]]
            seconds += len(group) * attention_work(n_tokens)[0] / (gflops * 1e9)
            padded += len(group) * n_tokens
    return seconds, padded


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
