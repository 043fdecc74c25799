"""Knocking heads out: the prediction session, head masks, and one sentence's clean and ablated passes.

Zero-ablation (export/intervene.py): a knocked-out head's weighted values z are 0, the output projection's
bias stays, and its own attention is the pattern it computes in that run. The attention graph and the
prediction graph read one token embedding table; `shared_initializers` loads it once and both sessions use
that memory (onnxruntime's SessionOptions.add_initializer: ORT then does not deserialize its own copy).

    engine = Engine.load("models/demo")
    result = intervene(engine, ids, knocked_out=[(4, 11)], predict=True)
    result.attention            # (L, H, T, T) without head 4.11
    result.change               # (L, H) mean total-variation distance from the clean pattern
    result.prediction.top_ids   # the 5 likeliest next tokens without it; result.clean.prediction with it
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from twelve_heads.errors import ModelError
from twelve_heads.modeldir import (HEAD_MASK, INPUT_IDS, INTERVENTION, LAST_LOGPROB, NEXT_TOKEN_LOGPROB,
                                   PREDICT_OUTPUTS, REEXPORT_HINT, RESIDUAL, TOP_IDS, TOP_LOGPROB)


@dataclass(frozen=True)
class Prediction:
    """What the model expects next, for one sentence under one head mask."""

    next_logprob: np.ndarray  # (T - 1,): log p(token i + 1 | tokens 0 … i), position i predicts token i + 1
    top_ids: np.ndarray  # (K,) int64: the likeliest tokens after the last position, best first
    top_logprob: np.ndarray  # (K,)
    last_logprob: np.ndarray | None = None  # (V,): every token's, after the last position (None: an older export)

    def rank_of(self, token: int) -> int:
        """1 for the likeliest token after the last position (needs last_logprob); tokens of equal log-probability
        share the best rank among them."""
        return 1 + int(np.count_nonzero(self.last_logprob > self.last_logprob[token]))


@dataclass(frozen=True)
class Pass:
    """One run of the sentence under one head mask."""

    attention: np.ndarray  # (L, H, T, T)
    residual: np.ndarray  # (T, n_embd): the stream entering the last block, what predict.onnx starts from
    prediction: Prediction | None = None

    @property
    def nbytes(self) -> int:  # for a cache bounded in bytes
        prediction = self.prediction
        extra = 0 if prediction is None else prediction.next_logprob.nbytes + 128 + (
            0 if prediction.last_logprob is None else prediction.last_logprob.nbytes)
        return self.attention.nbytes + self.residual.nbytes + extra


@dataclass(frozen=True)
class Intervention:
    clean: Pass
    ablated: Pass  # the clean pass itself when nothing is knocked out
    change: np.ndarray  # (L, H): each head's mean total-variation distance from its clean pattern

    @property
    def attention(self) -> np.ndarray:
        return self.ablated.attention

    @property
    def prediction(self) -> Prediction | None:
        return self.ablated.prediction


def shared_initializers(path: Path, manifest: dict) -> dict[str, ort.OrtValue]:
    """{initializer name: OrtValue} for the embedding table both graphs read; {} for a model exported without
    intervention. The OrtValue holds the array, which must outlive the sessions (the engine keeps this dict)."""
    embedding = manifest.get(INTERVENTION, {}).get("embedding")
    if embedding is None:
        return {}
    table_path = Path(path) / embedding["file"]
    dtype, shape = np.dtype(embedding["dtype"]).newbyteorder("<"), tuple(embedding["shape"])
    if not table_path.is_file() or table_path.stat().st_size != dtype.itemsize * int(np.prod(shape)):
        raise ModelError(f"{table_path} is missing or not the {shape} {dtype.name} table its manifest says; "
                         f"{REEXPORT_HINT}")
    table = np.fromfile(table_path, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)
    return {embedding["initializer"]: ort.OrtValue.ortvalue_from_numpy(table)}


class Predictor:
    """predict.onnx's session: from residual streams to next-token log-probabilities."""

    def __init__(self, path: Path, session: ort.InferenceSession):
        self.path, self.session = path, session
        has = {output.name for output in session.get_outputs()}
        self.outputs = [name for name in PREDICT_OUTPUTS if name in has]  # exports before LAST_LOGPROB lack it

    def predict(self, ids: list[int], residuals: np.ndarray, head_masks: np.ndarray, run_options=None
                ) -> list[Prediction]:
        """One Prediction per row of residuals (B, T, D) and head_masks (B, L, H), all for the sentence `ids`;
        `run_options`: the engine's for a run of that size (its last block's scores are (B, H, T, T))."""
        batch = len(residuals)
        feeds = {RESIDUAL: residuals, HEAD_MASK: head_masks, INPUT_IDS: np.tile(np.asarray([ids], np.int64), (batch, 1))}
        try:
            out = dict(zip(self.outputs, self.session.run(self.outputs, feeds, run_options)))
        except Exception as err:  # onnxruntime's own types
            raise ModelError(f"{self.path} failed on a {len(ids)}-token sentence ({str(err).splitlines()[0][:160]}); "
                             f"{REEXPORT_HINT}") from None
        # Copies, not views: a cached clean pass keeps its own row, not the whole batch's arrays.
        return [Prediction(out[NEXT_TOKEN_LOGPROB][row].copy(), out[TOP_IDS][row].copy(), out[TOP_LOGPROB][row].copy(),
                           out[LAST_LOGPROB][row].copy() if LAST_LOGPROB in out else None) for row in range(batch)]


def head_mask(n_layer: int, n_head: int, knocked_out=()) -> np.ndarray:
    """(L, H) float32: 1 keeps a head, 0 knocks it out."""
    mask = np.ones((n_layer, n_head), dtype=np.float32)
    for layer, head in knocked_out:
        mask[layer, head] = 0.0
    return mask


def downstream_change(clean: np.ndarray, ablated: np.ndarray) -> np.ndarray:
    """(L, H): the mean over query rows of the total-variation distance (half the L1 distance) between each
    head's ablated and clean attention rows."""
    return 0.5 * np.abs(ablated - clean).sum(axis=-1).mean(axis=-1)


def clean_pass(engine, ids: list[int], predict: bool, cached: Pass | None = None) -> Pass:
    """The sentence with every head, reusing what `cached` already holds."""
    if cached is not None and (cached.prediction is not None or not predict):
        return cached
    if cached is None:
        cached = Pass(*engine.run_with_residual(ids))
    if not predict:
        return cached
    mask = head_mask(engine.n_layer, engine.n_head)
    prediction, = engine.predictor.predict(ids, cached.residual[None], mask[None], engine.run_options(len(ids)))
    return Pass(cached.attention, cached.residual, prediction)


def intervene(engine, ids: list[int], knocked_out, predict: bool, cached: Pass | None = None) -> Intervention:
    """The sentence with every head (from `cached` where it can) and without the `knocked_out` (layer, head)
    pairs; with `predict`, both passes' predictions. The clean and ablated predictions share one run of
    predict.onnx (a batch of two: its LM head streams the embedding table once for both)."""
    knocked_out = sorted(set(map(tuple, knocked_out)))
    if not knocked_out:
        clean = clean_pass(engine, ids, predict, cached)
        return Intervention(clean, clean, np.zeros((engine.n_layer, engine.n_head), dtype=np.float32))
    mask = head_mask(engine.n_layer, engine.n_head, knocked_out)
    if cached is None:  # both passes in one batch of two
        (clean_run, ablated_run) = engine.run_under_masks(ids, np.stack([head_mask(engine.n_layer, engine.n_head),
                                                                          mask]))
        clean, ablated = Pass(*clean_run), Pass(*ablated_run)
    else:
        clean, ablated = cached, Pass(*engine.run_with_residual(ids, mask))
    if predict:
        if clean.prediction is None:
            clean_prediction, prediction = engine.predictor.predict(
                ids, np.stack([clean.residual, ablated.residual]),
                np.stack([head_mask(engine.n_layer, engine.n_head), mask]), engine.run_options(len(ids), 2))
            clean = Pass(clean.attention, clean.residual, clean_prediction)
        else:
            prediction, = engine.predictor.predict(ids, ablated.residual[None], mask[None], engine.run_options(len(ids)))
        ablated = Pass(ablated.attention, ablated.residual, prediction)
    return Intervention(clean, ablated, downstream_change(clean.attention, ablated.attention))
