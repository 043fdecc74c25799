"""The head atlas: what each head usually does over a fixed reference corpus, not on one sentence.

A label from one sentence is a guess. `compute_atlas(engine)` runs the engine over the reference corpus
(server/data/atlas_corpus.json: 229 English items of nine kinds) and the standard induction probe (PROBE_SEQUENCES
sequences of PROBE_LENGTH random tokens, each repeated once, as ARENA and TransformerLens make it), labels every
head on every item with `label_heads`, and returns what `atlas.json` holds (README: "The head atlas"). Torch-free:
the engine and numpy.

    engine, workers = atlas_engine("models/gpt2")  # or: twelve-heads atlas models/gpt2
    atlas = compute_atlas(engine, workers=workers)
    atlas["views"][0]["heads"][5][5]["consensus"]        # "induction"

Four views, each computed from its own attention: with and without <|endoftext|> first, each plain and
sink-aware (the first token's column set aside and rows renormalised, as `label_heads(sink_aware=True)`).

Where a role can show. Some roles need something only some items have, and a head that has such a role rests on
the first token (a broadcaster) or looks near wherever it is missing. So each label is counted only on the items
where it could show (can_show), and its share is over those:
- duplicate-token and induction: items where at least MIN_REPEAT_ROWS scored rows have an earlier copy of their
  token, as the labeller itself requires; every probe sequence is one;
- long-range: items of at least LONG_RANGE_MIN_TOKENS tokens;
- every other label: every item.
The consensus is a role of the first kind when it holds on at least half the items where it could show (what
the head does where it has nothing to do says nothing about it); else the label with the largest share.
In the sink-aware views, an item on which a head leaves nothing off the first token counts as broadcaster for it.
"""

import hashlib
import json
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from twelve_heads import __version__
from twelve_heads.modeldir import GRAPH

from .detector import previous_token_pattern, tl_similarity_score
from .heads import LABELS, SCORE_NAMES, label_indices
from .scores import FIRST_SCORED_ROW, MIN_REPEAT_ROWS, measure, validated, without_first_token

if TYPE_CHECKING:
    from .engine import Engine

ATLAS_VERSION = 1  # raised when a reader of an older version would misread a newer atlas.json
CORPUS_PATH = Path(__file__).resolve().parent / "data" / "atlas_corpus.json"

PROBE_SEQUENCES = 10  # ARENA and TransformerLens: 10 sequences of random tokens ...
PROBE_LENGTH = 50  # ... of 50 tokens, each repeated once (shorter when the model reads fewer than 2 x 50 + 1)
PROBE_SEED = 0  # fixed: the probe, and so the atlas, is the same every time
PROBE_KIND = "probe"

LONG_RANGE_MIN_TOKENS = 16  # 10 of the 14 scored rows reach 5+ tokens back: room for a head that looks farther
USUAL_SHARE = 0.5  # a usual job holds on a majority of the items where it could show (the labeller's "most")
RUN_COST_TOKENS = 24  # an engine run costs about as much as this many more tokens (benchmarks/bench_atlas.py)
DECIMALS = 4  # as label_heads reports its scores

LABEL_INDEX = {label: index for index, label in enumerate(LABELS)}
BROADCASTER, MIXED = LABEL_INDEX["broadcaster"], LABEL_INDEX["mixed"]
DUPLICATE, INDUCTION, LONG_RANGE = LABEL_INDEX["duplicate-token"], LABEL_INDEX["induction"], LABEL_INDEX["long-range"]
CONDITIONAL = (LONG_RANGE, DUPLICATE, INDUCTION)  # in LABELS order: of equal shares the first wins
REPEAT_SCORES = [SCORE_NAMES.index("duplicate_token"), SCORE_NAMES.index("induction")]
RULES = {
    "duplicate-token": f"items where at least {MIN_REPEAT_ROWS} tokens repeat an earlier one, and the probe",
    "induction": f"items where at least {MIN_REPEAT_ROWS} tokens repeat an earlier one, and the probe",
    "long-range": f"items of at least {LONG_RANGE_MIN_TOKENS} tokens",
    "other": "every item",
    "consensus": "a duplicate-token, induction or long-range role that holds on at least half of the items where "
                 "it could show; otherwise the label with the largest share",
    "usual": f"the consensus holds on at least {USUAL_SHARE:.0%} of the items where it could show and is not mixed",
    "sink_aware": "an item on which a head leaves nothing off the first token counts as broadcaster for it",
}
# Why a role that needs something cannot show on a sentence without it (can_show says whether): the page says it
# beside a head whose usual job this sentence labels otherwise. The same conditions as RULES, for one sentence.
WHY_NOT_HERE = {
    "duplicate-token": f"this sentence has fewer than {MIN_REPEAT_ROWS} tokens that repeat an earlier one",
    "induction": f"this sentence has fewer than {MIN_REPEAT_ROWS} tokens that repeat an earlier one",
    "long-range": f"this sentence is shorter than {LONG_RANGE_MIN_TOKENS} tokens",
}
assert set(WHY_NOT_HERE) == {LABELS[label] for label in CONDITIONAL}


@dataclass(frozen=True)
class Item:
    """One sentence of the atlas, tokenized for one view."""

    kind: str  # a corpus kind, or PROBE_KIND
    ids: list[int]
    probe_half: int = 0  # a probe sequence: the length of each half; 0 for a corpus item
    probe_index: int = -1
    start: int = 0  # 1 when <|endoftext|> is prepended

    def can_show(self) -> np.ndarray:  # (len(LABELS),) bool
        duplicate_rows, induction_rows = repeat_rows(self.ids)
        can = np.ones(len(LABELS), dtype=bool)
        can[DUPLICATE] = duplicate_rows >= MIN_REPEAT_ROWS
        can[INDUCTION] = induction_rows >= MIN_REPEAT_ROWS
        can[LONG_RANGE] = len(self.ids) >= LONG_RANGE_MIN_TOKENS
        return can


def compute_atlas(engine, progress=None, workers: int = 1) -> dict:
    """The atlas of `engine`'s model (what atlas.json holds), its batches run and labelled by `workers` threads
    (atlas_engine says how many). `progress(done, total)` is called after each batch of sentences. The same engine
    gives the same atlas, number for number, with any number of workers."""
    corpus_bytes = CORPUS_PATH.read_bytes()
    texts = json.loads(corpus_bytes)["items"]
    bos = engine.manifest.get("bos_token_id")
    half = min(PROBE_LENGTH, (engine.n_positions - 1) // 2)
    halves = probe_halves(engine.manifest["vocab_size"], bos, half)
    settings = [False] if bos is None else [False, True]
    prepared = {prepend_bos: reference_items(engine, texts, halves, prepend_bos) for prepend_bos in settings}
    tallies = {prepend_bos: {sink_aware: Tally(len(items), len(halves), engine.n_layer, engine.n_head)
                             for sink_aware in (False, True)} for prepend_bos, (items, _) in prepared.items()}
    # Both settings' items in one list, so that the engine's batches are cut across them: a sentence with
    # <|endoftext|> first is as long as another sentence one token longer without it, and pads nothing beside it.
    work = [(tallies[prepend_bos], index, item) for prepend_bos, (items, _) in prepared.items()
            for index, item in enumerate(items)]
    label_work(engine, work, workers, progress)
    views = [summarize(items, tallies[prepend_bos][sink_aware], prepend_bos, sink_aware)
             for prepend_bos, (items, _) in prepared.items() for sink_aware in (False, True)]
    kinds = {}
    for item in texts:
        kinds[item["kind"]] = kinds.get(item["kind"], 0) + 1
    return {
        "atlas_version": ATLAS_VERSION,
        "twelve_heads_version": __version__,
        "model": engine.manifest["name"],
        "source": engine.manifest.get("source"),
        "graph_sha256": engine.manifest["files"][GRAPH],
        "n_layer": engine.n_layer,
        "n_head": engine.n_head,
        "labels": list(LABELS),
        "score_names": list(SCORE_NAMES),
        "corpus": {"items": len(texts), "kinds": kinds, "sha256": hashlib.sha256(corpus_bytes).hexdigest(),
                   "skipped": {("bos" if prepend_bos else "plain"): skipped
                               for prepend_bos, (_, skipped) in prepared.items()}},
        "probe": {"sequences": len(halves), "length": half, "seed": PROBE_SEED,
                  "tokens": "uniform over the vocabulary, <|endoftext|> left out; each sequence repeated once"},
        "rules": RULES,
        "views": views,
    }


def atlas_engine(path, cores: int | None = None) -> tuple["Engine", int]:
    """The engine the atlas runs on, and how many workers run it: one single-threaded onnxruntime session, one
    worker a core (`cores`, default all). The atlas's batches are independent of each other, and two of them run
    side by side on one core each finish sooner than one after the other on both cores
    (benchmarks/bench_atlas.py): no kernel waits for the other core, and one worker's labelling (numpy and Python,
    which holds the GIL) fills the time the other's run leaves (onnxruntime releases it)."""
    from .engine import Engine  # the atlas itself only needs an engine's methods; loading one needs onnxruntime
    return Engine.load(path, threads=1), cores or usable_cores()


def usable_cores() -> int:
    """The cores this process may run on (its affinity, which a container's CPU set limits), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on macOS or Windows
        return os.cpu_count() or 1


def label_work(engine, work: list[tuple], workers: int, progress=None) -> None:
    """Run the engine over `work` ((tallies, index, item) triples) in batches, and add each item to its tallies,
    on `workers` threads. Each item has its own row in its tallies, so the order they finish in changes nothing.
    The costliest batches go first, so that no worker is left alone with a long one at the end. An error or an
    interrupt cancels the batches not yet started and waits for the running ones before it is raised."""
    cut = batches(engine, [len(item.ids) for _, _, item in work])
    cut.sort(key=lambda batch: -len(batch) * max(len(work[position][2].ids) for position in batch))

    stopped = threading.Event()  # once set, a batch a worker has already taken does nothing

    def run(batch: list[int]) -> int:
        if stopped.is_set():
            return 0
        try:
            members = [work[position] for position in batch]
            attentions = attention_of(engine, [item.ids for _, _, item in members])
            for (view_tallies, index, item), attention in zip(members, attentions, strict=True):
                add_item(view_tallies, index, item, attention)
        except BaseException:
            stopped.set()
            raise
        return len(batch)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atlas")
    try:
        done = 0
        for finished in as_completed([pool.submit(run, batch) for batch in cut]):
            items = finished.result()
            done += items
            if progress and items:  # not for a batch skipped once the atlas had stopped
                progress(done, len(work))
    finally:
        stopped.set()
        pool.shutdown(wait=True, cancel_futures=True)


def attention_of(engine, batch: list[list[int]]) -> list[np.ndarray]:
    """(L, H, T, T) attention of each sentence in `batch`: the one place the atlas runs the engine, in padded
    batches (Engine.run_batch)."""
    return engine.run_batch(batch)


def batches(engine, lengths: list[int]) -> list[list[int]]:
    """Positions in `lengths` cut into batches for the engine, each padded to its longest: the cut of the lengths,
    shortest first, into batches the engine runs whole (Engine.groups) that pads the fewest tokens, each run
    counted as RUN_COST_TOKENS more (what a run costs besides its tokens: reading the weights)."""
    order = sorted(range(len(lengths)), key=lambda position: (lengths[position], position))
    ascending = [lengths[position] for position in order]
    cost = [0] + [math.inf] * len(order)  # cost[end]: of the cheapest cut of order[:end] ...
    first = [0] * (len(order) + 1)  # ... whose last batch starts at first[end]
    for end in range(1, len(order) + 1):
        for start in range(end - 1, -1, -1):
            if len(engine.groups(ascending[start:end])) > 1:
                break  # the engine would cut it, and so any batch that starts earlier
            candidate = cost[start] + RUN_COST_TOKENS + (end - start) * ascending[end - 1]
            if candidate < cost[end]:
                cost[end], first[end] = candidate, start
    cuts, end = [], len(order)
    while end:
        cuts.append(order[first[end]:end])
        end = first[end]
    return cuts[::-1]


def reference_items(engine, texts: list[dict], halves: list[list[int]], prepend_bos: bool) -> tuple[list[Item], int]:
    """The corpus items the model can read (and how many it cannot: too long), then the probe sequences."""
    items, skipped = [], 0
    for text in texts:
        ids = token_ids(engine, text["text"], prepend_bos)
        if len(ids) > engine.n_positions:
            skipped += 1
            continue
        items.append(Item(text["kind"], ids, start=int(prepend_bos)))
    bos = [engine.manifest["bos_token_id"]] if prepend_bos else []
    items += [Item(PROBE_KIND, bos + half + half, probe_half=len(half), probe_index=index, start=int(prepend_bos))
              for index, half in enumerate(halves)]
    return items, skipped


def token_ids(engine, text: str, prepend_bos: bool) -> list[int]:
    """Token ids as the page gets them, without the engine's length limit (the atlas skips what is too long)."""
    ids = list(engine.tokenizer.encode(text).ids)
    return [engine.manifest["bos_token_id"]] + ids if prepend_bos else ids


def probe_halves(vocab_size: int, bos: int | None, half: int) -> list[list[int]]:
    """PROBE_SEQUENCES lists of `half` random token ids, uniform over the vocabulary without <|endoftext|>."""
    rng = np.random.default_rng(PROBE_SEED)
    draws = rng.integers(0, vocab_size - (bos is not None), size=(PROBE_SEQUENCES, half))
    if bos is not None:
        draws += draws >= bos  # skip the document token's id
    return draws.tolist()


def repeat_rows(ids) -> tuple[int, int]:
    """Scored rows with an earlier copy of their token, counted as the labeller counts them: for duplicate-token a
    copy at keys 1..i-1, for induction a key 1..i-1 that follows a copy (so the copy is at 0..i-2)."""
    duplicate = induction = 0
    after_first, before_previous = set(), set()  # the tokens at 1..i-1 and at 0..i-2, for row i
    for row in range(FIRST_SCORED_ROW, len(ids)):
        after_first.add(ids[row - 1])
        before_previous.add(ids[row - 2])
        duplicate += ids[row] in after_first
        induction += ids[row] in before_previous
    return duplicate, induction


def can_show(ids) -> dict[str, bool]:
    """For one sentence, whether each label that needs something (repeats, length) could show on it at all:
    what the page says when a head's usual job does not show here."""
    flags = Item("", list(ids)).can_show()
    return {LABELS[label]: bool(flags[label]) for label in CONDITIONAL}


def arena_induction_score(attention: np.ndarray, half: int, start: int) -> np.ndarray:  # (L, H, T, T) -> (L, H)
    """ARENA's induction score on a sequence repeated once: the mean attention on the diagonal half - 1 back (from
    each token of the second half to the token after its first copy), over the second half's queries. ARENA
    averages the whole diagonal, which adds the two last queries of the first half; this is the second half alone."""
    queries = np.arange(start + half, start + 2 * half)
    return attention[..., queries, queries - (half - 1)].mean(axis=-1)


class Tally:
    """Per item, for one view: each head's label and scores; per probe sequence, its ARENA induction score."""

    def __init__(self, n_items: int, n_probe: int, n_layer: int, n_head: int):
        self.labels = np.zeros((n_items, n_layer, n_head), dtype=np.int8)
        self.scores = np.zeros((n_items, n_layer, n_head, len(SCORE_NAMES)))
        self.previous = np.zeros((n_items, n_layer, n_head))  # TransformerLens's previous-token detector
        self.induction = np.zeros((n_probe, n_layer, n_head))

    def add(self, index: int, item: Item, attention: np.ndarray, set_aside: tuple | None = None) -> None:
        """Label and score one item's heads as label_heads does (its labels and rounded scores, without the reasons
        the atlas does not keep). `set_aside`: without_first_token(attention) for the sink-aware view, else None."""
        sink_aware = set_aside is not None
        measured = measure(attention, item.ids, sink_aware, set_aside)
        self.labels[index] = label_indices(measured)
        self.scores[index] = np.round(np.stack([measured[name] for name in SCORE_NAMES], axis=-1), DECIMALS)
        seen = attention
        if sink_aware:
            seen, has_mass = set_aside  # as the labeller saw it
            nothing_left = ~has_mass[..., FIRST_SCORED_ROW:].any(axis=-1)  # (L, H)
            self.labels[index][nothing_left] = BROADCASTER
        self.previous[index] = tl_similarity_score(seen, previous_token_pattern(len(item.ids)))
        if item.probe_half:
            self.induction[item.probe_index] = arena_induction_score(seen, item.probe_half, item.start)


def add_item(tallies: dict[bool, Tally], index: int, item: Item, attention: np.ndarray) -> None:
    """One item into the plain and the sink-aware tally: its attention checked once, and its first column set aside
    once for both the sink-aware labels and the sink-aware detector scores."""
    attention = validated(attention, item.ids)
    tallies[False].add(index, item, attention)
    tallies[True].add(index, item, attention, without_first_token(attention))


def summarize(items: list[Item], tally: Tally, prepend_bos: bool, sink_aware: bool) -> dict:
    """One view of the atlas: every head's consensus and evidence, every layer's broadcasters per item."""
    n_items, n_layer, n_head = tally.labels.shape
    can_show = np.array([item.can_show() for item in items])  # (N, 9)
    probe = np.array([item.kind == PROBE_KIND for item in items])
    got = tally.labels[..., None] == np.arange(len(LABELS))  # (N, L, H, 9)
    counts = (got & can_show[:, None, None, :]).sum(axis=0)  # (L, H, 9): each label where it could show
    of = can_show.sum(axis=0)  # (9,)
    shares = counts / np.maximum(of, 1)
    profile = got.mean(axis=0)  # (L, H, 9): over every item, as it came

    conditional = shares[..., list(CONDITIONAL)]
    best = np.array(CONDITIONAL)[conditional.argmax(axis=-1)]
    consensus = np.where(conditional.max(axis=-1) >= USUAL_SHARE, best, shares.argmax(axis=-1))  # (L, H)
    share = np.take_along_axis(shares, consensus[..., None], axis=-1)[..., 0]
    count = np.take_along_axis(counts, consensus[..., None], axis=-1)[..., 0]
    usual = (share >= USUAL_SHARE) & (consensus != MIXED)

    repeats = can_show[:, DUPLICATE]  # the TransformerLens token scores say something only where tokens repeat
    weights = np.ones((n_items, len(SCORE_NAMES)), dtype=bool)
    weights[:, REPEAT_SCORES] = repeats[:, None]
    mean, spread = weighted_mean_spread(tally.scores, weights[:, None, None, :])
    detector = {"previous_token": (tally.previous[~probe].mean(axis=0), tally.previous[probe].mean(axis=0))}
    for name, column in zip(("duplicate_token", "induction"), REPEAT_SCORES):
        text_repeats = repeats & ~probe
        corpus_mean = tally.scores[text_repeats, ..., column].mean(axis=0) if text_repeats.any() else np.zeros(
            (n_layer, n_head))
        detector[name] = (corpus_mean, tally.scores[probe, ..., column].mean(axis=0))
    induction_score = tally.induction.mean(axis=0)

    rounded = lambda array: np.round(array, DECIMALS).tolist()  # noqa: E731 (one conversion per array)
    label_names = np.array(LABELS, dtype=object)[consensus].tolist()
    share, count, usual, profile, shares = (rounded(share), count.tolist(), usual.tolist(), rounded(profile),
                                            rounded(shares))
    mean, spread, induction_score = rounded(mean), rounded(spread), rounded(induction_score)
    detector = {name: (rounded(corpus), rounded(probed)) for name, (corpus, probed) in detector.items()}
    of_list = of.tolist()
    heads = [[{
        "consensus": label_names[layer][head],
        "consensus_share": share[layer][head],
        "consensus_count": count[layer][head],
        "consensus_of": of_list[consensus[layer, head]],
        "usual": usual[layer][head],
        "induction_score": induction_score[layer][head],
        "shares": dict(zip(LABELS, shares[layer][head])),
        "profile": dict(zip(LABELS, profile[layer][head])),
        "scores": {name: [mean[layer][head][column], spread[layer][head][column]]
                   for column, name in enumerate(SCORE_NAMES)},
        "detector": {name: {"corpus": corpus[layer][head], "probe": probed[layer][head]}
                     for name, (corpus, probed) in detector.items()},
    } for head in range(n_head)] for layer in range(n_layer)]

    broadcasters = (tally.labels[~probe] == BROADCASTER).sum(axis=-1)  # (corpus items, L)
    layers = [{"broadcasters": {"mean": round(float(column.mean()), 2), "min": int(column.min()),
                                "max": int(column.max())}} for column in broadcasters.T]
    return {
        "prepend_bos": prepend_bos,
        "sink_aware": sink_aware,
        "items": n_items,
        "corpus_items": int((~probe).sum()),
        "probe_items": int(probe.sum()),
        "can_show": dict(zip(LABELS, of_list)),
        "summary": {"usual_heads": int(np.sum(usual)), "heads": n_layer * n_head,
                    "median_share": round(float(np.median(share)), DECIMALS)},
        "layers": layers,
        "heads": heads,
    }


def weighted_mean_spread(values: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over axis 0 of the items whose weight is True; 0 where there are none."""
    n = weights.sum(axis=0)
    total = np.where(weights, values, 0.0).sum(axis=0)
    mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    deviation = np.where(weights, values - mean, 0.0)
    variance = np.divide((deviation ** 2).sum(axis=0), n, out=np.zeros_like(total), where=n > 0)
    return mean, np.sqrt(variance)
