"""Micro-batching (server/batcher.py): concurrent plain runs share batches, each sentence gets exactly its
attention and residual alone, a lone run waits for nobody, an error reaches every request of its batch, and
knock-outs and long sentences go around it. Real engines on the tiny model; the spy only records batch sizes."""

import threading
import time

import numpy as np
import pytest

from twelve_heads.errors import InputError, ModelError
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


def record_batches(engine, hold_first_until_queued: int = 0) -> tuple[list[int], threading.Event]:
    """Wrap engine.run_padded to record each batch's size; the first run can wait until that many sentences are
    queued behind it, so the test knows the next batch holds them all. The event is set once the first run is
    inside the engine: then its batch is taken, and every later sentence queues."""
    sizes, real, inside = [], engine.run_padded, threading.Event()

    def spy(batch, masks=None, residual=None):
        if not sizes:
            inside.set()
            if hold_first_until_queued:
                wait_until(lambda: len(engine.batcher.queued) >= hold_first_until_queued)
        sizes.append(len(batch))
        return real(batch, masks, residual)

    engine.run_padded = spy
    return sizes, inside


def wait_until(condition) -> None:
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, "the other threads never queued"
        time.sleep(0.001)


def start(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args)
    thread.start()
    return thread


def join(threads) -> None:
    for thread in threads:
        thread.join(QUEUE_TIMEOUT_S)
        assert not thread.is_alive(), "a request never returned"


def run_first_then_the_rest(engine, batch: list[list[int]], inside: threading.Event) -> list[tuple]:
    """Each sentence on its own thread, as request threads do: the first one alone until it is inside the engine,
    then the rest, which queue behind it."""
    results = [None] * len(batch)

    def worker(index):
        residual = np.empty((len(batch[index]), engine.manifest["n_embd"]), np.float32)
        results[index] = (engine.run(batch[index], residual=residual), residual)

    first = start(worker, 0)
    assert inside.wait(QUEUE_TIMEOUT_S)
    join([first, *[start(worker, index) for index in range(1, len(batch))]])
    return results


def test_concurrent_runs_share_batches_and_each_gets_exactly_its_own_result(batched, alone):
    batch = sentences(9)
    sizes, inside = record_batches(batched, hold_first_until_queued=len(batch) - 1)
    results = run_first_then_the_rest(batched, batch, inside)
    assert sizes == [1, 8]  # the first alone; the 8 that queued meanwhile (micro_batch=8) together
    for ids, (attention, residual) in zip(batch, results):
        expected_residual = np.empty_like(residual)
        np.testing.assert_array_equal(attention, alone.run(ids, residual=expected_residual))
        np.testing.assert_array_equal(residual, expected_residual)
    assert not batched.batcher.running and not batched.batcher.queued


def test_a_lone_run_is_a_batch_of_one_and_leaves_the_engine_idle(batched, alone):
    sizes, _ = record_batches(batched)
    ids = sentences(1)[0]
    np.testing.assert_array_equal(batched.run(ids), alone.run(ids))
    assert sizes == [1]
    assert not batched.batcher.running and not batched.batcher.queued


def test_a_batch_never_takes_more_than_micro_batch_sentences(tiny_model):
    engine = Engine.load(tiny_model, micro_batch=3)
    batch = sentences(7, seed=1)
    sizes, inside = record_batches(engine, hold_first_until_queued=len(batch) - 1)
    run_first_then_the_rest(engine, batch, inside)
    assert sizes == [1, 3, 3]


@pytest.mark.parametrize("error", [ModelError("the graph failed"), KeyboardInterrupt()])
def test_an_error_reaches_every_request_of_its_batch_and_the_next_batch_runs(batched, alone, error):
    """An error in a batch, an interrupt included, is every one of its requests' error, and leaves the batcher
    working: no request waits for a turn nobody holds."""
    batch = sentences(4, seed=2)
    sizes, inside = record_batches(batched, hold_first_until_queued=len(batch) - 1)
    recording = batched.run_padded

    def failing_second(ids, masks=None, residual=None):
        if len(sizes) == 1:  # the first batch ran; this is the second
            sizes.append(len(ids))
            raise error
        return recording(ids, masks, residual)

    batched.run_padded = failing_second
    errors = []

    def worker(index):
        try:
            batched.run(batch[index])
        except (ModelError, KeyboardInterrupt) as err:
            errors.append(type(err))

    first = start(worker, 0)
    assert inside.wait(QUEUE_TIMEOUT_S)
    join([first, *[start(worker, index) for index in range(1, len(batch))]])
    assert sizes == [1, 3] and errors == [type(error)] * 3  # the second batch's three; the first succeeded
    assert not batched.batcher.running and not batched.batcher.queued
    batched.run_padded = recording
    np.testing.assert_array_equal(batched.run(batch[0]), alone.run(batch[0]))  # and the batcher still works


def test_knock_outs_and_long_sentences_go_around_the_batcher(tiny_model, alone):
    engine = Engine.load(tiny_model, micro_batch=8, long_sentence_tokens=4)
    through, real = [], engine.batcher.run
    engine.batcher.run = lambda ids: through.append(ids) or real(ids)
    mask = head_mask(engine.n_layer, engine.n_head, [(0, 1)])
    np.testing.assert_array_equal(engine.run([1, 2, 3], mask=mask), alone.run([1, 2, 3], mask=mask))
    engine.run([5, 6, 7, 8, 9])  # longer than long_sentence_tokens
    assert through == []
    engine.run([1, 2, 3])
    assert through == [[1, 2, 3]]


def test_a_bad_sentence_gets_its_own_error_before_it_queues(batched):
    with pytest.raises(InputError, match=r"batch\[0\] holds -1, not a token id of this model"):
        batched.run([5, -1])
    assert not batched.batcher.running and not batched.batcher.queued


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
