"""The head atlas through the engine: on the planted-heads demo it names the planted roles, on a random GPT-2 it
says the heads have no usual job, and the same model always gives the same atlas.

The demo's and the random model's atlases are the ones `twelve-heads export` wrote (conftest's fixtures), read
back verified; the determinism test computes the random model's again in this process and compares.
"""

import json
import math
import threading

import numpy as np
import pytest

from twelve_heads.server.atlas import (CORPUS_PATH, LONG_RANGE_MIN_TOKENS, PROBE_LENGTH, PROBE_SEQUENCES, arena_induction_score,
                                       atlas_engine, compute_atlas, probe_halves, repeat_rows)
from twelve_heads.errors import InputError
from twelve_heads.server.atlas_file import read_atlas
from twelve_heads.server.atlas_view import usually
from twelve_heads.server.engine import Engine
from twelve_heads.server.heads import LABELS, label_heads
from twelve_heads.server.scores import MIN_REPEAT_ROWS

PLANTED_SHARE = 0.97  # the bar: the consensus is the planted role for at least 97% of the heads
INDUCTION_HEAD_SCORE, OTHER_HEAD_SCORE = 0.8, 0.1
VIEWS = [(False, False), (False, True), (True, False), (True, True)]
VIEW_IDS = ["plain", "sink-aware", "bos", "bos-sink-aware"]


@pytest.fixture(scope="module")
def demo_atlas(demo_model):
    return read_atlas(demo_model)


@pytest.fixture(scope="module")
def planted(demo_model):
    return json.loads((demo_model / "planted_heads.json").read_text())["heads"]


@pytest.fixture(scope="module")
def random_atlas(wide_model):
    return read_atlas(wide_model)


def view_of(atlas, prepend_bos, sink_aware):
    [view] = [v for v in atlas["views"] if (v["prepend_bos"], v["sink_aware"]) == (prepend_bos, sink_aware)]
    return view


@pytest.mark.parametrize("prepend_bos, sink_aware", VIEWS, ids=VIEW_IDS)
def test_the_demo_consensus_is_the_planted_role(demo_atlas, planted, prepend_bos, sink_aware):
    view = view_of(demo_atlas, prepend_bos, sink_aware)
    wrong = []
    for h in planted:
        head = view["heads"][h["layer"]][h["head"]]
        if head["consensus"] != h["role"]:
            wrong.append(f"{h['layer']}.{h['head']} planted {h['role']}: {usually(head, view)}")
    assert len(planted) == 144
    assert len(planted) - len(wrong) >= math.ceil(PLANTED_SHARE * len(planted)), "\n".join(wrong)


@pytest.mark.parametrize("prepend_bos, sink_aware", VIEWS, ids=VIEW_IDS)
def test_the_demo_induction_score_finds_exactly_the_planted_induction_heads(demo_atlas, planted, prepend_bos,
                                                                           sink_aware):
    view = view_of(demo_atlas, prepend_bos, sink_aware)
    scores = {(h["layer"], h["head"]): view["heads"][h["layer"]][h["head"]]["induction_score"] for h in planted}
    induction = {(h["layer"], h["head"]) for h in planted if h["role"] == "induction"}
    assert induction  # the layout plants several
    assert min(scores[head] for head in induction) >= INDUCTION_HEAD_SCORE
    assert max(score for head, score in scores.items() if head not in induction) <= OTHER_HEAD_SCORE


def test_duplicate_and_induction_heads_are_judged_where_they_can_show(demo_atlas, planted):
    """Without repeats the planted duplicate-token and induction heads rest on the first token: they are
    broadcasters on most of the corpus, but their consensus is their role, on nearly all items with repeats."""
    view = view_of(demo_atlas, True, False)
    for h in planted:
        if h["role"] in ("duplicate-token", "induction"):
            head = view["heads"][h["layer"]][h["head"]]
            assert head["profile"]["broadcaster"] > 0  # the items with nothing to repeat
            assert head["consensus"] == h["role"] and head["usual"]
            assert head["consensus_of"] == view["can_show"][h["role"]] < view["items"]
            assert usually(head, view).endswith(" items where it could show")


def test_the_demo_broadcasters_per_layer_lie_between_the_planted_sinks_and_the_resting_heads(demo_atlas, planted):
    view = view_of(demo_atlas, True, False)
    for layer, summary in enumerate(view["layers"]):
        roles = [h["role"] for h in planted if h["layer"] == layer]
        sinks = roles.count("broadcaster")
        resting = sinks + roles.count("duplicate-token") + roles.count("induction")
        counts = summary["broadcasters"]
        assert sinks <= counts["min"] <= counts["mean"] <= counts["max"] <= resting, (layer, counts)


@pytest.mark.parametrize("prepend_bos, sink_aware", VIEWS, ids=VIEW_IDS)
def test_a_random_gpt2_has_low_consistency_and_says_so(random_atlas, demo_atlas, prepend_bos, sink_aware):
    view, demo = view_of(random_atlas, prepend_bos, sink_aware), view_of(demo_atlas, prepend_bos, sink_aware)
    heads = [head for layer in view["heads"] for head in layer]
    assert len(heads) == 144
    assert demo["summary"]["median_share"] - view["summary"]["median_share"] > 0.3
    assert view["summary"]["usual_heads"] < demo["summary"]["usual_heads"]
    if not sink_aware:  # set aside the sink, a near-uniform head lands mostly far back: consistently long-range
        assert view["summary"]["usual_heads"] < len(heads) / 2
    for head in heads:
        assert usually(head, view).startswith("no usual job: most often ") != head["usual"]
    # No induction heads in random weights: their attention is spread over the probe's ~100 keys.
    assert max(head["induction_score"] for head in heads) < OTHER_HEAD_SCORE


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_atlas_is_the_same_every_time_it_is_computed(wide_model, random_atlas, workers):
    """atlas.json was computed by the export, in its own process, with a worker a core; computing it here, with
    any number of workers finishing its batches in any order, gives identical numbers."""
    engine, _ = atlas_engine(wide_model)
    assert compute_atlas(engine, workers=workers) == random_atlas


def test_an_error_in_one_batch_stops_the_atlas_and_reaches_its_caller(wide_model):
    """The engine refuses the third batch it is given: compute_atlas raises that error, starts no batch after it
    and leaves no worker thread behind."""
    class FailingEngine(Engine):
        runs = 0

        def run_batch(self, batch):
            with lock:
                FailingEngine.runs += 1
                if FailingEngine.runs == 3:
                    raise InputError("the third batch is refused")
            return super().run_batch(batch)

    lock = threading.Lock()
    engine = FailingEngine.load(wide_model, threads=1)
    progress = []
    with pytest.raises(InputError, match="the third batch is refused"):
        compute_atlas(engine, lambda done, total: progress.append(done), workers=2)
    assert FailingEngine.runs <= 4  # the third, and at most one that the other worker had already begun
    assert len(progress) <= 3 and progress == sorted(set(progress))  # each finished batch once, none skipped
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("atlas")]


@pytest.mark.parametrize("which", ["demo", "random"])
def test_duplicate_and_induction_labels_occur_only_where_the_atlas_says_they_can(demo_atlas, random_atlas, which):
    """repeat_rows mirrors the labeller's own condition: no head is labelled duplicate-token or induction on an
    item the atlas counts as unable to show it (the shares over those items then hold every such label)."""
    atlas = demo_atlas if which == "demo" else random_atlas
    for view in atlas["views"]:
        for head in (head for layer in view["heads"] for head in layer):
            for label in ("duplicate-token", "induction"):
                everywhere = round(head["profile"][label] * view["items"])
                where_it_can = round(head["shares"][label] * view["can_show"][label])
                assert everywhere == where_it_can
            assert 0 <= head["consensus_count"] <= head["consensus_of"]
            assert head["consensus_share"] == pytest.approx(head["consensus_count"] / head["consensus_of"], abs=1e-4)
            assert head["consensus"] in LABELS and sum(head["profile"].values()) == pytest.approx(1, abs=1e-3)


def test_a_model_with_few_positions_skips_long_items_and_shortens_the_probe(tiny_model):
    atlas = read_atlas(tiny_model)
    assert atlas["probe"] == {**atlas["probe"], "sequences": PROBE_SEQUENCES, "length": (40 - 1) // 2}
    assert atlas["corpus"]["skipped"]["plain"] > 0 and atlas["corpus"]["skipped"]["bos"] >= atlas["corpus"]["skipped"]["plain"]
    for view in atlas["views"]:
        assert view["corpus_items"] == atlas["corpus"]["items"] - atlas["corpus"]["skipped"]["bos" if view["prepend_bos"] else "plain"]
        assert view["probe_items"] == PROBE_SEQUENCES
        assert len(view["heads"]) == 2 and len(view["heads"][0]) == 4


def test_the_probe_is_fixed_random_tokens_without_the_document_token():
    halves = probe_halves(50257, 50256, PROBE_LENGTH)
    assert halves == probe_halves(50257, 50256, PROBE_LENGTH)
    ids = np.array(halves)
    assert ids.shape == (PROBE_SEQUENCES, PROBE_LENGTH) and ids.min() >= 0 and ids.max() < 50256
    assert len(np.unique(ids)) > 0.95 * ids.size  # spread over the vocabulary, not a few tokens
    assert 0 not in np.array(probe_halves(100, 0, 50))  # the document token's id is skipped wherever it is


@pytest.mark.parametrize("start", [0, 1], ids=["plain", "bos"])
def test_arena_induction_score_reads_the_diagonal_half_minus_one_back_over_the_second_half(start):
    half = 6
    n = start + 2 * half
    induction = np.zeros((n, n))
    induction[:, 0] = 1.0  # rest on the first token ...
    for query in range(start + half, n):  # ... except the second half: the token after the first copy
        induction[query] = 0.0
        induction[query, query - (half - 1)] = 1.0
    previous = np.eye(n, k=-1)
    previous[0, 0] = 1.0
    scores = arena_induction_score(np.stack([induction, previous])[None], half, start)  # (1, 2)
    assert scores.tolist() == [[1.0, 0.0]]


def test_repeat_rows_counts_what_the_labeller_needs_for_a_token_label():
    """An induction pattern on a sentence with exactly MIN_REPEAT_ROWS repeats is labelled induction; one repeat
    fewer and repeat_rows and the labeller agree that it cannot be."""
    for repeats in (MIN_REPEAT_ROWS, MIN_REPEAT_ROWS - 1):
        ids = [100, 1, 2, 3, 4, 5, 6, 7, 8] + [1, 2, 3, 4][:repeats]
        n = len(ids)
        attention = np.zeros((n, n))
        attention[:, 0] = 1.0
        for query in range(9, n):
            attention[query] = 0.0
            attention[query, ids.index(ids[query]) + 1] = 1.0
        label = label_heads(attention[None, None], ids)[0][0]["label"]
        duplicate_rows, induction_rows = repeat_rows(ids)
        assert (duplicate_rows, induction_rows) == (repeats, repeats)
        assert (label == "induction") == (induction_rows >= MIN_REPEAT_ROWS)


@pytest.mark.parametrize("prepend_bos", [False, True], ids=["plain", "bos"])
def test_long_range_can_show_on_the_items_long_enough_and_the_probe(wide_model, random_atlas, prepend_bos):
    engine = Engine.load(wide_model)
    texts = json.loads(CORPUS_PATH.read_text())["items"]
    long_enough = sum(len(engine.tokenize(item["text"], prepend_bos)[0]) >= LONG_RANGE_MIN_TOKENS for item in texts)
    view = view_of(random_atlas, prepend_bos, False)
    assert 0 < long_enough < len(texts)
    assert view["can_show"]["long-range"] == long_enough + PROBE_SEQUENCES
    assert view["can_show"]["diagonal"] == view["items"] == len(texts) + PROBE_SEQUENCES
