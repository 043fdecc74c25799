"""Knocking heads out: what it costs a plain request, what a prediction costs, and the server's memory.

    python benchmarks/bench_intervene.py [--rounds 12] [--per-round 4] [--lengths 16,64] [--int8] [--memory-only]
                                         [--compare-with DIR]

On the GPT-2-small-shaped model (common.exported), through the Flask app in-process (tokenizing, the forward
pass, labels, JSON and gzip; no HTTP), each beside its baseline from the same run:
- before: the same export with the head mask and the residual output taken out again (`attention_only`),
  the graph as it was before this change, served as a model exported then is;
- plain: the request the page sends first, {"text": ..., "format": "packed"} (target: within 3% of before);
- predict + 3 out: the page's knock-out request, {"ablate": three heads, "predict": true, "format":
  "packed"}, in three states of the server's clean-pass cache (target: at most 2.2× plain):
  cold (the sentence never seen), after a look (the plain request came first, as on the page), and again
  (another head was knocked out before, so the clean prediction is cached too);
- RSS of a fresh server process after loading and warm-up requests at every length: attention-only (the
  `before` model) against the model with the prediction path loaded and used (target: at most 115%); then
  after the longest sentence "ablate" takes, and after one prediction of a sentence near 1,024 tokens;
  --compare-with DIR measures another export of the fp32 model (an earlier commit's) the same way.
Every timed request is a new random sentence of single-token words, so the response cache never answers it;
the contenders take turns round after round (common.interleaved's reasoning), and each ratio is taken within
a round, then its median over rounds is printed.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import MODELS, QUIET, REPO, WORDS, attention_work, exported, predict_work
from twelve_heads.server.config import DEFAULTS

KNOCKED_OUT = [[1, 3], [5, 7], [9, 2]]
ANOTHER = [[2, 2]]  # knocked out first in the "again" state
LONGEST = DEFAULTS["MAX_PACKED_ALL_LAYERS_TOKENS"]  # the memory table's long request: the longest "ablate" takes
LONGEST_PREDICTION = 1000  # then one prediction alone, of a sentence near GPT-2's 1,024 positions
SETTLE_S = 0.05

MEMORY_PROBE = r"""
import json, random, sys
sys.path.insert(0, {repo!r})
from twelve_heads.server import create_app
words = {words!r}
app = create_app({{"MODELS_DIR": {models!r}, "DEFAULT_MODEL": {model!r}}})
client = app.test_client()
def post(**fields):  # a refused request would leave an idle process to measure
    response = client.post("/api/attention", json={{"format": "packed", **fields}})
    assert response.status_code == 200, response.json
def status(field):
    return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) / 1024
loaded = status("VmRSS")
rng = random.Random(0)
for n_tokens in {lengths!r}:
    for _ in range(10):
        text = " ".join(rng.choice(words) for _ in range(n_tokens))
        post(text=text)
        if {predict!r}:
            post(text=text, predict=True, ablate={knocked!r})
warm, peak = status("VmRSS"), status("VmHWM")
text = " ".join(rng.choice(words) for _ in range({longest!r}))  # the longest sentence "ablate" takes
post(text=text, **({{"predict": True, "ablate": {knocked!r}}} if {predict!r} else {{}}))
long = status("VmRSS")
text = " ".join(rng.choice(words) for _ in range({longest_prediction!r}))  # "predict" alone takes any length
post(text=text, layer=0, predict={predict!r})
print(json.dumps({{"loaded_mb": loaded, "warm_mb": warm, "peak_mb": peak, "long_mb": long,
                  "longest_mb": status("VmRSS")}}))
"""


def attention_only(model_dir: Path, target: Path) -> Path:
    """The export as it was before knocking out existed: no head_mask input, no residual output, the embedding
    back inside model.onnx, no predict.onnx. Same graph otherwise, node for node."""
    import onnx

    from twelve_heads.modeldir import HEAD_MASK, INTERVENTION, MANIFEST, RESIDUAL, write_manifest

    if (target / MANIFEST).is_file():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    graph = onnx.load(str(model_dir / "model.onnx"))  # reads embedding.bin back in
    masks = [node for node in graph.graph.node if node.op_type == "Mul" and node.name.endswith("/head_mask/Mul")]
    renames = {node.input[0]: node.output[0] for node in masks}  # z_unmasked -> z
    added = ("/head_mask/row", "/head_mask/column", "/head_mask/Mul")  # export/intervene.py's node names
    kept = [node for node in graph.graph.node if not node.name.endswith(added)]
    for node in kept:
        node.output[:] = [renames.get(name, name) for name in node.output]
    del graph.graph.node[:]
    graph.graph.node.extend(kept)
    inputs = [value for value in graph.graph.input if value.name != HEAD_MASK]
    outputs = [value for value in graph.graph.output if value.name != RESIDUAL]
    del graph.graph.input[:], graph.graph.output[:]
    graph.graph.input.extend(inputs)
    graph.graph.output.extend(outputs)
    onnx.save(graph, str(target / "model.onnx"))
    shutil.copy(model_dir / "tokenizer.json", target / "tokenizer.json")
    manifest = json.loads((model_dir / MANIFEST).read_text())
    for key in (INTERVENTION, "files", "manifest_version"):
        manifest.pop(key, None)
    write_manifest(target, manifest)
    return target


def work_ratios(n_tokens: int) -> dict[str, float]:
    """Each knock-out state's FLOPs over the plain request's: what the ratio would be if every part ran at the
    same rate. cold: both passes and both predictions; after a look: the ablated pass and both predictions;
    again: the ablated pass and its prediction."""
    attention, predict = attention_work(n_tokens)[0], predict_work(n_tokens)
    return {"cold": 2 + 2 * predict / attention, "after a look": 1 + 2 * predict / attention,
            "again": 1 + predict / attention}


def sentence(rng: random.Random, n_tokens: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_tokens))  # each word is one GPT-2 token, " word" too


def post(client, **fields) -> None:
    response = client.post("/api/attention", json={"format": "packed", **fields})
    assert response.status_code == 200, response.json


def contenders(clients: dict, n_tokens: int, rng: random.Random) -> dict:
    """name -> (prepare, timed): prepare() is untimed and returns the text the timed call gets."""
    fresh = lambda: sentence(rng, n_tokens)  # noqa: E731

    def looked_at():
        text = fresh()
        post(clients["new"], text=text)
        return text

    def knocked_out_before():
        text = looked_at()
        post(clients["new"], text=text, ablate=ANOTHER, predict=True)
        return text

    return {
        "before": (fresh, lambda text: post(clients["before"], text=text)),
        "plain": (fresh, lambda text: post(clients["new"], text=text)),
        "cold": (fresh, lambda text: post(clients["new"], text=text, ablate=KNOCKED_OUT, predict=True)),
        "after a look": (looked_at, lambda text: post(clients["new"], text=text, ablate=KNOCKED_OUT, predict=True)),
        "again": (knocked_out_before, lambda text: post(clients["new"], text=text, ablate=KNOCKED_OUT, predict=True)),
    }


def interleaved(pairs: dict, rounds: int, per_round: int, clock=time.perf_counter) -> dict[str, list[float]]:
    """{name: per-round median ms}: in each round every contender runs `per_round` times in turn."""
    medians = {name: [] for name in pairs}
    for _ in range(rounds):
        for name, (prepare, timed) in pairs.items():
            time.sleep(SETTLE_S)
            timed(prepare())  # untimed: wakes this contender's path
            samples = []
            for _ in range(per_round):
                text = prepare()
                started = clock()
                timed(text)
                samples.append((clock() - started) * 1000)
            medians[name].append(statistics.median(samples))
    return medians


def memory(model_dir: Path, lengths: list[int], predict: bool) -> dict:
    """A fresh server process's RSS serving `model_dir` alone: the folder it is in may hold other models (the
    int8 export beside the fp32 one), and a server loads every model of its folder."""
    with tempfile.TemporaryDirectory() as alone:
        (Path(alone) / model_dir.name).symlink_to(model_dir.resolve(), target_is_directory=True)
        probe = MEMORY_PROBE.format(repo=str(REPO), words=WORDS, models=alone, model=model_dir.name, lengths=lengths,
                                    predict=predict, knocked=KNOCKED_OUT, longest=LONGEST,
                                    longest_prediction=LONGEST_PREDICTION)
        return json.loads(subprocess.run([sys.executable, "-"], input=probe, capture_output=True, text=True,
                                         check=True, env={**os.environ, "HEADS_CACHE_BYTES": str(64 * 2**20)}).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--per-round", type=int, default=4)
    parser.add_argument("--lengths", default="16,64")
    parser.add_argument("--int8", action="store_true", help="also measure the int8 export's memory")
    parser.add_argument("--memory-only", action="store_true", help="only the memory table")
    parser.add_argument("--compare-with", type=Path, help="another export of the fp32 model (an earlier commit's) "
                        "whose memory is measured in the same run")
    args = parser.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]

    from common import sgemm_gflops
    from twelve_heads.server import create_app

    variants = [("gpt2-small-random", False)] + ([("gpt2-small-random-int8", True)] if args.int8 else [])
    served = {}
    for name, int8 in variants:
        model_dir = exported(name, int8=int8)
        served[name] = (model_dir, attention_only(model_dir, MODELS.parent / "before" / name))
    try:
        sgemm = f"sgemm {sgemm_gflops():.0f} GFLOP/s"
    except subprocess.CalledProcessError as err:  # the probe is a separate process another job can stop
        sgemm = f"sgemm not measured ({err.returncode})"
    print(f"machine: {os.uname().nodename}, {os.cpu_count()} cores, {sgemm}, "
          f"load average {os.getloadavg()[0]:.1f} at start; {args.rounds} interleaved rounds × {args.per_round} "
          f"requests per contender and length; knocked out: {KNOCKED_OUT}")

    model_dir, before_dir = served["gpt2-small-random"]
    rng = random.Random(0)
    # Wall time with onnxruntime's threads as served; then CPU time with one thread each (no spinning threads
    # to count), which other jobs on a shared machine disturb far less than the wall clock.
    clocks = ((time.perf_counter, None, "wall ms"), (time.process_time, 1, "CPU ms, 1 thread"))
    for clock, threads, unit in () if args.memory_only else clocks:
        settings = {"ORT_THREADS": threads} if threads else {}
        clients = {name: create_app({"MODELS_DIR": str(path.parent), "DEFAULT_MODEL": path.name, **settings}
                                    ).test_client() for name, path in (("new", model_dir), ("before", before_dir))}
        print()
        print(f"| T | before {unit} | plain | plain / before | predict + 3 out: cold | / plain (work) | after a look | "
              "/ plain (work) | again | / plain (work) |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for n_tokens in lengths:
            medians = interleaved(contenders(clients, n_tokens, rng), args.rounds, args.per_round, clock)
            ms = {name: statistics.median(values) for name, values in medians.items()}
            ratio = {name: statistics.median(a / b for a, b in zip(medians[name], medians[base]))
                     for name, base in (("plain", "before"), ("cold", "plain"), ("after a look", "plain"),
                                        ("again", "plain"))}
            work = work_ratios(n_tokens)
            print(f"| {n_tokens} | {ms['before']:.1f} | {ms['plain']:.1f} | {ratio['plain']:.3f}× | {ms['cold']:.1f} | "
                  f"{ratio['cold']:.2f}× ({work['cold']:.2f}×) | {ms['after a look']:.1f} | "
                  f"{ratio['after a look']:.2f}× ({work['after a look']:.2f}×) | {ms['again']:.1f} | "
                  f"{ratio['again']:.2f}× ({work['again']:.2f}×) |")
        del clients
    print("\n(each figure: the median over rounds of a round's median; ratios: the median of the rounds' ratios; "
          "(work): the state's FLOPs over the plain request's, common.attention_work and predict_work)")

    print()
    print(f"| model | process | after load MB | after warm-up MB | peak MB | warm / attention-only | "
          f"after a {LONGEST}-token request MB | / attention-only | after {LONGEST_PREDICTION:,} tokens MB | "
          "/ attention-only |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (model_dir, before_dir) in served.items():
        alone = memory(before_dir, lengths, predict=False)
        rows = [("attention only (before)", alone), ("with the prediction path, used", memory(model_dir, lengths, True))]
        if args.compare_with and name == "gpt2-small-random":
            rows.append((f"{args.compare_with.name}, used", memory(args.compare_with, lengths, True)))
        for label, result in rows:
            print(f"| {name} | {label} | {result['loaded_mb']:.0f} | {result['warm_mb']:.0f} | "
                  f"{result['peak_mb']:.0f} | {result['warm_mb'] / alone['warm_mb']:.3f}× | {result['long_mb']:.0f} | "
                  f"{result['long_mb'] / alone['long_mb']:.3f}× | {result['longest_mb']:.0f} | "
                  f"{result['longest_mb'] / alone['longest_mb']:.3f}× |")
    print(f"\n(warm-up: 10 sentences at each of T = {args.lengths}, plain, and for the second process each also "
          f"with predict and three heads knocked out; CACHE_BYTES 64 MB; then one sentence of {LONGEST} tokens, the "
          f"same requests; then one of {LONGEST_PREDICTION:,} tokens, one layer, with predict for the second process)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}; {QUIET.report()}")


if __name__ == "__main__":
    main()
