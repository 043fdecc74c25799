"""Micro-batching (server/batcher.py): concurrent plain runs share batches, each sentence gets exactly its
attention and residual alone, a lone run waits for nobody, an error reaches every request of its batch, and
knock-outs and long sentences go around it. Real engines on the tiny model; the spy only records batch sizes."""

import threading
import time

import numpy as np
import pytest

from twelve_heads.errors import ModelError
from twelve_heads.server import create_app
from twelve_heads.server.engine import Engine
from twelve_heads.server.intervene import head_mask

QUEUE_TIMEOUT_S = 30  # how long a test waits for the other threads to queue before it fails


def sentences(count: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 50257, size=int(n)).tolist() for n in rng.integers(1, 30, size=count)]


@pytest.fixture
def batched(tiny_model):
    return Engine.load(tiny_model, micro_batch=8)


@pytest.fixture
def alone(tiny_model):
    return Engine.load(tiny_model)


def record_batches(engine, hold_first_until_queued: int = 0) -> list[int]:
    """Wrap engine.run_padded to record each batch's size; the first run can wait until that many sentences are
    queued behind it, so the test knows the next batch holds them all."""
    sizes, real = [], engine.run_padded

    def spy(batch, masks=None, residual=None):
        if not sizes and hold_first_until_queued:
            deadline = time.monotonic() + QUEUE_TIMEOUT_S
            while len(engine.batcher.queued) < hold_first_until_queued:
                assert time.monotonic() < deadline, "the other threads never queued"
                time.sleep(0.001)
        sizes.append(len(batch))
        return real(batch, masks, residual)

    engine.run_padded = spy
    return sizes


def run_concurrently(engine, batch: list[list[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
    results = [None] * len(batch)
    start = threading.Barrier(len(batch))

    def worker(index):
        start.wait()
        residual = np.empty((len(batch[index]), engine.manifest["n_embd"]), np.float32)
        results[index] = (engine.run(batch[index], residual=residual), residual)

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(len(batch))]
    [thread.start() for thread in threads]
    [thread.join() for thread in threads]
    return results


def test_concurrent_runs_share_batches_and_each_gets_exactly_its_own_result(batched, alone):
    batch = sentences(9)
    sizes = record_batches(batched, hold_first_until_queued=len(batch) - 1)
    results = run_concurrently(batched, batch)
    assert sizes[0] == 1 and sizes[1] == 8  # the first alone; the 8 that queued meanwhile (micro_batch=8) together
    assert sum(sizes) == len(batch)
    for ids, (attention, residual) in zip(batch, results):
        expected_residual = np.empty_like(residual)
        np.testing.assert_array_equal(attention, alone.run(ids, residual=expected_residual))
        np.testing.assert_array_equal(residual, expected_residual)


def test_a_lone_run_is_a_batch_of_one_and_leaves_the_engine_idle(batched, alone):
    sizes = record_batches(batched)
    ids = sentences(1)[0]
    np.testing.assert_array_equal(batched.run(ids), alone.run(ids))
    assert sizes == [1]
    assert not batched.batcher.running and not batched.batcher.queued


def test_a_batch_never_takes_more_than_micro_batch_sentences(tiny_model):
    engine = Engine.load(tiny_model, micro_batch=3)
    batch = sentences(7, seed=1)
    sizes = record_batches(engine, hold_first_until_queued=len(batch) - 1)
    run_concurrently(engine, batch)
    assert sizes[0] == 1 and max(sizes) == 3 and sum(sizes) == len(batch)


def test_an_error_reaches_every_request_of_its_batch_and_the_next_batch_runs(batched, alone):
    batch = sentences(4, seed=2)
    real, calls = batched.run_padded, []

    def failing_second(ids, masks=None, residual=None):
        calls.append(len(ids))
        if len(calls) == 1:
            deadline = time.monotonic() + QUEUE_TIMEOUT_S
            while len(batched.batcher.queued) < len(batch) - 1:
                assert time.monotonic() < deadline, "the other threads never queued"
                time.sleep(0.001)
        if len(calls) == 2:
            raise ModelError("the graph failed")
        return real(ids, masks, residual)

    batched.run_padded = failing_second
    errors = []

    def worker(ids):
        try:
            batched.run(ids)
        except ModelError as err:
            errors.append(str(err))

    start = threading.Thread(target=worker, args=(batch[0],))
    start.start()
    others = [threading.Thread(target=worker, args=(ids,)) for ids in batch[1:]]
    [thread.start() for thread in others]
    [thread.join() for thread in [start, *others]]
    assert errors == ["the graph failed"] * (len(batch) - 1)  # the second batch's three; the first succeeded
    np.testing.assert_array_equal(batched.run(batch[0]), alone.run(batch[0]))  # and the batcher still works
    assert not batched.batcher.running


def test_knock_outs_and_long_sentences_run_alone(tiny_model):
    engine = Engine.load(tiny_model, micro_batch=8, long_sentence_tokens=4)
    sizes = record_batches(engine)
    engine.run([1, 2, 3], mask=head_mask(engine.n_layer, engine.n_head, [(0, 1)]))
    engine.run([5, 6, 7, 8, 9])  # longer than long_sentence_tokens
    assert sizes == [1, 1] and engine.batcher.queued == [] and not engine.batcher.running


def test_int8_and_unbatchable_models_get_no_batcher(demo_int8_model, tiny_model):
    assert Engine.load(demo_int8_model, micro_batch=8).batcher is None
    assert Engine.load(tiny_model, micro_batch=1).batcher is None
    assert Engine.load(tiny_model).batcher is None


def test_the_server_setting_turns_it_on(models_dir, monkeypatch):
    monkeypatch.setenv("HEADS_MICRO_BATCH", "4")
    registry = create_app({"MODELS_DIR": str(models_dir)}).extensions["heads.models"]
    assert {engine.batcher.most for engine in registry.engines.values()} == {4}


def test_a_micro_batch_that_is_not_a_number_stops_the_server_with_its_name(models_dir, monkeypatch):
    monkeypatch.setenv("HEADS_MICRO_BATCH", "lots")
    with pytest.raises(SystemExit, match="HEADS_MICRO_BATCH='lots' must be a whole number"):
        create_app({"MODELS_DIR": str(models_dir)})
