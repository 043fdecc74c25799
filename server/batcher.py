"""Micro-batching: plain requests that arrive while the engine is busy run together, as one padded batch.

On a machine bound by reading the weights, a batch of B short sentences costs little more than one, because
the weights are streamed once for all of them (benchmarks/bench_batch.py). A request thread that finds the
engine idle runs its sentence at once, alone: a lone user waits for nobody. A thread that finds it busy queues
its sentence; when the running batch returns, the first queued thread takes everything queued (up to `most`
sentences, and no more padded attention than the engine's BATCH_ATTENTION_BYTES) and runs it as one batch,
while new arrivals queue behind it. No thread of its own and no timer: a batch is whatever arrived meanwhile.

Under GPT-2's causal mask, the padding after a sentence cannot reach its rows, so each sentence gets exactly
its attention alone (tests/test_batcher.py). Knock-outs (a head mask) and long sentences do not go through here.
benchmarks/bench_microbatch.py is the evidence for turning it on (the server's MICRO_BATCH setting).
"""

import threading
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class Job:
    ids: list[int]
    turn: threading.Event = field(default_factory=threading.Event)  # set when it is finished or it is its turn to run
    finished: bool = False
    attention: np.ndarray | None = None  # (L, H, T, T)
    residual: np.ndarray | None = None  # (T, n_embd), when the graph has the residual output
    error: BaseException | None = None


class MicroBatcher:
    def __init__(self, engine, most: int):
        self.engine, self.most = engine, most
        self.lock = threading.Lock()
        self.queued: list[Job] = []
        self.running = False  # a batch is running, or its runner is about to take the next one

    def run(self, ids: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """(attention (L, H, T, T), residual (T, n_embd) or None) of one sentence, batched with whatever is queued."""
        job = Job(ids)
        with self.lock:
            self.queued.append(job)
            my_turn = not self.running  # then nothing is queued before it: an idle engine has an empty queue
            self.running = True
        if not my_turn:
            job.turn.wait()
        if not job.finished:  # this thread's turn, and its sentence is first in the queue: this batch runs it
            try:
                with self.lock:
                    batch = self.take()
                self.run_batch(batch)
            finally:
                with self.lock:  # hand the turn to the first sentence still queued, or leave the engine idle
                    if self.queued:
                        self.queued[0].turn.set()
                    else:
                        self.running = False
        if job.error is not None:
            raise job.error
        return job.attention, job.residual

    def take(self) -> list[Job]:
        """The queued jobs that one batch takes, first come first: the engine's own limits on a batch."""
        taken, longest = [], 0
        for job in self.queued:
            longest = max(longest, len(job.ids))
            if taken and (len(taken) >= self.most or not self.engine.fits_in_one_batch(len(taken) + 1, longest)):
                break
            taken.append(job)
        del self.queued[:len(taken)]
        return taken

    def run_batch(self, batch: list[Job]) -> None:
        try:
            results = self.engine.run_batch_with_residual([job.ids for job in batch])
        except Exception as err:  # every sentence of the batch gets the error its request would have had
            for job in batch:
                job.error = err
        else:
            for job, (attention, residual) in zip(batch, results, strict=True):
                job.attention, job.residual = attention, residual
        for job in batch:
            job.finished = True
            job.turn.set()
