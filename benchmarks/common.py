"""Shared by the benchmark scripts: the GPT-2-small-shaped model they time, and this machine's floor.

The model is a random-initialised checkpoint of GPT-2 small's exact shape (`GPT2Config()` defaults: 12 layers,
12 heads, 768 wide, 1,024 positions, 50,257 tokens), built and exported once into `.cache/bench/` (ignored).
Random weights cost exactly what trained ones cost.
"""

import inspect
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench"
CHECKPOINT = CACHE / "gpt2-small-random"
MODELS = CACHE / "models"
TOKENIZER = REPO / "export" / "assets" / "gpt2-tokenizer"
sys.path.insert(0, str(REPO))


def gpt2_small_checkpoint() -> Path:
    if not (CHECKPOINT / "config.json").is_file():
        import torch
        from transformers import GPT2Config, GPT2Model
        torch.manual_seed(0)
        GPT2Model(GPT2Config()).save_pretrained(CHECKPOINT)
    return CHECKPOINT


def exported(name: str = "gpt2-small-random", int8: bool = False) -> Path:  # int8: pass a name of its own
    """models/NAME for the GPT-2-small-shaped checkpoint, exported through `twelve-heads export`; exported again
    whenever the exporter's source has changed since (a stale graph would time yesterday's rewrites)."""
    target = MODELS / name
    stamp = MODELS / f"{name}.source"
    if not (target / "manifest.json").is_file() or not stamp.is_file() or stamp.read_text() != export_source():
        args = [sys.executable, "-m", "twelve_heads.export", str(gpt2_small_checkpoint()), "--name", name,
                "--models-dir", str(MODELS), "--tokenizer", str(TOKENIZER),
                "--no-atlas"] + (["--int8"] if int8 else [])  # bench_atlas.py times the atlas on its own
        subprocess.run(args, cwd=REPO, check=True)
        stamp.write_text(export_source())
    return target


def export_source() -> str:
    """A fingerprint of the exporter: the sha256 of its source files and the model directory's contract."""
    import hashlib
    digest = hashlib.sha256()
    for path in sorted([*(REPO / "export").glob("*.py"), REPO / "twelve_heads" / "modeldir.py"]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def times_ms(function, repeat: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return times


def median_ms(function, repeat: int, warmup: int = 3) -> float:
    return statistics.median(times_ms(function, repeat, warmup))


def interleaved(contenders: dict, rounds: int, per_round: int, settle_s: float = 0.05) -> dict[str, list[list[float]]]:
    """{name: [each round's times in ms]}: each round times every contender in turn, so all of them see the
    same machine. This VM's memory bandwidth drifts by ±15% within minutes (its neighbours); timing one thing
    after another would put that drift into the ratios. Each block starts with an untimed call after a pause,
    so one contender's onnxruntime threads, still spinning, don't steal a core from the next. Each round waits
    for the machine to be quiet first (QUIET), and starts one contender later than the round before, so that
    none is always the first after that wait (each keeps its neighbours: alternated shuffles instead)."""
    results = {name: [] for name in contenders}
    order = list(contenders)
    for round_ in range(rounds):
        QUIET.wait()
        shift = round_ % len(order)
        for name in order[shift:] + order[:shift]:
            time.sleep(settle_s)
            results[name].append(times_ms(contenders[name], per_round, warmup=1))
    return results


QUIET_EVERY_CYCLES = 10  # alternated waits for a quiet machine this often: a wait per cycle would cost more than
# the cycle, and one per call of a whole sweep would let the others' load of the minute in


def alternated(contenders: dict, cycles: int, seed: int = 0) -> dict[str, list[float]]:
    """{name: [its ms in each cycle]}: one call of every contender per cycle, in a new random order each cycle
    (seeded), so that no contender is always the first after a wait or always the one after the same neighbour.
    For telling apart graphs within a few percent: this VM's speed drifts between a round of interleaved's blocks
    and the next far more than between two calls a few tens of milliseconds apart, so the median over cycles of
    a ratio of two calls in one cycle resolves much smaller differences (benchmarks/bench_sweep.py's control
    prints by how much, in benchmarks/results/bench_sweep.txt). No pause between calls: the engine's sessions
    stop their threads spinning when a run returns (server/engine.open_session), so none takes the next one's
    cores. Every contender is called once before the first cycle."""
    shuffle = random.Random(seed).shuffle
    order = list(contenders)
    for function in contenders.values():
        function()
    results = {name: [] for name in contenders}
    for cycle in range(cycles):
        if cycle % QUIET_EVERY_CYCLES == 0:
            QUIET.wait()
        shuffle(order)
        for name in order:
            started = time.perf_counter()
            contenders[name]()
            results[name].append((time.perf_counter() - started) * 1000)
    return results


class Quiet:
    """Waits for other processes to leave the CPU alone, and remembers how busy they kept it.

    The benchmarks share their machine; a round timed while another process computes measures that process.
    Before each round this samples /proc/stat while sleeping (so all the CPU it sees used is someone else's)
    and waits for a sample below `threshold` of all cores, up to `patience_s` over the whole run
    (BENCH_QUIET_PATIENCE_S). `report()` says how busy the others were when the rounds started, so a reader
    can tell a quiet run from a noisy one."""

    def __init__(self, threshold: float = 0.10, sample_s: float = 0.25, patience_s: float = 120.0):
        self.threshold, self.sample_s, self.patience_s = threshold, sample_s, patience_s  # patience: per run
        self.busy: list[float] = []  # others' share of all cores at the start of each round
        self.waited_s = 0.0
        self.started = cpu_ticks()

    def others_busy(self) -> float:
        def ticks():
            with open("/proc/stat") as stat:
                fields = [int(value) for value in stat.readline().split()[1:]]
            return sum(fields), fields[3] + fields[4]  # all, idle + iowait
        try:
            total, idle = ticks()
            time.sleep(self.sample_s)
            total_after, idle_after = ticks()
        except OSError:  # no /proc (macOS): nothing to wait for
            return 0.0
        return 1.0 - (idle_after - idle) / max(total_after - total, 1)

    def wait(self) -> None:
        """Sample the others' load; while it is high, wait, as long as this run's patience lasts (a machine that
        is never quiet costs a script `patience_s` once, not in every round)."""
        started = time.perf_counter()
        busy = self.others_busy()
        while busy > self.threshold and self.waited_s + time.perf_counter() - started < self.patience_s:
            busy = self.others_busy()
        self.waited_s += time.perf_counter() - started
        self.busy.append(busy)

    def report(self) -> str:
        steal = self.steal()
        stolen = "" if steal is None else (f"; the hypervisor stole {steal:.0%} of this VM's CPU time over the run "
                                           "(other VMs on its host: no wait here can avoid it)")
        if not self.busy:
            return "other processes' CPU: not sampled" + stolen
        return (f"other processes' CPU at the start of {len(self.busy)} rounds: median {statistics.median(self.busy):.0%}, "
                f"max {max(self.busy):.0%} of {os.cpu_count()} cores (waited {self.waited_s:.0f} s for quiet)" + stolen)

    def steal(self) -> float | None:
        """The share of CPU time the hypervisor gave other VMs since this run began (/proc/stat's steal)."""
        now = cpu_ticks()
        if now is None or self.started is None or len(now) < 8:
            return None
        total = sum(now) - sum(self.started)
        return (now[7] - self.started[7]) / max(total, 1)


def cpu_ticks() -> list[int] | None:
    """/proc/stat's first line: user, nice, system, idle, iowait, irq, softirq, steal, … (None without /proc)."""
    try:
        with open("/proc/stat") as stat:
            return [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return None


QUIET = Quiet(patience_s=float(os.environ.get("BENCH_QUIET_PATIENCE_S", 120)))


class ReadProbe:
    """Reads 512 MB the fastest way numpy can: one chunk per core, each summed by its own thread (numpy drops
    the GIL). Timed beside the engine (see interleaved), its best time gives the read bandwidth of that moment."""

    def __init__(self, megabytes: int = 512):
        import numpy as np
        self.chunks = np.array_split(np.ones(megabytes * 2**20 // 4, dtype=np.float32), os.cpu_count())
        self.nbytes = megabytes * 2**20

    def read(self) -> None:
        import threading

        import numpy as np
        threads = [threading.Thread(target=np.add.reduce, args=(chunk,)) for chunk in self.chunks]
        [thread.start() for thread in threads]
        [thread.join() for thread in threads]

    def gbs(self, times_ms: list[float]) -> float:
        """The bandwidth of the fastest of these calls, GB/s."""
        return self.nbytes / (min(times_ms) / 1000) / 1e9


def feed(session, ids) -> dict:
    """A session.run feed for token ids (B, T): with every head kept when the graph takes a head mask (the
    exports' model.onnx does, export/intervene.py; optimum's graph and its variants do not)."""
    import numpy as np

    from twelve_heads.modeldir import HEAD_MASK, INPUT_IDS
    ids = np.asarray(ids, dtype=np.int64)
    inputs = {node.name: node.shape for node in session.get_inputs()}
    if HEAD_MASK not in inputs:
        return {INPUT_IDS: ids}
    _, n_layer, n_head = inputs[HEAD_MASK]
    return {INPUT_IDS: ids, HEAD_MASK: np.ones((ids.shape[0], n_layer, n_head), dtype=np.float32)}


def attention_outputs(session) -> list[str]:
    """The graph's attentions.i outputs, in layer order: what variants of one model are compared on."""
    from twelve_heads.modeldir import attention_output
    names = {node.name for node in session.get_outputs()}
    return [attention_output(layer) for layer in range(len(names)) if attention_output(layer) in names]


# Words that are one GPT-2 token each, at the start of a sentence and after a space: a sentence of N of them is
# N tokens (bench_batch checks it). Not "tea" or "milk": at the start they are two.
WORDS = ("the cat dog sat on mat and a red blue big small house tree car road river town city man woman child "
         "book pen cup bread day night sun moon star sky sea ship boat fish bird song word game").split()


def sentence_of(n_tokens: int) -> str:
    """n_tokens GPT-2 tokens: ' the' is one token, repeated."""
    return "the" + " the" * (n_tokens - 1)


# --- the machine's floor ------------------------------------------------------------------------------------

SGEMM_N = 2048  # the probe's square matrices: large enough that OpenBLAS runs at its full rate
SGEMM_PROBE = f"""
import sys, time, numpy as np
n = {SGEMM_N}
a = np.random.rand(n, n).astype(np.float32); b = np.random.rand(n, n).astype(np.float32)
a @ b
if sys.argv[1:] == ["serve"]:  # one product per line read, each answered with a line
    for _ in sys.stdin:
        a @ b
        print(flush=True)
else:
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
    print(2 * n**3 / best / 1e9)
"""


def sgemm_environment() -> dict:
    """OPENBLAS_CORETYPE pins an older kernel on some machines here; the floor is what the machine can do, so the
    probe runs without it (in its own process; the engine and tests are untouched)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}


def sgemm_gflops() -> float:
    """The machine's sgemm rate on all cores, with numpy (OpenBLAS), measured once. It waits for a quiet machine
    first: a rate measured under someone else's load would lower the floor's bar."""
    QUIET.wait()
    output = subprocess.run([sys.executable, "-c", SGEMM_PROBE], env=sgemm_environment(), capture_output=True,
                            text=True, check=True)
    return float(output.stdout)


class SgemmProbe:
    """The sgemm rate as a contender: one square product of SGEMM_N per call, in a child process that stays up
    (numpy without OPENBLAS_CORETYPE, as sgemm_gflops). Timed beside the engine (interleaved), each round's best call
    gives the rate of that moment, as ReadProbe gives the bandwidth: this VM's rate moves within an hour (the
    sgemm column of benchmarks/results/bench_engine.txt), so a rate measured once at the start would bias every
    ratio after it."""

    flops = 2 * SGEMM_N**3

    def __init__(self):
        # Its threads stop spinning soon after each product, so they leave the cores to the next contender.
        environment = {**sgemm_environment(), "OPENBLAS_THREAD_TIMEOUT": "4"}
        self.child = subprocess.Popen([sys.executable, "-c", SGEMM_PROBE, "serve"], env=environment,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def multiply(self) -> None:
        self.child.stdin.write("\n")
        self.child.stdin.flush()
        if not self.child.stdout.readline():
            raise RuntimeError("the sgemm probe's process ended")

    def gflops(self, times_ms: list[float]) -> float:
        """The rate of the fastest of these calls."""
        return self.flops / (min(times_ms) / 1000) / 1e9

    def close(self) -> None:
        self.child.stdin.close()
        self.child.wait()


VARIANTS = CACHE / "variants"  # graphs built from the exports for timing only (bench_sweep's variants, ...)


def projections_alone(model_path: Path) -> Path:
    """The graph's weight matmuls and nothing else, in its order, written beside the benchmark's cache: each
    Gemm (fp32) or MatMulInteger (int8, as onnxruntime's DynamicQuantizeMatMul, the kernel it fuses those into)
    with the same weights and biases, each reading the stream the last one wrote. Its time is what
    onnxruntime's matmul kernels alone cost at T: a bound no rewrite of the rest of the graph can beat.
    Input "x", (T, n_embd) floats; the QKV projections are outputs, so none is pruned."""
    import onnx
    from onnx import TensorProto, helper

    from twelve_heads.export.optimize import constant_tensors, readers_of

    target = VARIANTS / f"{model_path.parent.name}-projections.onnx"
    stamp = target.with_suffix(".source")
    source = f"{export_source()} {model_path.stat().st_mtime_ns} {inspect.getsource(projections_alone)}"
    if target.is_file() and stamp.is_file() and stamp.read_text() == source:
        return target
    model = onnx.load(str(model_path), load_external_data=False)  # the embedding table (external) is not read
    constants, readers = constant_tensors(model), readers_of(model)
    used, nodes, outputs, stream, n_embd = {}, [], [], "x", 0

    def constant(name: str) -> str:
        used[constants[name].name] = constants[name]
        return constants[name].name

    for node in model.graph.node:
        if node.op_type == "Gemm" and node.input[1] in constants:
            op_type, domain = "Gemm", ""
            inputs = [constant(name) for name in node.input[1:]]
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        elif node.op_type == "MatMulInteger" and node.input[1] in constants:
            weight = node.input[1]  # then Cast, Mul by the two scales, Add the bias: quantize_dynamic's pattern
            cast = readers[node.output[0]][0]
            biased = readers[readers[cast.output[0]][0].output[0]][0]
            bias = next(name for name in biased.input if name in constants)
            scale = weight.removesuffix("_quantized") + "_scale"
            op_type, domain = "DynamicQuantizeMatMul", "com.microsoft"
            inputs, attributes = [constant(name) for name in (weight, scale, node.input[3], bias)], {}
        else:
            continue
        dims = constants[node.input[1]].dims
        reads, width = (dims[1], dims[0]) if attributes.get("transB", 0) else (dims[0], dims[1])
        n_embd = n_embd or reads  # the first projection reads the stream
        output = f"projection_{len(nodes)}"
        nodes.append(helper.make_node(op_type, [stream, *inputs], [output], domain=domain, **attributes))
        if width == 3 * n_embd:
            outputs.append(output)  # Q, K and V: the next projection reads the stream instead of attention's output
        else:
            stream = output
    outputs.append(stream)
    stream_input = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, n_embd])
    graph = helper.make_graph(nodes, "projections", [stream_input],
                              [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in outputs],
                              list(used.values()))
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                      helper.make_opsetid("com.microsoft", 1)]), str(target))
    stamp.write_text(source)
    return target


def block_work(n_tokens: int, n_embd=768) -> float:
    """FLOPs of one whole transformer block at T = n_tokens, counted as attention_work says."""
    t, d = n_tokens, n_embd
    return 2 * t * (3 * d * d + d * d + 8 * d * d) + 2 * (2 * t * t * d)


def attention_work(n_tokens: int, n_layer=12, n_embd=768) -> tuple[float, float]:
    """(FLOPs, weight bytes) the attention probabilities of every layer need at T = n_tokens.

    Every layer but the last: QKV projection (3d²), attention scores and A·V (2·T·d), output projection (d²),
    MLP (8d²). The last layer: only Q and K projections (2d²) and the scores — its V, output, MLP and the final
    LayerNorm change no attention probability. Counted as 2 FLOPs per multiply-add; LayerNorm, GELU and softmax
    are O(T·d) and left out, which keeps this an honest lower bound.
    """
    t, d = n_tokens, n_embd
    last_layer = 2 * t * (2 * d * d) + 2 * t * t * d
    flops = (n_layer - 1) * block_work(t, d) + last_layer
    weight_bytes = 4 * ((n_layer - 1) * 12 * d * d + 2 * d * d)
    return flops, weight_bytes


def predict_work(n_tokens: int, n_embd=768, vocab_size=50257) -> float:
    """FLOPs of predict.onnx for one sentence at T = n_tokens: the whole last block again (it starts from the
    stream entering it), then the tied LM head, vocabulary × n_embd per position. Counted as attention_work, and
    a lower bound as it is: the log-softmax's exp per logit (vocabulary per position) and padded rows left out."""
    return block_work(n_tokens, n_embd) + 2 * n_tokens * vocab_size * n_embd


def floor_ms(n_tokens: int, gflops: float, read_gbs: float) -> float:
    flops, weight_bytes = attention_work(n_tokens)
    return max(flops / (gflops * 1e9), weight_bytes / (read_gbs * 1e9)) * 1000


def table_vs_first(per_round: dict[str, list[float]], title: str, unit: str, digits: int) -> str:
    """A markdown table of each contender's median over rounds and its ratio to the first contender, each ratio
    taken within a round and then its median (the drift between rounds cancels)."""
    base = next(iter(per_round.values()))
    lines = [f"| {title} | {unit} | vs the first |", "|---|---:|---:|"]
    for name, rounds in per_round.items():
        ratio = statistics.median(ours / first for ours, first in zip(rounds, base))
        lines.append(f"| {name} | {statistics.median(rounds):.{digits}f} | {ratio:.2f}× |")
    return "\n".join(lines)
